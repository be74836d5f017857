"""Helpers shared by CLI commands: common options and run metadata."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_common", "add_out", "map_genes_or_fail", "note", "output_dir", "output_file", "positive_float",
           "positive_int", "run_metadata", "seed_type"]

OVERWRITE_HELP = ("write into an existing --out that bayesmages did not write; files bayesmages did not write are "
                  "never deleted, and one it would replace stops the command")


def _int_at_least(minimum: int, what: str):
    """An argparse type accepting integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            kind = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
            raise argparse.ArgumentTypeError(f"{what} must be {kind}, got {text!r}")
        return value

    return parse


#: argparse type of ``--seed`` (a non-negative integer)
seed_type = _int_at_least(0, "seed")
#: argparse type of counts such as ``--workers`` (a positive integer)
positive_int = _int_at_least(1, "the value")


def positive_float(text: str) -> float:
    """An argparse type accepting numbers > 0 (e.g. a sample size)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def add_common(parser: argparse.ArgumentParser, *, seed: bool = True, workers: bool = False) -> None:
    """Add ``--seed``, ``--quiet`` (and ``--workers``/``--scheduler``) to a sub-command."""
    if seed:
        parser.add_argument("--seed", type=seed_type, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress output (notes and errors still show)")
    if workers:
        parser.add_argument("--workers", type=positive_int, default=1, help="local worker processes (default 1)")
        parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                            help="Dask distributed scheduler address, e.g. tcp://127.0.0.1:8786")


def run_metadata(args: argparse.Namespace, started: float, **extra: Any) -> dict[str, Any]:
    """``run.json`` content: version, arguments, seeds, timings, platform."""
    from bayesmages import __version__

    clean = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    return {
        "bayesmages_version": __version__,
        "command": " ".join(["bayesmages", *sys.argv[1:]]),
        "arguments": clean,
        "seconds": round(time.perf_counter() - started, 3),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **extra,
    }


def add_out(parser: argparse.ArgumentParser, help: str, *, default: Path | None = None) -> None:
    """Add ``--out`` (required unless it has a default) and ``--overwrite``."""
    parser.add_argument("--out", type=Path, required=default is None, default=default, help=help)
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def output_dir(args: argparse.Namespace, **kwargs: Any) -> Any:
    """The checked output folder of a command (:class:`bayesmages.io.outdir.OutputDir`); refuses it now, if at all."""
    from bayesmages.io.outdir import OutputDir

    return OutputDir(args.out, overwrite=args.overwrite, command=args.command, **kwargs).check()


def output_file(args: argparse.Namespace, sidecar: Path) -> Path:
    """Check ``--out`` (a table) and its ``sidecar`` run.json before any work; returns ``--out``.

    The table's ending must be writable (``.xlsx`` is refused, ``.parquet`` needs pyarrow), and an
    existing file is replaced only when bayesmages wrote it (its sidecar names it) or with ``--overwrite``.
    """
    import json

    from bayesmages.io.outdir import check_output_file
    from bayesmages.io.tables import check_table_path

    def written_by_us(path: Path) -> bool:
        try:
            meta = json.loads(sidecar.read_text())
            return Path(str(meta["arguments"]["out"])).name == path.name
        except (OSError, ValueError, KeyError, TypeError):
            return False

    check_table_path(args.out, what="--out")
    check_output_file(args.out, overwrite=args.overwrite, is_ours=written_by_us)
    check_output_file(sidecar, overwrite=True, what="run metadata")
    return Path(args.out)


def note(args: argparse.Namespace, message: str) -> None:
    """One line ``bayesmages <command>: note: ...`` on stderr (shown even with ``--quiet``: it is not progress)."""
    print(f"bayesmages {args.command}: note: {message}", file=sys.stderr, flush=True)


def map_genes_or_fail(genes: Any, genes_path: Path, data_path: Path, *, variants: Any, n_variants: int,
                      by: str = "auto") -> Any:
    """Map the genes to the data's variants now, before any work; refuse a table none of whose genes maps.

    Returns the :class:`~bayesmages.genes.mapping.GeneMap` (its ``unmapped`` genes are skipped).
    """
    from bayesmages.errors import InputError
    from bayesmages.genes.mapping import map_genes

    try:
        gmap = map_genes(genes, variants=variants, n_variants=n_variants, by=by)
    except InputError as exc:
        msg = str(exc)
        if msg.startswith(("variants:", "genes:")):  # the mapper sees tables only: name the files
            where = data_path if msg.startswith("variants:") else genes_path
            raise InputError(f"{where}: {msg.split(':', 1)[1].strip()} (mapping the genes of {genes_path} to "
                             f"the variants of {data_path})") from None
        raise
    if len(gmap) == 0:
        raise InputError(f"{genes_path}: none of its {len(genes)} genes contains a variant of {data_path}; check "
                         "chromosomes and positions (or index ranges)")
    return gmap


def unmapped_note(n_unmapped: int, n_genes: int) -> str:
    """The note on genes that hold no variant of the data."""
    return (f"{n_unmapped} of {n_genes} genes contain no variant of the data and were skipped "
            "(listed in run.json)")
