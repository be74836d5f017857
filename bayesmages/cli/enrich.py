"""``bayesmages enrich``: single-trait gene test (LD-conditional by default, marginal, or the paper's epsilon test)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bayesmages.cli._common import (
    add_common,
    add_out,
    map_genes_or_fail,
    note,
    output_dir,
    run_metadata,
    unmapped_note,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_EFFECT_COLUMNS = ("beta_shrunk", "BETA_SHRUNK", "BETA", "beta")


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``enrich`` sub-command."""
    p = sub.add_parser(
        "enrich",
        help="gene-level test of one trait (calibrated LD-conditional test by default)",
        description=(
            "--test conditional (default): each gene's z-scores (beta_hat/se) residualised on the outside "
            "variants the shrinker keeps (|beta_shrunk/se| > --threshold), against their exact null; p- and "
            "q-values are error rates. Needs the shrink output table (beta_hat, se, beta_shrunk). "
            "--test conditional+single: the same with the gene's exact one-variant p-values added to the "
            "combination (also error rates; ranks associated genes slightly better, lets slightly more "
            "spill-over through: docs/genes.md). "
            "--test marginal: z_g'z_g against eig(R_g) on raw effects (needs beta_hat/BETA and se/SE). "
            "--test epsilon: the ML-MAGES paper's test, sum of squared shrunk effects against eig(epsilon R_g), "
            "epsilon from --null-variance or a one-trait dp_mixture fit; its p-values rank genes but are not "
            "error rates. BH q-values for every test."
        ),
    )
    p.add_argument("--effects", type=Path, required=True,
                   help="effects table in data order: a beta_shrunk column (shrink output) or BETA")
    p.add_argument("--column", default=None, help="effect column (default: beta_shrunk, else BETA)")
    p.add_argument("--trait", default=None, help="trait to use when the table has a 'trait' column with several")
    p.add_argument("--ld", type=Path, nargs="+", required=True, help="LD block files in data order")
    p.add_argument("--genes", type=Path, required=True, help="gene table (START/END or ML-MAGES index columns)")
    p.add_argument("--by", choices=("auto", "index", "positions"), default="auto",
                   help="map genes by index ranges or by positions (default: index when present)")
    # the names of bayesmages.genes.enrichment.TESTS (spelt out: the CLI does not import numpy to build its parser)
    p.add_argument("--test", choices=("conditional", "conditional+single", "marginal", "epsilon"),
                   default="conditional", help="gene test (default: conditional)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="conditional tests: |beta_shrunk/se| above which an outside variant is conditioned on "
                   "(default 0.5)")
    p.add_argument("--null-variance", type=float, default=None,
                   help="epsilon of --test epsilon (default: from a dp_mixture fit)")
    p.add_argument("--fdr", type=float, default=0.05, help="FDR level for the figure and summary (default 0.05)")
    add_out(p, "output folder (new, or one bayesmages wrote; see --overwrite)")
    add_common(p, workers=True)
    p.set_defaults(func=run)
    return p


def effects_table(path: Path, column: str | None, trait: str | None) -> tuple[pd.DataFrame, str]:
    """Read an effects table; keep one trait; return (table, effect column name)."""
    from bayesmages.errors import InputError
    from bayesmages.io import read_table

    df = read_table(path, what="effects table")
    if "trait" in df.columns:
        traits = list(dict.fromkeys(df["trait"].astype(str)))
        if trait is None and len(traits) > 1:
            raise InputError(f"{path}: the table holds traits {traits}; choose one with --trait")
        chosen = trait if trait is not None else traits[0]
        if chosen not in traits:
            raise InputError(f"{path}: trait {chosen!r} not in the table (found {traits})")
        df = df[df["trait"].astype(str) == chosen].reset_index(drop=True)
    col = column or next((c for c in _EFFECT_COLUMNS if c in df.columns), None)
    if col is None or col not in df.columns:
        raise InputError(f"{path}: no effect column {column or list(_EFFECT_COLUMNS)}; found {list(df.columns)}")
    return df, col


def _raw_columns(df: pd.DataFrame, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(beta_hat, se) of an effects table: the shrink output's columns, or a GWAS table's BETA/SE."""
    import numpy as np

    from bayesmages.errors import InputError

    for b_col, s_col in (("beta_hat", "se"), ("BETA", "SE")):
        if {b_col, s_col} <= set(df.columns):
            b = np.asarray(df[b_col], dtype=np.float64)
            s = np.asarray(df[s_col], dtype=np.float64)
            bad = ~(np.isfinite(b) & np.isfinite(s) & (s > 0))
            if bad.any():
                row = int(np.argmax(bad))
                raise InputError(f"{path}: row {row + 2}: {b_col}/{s_col} must be finite with {s_col} > 0, "
                                 f"got {b[row]:g}/{s[row]:g}")
            return b, s
    raise InputError(f"{path}: the conditional tests and the marginal test need beta_hat and se columns (the shrink "
                     f"output) or BETA and SE; found {list(df.columns)}")


def run(args: argparse.Namespace) -> int:
    """Run the enrichment test and write ``gene_enrichment.csv``, a figure and ``run.json``."""
    import numpy as np

    from bayesmages.errors import InputError
    from bayesmages.genes import enrichment
    from bayesmages.genes.plots import plot_gene_pvalues
    from bayesmages.io import read_genes, read_ld, write_json, write_table

    started = time.perf_counter()
    out = output_dir(args)
    if not 0 < args.fdr < 1:
        raise InputError(f"--fdr must be in (0, 1), got {args.fdr}")
    df, col = effects_table(args.effects, args.column, args.trait)
    beta = np.asarray(df[col], dtype=np.float64)
    blocks = [read_ld(p) for p in args.ld]
    genes = read_genes(args.genes)
    variants = df if {"CHR", "POS"} <= set(df.columns) else None
    gmap = map_genes_or_fail(genes, args.genes, args.effects, variants=variants, n_variants=beta.size, by=args.by)
    if gmap.unmapped:
        note(args, unmapped_note(len(gmap.unmapped), len(genes)))
    if args.test == "epsilon":
        res = enrichment.test(beta, blocks, gmap, null_variance=args.null_variance, method="epsilon",
                              seed=args.seed, workers=args.workers, scheduler=args.scheduler)
    else:
        if args.null_variance is not None:
            raise InputError(f"--null-variance belongs to --test epsilon, not --test {args.test}")
        raw = _raw_columns(df, args.effects)
        res = enrichment.test(beta, blocks, gmap, beta_hat=raw[0], se=raw[1], method=args.test,
                              threshold=args.threshold, workers=args.workers, scheduler=args.scheduler)
    n_sig = int((res["q_value"] <= args.fdr).sum())
    with out.build() as tmp:
        write_table(res, tmp / "gene_enrichment.csv")
        (tmp / "figures").mkdir()
        plot_gene_pvalues(res, fdr=args.fdr).savefig(tmp / "figures" / "gene_pvalues.png", dpi=100)
        write_json(run_metadata(args, started, effect_column=col, test=args.test,
                                null_variance=res.attrs["null_variance"],
                                null_variance_rule=res.attrs["null_variance_rule"], genes_tested=len(res),
                                genes_unmapped=res.attrs["unmapped"], significant_at_fdr=n_sig),
                   tmp / "run.json")
    if not args.quiet:
        how = (f"epsilon test, epsilon = {res.attrs['null_variance']:.4g}, {res.attrs['null_variance_rule']}"
               if args.test == "epsilon" else f"{args.test} test")
        print(f"{len(res)} genes tested ({how}); {n_sig} with q <= {args.fdr:g}")
        print(f"results written to {args.out.resolve()}")
    return 0
