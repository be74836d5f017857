"""Cutting consecutive variants into approximately independent LD blocks, one variant at a time.

The dynamic programme behind :func:`bayesmages.simulate.partition_blocks` (an in-memory matrix) and the
reference-panel LD store (:mod:`bayesmages.io.ld_panel`, genotypes streamed from a ``.bed``). It only
ever needs the squared correlations of each variant with the ``max_size - 1`` variants before it, so a
panel of a million variants is cut with memory independent of its length.
"""

from __future__ import annotations

import numpy as np

from bayesmages.errors import InputError

__all__ = ["BlockCutter"]


class BlockCutter:
    """Streaming minimum cross-block LD partition (exact, by dynamic programming over block ends).

    **Cut rule.** Among all partitions of the variants pushed into consecutive blocks whose sizes lie
    in ``[min_size, max_size]``, :meth:`cuts` returns the one that minimises the total cross-block LD
    ``sum_{i, j in different blocks} R_ij^2``; equivalently it maximises the within-block sum of
    ``R_ij^2``. ``O(max_size)`` time per variant. On ties the last block is the larger one. Fewer
    cuts can only lower the cross-block LD, so the rule prefers large blocks: ``max_size`` bounds
    them and ``min_size`` prevents slivers. A sequence shorter than ``min_size`` is one block.

    Parameters
    ----------
    capacity : int
        The most variants that will be pushed.
    min_size, max_size : int
        Bounds on block sizes, ``1 <= min_size <= max_size``.

    Examples
    --------
    >>> R = np.kron(np.eye(2), np.full((3, 3), 0.5)) + np.eye(6) * 0.5
    >>> cutter = BlockCutter(6, min_size=2, max_size=4)
    >>> for e in range(6):
    ...     cutter.push(R[max(0, e - 3) : e + 1, e] ** 2)
    >>> cutter.cuts()
    [0, 3, 6]
    """

    def __init__(self, capacity: int, *, min_size: int, max_size: int) -> None:
        if min_size < 1 or max_size < min_size:
            raise InputError(f"block sizes: need 1 <= min_size <= max_size, got min_size={min_size}, "
                             f"max_size={max_size}")
        self.min_size, self.max_size = int(min_size), int(max_size)
        # best[e]: the largest within-block sum of R^2 over valid partitions of the first e variants
        self._best = np.full(capacity + 1, -np.inf)
        self._best[0] = 0.0
        self._prev = np.full(capacity + 1, -1, dtype=np.int64)
        # within[k]: sum of R^2 over the square of the last k variants, k = 1..max_size
        self._within = np.zeros(self.max_size + 1)
        self._ks = np.arange(self.max_size, 0, -1)  # block lengths, largest first (ties -> largest block)
        self.n = 0

    def push(self, r2: np.ndarray) -> None:
        """Add the next variant.

        Parameters
        ----------
        r2 : numpy.ndarray
            Its squared correlations with the ``min(n, max_size - 1)`` variants before it, in order,
            followed by its own (1 for a correlation matrix): length ``min(n, max_size - 1) + 1``.
        """
        e = self.n + 1
        kmax = len(r2)
        if kmax != min(e, self.max_size):
            raise InputError(f"BlockCutter.push: variant {e} needs {min(e, self.max_size)} squared correlations, "
                             f"got {kmax}")
        if e >= len(self._best):
            raise InputError(f"BlockCutter.push: more than the {len(self._best) - 1} variants it was made for")
        within = self._within
        if kmax > 1:
            # every square ending at e grows by the new row and column: 2 * its correlations with the square + own
            tail = np.cumsum(r2[-2::-1])
            within[2 : kmax + 1] = within[1:kmax] + 2.0 * tail + r2[-1]
        within[1] = r2[-1]
        self.n = e
        if e < self.min_size:
            return
        ks = self._ks[max(0, self.max_size - e) : self.max_size - self.min_size + 1]
        cand = self._best[e - ks] + within[ks]
        j = int(np.argmax(cand))
        if np.isfinite(cand[j]):
            self._best[e] = cand[j]
            self._prev[e] = e - int(ks[j])

    def cuts(self) -> list[int]:
        """Block boundaries ``[0, c_1, ..., n]`` of the variants pushed so far.

        Raises
        ------
        InputError
            No partition of the ``n`` variants satisfies the size bounds.
        """
        m = self.n
        if m == 0:
            return [0]
        if m <= self.min_size:
            return [0, m]
        if not np.isfinite(self._best[m]):
            raise InputError(f"cannot cut {m} variants into blocks of {self.min_size}..{self.max_size} variants; "
                             "widen the size bounds")
        cuts = [m]
        while cuts[-1] > 0:
            cuts.append(int(self._prev[cuts[-1]]))
        return cuts[::-1]
