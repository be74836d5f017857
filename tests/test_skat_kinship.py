"""Related samples: the EMMAX null model (bm.skat.fit_null_kinship) against R SKAT's SKAT_NULL_emmaX,
an explicit n x n computation, a direct REML optimisation, and its input errors (API and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

import bayesmages as bm
from bayesmages.cli import main
from bayesmages.errors import InputError

R_EXAMPLES = Path(__file__).resolve().parent / "data" / "skat_reference" / "r_examples"


@pytest.fixture(scope="module")
def family():
    ref = json.loads((R_EXAMPLES / "reference.json").read_text())["kinship"]
    y = pd.read_csv(R_EXAMPLES / "fam_y.csv")["y"].to_numpy(float)
    X = pd.read_csv(R_EXAMPLES / "fam_X.csv").to_numpy(float)
    Z = pd.read_csv(R_EXAMPLES / "fam_Z.csv").to_numpy(float)
    K = pd.read_csv(R_EXAMPLES / "fam_K.csv.gz").to_numpy(float)
    return ref, y, X, Z, K, bm.skat.fit_null_kinship(y, X, K)


def test_variance_components_match_r(family):
    """R's va, ve (EMMA REML: grid + uniroot, esp 1e-10). Tolerance 1e-5 relative (measured 5e-7)."""
    ref, *_, null = family
    assert null.sigma_g2 == pytest.approx(ref["va"], rel=1e-5)
    assert null.sigma_e2 == pytest.approx(ref["ve"], rel=1e-5)


def test_skat_family_with_kinship_matches_r(family):
    """R's kinship-model SKAT p = 0.212 (the unrelated model gives 0.154). Tolerances from the reference
    README: Davies abs 1e-6 + rel 1e-3 (measured 6e-8 relative), burden (exact chi2_1) rel 1e-6 (measured
    4e-7: the variance components agree to 5e-7), SKAT-O rel 1e-2 (measured 2e-5)."""
    ref, y, X, Z, _, null = family
    p_skat = bm.skat.test(Z, null, test="skat").p_value
    assert abs(p_skat - ref["davies"]) <= 1e-6 + 1e-3 * ref["davies"]
    assert bm.skat.test(Z, null, test="burden").p_value == pytest.approx(ref["burden"], rel=1e-6)
    assert bm.skat.test(Z, null, test="skat-o").p_value == pytest.approx(ref["optimal.adj"], rel=1e-2)
    unrelated = bm.skat.test(Z, bm.skat.fit_null(y, X), test="skat").p_value
    assert unrelated == pytest.approx(ref["unrelated_davies"], rel=1e-3)


def test_scores_and_covariance_are_the_explicit_gls_projection(family):
    """G' P y and G' P G against P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1 built as n x n matrices."""
    _, y, X, Z, K, null = family
    n = y.size
    V = null.sigma_g2 * K + null.sigma_e2 * np.eye(n)
    Vi = np.linalg.inv(V)
    X1 = np.column_stack([np.ones(n), X])
    P = Vi - Vi @ X1 @ np.linalg.solve(X1.T @ Vi @ X1, X1.T @ Vi)
    G = Z[:, :8]
    S, W = null.scores_and_cov(G)
    np.testing.assert_allclose(S, G.T @ P @ y, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(W, G.T @ P @ G, rtol=1e-8, atol=1e-10)


def test_reml_is_the_maximum_of_the_restricted_likelihood():
    """Against a direct optimisation of the REML log-likelihood written with n x n matrices (no
    eigendecomposition): both variance components within 1e-4 relative."""
    rng = np.random.default_rng(4)
    fam = np.repeat(np.arange(40), 5)
    n = fam.size
    K = np.where(fam[:, None] == fam[None, :], 0.5, 0.0) + 0.5 * np.eye(n)
    X = rng.normal(size=(n, 2))
    y = X @ [0.3, -0.2] + rng.multivariate_normal(np.zeros(n), 0.8 * K + 0.5 * np.eye(n))
    null = bm.skat.fit_null_kinship(y, X, K)
    X1 = np.column_stack([np.ones(n), X])

    def neg_reml(t):
        V = np.exp(t[0]) * K + np.exp(t[1]) * np.eye(n)
        Vi = np.linalg.inv(V)
        XVX = X1.T @ Vi @ X1
        P = Vi - Vi @ X1 @ np.linalg.solve(XVX, X1.T @ Vi)
        return 0.5 * (np.linalg.slogdet(V)[1] + np.linalg.slogdet(XVX)[1] + y @ P @ y)

    opt = optimize.minimize(neg_reml, x0=[0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12})
    assert null.sigma_g2 == pytest.approx(np.exp(opt.x[0]), rel=1e-4)
    assert null.sigma_e2 == pytest.approx(np.exp(opt.x[1]), rel=1e-4)


def test_bad_kinship_matrices_are_named():
    rng = np.random.default_rng(0)
    y = rng.normal(size=30)
    K = np.eye(30)
    with pytest.raises(InputError, match=r"shape \(29, 29\), expected \(30, 30\)"):
        bm.skat.fit_null_kinship(y, None, K[:29, :29])
    asym = K.copy()
    asym[0, 1] = 0.3
    with pytest.raises(InputError, match="not symmetric"):
        bm.skat.fit_null_kinship(y, None, asym)
    neg = K.copy()
    neg[0, 1] = neg[1, 0] = 2.0  # eigenvalue 1 - 2 < 0
    with pytest.raises(InputError, match="not positive semi-definite"):
        bm.skat.fit_null_kinship(y, None, neg)
    nan = K.copy()
    nan[3, 3] = np.nan
    with pytest.raises(InputError, match=r"K\[3, 3\] is not finite"):
        bm.skat.fit_null_kinship(y, None, nan)
    with pytest.raises(InputError, match="kinship matrix K is required"):
        bm.skat.fit_null_kinship(y, None, None)
    with pytest.raises(InputError, match="trait 'continuous'"):
        bm.skat.run_sets(np.ones((30, 2)), ["a", "b"], {"s": ["a"]}, (y > 0).astype(float), trait="binary",
                         kinship=K)


@pytest.fixture
def fam_files(tmp_path, family):
    _, y, _, Z, K, _ = family
    n = 200  # a subset keeps the CLI test fast
    ids = [f"P{i}" for i in range(n)]
    G = Z[:n, :12]
    snps = [f"v{j}" for j in range(G.shape[1])]
    pd.DataFrame(G, columns=snps).assign(IID=ids)[["IID", *snps]].to_csv(tmp_path / "geno.csv", index=False)
    pd.DataFrame({"IID": ids, "y": y[:n]}).to_csv(tmp_path / "pheno.csv", index=False)
    pd.DataFrame({"SET": ["g1"] * 6 + ["g2"] * 6, "SNP": snps}).to_csv(tmp_path / "sets.csv", index=False)
    order = np.random.default_rng(1).permutation(n)  # the kinship file's own sample order
    kin = pd.DataFrame(K[:n, :n][np.ix_(order, order)], columns=[ids[i] for i in order])
    kin.insert(0, "IID", [ids[i] for i in order])
    kin.to_csv(tmp_path / "kin.csv", index=False)
    return tmp_path, G, y[:n], K[:n, :n], ids


def test_cli_kinship_end_to_end(fam_files):
    d, G, y, K, _ = fam_files
    out = d / "res.csv"
    rc = main(["skat", "--genotypes", str(d / "geno.csv"), "--phenotype", str(d / "pheno.csv"), "--sets",
               str(d / "sets.csv"), "--kinship", str(d / "kin.csv"), "--out", str(out), "--quiet"])
    assert rc == 0
    table = pd.read_csv(out)
    null = bm.skat.fit_null_kinship(y, None, K)
    assert table["p_value"].tolist() == pytest.approx(
        [bm.skat.test(G[:, :6], null).p_value, bm.skat.test(G[:, 6:], null).p_value], rel=1e-8)  # CSV: 10 digits


def test_cli_kinship_errors_exit_2(fam_files, capsys):
    d, *_ = fam_files
    kin = pd.read_csv(d / "kin.csv")
    kin.iloc[:-1].to_csv(d / "short.csv", index=False)  # one sample's row missing
    base = ["skat", "--genotypes", str(d / "geno.csv"), "--phenotype", str(d / "pheno.csv"), "--sets",
            str(d / "sets.csv"), "--out", str(d / "bad.csv")]
    assert main([*base, "--kinship", str(d / "short.csv")]) == 2
    assert "short.csv" in capsys.readouterr().err
    assert main([*base, "--kinship", str(d / "kin.csv"), "--trait", "binary"]) == 2
    assert "--trait continuous" in capsys.readouterr().err
    assert not (d / "bad.csv").exists()
