"""skat.sets (sets file, runner, parallel) and the ``bayesmages skat`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bayesmages as bm
from bayesmages.cli import main
from bayesmages.errors import InputError


def _data(seed=0, n=300, m=9):
    rng = np.random.default_rng(seed)
    G = rng.binomial(2, 0.04, size=(n, m)).astype(float)
    X = rng.normal(size=(n, 2))
    y = X[:, 0] + G[:, 0] - G[:, 1] + rng.normal(size=n)
    ids = [f"rs{j}" for j in range(m)]
    sets = {"A": ids[:3], "B": ids[3:6], "C": [*ids[6:], "absent"]}
    return G, X, y, ids, sets


def test_read_sets_aliases_and_headerless(tmp_path):
    (tmp_path / "a.tsv").write_text("GENE\tVARIANT_ID\ng1\tv1\ng1\tv2\ng2\tv3\n")
    assert bm.skat.read_sets(tmp_path / "a.tsv") == {"g1": ["v1", "v2"], "g2": ["v3"]}
    (tmp_path / "b.txt").write_text("g1 v1\ng2 v3\n")  # R SKAT SetID format
    assert bm.skat.read_sets(tmp_path / "b.txt") == {"g1": ["v1"], "g2": ["v3"]}
    (tmp_path / "c.csv").write_text("x,y,z\n1,2,3\n")
    with pytest.raises(InputError, match="set column"):
        bm.skat.read_sets(tmp_path / "c.csv")


@pytest.mark.parametrize("test", ["skat", "burden", pytest.param("skat-o", marks=pytest.mark.slow)])
def test_run_sets_equals_per_set_tests(test):
    G, X, y, ids, sets = _data()
    table = bm.skat.run_sets(G, ids, sets, y, X, test=test)
    null = bm.skat.fit_null(y, X)
    assert table["SET"].tolist() == ["A", "B", "C"]
    for _, row in table.iterrows():
        cols = [ids.index(v) for v in sets[row["SET"]] if v in ids]
        ref = bm.skat.test(G[:, cols], null, test=test)
        assert row["p_value"] == ref.p_value and row["n_variants"] == len(cols)
    if test == "skat-o":
        assert {"rho", "p_rho_0", "p_rho_1"} <= set(table.columns)


@pytest.mark.slow  # a process pool starts in tens of seconds on a loaded shared machine
def test_parallel_equals_serial():
    G, X, y, ids, sets = _data(1)
    serial = bm.skat.run_sets(G, ids, sets, y, X)
    par = bm.skat.run_sets(G, ids, sets, y, X, workers=2)
    pd.testing.assert_frame_equal(serial, par)


def test_run_sets_errors_and_missing_sets():
    G, X, y, ids, sets = _data()
    with pytest.raises(InputError, match="no variant of any set"):
        bm.skat.run_sets(G, ids, {"Z": ["nope"]}, y, X)
    with pytest.raises(InputError, match="test must be"):
        bm.skat.run_sets(G, ids, sets, y, X, test="acat")
    table = bm.skat.run_sets(G, ids, {**sets, "empty": ["nope"]}, y, X)
    row = table.set_index("SET").loc["empty"]
    assert row["n_variants"] == 0 and np.isnan(row["p_value"])


def test_ecskat_sets_are_seeded():
    G, X, y, ids, sets = _data(2)
    a = bm.skat.run_sets(G, ids, sets, y, X, test="ecskat", seed=4)
    b = bm.skat.run_sets(G, ids, sets, y, X, test="ecskat", seed=4)
    pd.testing.assert_frame_equal(a, b)


@pytest.fixture
def cli_files(tmp_path):
    bed_reader = pytest.importorskip("bed_reader")
    G, X, y, ids, sets = _data(3)
    iids = [f"S{i}" for i in range(y.size)]
    bed_reader.to_bed(tmp_path / "g.bed", G, properties={"sid": ids, "iid": iids})
    y = y.copy()
    y[7] = np.nan  # dropped with a count in run.json
    pd.DataFrame({"IID": iids[::-1], "y": y[::-1]}).to_csv(tmp_path / "pheno.csv", index=False, na_rep="NA")
    pd.DataFrame({"IID": iids, "c1": X[:, 0], "c2": X[:, 1]}).to_csv(tmp_path / "cov.csv", index=False)
    pd.DataFrame([(s, v) for s, vs in sets.items() for v in vs], columns=["SET", "SNP"]).to_csv(
        tmp_path / "sets.csv", index=False)
    return tmp_path, G, X, y, ids, sets


def test_cli_end_to_end(cli_files):
    d, G, X, y, _, _ = cli_files
    out = d / "res.csv"
    rc = main(["skat", "--genotypes", str(d / "g.bed"), "--phenotype", str(d / "pheno.csv"), "--covariates",
               str(d / "cov.csv"), "--sets", str(d / "sets.csv"), "--test", "burden", "--out", str(out), "--quiet"])
    assert rc == 0
    table = pd.read_csv(out)
    meta = json.loads((d / "res.run.json").read_text())
    assert meta["n_samples_dropped"] == 1 and meta["n_sets"] == 3
    ok = np.isfinite(y)
    null = bm.skat.fit_null(y[ok], X[ok])
    # R's estimate_MAF = 1 (the CLI's default): the weights come from the MAFs of all genotyped samples
    ref = bm.skat.test(G[:, :3], null, test="burden", included=ok)
    assert table.loc[table.SET == "A", "p_value"].item() == pytest.approx(ref.p_value, rel=1e-8)


def test_cli_bad_input_exits_2_without_output(cli_files, capsys):
    d = cli_files[0]
    rc = main(["skat", "--genotypes", str(d / "g.bed"), "--phenotype", str(d / "pheno.csv"), "--sets",
               str(d / "sets.csv"), "--trait", "binary", "--out", str(d / "bad.csv")])
    assert rc == 2
    assert "0/1" in capsys.readouterr().err
    assert not (d / "bad.csv").exists()
