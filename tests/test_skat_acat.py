"""ACAT-V / ACAT-O and the Cauchy combination: closed forms, weights and calibration under the null."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bayesmages as bm
from bayesmages.errors import InputError
from bayesmages.stats.multitest import cauchy, cauchy_statistic


def test_cauchy_combination_closed_form():
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = int(rng.integers(1, 8))
        p = rng.uniform(1e-6, 1.0, k)
        w = rng.uniform(0.1, 2.0, k)
        t = np.sum(w / w.sum() * np.tan((0.5 - p) * np.pi))
        assert cauchy_statistic(p, w) == pytest.approx(t, rel=1e-9, abs=1e-9)
        # P(C > t) for a standard Cauchy C (the combination's null law), in its textbook form
        assert cauchy(p, w) == pytest.approx(0.5 - np.arctan(t) / np.pi, rel=1e-9)
    # one p-value, or equal p-values with any weights: the combination returns it, to relative
    # accuracy also far in the tail (the textbook form would cancel to 0 below ~1e-17)
    for p in (0.7, 1e-5, 1e-40, 1e-250):
        assert cauchy([p]) == pytest.approx(p, rel=1e-12)
        assert cauchy([p, p, p], [1.0, 5.0, 0.5]) == pytest.approx(p, rel=1e-12)
    with pytest.raises(InputError, match="p-value"):
        cauchy([0.5, 1.5])
    with pytest.raises(InputError, match="weights"):
        cauchy([0.5, 0.5], [1.0, -1.0])


def test_cauchy_combination_is_exactly_uniform_for_independent_p():
    """Weighted sums of independent standard Cauchy variables are standard Cauchy, so the combination
    of independent uniform p-values is exactly uniform. 100,000 draws of 5 weighted p-values: the
    rejection rates at 0.05 / 0.01 / 1e-3 lie in their binomial 99.9 % intervals."""
    rng = np.random.default_rng(1)
    w = np.array([0.1, 0.5, 1.0, 2.0, 3.0])
    draws = 100_000
    u = rng.random((draws, 5))
    t = (np.tan((0.5 - u) * np.pi) * w / w.sum()).sum(1)
    p = np.arctan2(1.0, t) / np.pi
    # the vectorised form above is the function's formula: spot-check it against the function
    for i in range(50):
        assert p[i] == pytest.approx(cauchy(u[i], w), rel=1e-12)
    for alpha in (0.05, 0.01, 1e-3):
        lo, hi = stats.binom.ppf([0.0005, 0.9995], draws, alpha)
        assert lo <= (p < alpha).sum() <= hi


def _sim(seed, n=1000, p=15, effect=0.0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    maf = np.concatenate([rng.uniform(0.0005, 0.003, 4), rng.uniform(0.01, 0.05, p - 4)])  # some very rare
    Z = rng.binomial(2, maf, size=(n, p)).astype(float)
    y = 0.3 * X[:, 0] + effect * Z[:, 5] + rng.normal(size=n)
    return Z, X, y


def test_acat_v_weights_and_very_rare_burden():
    """ACAT-V by hand: single-variant score tests from an explicit n x n projection, weights
    w_j^2 MAF_j (1 - MAF_j), and the burden of the variants with MAC <= 10 weighted at their mean MAF."""
    Z, X, y = _sim(2, effect=0.3)
    null = bm.skat.fit_null(y, X)
    res = bm.skat.test(Z, null, test="acat-v")
    maf = Z.mean(0) / 2
    mac = Z.sum(0)
    rare = (mac <= 10) & (mac > 0)  # monomorphic columns are dropped by QC
    assert res.extra["n_very_rare"] == rare.sum() > 0
    X1 = np.column_stack([np.ones(y.size), X])
    P0 = np.eye(y.size) - X1 @ np.linalg.solve(X1.T @ X1, X1.T)
    r = P0 @ y
    s2 = r @ r / (y.size - X1.shape[1])
    dense = mac > 10
    z = (Z[:, dense].T @ r) / np.sqrt(s2 * np.einsum("ij,ik,kj->j", Z[:, dense], P0, Z[:, dense]))
    p_single = 2 * stats.norm.sf(np.abs(z))
    w = stats.beta.pdf(maf, 1, 25)
    b = Z[:, rare] @ w[rare]
    p_burden = stats.chi2.sf((b @ r) ** 2 / (s2 * b @ P0 @ b), 1)
    m = maf[rare].mean()
    weights = np.concatenate([[stats.beta.pdf(m, 1, 25) ** 2 * m * (1 - m)],
                              w[dense] ** 2 * maf[dense] * (1 - maf[dense])])
    expected = cauchy(np.concatenate([[p_burden], p_single]), weights)
    assert res.p_value == pytest.approx(expected, rel=1e-9)
    assert res.extra["p_very_rare_burden"] == pytest.approx(p_burden, rel=1e-9)


def test_acat_o_components_and_extra_pvalues():
    Z, X, y = _sim(3, effect=0.4)
    null = bm.skat.fit_null(y, X)
    res = bm.skat.test(Z, null, test="acat-o", maf_masks=[0.01, 0.5], extra_pvalues={"ecskat": 0.2})
    comps = res.extra["components"]
    assert set(comps) == {f"{t}_{w}_maf<{m}" for t in ("burden", "skat", "acat-v") for w in ("b1_25", "b1_1")
                          for m in ("0.01", "0.5")} | {"ecskat"}
    # each component is the corresponding stand-alone test on the mask's variants
    keep = Z.mean(0) / 2 < 0.01
    assert comps["skat_b1_1_maf<0.01"] == bm.skat.test(Z[:, keep], null, test="skat", weights_beta=(1, 1)).p_value
    assert comps["acat-v_b1_25_maf<0.5"] == bm.skat.test(Z, null, test="acat-v").p_value
    assert res.p_value == pytest.approx(cauchy(list(comps.values())), rel=1e-12)
    with pytest.raises(InputError, match="maf_masks"):
        bm.skat.test(Z, null, test="acat-o", maf_masks=[2.0])


@pytest.mark.parametrize("test", ["acat-v", "acat-o"])
def test_acat_uniform_under_the_null(test):
    """400 null phenotypes on fixed genotypes (n = 1,000, 15 variants, 4 of them very rare): the p-values
    are uniform. Checked by the Kolmogorov-Smirnov test (reject only at p < 1e-3) and the rejection
    count at 0.1 in its binomial 99.9 % interval. (The combination's tail accuracy is its theorem's;
    the rate at small alpha is measured in bench/skat.py's type-I part.)"""
    Z, X, _ = _sim(4)
    rng = np.random.default_rng(5)
    ps = []
    for _ in range(400):
        y = 0.3 * X[:, 0] + rng.normal(size=X.shape[0])
        ps.append(bm.skat.test(Z, bm.skat.fit_null(y, X), test=test).p_value)
    ps = np.array(ps)
    assert stats.kstest(ps, "uniform").pvalue > 1e-3
    lo, hi = stats.binom.ppf([0.0005, 0.9995], ps.size, 0.1)
    assert lo <= (ps < 0.1).sum() <= hi


def test_run_sets_acat_o_rows_carry_the_components():
    Z, X, y = _sim(6, effect=0.4)
    ids = [f"v{j}" for j in range(Z.shape[1])]
    sets = {"g1": ids[:8], "g2": ids[8:]}
    df = bm.skat.run_sets(Z, ids, sets, y, X, test="acat-o", acat_ecskat=True)
    null = bm.skat.fit_null(y, X)
    direct = bm.skat.test(Z[:, :8], null, test="acat-o",
                          extra_pvalues={"ecskat": bm.skat.ecskat(Z[:, :8], y, X).p_value})
    row = df.iloc[0]
    assert row["p_value"] == pytest.approx(direct.p_value, rel=1e-12)
    for name, p in direct.extra["components"].items():
        assert row[f"p_{name}"] == pytest.approx(p, rel=1e-12)


def test_cli_acat_o_and_compat(tmp_path):
    """The CLI runs ACAT-O (a p_<component> column per combined test) and compat R (R's methods)."""
    import pandas as pd

    from bayesmages.cli import main

    Z, _, y = _sim(7, n=300, effect=0.5)
    ids = [f"v{j}" for j in range(Z.shape[1])]
    iid = [f"s{i}" for i in range(y.size)]
    pd.DataFrame(Z, columns=ids).assign(IID=iid).to_csv(tmp_path / "g.csv", index=False)
    pd.DataFrame({"IID": iid, "y": y}).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame({"SET": ["a"] * 8 + ["b"] * 7, "SNP": ids}).to_csv(tmp_path / "s.csv", index=False)
    base = ["skat", "--genotypes", str(tmp_path / "g.csv"), "--phenotype", str(tmp_path / "p.csv"),
            "--sets", str(tmp_path / "s.csv"), "--quiet"]
    assert main([*base, "--test", "acat-o", "--maf-masks", "0.05", "--out", str(tmp_path / "o.csv")]) == 0
    out = pd.read_csv(tmp_path / "o.csv")
    assert {"p_skat_b1_25_maf<0.05", "p_acat-v_b1_1_maf<0.05"} <= set(out.columns)
    assert main([*base, "--test", "skat-o", "--compat", "R", "--out", str(tmp_path / "r.csv")]) == 0
    assert set(pd.read_csv(tmp_path / "r.csv")["method"]) <= {"optimal.adj", "optimal.adj+liu-integral"}
