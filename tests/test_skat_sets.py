"""skat.sets (sets file, runner, parallel) and the ``bayesmages skat`` CLI."""

from __future__ import annotations

import itertools
import json
import os

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
    # serially the "worker" is this process: its record is there, with its memory as the OS reports it
    assert [w["pid"] for w in meta["workers"]] == [os.getpid()] and meta["workers"][0]["sets"] == 3
    assert meta["workers"][0]["peak_rss_mb"] > 10
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


def test_group_sets_cover_every_set_once_in_order_and_balance_cost():
    from bayesmages.skat.set_units import group_sets

    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes = rng.integers(1, 80, size=int(rng.integers(1, 60))).tolist()
        n_units = int(rng.integers(1, 20))
        groups = group_sets(sizes, n_units)
        assert groups[0].start == 0 and groups[-1].stop == len(sizes)
        assert all(a.stop == b.start for a, b in itertools.pairwise(groups))
        assert all(g.stop > g.start for g in groups) and len(groups) <= min(n_units, len(sizes))
        # balance: no group costs more than its share plus the largest single set
        cost = np.asarray(sizes, dtype=float) + 5.0
        assert max(cost[g].sum() for g in groups) <= cost.sum() / len(groups) + cost.max() + 1e-9


def test_pgen_dosage_sets_read_per_set_equal_the_in_memory_matrix(tmp_path):
    """A PLINK 2 fileset of dosages: sets read by index lists (unsorted, spanning windows) give the numbers of
    the fully read matrix, and the reader returns the requested columns in the requested order."""
    pgenlib = pytest.importorskip("pgenlib")
    rng = np.random.default_rng(4)
    n, p = 250, 24
    D = np.round(rng.beta(0.3, 12, size=(p, n)) * 2 * 16384) / 16384  # rare-variant dosages on pgen's grid
    D[3, 7] = -9
    with pgenlib.PgenWriter(str(tmp_path / "d.pgen").encode(), n, variant_ct=p, nonref_flags=False,
                            dosage_present=True) as w:
        for row in D:
            w.append_dosages(row)
    (tmp_path / "d.psam").write_text("#IID\n" + "".join(f"s{i}\n" for i in range(n)))
    (tmp_path / "d.pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n"
                                     + "".join(f"1\t{100 + j}\tv{j}\tA\tG\n" for j in range(p)))
    full = bm.io.read_genotypes(tmp_path / "d.pgen")
    geno = bm.io.open_genotypes(tmp_path / "d")
    assert geno.shape == (n, p) and list(geno.variants) == list(full.variants)
    np.testing.assert_array_equal(geno.read([9, 3, 3, 0]), full.G[:, [9, 3, 3, 0]])
    ids = list(full.variants)
    sets = {"a": ids[:6], "b": [ids[20], ids[2], ids[11]], "c": ids[6:20]}
    y = full.G[:, 1] * 0.5 + rng.normal(size=n)
    y = np.where(np.isnan(y), 0.0, y)
    pd.testing.assert_frame_equal(bm.skat.run_sets(geno, None, sets, y, test="skat-o"),
                                  bm.skat.run_sets(full.G, ids, sets, y, test="skat-o"), check_exact=True)


def test_a_genotype_file_gone_from_a_worker_is_named(tmp_path):
    bed_reader = pytest.importorskip("bed_reader")
    G, X, y, ids, sets = _data(5)
    bed_reader.to_bed(tmp_path / "g.bed", G, properties={"sid": ids})
    geno = bm.io.open_genotypes(tmp_path / "g.bed")
    (tmp_path / "g.bed").rename(tmp_path / "moved.bed")  # as seen by a worker without the shared file system
    with pytest.raises(InputError, match=r"g\.bed: cannot read genotypes on host .*read access"):
        bm.skat.run_sets(geno, None, sets, y, X)
    with pytest.raises(InputError, match="not a PLINK"):
        bm.io.open_genotypes(tmp_path / "sets.csv")
    with pytest.raises(InputError, match="9 variants but 2 variant ids"):
        bm.skat.run_sets(geno, ["a", "b"], sets, y, X)
