"""``bayesmages cluster`` end to end: inputs, outputs, errors, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayesmages.cli import main


@pytest.fixture(scope="module")
def effects_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 400
    z = rng.choice(3, n, p=[0.5, 0.25, 0.25])
    scale = np.where(z[:, None] == 0, [0.01, 0.01], np.where(z[:, None] == 1, [0.3, 0.01], [0.01, 0.3]))
    X = rng.normal(size=(n, 2)) * scale
    snp = [f"rs{i}" for i in range(n)]
    d = tmp_path_factory.mktemp("effects")
    pd.DataFrame({"SNP": snp, "beta_shrunk": X[:, 0], "sd": 0.005}).to_csv(d / "LDL.csv", index=False)
    # a different row order: files are aligned by SNP, not by row
    pd.DataFrame({"SNP": snp[::-1], "beta_shrunk": X[::-1, 1], "sd": 0.005}).to_csv(d / "HDL.csv", index=False)
    pd.DataFrame({"SNP": snp, "LDL": X[:, 0], "HDL": X[:, 1]}).to_csv(d / "wide.tsv", sep="\t", index=False)
    long = pd.concat([pd.DataFrame({"SNP": snp, "trait": t, "beta_shrunk": X[:, j]}) for j, t in
                      enumerate(["LDL", "HDL"])])
    long.to_csv(d / "long.csv", index=False)
    return d, X


def test_cluster_command_writes_tables_figures_and_run_json(effects_dir, tmp_path):
    d, X = effects_dir
    out = tmp_path / "out"
    assert main(["cluster", "--effects", str(d / "LDL.csv"), str(d / "HDL.csv"), "--out", str(out),
                 "--truncation", "8", "--restarts", "3", "--quiet"]) == 0
    variants = pd.read_csv(out / "variants.csv")
    clusters = pd.read_csv(out / "clusters.csv")
    assert list(variants.columns[:4]) == ["SNP", "cluster", "prob", "category"]
    assert len(variants) == len(X)
    # effects were aligned by SNP although the HDL file is in reverse order
    np.testing.assert_allclose(variants["effect_HDL"], X[:, 1])
    assert {"cluster", "weight", "trace", "category", "cov_LDL_LDL", "cov_LDL_HDL", "cov_HDL_HDL"} <= set(clusters)
    assert set(clusters["category"]) == {"specific:LDL", "specific:HDL", "non-prioritised"}
    assert clusters["weight"].sum() == pytest.approx(1.0)
    assert (out / "figures" / "clusters.png").stat().st_size > 5000
    assert (out / "figures" / "elbo.png").stat().st_size > 5000
    meta = json.loads((out / "run.json").read_text())
    assert meta["n_clustered"] == len(X) and meta["traits"] == ["LDL", "HDL"]


@pytest.mark.parametrize("name", ["wide.tsv", "long.csv"])
def test_wide_and_long_tables_with_selection(effects_dir, tmp_path, name):
    d, X = effects_dir
    out = tmp_path / "out"
    assert main(["cluster", "--effects", str(d / name), "--out", str(out), "--truncation", "6", "--restarts", "2",
                 "--select", "absolute", "--threshold", "0.05", "--quiet"]) == 0
    variants = pd.read_csv(out / "variants.csv")
    selected = (np.abs(X) > 0.05).any(1)
    np.testing.assert_array_equal(variants["selected"], selected)
    assert (variants.loc[~selected, "category"] == "not clustered").all()
    assert variants.loc[~selected, "cluster"].isna().all()


def test_bad_input_exits_2_and_leaves_no_output(effects_dir, tmp_path, capsys):
    d, _ = effects_dir
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"SNP": ["a", "a", "b"], "beta_shrunk": [1.0, 2.0, 3.0]}).to_csv(bad, index=False)
    out = tmp_path / "out"
    assert main(["cluster", "--effects", str(d / "LDL.csv"), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "more than once" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["cluster", "--effects", str(d / "wide.tsv"), "--out", str(out), "--traits", "x"]) == 2
    assert main(["cluster", "--effects", str(d / "wide.tsv"), "--out", str(out), "--select", "posterior"]) == 2
    assert not out.exists()
