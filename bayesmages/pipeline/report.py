"""``report.md`` of a pipeline run: the key tables and a link to every figure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from bayesmages.pipeline.inputs import PipelineInputs
    from bayesmages.pipeline.runner import PipelineResult

__all__ = ["markdown_table", "render_report"]

_NULL_TYPES = ("non-prioritised", "unclustered")
_FIGURE_TEXT = {
    "effects_by_cluster": "Shrunk effects coloured by cluster, with each cluster's 95% ellipse",
    "cluster_covariances": "Cluster covariance ellipses and weights",
    "gene_cluster_fractions": "Fraction of each gene's variants in each cluster",
    "gene_S_summary": "Gene S_g summaries (sums of effect products)",
    "elbo": "ELBO traces of the DP-mixture fits",
    "top_variants": "Posterior means and 90% intervals of the top variants",
}


_TEST_NOTES = {
    "conditional": "Test: LD-conditional (the gene's z-scores residualised on the outside signals the shrinker "
                   "keeps, against their exact null); p- and q-values are error rates (docs/genes.md).",
    "conditional+single": "Test: LD-conditional with its single-variant part (the gene's z-scores residualised on "
                          "the outside signals the shrinker keeps; their sum of squares, Wald form and one-variant "
                          "tests combined, each against its exact null); p- and q-values are error rates "
                          "(docs/genes.md).",
    "marginal": "Test: marginal LD-aware test on raw z-scores (z_g'z_g against eig(R_g)); it also calls genes "
                "that only tag a causal neighbour.",
    "epsilon": "Test: the ML-MAGES paper's epsilon test on shrunk effects; its p-values rank genes but are not "
               "error rates (docs/genes.md).",
}


def markdown_table(df: pd.DataFrame, *, digits: int = 4) -> str:
    """A DataFrame as a GitHub-flavoured markdown table (floats to ``digits`` significant digits).

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"GENE": ["A"], "p_value": [0.000123456]})))
    | GENE | p_value |
    | --- | --- |
    | A | 0.0001235 |
    """

    def cell(v: object) -> str:
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.{digits}g}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "| " + " | ".join("---" for _ in df.columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _shown_path(source: str, out: Path) -> str:
    """An input path as the report shows it: relative to the output folder when next to it, else as given.

    The demo writes its data beside ``results/`` inside a folder that is renamed at the end, so
    absolute paths would name the temporary folder.
    """
    path = Path(source)
    if not path.exists():
        return source  # "<DataFrame>" and the like
    rel = os.path.relpath(path.resolve(), Path(out).resolve())
    return rel if not rel.startswith(os.pardir + os.sep + os.pardir) else source


def _figure_line(path: str) -> str:
    stem = path.rsplit("/", 1)[-1].removesuffix(".png")
    text = _FIGURE_TEXT.get(stem)
    if text is None and stem.startswith("gene_pvalues_"):
        text = f"-log10 p per gene with the FDR line, {stem.removeprefix('gene_pvalues_')}"
    return f"![{text or stem}]({path})\n\n*{text or stem}* ([{path}]({path}))\n"


def _figures(result: PipelineResult, *stems: str) -> list[str]:
    return [_figure_line(f) for f in result.figures if f.rsplit("/", 1)[-1].removesuffix(".png") in stems]


def render_report(
    result: PipelineResult, inputs: PipelineInputs, folder: Path, *, fdr: float = 0.05, top: int = 10
) -> str:
    """Markdown report: inputs, steps, gene tests, clusters, gene summaries, diagnostics, every figure.

    Parameters
    ----------
    result : PipelineResult
        The run (``result.figures`` lists the figures to link).
    inputs : PipelineInputs
        The validated inputs.
    folder : pathlib.Path
        Where the step folders are (the output folder, or its temporary twin during a first run).
    fdr : float
        FDR level used for the counts of significant genes.
    top : int
        Rows of the top-gene tables.

    Returns
    -------
    str
    """
    meta = result.metadata
    out = ["# bayesmages run", ""]
    out.append(f"bayesmages {meta.get('bayesmages_version', '')}, seed {meta.get('arguments', {}).get('seed')}. "
               "Tables are in the step folders listed at the end; `run.json` holds the arguments, seeds and "
               "timings.")
    out += ["", "## Inputs", ""]
    rows = [{"input": f"GWAS {t}", "source": _shown_path(inputs.sources[f"gwas:{t}"], result.out)}
            for t in inputs.traits]
    rows.append({"input": "LD blocks", "source": f"{len(inputs.blocks)} blocks ({inputs.n_variants} variants)"})
    rows.append({"input": "genes", "source": f"{_shown_path(inputs.sources['genes'], result.out)} "
                                             f"({len(inputs.genes)} genes, "
                                             f"{len(inputs.unmapped_genes)} without variants in the data)"})
    out.append(markdown_table(pd.DataFrame(rows)))
    if inputs.harmonisation is not None:
        out += ["", "## Harmonisation with the reference panel", "",
                "Every GWAS row is used or dropped with one reason; `harmonisation/dropped_<trait>.csv` lists the "
                "dropped ones, `harmonisation/report.json` the counts.", ""]
        hrows = []
        for t, rep in inputs.harmonisation.reports.items():
            hrows.append({"trait": t, "GWAS rows": rep["n_input"], "used": rep["n_used"],
                          "swapped": rep["n_swapped"], "strand-flipped": rep["n_strand_flipped"],
                          "dropped": rep["n_dropped"],
                          "drop reasons": ", ".join(f"{k} {v}" for k, v in rep["dropped"].items() if v) or "none"})
        out.append(markdown_table(pd.DataFrame(hrows)))
    out += ["", "## Steps", ""]
    out.append(markdown_table(pd.DataFrame([{"step": r.name, "seconds": r.seconds,
                                             "status": "reused" if r.reused else "computed"} for r in result.steps])))

    out += ["", "## Gene-level tests (one trait at a time)", ""]
    for t in result.traits:
        res = result.enrichment[t]
        n_sig = int((res["q_value"] <= fdr).sum())
        test = str(res["test"].iloc[0]) if "test" in res and len(res) else str(res.attrs.get("test"))
        out += [f"### {t}", "", f"{len(res)} genes tested; {n_sig} with BH q <= {fdr:g}. {_TEST_NOTES.get(test, '')}"]
        if test == "epsilon":
            out[-1] += (f" Null variance epsilon = {res.attrs.get('null_variance'):.4g} "
                        f"({res.attrs.get('null_variance_rule')}).")
        out.append("")
        out.append(markdown_table(res.sort_values("p_value", kind="stable").head(top)))
        out += ["", *_figures(result, f"gene_pvalues_{t}"), ""]

    out += ["## Clusters", ""]
    for label, fit in result.clusters.items():
        title = "multi-trait" if label == "multi" else f"trait {label}"
        out += [f"**{title}** ({len(fit.clusters)} clusters kept):", ""]
        out.append(markdown_table(fit.clusters[["cluster", "weight", "trace", "category"]]))
        out.append("")
    out += [*_figures(result, "effects_by_cluster", "cluster_covariances"), ""]

    out += ["## Multi-trait gene summaries", ""]
    scores = result.genes["gene_type_scores"]
    signal = scores[~scores["type"].isin(_NULL_TYPES) & (scores["abs_total"] > 0)]
    if signal.empty:
        out.append("No gene has variants in a prioritised (non-null) cluster.")
    for kind, group in signal.groupby("type", sort=True):
        out += ["", f"Top genes for **{kind}** (expected sum of |shrunk effect| over the gene's variants of this "
                    "type, from the per-variant association-type probabilities `p_<type>` of "
                    "`cluster_multi/variants.csv`, which give the type of the signal a variant carries, LD tags "
                    "included, not whether it is causal; `sd_total`: its sd):", ""]
        out.append(markdown_table(group.sort_values("abs_total", ascending=False, kind="stable").head(top)))
    out += ["", *_figures(result, "gene_cluster_fractions", "gene_S_summary"), ""]

    out += ["## Diagnostics", ""]
    notes = [f"- {r.name}: {n}" for r in result.steps for key in ("convergence_notes", "notes", "pruning_notes")
             for n in r.info.get(key, [])]
    out += (notes or ["No convergence warnings."]) + [""]
    out += [*_figures(result, "elbo", "top_variants"), ""]

    out += ["## Files", ""]
    out += [f"- `{r.name}/`: " + ", ".join(f"`{f.name}`" for f in sorted((folder / r.name).glob("*.csv")))
            for r in result.steps]
    if inputs.harmonisation is not None:
        out.append("- `harmonisation/`: `report.json`, " + ", ".join(f"`dropped_{t}.csv`" for t in result.traits))
    out += ["- `figures/`: " + ", ".join(f"[{f.rsplit('/', 1)[-1]}]({f})" for f in result.figures),
            "- `run.json`: version, arguments, seeds, input hashes, per-step timings", ""]
    return "\n".join(out)
