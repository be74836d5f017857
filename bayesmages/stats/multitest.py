"""Multiple-testing corrections and p-value combination."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayesmages.errors import InputError

__all__ = ["bh", "cauchy", "cauchy_rows", "cauchy_statistic", "cauchy_terms"]


def cauchy(p: Sequence[float] | np.ndarray, weights: Sequence[float] | np.ndarray | None = None) -> float:
    """Cauchy combination (ACAT; Liu & Xie 2020) of p-values, valid under arbitrary dependence.

    ``T = sum_j w_j tan((1/2 - p_j) pi)`` with weights normalised to sum 1, and the p-value
    ``P(C > T) = atan2(1, T) / pi`` for a standard Cauchy C: the closed form of
    ``1/2 - atan(T) / pi`` without its cancellation, so it keeps relative accuracy for tiny
    p-values (where ``tan((1/2 - p) pi) = 1 / tan(p pi)`` is evaluated in that form). Under the
    null, with p-values uniform, the tail is exact for independent p-values and accurate in the
    tail under dependence (the paper's theorem).

    Parameters
    ----------
    p : array_like
        p-values in (0, 1]; values below 1e-300 are treated as 1e-300.
    weights : array_like, optional
        Non-negative weights, one per p-value (default equal).

    Returns
    -------
    float
        The combined p-value.

    Raises
    ------
    InputError
        Empty input, p outside [0, 1] or NaN, or weights of the wrong length, negative or all zero.

    Examples
    --------
    >>> round(cauchy([0.01, 0.01]), 6)
    0.01
    >>> round(cauchy([0.02, 0.5], weights=[1.0, 0.0]), 6)
    0.02
    """
    return float(np.arctan2(1.0, cauchy_statistic(p, weights)) / np.pi)


def cauchy_statistic(p: Sequence[float] | np.ndarray, weights: Sequence[float] | np.ndarray | None = None) -> float:
    """The Cauchy combination statistic ``T = sum_j w_j tan((1/2 - p_j) pi)`` (see :func:`cauchy`).

    Examples
    --------
    >>> round(cauchy_statistic([0.5, 0.25]), 6)
    0.5
    """
    pv = np.asarray(p, dtype=np.float64).ravel()
    if pv.size == 0 or not np.all((pv >= 0) & (pv <= 1)):
        raise InputError(f"cauchy: expected {pv.size or 'some'} p-value(s) in [0, 1] without NaN")
    w = np.full(pv.size, 1.0 / pv.size) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.size != pv.size or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InputError(f"cauchy: need {pv.size} non-negative weights with a positive sum")
    w = w / w.sum()
    return float(np.sum(w * cauchy_terms(pv)))


def cauchy_terms(p: np.ndarray) -> np.ndarray:
    """The Cauchy combination's terms ``tan((1/2 - p) pi)`` of p-values (elementwise; see :func:`cauchy`).

    Computed as ``1 / tan(p pi)``, without cancellation for tiny p; p below 1e-300 counts as 1e-300.

    Examples
    --------
    >>> np.round(cauchy_terms(np.array([0.5, 0.25])), 6).tolist()
    [0.0, 1.0]
    """
    return 1.0 / np.tan(np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1.0) * np.pi)


def cauchy_rows(p: np.ndarray) -> np.ndarray:
    """Equal-weight Cauchy combination (see :func:`cauchy`) of each row of a (G, k) array of p-values, vectorised.

    Examples
    --------
    >>> np.round(cauchy_rows(np.array([[0.01, 0.01], [0.02, 0.5]])), 6).tolist()
    [0.01, 0.039843]
    """
    pv = np.asarray(p, dtype=np.float64)
    if pv.ndim != 2 or pv.shape[1] == 0 or not np.all((pv >= 0) & (pv <= 1)):
        raise InputError(f"cauchy_rows: expected a (G, k) array of p-values in [0, 1] without NaN, got shape "
                         f"{pv.shape}")
    return np.arctan2(1.0, cauchy_terms(pv).mean(axis=1)) / np.pi


def bh(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (step-up FDR adjusted p-values).

    q_(i) = min_{j >= i} min(1, n p_(j) / j) over the sorted p-values; NaN entries are ignored
    (they stay NaN and do not count in n).

    Parameters
    ----------
    p : array_like
        p-values in [0, 1].

    Returns
    -------
    numpy.ndarray
        q-values in the input order; reject at FDR level a where ``q <= a``.

    Raises
    ------
    InputError
        Values outside [0, 1].

    Examples
    --------
    >>> bh([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    arr = np.asarray(p, dtype=np.float64)
    flat = arr.ravel()
    ok = ~np.isnan(flat)
    vals = flat[ok]
    if np.any((vals < 0) | (vals > 1)):
        raise InputError("p: p-values must lie in [0, 1]")
    out = np.full(flat.shape, np.nan)
    n = vals.size
    if n:
        order = np.argsort(vals, kind="stable")
        ranked = vals[order] * n / np.arange(1, n + 1)
        qs = np.minimum.accumulate(ranked[::-1])[::-1]
        res = np.empty(n)
        res[order] = np.minimum(qs, 1.0)
        out[ok] = res
    return out.reshape(arr.shape)
