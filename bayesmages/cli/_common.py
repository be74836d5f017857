"""Helpers shared by CLI commands: common options and run metadata."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_common", "positive_int", "run_metadata", "seed_type"]


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


def add_common(parser: argparse.ArgumentParser, *, seed: bool = True, workers: bool = False) -> None:
    """Add ``--seed``, ``--quiet`` (and ``--workers``/``--scheduler``) to a sub-command."""
    if seed:
        parser.add_argument("--seed", type=seed_type, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
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
