"""Map independent work units over a local process pool or a Dask distributed cluster.

Work units are independent pieces (LD blocks, traits, genes, variant sets). One function maps
them, whatever the backend:

* ``workers=1`` (default): a plain loop in this process;
* ``workers=N``: a local process pool (``spawn`` start method, so that torch/BLAS threads in the
  parent cannot deadlock children); each worker uses one torch/BLAS thread. The pool is kept
  and reused by later calls with the same ``workers`` (worker start-up imports torch, which takes
  seconds); :func:`shutdown_pools` stops it early;
* ``scheduler="tcp://HOST:PORT"`` or a ``dask.distributed.Client``: an existing Dask cluster
  (install ``bayesmages[dask]``). Tasks run with one torch thread each. Dask's nanny starts its
  workers with ``MALLOC_TRIM_THRESHOLD_=65536``; on glibc that fixes every allocation above 128 kB
  to a fresh ``mmap`` (page faults on every numpy temporary), which doubled the CPU of our units.
  A worker process that runs a bayesmages unit therefore sets glibc's usual steady-state
  thresholds once (:func:`glibc_malloc_defaults`); other tasks on that worker see the same.

Determinism: with ``seed`` given, unit ``i`` receives ``seed=spawn_seeds(seed, n)[i]`` whatever
the backend or the number of workers, so serial, local-parallel and distributed runs give
identical results.

Errors: a unit that raises stops the map with one error naming the unit
(:class:`UnitError`, or :class:`~bayesmages.errors.InputError` when the unit's error was an
input error); callers write outputs only after ``map_units`` returns, so nothing partial is
written.

Examples
--------
>>> from bayesmages.parallel import map_units
>>> map_units(abs, [-1, -2, 3])
[1, 2, 3]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

from bayesmages._threads import limit_blas_threads
from bayesmages.errors import BayesmagesError, InputError
from bayesmages.infer import progress_enabled, spawn_seeds

__all__ = ["UnitError", "dask_client", "glibc_malloc_defaults", "map_units", "scheduler_threads", "shutdown_pools",
           "start_pool", "warm_dask"]


class UnitError(BayesmagesError):
    """A work unit failed; the message names the unit and the original error."""


def _start_worker(preload: tuple[str, ...] = (), warm: Callable[[], Any] | None = None) -> None:
    """Initializer of a pool worker: one thread, the modules its units will need imported now, then ``warm()``."""
    import importlib

    _single_thread()
    for name in preload:
        importlib.import_module(name)
    if warm is not None:
        try:
            warm()
        except Exception:  # only a warm-up: a real problem surfaces, named, in the first unit
            pass


def _single_thread() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # numpy is already loaded when a worker gets here, so the environment variables above come
    # too late for its BLAS; pin it directly.
    limit_blas_threads()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass


#: glibc's dynamic mmap threshold tops out at 32 MiB, with the trim threshold at twice that; these
#: are the values a long-running process without ``MALLOC_*`` variables settles on.
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD
_MALLOC_SET = False


def glibc_malloc_defaults() -> bool:
    """Give this process glibc's steady-state malloc thresholds (mmap 32 MiB, trim 64 MiB); once per process.

    Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers' environment so that freed
    memory goes back to the OS at once. Setting any such variable also freezes glibc's mmap threshold
    at 128 kB, so every array larger than that is a new ``mmap`` and is page-faulted in anew: the
    shrink units spent as much system time as user time (measured per thread on a LocalCluster:
    1.1 s system in 2.8 s, against 0.3 s in a local worker). Memory freed above 64 MiB is still
    returned to the OS.

    Returns
    -------
    bool
        Whether the thresholds were set (False off glibc, or when already done).
    """
    global _MALLOC_SET
    if _MALLOC_SET:
        return False
    _MALLOC_SET = True
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not os.uname().sysname == "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_threshold, _MMAP_THRESHOLD)) and bool(
            libc.mallopt(m_trim_threshold, _TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def _run_unit(fn: Callable[..., Any], unit: Any, name: str, seed: int | None, threads_one: bool,
              on_dask: bool = False) -> Any:
    if threads_one:
        _single_thread()
    if on_dask:
        glibc_malloc_defaults()
    try:
        return fn(unit) if seed is None else fn(unit, seed=seed)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from exc
    except Exception as exc:
        raise UnitError(f"{name} failed: {type(exc).__name__}: {exc}") from exc


def map_units(
    fn: Callable[..., Any],
    units: Sequence[Any],
    *,
    workers: int = 1,
    scheduler: Any = None,
    seed: int | None = None,
    progress: bool = False,
    desc: str = "",
    names: Sequence[str] | None = None,
) -> list[Any]:
    """Apply ``fn`` to every unit; results in the order of ``units``.

    Parameters
    ----------
    fn : callable
        ``fn(unit)`` or, with ``seed``, ``fn(unit, seed=child_seed)``. For process pools and
        Dask it must be picklable (a module-level function or a ``functools.partial`` of one).
    units : sequence
        The work units.
    workers : int
        Local worker processes (1 = serial in this process).
    scheduler : str or dask.distributed.Client, optional
        A Dask scheduler address (``"tcp://127.0.0.1:8786"``) or client; overrides ``workers``.
    seed : int, optional
        Run seed; unit ``i`` gets the ``i``-th child seed.
    progress : bool
        Progress bar (only on a terminal).
    desc : str
        Progress label and unit-name prefix in error messages.
    names : sequence of str, optional
        Names of the units for error messages (default ``"<desc> unit <i>"``).

    Returns
    -------
    list
        ``[fn(u) for u in units]``.

    Raises
    ------
    InputError
        Bad arguments, or a unit raised an InputError (re-raised naming the unit).
    UnitError
        A unit raised any other error.
    """
    units = list(units)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if names is not None and len(names) != len(units):
        raise InputError(f"names has {len(names)} entries for {len(units)} units")
    label = desc or "work"
    unit_names = list(names) if names is not None else [f"{label} unit {i}" for i in range(len(units))]
    seeds: list[int | None] = list(spawn_seeds(seed, len(units))) if seed is not None else [None] * len(units)
    if not units:
        return []
    show = progress_enabled(progress)
    if scheduler is not None:
        return _map_dask(fn, units, unit_names, seeds, scheduler, show, label)
    if workers == 1 or len(units) == 1:
        out = []
        for unit, name, s in tqdm(list(zip(units, unit_names, seeds)), desc=label, disable=not show, leave=False):
            out.append(_run_unit(fn, unit, name, s, threads_one=False))
        return out
    return _map_processes(fn, units, unit_names, seeds, workers, show, label)


#: Local process pools by size, kept for the life of the process: starting a spawned worker
#: (importing torch, Pyro and numpy) takes seconds, so a pipeline that maps several traits or
#: steps reuses the same workers instead of paying it per call.
_POOLS: dict[int, Any] = {}


def _pool(workers: int, preload: Sequence[str] = (), warm: Callable[[], Any] | None = None) -> Any:
    import atexit
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    pool = _POOLS.get(workers)
    if pool is None or getattr(pool, "_broken", False):
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                   initializer=_start_worker, initargs=(tuple(preload), warm))
        if not _POOLS:
            atexit.register(shutdown_pools)
        _POOLS[workers] = pool
    return pool


#: Warm-ups already run in this process (a Dask worker serves many runs: each warms it once)
_WARMED: set[tuple[tuple[str, ...], str]] = set()


def _warm_dask_worker(preload: tuple[str, ...], warm: Callable[[], Any] | None) -> None:
    """A Dask worker's counterpart of :func:`_start_worker`, run once per process and warm-up."""
    key = (preload, "" if warm is None else f"{warm.__module__}.{warm.__qualname__}")
    if key in _WARMED:
        return
    _start_worker(preload, warm)
    _WARMED.add(key)


def warm_dask(scheduler: Any, preload: Sequence[str] = (), warm: Callable[[], Any] | None = None) -> None:
    """Have every worker of a Dask cluster import ``preload`` and run ``warm()`` now, without waiting for it.

    What :func:`start_pool` does for local workers: a fresh Dask worker pays the imports of torch and
    the step modules, and the first fit's one-off costs, in its first unit; ``run`` calls this before
    reading its inputs so that those costs overlap the reading. One task per worker, pinned to it and
    left to finish after the client goes (``fire_and_forget``); a worker that is already warm returns at
    once. Units submitted meanwhile queue behind the warm-up, as they would behind its cost anyway.

    Raises
    ------
    InputError
        As :func:`dask_client`.
    """
    import uuid

    with dask_client(scheduler) as client:
        from dask.distributed import fire_and_forget

        run_id = uuid.uuid4().hex
        addresses = list(client.scheduler_info().get("workers", {}))
        fire_and_forget([client.submit(_warm_dask_worker, tuple(preload), warm, workers=[addr],
                                       allow_other_workers=False, pure=False, key=f"bayesmages-warm-{run_id}-{i}")
                         for i, addr in enumerate(addresses)])


def start_pool(workers: int, preload: Sequence[str] = (), warm: Callable[[], Any] | None = None) -> None:
    """Start the kept pool of ``workers`` processes now, without waiting for it, importing ``preload`` in each.

    ``warm``: a module-level function each worker runs once after the imports (first-call costs that
    imports do not pay, e.g. the first Pyro fit of a process, :func:`bayesmages.pipeline.steps.warm_up_worker`).

    A spawned worker imports torch and the modules of its units before its first unit runs (seconds); a
    caller that knows it will map units later (``run`` does, after reading its inputs) starts the pool
    first, so that this start-up overlaps the caller's own work instead of delaying the first map.
    A pool that already runs is kept as it is.

    Examples
    --------
    >>> start_pool(1)   # nothing to start: workers=1 runs units in this process
    """
    if workers < 2 or workers in _POOLS:
        return
    pool = _pool(workers, preload, warm)
    # spawned pools start workers on demand: one no-op task per worker starts them all
    for _ in range(workers):
        pool.submit(_single_thread)


def shutdown_pools() -> None:
    """Stop the worker processes kept by :func:`map_units` (they are also stopped at exit)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def _map_processes(
    fn: Callable[..., Any],
    units: list[Any],
    names: list[str],
    seeds: list[int | None],
    workers: int,
    show: bool,
    label: str,
) -> list[Any]:
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    ex = _pool(workers)
    results: list[Any] = [None] * len(units)
    futures = {ex.submit(_run_unit, fn, u, n, s, True): i for i, (u, n, s) in enumerate(zip(units, names, seeds))}
    bar = tqdm(total=len(futures), desc=label, disable=not show, leave=False)
    try:
        # as_completed waits on all futures with one waiter; a loop of wait(pending) re-registers a
        # waiter on every pending future per completion (quadratic in the number of units), which
        # starved the threads that feed the workers: 2 workers ran 2x slower than serial at 500 blocks.
        for fut in as_completed(futures):
            exc = fut.exception()
            if exc is not None:
                for other in futures:
                    other.cancel()
                if isinstance(exc, BrokenProcessPool):
                    _POOLS.pop(workers, None)
                    raise UnitError(f"{names[futures[fut]]}: a worker process died (out of memory or killed); "
                                    "try fewer --workers") from exc
                raise exc
            results[futures[fut]] = fut.result()
            bar.update(1)
    finally:
        bar.close()
    return results


def _map_dask(
    fn: Callable[..., Any],
    units: list[Any],
    names: list[str],
    seeds: list[int | None],
    scheduler: Any,
    show: bool,
    label: str,
) -> list[Any]:
    with dask_client(scheduler) as client:
        import uuid

        from dask.distributed import as_completed

        run_id = uuid.uuid4().hex
        futures = [
            client.submit(_run_unit, fn, u, n, s, True, True, pure=False, key=f"bayesmages-{label}-{run_id}-{i}")
            for i, (u, n, s) in enumerate(zip(units, names, seeds))
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(units)
        bar = tqdm(total=len(futures), desc=label, disable=not show, leave=False)
        try:
            # The client is not the process default (set_as_default=False), so name its loop.
            for fut in as_completed(futures, loop=client.loop):
                if fut.status == "error":
                    err = fut.exception()
                    for other in futures:
                        if other is not fut:
                            other.cancel()
                    raise err
                results[index[fut.key]] = fut.result()
                bar.update(1)
        finally:
            bar.close()
        return results


def scheduler_threads(scheduler: Any) -> int:
    """Worker threads of a Dask cluster now (``scheduler``: an address or a client), at least 1.

    Used to cut work into a few units per thread, as local maps cut a few per worker: every unit has a
    fixed cost, so a cluster of 2 single-thread workers is best served by about as many units as 2 local
    processes, and a cluster of 64 by more.

    Raises
    ------
    InputError
        As :func:`dask_client`.
    """
    with dask_client(scheduler) as client:
        return max(1, int(sum(client.nthreads().values())))


@contextmanager
def dask_client(scheduler: Any) -> Iterator[Any]:
    """Yield a ``dask.distributed.Client`` for ``scheduler`` (a client, or an address: connected, closed on exit).

    Raises
    ------
    InputError
        dask.distributed is not installed, ``scheduler`` is neither, or the scheduler cannot be reached.
    """
    try:
        from dask.distributed import Client
    except ImportError:
        raise InputError("a Dask scheduler was given but dask.distributed is not installed "
                         "(pip install 'bayesmages[dask]')") from None
    if isinstance(scheduler, Client):
        yield scheduler
        return
    if not isinstance(scheduler, str):
        raise InputError(f"scheduler must be an address string or a dask Client, got {type(scheduler).__name__}")
    try:
        client = Client(scheduler, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
