"""bm.skat.test: closed forms, API, errors and a type-I smoke test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import bayesmages as bm
from bayesmages.errors import InputError


def _sim(seed: int, n: int = 300, p: int = 10, binary: bool = False, effect: float = 0.0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    Z = rng.binomial(2, rng.uniform(0.01, 0.05, p), size=(n, p)).astype(float)
    eta = 0.2 * X[:, 0] + effect * Z[:, 0]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float) if binary else eta + rng.normal(size=n)
    return Z, X, y


def _explicit_p0(null, n):
    V = np.diag(null.var)
    X1 = null.X1
    return V - V @ X1 @ np.linalg.solve(X1.T @ V @ X1, X1.T @ V)


@pytest.mark.parametrize("binary", [False, True])
def test_burden_is_the_exact_one_df_score_test(binary):
    Z, X, y = _sim(1, binary=binary)
    null = bm.skat.fit_null(y, X, trait="binary" if binary else "continuous", adjustment=False)
    res = bm.skat.test(Z, null, test="burden", weights_beta=(1, 25), method_bin="asymptotic")
    w = stats.beta.pdf(Z.mean(0) / 2, 1, 25)
    b = Z @ w
    s2 = null.s2
    # independent n x n computation of the burden score statistic and its variance
    score = b @ (y - null.fitted)
    var = b @ _explicit_p0(null, y.size) @ b * s2
    assert res.statistic == pytest.approx(score**2 / (2 * s2), rel=1e-10)
    assert res.p_value == pytest.approx(stats.chi2.sf(score**2 / var, 1), rel=1e-9)


def test_single_variant_skat_is_chi2_and_skato_equals_skat():
    Z, X, y = _sim(2, p=1, effect=0.5)
    null = bm.skat.fit_null(y, X)
    sk = bm.skat.test(Z, null)
    so = bm.skat.test(Z, null, test="skat-o")
    g = Z[:, 0]
    var = g @ _explicit_p0(null, y.size) @ g
    assert sk.p_value == pytest.approx(stats.chi2.sf((g @ null.residuals) ** 2 / (null.s2 * var), 1), rel=1e-9)
    assert so.p_value == sk.p_value and np.all(so.p_each_rho == sk.p_value)


def test_weights_scale_invariance_of_skat_p():
    Z, X, y = _sim(3, effect=0.4)
    null = bm.skat.fit_null(y, X)
    w = np.random.default_rng(0).uniform(0.5, 2, Z.shape[1])
    a = bm.skat.test(Z, null, weights=w)
    b = bm.skat.test(Z, null, weights=10 * w)
    assert a.p_value == pytest.approx(b.p_value, rel=1e-8)
    assert b.statistic == pytest.approx(100 * a.statistic, rel=1e-10)


def test_no_variant_left_gives_p_one():
    _, X, y = _sim(4)
    null = bm.skat.fit_null(y, X)
    Z = np.zeros((y.size, 3))
    Z[:, 2] = np.nan
    for t in ("skat", "burden", "skat-o"):
        res = bm.skat.test(Z, null, test=t)
        assert res.p_value == 1.0 and res.n_tested == 0 and res.n_variants == 3


def test_missing_genotypes_are_imputed_not_fatal():
    Z, X, y = _sim(5)
    Z[::37, 1] = np.nan
    null = bm.skat.fit_null(y, X)
    res = bm.skat.test(Z, null)
    assert 0 < res.p_value <= 1 and res.n_tested == Z.shape[1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"test": "skato"}, "test must be"),
        ({"method": "imhof"}, "method must be"),
        ({"weights_beta": (1,)}, "weights_beta"),
    ],
)
def test_bad_arguments(kwargs, match):
    Z, X, y = _sim(6)
    null = bm.skat.fit_null(y, X)
    with pytest.raises(InputError, match=match):
        bm.skat.test(Z, null, **kwargs)


def test_wrong_rows_and_wrong_null():
    Z, X, y = _sim(7)
    null = bm.skat.fit_null(y, X)
    with pytest.raises(InputError, match="rows"):
        bm.skat.test(Z[:-1], null)
    with pytest.raises(InputError, match="NullModel"):
        bm.skat.test(Z, {"residuals": y})


def test_skato_grid_and_result_fields():
    Z, X, y = _sim(8, effect=0.6)
    null = bm.skat.fit_null(y, X)
    res = bm.skat.test(Z, null, test="skat-o", rho_grid=[0, 0.5, 1])
    assert res.p_each_rho.shape == (3,) and res.rho in (0.0, 0.5, 1.0)
    assert res.statistic == res.p_each_rho.min()
    # SKAT-O is a min-p test: its p-value is at least the smallest per-rho p and at most 3x it (R's cap rule)
    assert res.p_each_rho.min() <= res.p_value <= 3 * res.p_each_rho.min() + 1e-12
    with pytest.raises(InputError, match="rho_grid"):
        bm.skat.test(Z, null, test="skat-o", rho_grid=[0, 2])


def test_type_one_error_smoke():
    # 400 null replicates, alpha 0.05: the rejection count must lie in the binomial 99.9 % interval
    rng = np.random.default_rng(11)
    n, p = 300, 8
    X = rng.normal(size=(n, 2))
    Z = rng.binomial(2, 0.03, size=(n, p)).astype(float)
    hits = 0
    for _ in range(400):
        y = X[:, 0] * 0.3 + rng.normal(size=n)
        hits += bm.skat.test(Z, bm.skat.fit_null(y, X)).p_value < 0.05
    lo, hi = stats.binom.ppf([0.0005, 0.9995], 400, 0.05)
    assert lo <= hits <= hi


# ----------------------------------------------------------------------------- SKAT-O quadrature
def test_kronrod_rules_are_exact_to_their_degree():
    from bayesmages.skat._quadrature import RULES

    for points, degree in ((7, 11), (15, 23)):
        nodes, wk, wg = RULES[points]
        for d in range(degree + 1):
            exact = 2.0 / (d + 1) if d % 2 == 0 else 0.0
            assert wk @ nodes**d == pytest.approx(exact, abs=1e-13)  # round-off of 15 weights
        g = (points - 1) // 2  # embedded Gauss rule: exact to 2g - 1
        assert wg @ nodes ** (2 * g - 1) == pytest.approx(0.0, abs=1e-13)
        assert wg @ nodes ** (2 * g - 2) == pytest.approx(2.0 / (2 * g - 1), abs=1e-13)


def test_skato_integral_matches_tight_qags_on_a_closed_form_tail():
    """The fast SKAT-O integral (t = sqrt(x), breakpoints, Gauss-Kronrod) against scipy's QAGS at
    tolerance 1e-12 on the same integrand, with a chi-square tail standing in for Davies."""
    from scipy import integrate

    from bayesmages.skat import skato as so

    r = np.minimum(np.array(so.RHO_OPTIMAL_ADJ), 0.999)
    rng = np.random.default_rng(3)
    for _ in range(5):
        q_min = rng.uniform(5, 40) * (1 + rng.uniform(0, 1, r.size))
        tau = rng.uniform(0.5, 5) * (0.2 + r)
        df = rng.uniform(2, 20)

        def tail(m, df=df):
            return stats.chi2.sf(m, df)

        fast = so._integrate_tail(tail, q_min, r, tau, "gk", 1000)

        def f(x, q_min=q_min, tau=tau, tail=tail):
            m = np.min((q_min - tau * x) / (1 - r))
            return float(tail(m)) * stats.chi2.pdf(x, 1)

        tight = stats.chi2.sf(40, 1) + integrate.quad(f, 0, 40, epsabs=1e-15, epsrel=1e-12, limit=2000,
                                                       points=so._envelope_breaks(q_min, tau, 1 - r))[0]
        assert fast == pytest.approx(tight, rel=1e-3)  # _QUAD_RTOL bounds |K - G|, an overestimate


def test_davies_grid_agrees_with_davies():
    """The shared-grid inversion has Davies' error bounds: both within acc of each other."""
    from bayesmages.stats.davies import davies_grid, davies_many

    rng = np.random.default_rng(5)
    for _ in range(5):
        lam = np.sort(rng.gamma(0.3, 5.0, size=30))[::-1]
        q = np.linspace(0.05, 6.0, 50) * lam.sum()
        grid = davies_grid(q, lam, 1e-6)
        ref, fault = davies_many(q, lam, 1e-6, 10_000)
        assert grid is not None and not fault.any()
        np.testing.assert_allclose(grid, ref, rtol=0, atol=2e-6)  # each is within acc = 1e-6 of the truth
        tight = davies_grid(q, lam, 1e-10)
        exact = bm.stats.quadform.pvalue(q, lam)  # saddlepoint-contour engine, relative accuracy ~1e-6
        np.testing.assert_allclose(tight, exact, rtol=1e-4, atol=1e-9)


def test_compat_and_method_arguments():
    Z, X, y = _sim(9, effect=0.3)
    null = bm.skat.fit_null(y, X)
    assert bm.skat.test(Z, null).method == "exact"
    assert bm.skat.test(Z, null, compat="R").method in ("davies", "liu.mod")
    with pytest.raises(InputError, match="compat"):
        bm.skat.test(Z, null, compat="r")
    with pytest.raises(InputError, match="not an R SKAT method"):
        bm.skat.test(Z, null, compat="R", method="exact")
    with pytest.raises(InputError, match="qags"):
        bm.skat.test(Z, null, test="skat-o", compat="R", skato_quadrature="gk")


def test_qags_batches_predict_quadpack_points():
    """compat R: QUADPACK's QAGS asks for one point at a time; _QagsBatches evaluates the 21-point
    Kronrod rules of both halves of each bisected interval in one vectorised call. The integral
    must equal the point-by-point one to the last bit, with every point QAGS asks for predicted
    (evaluated once, in a batch) on an integrand that forces many bisections."""
    import warnings

    from scipy import integrate

    from bayesmages.skat import skato as so

    def tail_of(x):
        return stats.chi2.sf(3.0 + 2.0 * np.abs(np.sin(3.0 * x)), 2)

    evaluated = []

    def tail(x):
        evaluated.append(x.size)
        return tail_of(x)

    def one(x):
        return (1.0 - float(tail_of(np.array([x]))[0])) * math.exp(-0.5 * x) / math.sqrt(2.0 * math.pi * x)

    batched = so._QagsBatches(tail, nan_is_fault=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        kw = {"epsabs": 1e-25, "epsrel": so._R_REL_TOL, "limit": 1000, "full_output": 1}
        ref = integrate.quad(one, 0.0, so._X_MAX, **kw)
        got = integrate.quad(batched, 0.0, so._X_MAX, **kw)
    assert got[0] == ref[0] and got[2]["neval"] == ref[2]["neval"] > 200
    assert sum(evaluated) == ref[2]["neval"] and set(evaluated) <= {21, 42}  # no point alone, none wasted


def test_qags_batches_raise_a_davies_fault_only_where_asked():
    from bayesmages.skat import skato as so

    def tail(x):  # a fault beyond 30
        return np.where(x > 30.0, np.nan, 0.5)

    f = so._QagsBatches(tail, nan_is_fault=True)
    assert f(20.0) > 0  # the centre of [0, 40]: its rule has points beyond 30, not asked for yet
    with pytest.raises(so._IntegrationFailed, match="Davies fault"):
        f(20.0 + 20.0 * so._QK21[0])
