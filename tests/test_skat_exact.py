"""The default (exact) SKAT-O p-value and the non-central tails behind it, against independent references."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import bayesmages as bm
from bayesmages.skat import skato_exact as sx
from bayesmages.skat.scores import weighted_scores
from bayesmages.skat.variants import as_genotype_matrix, prepare_variants, variant_weights
from bayesmages.stats import quadform

ROOT = Path(__file__).resolve().parent / "data" / "skat_reference"


def _case(name: str):
    d = ROOT / name
    Z = pd.read_csv(d / "Z.csv").to_numpy(float)
    X = pd.read_csv(d / "X.csv").to_numpy(float)
    y = pd.read_csv(d / "y.csv")["y"].to_numpy(float)
    binary = json.loads((d / "meta.json").read_text())["out_type"] == "D"
    # the unadjusted null: these tests are about the exact tails (a binary null below n = 2,000 would
    # otherwise carry R's moment adjustment, which replaces them)
    return Z, bm.skat.fit_null(y, X, trait="binary" if binary else "continuous", adjustment=False)


def _scores(Z, null, wb):
    pv = prepare_variants(as_genotype_matrix(Z, n=null.n))
    S, W = weighted_scores(pv.G, variant_weights(pv, wb, None), null)
    return S, W / 2


def _mc_skato(M, rho, thr, draws, seed):
    """P(min_rho p_rho <= t) by plain Monte Carlo from N(0, M): with exact, decreasing per-rho tails,
    p_rho <= t exactly when Q_rho >= q_rho(t), so the count needs the thresholds only."""
    L = np.linalg.cholesky(M + 1e-12 * np.trace(M) * np.eye(M.shape[0]))
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws // 50_000):
        s = rng.standard_normal((50_000, M.shape[0])) @ L.T
        Q = (1 - rho)[None, :] * (s * s).sum(1)[:, None] + rho[None, :] * (s.sum(1) ** 2)[:, None]
        hits += int(np.any(Q >= thr[None, :], axis=1).sum())
    return hits / draws


def test_noncentral_tails_match_closed_forms():
    # one weight: scipy's non-central chi-square; two weights: a convolution integral (QUADPACK, rel 1e-12)
    for q, lam, d in ((3.0, 1.0, 5.0), (30.0, 1.0, 5.0), (80.0, 2.0, 0.3), (100.0, 0.5, 20.0)):
        p = quadform.pvalue_rows([q], np.array([lam]), np.array([[d]]))[0]
        assert p == pytest.approx(stats.ncx2.sf(q / lam, 1, d), rel=1e-7)  # the engine's relative accuracy
    l1, l2, d1, d2 = 1.0, 0.4, 3.0, 1.5
    for q in (2.0, 10.0, 30.0, 60.0):
        ref = stats.ncx2.sf(q / l1, 1, d1) + integrate.quad(
            lambda x, q=q: stats.ncx2.pdf(x, 1, d1) * stats.ncx2.sf((q - l1 * x) / l2, 1, d2),
            0, q / l1, epsabs=0, epsrel=1e-12, limit=500)[0]
        p = quadform.pvalue_rows([q], np.array([l1, l2]), np.array([[d1, d2]]))[0]
        assert p == pytest.approx(ref, rel=1e-7)


def test_exact_quantiles_invert_the_exact_tails():
    rng = np.random.default_rng(2)
    spectra = [np.sort(rng.gamma(0.5, 2.0, k)) for k in (1, 5, 30)]
    for p in (0.3, 1e-3, 1e-9):
        q = sx.exact_quantiles(p, spectra)
        np.testing.assert_allclose(sx.exact_tails(q, spectra), p, rtol=2e-4)  # accepted |log P - log p| <= 1e-4


@pytest.mark.parametrize(("case", "wb"), [("case_01", (1, 25)), ("case_02", (1, 1)), ("case_09", (1, 1)),
                                          ("case_14", (1, 1)), ("case_04", (1, 1))])
def test_exact_skato_is_the_null_probability_of_min_p(case, wb):
    """Monte Carlo of the SKAT-O statistic's null law (400,000 draws of the scores from N(0, M)) against
    the default p-value (p from 7e-4 to 0.1 here; smaller p are checked with importance sampling in
    bench/skat.py, part "tails"). Tolerance 4.5 binomial standard errors (false alarm ~1e-5 per case)."""
    Z, null = _case(case)
    res = bm.skat.test(Z, null, test="skat-o", weights_beta=wb, method_bin="asymptotic")  # case_04 is binary
    assert res.method == "exact"
    _, M = _scores(Z, null, wb)
    thr = res.extra["thresholds"]
    # thresholds invert the exact tails to the accepted |log P - log t| <= 1e-4
    np.testing.assert_allclose(sx.exact_tails(thr, sx.rho_spectra(M, res.rho_grid)), res.statistic, rtol=2e-4)
    draws = 400_000
    mc = _mc_skato(M, res.rho_grid, thr, draws, seed=7)
    se = np.sqrt(res.p_value * (1 - res.p_value) / draws)
    assert abs(mc - res.p_value) <= 4.5 * se, (mc, res.p_value, se)


def test_exact_skato_near_p_one():
    """A gene with scores far below their null mean: every p_rho near 1, and so is the SKAT-O p (R can
    return exactly 1 there). Monte Carlo as above, 200,000 draws, 4.5 standard errors."""
    Z, null = _case("case_01")
    null.residuals = null.residuals * 0.05  # shrink the observed scores towards 0 (same null law)
    res = bm.skat.test(Z, null, test="skat-o")
    assert res.statistic > 0.8 and res.p_value < 1.0
    _, M = _scores(Z, null, (1, 25))
    draws = 200_000
    mc = _mc_skato(M, res.rho_grid, res.extra["thresholds"], draws, seed=3)
    assert abs(mc - res.p_value) <= 4.5 * np.sqrt(res.p_value * (1 - res.p_value) / draws), (mc, res.p_value)


def test_exact_skato_integral_against_tight_quadpack():
    """The Gauss-Kronrod integral of the exact integrand against scipy's QUADPACK at rel 1e-10 on the same
    integrand, split at its kinks, at a small p (case_14, p ~ 2e-7). Tolerance 1e-4 (measured ~1e-9)."""
    Z, null = _case("case_14")
    res = bm.skat.test(Z, null, test="skat-o")
    _, M = _scores(Z, null, (1, 25))
    rho, thr = res.rho_grid, res.extra["thresholds"]
    one = float(M.sum())
    c = M.sum(1) / np.sqrt(one)
    ev, U = np.linalg.eigh(M - np.outer(c, c))
    keep = ev > 1e-10 * ev.max()
    lam, d2 = ev[keep], (U[:, keep].T @ c) ** 2
    tau = rho * one + (1 - rho) * (c @ c)
    x_max = thr[-1] / tau[-1]  # rho = 1 (burden) caps the range

    def f(x):
        m = np.min((thr[:-1] - tau[:-1] * x) / (1 - rho[:-1]))
        return quadform.pvalue_rows([m + d2.sum() * x], lam, x * d2[None, :] / lam)[0] * stats.chi2.pdf(x, 1)

    edges = np.concatenate([[0.0], sx._breaks(thr[:-1], tau[:-1], 1 - rho[:-1], d2.sum(), x_max), [x_max]])
    tight = stats.chi2.sf(x_max, 1) + sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-10, limit=500)[0]
                                          for lo, hi in itertools.pairwise(edges))
    assert res.p_value == pytest.approx(tight, rel=1e-4)


def test_exact_skato_with_a_rank_one_kernel_is_the_one_df_test():
    """Identical columns: every Q_rho is a multiple of the same chi2_1, so SKAT-O = SKAT = burden (closed
    form), including far in the tail (round-off eigenvalues of the remainder must not count)."""
    rng = np.random.default_rng(0)
    n = 3000
    X = rng.normal(size=(n, 2))
    g = rng.binomial(2, 0.02, n).astype(float)
    Z = np.column_stack([g] * 5)
    for eff in (0.0, 0.3, 1.0):
        y = X[:, 0] + eff * g + rng.normal(size=n)
        null = bm.skat.fit_null(y, X)
        bu = bm.skat.test(Z, null, test="burden")
        assert bm.skat.test(Z, null, test="skat-o").p_value == pytest.approx(bu.p_value, rel=1e-9)
