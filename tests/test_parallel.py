import os
import subprocess
import sys

import numpy as np
import pytest

from bayesmages.errors import InputError
from bayesmages.parallel import UnitError, map_units


def draw(unit, seed):
    """A stochastic unit: the result depends on the unit and its seed only."""
    return float(np.random.default_rng(seed).normal() + unit)


def fail_on_three(unit):
    if unit == 3:
        raise ZeroDivisionError("bad unit")
    return unit


def bad_input(unit):
    raise InputError("column BETA is missing")


def test_serial_and_processes_identical_with_seeds():
    units = list(range(6))
    serial = map_units(draw, units, seed=11)
    parallel = map_units(draw, units, workers=2, seed=11)
    assert serial == parallel
    assert serial != map_units(draw, units, seed=12)


def test_failing_unit_is_named():
    with pytest.raises(UnitError, match=r"gene unit 3 failed: ZeroDivisionError: bad unit"):
        map_units(fail_on_three, range(5), desc="gene")
    with pytest.raises(UnitError, match="BRCA1 failed"):
        map_units(fail_on_three, range(5), workers=2, names=["A", "B", "C", "BRCA1", "E"])


def test_input_error_keeps_its_type_and_names_unit():
    with pytest.raises(InputError, match="block unit 0: column BETA is missing"):
        map_units(bad_input, [1], desc="block")


def test_bad_arguments():
    with pytest.raises(InputError, match="workers"):
        map_units(abs, [1], workers=0)
    with pytest.raises(InputError, match="names"):
        map_units(abs, [1, 2], names=["a"])
    assert map_units(abs, []) == []


def test_dask_local_cluster_matches_serial():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        units = list(range(5))
        assert map_units(draw, units, scheduler=client, seed=3) == map_units(draw, units, seed=3)
        assert map_units(draw, units, scheduler=cluster.scheduler_address, seed=3) == map_units(draw, units, seed=3)
        with pytest.raises(UnitError, match="unit 3 failed"):
            map_units(fail_on_three, units, scheduler=client)


def test_started_pool_spawns_every_worker_at_once_and_is_reused():
    """start_pool spawns all workers without waiting (their imports overlap the caller's work); map_units then
    uses that pool, and a second start_pool keeps it."""
    from bayesmages import parallel

    parallel.start_pool(3, preload=("bayesmages.genes.enrichment",))
    try:
        pool = parallel._POOLS[3]
        assert len(pool._processes) == 3  # spawned pools otherwise start one worker per submitted unit
        parallel.start_pool(3)
        assert parallel._POOLS[3] is pool
        assert map_units(abs, [-1, -2, -3, 4], workers=3) == [1, 2, 3, 4]
    finally:
        parallel._POOLS.pop(3).shutdown(wait=True)


def mark_warm():
    os.environ["BAYESMAGES_TEST_WARMED"] = "yes"


def warmed(_unit):
    return os.environ.get("BAYESMAGES_TEST_WARMED")


def failing_warm_up():
    raise RuntimeError("warm-up failed")


def test_pool_workers_run_the_warm_up_once_and_a_failing_one_does_not_break_the_pool():
    """start_pool(warm=) runs the warm-up in every worker before its first unit; a warm-up that raises is only
    skipped (the units still run); the pipeline's warm-up (a tiny dp_mixture fit) runs in a worker."""
    from bayesmages import parallel
    from bayesmages.pipeline.steps import warm_up_worker

    parallel.shutdown_pools()  # a kept pool (from an earlier test) would be reused as it is, without warm-up
    parallel.start_pool(2, warm=mark_warm)
    try:
        assert map_units(warmed, [0, 1, 2, 3], workers=2) == ["yes"] * 4
    finally:
        parallel._POOLS.pop(2).shutdown(wait=True)
    parallel.start_pool(2, warm=failing_warm_up)
    try:
        assert map_units(abs, [-1, -2], workers=2) == [1, 2]
    finally:
        parallel._POOLS.pop(2).shutdown(wait=True)
    warm_up_worker()  # in this process: must run without error (the pool would swallow it)


_FAULTS_SCRIPT = """
import resource
import numpy as np
from bayesmages.parallel import glibc_malloc_defaults

def faults_per_array(n=200):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        a = np.ones(1 << 17)  # 1 MiB: above the frozen 128 kB mmap threshold, below 32 MiB
        del a
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / n

before = faults_per_array()
print(before, glibc_malloc_defaults(), glibc_malloc_defaults(), faults_per_array())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc thresholds exist on Linux only")
def test_malloc_defaults_stop_page_faults_under_dasks_trim_setting():
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536: every 1 MiB array is then a fresh
    # mmap and faults in its 256 pages; with glibc's usual thresholds the freed chunk is reused.
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    before, first, second, after = float(out[0]), out[1], out[2], float(out[3])
    assert before > 200  # 256 pages of 4 kB per array (fewer with huge pages; 200 leaves room for that)
    assert (first, second) == ("True", "False")  # set once per process
    assert after < 5  # reused from the heap: at most a few faults per array
