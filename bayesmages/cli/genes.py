"""``bayesmages genes``: multi-trait gene summaries from clustered shrunk effects."""

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


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``genes`` sub-command."""
    p = sub.add_parser(
        "genes",
        help="multi-trait gene summaries (cluster fractions, effect products, S_g, association types)",
        description=(
            "Per gene: fraction of its variants in each cluster, per-cluster signed and absolute trait-pair effect "
            "products / |g|, S_g, and per association type the sum of |beta|. Effects are a wide table (one "
            "column per trait) or the long shrink output (SNP, trait, beta_shrunk); clusters are the variant "
            "table of 'bayesmages cluster' (SNP, cluster, category); variants missing from it are unclustered."
        ),
    )
    p.add_argument("--effects", type=Path, required=True, help="effects table (wide, or long with SNP/trait)")
    p.add_argument("--traits", nargs="+", default=None, help="trait columns of a wide table (default: all numeric)")
    p.add_argument("--clusters", type=Path, required=True, help="variant cluster table: SNP, cluster[, category]")
    p.add_argument("--genes", type=Path, required=True, help="gene table (START/END or ML-MAGES index columns)")
    p.add_argument("--by", choices=("auto", "index", "positions"), default="auto", help="gene mapping")
    add_out(p, "output folder (new, or one bayesmages wrote; see --overwrite)")
    add_common(p, seed=False)
    p.set_defaults(func=run)
    return p


def _wide_effects(path: Path, traits: list[str] | None) -> tuple[pd.DataFrame, list[str]]:
    import pandas as pd

    from bayesmages.errors import InputError
    from bayesmages.io import read_table

    df = read_table(path, what="effects table")
    if "trait" in df.columns:
        col = next((c for c in ("beta_shrunk", "BETA") if c in df.columns), None)
        if col is None or "SNP" not in df.columns:
            raise InputError(f"{path}: a long effects table needs SNP, trait and beta_shrunk (or BETA) columns")
        order = list(dict.fromkeys(df["SNP"].astype(str)))
        wide = df.pivot_table(index="SNP", columns="trait", values=col, aggfunc="first").reindex(order)
        meta = df.drop_duplicates("SNP").set_index("SNP").reindex(order)
        wide.columns = [str(c) for c in wide.columns]
        if traits is not None:
            wide = wide[traits]
        out = wide.reset_index()
        for c in ("CHR", "POS"):
            if c in meta.columns:
                out[c] = meta[c].to_numpy()
        return out, list(wide.columns)
    names = traits or [c for c in df.columns if c not in ("SNP", "CHR", "POS", "A1", "A2")
                       and pd.api.types.is_numeric_dtype(df[c])]
    missing = [t for t in names if t not in df.columns]
    if missing or not names:
        raise InputError(f"{path}: trait columns {missing or names} not found; columns are {list(df.columns)}")
    return df, names


def run(args: argparse.Namespace) -> int:
    """Compute the summaries; write four tables, two figures and ``run.json``."""
    import numpy as np

    from bayesmages.errors import InputError
    from bayesmages.genes.multitrait import summarize
    from bayesmages.genes.plots import plot_cluster_fractions, plot_s_summary
    from bayesmages.io import read_genes, read_table, write_json, write_table

    started = time.perf_counter()
    dest = output_dir(args)
    eff, traits = _wide_effects(args.effects, args.traits)
    cl = read_table(args.clusters, required=["cluster"], what="cluster table")
    if "SNP" in cl.columns and "SNP" in eff.columns:
        pos = {s: i for i, s in enumerate(cl["SNP"].astype(str))}
        idx = np.array([pos.get(s, -1) for s in eff["SNP"].astype(str)])
        labels = np.where(idx >= 0, cl["cluster"].to_numpy()[np.maximum(idx, 0)], -1)
    elif len(cl) == len(eff):
        labels = cl["cluster"].to_numpy()
    else:
        raise InputError(f"{args.clusters}: without SNP columns in both tables the cluster table must have one row "
                         f"per effect row ({len(eff)}), found {len(cl)}")
    labels = np.asarray(labels, dtype=np.int64)
    categories = None
    if "category" in cl.columns:
        cat_of = dict(zip(cl["cluster"].astype(int), cl["category"].astype(str)))
        k = int(labels.max(initial=-1)) + 1
        categories = [cat_of.get(i, f"cluster_{i}") for i in range(k)]
    variants = eff if {"CHR", "POS"} <= set(eff.columns) else None
    genes = read_genes(args.genes)
    gmap = map_genes_or_fail(genes, args.genes, args.effects, variants=variants, n_variants=len(eff), by=args.by)
    if gmap.unmapped:
        note(args, unmapped_note(len(gmap.unmapped), len(genes)))
    out = summarize(eff[traits], genes, labels, categories, variants=variants, by=args.by)
    with dest.build() as tmp:
        write_table(out.fractions, tmp / "gene_cluster_fractions.csv")
        write_table(out.products, tmp / "gene_effect_products.csv")
        write_table(out.S, tmp / "gene_S.csv")
        write_table(out.type_scores, tmp / "gene_type_scores.csv")
        (tmp / "figures").mkdir()
        plot_cluster_fractions(out.fractions).savefig(tmp / "figures" / "cluster_fractions.png", dpi=100)
        plot_s_summary(out.S_array, out.fractions["GENE"].tolist(), out.traits).savefig(
            tmp / "figures" / "S_summary.png", dpi=100)
        write_json(run_metadata(args, started, traits=out.traits, categories=out.categories,
                                genes=len(out.fractions), genes_unmapped=list(gmap.unmapped)), tmp / "run.json")
    if not args.quiet:
        print(f"{len(out.fractions)} genes summarised over {len(out.traits)} traits and {len(out.categories)} clusters")
        print(f"results written to {args.out.resolve()}")
    return 0
