"""The work units of :func:`bayesmages.skat.run_sets`: groups of variant sets that read their own genotypes.

A unit is a plain tuple ``(context, source, sets)``:

* ``context`` — a :class:`SetContext` (null model, phenotype, covariates, options), fitted once by
  the caller. On Dask it is a future of one context scattered to every worker once; Dask swaps
  the future for the worker's copy because futures inside a task's tuple arguments are resolved
  (a dataclass unit would hide it). Local processes receive it pickled with each unit, which is
  why units are coarse groups of sets, never single sets.
* ``source`` — a :class:`~bayesmages.io.GenotypeRef` (path of a PLINK ``.bed``/``.pgen`` that the
  worker reads) or, for genotypes given in memory, the (n, k) columns of this group only.
* ``sets`` — ``(name, columns of source, variant ids)`` per set.

A worker reads one set's columns at a time and drops them before the next, so its memory is
bounded by the largest set's window (n x m_set float64 and the test's few copies of it), not by
the cohort's genotype matrix. Each unit returns its rows and a record of where it ran and the
worker's resident and peak memory (``ru_maxrss``), read inside the worker process, with its CPU
seconds: of the whole worker process (``cpu_s``; on Dask this includes the worker's own threads,
its event loop and profiler) and of the thread that ran the unit (``thread_cpu_s``).
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesmages.errors import InputError
from bayesmages.io.genotypes import GenotypeRef
from bayesmages.skat.ecskat import ecskat
from bayesmages.skat.null import NullModel
from bayesmages.skat.set_test import test as skat_test

__all__ = ["SetContext", "group_sets", "run_unit", "worker_memory"]

#: per-set cost of a set's fixed work (null-model products, p-value), in variant-column equivalents;
#: only used to balance the groups, so its exact value changes speed, never results
_SET_OVERHEAD = 5.0


@dataclass(frozen=True)
class SetContext:
    """What every unit of one :func:`~bayesmages.skat.run_sets` call shares (shipped once per worker on Dask).

    Attributes
    ----------
    null : NullModel or None
        The null model fitted once by the caller (``None`` for ecSKAT, which fits its own per set).
    y : numpy.ndarray
        The phenotype (n,).
    X : array-like or None
        Covariates without intercept.
    opts : dict
        Test options of :func:`bayesmages.skat.run_sets`.
    """

    null: NullModel | None
    y: np.ndarray
    X: Any
    opts: dict[str, Any]


def group_sets(sizes: Sequence[int], n_units: int) -> list[slice]:
    """Cut sets (in order) into at most ``n_units`` contiguous groups of about equal cost.

    Parameters
    ----------
    sizes : sequence of int
        Variants per set.
    n_units : int
        Wanted number of groups.

    Returns
    -------
    list of slice
        Non-empty, contiguous, covering every set once.

    Examples
    --------
    >>> group_sets([10, 10, 10, 10], 2)
    [slice(0, 2, None), slice(2, 4, None)]
    """
    k = len(sizes)
    n_units = max(1, min(n_units, k))
    cost = np.cumsum(np.asarray(sizes, dtype=np.float64) + _SET_OVERHEAD)
    # a group ends at the first set whose cumulative cost reaches its share of the total
    cuts = np.searchsorted(cost, cost[-1] * np.arange(1, n_units) / n_units, side="left") + 1
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 1, k), [k]]))
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def worker_memory() -> dict[str, float | None]:
    """Resident memory of the calling process now and its peak so far, in MB (``None`` where the OS does not say).

    The peak is ``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux, bytes on macOS); the current
    value is read from ``/proc/self/statm`` (Linux only).
    """
    peak: float | None = None
    try:
        import resource

        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = raw / 2**20 if sys.platform == "darwin" else raw / 2**10
    except ImportError:  # pragma: no cover - Windows has no resource module
        pass
    now: float | None = None
    try:
        with open("/proc/self/statm") as fh:
            now = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):  # pragma: no cover - not Linux
        pass
    return {"rss_mb": now, "peak_rss_mb": peak}


def _window_reader(source: Any) -> Any:
    """A context manager yielding ``read(cols)`` for a file reference or an in-memory group."""
    if isinstance(source, GenotypeRef):
        return source.reader(num_threads=1)

    class _InMemory:
        def __enter__(self) -> Callable[[Sequence[int]], np.ndarray]:
            return lambda cols: np.ascontiguousarray(source[:, list(cols)])

        def __exit__(self, *exc: object) -> None:
            return None

    return _InMemory()


def run_unit(unit: tuple[Any, Any, list[tuple[str, list[int], list[str]]]]) -> tuple[list[dict[str, Any]],
                                                                                  dict[str, Any]]:
    """Test every set of one unit; returns its rows and where and with how much memory it ran."""
    context, source, sets = unit
    started, cpu0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
    before = worker_memory()
    rows, widest = [], 0
    with _window_reader(source) as read:
        for name, cols, ids in sets:
            G = read(cols)  # one set's window: the only genotypes this worker holds
            widest = max(widest, G.shape[1])
            try:
                rows.append(_test_set(name, G, ids, context))
            except InputError as exc:
                raise InputError(f"set {name}: {exc}") from exc
            except Exception as exc:
                raise RuntimeError(f"set {name}: {type(exc).__name__}: {exc}") from exc
            del G
    after = worker_memory()
    n = source.n_samples if isinstance(source, GenotypeRef) else source.shape[0]
    stats = {"pid": os.getpid(), "host": os.uname().nodename, "n_sets": len(sets),
             "n_variants": int(sum(len(c) for _, c, _ in sets)), "widest_set": widest,
             "window_mb": n * widest * 8 / 2**20, "rss_start_mb": before["rss_mb"], "rss_end_mb": after["rss_mb"],
             "peak_rss_mb": after["peak_rss_mb"], "wall_s": time.perf_counter() - started,
             "cpu_s": time.process_time() - cpu0, "thread_cpu_s": time.thread_time() - thread0}
    return rows, stats


def _test_set(name: str, G: np.ndarray, ids: list[str], ctx: SetContext) -> dict[str, Any]:
    opts, y, X = ctx.opts, ctx.y, ctx.X
    row: dict[str, Any] = {"SET": name, "n_variants": G.shape[1], "test": opts["test"]}
    if G.shape[1] == 0:
        return {**row, "n_tested": 0, "statistic": np.nan, "p_value": np.nan, "method": "no variants found"}
    Gy = G if opts["included"] is None else G[opts["included"]]  # the rows of y, for ecSKAT's own nulls
    ec_opts = {"trait": opts["trait"], "train_fraction": opts["train_fraction"], "seed": opts["seed"],
               "objective": opts["objective"], "weights_beta": opts["weights_beta"], "method": opts["ec_method"],
               "impute": opts["impute"], "method_bin": opts["ec_method_bin"]}
    if opts["test"] == "ecskat":
        ec = ecskat(Gy, y, X, variant_names=ids, **ec_opts)
        return {**row, "n_tested": ec.n_tested, "statistic": ec.statistic, "p_value": ec.p_value,
                "method": f"ecskat-{ec.objective}" + ("-fallback" if ec.fallback else "")}
    null = ctx.null
    assert null is not None  # fitted by the caller for every test but ecskat
    extra = None
    if opts["test"] == "acat-o" and opts["acat_ecskat"]:
        extra = {"ecskat": ecskat(Gy, y, X, **ec_opts).p_value}
    r = skat_test(G, null, test=opts["test"], weights_beta=opts["weights_beta"], method=opts["method"],
                  impute=opts["impute"], seed=opts["seed"], compat=opts["compat"], maf_masks=opts["maf_masks"],
                  extra_pvalues=extra, method_bin=opts["method_bin"], estimate_maf=opts["estimate_maf"],
                  included=opts["included"])
    row.update(n_tested=r.n_tested, statistic=r.statistic, p_value=r.p_value, method=r.method)
    for comp, pc in r.extra.get("components", {}).items():  # ACAT-O: every combined p-value
        row[f"p_{comp}"] = pc
    if r.p_each_rho is not None and r.rho_grid is not None:  # both set by SKAT-O
        row["rho"] = r.rho
        for rho, pr in zip(r.rho_grid, r.p_each_rho):
            row[f"p_rho_{rho:g}"] = pr
    return row
