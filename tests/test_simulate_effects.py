"""simulate.effects: sparse architectures, heritability, MAF and LD-score dependence."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmages.errors import InputError
from bayesmages.simulate import effect_variances, ld_scores_from_R, simulate_effects


def _ar1(m, rho):
    idx = np.arange(m)
    return rho ** np.abs(idx[:, None] - idx[None, :])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heritability_and_sparsity_with_R(seed):
    m = 200
    R = _ar1(m, 0.7)
    maf = np.random.default_rng(seed).uniform(0.01, 0.5, m)
    beta = simulate_effects(maf, p_causal=0.05, h2=0.02, R=R, s=-0.25, w=-1.0, seed=seed)
    assert (beta != 0).sum() == 10
    # exact by construction up to floating-point round-off
    assert beta @ R @ beta == pytest.approx(0.02, rel=1e-12)


def test_heritability_without_R_is_sum_of_squares():
    beta = simulate_effects(np.full(50, 0.3), p_causal=1.0, h2=0.3, seed=4)
    assert (beta != 0).all() and beta @ beta == pytest.approx(0.3, rel=1e-12)


def test_at_least_one_causal():
    beta = simulate_effects(np.full(10, 0.3), p_causal=0.001, h2=0.1, seed=0)
    assert (beta != 0).sum() == 1


def test_maf_dependence_monte_carlo():
    # With all variants causal, Var(beta_j) ∝ [2f(1-f)]^s before the common rescaling, so the
    # ratio of mean squares between two MAF groups estimates the ratio of prior variances.
    # 50 seeds x 200 variants per group: the ratio's sampling sd is ~3%; tolerance 12%.
    maf = np.r_[np.full(200, 0.5), np.full(200, 0.05)]
    s = -1.0
    num = den = 0.0
    for seed in range(50):
        b = simulate_effects(maf, p_causal=1.0, h2=0.5, s=s, seed=seed)
        num += (b[200:] ** 2).mean()
        den += (b[:200] ** 2).mean()
    expected = (2 * 0.05 * 0.95) ** s / (2 * 0.5 * 0.5) ** s
    assert num / den == pytest.approx(expected, rel=0.12)


def test_ld_score_dependence_monte_carlo():
    # Two groups with LD scores 1 and 4, w = -1: variance ratio 1/4 (same tolerance reasoning).
    m = 400
    ell = np.r_[np.ones(200), np.full(200, 4.0)]
    num = den = 0.0
    for seed in range(50):
        b = simulate_effects(np.full(m, 0.2), ell, p_causal=1.0, h2=0.5, w=-1.0, seed=seed)
        num += (b[200:] ** 2).mean()
        den += (b[:200] ** 2).mean()
    assert num / den == pytest.approx(0.25, rel=0.12)


def test_ld_scores_from_R_include_the_diagonal():
    R = _ar1(5, 0.5)
    np.testing.assert_allclose(ld_scores_from_R(R), (R**2).sum(axis=0), rtol=1e-15)
    assert np.all(ld_scores_from_R(R) >= 1)


def test_effect_variances_closed_form():
    f = np.array([0.1, 0.4])
    ell = np.array([2.0, 3.0])
    np.testing.assert_allclose(effect_variances(f, ell, s=-0.25, w=-1), (2 * f * (1 - f)) ** -0.25 / ell)


def test_reproducible():
    a = simulate_effects(np.full(100, 0.2), p_causal=0.1, h2=0.1, seed=3)
    b = simulate_effects(np.full(100, 0.2), p_causal=0.1, h2=0.1, seed=3)
    c = simulate_effects(np.full(100, 0.2), p_causal=0.1, h2=0.1, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"h2": 0.0}, "h2"),
        ({"h2": 1.0}, "h2"),
        ({"h2": -0.1}, "h2"),
        ({"p_causal": 0.0}, "p_causal"),
        ({"p_causal": 1.5}, "p_causal"),
        ({"w": -1.0}, "ld_scores"),
        ({"R": np.array([[1.0, 0.5], [0.4, 1.0]])}, "symmetric"),
        ({"R": np.array([[2.0, 0.0], [0.0, 2.0]])}, "diagonal"),
        ({"R": np.eye(3)}, "variants"),
        ({"maf": np.array([0.0, 0.2])}, "maf"),
    ],
)
def test_bad_parameters(kwargs, match):
    args = {"maf": np.array([0.1, 0.2]), "p_causal": 0.5, "h2": 0.1, "seed": 0} | kwargs
    with pytest.raises(InputError, match=match):
        simulate_effects(**args)
