"""The pipeline's gene-level steps: single-trait gene tests (``enrich_<trait>/``) and gene summaries (``genes/``).

How steps are keyed, landed and reused: :mod:`bayesmages.pipeline.steps`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.pipeline.inputs import PipelineInputs
from bayesmages.pipeline.steps import ClusterOutput, _read

__all__ = ["GENE_TABLES", "enrich_trait", "gene_summaries", "gene_tests", "read_enrichment", "read_gene_tables"]


# ----------------------------------------------------------------------------------------- enrich
def gene_tests(inputs: PipelineInputs, rows: Mapping[str, pd.DataFrame], *, test: str = "conditional",
               workers: int, scheduler: Any = None, ld: Any = None) -> dict[str, pd.DataFrame]:
    """Any gene test but the epsilon test, of several traits computed together (one map of work units).

    :func:`bayesmages.genes.enrichment.test_traits` on each trait's shrinkage rows (``rows``: trait ->
    its rows, in data order): the genes are mapped once, and each unit is a chunk of genes x all traits;
    each trait's table equals the one it gets alone. Land each with ``enrich_trait(..., result=)``.
    The epsilon test is not batched here: it needs each trait's clustering first.
    """
    from bayesmages.genes import enrichment

    if test == "epsilon":
        raise ValueError("gene_tests: the epsilon test takes each trait's clustering; use enrich_trait")
    if not rows:
        return {}
    variants = inputs.variants if {"CHR", "POS"} <= set(inputs.variants) else None
    blocks = inputs.blocks if ld is None else (ld() if callable(ld) else ld)
    cols = {c: {t: r[c].to_numpy(np.float64) for t, r in rows.items()} for c in ("beta_shrunk", "beta_hat", "se")}
    return enrichment.test_traits(cols["beta_shrunk"], blocks, inputs.genes, beta_hat=cols["beta_hat"], se=cols["se"],
                                  method=test, variants=variants, workers=workers, scheduler=scheduler)


def enrich_trait(folder: Path, inputs: PipelineInputs, shrunk: pd.DataFrame, clusters: ClusterOutput, *,
                 test: str = "conditional", workers: int, scheduler: Any = None, ld: Any = None,
                 result: pd.DataFrame | None = None) -> dict[str, Any]:
    """Single-trait gene test on one trait's shrinkage rows; writes ``gene_enrichment.csv``.

    ``test="epsilon"`` takes epsilon from the trait's clustering; the other tests do not use it. ``ld``
    (default ``inputs.blocks``) may be the :class:`~bayesmages.io.ldrefs.LDRefs` of the same blocks (or a
    function returning them, from :func:`unit_ld`), which the workers open themselves. ``result``: the
    trait's table already computed by :func:`gene_tests` (then only written here).
    """
    from bayesmages.genes import enrichment
    from bayesmages.io import write_table

    notes: list[str] = []
    if result is not None:
        res = result
    elif test == "epsilon":
        variants = inputs.variants if {"CHR", "POS"} <= set(inputs.variants) else None
        beta = shrunk["beta_shrunk"].to_numpy(np.float64)
        fit = SimpleNamespace(weights_=clusters.weights, covariances_=clusters.covariances)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            eps, _ = enrichment.null_variance_from_fit(fit)
        notes = [str(w.message) for w in caught]
        res = enrichment.test(beta, inputs.blocks if ld is None else (ld() if callable(ld) else ld), inputs.genes,
                              null_variance=eps, variants=variants, workers=workers, scheduler=scheduler)
    else:
        res = gene_tests(inputs, {"": shrunk}, test=test, workers=workers, scheduler=scheduler, ld=ld)[""]
    write_table(res, folder / "gene_enrichment.csv")
    return {"test": test, "null_variance": res.attrs["null_variance"],
            "null_variance_rule": res.attrs["null_variance_rule"], "notes": notes, "genes_tested": len(res),
            **({"units": res.attrs["units"]} if "units" in res.attrs else {})}


def read_enrichment(folder: Path) -> pd.DataFrame:
    """The gene table of a finished enrichment step."""
    df = _read(folder / "gene_enrichment.csv")
    df["GENE"] = df["GENE"].astype(str)
    return df


# ------------------------------------------------------------------------------------------ genes
GENE_TABLES = ("gene_cluster_fractions", "gene_effect_products", "gene_S", "gene_type_scores")


def gene_summaries(folder: Path, inputs: PipelineInputs, effects: pd.DataFrame,
                   clusters: ClusterOutput) -> dict[str, Any]:
    """Multi-trait gene summaries (:func:`bayesmages.genes.multitrait.summarize`); writes four tables."""
    from bayesmages.genes.multitrait import summarize
    from bayesmages.io import write_table

    variants = inputs.variants if {"CHR", "POS"} <= set(inputs.variants) else None
    out = summarize(effects.reset_index(drop=True), inputs.genes, clusters.labels, clusters.categories,
                    variants=variants, type_probabilities=clusters.type_probabilities)
    for name, table in zip(GENE_TABLES, (out.fractions, out.products, out.S, out.type_scores)):
        write_table(table, folder / f"{name}.csv")
    return {"genes": len(out.fractions), "categories": out.categories}


def read_gene_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """The four tables of a finished gene-summary step, by name."""
    tables = {name: _read(folder / f"{name}.csv") for name in GENE_TABLES}
    for df in tables.values():
        df["GENE"] = df["GENE"].astype(str)
    return tables
