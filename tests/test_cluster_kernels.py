"""Numerical kernels of the DP mixture against independent references (scipy, autograd, closed forms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch.distributions import biject_to, constraints

from bayesmages.cluster import kernels
from bayesmages.cluster.initialise import initial_covariances

F64 = torch.float64


def _random_pd(rng: np.random.Generator, k: int, p: int) -> np.ndarray:
    A = rng.normal(size=(k, p, p))
    return A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(p)


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_vech_to_precision_jacobian_matches_autograd(p):
    # The log-Jacobian formula (p log 2 + sum (p - i + 2) u_ii) against the determinant of the
    # autograd Jacobian of u -> vech(Lambda); exact up to rounding (1e-10).
    t = kernels.VechToPrecision()
    u = torch.randn(p * (p + 1) // 2, dtype=F64, generator=torch.Generator().manual_seed(p))
    J = torch.autograd.functional.jacobian(lambda x: kernels.tril_to_vech(t(x)), u)
    assert torch.linalg.slogdet(J)[1].item() == pytest.approx(t.log_abs_det_jacobian(u, t(u)).item(), abs=1e-10)
    assert torch.allclose(t.inv(t(u)), u, atol=1e-12)
    assert torch.allclose(t(u), t(u).mT)
    assert bool(constraints.positive_definite.check(t(u)))


def test_positive_definite_bijection_is_registered():
    assert isinstance(biject_to(constraints.positive_definite), kernels.VechToPrecision)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_component_log_density_matches_scipy(p):
    rng = np.random.default_rng(p)
    X = rng.normal(size=(50, p))
    covs = _random_pd(rng, 3, p)
    XX, w = kernels.outer_products(torch.as_tensor(X))
    prec = torch.as_tensor(np.linalg.inv(covs))
    got = kernels.component_log_density(XX, w, prec).numpy()
    ref = np.stack([multivariate_normal(np.zeros(p), c).logpdf(X).reshape(-1) for c in covs], axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
    # batched restarts give the same numbers
    batched = kernels.component_log_density(XX, w, prec.expand(2, 3, p, p)).numpy()
    np.testing.assert_allclose(batched[:, 1], ref, rtol=1e-10, atol=1e-10)


def test_component_log_density_with_noise_matches_scipy():
    rng = np.random.default_rng(7)
    p = 2
    X = rng.normal(size=(20, p))
    noise = rng.uniform(0.1, 0.5, size=(20, p)) ** 2
    covs = _random_pd(rng, 3, p)
    XX, w = kernels.outer_products(torch.as_tensor(X))
    got = kernels.component_log_density(XX, w, torch.as_tensor(np.linalg.inv(covs)), X=torch.as_tensor(X),
                                        noise_var=torch.as_tensor(noise)).numpy()
    for i in range(20):
        for k in range(3):
            ref = multivariate_normal(np.zeros(p), covs[k] + np.diag(noise[i])).logpdf(X[i])
            assert got[i, k] == pytest.approx(ref, rel=1e-10)


def test_log_stick_weights_closed_form():
    v = torch.tensor([[0.3, 0.5, 0.9]], dtype=F64)
    expected = [0.3, 0.7 * 0.5, 0.7 * 0.5 * 0.9, 0.7 * 0.5 * 0.1]
    np.testing.assert_allclose(kernels.log_stick_weights(v).exp().numpy()[0], expected, rtol=1e-12)
    w = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=F64)
    np.testing.assert_allclose(kernels.log_stick_weights(kernels.stick_fractions(w)).exp().numpy(), w, rtol=1e-10)


def test_mixture_log_density_is_logsumexp_of_weighted_components():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    covs = _random_pd(rng, 4, 2)
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    ref = np.log(sum(weights[k] * multivariate_normal(np.zeros(2), covs[k]).pdf(X) for k in range(4)))
    XX, w = kernels.outer_products(torch.as_tensor(X))
    got = kernels.mixture_log_density(torch.as_tensor(np.log(weights)), XX, w, torch.as_tensor(np.linalg.inv(covs)))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)


def test_wishart_unconstrained_draws_have_the_wishart_mean():
    # E[Lambda] = df * scale; Monte Carlo with 40,000 draws: relative sd of the mean about
    # sqrt(2 / df / 40000) ~ 0.3%, so 2% is > 6 standard errors.
    torch.manual_seed(0)
    df = torch.tensor([6.0, 30.0], dtype=F64)
    scale = torch.as_tensor(_random_pd(np.random.default_rng(1), 2, 3))
    u = kernels.wishart_unconstrained_draws(df, scale, 40000)
    mean = kernels.VechToPrecision()(u).mean(0)
    expected = df[:, None, None] * scale
    assert torch.allclose(mean, expected, rtol=0.02, atol=0.02 * expected.abs().max().item())


def test_cavi_counts_sum_to_n_and_are_sorted():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = torch.as_tensor(np.concatenate([rng.normal(size=(300, 2)), 0.05 * rng.normal(size=(700, 2))]))
    XX, w = kernels.outer_products(X)
    covs, log_w = initial_covariances(X, 3, 8)
    q = kernels.cavi_fit(XX, w, covs, log_w, alpha=0.5, prior_df=5.0, prior_scale_inv=torch.eye(2, dtype=F64))
    np.testing.assert_allclose(q["counts"].sum(-1).numpy(), 1000.0, rtol=1e-9)
    assert (q["counts"].diff(dim=-1) <= 1e-9).all()
    # Restart 0 (shared + null + axis-aligned start) finds the two true clusters: about 700 and
    # 300 rows (40 rows ~ 3 binomial sds of overlap); other restarts may split a cluster (local
    # optima), which is why the model keeps the best restart by ELBO.
    top = q["counts"][0, :2].numpy()
    np.testing.assert_allclose(top, [700, 300], atol=40)
