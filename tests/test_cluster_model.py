"""The registered dp_mixture model: API contract, recovery, priors, determinism, edge cases."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from _convergence import assert_warned_iff_not_converged, record_convergence

import bayesmages as bm
from bayesmages.cluster import adjusted_rand_index, log_responsibilities
from bayesmages.errors import InputError

F64 = torch.float64
# A 4-cluster bivariate case shaped like real associations: near-null, specific to each trait,
# shared with positive correlation.
WEIGHTS = np.array([0.5, 0.2, 0.15, 0.15])
COVS = np.array([np.eye(2) * 0.01, [[1.0, 0.0], [0.0, 0.02]], [[0.02, 0.0], [0.0, 1.0]], [[0.6, 0.5], [0.5, 0.6]]])


def simulate(n: int, seed: int, weights=WEIGHTS, covs=COVS):
    rng = np.random.default_rng(seed)
    z = rng.choice(len(weights), size=n, p=weights)
    L = np.linalg.cholesky(covs)
    return np.einsum("nab,nb->na", L[z], rng.normal(size=(n, covs.shape[1]))), z


def fit(X, **kwargs):
    fit_kwargs = kwargs.pop("fit", {})
    # A fit that stops at num_steps warns; these tests judge the result itself, and check that the
    # warning appears exactly when the fit's own record says it did not converge.
    with record_convergence() as box:
        model = bm.get_model("dp_mixture", **kwargs).fit(X, **fit_kwargs)
    assert_warned_iff_not_converged(model, box)
    return model


@pytest.fixture(scope="module")
def fitted():
    X, z = simulate(1500, 11)
    return X, z, fit(X, truncation=20, fit={"seed": 0})


def test_registered_api_and_fitted_attributes(fitted):
    X, _, m = fitted
    assert "dp_mixture" in bm.list_models()
    k = m.n_components_
    assert m.weights_.shape == (k,) and m.weights_.sum() == pytest.approx(1.0)
    assert m.covariances_.shape == (k, 2, 2)
    traces = np.trace(m.covariances_, axis1=1, axis2=2)
    assert (np.diff(traces) <= 0).all()  # sorted by trace, descending
    assert np.allclose(m.covariances_, np.swapaxes(m.covariances_, 1, 2))
    assert (np.linalg.eigvalsh(m.covariances_) > 0).all()
    assert m.labels_.shape == (X.shape[0],) and m.labels_.max() < k
    assert m.responsibilities_.shape == (X.shape[0], k)
    np.testing.assert_allclose(m.responsibilities_.sum(1), 1.0)
    np.testing.assert_array_equal(m.responsibilities_.argmax(1), m.labels_)
    assert len(m.categories_) == k and m.elbo_.ndim == 1 and np.isfinite(m.elbo_).all()
    assert m.restart_elbos_.shape == (5,) and m.restart_agreement_[m.best_restart_] == 1.0
    assert set(m.get_params()) >= {"truncation", "concentration", "priors", "restarts"}


def test_recovers_known_clusters_and_categories(fitted):
    X, z, m = fitted
    optimal = adjusted_rand_index(z, log_responsibilities(X, WEIGHTS, COVS).argmax(1))
    # the criterion: ARI >= 0.95 x the Bayes-optimal ARI (labels from the true parameters)
    assert adjusted_rand_index(z, m.labels_) >= 0.95 * optimal
    assert sorted(m.categories_) == sorted(["shared:trait1+trait2", "specific:trait1", "specific:trait2",
                                            "non-prioritised"])
    # weights within 0.04 of the truth (binomial sd at N = 1500 is <= 0.013; clusters overlap)
    truth = dict(zip(["non-prioritised", "specific:trait1", "specific:trait2", "shared:trait1+trait2"], WEIGHTS))
    for cat, w in zip(m.categories_, m.weights_):
        assert w == pytest.approx(truth[cat], abs=0.04)


def test_posterior_summary_inference_data_and_plots(fitted, tmp_path):
    _, _, m = fitted
    draws = m.sample_posterior(50, seed=1)
    assert draws["weights"].shape == (50, m.n_components_)
    assert draws["covariances"].shape == (50, m.n_components_, 2, 2)
    np.testing.assert_allclose(draws["weights"].sum(1), 1.0)
    idata = m.to_inference_data(n=50)
    assert {"posterior", "sample_stats", "observed_data"} <= set(idata.groups())
    assert idata.posterior["covariances"].dims == ("chain", "draw", "cluster", "trait", "trait_")
    assert list(idata.posterior.attrs["categories"]) == m.categories_
    summary = m.summary(n=200)
    assert "weights[0]" in summary.index and {"mean", "sd"} <= set(summary.columns)
    for fig in (m.plot_clusters(), m.plot_elbo()):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=60)
        assert buf.tell() > 5000  # a real image, not an empty canvas
    path = tmp_path / "m.pt"
    m.save(path)
    m2 = bm.load_model(path)
    np.testing.assert_array_equal(m2.labels_, m.labels_)
    np.testing.assert_allclose(m2.sample_posterior(5, seed=3)["weights"], m.sample_posterior(5, seed=3)["weights"])


def test_same_seed_same_fit():
    X, _ = simulate(400, 3)
    a = fit(X, truncation=8, restarts=2, fit={"seed": 5})
    b = fit(X, truncation=8, restarts=2, fit={"seed": 5})
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.elbo_, b.elbo_)


def test_map_and_trait_names_from_dataframe():
    pd = pytest.importorskip("pandas")
    X, _ = simulate(800, 4)
    m = fit(pd.DataFrame(X, columns=["LDL", "HDL"]), truncation=10, fit={"method": "map", "seed": 0})
    assert set(m.categories_) == {"specific:LDL", "specific:HDL", "shared:LDL+HDL", "non-prioritised"}
    assert m.trait_names_ == ["LDL", "HDL"]


def test_larger_concentration_gives_more_clusters():
    # Theory: under Beta(1, alpha) sticks, the prior number of occupied clusters grows with
    # alpha (about alpha log N). Data from ONE Gaussian, so only the prior drives any split.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    small = fit(X, truncation=10, concentration=0.05, fit={"seed": 0})
    large = fit(X, truncation=10, concentration=100.0, fit={"seed": 0})
    assert large.n_components_ > small.n_components_
    assert large.weights_.max() < small.weights_.max()


def test_single_cluster_is_handled():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2)) @ np.array([[1.0, 0.9], [0.0, 0.3]])  # cov [[1, .9], [.9, .9]]
    m = fit(X, truncation=6, concentration=0.1, fit={"seed": 0})
    assert m.n_components_ == 1
    assert m.weights_.tolist() == [1.0] and (m.labels_ == 0).all()
    np.testing.assert_allclose(m.responsibilities_, 1.0)
    # the single covariance is the posterior mean: close to the sample second moment
    np.testing.assert_allclose(m.covariances_[0], X.T @ X / len(X), rtol=0.1, atol=0.03)
    assert m.categories_ == ["shared:trait1+trait2"]
    m.plot_clusters()


def test_one_trait_finds_the_null_cluster():
    # the gene-level use: single-trait effects, a non-prioritised (null-variance) cluster
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(scale=0.01, size=700), rng.normal(scale=0.5, size=300)])
    m = fit(x, truncation=10, fit={"seed": 0})
    assert m.covariances_.shape[1:] == (1, 1)
    assert m.categories_[-1] == "non-prioritised"
    assert m.covariances_[-1, 0, 0] == pytest.approx(0.01**2, rel=0.2)
    assert m.categories_[0] == "specific:trait1"


@pytest.mark.parametrize(
    "data, match",
    [
        (np.ones((2, 3)), "more variants"),
        (np.c_[np.random.default_rng(0).normal(size=20), np.full(20, 0.3)], "constant"),
        (np.c_[np.random.default_rng(0).normal(size=20), np.r_[np.nan, np.ones(19)]], "missing"),
        ("abc", "numeric"),
        ({"effects": np.random.default_rng(0).normal(size=(20, 2)), "sd": np.ones((20, 3))}, "sd has shape"),
    ],
)
def test_degenerate_inputs_raise_input_error(data, match):
    with pytest.raises(InputError, match=match):
        bm.get_model("dp_mixture").fit(data)


def test_settings_and_priors_are_validated():
    with pytest.raises(InputError, match="truncation"):
        bm.get_model("dp_mixture", truncation=1)
    with pytest.raises(InputError, match="covariance_prior"):
        bm.get_model("dp_mixture", covariance_prior="inverse-wishart")
    with pytest.raises(InputError, match="unknown prior"):
        bm.get_model("dp_mixture", priors={"scales": dist.HalfCauchy(1.0)})  # an LKJ prior, not Wishart
    with pytest.raises(InputError, match="not inside"):
        bm.get_model("dp_mixture", priors={"precision": dist.LKJCholesky(2, 1.0)})
    with pytest.raises(InputError, match="not inside"):
        bm.get_model("dp_mixture", priors={"concentration": dist.Normal(0.0, 1.0)})
    X, _ = simulate(100, 0)
    wrong = dist.Wishart(torch.tensor(5.0, dtype=F64), covariance_matrix=torch.eye(3, dtype=F64))
    with pytest.raises(InputError, match="shape"):
        bm.get_model("dp_mixture", priors={"precision": wrong}).fit(X)


def test_custom_priors_change_the_fit_as_theory_says():
    # A Wishart prior with many degrees of freedom (nu0 = 5000 pseudo-rows) and a small
    # inverse scale dominates 300 rows: the MAP precision is the conjugate posterior mode,
    # Sigma = (W0^{-1} + S) / (nu0 + N - p - 1), with S the scatter of the (scaled) rows when
    # one cluster takes them all. Closed form; 5% tolerance for the finite SVI optimisation.
    X, _ = simulate(300, 5)
    tight = dist.Wishart(torch.tensor(5000.0, dtype=F64), covariance_matrix=torch.eye(2, dtype=F64) * 100.0)
    m = fit(X, truncation=6, concentration=0.01, priors={"precision": tight}, fit={"seed": 0, "method": "map"})
    assert m.n_components_ == 1
    Xs = X / m.scale_
    expected = (0.01 * np.eye(2) + Xs.T @ Xs) / (5000 + 300 - 3) * m.scale_**2
    np.testing.assert_allclose(m.covariances_[0], expected, rtol=0.05, atol=0.05 * expected.max())
    g = fit(X, truncation=6, priors={"concentration": dist.Gamma(2.0, 1.0)}, fit={"seed": 0})
    assert "concentration" in g.sample_posterior(10)


def test_lkj_prior_and_noise_model():
    X, _ = simulate(600, 6)
    lkj = fit(X, truncation=8, covariance_prior="lkj", fit={"seed": 0})
    assert "specific:trait1" in lkj.categories_ and "non-prioritised" in lkj.categories_
    assert set(lkj.priors) == {"concentration", "scales", "corr_cholesky"}
    # mash-like noise: observed = true effect + N(0, s^2); the fitted Sigma_k is the effect
    # covariance, so the null cluster's variance is below the observed variance (0.01 + s^2).
    rng = np.random.default_rng(0)
    s = 0.1
    noisy = X + rng.normal(scale=s, size=X.shape)
    m = fit({"effects": noisy, "sd": np.full_like(X, s)}, truncation=8, restarts=2, fit={"seed": 0})
    null = np.argmin(np.trace(m.covariances_, axis1=1, axis2=2))
    assert np.trace(m.covariances_[null]) / 2 < 0.5 * (0.01 + s**2)


def test_custom_guide_runs():
    from pyro.infer.autoguide import AutoDelta, init_to_feasible

    X, _ = simulate(200, 7)
    guide = lambda model: AutoDelta(model, init_loc_fn=init_to_feasible)  # noqa: E731
    with warnings.catch_warnings():
        # Autoguides trace the model once with prior draws; torch's Wishart sampler warns
        # "Singular sample detected" on expanded batches (even Wishart(5, I)) and resamples.
        warnings.filterwarnings("ignore", "Singular sample detected", UserWarning)
        m = fit(X, truncation=4, guide=guide, fit={"seed": 0, "restarts": 2, "num_steps": 100})
    assert m.weights_.sum() == pytest.approx(1.0) and m.labels_.shape == (200,)


@pytest.mark.slow
def test_svi_agrees_with_nuts_on_a_tiny_case():
    # Two well-separated clusters, N = 120, K = 3. The mean-field posterior means of the kept
    # clusters' weights and covariances must lie within 3 NUTS posterior sds of NUTS's means
    # (mean-field centres are accurate even when its sds are not).
    X, _ = simulate(120, 8, weights=np.array([0.6, 0.4]), covs=np.array([np.eye(2) * 0.01, np.eye(2)]))
    # keep_mass 0.95: the empty third component's small weight (NUTS averages it over draws)
    # must not decide K*; both keep the two real clusters.
    svi = fit(X, truncation=3, keep_mass=0.95, fit={"seed": 0})
    with warnings.catch_warnings():
        # NUTS initialises from prior draws; torch's Wishart sampler warns on expanded batches
        warnings.filterwarnings("ignore", "Singular sample detected", UserWarning)
        nuts = fit(X, truncation=3, keep_mass=0.95, fit={"seed": 0, "method": "nuts", "num_samples": 200,
                                                         "warmup_steps": 200, "num_chains": 1})
    assert svi.n_components_ == nuts.n_components_ == 2
    dn, ds = nuts.sample_posterior(200, seed=0), svi.sample_posterior(2000, seed=0)
    for key in ("weights", "covariances"):
        mean_n, sd_n = dn[key].mean(0), dn[key].std(0)
        assert (np.abs(ds[key].mean(0) - mean_n) <= 3 * sd_n + 1e-6).all(), key
