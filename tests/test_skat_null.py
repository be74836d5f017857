"""SKAT null models: exact ML fits against statsmodels, errors, p x p projections."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmages as bm
from bayesmages.errors import InputError

sm = pytest.importorskip("statsmodels.api")


def _data(seed: int, n: int = 400, binary: bool = False):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n), rng.normal(size=n)])
    eta = 0.3 + X @ [0.8, -0.5, 0.2]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float) if binary else eta + rng.normal(size=n)
    return X, y


def test_ols_matches_statsmodels(seed):
    X, y = _data(seed)
    null = bm.skat.fit_null(y, X, trait="continuous")
    ref = sm.OLS(y, sm.add_constant(X)).fit()
    # closed forms on both sides: agreement to rounding
    np.testing.assert_allclose(null.coef, ref.params, rtol=1e-10, atol=1e-12)
    assert null.s2 == pytest.approx(ref.scale, rel=1e-10)  # RSS / (n - q), R's summary(lm)$sigma^2
    np.testing.assert_allclose(null.residuals, ref.resid, atol=1e-10)


def test_irls_matches_statsmodels_glm(seed):
    X, y = _data(seed, binary=True)
    null = bm.skat.fit_null(y, X, trait="binary")
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial()).fit(tol=1e-12)
    # both iterate to the same MLE; our deviance tolerance 1e-8 leaves coefficient error ~1e-7
    np.testing.assert_allclose(null.coef, ref.params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(null.fitted, ref.fittedvalues, atol=1e-8)
    np.testing.assert_allclose(null.var, null.fitted * (1 - null.fitted))
    assert 1 <= null.n_iter < 30


def test_cov_scores_is_gt_p0_g_without_n_by_n(seed):
    rng = np.random.default_rng(seed)
    for binary in (False, True):
        X, y = _data(seed, n=120, binary=binary)
        null = bm.skat.fit_null(y, X, trait="binary" if binary else "continuous")
        G = rng.binomial(2, 0.1, size=(120, 5)).astype(float)
        X1 = np.column_stack([np.ones(120), X])
        V = np.diag(null.var)
        P0 = V - V @ X1 @ np.linalg.solve(X1.T @ V @ X1, X1.T @ V)  # explicit n x n, test only
        np.testing.assert_allclose(null.cov_scores(G), G.T @ P0 @ G, rtol=1e-9, atol=1e-9)
        Z1 = null.project(G)
        np.testing.assert_allclose(Z1.T @ Z1, G.T @ P0 @ G, rtol=1e-9, atol=1e-9)


def test_intercept_only_and_dataframe_inputs():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    null = bm.skat.fit_null(y, None)
    assert null.X1.shape == (50, 1)
    assert null.coef[0] == pytest.approx(y.mean())


@pytest.mark.parametrize(
    ("y", "X", "trait", "match"),
    [
        (np.ones(20), None, "continuous", "constant"),
        (np.r_[np.zeros(10), np.ones(10)] * 2, None, "binary", "0/1"),
        (np.zeros(20), None, "binary", "only controls"),
        (np.arange(20.0), np.ones((19, 1)), "continuous", "rows"),
        (np.r_[np.nan, np.arange(19.0)], None, "continuous", "row 1"),
        (np.arange(20.0), None, "gaussian", "trait"),
    ],
)
def test_bad_inputs_raise_input_error(y, X, trait, match):
    with pytest.raises(InputError, match=match):
        bm.skat.fit_null(y, X, trait=trait)


def test_separation_is_an_input_error():
    x = np.linspace(-1, 1, 40)
    y = (x > 0).astype(float)
    with pytest.raises(InputError, match="separate"):
        bm.skat.fit_null(y, x[:, None], trait="binary")


def test_adjustment_needs_binary():
    with pytest.raises(InputError, match="binary"):
        bm.skat.fit_null(np.arange(30.0), None, adjustment=True)


def test_collinear_covariates_handled_like_r():
    X, y = _data(0, n=200)
    Xc = np.column_stack([X, X[:, 0] * 2 - X[:, 2]])
    with pytest.warns(UserWarning, match="rank"):
        null_c = bm.skat.fit_null(y, Xc)
    null = bm.skat.fit_null(y, X)
    G = np.random.default_rng(1).binomial(2, 0.05, size=(200, 4)).astype(float)
    # the projection (hence every test) is unchanged; s2 uses the rank
    np.testing.assert_allclose(null_c.cov_scores(G), null.cov_scores(G), atol=1e-8)
    assert null_c.s2 == pytest.approx(null.s2, rel=1e-10)


def test_adjustment_bootstrap_is_seeded_and_conditions_on_cases():
    X, y = _data(3, n=150, binary=True)
    a = bm.skat.fit_null(y, X, trait="binary", adjustment=True, n_resampling=200, seed=7)
    b = bm.skat.fit_null(y, X, trait="binary", adjustment=True, n_resampling=200, seed=7)
    c = bm.skat.fit_null(y, X, trait="binary", adjustment=True, n_resampling=200, seed=8)
    np.testing.assert_array_equal(a.y_boot, b.y_boot)
    assert not np.array_equal(a.y_boot, c.y_boot)
    assert (a.y_boot.sum(0) == y.sum()).all()


def test_bootstrap_draws_follow_fitted_probabilities():
    # Monte Carlo: inclusion frequencies rise with mu (weighted sampling without replacement)
    X, y = _data(4, n=100, binary=True)
    null = bm.skat.fit_null(y, X, trait="binary", adjustment=True, n_resampling=4000, seed=0)
    freq = null.y_boot.mean(1)
    assert np.corrcoef(freq, null.fitted)[0, 1] > 0.95


def test_no_warnings_on_clean_fit():
    X, y = _data(5, binary=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bm.skat.fit_null(y, X, trait="binary")
