"""susie_rss / shrink(method="susie"): closed-form updates against brute force, susieR, calibration, API."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyro
import pytest
import torch
from scipy import integrate, optimize, stats

import bayesmages as bm
from bayesmages.errors import InputError
from bayesmages.shrink.susie import (
    MISMATCH_RATIO,
    credible_sets,
    fit_susie_rss,
    mixture_quantiles,
    weak_direction_ratio,
)
from bayesmages.shrink.susie_model import adjust_z

DATA = Path(__file__).parent / "data"


def _ar1(m: int, rho: float) -> np.ndarray:
    i = np.arange(m)
    return rho ** np.abs(i[:, None] - i[None, :])


def test_single_effect_posterior_matches_brute_force_integration():
    # L = 1: q(b_1) is the exact posterior for the fitted V. Reference: the full multivariate-normal
    # likelihood N(z; R e_j b, R) integrated numerically over b ~ N(0, V), for every j.
    R = _ar1(8, 0.7)
    z = np.array([0.5, 2.0, 4.5, 3.9, 1.2, -0.3, 0.1, 0.7])
    fit = fit_susie_rss(z, R, L=1, polygenic=False, tol=1e-8)
    V = float(fit.V[0])
    assert V > 0
    mvn = stats.multivariate_normal
    marg, post_mean = [], []
    for j in range(8):
        def lik(b, j=j):
            return mvn.pdf(z, mean=R[:, j] * b, cov=R) * stats.norm.pdf(b, 0, np.sqrt(V))
        lo, hi = -40, 40
        p0 = integrate.quad(lik, lo, hi, points=[z[j]], limit=200, epsabs=0, epsrel=1e-11)[0]
        p1 = integrate.quad(lambda b, j=j: b * lik(b, j), lo, hi, points=[z[j]], limit=200, epsabs=0,
                                epsrel=1e-11)[0]
        marg.append(p0)
        post_mean.append(p1 / p0)
    alpha_ref = np.array(marg) / np.sum(marg)
    # quadrature error only (relative 1e-8 at most on these smooth integrands)
    np.testing.assert_allclose(fit.alpha[0], alpha_ref, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(fit.mu[0], post_mean, rtol=1e-6, atol=1e-8)


def test_empirical_bayes_V_maximises_the_marginal_likelihood():
    R = _ar1(10, 0.5)
    z = np.array([0.2, 1.0, 5.5, 2.5, 0.0, -1.0, 0.3, 0.4, -0.2, 0.9])
    fit = fit_susie_rss(z, R, L=1, polygenic=False, tol=1e-10)

    def neg_log_ml(logV):
        V = np.exp(logV)
        # marginal of z given j: N(0, R + V R e_j e_j' R); averaged over j with weight 1/m
        dens = [stats.multivariate_normal.pdf(z, cov=R + V * np.outer(R[:, j], R[:, j])) for j in range(10)]
        return -np.log(np.mean(dens))

    best = optimize.minimize_scalar(neg_log_ml, bounds=(-5, 8), method="bounded", options={"xatol": 1e-6})
    # The fixed point stops at a relative change 1e-3 in V (tolerance of _ser)
    assert fit.V[0] == pytest.approx(np.exp(best.x), rel=5e-3)


def test_pyro_model_density_is_the_rss_likelihood():
    R = _ar1(5, 0.6)
    z = torch.tensor([0.3, 2.0, 1.1, -0.4, 0.2], dtype=torch.float64)
    model = bm.get_model("susie_rss")
    values = {"gamma_0": torch.tensor(2), "beta_0": torch.tensor(1.5, dtype=torch.float64)}
    cond = pyro.poutine.condition(model.model, data=values)
    tr = pyro.poutine.trace(cond).get_trace(z, torch.as_tensor(R), torch.tensor([4.0], dtype=torch.float64))
    tr.compute_log_prob()
    b = np.zeros(5)
    b[2] = 1.5
    ref = stats.multivariate_normal.logpdf(z.numpy(), mean=R @ b, cov=R)
    assert float(tr.nodes["z"]["log_prob_sum"]) == pytest.approx(ref, rel=1e-10)


def test_pips_and_effects_agree_with_susieR():
    # R susieR 0.12.35 susie_rss(bhat, shat, R, n, var_y = 1, L = 10) on three replicates (tests/data/README.md).
    ref = np.load(DATA / "susier_rss_reference.npz")
    for k in range(3):
        s = ref["se"][k]
        z = adjust_z(ref["beta_hat"][k] / s, float(ref["n"]))
        fit = fit_susie_rss(z, ref["R"], L=10, polygenic=False)
        # Both stop at a tolerance 1e-3 (susieR on the ELBO, ours on PIPs/means) on the same objective:
        # PIPs agree to a few 1e-3 (measured max 0.003), effects to 1e-5 of per-allele units (max 3e-5
        # for effects up to 0.02).
        np.testing.assert_allclose(fit.pip, ref["pip"][k], atol=0.01)
        # the registered model with its defaults (growth allowed) does the same here, in beta_hat's units
        model = bm.get_model("susie_rss").fit((ref["beta_hat"][k], s, ref["R"], float(ref["n"])))
        np.testing.assert_allclose(model.pip_, fit.pip, atol=1e-12)
        np.testing.assert_allclose(model.mean_, ref["coef"][k], atol=1e-4)


def test_mixture_quantiles_match_a_root_finder():
    rng = np.random.default_rng(3)
    w = rng.dirichlet(np.ones(3), size=4).T
    means = rng.normal(0, 3, size=(3, 4))
    sds = np.abs(rng.normal(1, 0.3, size=(3, 4)))
    sds[0] = 0.0  # a point mass in every column
    for q in (0.05, 0.5, 0.95):
        got = mixture_quantiles(w, means, sds, (q,))[0]
        for c in range(4):
            def F(x, c=c, q=q):
                return sum(w[k, c] * ((x >= means[k, c]) if sds[k, c] == 0 else stats.norm.cdf(x, means[k, c],
                                                                                                   sds[k, c]))
                           for k in range(3)) - q
            # the quantile is either an atom (F jumps over q there) or a root of F
            atom = means[0, c]
            if F(atom - 1e-9) < 0 <= F(atom):
                assert got[c] == atom
            else:
                root = optimize.brentq(F, -50, 50, xtol=1e-12)
                assert got[c] == pytest.approx(root, abs=1e-8)


def _prob_inside(w, means, sds, lo, hi):
    """Posterior probability of [lo, hi] under the per-column mixture (atoms where sd = 0)."""
    safe = np.where(sds > 0, sds, 1.0)
    normal = stats.norm.cdf((hi - means) / safe) - stats.norm.cdf((lo - means) / safe)
    atom = ((means >= lo) & (means <= hi)).astype(float)
    return (w * np.where(sds > 0, normal, atom)).sum(axis=0)


def test_intervals_and_pips_are_calibrated_under_the_model():
    # Monte Carlo under the model's own prior (one effect of N(0, 36) on a random variant of an AR(1)
    # block). A calibrated posterior predicts its own hit rates: the sum of PIPs matches the number of
    # causal variants among them, and the posterior probability of each 90% interval (>= 0.9, more with
    # atoms) matches how often the interval holds the truth.
    rng = np.random.default_rng(11)
    m, reps = 30, 300
    R = _ar1(m, 0.8)
    F = np.linalg.cholesky(R)
    pip_sum = pip_var = n_causal_hit = 0.0
    hits = predicted = pred_var = 0.0
    off = []
    for _ in range(reps):
        b = np.zeros(m)
        j = rng.integers(m)
        b[j] = rng.normal(0, 6)
        z = R @ b + F @ rng.normal(size=m)
        fit = fit_susie_rss(z, R, L=1, polygenic=False)
        if not fit.active[0]:
            # empirical Bayes switched the effect off (V = 0): the posterior is "no effect" for sure
            off.append(abs(b[j]))
            continue
        w, mu, sd = fit.mixture()
        lo, hi = mixture_quantiles(w, mu, sd, (0.05, 0.95))
        p_in = _prob_inside(w, mu, sd, lo, hi)
        assert (p_in >= 0.9 - 1e-6).all()
        hits += ((b >= lo) & (b <= hi)).sum()
        predicted += p_in.sum()
        pred_var += (p_in * (1 - p_in)).sum()
        sel = fit.pip > 0.1
        pip_sum += fit.pip[sel].sum()
        pip_var += (fit.pip[sel] * (1 - fit.pip[sel])).sum()
        n_causal_hit += sel[j]
    # Differences within 3 Monte Carlo sds, + 3 events for the plugged-in empirical-Bayes V
    assert abs(pip_sum - n_causal_hit) <= 3 * np.sqrt(pip_var) + 3
    assert abs(hits - predicted) <= 3 * np.sqrt(pred_var) + 3
    # switched off only for effects near the noise level (|b| of a few z units)
    assert len(off) < 0.35 * reps and np.median(off) < 2.0
    # Not asserted: coverage of the causal variant alone, which this posterior does not promise (it is
    # coverage conditional on the truth): 0.59 here, as effects too small to detect get the interval {0}
    # and effects shared among neighbours in LD get a large atom at 0 (docs/shrink.md).


def test_polygenic_background_estimates_tau2():
    # Infinitesimal architecture on an AR(1) block: b ~ N(0, tau2 I), no sparse effects. The fitted
    # background should carry the signal with tau2 of the right order (MLE from one block of 300
    # variants; sampling sd of the estimate is about 25% here).
    rng = np.random.default_rng(2)
    m = 300
    R = _ar1(m, 0.6)
    F = np.linalg.cholesky(R)
    tau2 = 1.0
    est = []
    for _ in range(5):
        b = rng.normal(0, np.sqrt(tau2), size=m)
        z = R @ b + F @ rng.normal(size=m)
        fit = fit_susie_rss(z, R, L=10, max_L=10, polygenic=True)
        est.append(fit.tau2)
        assert np.mean((fit.mean - b) ** 2) < np.mean(b**2)  # better than predicting zero
    assert 0.5 < np.mean(est) < 1.5


def test_growth_and_background_refused_when_ld_does_not_fit():
    rng = np.random.default_rng(4)
    m = 200
    R = _ar1(m, 0.9)
    b = np.zeros(m)
    b[rng.choice(m, 25, replace=False)] = rng.normal(0, 8, size=25)
    z_ok = R @ b + np.linalg.cholesky(R) @ rng.normal(size=m)
    z_bad = z_ok + rng.normal(size=m)  # noise outside what R allows (as from another sample's LD)
    ok = fit_susie_rss(z_ok, R, L=10, max_L=40)
    bad = fit_susie_rss(z_bad, R, L=10, max_L=40)
    assert ok.extra["ld_mismatch_ratio"] < MISMATCH_RATIO < bad.extra["ld_mismatch_ratio"]
    assert ok.alpha.shape[0] > 10
    assert bad.alpha.shape[0] == 10 and not bad.polygenic
    d, U = np.linalg.eigh(R)
    assert weak_direction_ratio(z_bad, d, U)[0] > 10 * weak_direction_ratio(z_ok, d, U)[0]


def test_credible_sets_hold_the_causal_variant_and_are_pure():
    R = _ar1(40, 0.95)
    rng = np.random.default_rng(0)
    b = np.zeros(40)
    b[[5, 30]] = [10.0, -9.0]
    z = R @ b + np.linalg.cholesky(R) @ rng.normal(size=40)
    fit = fit_susie_rss(z, R, L=5, polygenic=False)
    sets = credible_sets(fit, R)
    assert len(sets) == 2
    held = set()
    for cs in sets:
        assert cs["coverage"] >= 0.95 and cs["purity"] >= 0.5
        held |= set(cs["variants"].tolist())
    assert {5, 30} <= held


def test_shrink_method_susie_columns_units_and_symmetry():
    ref = np.load(DATA / "susier_rss_reference.npz")
    b, s, R, n = ref["beta_hat"][0], ref["se"][0], ref["R"], float(ref["n"])
    out = bm.shrink.shrink(b, s, R, method="susie", n=n)
    assert list(out.columns) == [*bm.shrink.OUTPUT_COLUMNS, "pip", "cs"]
    # (the interval is centred at the LD-conditional estimate, not at the posterior mean: only lower < upper)
    assert (out.lower < out.upper).all()
    assert (out.sd >= 0).all() and out.pip.between(0, 1).all()
    assert out.loc[out.pip > 0.9, "cs"].str.startswith("1:L").all()
    scaled = bm.shrink.shrink(7 * b, 7 * s, R, method="susie", n=n)
    np.testing.assert_allclose(scaled.beta_shrunk, 7 * out.beta_shrunk, rtol=1e-9, atol=1e-15)
    flipped = bm.shrink.shrink(-b, s, R, method="susie", n=n)
    np.testing.assert_allclose(flipped.beta_shrunk, -out.beta_shrunk, rtol=1e-9, atol=1e-15)
    # two blocks, n per variant (block medians), same answer per block
    two = bm.shrink.shrink([b, b], [s, s], [R, R], method="susie", n=np.full(2 * b.size, n))
    np.testing.assert_allclose(two.beta_shrunk[b.size:], out.beta_shrunk, rtol=1e-12)
    assert set(two.cs[b.size:]) - {""} and all(c.startswith("2:") for c in set(two.cs[b.size:]) - {""})


def test_shrink_n_checks():
    b, s, R = np.array([0.01, 0.0]), np.array([0.003, 0.003]), np.eye(2)
    with pytest.warns(UserWarning, match="outside the range"):
        bm.shrink.shrink(b, s, R, method="susie", n=200)
    with pytest.warns(UserWarning, match="outside the range"):
        bm.shrink.shrink(b, s, R, method="susie", n=5e6)
    with pytest.raises(InputError, match="n must be a finite"):
        bm.shrink.shrink(b, s, R, method="susie", n=-3)
    with pytest.raises(InputError, match="one per variant"):
        bm.shrink.shrink(b, s, R, method="susie", n=[1000, 2000, 3000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bm.shrink.shrink(b, s, R, method="susie", n=50_000)
    with pytest.warns(UserWarning, match="neural shrinker was trained on"):
        bm.shrink.shrink(b, s, R, n=1000)
    with pytest.raises(InputError, match="method must be one of"):
        bm.shrink.shrink(b, s, R, method="lasso")


def test_ld_mismatch_flags_a_flipped_allele():
    rng = np.random.default_rng(9)
    m = 60
    R = _ar1(m, 0.9)
    b = np.zeros(m)
    b[20] = 8.0
    z = R @ b + np.linalg.cholesky(R) @ rng.normal(size=m)
    se = np.full(m, 0.01)
    clean = bm.shrink.ld_mismatch(z * se, se, R)
    z_bad = z.copy()
    z_bad[22] = -z_bad[22]  # allele flipped in the GWAS but not in the panel
    bad = bm.shrink.ld_mismatch(z_bad * se, se, R)
    assert int(bad.p_value.idxmin()) in (21, 22, 23)
    assert bad.p_value.min() < 1e-8 < clean.p_value.drop(index=[19, 20, 21]).min()
    assert bad.attrs["weak_ratio"] > clean.attrs["weak_ratio"]


def test_registered_model_fit_summary_save_load(tmp_path):
    ref = np.load(DATA / "susier_rss_reference.npz")
    model = bm.get_model("susie_rss", L=10).fit((ref["beta_hat"][1], ref["se"][1], ref["R"], float(ref["n"])))
    summ = model.summary()
    assert list(summ.columns) == ["mean", "sd", "lower", "upper", "credible_lower", "credible_upper", "pip", "cs"]
    draws = model.sample_posterior(4000, seed=0)["beta"]
    # draws follow the fitted mixture: their mean matches the posterior mean (Monte Carlo, 4,000 draws)
    np.testing.assert_allclose(draws.mean(0), model.mean_, atol=5 * model.sd_.max() / np.sqrt(4000))
    model.save(tmp_path / "m.pt")
    back = bm.load_model(tmp_path / "m.pt")
    pd.testing.assert_frame_equal(back.summary(), summ)
    with pytest.raises(InputError, match="L must be a positive integer"):
        bm.get_model("susie_rss", L=0)


def test_cli_shrink_method_susie(tmp_path):
    ref = np.load(DATA / "susier_rss_reference.npz")
    m = ref["R"].shape[0]
    gwas = pd.DataFrame({"SNP": [f"rs{i}" for i in range(m)], "CHR": 1, "POS": np.arange(m) + 1,
                         "BETA": ref["beta_hat"][2], "SE": ref["se"][2], "N": int(ref["n"])})
    gwas.to_csv(tmp_path / "g.tsv", sep="\t", index=False)
    np.save(tmp_path / "b.npy", ref["R"])
    proc = subprocess.run([sys.executable, "-m", "bayesmages", "shrink", "--gwas", str(tmp_path / "g.tsv"), "--ld",
                           str(tmp_path / "b.npy"), "--out", str(tmp_path / "o.csv"), "--method", "susie", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    assert {"pip", "cs"} <= set(out.columns)
    api = bm.shrink.shrink(ref["beta_hat"][2], ref["se"][2], ref["R"], method="susie", n=float(ref["n"]))
    np.testing.assert_allclose(out.beta_shrunk, api.beta_shrunk, rtol=1e-9)
