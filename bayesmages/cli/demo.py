"""``bayesmages demo``: simulate two traits with a known truth, run the pipeline, report what was recovered."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayesmages.cli._common import add_common, add_out, output_dir, positive_int, run_metadata

if TYPE_CHECKING:
    import pandas as pd

    from bayesmages.pipeline import PipelineResult

#: The demo data set: about five msprime LD blocks, two traits, genes of every association type.
DEMO_SIMULATION: dict[str, Any] = {
    "n_gwas": 50_000, "h2": 0.03, "gene_size": (5, 40), "gene_gap": (0, 15), "p_causal_genes": 0.25,
    "p_causal_in_gene": 0.2, "frac_specific": 0.6, "n_ref_samples": 1000,
}


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` sub-command."""
    p = sub.add_parser(
        "demo",
        help="simulate two traits with a known truth, run the whole pipeline, report the recovery",
        description=(
            "Simulate a two-trait GWAS on msprime LD (five blocks; genes with trait-specific and shared "
            "signals), run 'bayesmages run' on it, and report how well the simulated truth was recovered "
            "(average precision of the gene rankings). Writes data/ (the simulation), results/ (tables, "
            "figures/, report.md), recovery.csv and run.json into --out."
        ),
    )
    add_out(p, "output folder (default ./bayesmages-demo; an earlier demo there is replaced)",
            default=Path("bayesmages-demo"))
    # Smaller data sets for quick checks (tests); not part of the documented interface.
    p.add_argument("--blocks", type=positive_int, default=5, help=argparse.SUPPRESS)
    p.add_argument("--variants-per-block", type=positive_int, default=400, help=argparse.SUPPRESS)
    add_common(p)
    p.set_defaults(func=run)
    return p


def recovery(result: PipelineResult, gene_truth: pd.DataFrame, *, fdr: float = 0.05) -> pd.DataFrame:
    """Average precision of the pipeline's gene rankings against the simulated truth.

    Per trait: genes ranked by the enrichment p-value, positives = genes causal for that trait (any
    type). Per simulated association type (``specific:T1``, ``shared:T1+T2``, ...): genes ranked by their
    multi-trait type score (``gene_score``: the probability that the gene is of that type, from its
    variants' association-type probabilities, times its expected signal; ``abs_total`` for tables
    without it), positives = genes of that type. ``baseline`` is the fraction of positives (the AP of a random ranking).

    Parameters
    ----------
    result : PipelineResult
        The pipeline run on the simulated data.
    gene_truth : pandas.DataFrame
        ``MultiTraitSimulation.gene_truth``.
    fdr : float
        FDR level for the counts of significant genes.

    Returns
    -------
    pandas.DataFrame
        ``ranking, truth, n_genes, n_positive, baseline, average_precision, significant, true_positive``.
    """
    import numpy as np
    import pandas as pd

    from bayesmages.stats import average_precision

    truth = gene_truth.set_index(gene_truth["GENE"].astype(str))
    rows = []
    for t in result.traits:
        res = result.enrichment[t]
        causal = truth.loc[res["GENE"], f"CAUSAL_{t}"].to_numpy(bool)
        score = -np.log10(np.clip(res["p_value"].to_numpy(np.float64), 1e-300, 1.0))
        sig = res["q_value"].to_numpy(np.float64) <= fdr
        rows.append({"ranking": f"enrichment p-value, {t}", "truth": f"causal for {t}", "n_genes": len(res),
                     "n_positive": int(causal.sum()), "baseline": causal.mean(),
                     "average_precision": average_precision(causal, score), "significant": int(sig.sum()),
                     "true_positive": int((sig & causal).sum())})
    scores = result.genes["gene_type_scores"]
    genes = result.genes["gene_cluster_fractions"]["GENE"].astype(str)
    for kind in sorted(k for k in truth["TYPE"].astype(str).unique() if k != "none"):
        positive = (truth["TYPE"].loc[genes].astype(str) == kind).to_numpy()
        column = "gene_score" if "gene_score" in scores else "abs_total"
        by_gene = scores[scores["type"] == kind].set_index("GENE")[column]
        score = by_gene.reindex(genes).fillna(0.0).to_numpy(np.float64)
        rows.append({"ranking": f"type score {kind}", "truth": f"type {kind}", "n_genes": len(genes),
                     "n_positive": int(positive.sum()), "baseline": positive.mean(),
                     "average_precision": average_precision(positive, score), "significant": None,
                     "true_positive": None})
    return pd.DataFrame(rows).astype({"significant": "Int64", "true_positive": "Int64"})


def run(args: argparse.Namespace) -> int:
    """Simulate, run the pipeline, write everything atomically into ``--out``, print the recovery."""
    from bayesmages.io import write_json, write_table
    from bayesmages.pipeline import run as run_pipeline
    from bayesmages.simulate.multitrait import simulate_multitrait

    started = time.perf_counter()
    dest = output_dir(args)
    show = not args.quiet
    if show:
        print(f"simulating two traits on {args.blocks} msprime LD blocks ...", flush=True)
    sim = simulate_multitrait(2, args.blocks, variants_per_block=args.variants_per_block, seed=args.seed,
                              **DEMO_SIMULATION)
    t_sim = time.perf_counter() - started
    with dest.build() as tmp:
        data = tmp / "data"
        data.mkdir()
        sim.write_files(data)
        if show:
            counts = sim.gene_truth["TYPE"].value_counts().to_dict()
            print(f"{sim.params['n_variants']} variants, {sim.params['n_genes']} genes; true gene types: {counts}")
            print("running the pipeline (shrink, cluster, gene tests, gene summaries, figures) ...", flush=True)
        result = run_pipeline([data / f"gwas_{t}.tsv" for t in sim.traits], data / "ld", data / "genes.tsv",
                              tmp / "results", traits=sim.traits, seed=args.seed, progress=show)
        _final_paths(tmp / "results", tmp, dest.path)
        table = recovery(result, sim.gene_truth)
        write_table(table, tmp / "recovery.csv")
        write_json(run_metadata(args, started, seeds={"seed": args.seed}, simulation=sim.params,
                                simulate_seconds=round(t_sim, 3), recovery=table.to_dict(orient="records")),
                   tmp / "run.json")
    out = dest.path
    print("Recovery of the simulated truth (average precision; baseline = a random ranking):")
    shown = table[["ranking", "n_positive", "n_genes", "baseline", "average_precision", "significant",
                   "true_positive"]].astype({"significant": object, "true_positive": object}).fillna("-")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"report: {out / 'results' / 'report.md'}")
    print(f"simulated data: {out / 'data'} (rerun the analysis with: bayesmages run --gwas {out / 'data'}/gwas_T1.tsv "
          f"{out / 'data'}/gwas_T2.tsv --ld {out / 'data'}/ld --genes {out / 'data'}/genes.tsv --out DIR)")
    print(f"results written to {out} ({time.perf_counter() - started:.0f} s)")
    return 0


def _final_paths(results: Path, tmp: Path, final: Path) -> None:
    """Make the pipeline's run.json and report.md name the input files where they will be, not in ``tmp``.

    The demo is built under a temporary name and renamed at the end; the pipeline recorded the
    temporary paths of its inputs.
    """
    import json

    from bayesmages.io import write_json, write_text

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(str(tmp), str(final))
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    write_json(fix(json.loads((results / "run.json").read_text())), results / "run.json")
    write_text(fix((results / "report.md").read_text()), results / "report.md")
