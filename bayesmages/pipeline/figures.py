"""The pipeline's figures: the existing plot functions plus the two the pipeline adds.

Added here: :func:`plot_cluster_covariances` (each cluster's 95% ellipse and its weight) and
:func:`plot_top_variants` (shrunk effects of the top variants with their intervals). The rest come
from :mod:`bayesmages.cluster.plots`, :mod:`bayesmages.genes.plots` and
:func:`bayesmages.diagnostics.plot_elbo`; :func:`write_figures` renders them all for a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayesmages.pipeline.runner import PipelineResult

__all__ = ["plot_cluster_covariances", "plot_top_variants", "write_figures"]

_DPI = 110


def _colors(k: int) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["tab10" if k <= 10 else "tab20"](np.arange(k) % 20)


def plot_cluster_covariances(
    covariances: np.ndarray,
    weights: np.ndarray,
    *,
    categories: Sequence[str] | None = None,
    trait_names: Sequence[str] | None = None,
) -> Figure:
    """Each cluster's 95% covariance ellipse (line width grows with its weight) and a bar chart of the weights.

    Two or more traits: one panel of ellipses per trait pair (the 2 x 2 marginal covariance). One
    trait: the cluster standard deviations as bars. The last panel shows the weights, annotated
    with each cluster's standard deviation scale ``sqrt(trace)``.

    Parameters
    ----------
    covariances : numpy.ndarray
        (K, p, p) cluster covariances.
    weights : numpy.ndarray
        (K,) cluster weights.
    categories : sequence of str, optional
        Category per cluster (legend text).
    trait_names : sequence of str, optional
        Trait names (axis labels).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_cluster_covariances(np.array([np.eye(2), 0.1 * np.eye(2)]), np.array([0.2, 0.8]))
    """
    from matplotlib.figure import Figure

    from bayesmages.cluster.plots import _ellipse

    cov = np.asarray(covariances, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if cov.ndim != 3 or cov.shape[1] != cov.shape[2] or w.shape != (cov.shape[0],) or cov.shape[0] == 0:
        raise InputError(f"covariances {cov.shape} and weights {w.shape}: expected (K, p, p) and (K,)")
    k, p = cov.shape[:2]
    names = list(trait_names) if trait_names is not None else [f"trait{t + 1}" for t in range(p)]
    legend = [f"{i}: {categories[i] if categories is not None else 'cluster'}" for i in range(k)]
    colors = _colors(k)
    pairs = [(a, b) for b in range(p) for a in range(b)]
    n_panels = max(1, len(pairs)) + 1
    fig = Figure(figsize=(4.2 * n_panels, 4.0), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    lw = 0.8 + 4.0 * w / w.max()
    if p == 1:
        axes[0].bar(np.arange(k), np.sqrt(cov[:, 0, 0]), color=colors)
        axes[0].set_xticks(np.arange(k), [str(i) for i in range(k)])
        axes[0].set_yscale("log")
        axes[0].set_xlabel("cluster")
        axes[0].set_ylabel(f"sd of {names[0]} effects")
        axes[0].set_title("Cluster standard deviations")
    for ax, (a, b) in zip(axes, pairs):
        for i in range(k):
            _ellipse(ax, cov[i][np.ix_([a, b], [a, b])], colors[i])
            ax.patches[-1].set_linewidth(lw[i])
            ax.patches[-1].set_label(f"{legend[i]} (w={w[i]:.3f})")
        lim = 1.1 * math.sqrt(5.991464547107979 * max(np.linalg.eigvalsh(c[np.ix_([a, b], [a, b])])[-1]
                                                      for c in cov))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_xlabel(names[a])
        ax.set_ylabel(names[b])
        ax.set_title("95% ellipses (width ~ weight)")
    if pairs:
        axes[0].legend(fontsize=7, loc="upper left", frameon=False)
    bar_ax = axes[-1]
    bar_ax.barh(np.arange(k), w, color=colors)
    scale = np.sqrt(np.trace(cov, axis1=1, axis2=2))
    for i in range(k):
        bar_ax.annotate(f"sd {scale[i]:.2g}", (w[i], i), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7)
    bar_ax.set_yticks(np.arange(k), legend, fontsize=7)
    bar_ax.invert_yaxis()
    bar_ax.set_xlim(0, min(1.0, 1.35 * w.max()))
    bar_ax.set_xlabel("weight")
    bar_ax.set_title("Cluster weights")
    return fig


def plot_top_variants(shrinkage: pd.DataFrame, *, n_top: int = 20, traits: Sequence[str] | None = None) -> Figure:
    """Shrunk effects of each trait's top variants (largest ``|beta_shrunk|``) with their 90% intervals.

    Hollow markers are the observed GWAS effects ``beta_hat``, so the shrinkage is visible.

    Parameters
    ----------
    shrinkage : pandas.DataFrame
        Long shrinkage table (``SNP, trait, beta_hat, beta_shrunk, sd, lower, upper``).
    n_top : int
        Variants per trait.
    traits : sequence of str, optional
        Traits to show (default: all, in table order).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> tab = pd.DataFrame({"SNP": ["a", "b"], "trait": "T1", "beta_hat": [0.1, 0.0], "beta_shrunk": [0.08, 0.0],
    ...                     "sd": [0.01, 0.01], "lower": [0.06, -0.02], "upper": [0.1, 0.02]})
    >>> fig = plot_top_variants(tab)
    """
    from matplotlib.figure import Figure

    need = {"SNP", "trait", "beta_hat", "beta_shrunk", "sd", "lower", "upper"}
    if not need <= set(shrinkage.columns):
        raise InputError(f"shrinkage: expected the columns {sorted(need)} (bayesmages.shrink.shrink output)")
    names = list(traits) if traits is not None else list(dict.fromkeys(shrinkage["trait"].astype(str)))
    fig = Figure(figsize=(4.6 * len(names), max(3.0, 0.22 * n_top + 1.5)), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, t in zip(axes, names):
        tab = shrinkage[shrinkage["trait"].astype(str) == t]
        top = tab.iloc[np.argsort(-np.abs(tab["beta_shrunk"].to_numpy(np.float64)), kind="stable")[:n_top]]
        y = np.arange(len(top))
        mean = top["beta_shrunk"].to_numpy(np.float64)
        # The interval is drawn as a segment, not as +- errors around the mean: it is LD-conditional,
        # centred at c_j rather than at beta_shrunk (bayesmages/shrink/intervals.py).
        lo, hi = top["lower"].to_numpy(np.float64), top["upper"].to_numpy(np.float64)
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.hlines(y[ok], lo[ok], hi[ok], color="C0", lw=1.2)
        ax.plot(mean, y, "o", ms=4, color="C0", label="beta_shrunk, 90% interval")
        ax.scatter(top["beta_hat"], y, facecolors="none", edgecolors="C3", s=22, label="beta_hat (GWAS)")
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_yticks(y, top["SNP"].astype(str).tolist(), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("effect")
        ax.set_title(f"{t}: top {len(top)} variants")
    axes[0].legend(fontsize=7, loc="best")
    return fig


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=_DPI)
    plt.close(fig)  # figures from pyplot-based helpers stay registered otherwise
    return path.name


def write_figures(folder: Path, result: PipelineResult, *, fdr: float = 0.05, seed: int = 0) -> list[str]:
    """Render every pipeline figure into ``folder``; returns the file names in report order.

    Parameters
    ----------
    folder : pathlib.Path
        An existing folder.
    result : PipelineResult
        The run's tables.
    fdr : float
        FDR line of the gene p-value figures.
    seed : int
        Seed of the point subsets of large scatter plots.

    Returns
    -------
    list of str
    """
    from matplotlib.figure import Figure

    from bayesmages.cluster.plots import plot_clusters
    from bayesmages.diagnostics import plot_elbo
    from bayesmages.genes.plots import plot_cluster_fractions, plot_gene_pvalues, plot_s_summary

    effects = result.effects()
    names = []
    fits = list(result.clusters.items())
    main = result.clusters.get("multi", result.clusters[result.traits[0]])
    rows = main.selected
    names.append(_save(plot_clusters(effects[main.traits].to_numpy()[rows], main.labels[rows], main.covariances,
                                     categories=main.categories, trait_names=main.traits, seed=seed),
                       folder / "effects_by_cluster.png"))
    names.append(_save(plot_cluster_covariances(main.covariances, main.weights, categories=main.categories,
                                                trait_names=main.traits), folder / "cluster_covariances.png"))
    for t in result.traits:
        names.append(_save(plot_gene_pvalues(result.enrichment[t], fdr=fdr), folder / f"gene_pvalues_{t}.png"))
    fractions = result.genes["gene_cluster_fractions"]
    names.append(_save(plot_cluster_fractions(fractions, categories=main.categories),
                       folder / "gene_cluster_fractions.png"))
    S = result.genes["gene_S"]
    gene_names = fractions["GENE"].astype(str).tolist()
    p = len(main.traits)
    # gene_S is written gene by gene, each gene's p x p matrix row-major (GeneSummary.S).
    S_array = S["S"].to_numpy(np.float64).reshape(len(gene_names), p, p)
    names.append(_save(plot_s_summary(S_array, gene_names, main.traits), folder / "gene_S_summary.png"))
    elbo_fig = Figure(figsize=(4.5 * len(fits), 3.4))
    for ax, (label, fit) in zip(elbo_fig.subplots(1, len(fits), squeeze=False)[0], fits):
        plot_elbo(fit.elbo, ax=ax, skip=fit.elbo.size // 20, title=f"dp_mixture: {label}")
    names.append(_save(elbo_fig, folder / "elbo.png"))
    names.append(_save(plot_top_variants(result.shrinkage, traits=result.traits), folder / "top_variants.png"))
    return names
