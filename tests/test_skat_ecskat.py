"""ecSKAT: simplex weights, QP optimality (KKT), vertex = SKAT, held-out protocol."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bayesmages as bm
from bayesmages.errors import InputError
from bayesmages.skat.ecskat import learn_kernel_weights


def _sim(seed: int, n: int = 800, p: int = 12, effects=(0.8, -0.8), binary: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    Z = rng.binomial(2, rng.uniform(0.01, 0.04, p), size=(n, p)).astype(float)
    eta = 0.3 * X[:, 0] + Z[:, : len(effects)] @ np.asarray(effects)
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float) if binary else eta + rng.normal(size=n)
    return Z, X, y


def test_weights_on_simplex_and_split_protocol():
    Z, X, y = _sim(0)
    res = bm.skat.ecskat(Z, y, X, trait="continuous", seed=3)
    assert res.weights.shape == (12,) and np.all(res.weights >= 0) and res.weights.sum() == pytest.approx(1.0)
    assert np.intersect1d(res.train_idx, res.test_idx).size == 0
    assert res.train_idx.size + res.test_idx.size == y.size and res.train_idx.size == round(0.3 * y.size)
    again = bm.skat.ecskat(Z, y, X, trait="continuous", seed=3)
    np.testing.assert_array_equal(res.weights, again.weights)
    assert res.p_value == again.p_value


@pytest.mark.parametrize("vertex", ["group", "variant"])
def test_vertex_reproduces_skat_on_the_test_split(vertex):
    Z, X, y = _sim(1)
    p = Z.shape[1]
    if vertex == "group":
        res = bm.skat.ecskat(Z, y, X, seed=2, groups=[list(range(p))], kernel_weights=[1.0])
        a = bm.skat.beta_weights(Z.mean(0) / 2, (1, 25))  # within-kernel weights from all samples' MAF
    else:
        kw = np.zeros(p)
        kw[4] = 1.0
        res = bm.skat.ecskat(Z, y, X, seed=2, kernel_weights=kw)
        a = np.zeros(p)
        a[4] = bm.skat.beta_weights(Z[:, 4].mean() / 2, (1, 25))
    te = res.test_idx
    ref = bm.skat.test(Z[te], bm.skat.fit_null(y[te], X[te]), weights=a)
    assert res.p_value == pytest.approx(ref.p_value, rel=1e-10)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-10)


def _kkt_residual(u, c, B):
    nu = 2 * u @ B @ u  # from c'u = 1 and complementary slackness
    g = 2 * B @ u - nu * c  # = multiplier of u >= 0: must be >= 0, and 0 where u > 0
    return g, nu


@pytest.mark.parametrize("objective", ["standardized", "bound"])
def test_qp_solution_satisfies_kkt(objective):
    Z, X, y = _sim(4, effects=(0.6, -0.6, 0.5))
    res = bm.skat.ecskat(Z, y, X, seed=0, objective=objective)
    u, c, B = res.qp["u"], res.qp["c"], res.qp["B"]
    assert c @ u == pytest.approx(1.0, rel=1e-6)
    g, nu = _kkt_residual(u, c, B)
    scale = np.abs(nu * c).max()
    active = u > 1e-6 * u.max()
    assert np.all(g >= -1e-5 * scale)  # dual feasibility
    assert np.all(np.abs(g[active]) <= 1e-5 * scale)  # stationarity on the support


def test_standardized_objective_beats_vertices_and_random_points():
    Z, X, y = _sim(5, effects=(0.6, -0.6, 0.5))
    rng = np.random.default_rng(0)
    nul = bm.skat.fit_null(y, X)
    a = bm.skat.beta_weights(Z.mean(0) / 2)
    Gw = Z * a
    S, Om = Gw.T @ nul.residuals, nul.s2 * nul.cov_scores(Gw)
    sets = [np.array([j]) for j in range(Z.shape[1])]
    out = learn_kernel_weights(S, Om, sets)
    c, B = out["c"], out["B"]

    def f(w):
        return c @ w / np.sqrt(2 * w @ B @ w)

    best = f(out["weights"])
    assert best == pytest.approx(out["objective_value"], rel=1e-10)
    assert best >= max(f(np.eye(len(c))[k]) for k in range(len(c))) - 1e-8
    assert all(best >= f(w) - 1e-8 for w in rng.dirichlet(np.ones(len(c)), 500))


def test_bound_objective_has_the_closed_form():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(6, 6))
    Om = A @ A.T + np.eye(6)
    S = rng.normal(size=6) * 2
    out = learn_kernel_weights(S, Om, [np.array([j]) for j in range(6)], objective="bound")
    c, b = out["c"], np.diag(out["B"])
    expected = np.maximum(c, 0) / b  # argmin sum b u^2 s.t. c'u = 1, u >= 0
    np.testing.assert_allclose(out["weights"], expected / expected.sum(), atol=1e-6)


def test_fallback_when_no_kernel_exceeds_its_null_mean():
    Om = np.diag([1.0, 2.0, 3.0])
    out = learn_kernel_weights(np.zeros(3), Om, [np.array([j]) for j in range(3)])
    assert out["fallback"] and out["weights"].tolist().count(1.0) == 1


def test_kernel_without_training_alleles_gets_no_weight():
    # A variant with minor alleles only in the test split has null variance 0 on the training split;
    # it must not take the weight (round-off divided by ~0 used to give it weight 1 and lose the signal).
    Z, X, y = _sim(4, n=1000, effects=(1.0, -1.0))
    split = bm.skat.ecskat(Z, y, X, trait="continuous", seed=5)
    Z = Z.copy()
    Z[:, 5] = 0.0
    Z[split.test_idx[:8], 5] = 1.0
    res = bm.skat.ecskat(Z, y, X, trait="continuous", seed=5)
    np.testing.assert_array_equal(res.train_idx, split.train_idx)  # the split does not depend on Z
    assert res.weights[5] == 0.0 and res.weights.sum() == pytest.approx(1.0)
    assert res.weights[:2].sum() > 0.5  # the causal variants carry the weight
    out = learn_kernel_weights(np.array([1.0, 0.0, 2.0]), np.diag([1.0, 0.0, 1.0]), [np.array([j]) for j in range(3)])
    assert out["weights"][1] == 0.0 and not out["fallback"]


def test_groups_as_labels_and_binary_trait():
    Z, X, y = _sim(6, binary=True, effects=(1.0, 1.0))
    labels = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    res = bm.skat.ecskat(Z, y, X, trait="binary", seed=1, groups=labels)
    assert res.kernels == ["a", "b", "c"] and res.weights.shape == (3,)
    res3 = bm.skat.ecskat(Z, y, X, trait="binary", seed=1, groups=labels, n_splits=3)
    assert res3.split_p_values.shape == (3,)
    assert res3.p_value == pytest.approx(bm.skat.cauchy_combine(res3.split_p_values))


def test_cauchy_combination_closed_form():
    p = np.array([0.01, 0.2, 0.5])
    t = np.mean(np.tan((0.5 - p) * np.pi))
    assert bm.skat.cauchy_combine(p) == pytest.approx(0.5 - np.arctan(t) / np.pi, rel=1e-12)
    assert bm.skat.cauchy_combine([1e-20, 1e-20]) == pytest.approx(1e-20, rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"train_fraction": 1.2}, "train_fraction"), ({"objective": "cka"}, "objective"),
     ({"kernel_weights": [1, 2]}, "kernel_weights"), ({"n_splits": 0}, "n_splits")],
)
def test_bad_arguments(kwargs, match):
    Z, X, y = _sim(7, n=200)
    with pytest.raises(InputError, match=match):
        bm.skat.ecskat(Z, y, X, **kwargs)


def test_type_one_error_smoke():
    # 150 null replicates at alpha 0.1: rejections within the binomial 99.9 % interval
    rng = np.random.default_rng(21)
    n = 400
    X = rng.normal(size=(n, 2))
    Z = rng.binomial(2, 0.03, size=(n, 6)).astype(float)
    hits = sum(bm.skat.ecskat(Z, X[:, 0] + rng.normal(size=n), X, seed=s).p_value < 0.1 for s in range(150))
    lo, hi = stats.binom.ppf([0.0005, 0.9995], 150, 0.1)
    assert lo <= hits <= hi
