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


@pytest.mark.parametrize("bad", [-1.0, 3.0, 2.0001, -1e-9])
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


def test_dosages_are_accepted_and_tested_like_counts():
    """Dosages in [0, 2] go through QC, flipping and weights like counts: a dosage burden test equals the
    explicit n x n score test on the dosage burden, and a major-allele dosage column is flipped as 2 - x."""
    rng = np.random.default_rng(4)
    n = 400
    X = rng.normal(size=(n, 2))
    y = X[:, 0] + rng.normal(size=n)
    hard = rng.binomial(2, 0.05, size=(n, 5)).astype(float)
    dos = np.clip(hard + rng.normal(scale=0.15, size=hard.shape) * (hard > 0), 0, 2)
    dos[3, 1] = 1.98  # a major-allele dosage column below is flipped as 2 - x
    null = bm.skat.fit_null(y, X)
    res = bm.skat.test(dos, null, test="burden", weights_beta=(1, 1))
    b = dos.sum(1)
    P = np.eye(n) - null.X1 @ np.linalg.solve(null.X1.T @ null.X1, null.X1.T)
    z2 = (b @ null.residuals) ** 2 / (null.s2 * b @ P @ b)
    assert res.p_value == pytest.approx(stats.chi2.sf(z2, 1), rel=1e-9)
    flipped = bm.skat.prepare_variants(np.column_stack([2 - dos[:, 0], dos[:, 1:]]))
    np.testing.assert_allclose(flipped.G[:, 0], dos[:, 0], atol=1e-12)


def test_estimate_maf_all_samples_or_the_null_models():
    """R's estimate_MAF: 1 takes MAFs (so Beta weights) from every row of Z, 2 from the null model's rows
    only; both test the same rows. With a missing phenotype the weights differ exactly as the MAFs do."""
    rng = np.random.default_rng(6)
    n = 300
    Z = rng.binomial(2, 0.03, size=(n, 6)).astype(float)
    y = Z[:, 0] + rng.normal(size=n)
    keep = np.ones(n, dtype=bool)
    keep[:40] = False  # 40 samples without a phenotype
    Z[:40, 1] = 2.0  # ... who carry variant 1 a lot: its MAF over all rows is far higher
    null = bm.skat.fit_null(y[keep], None)
    r1 = bm.skat.test(Z, null, test="burden", included=keep, estimate_maf=1)
    r2 = bm.skat.test(Z, null, test="burden", included=keep, estimate_maf=2)
    assert r2.p_value == bm.skat.test(Z[keep], null, test="burden").p_value
    maf_all = Z.mean(0) / 2
    maf_all = np.where(maf_all > 0.5, 1 - maf_all, maf_all)
    w = stats.beta.pdf(maf_all, 1, 25)
    Zk = np.where(Z.mean(0) / 2 > 0.5, 2 - Z, Z)[keep]
    assert r1.p_value == pytest.approx(bm.skat.test(Zk, null, test="burden", weights=w).p_value, rel=1e-12)
    assert r1.p_value != r2.p_value
    with pytest.raises(InputError, match="estimate_maf"):
        bm.skat.test(Z, null, included=keep, estimate_maf=3)
    with pytest.raises(InputError, match="included"):
        bm.skat.test(Z, null, included=keep[1:])
