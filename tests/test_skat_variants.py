"""R SKAT variant preparation: QC, imputation, flipping, weights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bayesmages as bm
from bayesmages.errors import InputError
from bayesmages.skat.variants import variant_weights


def test_missing_rate_cutoff_is_strict():
    n = 100
    Z = np.zeros((n, 3))
    Z[:10, :] = 1
    Z[50:65, 0] = np.nan  # 15 % missing: dropped (R keeps < 0.15)
    Z[50:64, 1] = np.nan  # 14 %: kept
    pv = bm.skat.prepare_variants(Z)
    assert pv.kept.tolist() == [1, 2]


def test_monomorphic_and_nine_coded_missing():
    Z = np.array([[0, 1, 9], [0, 0, 1], [0, 2, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], float)
    pv = bm.skat.prepare_variants(Z)
    assert pv.kept.tolist() == [1, 2]
    assert pv.G[0, 1] == pytest.approx(1 / 7)  # 9 -> missing -> observed mean 2 * MAF


@pytest.mark.parametrize(("impute", "expected"), [("fixed", 2 * 3 / 14), ("bestguess", 0.0)])
def test_imputation_before_flipping(impute, expected):
    Z = np.zeros((8, 1))
    Z[:3, 0] = 1
    Z[7, 0] = np.nan
    pv = bm.skat.prepare_variants(Z, impute=impute)
    assert pv.G[7, 0] == pytest.approx(expected)


def test_random_imputation_is_seeded():
    rng = np.random.default_rng(0)
    Z = rng.binomial(2, 0.3, size=(200, 4)).astype(float)
    Z[rng.random(Z.shape) < 0.05] = np.nan
    a = bm.skat.prepare_variants(Z, impute="random", seed=1).G
    b = bm.skat.prepare_variants(Z, impute="random", seed=1).G
    c = bm.skat.prepare_variants(Z, impute="random", seed=2).G
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.isin(a, (0, 1, 2)).all()


def test_flip_above_half_only():
    Z = np.array([[2, 1], [2, 1], [1, 2], [0, 0]], float)  # MAF 0.625 and exactly 0.5
    pv = bm.skat.prepare_variants(Z)
    assert pv.flipped.tolist() == [0]
    np.testing.assert_allclose(pv.G[:, 0], [0, 0, 1, 2])
    np.testing.assert_allclose(pv.maf, [0.375, 0.5])


def test_max_maf_filter():
    Z = np.array([[1, 1], [0, 1], [0, 0], [0, 0], [0, 0]], float)
    assert bm.skat.prepare_variants(Z, max_maf=0.15).kept.tolist() == [0]


def test_beta_weights_are_the_beta_density():
    maf = np.array([0.001, 0.01, 0.2, 0.5, 0.7])
    w = bm.skat.beta_weights(maf, (1, 25))
    np.testing.assert_allclose(w[:4], stats.beta.pdf(maf[:4], 1, 25))
    assert w[4] == pytest.approx(stats.beta.pdf(0.3, 1, 25))  # folded
    np.testing.assert_allclose(bm.skat.beta_weights(maf[:4], (1, 1)), 1.0)
    with pytest.raises(InputError, match="weights_beta"):
        bm.skat.beta_weights(maf, (0, 1))


def test_user_weights_follow_input_columns():
    Z = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 0], [1, 0, 0]], float)
    pv = bm.skat.prepare_variants(Z)
    np.testing.assert_allclose(variant_weights(pv, weights=[5, 6, 7]), [5, 7])
    with pytest.raises(InputError, match="3 variant columns"):
        variant_weights(pv, weights=[1, 2])


@pytest.mark.parametrize("bad", [np.array([[0, 3]]), np.array([[0, -1]]), np.array([[0, np.inf]]), np.zeros((2, 2, 2))])
def test_bad_genotypes(bad):
    with pytest.raises(InputError):
        bm.skat.prepare_variants(bad)


def test_bad_impute_name():
    with pytest.raises(InputError, match="impute"):
        bm.skat.prepare_variants(np.zeros((3, 1)), impute="mean")


def test_complete_block_fast_path_matches_the_general_path():
    """Blocks without missing values skip n x p temporaries; the result must equal the general path's."""
    rng = np.random.default_rng(11)
    Z = rng.binomial(2, [0.01, 0.3, 0.7, 0.0, 0.02, 0.95], size=(300, 6)).astype(float)
    Z[:, 3] = 2.0  # monomorphic at the major allele: dropped, not flipped
    fast = bm.skat.prepare_variants(Z)
    Zm = Z.copy()
    Zm[0, 1] = np.nan  # one missing value sends the block through the general path
    general = bm.skat.prepare_variants(Zm)
    assert fast.kept.tolist() == general.kept.tolist() == [0, 1, 2, 4, 5]
    assert fast.flipped.tolist() == general.flipped.tolist() == [2, 5]
    np.testing.assert_allclose(fast.G[1:], general.G[1:], rtol=0, atol=0)
    cols = [0, 2, 3, 4]  # columns without the missing value: identical MAFs
    np.testing.assert_allclose(fast.maf[cols], general.maf[cols], rtol=1e-15)
    np.testing.assert_array_equal(Z[:, 2], Zm[:, 2])  # the caller's matrix is never flipped in place


@pytest.mark.parametrize("bad", [0.5, 1.000001, -1.0, 3.0])
def test_fast_genotype_check_rejects_non_genotypes(bad):
    Z = np.zeros((50, 3))
    Z[:5, 0] = 1.0
    Z[7, 2] = bad
    with pytest.raises(InputError, match=r"Z\[7, 2\]"):
        bm.skat.test(Z, bm.skat.fit_null(np.arange(50.0), None), test="skat")


def test_beta_weights_closed_form_matches_scipy():
    maf = np.array([1e-4, 0.003, 0.01, 0.2, 0.5, 0.7])
    for a in ((1, 25), (1, 1), (0.5, 0.5), (2, 3)):
        expected = stats.beta.pdf(np.where(maf > 0.5, 1 - maf, maf), *a)
        np.testing.assert_allclose(bm.skat.beta_weights(maf, a), expected, rtol=1e-12)  # round-off of exp/log
