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
    >>> i, t = np.arange(6)[:, None], np.arange(4)[None, :]
    >>> cutter.push(np.where(i >= t, R[i, np.maximum(i - t, 0)] ** 2, 0.0))
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
        # within[k]: sum of R^2 over the square of the last k variants pushed, k = 1..max_size
        self._within = np.zeros(self.max_size + 1)
        self.n = 0

    def push(self, band: np.ndarray) -> None:
        """Add the next variants.

        Parameters
        ----------
        band : numpy.ndarray
            (c, max_size): row j holds the squared correlations of the j-th new variant ``i`` with
            itself and the variants before it, ``band[j, t] = R[i, i - t] ** 2`` (``t = 0`` is its own, 1
            for a correlation matrix); entries with ``i - t`` before the first variant are ignored.
        """
        band = np.asarray(band, dtype=np.float64)
        w = self.max_size
        if band.ndim != 2 or band.shape[1] != w:
            raise InputError(f"BlockCutter.push: expected a (c, {w}) band, got shape {band.shape}")
        c = len(band)
        if self.n + c >= len(self._best):
            raise InputError(f"BlockCutter.push: more than the {len(self._best) - 1} variants it was made for")
        first = self.n
        within, best, prev = self._within, self._best, self._prev
        lo_k, tail = self.min_size, np.empty(w)
        for j in range(c):
            e = first + j + 1
            kmax = min(w, e)
            row = band[j]
            if kmax > 1:
                # every square ending at e grows by the new variant's row and column: twice its squared
                # correlations with the k - 1 variants before it, plus its own
                np.cumsum(row[1:kmax], out=tail[: kmax - 1])
                within[2 : kmax + 1] = within[1:kmax] + 2.0 * tail[: kmax - 1] + row[0]
            within[1] = row[0]
            if kmax < lo_k:
                continue
            # block lengths kmax, kmax - 1, ..., lo_k: the largest first, so that ties go to the largest
            cand = best[e - kmax : e - lo_k + 1] + within[kmax : lo_k - 1 : -1] if lo_k > 1 else (
                best[e - kmax : e] + within[kmax:0:-1])
            i = int(np.argmax(cand))
            if np.isfinite(cand[i]):
                best[e] = cand[i]
                prev[e] = e - (kmax - i)
        self.n += c

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
