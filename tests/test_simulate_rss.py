"""simulate.rss: RSS summary statistics and per-variant regression on genotypes."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmages.errors import InputError
from bayesmages.simulate import RSSSampler, gwas_from_genotypes, simulate_sumstats


def _ar1(m, rho):
    idx = np.arange(m)
    return rho ** np.abs(idx[:, None] - idx[None, :])


def test_mean_and_covariance_over_replicates():
    m, n, reps = 25, 1000, 20_000
    R = _ar1(m, 0.8)
    beta = np.zeros(m)
    beta[[3, 15]] = [0.05, -0.03]
    bh, se = simulate_sumstats(R, beta, n, seed=1, n_replicates=reps)
    assert bh.shape == se.shape == (reps, m)
    resid = bh - R @ beta
    # mean: each coordinate has sd sqrt(1/(n reps)) ≈ 2.2e-4; 5 sd tolerance
    np.testing.assert_allclose(resid.mean(axis=0), 0.0, atol=5 / np.sqrt(n * reps))
    # n * Cov ≈ R: the sample covariance entry has sd sqrt((1 + R_ij^2)/reps) <= 0.01; 5 sd tolerance
    C = n * np.cov(resid, rowvar=False)
    np.testing.assert_allclose(C, R, atol=0.05)


def test_se_formula():
    R = _ar1(10, 0.5)
    bh, se = simulate_sumstats(R, np.full(10, 0.02), 500, seed=2)
    np.testing.assert_allclose(se, np.sqrt((1 - bh**2) / 498), rtol=1e-15)


def test_same_seed_same_output_and_sampler_agrees():
    R = _ar1(30, 0.6)
    beta = np.linspace(-0.01, 0.01, 30)
    a = simulate_sumstats(R, beta, 10_000, seed=7)
    b = simulate_sumstats(R, beta, 10_000, seed=7)
    c = RSSSampler(R).sample(beta, 10_000, seed=7)
    d = simulate_sumstats(R, beta, 10_000, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a, c):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], d[0])


def test_realistic_block_variance_and_correlation_over_seeds(msprime_ld):
    from bayesmages.io import read_ld

    R = read_ld(msprime_ld.path).R
    m, n, n_seeds = R.shape[0], 50_000, 2000
    sampler = RSSSampler(R)  # factorise once, then one draw per seed as the acceptance asks
    draws = np.stack([sampler.sample(np.zeros(m), n, seed=s)[0] for s in range(n_seeds)])
    # Var(beta_hat_j) * n ≈ 1: the sample variance has relative sd sqrt(2/2000) ≈ 0.032; the largest
    # of ~600 deviations is ~3.3 sd ≈ 0.1, so allow 0.15 per variant and 0.01 on the average.
    v = n * draws.var(axis=0, ddof=1)
    assert np.abs(v - 1).max() < 0.15
    assert abs(v.mean() - 1) < 0.01
    # Corr ≈ R: a sample correlation has sd (1 - r^2)/sqrt(2000) <= 0.022; the largest of ~180k
    # deviations is ~5 sd ≈ 0.11, so allow 0.13 per pair. In sd units the mean squared deviation
    # is ~1 (pairs are dependent, so it is an average over fewer effective terms): allow ±0.1.
    C = np.corrcoef(draws, rowvar=False)
    iu = np.triu_indices(m, 1)
    err = (C - R)[iu]
    assert np.abs(err).max() < 0.13
    # Pairs in perfect LD (|r| = 1: duplicated variants, common in msprime blocks) have a sample
    # correlation of exactly +-1 with no variance; they are checked by the max above and left out here.
    free = np.abs(R[iu]) < 1 - 1e-6
    z2 = err[free] ** 2 * n_seeds / (1 - R[iu][free] ** 2) ** 2
    assert abs(z2.mean() - 1) < 0.1
    # same seed, same output
    one = simulate_sumstats(R, np.zeros(m), n, seed=3)[0]
    np.testing.assert_array_equal(one, sampler.sample(np.zeros(m), n, seed=3)[0])


def test_slightly_indefinite_R_is_clipped_strongly_indefinite_rejected():
    # A rank-5 correlation matrix plus symmetric rounding-size noise: slightly indefinite, like real files.
    rng = np.random.default_rng(0)
    R = np.corrcoef(rng.normal(size=(5, 40)), rowvar=False)
    noise = np.triu(rng.uniform(-5e-7, 5e-7, size=(40, 40)), 1)
    R = R + noise + noise.T
    lam = np.linalg.eigvalsh(R)[0]
    assert -1e-3 < lam < 0
    sampler = RSSSampler(R)
    assert sampler.min_eigenvalue == pytest.approx(lam)
    bh, _ = sampler.sample(np.zeros(40), 1000, seed=0)
    assert np.isfinite(bh).all()
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])  # valid entries, not PSD
    with pytest.raises(InputError, match="positive semi-definite"):
        RSSSampler(bad)


@pytest.mark.parametrize(
    ("R", "beta", "n", "match"),
    [
        (np.eye(3), np.zeros(3), 0, "n must be"),
        (np.eye(3), np.zeros(3), -5, "n must be"),
        (np.eye(3), np.zeros(3), 2, "n must be"),
        (np.eye(3), np.zeros(4), 100, "beta must have 3"),
        (np.eye(3), np.array([0.0, np.nan, 0.0]), 100, "non-finite"),
        (np.array([[1.0, 0.3], [0.2, 1.0]]), np.zeros(2), 100, "symmetric"),
        (np.array([[1.0, 1.3], [1.3, 1.0]]), np.zeros(2), 100, r"\[-1, 1\]"),
        (np.ones((2, 3)), np.zeros(2), 100, "square"),
    ],
)
def test_bad_inputs(R, beta, n, match):
    with pytest.raises(InputError, match=match):
        simulate_sumstats(R, beta, n, seed=0)


def test_bad_replicates_and_seed():
    with pytest.raises(InputError, match="n_replicates"):
        simulate_sumstats(np.eye(2), np.zeros(2), 100, seed=0, n_replicates=0)
    with pytest.raises(InputError, match="seed"):
        simulate_sumstats(np.eye(2), np.zeros(2), 100, seed=1.5)


@pytest.fixture
def genotype_data():
    rng = np.random.default_rng(0)
    G = rng.binomial(2, [0.05, 0.2, 0.4, 0.3, 0.1], size=(800, 5)).astype(float)
    return rng, G


def test_continuous_gwas_matches_statsmodels_ols(genotype_data):
    sm = pytest.importorskip("statsmodels.api")
    rng, G = genotype_data
    y = 0.3 * G[:, 1] - 0.2 * G[:, 3] + rng.normal(size=G.shape[0])
    df = gwas_from_genotypes(G, y)
    for j in range(G.shape[1]):
        fit = sm.OLS(y, sm.add_constant(G[:, j])).fit()
        # same estimator in closed form: agreement to round-off
        assert df.BETA[j] == pytest.approx(fit.params[1], rel=1e-10)
        assert df.SE[j] == pytest.approx(fit.bse[1], rel=1e-10)
    assert (df.N == G.shape[0]).all()


def test_binary_gwas_matches_statsmodels_logit(genotype_data):
    sm = pytest.importorskip("statsmodels.api")
    rng, G = genotype_data
    eta = -0.5 + 0.6 * G[:, 2] - 0.4 * G[:, 0]
    y = (rng.random(G.shape[0]) < 1 / (1 + np.exp(-eta))).astype(float)
    df = gwas_from_genotypes(G, y, trait="binary")
    for j in range(G.shape[1]):
        fit = sm.Logit(y, sm.add_constant(G[:, j])).fit(disp=0, tol=1e-12)
        # both are Newton to convergence on the same likelihood; 1e-6 covers the stopping rules
        assert df.BETA[j] == pytest.approx(fit.params[1], rel=1e-6)
        assert df.SE[j] == pytest.approx(fit.bse[1], rel=1e-6)


def test_standardised_gwas_has_rss_standard_errors(genotype_data):
    # On the standardised scale the OLS slope is the sample correlation r and its SE is exactly
    # sqrt((1 - r^2)/(n - 2)): the RSS se formula.
    rng, G = genotype_data
    y = 0.3 * G[:, 1] + rng.normal(size=G.shape[0])
    df = gwas_from_genotypes(G, y, standardize=True)
    r = np.array([np.corrcoef(G[:, j], y)[0, 1] for j in range(G.shape[1])])
    np.testing.assert_allclose(df.BETA, r, rtol=1e-10)
    np.testing.assert_allclose(df.SE, np.sqrt((1 - r**2) / (G.shape[0] - 2)), rtol=1e-10)


def test_gwas_bad_inputs(genotype_data):
    _, G = genotype_data
    y = np.zeros(G.shape[0])
    with pytest.raises(InputError, match="constant"):
        gwas_from_genotypes(G, y)
    with pytest.raises(InputError, match="one value per row"):
        gwas_from_genotypes(G, y[:-1])
    with pytest.raises(InputError, match="0/1"):
        gwas_from_genotypes(G, np.arange(G.shape[0]) % 3, trait="binary")
    with pytest.raises(InputError, match="trait"):
        gwas_from_genotypes(G, np.arange(G.shape[0]), trait="ordinal")
    G2 = G.copy()
    G2[:, 2] = 1.0
    with pytest.raises(InputError, match="column 2 is monomorphic"):
        gwas_from_genotypes(G2, np.arange(G.shape[0]))
    sep = (G[:, 2] > 0).astype(float)  # perfectly predicted by variant 2: no finite MLE
    with pytest.raises(InputError, match="converge"):
        gwas_from_genotypes(G, sep, trait="binary")


def test_rss_model_matches_genotype_level_gwas():
    # Independent check of the RSS model: with genotypes X (standardised in-sample, LD R = X'X/n) and
    # y = X beta + e, e ~ N(0, 1 - h2), the standardised marginal estimates are R beta + X'e/n, i.e.
    # N(R beta, (1 - h2) R / n). Whitened by R^{-1/2}, the residual mean square over 40 phenotype
    # replicates x ~200 variants is 1 - h2 with sd ~0.015 (standardising y adds O(1/n)); tolerance 0.06.
    from bayesmages.simulate import ld_from_genotypes, simulate_effects, simulate_genotypes

    sim = simulate_genotypes(2000, 120_000, seed=21)
    G = sim.G.astype(float)
    n = G.shape[0]
    R = ld_from_genotypes(G)
    h2 = 0.05
    beta = simulate_effects(sim.maf, p_causal=0.05, h2=h2, R=R, seed=1)
    X = (G - G.mean(axis=0)) / G.std(axis=0)
    lam, V = np.linalg.eigh(R)
    keep = lam > 1e-8
    rng = np.random.default_rng(5)
    z2 = []
    for _ in range(40):
        y = X @ beta + rng.normal(scale=np.sqrt(1 - h2), size=n)
        df = gwas_from_genotypes(G, y, standardize=True)
        e = V[:, keep].T @ (df.BETA.to_numpy() - R @ beta) * np.sqrt(n)
        z2.append(e**2 / lam[keep])
    assert np.concatenate(z2).mean() == pytest.approx(1 - h2, abs=0.06)
