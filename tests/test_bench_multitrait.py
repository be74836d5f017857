"""bench/multitrait.py's decomposition of wrong top-bin calls (``_miss_causes``) on a hand-built LD block."""

from __future__ import annotations

import numpy as np
import pytest
from _bench import load_bench


@pytest.fixture(scope="module")
def mt():
    return load_bench("multitrait")


def test_every_top_bin_call_gets_its_cause(mt):
    """Seven variants called with probability 0.95: 0 causal for T1; 1 its perfect LD copy; 2 at r^2 = 0.3
    with 0; 3 in no LD; 4 causal for T1 with an LD partner (5, r^2 = 0.64) causal for T2; 6 causal for both
    traits; all called specific:T1 but 5 (specific:T2). The counts are worked out by hand from the definitions."""
    R = np.eye(7)
    R[0, 1] = R[1, 0] = 1.0
    R[0, 2] = R[2, 0] = np.sqrt(0.3)
    R[4, 5] = R[5, 4] = 0.8
    causal = np.zeros((7, 2), dtype=bool)
    causal[[0, 4, 6], 0] = True
    causal[[5, 6], 1] = True
    types = ["non-prioritised", "specific:T1", "specific:T2", "shared:T1+T2"]
    P = np.zeros((7, 4))
    P[[0, 1, 2, 3, 4, 6], 1] = 0.95
    P[5, 2] = 0.95  # a call of the other trait's type: causal for T2 only, an LD tag (r^2 0.64) of 4's T1 effect
    P[:, 0] = 1 - P.sum(1)
    C = mt.MISS_CAUSES
    got = mt._miss_causes(P, types, causal, [R], "association")
    # correct: 0 and 1; 4 (T2 through 5) and 5 (T1 through 4) carry the other trait's signal as LD tags
    assert got == {C[0]: 2, C[1]: 1, C[2]: 2, C[3]: 0, C[4]: 1, C[5]: 1, C[6]: 0}
    got = mt._miss_causes(P, types, causal, [R], "causal")
    assert got == {C[0]: 3, C[1]: 1, C[2]: 0, C[3]: 1, C[4]: 1, C[5]: 1, C[6]: 0}  # correct: 0, 4 and 5
    assert sum(got.values()) == 7
