"""Compiled (numba) direct recursion of the Poisson-binomial pmf (:func:`bayesmages.stats.poibin.pmf_direct`).

The interpreter pays a few microseconds per Bernoulli factor for the vectorised recursion, which is
most of its cost when few entries are needed (the carriers of a rare variant: ~100 factors, ~100
entries) and, with the non-carriers of a gene (n factors, n_case entries), the tails: entries far
from the mode underflow to subnormal numbers, whose arithmetic is two orders of magnitude slower on
x86. Here the same recursion runs compiled, each entry updated by the same two products and one sum
as the vectorised code (so normal entries come out to the last bit the same), and entries that
underflow below the smallest normal double (2.2e-308) are set to 0 and dropped from the active
range, as a processor in flush-to-zero mode would. An entry whose final value is v loses at most
``n * 2.2e-308`` to those drops, a relative error below 1e-15 for every v >= n * 1e-293.
"""

from __future__ import annotations

import numpy as np

from bayesmages.stats._jit import jit

_TINY = float(np.finfo(np.float64).tiny)  # the smallest normal double: below it, flush to zero


@jit
def pmf_direct_compiled(p: np.ndarray, top: int) -> np.ndarray:
    """(p.size + 1,) pmf of the number of successes; entries above ``top`` are 0 (see the module docstring)."""
    n = p.size
    out = np.zeros(n + 1)
    out[0] = 1.0
    hi = 0  # every entry above hi is 0
    for i in range(n):
        pi = p[i]
        q = 1.0 - pi
        j = min(hi + 1, top)
        # downwards, so that out[t - 1] still holds the previous factor's value when out[t] is updated
        for t in range(j, 0, -1):
            out[t] = out[t] * q + out[t - 1] * pi
        out[0] *= q
        hi = j
        while hi > 0 and out[hi] < _TINY:
            out[hi] = 0.0
            hi -= 1
        if out[0] < _TINY:
            out[0] = 0.0
    return out


@jit
def leaves_compiled(P: np.ndarray) -> np.ndarray:
    """(n_blocks, b + 1) pmfs of the rows of the (n_blocks, b) probabilities ``P`` (the FFT's leaves).

    Row by row the recursion of :func:`pmf_direct_compiled` without truncation, which is what the
    vectorised ``poibin._leaves`` does to all rows at once (the same operations per entry).
    """
    nb, b = P.shape
    out = np.zeros((nb, b + 1))
    for r in range(nb):
        out[r] = pmf_direct_compiled(P[r], b)
    return out
