"""LD-deconvolved observations for the association types (bayesmages.cluster.observations, issue 13)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmages.cluster.observations import deconvolved_effects, deconvolved_observations
from bayesmages.errors import InputError
from bayesmages.pipeline import steps


def _ar1(m: int, rho: float) -> np.ndarray:
    i = np.arange(m)
    return rho ** np.abs(i[:, None] - i[None, :])


def test_identity_ld_gives_the_gwas_effects():
    # closed form at R = I: nothing to subtract, whatever the shrunk effects are
    rng = np.random.default_rng(0)
    bh, b = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    se = rng.uniform(0.5, 2.0, size=(30, 2))
    x = deconvolved_effects(bh, se, b, [np.eye(10), np.eye(20)])
    np.testing.assert_array_equal(x, bh)


def test_matches_the_sum_over_neighbours():
    # x_tj = beta_hat_tj - se_tj sum_{k != j} R_jk b_tk / se_tk, written out as a loop
    rng = np.random.default_rng(1)
    blocks = [_ar1(7, 0.8), _ar1(5, -0.5)]
    m = 12
    bh, b = rng.normal(size=(m, 3)), rng.normal(size=(m, 3))
    se = rng.uniform(0.5, 2.0, size=(m, 3))
    expect = np.empty((m, 3))
    for a, R in zip((0, 7), blocks):
        n = R.shape[0]
        for t in range(3):
            for j in range(n):
                others = sum(R[j, k] * b[a + k, t] / se[a + k, t] for k in range(n) if k != j)
                expect[a + j, t] = bh[a + j, t] - se[a + j, t] * others
    np.testing.assert_allclose(deconvolved_effects(bh, se, b, blocks), expect, rtol=1e-12, atol=1e-12)
    # a 1-d input is one trait
    np.testing.assert_allclose(deconvolved_effects(bh[:, 0], se[:, 0], b[:, 0], blocks)[:, 0], expect[:, 0])


def test_oracle_shrinker_leaves_the_true_effect_plus_se_noise():
    # With b = the true effects, x_j / se_j - beta_j / se_j = e_j ~ N(0, R): mean 0, variance R_jj = 1. The
    # e_j of a block are correlated (AR(1), rho 0.9): over 80 blocks of 400 the sd of the pooled mean is
    # sqrt(1'R1 / 400^2 / 80) ~ sqrt(19 / 400 / 80) = 0.024 and that of the pooled variance about
    # sqrt(2 tr(R^2) / 400^2 / 80) ~ 0.024; tolerances 0.1 are ~4 sd. The shrinker's misfit is then ~1 and
    # the noise stays se^2.
    rng = np.random.default_rng(2)
    R = _ar1(400, 0.9)
    F = np.linalg.cholesky(R)
    devs, nvs = [], []
    for _ in range(80):
        lam = np.zeros(400)
        lam[rng.choice(400, 5, replace=False)] = rng.normal(0, 6, 5)
        z = R @ lam + F @ rng.normal(size=400)
        se = np.full(400, 0.01)
        x, nv = deconvolved_observations(z * se, se, lam * se, [R])
        devs.append(x[:, 0] / se - lam)
        nvs.append(nv[:, 0] / se**2)
    dev = np.concatenate(devs)
    assert abs(dev.var() - 1.0) < 0.1
    assert abs(dev.mean()) < 0.1
    assert np.mean(nvs) < 1.1  # floored at 1; the block mean of r^2 estimates 1


def test_misfit_inflates_the_noise_of_its_block_and_trait_only():
    # b = 0 against a strong signal: that block's noise grows by the mean squared residual, others keep se^2
    R = _ar1(50, 0.5)
    z = np.zeros((100, 2))
    z[:50, 0] = R[:, 10] * 20.0  # a z = 20 signal at variant 10 and its LD
    se = np.full((100, 2), 0.1)
    x, nv = deconvolved_observations(z * se, se, np.zeros_like(z), [R, np.eye(50)])
    np.testing.assert_allclose(x, z * se)
    c = np.mean(z[:50, 0] ** 2)
    np.testing.assert_allclose(nv[:50, 0], 0.01 * c)
    np.testing.assert_allclose(nv[50:], 0.01)
    np.testing.assert_allclose(nv[:, 1], 0.01)


def test_bad_input_is_one_clear_error():
    ok = np.ones((4, 2))
    with pytest.raises(InputError, match="cover 3 rows"):
        deconvolved_effects(ok, ok, ok, [np.eye(3)])
    with pytest.raises(InputError, match="standard errors positive"):
        deconvolved_effects(ok, -ok, ok, [np.eye(4)])
    with pytest.raises(InputError, match="one \\(m, p\\) shape"):
        deconvolved_effects(ok, ok[:, :1], ok, [np.eye(4)])
    with pytest.raises(InputError, match="not square"):
        deconvolved_effects(ok, ok, ok, [np.ones((4, 3))])


def _long_table(m: int, traits: list[str], pip: bool, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t in traits:
        bh = rng.normal(0, 0.01, m)
        bh[:20] += rng.normal(0, 0.1, 20)
        rows.append(pd.DataFrame({"SNP": [f"v{i}" for i in range(m)], "trait": t, "beta_hat": bh, "se": 0.01,
                                  "beta_shrunk": 0.5 * bh, "sd": 0.005, **({"pip": 0.1} if pip else {})}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize(("types_from", "pip", "with_blocks", "deconvolved"), [
    ("auto", False, True, False),   # nn-like table (no PIPs): the previous rule
    ("auto", True, False, False),   # no LD given: the previous rule
    ("auto", True, True, True),     # susie table and LD: deconvolved
    ("deconvolved", False, True, True),
    ("shrunk", True, True, False),
    (None, True, True, False),      # the default: the previous rule
])
def test_cluster_fits_types_from(types_from, pip, with_blocks, deconvolved):
    traits = ["A", "B"]
    table = _long_table(200, traits, pip)
    blocks = [_ar1(120, 0.6), _ar1(80, 0.3)] if with_blocks else None
    chosen = {} if types_from is None else {"types_from": types_from}
    fits = steps.cluster_fits(table, traits, {"A": "ka", "B": "kb"}, seed=0, truncation=5, restarts=1,
                              select="quantile", quantile=0.9, blocks=blocks, **chosen)
    spec, kwargs = fits["cluster_multi"]
    assert ("observed" in kwargs) is deconvolved
    assert spec["types"] == ("probabilities-v5-deconvolved" if deconvolved else "probabilities-v4")
    if deconvolved:
        wide = table.pivot(index="SNP", columns="trait")
        order = [f"v{i}" for i in range(200)]
        expect = deconvolved_effects(wide["beta_hat"].loc[order, traits].to_numpy(), wide["se"].loc[order, traits]
                                     .to_numpy(), wide["beta_shrunk"].loc[order, traits].to_numpy(), blocks)
        np.testing.assert_allclose(kwargs["observed"].to_numpy(), expect)
        assert list(kwargs["observed"].index) == order


def test_cluster_fits_refuses_bad_types_from():
    table = _long_table(50, ["A", "B"], False)
    args = dict(seed=0, truncation=5, restarts=1, select="quantile", quantile=0.9)
    with pytest.raises(InputError, match="types_from: expected one of"):
        steps.cluster_fits(table, ["A", "B"], {"A": "a", "B": "b"}, types_from="raw", **args)
    with pytest.raises(InputError, match="needs the LD blocks"):
        steps.cluster_fits(table, ["A", "B"], {"A": "a", "B": "b"}, types_from="deconvolved", **args)
    # one trait: no multi-trait fit, but a bad value is still refused
    with pytest.raises(InputError, match="types_from: expected one of"):
        steps.cluster_fits(_long_table(50, ["A"], False), ["A"], {"A": "a"}, types_from="raw", **args)


def test_cluster_step_types_the_deconvolved_observations(tmp_path):
    # the step writes probabilities computed from the observations it is given (rows sum to one) and a
    # variant whose observed effect is strong in both traits is typed shared although its shrunk effect in
    # the second trait is zero (what the shrinker removes, the observation keeps)
    rng = np.random.default_rng(3)
    m = 600
    X = rng.normal(0, 0.01, (m, 2))
    X[:40, 0] += rng.normal(0, 0.2, 40)
    X[40:80, 1] += rng.normal(0, 0.2, 40)
    X[80:120] += rng.normal(0, 0.2, (40, 2))
    idx = pd.Index([f"v{i}" for i in range(m)], name="SNP")
    effects = pd.DataFrame(X, index=idx, columns=["A", "B"])
    obs = effects.copy()
    obs.iloc[0] = [0.5, 0.5]
    effects.iloc[0] = [0.5, 0.0]
    noise = pd.DataFrame(np.full((m, 2), 1e-4), index=idx, columns=["A", "B"])
    steps.cluster_effects(tmp_path, effects, truncation=6, restarts=1, seed=0, progress=False,
                          selected=np.abs(X).max(1) > 0.02, observed=obs, observed_noise=noise)
    out = pd.read_csv(tmp_path / "variants.csv")
    P = out.filter(like="p_").drop(columns=["p_pruned"])
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-9)
    assert out.loc[0, "type"] == "shared:A+B"


def test_association_types_null_scales_override():
    # known noise (the deconvolved observations): one null component, N(0, noise); the default keeps the
    # model's grid of null scales (heavy-tailed shrunk nulls)
    import bayesmages as bm

    rng = np.random.default_rng(4)
    X = rng.normal(0, 0.1, (300, 2))
    X[:30, 0] += rng.normal(0, 1.0, 30)
    model = bm.get_model("dp_mixture", truncation=4, restarts=1, trait_names=["A", "B"])
    model.fit(X, seed=0, num_steps=50)
    noise = np.full((300, 2), 0.01)
    model.association_types(X, noise_var=noise)
    assert int(np.sum(model.type_library_.type_index == 0)) == len(model.type_null_scales)
    P = model.association_types(X, noise_var=noise, null_scales=(0.0,))
    assert int(np.sum(model.type_library_.type_index == 0)) == 1
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-9)
