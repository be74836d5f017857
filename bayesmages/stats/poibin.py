"""The Poisson-binomial pmf: the number of successes among independent Bernoulli(p_i).

:func:`pmf` chooses between two algorithms:

* the direct recursion (one Bernoulli factor at a time, O(n k) for entries 0..k), whose entries
  each carry a *relative* rounding error of about n machine epsilons;
* divide and conquer (:func:`pmf_fft`): the factors' pmfs of blocks of 64 Bernoullis by the direct
  recursion (all blocks at once), then merged pairwise by FFT products, O(n log^2 n). Its error is
  *absolute* (the merge of two pmfs ``a * b`` by FFT errs by ~eps ||a||_2 ||b||_2 per entry, and
  pmfs have norm <= 1): against the direct recursion at most 9e-15 per entry at n = 100,000
  (4e-15 at 20,000; about 2e-13 of the largest entry), so entries far below 1e-14 (the far tails)
  come out as rounding noise, clipped at 0.

Where the values used are far from 0 (the ER law of :mod:`bayesmages.skat.er` reads the pmf
near its mode: with an intercept in the logistic null the observed case count is the fitted mean),
the absolute error is what matters, and the FFT makes a 100,000-sample pmf take milliseconds
instead of the direct recursion's minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmages.stats._compiled import load_compiled

__all__ = ["FFT_MIN_WORK", "pmf", "pmf_direct", "pmf_fft"]

FFT_MIN_WORK = 100_000_000  # n * (k + 1) above which :func:`pmf` uses the FFT (direct: ~0.1 s CPU at 1e8)
_BLOCK = 64  # Bernoullis per leaf of the divide and conquer (direct recursion, vectorised over leaves)


def pmf_direct(p: np.ndarray, k_max: int | None = None) -> np.ndarray:
    """Poisson-binomial pmf (p.size + 1,) by the direct recursion; entries above ``k_max`` left at 0.

    Entry j needs only entries <= j, so the computed entries are exact whatever ``k_max``:
    O(n k_max) instead of O(n^2) when few successes matter. Runs compiled
    (:mod:`bayesmages.stats._poibin_jit`: the same operations, with intermediate entries below the
    smallest normal double flushed to 0) where numba can be imported, else in the interpreter.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    top = p.size if k_max is None else min(p.size, max(int(k_max), 0))
    compiled = _compiled()
    if compiled is not None:
        return compiled(np.ascontiguousarray(p), top)
    out = np.zeros(p.size + 1)
    out[0] = 1.0
    for i, pi in enumerate(p.tolist()):
        j = min(i + 1, top)
        out[1 : j + 1] = out[1 : j + 1] * (1.0 - pi) + out[:j] * pi
        out[0] *= 1.0 - pi
    return out


# The compiled kernel (bayesmages.stats._poibin_jit), imported on first use: None until then,
# False where numba cannot be imported (the interpreter's loop is then used).
_COMPILED: Any = None


def _kernels() -> Any:
    """The compiled module, or None where numba is not importable."""
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = load_compiled("bayesmages.stats._poibin_jit")
    return _COMPILED or None


def _compiled() -> Any:
    kernels = _kernels()
    return None if kernels is None else kernels.pmf_direct_compiled


def _compiled_leaves() -> Any:
    kernels = _kernels()
    return None if kernels is None else kernels.leaves_compiled


def _leaves(p: np.ndarray) -> np.ndarray:
    """(n_blocks, _BLOCK + 1) pmfs of consecutive blocks of ``_BLOCK`` Bernoullis (zero-padded)."""
    nb = -(-p.size // _BLOCK)
    P = np.zeros((nb, _BLOCK))
    P.ravel()[: p.size] = p  # padding with p = 0: a point mass at 0, the identity of convolution
    compiled = _compiled_leaves()
    if compiled is not None:
        return compiled(P)
    out = np.zeros((nb, _BLOCK + 1))
    out[:, 0] = 1.0
    for i in range(_BLOCK):
        pi = P[:, i : i + 1]
        out[:, 1 : i + 2] = out[:, 1 : i + 2] * (1.0 - pi) + out[:, : i + 1] * pi
        out[:, 0] *= 1.0 - P[:, i]
    return out


def pmf_fft(p: np.ndarray, k_max: int | None = None) -> np.ndarray:
    """Poisson-binomial pmf (p.size + 1,) by divide and conquer with FFT products (module docstring).

    Entries above ``k_max`` are 0 (each merge keeps entries 0..k_max only, which are exact: entry j
    of a product needs entries <= j of its factors). Absolute error below 1e-14 per entry up to
    n = 100,000 (module docstring).
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    n = p.size
    top = n if k_max is None else min(n, max(int(k_max), 0))
    if n == 0:
        return np.ones(1)
    polys = _leaves(p)[:, : top + 1]
    while polys.shape[0] > 1:
        if polys.shape[0] % 2:
            pad = np.zeros((1, polys.shape[1]))
            pad[0, 0] = 1.0
            polys = np.vstack([polys, pad])
        length = 2 * polys.shape[1] - 1
        nfft = 1 << (length - 1).bit_length()
        F = np.fft.rfft(polys, nfft, axis=1)
        polys = np.fft.irfft(F[0::2] * F[1::2], nfft, axis=1)[:, : min(length, top + 1)]
    out = np.zeros(n + 1)
    res = np.maximum(polys[0], 0.0)
    out[: res.size] = res
    return out


def pmf(p: np.ndarray, k_max: int | None = None) -> np.ndarray:
    """Poisson-binomial pmf (p.size + 1,) of Bernoulli(p_i) successes, entries above ``k_max`` left at 0.

    The direct recursion (relative accuracy) while n (k_max + 1) <= :data:`FFT_MIN_WORK`, else
    :func:`pmf_fft` (absolute error below 1e-14 per entry up to n = 100,000, O(n log^2 n) time).

    Parameters
    ----------
    p : numpy.ndarray
        (n,) success probabilities in [0, 1].
    k_max : int, optional
        Largest number of successes needed (default n).

    Returns
    -------
    numpy.ndarray
        (n + 1,) probabilities of 0..n successes (0 above ``k_max``).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmages.stats import poibin
    >>> np.round(poibin.pmf(np.array([0.5, 0.5])), 3).tolist()
    [0.25, 0.5, 0.25]
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    top = p.size if k_max is None else min(p.size, max(int(k_max), 0))
    if p.size * (top + 1) <= FFT_MIN_WORK:
        return pmf_direct(p, k_max)
    return pmf_fft(p, k_max)
