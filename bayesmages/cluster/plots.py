"""Figures of a fitted DP mixture (matplotlib; functions return Figures, callers save them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bayesmages.errors import InputError

__all__ = ["plot_clusters"]

# chi-square(2) 95% quantile: the 95% ellipse of a bivariate normal is x^T Sigma^{-1} x = 5.991
_CHI2_2_95 = 5.991464547107979


def _ellipse(ax: Any, cov: np.ndarray, color: Any) -> None:
    from matplotlib.patches import Ellipse

    lam, vec = np.linalg.eigh(cov)
    lam = np.clip(lam, 0.0, None)
    angle = math.degrees(math.atan2(vec[1, -1], vec[0, -1]))
    ax.add_patch(Ellipse((0.0, 0.0), 2 * math.sqrt(_CHI2_2_95 * lam[-1]), 2 * math.sqrt(_CHI2_2_95 * lam[0]),
                         angle=angle, fill=False, color=color, lw=1.5))


def plot_clusters(
    X: np.ndarray,
    labels: np.ndarray,
    covariances: np.ndarray,
    *,
    categories: Sequence[str] | None = None,
    trait_names: Sequence[str] | None = None,
    max_points: int = 20000,
    seed: int = 0,
) -> Any:
    """Effects coloured by cluster with each cluster's 95% ellipse.

    One trait: stacked histograms by cluster. Two traits: one scatter. More: pairwise panels
    (the ellipse of each panel is the 2 x 2 marginal covariance).

    Parameters
    ----------
    X : numpy.ndarray
        (N, p) effects.
    labels : numpy.ndarray
        (N,) cluster labels in ``0 .. K-1``.
    covariances : numpy.ndarray
        (K, p, p) cluster covariances.
    categories : sequence of str, optional
        Legend text per cluster.
    trait_names : sequence of str, optional
        Axis labels.
    max_points : int
        Plot at most this many points (a seeded random subset), so figures stay light.
    seed : int
        Seed of the subset.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> fig = plot_clusters(X, np.zeros(50, dtype=int), np.eye(2)[None])  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    labels = np.asarray(labels)
    covs = np.asarray(covariances, dtype=float)
    N, p = X.shape
    if labels.shape != (N,) or covs.ndim != 3 or covs.shape[1:] != (p, p):
        raise InputError(f"plot_clusters: X {X.shape}, labels {labels.shape} and covariances {covs.shape} disagree")
    K = covs.shape[0]
    names = list(trait_names) if trait_names is not None else [f"trait{t + 1}" for t in range(p)]
    legend = [f"{k}: {categories[k]}" if categories is not None else f"cluster {k}" for k in range(K)]
    colors = plt.get_cmap("tab10" if K <= 10 else "tab20")(np.arange(K) % 20)
    idx = np.arange(N)
    if N > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(N, max_points, replace=False))
    Xs, ls = X[idx], labels[idx]
    if p == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        groups = [Xs[ls == k, 0] for k in range(K)]
        # matplotlib's stub omits the (K, 4) RGBA array that hist accepts for K stacked groups
        ax.hist(groups, bins=60, stacked=True, color=colors[:K], label=legend)  # type: ignore[arg-type]
        ax.set_xlabel(names[0])
        ax.set_ylabel("variants")
        ax.legend(fontsize="small")
        fig.tight_layout()
        return fig
    pairs = [(a, b) for b in range(p) for a in range(b)]
    ncol = min(3, len(pairs))
    nrow = math.ceil(len(pairs) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol + (1.5 if p == 2 else 0), 4 * nrow), squeeze=False)
    for ax, (a, b) in zip(axes.ravel(), pairs):
        for k in range(K):
            sel = ls == k
            ax.scatter(Xs[sel, a], Xs[sel, b], s=4, alpha=0.5, color=colors[k], label=legend[k], rasterized=True)
            _ellipse(ax, covs[k][np.ix_([a, b], [a, b])], colors[k])
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel(names[a])
        ax.set_ylabel(names[b])
    for ax in axes.ravel()[len(pairs):]:
        ax.set_visible(False)
    handles, texts = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="center right" if p == 2 else "lower center", fontsize="small",
               markerscale=3, ncol=1 if p == 2 else min(K, 4))
    fig.tight_layout(rect=(0, 0, 0.78, 1) if p == 2 else (0, 0.08, 1, 1))
    return fig
