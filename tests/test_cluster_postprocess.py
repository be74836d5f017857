"""Post-processing, categories, selection rule and ARI (pure numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesmages.cluster import (
    adjusted_rand_index,
    categorize_clusters,
    log_responsibilities,
    select_variants,
    truncate_components,
)
from bayesmages.errors import InputError


def _rot(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def test_truncate_keeps_cumulative_mass_and_orders_by_trace():
    w = np.array([0.05, 0.5, 0.004, 0.3, 0.146])
    covs = np.stack([np.eye(2) * t for t in (5.0, 0.1, 9.0, 2.0, 1.0)])
    idx, kept = truncate_components(w, covs, keep_mass=0.99)
    # by weight 0.5, 0.3, 0.146, 0.05 reach 0.996 >= 0.99; the 0.004 component is dropped
    assert sorted(idx.tolist()) == [0, 1, 3, 4]
    assert idx.tolist() == [0, 3, 4, 1]  # traces 10, 4, 2, 0.2
    np.testing.assert_allclose(kept, w[idx] / w[idx].sum())


def test_truncate_single_cluster():
    idx, kept = truncate_components(np.array([0.999, 0.001]), np.stack([np.eye(2), np.eye(2)]), 0.99)
    assert idx.tolist() == [0] and kept.tolist() == [1.0]
    with pytest.raises(InputError, match="keep_mass"):
        truncate_components(np.array([1.0]), np.eye(1)[None], 1.5)


def test_log_responsibilities_are_pi_weighted_posteriors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2)) * 3
    covs = np.array([np.eye(2) * 0.1, [[4.0, 1.0], [1.0, 2.0]], np.eye(2) * 9])
    w = np.array([0.7, 0.2, 0.1])
    dens = np.stack([w[k] * multivariate_normal(np.zeros(2), covs[k]).pdf(X) for k in range(3)], 1)
    np.testing.assert_allclose(np.exp(log_responsibilities(X, w, covs)), dens / dens.sum(1, keepdims=True),
                               rtol=1e-9, atol=1e-300)
    # far rows do not underflow to NaN (the reference's pdf-based code does)
    far = log_responsibilities(np.array([[1e3, -1e3]]), w, covs)
    assert np.isfinite(far).all() and np.exp(far).sum() == pytest.approx(1.0)


def test_log_responsibilities_with_noise():
    X = np.array([[0.3, -0.1], [2.0, 1.0]])
    covs = np.array([np.eye(2) * 0.01, np.eye(2)])
    noise = np.array([[0.04, 0.01], [0.2, 0.3]])
    w = np.array([0.6, 0.4])
    dens = np.array([[w[k] * multivariate_normal(np.zeros(2), covs[k] + np.diag(noise[i])).pdf(X[i])
                      for k in range(2)] for i in range(2)])
    np.testing.assert_allclose(np.exp(log_responsibilities(X, w, covs, noise)), dens / dens.sum(1, keepdims=True),
                               rtol=1e-9)


def test_categories_trace_angle_sign_and_ratio():
    spec = np.diag([1.0, 0.05])
    within = _rot(10) @ spec @ _rot(10).T  # 10 deg from trait 1: still specific (tolerance 15)
    beyond = _rot(25) @ spec @ _rot(25).T  # 25 deg: shared
    negative = _rot(-170) @ spec @ _rot(-170).T  # sign-free: eigenvector ~ -e1
    isotropic = np.eye(2) * 0.9  # ratio 1 < 2: shared
    tiny = np.eye(2) * 0.01  # trace 0.02 < 0.05 x 2.0: non-prioritised even though isotropic
    covs = np.array([np.diag([0.02, 2.0]), within, beyond, negative, isotropic, tiny])
    cats = categorize_clusters(covs, ["A", "B"])
    assert cats == ["specific:B", "specific:A", "shared:A+B", "specific:A", "shared:A+B", "non-prioritised"]
    # a documented null variance marks clusters at the null level as non-prioritised
    assert categorize_clusters(covs, ["A", "B"], null_variance=0.5)[4] == "shared:A+B"
    assert categorize_clusters(covs, ["A", "B"], null_variance=1.0)[4] == "non-prioritised"


def test_categories_any_number_of_traits():
    shared_13 = np.array([[1.0, 0, 0.8], [0, 0.001, 0], [0.8, 0, 1.0]])
    covs = np.array([shared_13, np.diag([0.001, 0.001, 1.5]), np.eye(3) * 1e-4])
    assert categorize_clusters(covs) == ["shared:trait1+trait3", "specific:trait3", "non-prioritised"]
    one = categorize_clusters(np.array([[[2.0]], [[0.01]]]), ["LDL"])
    assert one == ["specific:LDL", "non-prioritised"]
    with pytest.raises(InputError, match="trait_names"):
        categorize_clusters(covs, ["a"])


def test_select_variants_rules_keep_whole_rows():
    E = np.array([[0.0, 0.2], [0.01, 0.0], [-3.0, 0.0], [0.0, 0.0]])
    before = E.copy()
    assert select_variants(E, rule="absolute", threshold=0.1).tolist() == [True, False, True, False]
    np.testing.assert_array_equal(E, before)  # entries are never zeroed
    sd = np.array([[1.0, 0.05], [0.001, 1.0], [2.0, 1.0], [1.0, 1.0]])
    assert select_variants(E, sd, rule="posterior", z=2.0).tolist() == [True, True, False, False]
    assert select_variants(E, rule="all").all()
    q = select_variants(np.arange(100.0)[:, None], rule="quantile", quantile=0.9)
    assert q.sum() == 10 and q[-10:].all()
    E_nan = E.copy()
    E_nan[0, 0] = np.nan
    assert not select_variants(E_nan, rule="all")[0]
    with pytest.raises(InputError, match="threshold"):
        select_variants(E, rule="absolute")
    with pytest.raises(InputError, match="sd"):
        select_variants(E, rule="posterior")
    with pytest.raises(InputError, match="rule"):
        select_variants(E, rule="median")


def test_adjusted_rand_index_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the independent reference")
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 4, 200), rng.integers(0, 3, 200)
        b[:120] = a[:120]
        assert adjusted_rand_index(a, b) == pytest.approx(sklearn_metrics.adjusted_rand_score(a, b), abs=1e-12)
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0
