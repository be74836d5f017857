"""``bayesmages enrich``: single-trait gene-level enrichment test (gene-epsilon)."""

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
    import pandas as pd

_EFFECT_COLUMNS = ("beta_shrunk", "BETA_SHRUNK", "BETA", "beta")


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``enrich`` sub-command."""
    p = sub.add_parser(
        "enrich",
        help="gene-level enrichment test of one trait's shrunk effects",
        description=(
            "Q_g = sum of squared shrunk effects per gene, tested against sum_k lambda_k chi2_1 with lambda = "
            "eigenvalues of epsilon * R_g (exact p-values, BH q-values). epsilon comes from --null-variance or "
            "from a one-trait dp_mixture fit (rule documented in bayesmages.genes.enrichment)."
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
    p.add_argument("--null-variance", type=float, default=None, help="epsilon (default: from a dp_mixture fit)")
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
    res = enrichment.test(beta, blocks, genes, null_variance=args.null_variance, variants=variants, by=args.by,
                          seed=args.seed, workers=args.workers, scheduler=args.scheduler)
    n_sig = int((res["q_value"] <= args.fdr).sum())
    with out.build() as tmp:
        write_table(res, tmp / "gene_enrichment.csv")
        (tmp / "figures").mkdir()
        plot_gene_pvalues(res, fdr=args.fdr).savefig(tmp / "figures" / "gene_pvalues.png", dpi=100)
        write_json(run_metadata(args, started, effect_column=col, null_variance=res.attrs["null_variance"],
                                null_variance_rule=res.attrs["null_variance_rule"], genes_tested=len(res),
                                genes_unmapped=res.attrs["unmapped"], significant_at_fdr=n_sig),
                   tmp / "run.json")
    if not args.quiet:
        print(f"{len(res)} genes tested (epsilon = {res.attrs['null_variance']:.4g}, "
              f"{res.attrs['null_variance_rule']}); {n_sig} with q <= {args.fdr:g}")
        print(f"results written to {args.out.resolve()}")
    return 0
