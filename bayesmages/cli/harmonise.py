"""``bayesmages harmonise``: express a GWAS for the alleles of a reference panel, accounting for every variant."""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from bayesmages.cli._common import add_common, add_out, output_dir, positive_float, run_metadata

if TYPE_CHECKING:
    import pandas as pd


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``harmonise`` sub-command."""
    from bayesmages.io import GWAS_FORMATS

    p = sub.add_parser(
        "harmonise",
        help="match a GWAS to a reference panel's alleles (flip signs, drop ambiguous/duplicate/missing variants)",
        description="Read a GWAS (PLINK 2, REGENIE, SAIGE, GWAS-SSF or a generic table) and a reference panel "
        "(PLINK .bim, or a table with SNP, CHR, POS, A1, A2[, FREQ]); write harmonised.csv (panel order, BETA for "
        "the panel's A1), dropped.csv (one reason per dropped variant), report.json (counts that sum to the "
        "input) and run.json into --out.",
    )
    p.add_argument("--gwas", type=Path, required=True, help="GWAS summary statistics (gzip ok)")
    p.add_argument("--format", choices=GWAS_FORMATS, default=None, help="GWAS format (default: from the header)")
    p.add_argument("--n", type=positive_float, default=None, help="sample size, for files without an N column")
    p.add_argument("--panel", type=Path, required=True, help="reference panel: .bim (or .bed / prefix) or a table")
    p.add_argument("--by", choices=("position", "id"), default="position",
                   help="match on CHR:POS + allele pair (default) or on the variant id")
    p.add_argument("--ambiguous", choices=("drop", "frequency"), default="drop",
                   help="A/T and C/G variants: drop (default) or keep when allele frequencies tell the strand")
    p.add_argument("--freq-margin", type=float, default=0.1,
                   help="frequencies within 0.5 +- this cannot tell the strand (default 0.1)")
    add_out(p, "output folder (new, or one bayesmages wrote; see --overwrite)")
    add_common(p, seed=False)
    p.set_defaults(func=run)
    return p


def read_panel(path: Path) -> pd.DataFrame:
    """A .bim (given as .bim, .bed or a prefix) or a table with SNP, CHR, POS, A1, A2."""
    from bayesmages.io import read_bim, read_table

    if path.suffix in (".bim", ".bed") or not path.exists():
        return read_bim(path)
    return read_table(path, required=["SNP", "CHR", "POS", "A1", "A2"], what="panel")


def run(args: argparse.Namespace) -> int:
    """Read, harmonise, write the three tables atomically."""
    from bayesmages.io import DroppedRowsWarning, harmonise, read_gwas, write_json, write_table

    started = time.perf_counter()
    dest = output_dir(args)  # an occupied --out is refused before any work
    with warnings.catch_warnings():
        # the rows the reader leaves out are in dropped.csv and report.json: no need to warn here
        warnings.simplefilter("ignore", DroppedRowsWarning)
        gwas = read_gwas(args.gwas, format=args.format, n=args.n)
    table, dropped, report = harmonise(gwas, read_panel(args.panel), by=args.by, ambiguous=args.ambiguous,
                                       freq_margin=args.freq_margin)
    with dest.build() as tmp:
        write_table(table, tmp / "harmonised.csv")
        write_table(dropped, tmp / "dropped.csv")
        write_json(report, tmp / "report.json")
        write_json(run_metadata(args, started, gwas_format=report["gwas_format"]), tmp / "run.json")
    if not args.quiet:
        reasons = ", ".join(f"{k} {v}" for k, v in report["dropped"].items() if v)
        print(f"{report['n_input']} GWAS variants: {report['n_harmonised']} harmonised "
              f"({report['n_swapped']} swapped, {report['n_strand_flipped']} strand-flipped), "
              f"{report['n_dropped']} dropped ({reasons or 'none'}); written to {args.out}")
    return 0
