import pyro.distributions as dist
import pytest
import torch
from torch.distributions import constraints

import bayesmages as bm
from bayesmages.errors import InputError
from bayesmages.priors import PriorSpec, resolve_priors, support_within

SPECS = {
    "scale": PriorSpec(lambda: dist.HalfNormal(1.0), constraints.positive, shape=()),
    "coef": PriorSpec(lambda: dist.Normal(0.0, 1.0), constraints.real, shape=(3,)),
    "weight": PriorSpec(lambda: dist.Beta(1.0, 1.0), constraints.unit_interval, shape=()),
}


def test_defaults_and_override():
    out = resolve_priors(SPECS, {"scale": dist.HalfCauchy(2.0)})
    assert isinstance(out["scale"], dist.HalfCauchy)
    assert isinstance(out["coef"], dist.Normal)


@pytest.mark.parametrize(
    "name, prior, fragment",
    [
        ("scal", dist.HalfNormal(1.0), "unknown prior name"),
        ("scale", dist.Normal(0.0, 1.0), "support"),
        ("weight", dist.Gamma(2.0, 1.0), "support"),
        ("coef", dist.Normal(torch.zeros(4), 1.0), "shape"),
        ("scale", 3.0, "Distribution"),
    ],
)
def test_bad_priors_raise(name, prior, fragment):
    with pytest.raises(InputError, match=fragment):
        resolve_priors(SPECS, {name: prior}, model_name="m")


def test_scalar_prior_broadcasts_and_exact_shape_accepted():
    resolve_priors(SPECS, {"coef": dist.Normal(1.0, 2.0)})
    resolve_priors(SPECS, {"coef": dist.Normal(torch.zeros(3), 2.0)})


def test_support_containment():
    assert support_within(constraints.positive, constraints.nonnegative)
    assert support_within(constraints.unit_interval, constraints.nonnegative)
    assert not support_within(constraints.real, constraints.positive)
    assert support_within(constraints.positive, constraints.real)
    # open vs closed end points do not matter for continuous priors (HalfCauchy on a scale)
    assert support_within(constraints.nonnegative, constraints.positive)
    assert not support_within(constraints.interval(-1.0, 1.0), constraints.positive)
    assert not support_within(constraints.positive, constraints.unit_interval)


def test_model_validates_priors_before_fitting():
    with pytest.raises(InputError, match="unknown prior"):
        bm.get_model("glm_gaussian", priors={"sigma": dist.HalfNormal(1.0)})
    with pytest.raises(InputError, match="support"):
        bm.get_model("glm_gaussian", priors={"scale": dist.Normal(0.0, 1.0)})
    m = bm.get_model("glm_gaussian", priors={"coef": dist.Normal(torch.zeros(5), 1.0)})
    X = torch.randn(20, 2).numpy()
    with pytest.raises(InputError, match="shape"):
        m.fit((X, X[:, 0]), num_steps=5)
    assert not hasattr(m, "elbo_")


def test_priors_property_merges_defaults():
    m = bm.get_model("glm_gaussian", priors={"scale": dist.HalfNormal(2.0)})
    assert set(m.priors) == {"intercept", "coef", "scale"}
    assert isinstance(m.priors["scale"], dist.HalfNormal)
