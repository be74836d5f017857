"""SKAT null models: exact ML fits against statsmodels, errors, p x p projections."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmages as bm
from bayesmages.errors import ConvergenceWarning, InputError, SeparationError

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
    null = bm.skat.fit_null(y, X, trait="binary", adjustment=False)
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
        null = bm.skat.fit_null(y, X, trait="binary" if binary else "continuous", adjustment=False)
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
        bm.skat.fit_null(y, x[:, None], trait="binary", adjustment=False)


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
    assert a.y_boot.shape == (150, 200) and a.n_boot == 200


def test_bootstrap_phenotypes_are_drawn_only_when_a_test_reads_them():
    """R draws 10,000 bootstrap phenotypes for every binary null with n < 2,000 (about a second at
    n = 2,000 here); only the moment-adjusted tests read them, so they are drawn on first access, from
    the null's seed: the default (ER/SPA) test leaves them undrawn, and drawing later gives the same
    phenotypes as drawing at once."""
    X, y = _data(3, n=150, binary=True)
    null = bm.skat.fit_null(y, X, trait="binary", n_resampling=300, seed=5)
    assert null.adjustment and "_y_boot" not in null.__dict__
    G = np.random.default_rng(2).binomial(2, 0.05, size=(150, 5)).astype(float)
    bm.skat.test(G, null, test="skat")  # the default binary test (hybrid)
    assert "_y_boot" not in null.__dict__
    adjusted = bm.skat.test(G, null, test="skat", compat="R")  # R's moment adjustment reads them
    assert "_y_boot" in null.__dict__ and np.isfinite(adjusted.p_value)
    eager = bm.skat.fit_null(y, X, trait="binary", n_resampling=300, seed=5).y_boot
    np.testing.assert_array_equal(null.y_boot, eager)
    assert bm.skat.fit_null(y, X, trait="binary", adjustment=False).y_boot is None


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
        bm.skat.fit_null(y, X, trait="binary", adjustment=False)


# --- separation (issue #19 item 5) and convergence reporting ------------------------------------------


@pytest.mark.parametrize("n", [200, 800])
def test_perfect_separation_by_one_covariate_names_it(n):
    # a covariate equal to 2y - 1 once converged silently at n = 200 (coefficient 27.5, p = 1)
    rng = np.random.default_rng(n)
    y = rng.binomial(1, 0.5, n).astype(float)
    X = np.column_stack([rng.normal(size=n), 2 * y - 1, rng.normal(size=n)])
    with pytest.raises(SeparationError, match=r"^fit_null: covariate 'column 2 of X' separates") as info:
        bm.skat.fit_null(y, X, trait="binary", adjustment=False)
    assert info.value.covariates == ["'column 2 of X'"] and "\n" not in str(info.value)
    with pytest.raises(InputError, match="covariate 'sep' separates"):
        bm.skat.fit_null(y, pd.DataFrame({"age": X[:, 0], "sep": X[:, 1], "pc1": X[:, 2]}), trait="binary")


def test_quasi_complete_separation_is_detected():
    # a rare binary covariate whose carriers are all cases: the MLE does not exist either
    rng = np.random.default_rng(2)
    n = 400
    y = rng.binomial(1, 0.4, n).astype(float)
    g = np.zeros(n)
    g[np.flatnonzero(y == 1)[:5]] = 1
    with pytest.raises(SeparationError, match="covariate 'column 2 of X' separates"):
        bm.skat.fit_null(y, np.column_stack([rng.normal(size=n), g]), trait="binary")


def test_strong_covariate_without_separation_fits_like_statsmodels():
    # |eta| reaches ~40 (probabilities within 1e-17 of 0 or 1) without any separation: once rejected
    # as "separated"; the linear program clears it and the fit must be the MLE (statsmodels, tol 1e-6)
    rng = np.random.default_rng(3)
    x = rng.normal(size=5000) * 3
    y = (rng.random(5000) < 1 / (1 + np.exp(-3 * x))).astype(float)
    null = bm.skat.fit_null(y, x[:, None], trait="binary", adjustment=False)
    assert null.converged and np.abs(null.X1 @ null.coef).max() > 30
    ref = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit(tol=1e-12)
    np.testing.assert_allclose(null.coef, ref.params, rtol=1e-6)


def test_failed_step_halving_reports_not_converged(monkeypatch):
    # Force every trial step to look worse: the fit must say it did not converge, not "converged".
    import bayesmages.skat.null as nullmod

    X, y = _data(6, n=200, binary=True)
    real_logaddexp = np.logaddexp
    calls = {"n": 0}

    def worse_after_first(a, b):  # the initial deviance is computed normally; every later one is worse
        calls["n"] += 1
        out = real_logaddexp(a, b)
        return out if calls["n"] == 1 else out + 1.0

    monkeypatch.setattr(nullmod.np, "logaddexp", worse_after_first)
    with pytest.warns(ConvergenceWarning, match="step-halving could not decrease the deviance"):
        null = bm.skat.fit_null(y, X, trait="binary", adjustment=False)
    assert not null.converged


def test_cli_separation_one_line_exit_2(cli_separated, capsys):
    from bayesmages.cli import main

    d = cli_separated
    rc = main(["skat", "--genotypes", str(d / "g.csv"), "--phenotype", str(d / "pheno.csv"), "--covariates",
               str(d / "cov.csv"), "--sets", str(d / "sets.csv"), "--trait", "binary", "--out", str(d / "res.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert str(d / "cov.csv") in err and "covariate 'smoker' separates" in err
    assert not (d / "res.csv").exists()


@pytest.fixture
def cli_separated(tmp_path):
    rng = np.random.default_rng(5)
    n = 200
    y = rng.binomial(1, 0.5, n)
    iids = [f"S{i}" for i in range(n)]
    G = rng.binomial(2, 0.05, size=(n, 4))
    pd.DataFrame(G, columns=[f"v{j}" for j in range(4)]).assign(IID=iids).to_csv(tmp_path / "g.csv", index=False)
    pd.DataFrame({"IID": iids, "y": y}).to_csv(tmp_path / "pheno.csv", index=False)
    pd.DataFrame({"IID": iids, "age": rng.normal(size=n), "smoker": 2 * y - 1}).to_csv(tmp_path / "cov.csv",
                                                                                       index=False)
    pd.DataFrame({"SET": ["A"] * 4, "SNP": [f"v{j}" for j in range(4)]}).to_csv(tmp_path / "sets.csv", index=False)
    return tmp_path
