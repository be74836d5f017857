"""glm_logistic: the registered Bayesian logistic regression."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import bayesmages as bm
from bayesmages.errors import InputError


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.4 + X @ [1.0, -0.7])))).astype(float)
    return X, y


def test_registered_with_documented_priors():
    assert "glm_logistic" in bm.list_models()
    m = bm.get_model("glm_logistic")
    assert set(m.priors) == {"intercept", "coef"}
    with pytest.raises(InputError):
        bm.get_model("glm_logistic", priors={"scale": dist.HalfNormal(torch.tensor(1.0))})


def test_model_log_density_matches_closed_form():
    """The Pyro model's joint log density = Bernoulli log-likelihood + Normal log priors (scipy)."""
    from scipy import stats

    X, y = _data(n=50)
    m = bm.get_model("glm_logistic")
    fd = m._prepare((X, y))
    m._fit_dims = fd.dims
    m._resolved = m.priors
    vals = {"intercept": torch.tensor(0.3, dtype=torch.float64), "coef": torch.tensor([0.9, -0.4], dtype=torch.float64)}
    cond = pyro.poutine.condition(m.model, data=vals)
    tr = pyro.poutine.trace(cond).get_trace(*fd.args)
    eta = 0.3 + X @ [0.9, -0.4]
    expected = (np.sum(y * eta - np.logaddexp(0, eta)) + stats.norm.logpdf(0.3, 0, 5)
                + stats.norm.logpdf([0.9, -0.4], 0, 2.5).sum())
    assert float(tr.log_prob_sum()) == pytest.approx(expected, rel=1e-10)


@pytest.mark.slow
def test_map_fit_is_close_to_the_exact_mle():
    X, y = _data()
    m = bm.get_model("glm_logistic").fit((X, y), method="map", seed=0, num_steps=1500)
    null = bm.skat.fit_null(y, X, trait="binary", adjustment=False)
    # weak Normal(0, 2.5) priors on n = 600: MAP within 0.05 of the MLE
    np.testing.assert_allclose(m.coef_, null.coef[1:], atol=0.05)
    assert m.intercept_ == pytest.approx(null.coef[0], abs=0.05)


@pytest.mark.slow
@pytest.mark.integration
def test_svi_posterior_mean_near_mle():
    X, y = _data(seed=1)
    m = bm.get_model("glm_logistic").fit((X, y), seed=0)
    null = bm.skat.fit_null(y, X, trait="binary", adjustment=False)
    np.testing.assert_allclose(m.coef_, null.coef[1:], atol=0.1)  # mean-field SVI vs MLE, n = 600


def test_non_binary_outcome_is_an_input_error():
    X, y = _data()
    y[3] = 0.5
    with pytest.raises(InputError, match="0/1"):
        bm.get_model("glm_logistic").fit((X, y))
