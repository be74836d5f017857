"""Multiple-testing corrections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayesmages.errors import InputError

__all__ = ["bh"]


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
