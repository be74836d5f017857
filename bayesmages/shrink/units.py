"""Work units of the shrinkage: a group of LD blocks x all traits, the LD referenced, never shipped.

A unit names a contiguous group of blocks (:func:`block_groups`) and carries, per block, the (T, m)
effects and standard errors of the T traits shrunk together, their per-(trait, block) seeds and sample
sizes. The LD comes with the unit only as an :class:`bayesmages.io.ldrefs.LDRefs` (file paths; each
worker opens its blocks memory-mapped) -- or, in a serial run, as the matrices already in this process.
Per block, the worker computes the network's LD features once and predicts all T traits in one batch.

Which blocks form a unit depends only on the block sizes, and every (trait, block) pair gets the
same seed in every grouping, so serial, local-process and Dask runs give identical numbers.
"""

from __future__ import annotations

import copy
import itertools
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ShrinkUnit", "block_groups", "run_unit", "unit_stats"]

#: variants per unit (the blocks of a unit together); with at least MIN_UNITS units when there are
#: enough blocks, so that 2-8 workers stay busy to the end
UNIT_VARIANTS = 25_000
MIN_UNITS = 32


def block_groups(sizes: Sequence[int]) -> list[list[int]]:
    """Contiguous groups of block indices with about equal numbers of variants (independent of workers).

    ``max(MIN_UNITS, total / UNIT_VARIANTS)`` groups (at most one per block).

    Examples
    --------
    >>> block_groups([10, 10, 10])
    [[0], [1], [2]]
    >>> len(block_groups([600] * 1700))
    41
    """
    arr = np.asarray(sizes, dtype=np.int64)
    nb = arr.size
    if nb == 0:
        return []
    n_units = int(min(nb, max(MIN_UNITS, int(np.ceil(arr.sum() / UNIT_VARIANTS)))))
    # cut where the cumulative size passes each multiple of total / n_units
    ends = np.cumsum(arr)
    cuts = np.searchsorted(ends, ends[-1] * np.arange(1, n_units) / n_units, side="left") + 1
    bounds = [0]
    for i, c in enumerate(cuts):  # strictly increasing, leaving a block for every later unit
        bounds.append(int(min(max(c, bounds[-1] + 1), nb - (n_units - 1 - i))))
    bounds.append(nb)
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds)]


@dataclass
class ShrinkUnit:
    """One unit: blocks ``blocks`` of ``ld`` for all traits.

    Attributes
    ----------
    model : object
        The shrinker (a NeuralShrinker, a susie_rss model, or None for the elastic net).
    method : str
        ``"nn"``, ``"enet"`` or ``"susie"``.
    ld : LDRefs or tuple of numpy.ndarray
        The LD by reference (indexed by the global block index) or, serially, the unit's own matrices.
    blocks : list of int
        Global block indices of this unit.
    beta_hat, se : list of numpy.ndarray
        Per block, (T, m) effects and standard errors.
    seeds : list of numpy.ndarray
        Per block, (T,) seeds (the elastic net's cross-validation).
    n : list of (sequence of float or None)
        Per block, the T sample sizes (``susie``) or None.
    """

    model: Any
    method: str
    ld: Any
    blocks: list[int]
    beta_hat: list[np.ndarray]
    se: list[np.ndarray]
    seeds: list[np.ndarray]
    n: list[Any]

    def matrix(self, k: int) -> np.ndarray:
        """The LD matrix of the unit's ``k``-th block."""
        if isinstance(self.ld, tuple):
            return np.asarray(self.ld[k])
        return self.ld.matrix(self.blocks[k])


def _block(unit: ShrinkUnit, k: int) -> tuple[np.ndarray, ...]:
    """(mean, sd, lower, upper[, pip, cs]) of every trait of the unit's k-th block, each (T, m)."""
    b, s = unit.beta_hat[k], unit.se[k]
    R = unit.matrix(k)
    if unit.method == "nn":
        # one set of LD features, all traits predicted in one batch
        features = unit.model.block_features(R)
        return unit.model.predict_interval(b, s, R, features=features)
    rows: list[tuple[Any, ...]] = []
    for t in range(b.shape[0]):
        if unit.method == "enet":
            from bayesmages.shrink.enet import enet_shrink

            # The paper's recipe on beta_hat itself (ElasticNetCV's alpha grid and tolerance scale with y,
            # so the fit is equivariant to the units of beta_hat).
            coef = enet_shrink(b[t], np.asarray(R), seed=int(unit.seeds[k][t]))
            nan = np.full_like(b[t], np.nan)
            rows.append((coef, nan, nan, nan))
        else:
            fitted = copy.copy(unit.model)  # the unit's model is shared by its blocks; each fit writes a copy
            fitted._fit_block(b[t], s[t], np.asarray(R), unit.n[k][t] if unit.n[k] is not None else None)
            rows.append((fitted.mean_, fitted.sd_, fitted.lower_, fitted.upper_, fitted.pip_, fitted.cs_labels()))
    return tuple(np.stack([r[j] for r in rows]) for j in range(len(rows[0])))


def run_unit(unit: ShrinkUnit) -> dict[str, Any]:
    """Shrink every block of ``unit``; module level so that process pools and Dask can pickle it.

    Returns ``{"blocks": [per-block outputs], "cpu_seconds", "wall_seconds", "peak_rss_mb", "pid"}``:
    the CPU time of this unit, and the peak resident memory of the process that ran it (measured there).
    """
    # thread_time: the CPU of this thread only (a Dask worker process also runs its event loop and heartbeats)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    out = [_block(unit, k) for k in range(len(unit.blocks))]
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2  # ru_maxrss: kB on Linux, bytes on macOS
    return {"blocks": out, "cpu_seconds": time.thread_time() - cpu0, "wall_seconds": time.perf_counter() - wall0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "pid": os.getpid()}


def unit_stats(results: Sequence[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    """Accounting of a map of units: their number, summed CPU and wall time, each process's peak memory."""
    peaks: dict[int, float] = {}
    for r in results:
        peaks[r["pid"]] = max(peaks.get(r["pid"], 0.0), r["peak_rss_mb"])
    return {"n_units": len(results), "unit_cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 3),
            "unit_wall_seconds": round(sum(r["wall_seconds"] for r in results), 3),
            "map_wall_seconds": round(wall_seconds, 3), "processes": len(peaks),
            "peak_rss_mb_per_process": sorted(round(v, 1) for v in peaks.values())}
