"""Process-wide caches and settings hammered from threads give the serial results (issue #18)."""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from threadpoolctl import threadpool_info

from bayesmages._threads import one_blas_thread, torch_threads
from bayesmages.skat.ecskat import _solve_qp
from bayesmages.stats.davies import davies_grid, davies_many

N_THREADS = 8


def _hammer(fn, jobs, rounds=3):
    """Run ``fn`` over ``jobs`` in many threads, several rounds, in shuffled orders."""
    order = [j for _ in range(rounds) for j in jobs]
    random.Random(0).shuffle(order)
    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(fn, order))
    return order, results


def _qp_instance(seed: int):
    rng = np.random.default_rng(seed)
    K = 3 + seed % 5  # several sizes: different cached problems, and threads sharing one size
    M = rng.normal(size=(K + 2, K))
    return rng.random(K) + 0.1, M.T @ M


def test_ecskat_qp_cache_under_threads_matches_serial():
    jobs = list(range(12))
    serial = {j: _solve_qp(*_qp_instance(j)) for j in jobs}
    order, results = _hammer(lambda j: _solve_qp(*_qp_instance(j)), jobs)
    for j, u in zip(order, results):
        # the same problem path in every thread: identical to the last bit
        np.testing.assert_array_equal(u, serial[j])


def _davies_instance(seed: int):
    rng = np.random.default_rng(100 + seed)
    lam = np.sort(rng.gamma(0.5, size=4 + seed % 7))[::-1]
    q = lam.sum() * np.array([0.3, 1.0, 2.5, 6.0])
    return q, lam


def test_davies_memo_under_threads_matches_serial():
    jobs = list(range(10))

    def run(j):
        q, lam = _davies_instance(j)
        p, fault = davies_many(q, lam, 1e-6, 10_000)
        return p, fault, davies_grid(q, lam, 1e-9)

    dv = sys.modules["bayesmages.stats.davies"]  # the package re-exports a function of that name

    serial = {}
    for j in jobs:
        dv._MEMO.clear()  # serial reference computed from a cold memo
        serial[j] = run(j)
    dv._MEMO.clear()
    order, results = _hammer(run, jobs, rounds=4)
    for j, (p, fault, grid) in zip(order, results):
        np.testing.assert_array_equal(p, serial[j][0])
        np.testing.assert_array_equal(fault, serial[j][1])
        if serial[j][2] is None:
            assert grid is None
        else:
            np.testing.assert_array_equal(grid, serial[j][2])


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_thread_limits_restored_after_concurrent_blocks():
    torch_before, blas_before = torch.get_num_threads(), _blas_threads()
    seen = []

    def block(i):
        rng = random.Random(i)
        with torch_threads(1), one_blas_thread():
            time.sleep(rng.random() * 0.02)
            seen.append((torch.get_num_threads(), max(_blas_threads(), default=1)))
            time.sleep(rng.random() * 0.02)

    with ThreadPoolExecutor(N_THREADS) as pool:
        list(pool.map(block, range(40)))
    # inside, every block ran on one thread; after the last one left, the caller's settings are back
    assert seen and all(t == 1 and b == 1 for t, b in seen)
    assert torch.get_num_threads() == torch_before
    assert _blas_threads() == blas_before


def test_positive_definite_registration_is_idempotent_across_threads():
    from torch.distributions import biject_to, constraints

    from bayesmages.cluster import kernels

    key = type(constraints.positive_definite)
    before = biject_to._registry[key]
    with ThreadPoolExecutor(N_THREADS) as pool:
        list(pool.map(lambda _: kernels.register_positive_definite(), range(32)))
    assert biject_to._registry[key] is before  # registered once, never replaced
    assert isinstance(biject_to(constraints.positive_definite), kernels.VechToPrecision)


def test_torch_threads_none_changes_nothing():
    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_blas_limit_applies_while_another_live_thread_holds_threadpoolctl_control():
    # threadpoolctl (>= 3.6) lets only the first thread that set a shared OpenBLAS limit change it
    # while that thread lives; a block of ours must still limit (and restore) from any thread.
    import threading

    from threadpoolctl import ThreadpoolController

    before = _blas_threads()
    release, ready = threading.Event(), threading.Event()

    def holder():
        for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
            lib.set_num_threads(lib.num_threads)  # takes control, changes nothing
        ready.set()
        release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    try:
        ready.wait(30)
        with one_blas_thread():
            assert max(_blas_threads(), default=1) == 1
        assert _blas_threads() == before
    finally:
        release.set()
        t.join()
