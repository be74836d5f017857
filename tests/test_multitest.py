"""stats.multitest.bh against statsmodels' Benjamini-Hochberg."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from bayesmages.errors import InputError
from bayesmages.stats import bh


@pytest.mark.parametrize("n", [1, 7, 500])
def test_bh_matches_statsmodels(n, seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=n - n // 5), rng.uniform(0, 1e-3, size=n // 5)])
    rng.shuffle(p)
    np.testing.assert_allclose(bh(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)


def test_bh_nan_and_ties():
    q = bh([0.01, np.nan, 0.01, 0.5])
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3]], multipletests([0.01, 0.01, 0.5], method="fdr_bh")[1])


def test_bh_rejects_out_of_range():
    with pytest.raises(InputError):
        bh([0.2, 1.5])
