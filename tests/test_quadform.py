"""stats.quadform against independent references: closed forms, exact mpmath formulas, Monte Carlo, R SKAT."""

from __future__ import annotations

import json
import math

import mpmath as mp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bayesmages.errors import AccuracyWarning, InputError
from bayesmages.stats._contour import contour_tail
from bayesmages.stats.quadform import davies, imhof, liu, liu_mod, liu_params, pvalue, pvalue_many, saddlepoint

# "auto" claims relative accuracy ~1e-7 at any p (trapezoid refined to 1e-7 agreement); we test
# 1e-6 to leave room for the references' own double-precision rounding.
AUTO_RTOL = 1e-6


def hypoexponential(q: float, lam: np.ndarray) -> float:
    """Exact P(sum_k lam_k chi2_2 > q), distinct lam_k, evaluated with 60 digits (alternating sum)."""
    with mp.workdps(60):
        L = [mp.mpf(float(x)) for x in lam]
        tot = mp.mpf(0)
        for k, lk in enumerate(L):
            pr = mp.mpf(1)
            for j, lj in enumerate(L):
                if j != k:
                    pr *= lk / (lk - lj)
            tot += pr * mp.exp(-mp.mpf(float(q)) / (2 * lk))
        return float(tot)


def ld_like(m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = np.arange(m)
    r = rng.uniform(0.6, 0.95) ** np.abs(idx[:, None] - idx[None, :])
    return np.linalg.eigvalsh(r)


# --- closed forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [1.0, 0.013, 250.0])
def test_one_weight_is_scaled_chi2_1(lam):
    q = lam * np.array([1e-6, 0.1, 1.0, 3.84, 20.0, 60.0, 130.0, 400.0, 1200.0])
    exact = stats.chi2.sf(q / lam, 1)  # gammaincc: relative accuracy in the far tail
    np.testing.assert_allclose(pvalue(q, [lam]), exact, rtol=1e-12)
    # the contour integrator itself (used for >= 2 weights), on the one-weight case
    log_p, ok = contour_tail(q, np.full((q.size, 1), lam))
    assert ok.all()
    np.testing.assert_allclose(np.exp(log_p), exact, rtol=AUTO_RTOL)
    # Liu and liu.mod match the first cumulants exactly with one weight: exact here.
    np.testing.assert_allclose(liu(q, [lam]), exact, rtol=1e-10)
    np.testing.assert_allclose(liu_mod(q, [lam]), exact, rtol=1e-10)
    # saddlepoint: the Lugannani-Rice relative error for chi2_1 grows to ~14% in the far tail
    # (its worst case: one weight, shape 1/2); 0.2 bounds it with margin.
    np.testing.assert_allclose(saddlepoint(q[1:], [lam]), exact[1:], rtol=0.2)


@pytest.mark.parametrize("k", [2, 7, 50, 200])
def test_equal_weights_is_scaled_chi2_k(k):
    lam = np.full(k, 0.37)
    x = stats.chi2.isf(np.array([0.999, 0.5, 1e-3, 1e-8, 1e-15, 1e-30, 1e-60]), k)
    q = 0.37 * x
    np.testing.assert_allclose(pvalue(q, lam), stats.chi2.sf(x, k), rtol=AUTO_RTOL)


@pytest.mark.parametrize(
    "lam",
    [
        np.r_[20.0, np.linspace(0.1, 0.3, 9)],  # one dominant weight
        0.8 ** np.arange(30),  # geometric decay
        ld_like(60, 1) + 1e-9 * np.arange(60),  # LD-like (distinctness for the closed form)
    ],
    ids=["dominant", "geometric", "ld-like"],
)
def test_against_exact_hypoexponential(lam):
    # Each weight twice: sum lam_k chi2_2 has an exact (alternating) closed form, evaluated in mpmath.
    w = np.repeat(lam, 2)
    mean = w.sum()
    q = np.r_[0.2, 0.8, 1.5, 3.0] * mean
    q = np.r_[q, 2 * lam.max() * np.array([20.0, 45.0, 70.0, 150.0])]  # down to p ~ 1e-30 and beyond
    ref = np.array([hypoexponential(x, lam) for x in q])
    assert ref.min() < 1e-30
    np.testing.assert_allclose(pvalue(q, w), ref, rtol=AUTO_RTOL)


# --- Monte Carlo ------------------------------------------------------------------------------------


def test_monte_carlo_all_methods():
    rng = np.random.default_rng(2024)
    lam = np.array([3.0, 1.0, 0.6, 0.2, 0.05])
    draws = rng.chisquare(1, size=(400_000, lam.size)) @ lam
    q = np.quantile(draws, [0.1, 0.5, 0.9, 0.99, 0.999])
    emp = (draws[:, None] > q[None, :]).mean(axis=0)
    se = np.sqrt(emp * (1 - emp) / draws.shape[0])
    for method in ("auto", "davies", "imhof"):
        p = pvalue(q, lam, method=method)
        assert np.all(np.abs(p - emp) < 4.5 * se), method  # 4.5 binomial standard errors
    # approximations: within a few percent of the truth at these moderate p
    exact = pvalue(q, lam)
    for method in ("liu", "liu.mod", "saddlepoint"):
        np.testing.assert_allclose(pvalue(q, lam, method=method), exact, rtol=0.15, err_msg=method)


def test_davies_and_imhof_agree_with_auto_in_the_bulk():
    lam = ld_like(30, 3)
    q = np.array([5.0, 20.0, 35.0, 60.0, 90.0])
    exact = pvalue(q, lam)
    p, fault = davies(q, lam)
    assert np.all(fault == 0)
    np.testing.assert_allclose(p, exact, atol=1e-6, rtol=0)  # Davies' absolute accuracy acc = 1e-6
    np.testing.assert_allclose(imhof(q, lam), exact, atol=1e-9, rtol=0)


# --- robustness -------------------------------------------------------------------------------------


def test_never_zero_negative_or_nan():
    lam = np.array([1.0, 0.5])
    q = np.array([-3.0, 0.0, 1e-300, 1e3, 1e5, 1e12])
    p = pvalue(q, lam)
    assert np.all(np.isfinite(p)) and np.all(p > 0) and np.all(p <= 1)
    assert p[0] == 1.0 and p[1] == 1.0
    assert np.all(np.diff(p[2:]) <= 0)


def test_deep_lower_tail_is_exact_to_the_engine_accuracy_without_a_warning():
    """q far below the mean with a tiny second weight (found by hypothesis): the contour sum stalls there; the
    product bound P(Q <= q) <= prod_j P(chi2_1 <= q / lam_j) pins p to [1 - B, 1]. Reference: the CDF of
    5 X + 1e-4 Y by one-dimensional quadrature (quad's own error is ~1e-14)."""
    import warnings

    from scipy import integrate, stats

    lam, q = np.array([5.0, 1e-4]), 5e-9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = float(pvalue(q, lam))
    cdf = integrate.quad(lambda x: stats.chi2.cdf((q - lam[0] * x) / lam[1], 1) * stats.chi2.pdf(x, 1),
                         0.0, q / lam[0], points=[1e-12, 1e-10], epsabs=1e-16, limit=200)[0]
    assert 1e-8 < cdf < 1e-6
    # the bound guarantees |p - (1 - cdf)| <= B <= 1e-6 (the contour's own relative target); here B = 1.4e-7
    assert p == pytest.approx(1.0 - cdf, rel=1e-6)


def _dominant_reference(q, big, small, k):
    """P(big chi2_1 + small chi2_k > q) by conditioning on the small part: int f_S(s) P(big chi2_1 > q - s) ds."""
    from scipy import integrate, stats

    def integrand(s):
        return stats.chi2.pdf(s / small, k) / small * stats.chi2.sf((q - s) / big, 1)

    below = integrate.quad(integrand, 0.0, q, epsabs=1e-14, epsrel=1e-12, limit=500)[0]
    return below + stats.chi2.sf(q / small, k)  # S > q: the event holds whatever the big term


# Found by hypothesis: with one dominant weight and tiny others the contour sum stalls a little below the
# mean; the engine then takes Imhof's integral (absolute accuracy ~1e-12) instead of the saddlepoint.
@pytest.mark.parametrize("big, small, k, q", [
    (2.0, 1e-4, 3, 2e-4), (2.0, 1e-4, 3, 1e-3), (1.0, 1e-3, 5, 5e-3), (3.0, 1e-4, 1, 3e-4),
    pytest.param(5.0, 1e-5, 2, 1e-4, marks=pytest.mark.xfail(
        strict=True, raises=AccuracyWarning, reason="known gap: weights 5e5 times apart and q 2e-5 of the largest: "
        "QUADPACK's error bound for Imhof's integral (2.7e-4) misses the target, so the saddlepoint (p 0.9964 "
        "within ~3e-4) is used with a warning; conditioning on the dominant term would close it")),
])
def test_dominant_weight_below_the_mean_is_exact_and_silent(big, small, k, q):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no AccuracyWarning: no saddlepoint fallback
        p = float(pvalue(q, [big] + [small] * k))
    # 1e-8 relative: the engine's target is 1e-6, the reference quadrature is good to ~1e-12
    assert p == pytest.approx(_dominant_reference(q, big, small, k), rel=1e-8)


# derandomized: the examples are the same on every run, so that CI does not depend on which region a random
# search visits; the region where it found the contour stalling is pinned by the test above
@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    lam=st.lists(st.floats(1e-4, 1e3), min_size=1, max_size=40),
    qscale=st.lists(st.floats(0.0, 300.0), min_size=2, max_size=6),
)
def test_auto_is_a_survival_function(lam, qscale):
    lam = np.asarray(lam)
    q = np.sort(np.asarray(qscale)) * lam.max()
    p = pvalue(q, lam)
    assert np.all(np.isfinite(p)) and np.all(p > 0) and np.all(p <= 1)
    assert np.all(np.diff(p) <= 1e-9 * p[:-1])  # non-increasing in q (up to the 1e-7 accuracy)


def test_scalar_in_scalar_out_and_zero_weights_ignored():
    p = pvalue(3.0, [1.0, 0.0, 2.0])
    assert isinstance(p, float)
    assert p == pytest.approx(float(pvalue(3.0, [1.0, 2.0])), rel=1e-12)
    assert pvalue(np.array([3.0]), [1.0, 2.0]).shape == (1,)


def test_pvalue_many_matches_pvalue():
    rng = np.random.default_rng(5)
    sets = [rng.gamma(0.5, 1.0, size=m) for m in (1, 2, 3, 10, 11, 40, 150)]
    q = np.array([s.sum() * f for s, f in zip(sets, (0.5, 2, 5, 10, 20, 4, 3))])
    expected = np.array([float(pvalue(x, s)) for x, s in zip(q, sets)])
    np.testing.assert_allclose(pvalue_many(q, sets), expected, rtol=1e-9)


@pytest.mark.parametrize(
    ("q", "lam", "method"),
    [
        (1.0, [1.0], "exact"),
        (1.0, [1.0, -0.5], "auto"),
        (1.0, [0.0, 0.0], "auto"),
        (1.0, [], "auto"),
        (np.nan, [1.0], "auto"),
        (1.0, [np.inf], "auto"),
    ],
)
def test_bad_input_is_input_error(q, lam, method):
    with pytest.raises(InputError):
        pvalue(q, lam, method=method)


def test_roundoff_negative_eigenvalues_are_zero():
    assert pvalue(2.0, [1.0, -1e-12]) == pytest.approx(float(pvalue(2.0, [1.0])), rel=1e-12)


# --- Davies: R behaviour ------------------------------------------------------------------------------


def test_davies_fault_codes_surface_like_r():
    lam = ld_like(20, 0)
    # With a tiny term limit the reference returns qfval = -1, i.e. p = 2, with fault 1 or 4.
    p, fault = davies(30.0, lam, acc=1e-9, lim=20)
    assert fault[0] in (1, 4) and p[0] == 2.0
    # Far tail: Davies' absolute accuracy cannot resolve p ~ 1e-40 (R gives values <= acc, possibly <= 0).
    p, fault = davies(200.0, [1.0, 0.5], acc=1e-6)
    assert p[0] < 1e-6


def test_davies_many_quantiles_equal_one_at_a_time():
    """Many quantiles in one call run the algorithm per quantile (own term count, convergence
    factor, fault) and sum the inversion terms together: each result, fault codes included, must
    be what the quantile gives alone, to the last bit (the sums are taken per quantile in the
    same order). Random weight sets of several shapes; q in the bulk, the tails, beyond the
    cut-offs, 0 and negative; term limits small enough to raise faults 1 and 4."""
    rng = np.random.default_rng(16)
    seen = set()
    for t in range(60):
        m = int(rng.integers(1, 35))
        lam = [rng.gamma(0.5, size=m), np.r_[rng.uniform(5, 50), rng.uniform(0, 0.1, m - 1)],
               rng.uniform(0.5, 1.5, m), np.exp(rng.normal(0, 3, m))][t % 4]
        mu, sd = lam.sum(), math.sqrt(2 * np.sum(lam**2))
        q = np.r_[mu + sd * rng.normal(0, 3, 12), 0.0, -1.0, mu, mu + 40 * sd, 1e-3 * mu]
        acc, lim = [1e-6, 1e-9, 1e-3, 1e-6][t % 4], [10_000, 10_000, 20, 50, 200][t % 5]
        p, fault = davies(q, lam, acc=acc, lim=lim)
        for i, qi in enumerate(q):
            p1, f1 = davies(qi, lam, acc=acc, lim=lim)
            assert (p1[0], f1[0]) == (p[i], fault[i]), (t, i)
        # order and company do not matter either
        p_rev, f_rev = davies(q[::-1], lam, acc=acc, lim=lim)
        np.testing.assert_array_equal(p_rev[::-1], p)
        np.testing.assert_array_equal(f_rev[::-1], fault)
        seen.update(fault.tolist())
    assert {0, 1, 4} <= seen  # the fault paths were exercised


def test_davies_many_quantiles_within_acc_of_closed_forms():
    """Independent reference: equal weights give a scaled chi-square(k); a weighted pair of
    chi-square(1) terms is checked against the exact engine. Davies' error is absolute (acc)."""
    q = np.linspace(0.2, 40.0, 60)
    p, fault = davies(q, [2.0] * 5, acc=1e-6)
    assert not fault.any()
    np.testing.assert_allclose(p, stats.chi2.sf(q / 2.0, 5), rtol=0, atol=1e-6)
    p, fault = davies(q, [3.0, 0.7, 0.2], acc=1e-6)
    ok = fault == 0  # near q = 0 Davies needs more than lim terms (fault 1, p = 2), as in R
    assert ok.sum() >= 55
    np.testing.assert_allclose(p[ok], pvalue(q[ok], [3.0, 0.7, 0.2]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("lam", [[2.0, 1.0, 0.5], [5.0, 0.3, 0.2, 0.1], [1.0, 1.0, 1.0, 1.0], [1.0] * 30 + [1e-3] * 5])
def test_liu_params_match_the_moments_of_q(lam):
    """Independent of the code's algebra: the chi-square that Liu et al. (2009) fit must have the
    skewness of Q ("liu") or its kurtosis (R SKAT's "liu.mod"). For non-negative weights
    s1^2 <= s2 (Cauchy-Schwarz), so the fit is central. Q's cumulants are the textbook
    kappa_k = 2^(k-1) (k-1)! sum(lam^k); the chi-square's moments come from scipy.stats (its own
    implementation). Both are exact, so the tolerances are round-off."""
    lam = np.asarray(lam)
    k2, k3, k4 = (2 ** (k - 1) * math.factorial(k - 1) * np.sum(lam**k) for k in (2, 3, 4))
    skew_q, kurt_q = k3 / k2**1.5, k4 / k2**2
    for modified in (False, True):
        par = liu_params(lam, modified=modified)
        assert par["ncp"] == 0.0
        assert par["muQ"] == pytest.approx(lam.sum(), rel=1e-12)
        assert par["sigmaQ"] == pytest.approx(np.sqrt(k2), rel=1e-12)
        dist = stats.chi2(par["df"])
        mean, var, skew, kurt = (float(v) for v in dist.stats(moments="mvsk"))
        assert par["muX"] == pytest.approx(mean, rel=1e-10)
        assert par["sigmaX"] == pytest.approx(np.sqrt(var), rel=1e-10)
        if modified:
            assert kurt == pytest.approx(kurt_q, rel=1e-9)
        else:
            assert skew == pytest.approx(skew_q, rel=1e-9)
        # the p-value is the fitted chi-square's tail at the standardised q
        q = lam.sum() + 2.5 * np.sqrt(k2)
        fn = liu_mod if modified else liu
        assert fn(q, lam)[0] == pytest.approx(dist.sf(mean + 2.5 * np.sqrt(var)), rel=1e-9)


def _skat_eigen(case_dir, a2):
    """SKAT (continuous) statistic and null eigenvalues following the R conventions (README items 1-6)."""
    Z = pd.read_csv(case_dir / "Z.csv").to_numpy(float)
    X = pd.read_csv(case_dir / "X.csv").to_numpy(float)
    y = pd.read_csv(case_dir / "y.csv").to_numpy(float).ravel()
    n = y.size
    X1 = np.column_stack([np.ones(n), X])
    miss = np.isnan(Z)
    Z = np.where(miss, np.nanmean(Z, axis=0), Z)
    keep = (miss.mean(axis=0) < 0.15) & (Z.std(axis=0) > 0)
    Z = Z[:, keep]
    flip = Z.mean(axis=0) / 2 > 0.5
    Z[:, flip] = 2 - Z[:, flip]
    G = Z * stats.beta.pdf(Z.mean(axis=0) / 2, 1, a2)
    coef = np.linalg.lstsq(X1, y, rcond=None)[0]
    res = y - X1 @ coef
    s2 = res @ res / (n - X1.shape[1])
    S = G.T @ res
    W1 = G.T @ (G - X1 @ np.linalg.solve(X1.T @ X1, X1.T @ G))
    lam = np.linalg.eigvalsh(W1 / 2)
    lam_all = np.clip(lam, 0, None)
    lam_pos = lam[lam >= 0]
    return S @ S / (2 * s2), lam_pos[lam_pos > lam_pos.mean() / 1e5], lam_all


@pytest.mark.parametrize("case", ["case_01", "case_02", "case_06", "case_09", "case_14"])
def test_matches_r_skat_davies_and_liu(skat_reference_dir, case):
    ref = json.loads((skat_reference_dir / "reference.json").read_text())[case]
    for key, a2 in (("skat_davies_b1_25", 25), ("skat_davies_b1_1", 1)):
        Q, lam, _ = _skat_eigen(skat_reference_dir / case, a2)
        assert Q == pytest.approx(ref[key]["Q"], rel=1e-6)
        p, fault = davies(Q, lam, acc=1e-6, lim=10_000)
        assert fault[0] == 0
        # README tolerance for Davies: absolute 1e-6 plus relative 1e-3
        assert abs(p[0] - ref[key]["p_value"]) <= 1e-6 + 1e-3 * ref[key]["p_value"]
    Q, _, lam_all = _skat_eigen(skat_reference_dir / case, 25)
    # README tolerance for liu/liu.mod: relative 1e-6 (closed form)
    assert liu(Q, lam_all)[0] == pytest.approx(ref["skat_liu_b1_25"]["p_value"], rel=1e-6)
    assert liu_mod(Q, lam_all)[0] == pytest.approx(ref["skat_liumod_b1_25"]["p_value"], rel=1e-6)


# --- mpmath Imhof (slow) ----------------------------------------------------------------------------------

BENCH = __import__("pathlib").Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
def test_auto_against_live_mpmath_imhof():
    import sys

    sys.path.insert(0, str(BENCH))
    from _quadform_reference import imhof_mp

    lam = np.array([3.0, 1.0, 0.4])
    for q in (5.0, 60.0, 180.0):  # p ~ 0.2, 1e-8, 1e-25
        assert float(pvalue(q, lam)) == pytest.approx(imhof_mp(q, lam), rel=AUTO_RTOL)


@pytest.mark.slow
def test_auto_against_cached_mpmath_references():
    files = sorted((BENCH / "results").glob("genes.reference*.json"))
    if not files:
        pytest.skip("no cached references; run python bench/_make_reference.py")
    n = 0
    for f in files:
        for v in json.loads(f.read_text()).values():
            assert float(pvalue(v["q"], v["weights"])) == pytest.approx(v["p_ref"], rel=AUTO_RTOL), v["spectrum"]
            n += 1
    assert n > 0


def test_auto_and_saddlepoint_far_below_the_mean_regression():
    """q far below the mean (found by hypothesis: lam=[143, 0.0078125], q ~ 2e-185) once raised a
    divide-by-zero inside the saddlepoint root finder. P(Q <= q) < sqrt(q / max lam) < 1e-17 there,
    so the p-value is 1 to double precision."""
    from bayesmages.stats.quadform import pvalue, saddlepoint

    lam = [143.0, 0.0078125]
    q = np.array([2e-185, 1e-40, 1e-33])
    np.testing.assert_array_equal(pvalue(q, lam), 1.0)
    np.testing.assert_allclose(saddlepoint(q, lam), 1.0, atol=1e-12)


# --- no silent fallback ----------------------------------------------------------------------------------


def _contour_failing_at(monkeypatch, bad_q):
    """Make the exact contour integral report non-convergence for the quantiles in ``bad_q``."""
    import bayesmages.stats.quadform as qf

    real = qf.contour_tail

    def contour(q, lam, **kw):
        log_p, ok = real(q, lam, **kw)
        return log_p, ok & ~np.isin(q, bad_q)

    monkeypatch.setattr(qf, "contour_tail", contour)


def test_auto_fallback_warns_and_is_recorded(monkeypatch):
    from bayesmages.errors import AccuracyWarning

    lam = np.array([3.0, 1.0, 0.4])
    q = np.array([5.0, 20.0, 60.0])  # p 0.30, 0.014, 1.0e-5
    exact = pvalue(q, lam)
    # Where the contour fails at p > 1e-4, Imhof's integral (absolute accuracy ~1e-12) replaces it: no warning
    _contour_failing_at(monkeypatch, [20.0])
    p = pvalue(q, lam)  # filterwarnings=error: a warning would fail here
    assert p[1] == pytest.approx(exact[1], rel=1e-8) and p[1] != saddlepoint(20.0, lam)[0]
    # Deeper in the tail Imhof is not accurate in relative terms: the saddlepoint, with a warning
    monkeypatch.undo()
    _contour_failing_at(monkeypatch, [60.0])
    with pytest.warns(AccuracyWarning, match="did not converge for 1 of 3"):
        p = pvalue(q, lam)
    np.testing.assert_array_equal(p[[0, 1]], exact[[0, 1]])
    assert p[2] == saddlepoint(60.0, lam)[0] and p[2] != exact[2]
    with pytest.warns(AccuracyWarning, match="saddlepoint"):
        pvalue_many(q, [lam] * 3)
    p2, approx = pvalue_many(q, [lam] * 3, return_approximate=True)  # recorded, not warned (filterwarnings=error)
    assert approx.tolist() == [False, False, True]
    np.testing.assert_array_equal(p2, p)


def test_log_tail_slopes_match_closed_forms():
    """quadform.log_tail_slopes (the contour integral with its s- and s^2-weighted sums) against closed
    forms: 2 equal weights (exponential: log P = -q / (2 lam), slopes -1 / (2 lam) and 0), 4 equal
    weights (P(chi2_4 > x) = exp(-x / 2) (1 + x / 2)) and one weight (chi2_1, scipy's pdf and sf), from
    the bulk to p ~ 1e-40. Tolerance 1e-7 relative (the engine's accuracy at rtol 1e-9) plus 1e-12
    absolute for the exact zero."""
    from bayesmages.stats.quadform import log_tail_slopes

    lam_val = 1.7
    rows, q, d1_ref, d2_ref, lp_ref = [], [], [], [], []
    for x in (0.5, 3.0, 20.0, 150.0):
        rows.append([lam_val, lam_val, 0, 0])
        q.append(x * lam_val)
        lp_ref.append(-x / 2)
        d1_ref.append(-0.5 / lam_val)
        d2_ref.append(0.0)
        rows.append([lam_val] * 4)
        q.append(x * lam_val)
        lp_ref.append(-x / 2 + np.log1p(x / 2))
        d1_ref.append((-0.5 + 0.5 / (1 + x / 2)) / lam_val)
        d2_ref.append(-0.25 / (1 + x / 2) ** 2 / lam_val**2)
        rows.append([lam_val, 0, 0, 0])
        q.append(x * lam_val)
        sf, pdf = stats.chi2.sf(x, 1), stats.chi2.pdf(x, 1)
        lp_ref.append(np.log(sf))
        d1_ref.append(-pdf / sf / lam_val)
        d2_ref.append((-pdf * (-0.5 / x - 0.5) / sf - (pdf / sf) ** 2) / lam_val**2)
    lp, d1, d2 = log_tail_slopes(np.array(q), np.array(rows, dtype=float), rtol=1e-9)
    np.testing.assert_allclose(lp, lp_ref, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(d1, d1_ref, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(d2, d2_ref, rtol=1e-7, atol=1e-12)
