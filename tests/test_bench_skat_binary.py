"""bench/skat_binary.py's row reruns: replicate ranges run apart and merged give the full run's rows."""

from __future__ import annotations

import numpy as np
import pytest
from _bench import load_bench


@pytest.fixture(scope="module")
def sb():
    return load_bench("skat_binary")


def test_split_replicates_merge_to_the_full_run(sb):
    """4 replicates x 3 genes (1 % cases): replicates 0-1 and 2-3 run apart (the later range draws,
    without testing, the earlier replicates' phenotypes and genes) and merged equal one run of 0-3,
    p-value for p-value, and ``only`` leaves the genes unchanged: a selected row is identical to the
    same row of a run of every test."""
    full = sb.run_fraction(0.01, 12, 4, 1001, 0, reps=(0, 4))
    parts = [sb.run_fraction(0.01, 12, 4, 1001, 0, only={"spa burden"}, reps=r) for r in ((0, 2), (2, 4))]
    merged = sb.merge_parts(parts)
    assert merged["n_pheno"] == 4 and merged["replicates_run"] == [[0, 2], [2, 4]]
    assert set(merged["tests"]) == {"spa burden"}
    got = parts[0]["p_values"]["spa burden"] + parts[1]["p_values"]["spa burden"]
    np.testing.assert_array_equal(got, full["p_values"]["spa burden"])
    assert merged["tests"]["spa burden"] == sb._count(full["p_values"]["spa burden"])
    assert merged["mean_cases"] == pytest.approx(np.mean(full["cases"]))
