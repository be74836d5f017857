"""Figures for gene-level results (return matplotlib Figures; callers save them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayesmages.errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_cluster_fractions", "plot_gene_pvalues", "plot_s_summary"]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_gene_pvalues(result: pd.DataFrame, *, fdr: float = 0.05, max_labels: int = 15) -> Figure:
    """-log10 p per gene (in table order) with the BH FDR line and labels of the significant genes.

    The FDR line is at the largest p-value with ``q_value <= fdr`` (the BH rejection threshold);
    when no gene passes, at the first BH step ``fdr / n``.

    Parameters
    ----------
    result : pandas.DataFrame
        Output of :func:`bayesmages.genes.enrichment.test` (``GENE, p_value, q_value``).
    fdr : float
        FDR level.
    max_labels : int
        Label at most this many significant genes (smallest p first).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> res = pd.DataFrame({"GENE": ["A", "B"], "p_value": [1e-8, 0.4], "q_value": [2e-8, 0.4]})
    >>> fig = plot_gene_pvalues(res)
    """
    if not {"GENE", "p_value", "q_value"} <= set(result.columns):
        raise InputError("result: expected the columns GENE, p_value, q_value (genes.enrichment.test output)")
    p = np.clip(result["p_value"].to_numpy(np.float64), 1e-300, 1.0)
    qv = result["q_value"].to_numpy(np.float64)
    y = -np.log10(p)
    x = np.arange(p.size)
    sig = qv <= fdr
    fig = _figure(max(6.0, min(16.0, 0.05 * p.size + 5)), 4.0)
    ax = fig.add_subplot()
    ax.scatter(x[~sig], y[~sig], s=10, color="0.5", label="not significant")
    ax.scatter(x[sig], y[sig], s=14, color="C3", label=f"q <= {fdr:g}")
    thr = p[sig].max() if sig.any() else fdr / max(p.size, 1)
    ax.axhline(-np.log10(thr), color="C3", lw=1, ls="--", label=f"BH FDR {fdr:g}")
    for i in np.flatnonzero(sig)[np.argsort(p[sig])][:max_labels]:
        ax.annotate(str(result["GENE"].iloc[i]), (x[i], y[i]), xytext=(3, 3), textcoords="offset points", fontsize=7)
    ax.set_xlabel("gene (table order)")
    ax.set_ylabel("-log10 p")
    tests = sorted(set(result["test"].astype(str))) if "test" in result.columns else []
    ax.set_title("Gene-level test" + (f" ({', '.join(tests)})" if tests else ""))
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return fig


def plot_cluster_fractions(
    fractions: pd.DataFrame, *, max_genes: int = 60, categories: Sequence[str] | None = None
) -> Figure:
    """Heatmap of gene x cluster variant fractions (genes with the most non-null mass first).

    Parameters
    ----------
    fractions : pandas.DataFrame
        ``GeneSummary.fractions`` (``GENE`` and ``cluster_<k>`` columns, optionally ``unclustered``).
    max_genes : int
        Show at most this many genes.
    categories : sequence of str, optional
        Cluster categories for the column labels (default ``fractions.attrs["categories"]``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fr = pd.DataFrame({"GENE": ["A", "B"], "cluster_0": [0.5, 0.0], "cluster_1": [0.5, 1.0]})
    >>> fig = plot_cluster_fractions(fr)
    """
    cols = [c for c in fractions.columns if str(c).startswith("cluster_")]
    if "GENE" not in fractions.columns or not cols:
        raise InputError("fractions: expected GENE and cluster_<k> columns (GeneSummary.fractions)")
    cats = list(categories if categories is not None else fractions.attrs.get("categories", cols))
    if "unclustered" in fractions.columns:
        cols = [*cols, "unclustered"]
        cats = [*cats[: len(cols) - 1], "unclustered"]
    mat = fractions[cols].to_numpy(np.float64)
    null_cols = [i for i, c in enumerate(cats) if c in ("non-prioritised", "unclustered")]
    signal = mat.sum(axis=1) - mat[:, null_cols].sum(axis=1)
    order = np.argsort(-signal, kind="stable")[:max_genes]
    fig = _figure(max(4.0, 0.6 * len(cols) + 3), max(3.0, 0.18 * order.size + 1.5))
    ax = fig.add_subplot()
    im = ax.imshow(mat[order], aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks(np.arange(order.size), fractions["GENE"].astype(str).to_numpy()[order], fontsize=7)
    ax.set_xticks(np.arange(len(cols)), [f"{k}: {c}" if c != "unclustered" else c for k, c in enumerate(cats)],
                  rotation=45, ha="right", fontsize=7)
    fig.colorbar(im, ax=ax, label="fraction of the gene's variants")
    ax.set_title("Cluster fractions per gene")
    return fig


def plot_s_summary(
    S_array: np.ndarray, genes: Sequence[str], traits: Sequence[str], *, max_genes: int = 40
) -> Figure:
    """S_g summary: heatmap of the entries (i <= j) of each gene's S_g, genes with the largest trace first.

    Parameters
    ----------
    S_array : numpy.ndarray
        (n_genes, p, p) from ``GeneSummary.S_array``.
    genes : sequence of str
        Gene names (n_genes).
    traits : sequence of str
        Trait names (p).
    max_genes : int
        Show at most this many genes.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_s_summary(np.array([[[1.0, -0.5], [-0.5, 2.0]]]), ["A"], ["T1", "T2"])
    """
    S = np.asarray(S_array, dtype=np.float64)
    if S.ndim != 3 or S.shape[1] != S.shape[2] or S.shape[0] != len(genes) or S.shape[1] != len(traits):
        raise InputError(f"S_array: expected shape (n_genes, p, p) matching genes and traits, got {S.shape}")
    iu, ju = np.triu_indices(S.shape[1])
    entries = S[:, iu, ju]
    order = np.argsort(-np.trace(S, axis1=1, axis2=2), kind="stable")[:max_genes]
    lim = float(np.abs(entries[order]).max()) or 1.0
    fig = _figure(max(4.0, 0.7 * iu.size + 3), max(3.0, 0.18 * order.size + 1.5))
    ax = fig.add_subplot()
    im = ax.imshow(entries[order], aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_yticks(np.arange(order.size), np.asarray(genes, dtype=str)[order], fontsize=7)
    ax.set_xticks(np.arange(iu.size), [f"{traits[int(i)]} x {traits[int(j)]}" for i, j in zip(iu, ju)], rotation=45,
                  ha="right", fontsize=7)
    fig.colorbar(im, ax=ax, label="S_g entry (sum of effect products / |g|)")
    ax.set_title("Gene S_g summary")
    return fig
