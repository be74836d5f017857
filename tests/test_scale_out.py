"""Scale-out: the commands give identical results serially, on a local process pool and on a real
``dask.distributed.LocalCluster`` (two worker processes on loopback)."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pandas as pd
import pytest

import bayesmages as bm
from bayesmages.cli import main
from bayesmages.errors import InputError

distributed = pytest.importorskip("dask.distributed", reason="dask.distributed is not installed (bayesmages[dask])")


@pytest.fixture(scope="module")
def cluster():
    # dashboard on a free port: with None, distributed still tries 8787 and warns (an error in the tests) when
    # another cluster on the machine holds it
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as local:
        yield local


def _blocks(rng, sizes):
    blocks = []
    for m in sizes:
        A = rng.normal(size=(3 * m, m))
        C = np.corrcoef(A, rowvar=False)
        blocks.append(0.5 * (C + C.T))
    return blocks


@pytest.fixture
def gwas_files(tmp_path):
    rng = np.random.default_rng(5)
    sizes = [12, 9, 15, 10]
    blocks = _blocks(rng, sizes)
    paths = []
    for i, R in enumerate(blocks):
        paths.append(tmp_path / f"block{i}.npy")
        np.save(paths[-1], R)
    m = sum(sizes)
    gwas = pd.DataFrame({"CHR": 1, "SNP": [f"rs{i}" for i in range(m)], "POS": np.arange(m) * 50 + 1,
                         "A1": "A", "A2": "C", "BETA": rng.normal(scale=0.01, size=m), "SE": 0.004, "N": 100_000})
    gwas.to_csv(tmp_path / "trait.csv", index=False)
    return tmp_path, paths, blocks, gwas


def test_shrink_cli_identical_serial_pool_and_dask(gwas_files, cluster):
    d, ld, _, _ = gwas_files
    base = ["shrink", "--gwas", str(d / "trait.csv"), "--ld", *map(str, ld), "--quiet", "--seed", "3"]
    outs = {}
    for name, extra in [("serial", ["--workers", "1"]), ("pool", ["--workers", "2"]),
                        ("dask", ["--scheduler", cluster.scheduler_address])]:
        outs[name] = d / f"{name}.csv"
        assert main([*base, "--out", str(outs[name]), *extra]) == 0
    serial = pd.read_csv(outs["serial"])
    assert np.isfinite(serial["beta_shrunk"]).all() and len(serial) == 46
    for name in ("pool", "dask"):
        other = pd.read_csv(outs[name])
        # Exactly the same numbers: every block gets the same child seed and one thread on any backend.
        np.testing.assert_array_equal(other["beta_shrunk"].to_numpy(), serial["beta_shrunk"].to_numpy())
        np.testing.assert_array_equal(other["sd"].to_numpy(), serial["sd"].to_numpy())


def test_enrichment_on_dask_equals_local(gwas_files, cluster):
    _, _, blocks, gwas = gwas_files
    genes = pd.DataFrame({"GENE": [f"G{i}" for i in range(9)], "CHR": 1,
                          "START": np.arange(9) * 250 + 1, "END": np.arange(9) * 250 + 240})
    beta = gwas["BETA"].to_numpy()
    local = bm.genes.enrichment.test(beta, blocks, genes, null_variance=1e-4, variants=gwas)
    with distributed.Client(cluster) as client:
        remote = bm.genes.enrichment.test(beta, blocks, genes, null_variance=1e-4, variants=gwas, scheduler=client)
    pd.testing.assert_frame_equal(local, remote)
    assert (local["p_value"] < 1).all()
    # the default conditional test ships z and zeta with each chunk's blocks: same numbers on Dask
    se = gwas["SE"].to_numpy()
    shrunk = np.where(np.abs(beta / se) > 2, beta, 0.0)
    local = bm.genes.enrichment.test(shrunk, blocks, genes, beta_hat=beta, se=se, variants=gwas)
    with distributed.Client(cluster) as client:
        remote = bm.genes.enrichment.test(shrunk, blocks, genes, beta_hat=beta, se=se, variants=gwas,
                                          scheduler=client)
    pd.testing.assert_frame_equal(local, remote)
    assert (local["n_conditioned"] > 0).any()
    # LD by reference: the Dask workers (on this machine) open the blocks from the file themselves
    from bayesmages.io.ldrefs import spill_blocks

    source = spill_blocks(blocks, gwas_files[0])
    with distributed.Client(cluster) as client:
        by_ref = bm.genes.enrichment.test(shrunk, source, genes, beta_hat=beta, se=se, variants=gwas,
                                          scheduler=client)
    pd.testing.assert_frame_equal(local, by_ref)
    # as many chunks as 4 per worker thread (2 here) cut out of the 9 genes; the old fixed 64 gave one per gene
    assert bm.parallel.scheduler_threads(cluster.scheduler_address) == 2
    assert 2 <= by_ref.attrs["units"]["n_units"] <= 4 * 2


def test_skat_sets_on_dask_equal_serial(cluster):
    rng = np.random.default_rng(8)
    G = rng.binomial(2, 0.03, size=(400, 12)).astype(float)
    X = rng.normal(size=(400, 2))
    y = X[:, 1] + G[:, 2] + rng.normal(size=400)
    ids = [f"v{j}" for j in range(12)]
    sets = {"S1": ids[:4], "S2": ids[4:8], "S3": ids[8:]}
    serial = bm.skat.run_sets(G, ids, sets, y, X, test="ecskat", seed=2)
    remote = bm.skat.run_sets(G, ids, sets, y, X, test="ecskat", seed=2, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(serial, remote)


def test_failing_block_on_dask_is_named_and_nothing_is_written(gwas_files, cluster, capsys):
    d, ld, _, _ = gwas_files
    bad = d / "bad.npy"
    R = np.load(ld[1])
    R[0, 1] = R[1, 0] = 1.5  # not a correlation matrix: the block's own check fails on a worker
    np.save(bad, R)
    out = d / "bad_out.csv"
    rc = main(["shrink", "--gwas", str(d / "trait.csv"), "--ld", str(ld[0]), str(bad), str(ld[2]), str(ld[3]),
               "--out", str(out), "--scheduler", cluster.scheduler_address])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "bad.npy" in err
    assert not out.exists()


@pytest.mark.slow  # dask retries the connection until its 20 s timeout
def test_unreachable_scheduler_is_an_input_error():
    with pytest.raises(InputError, match="cannot connect to the Dask scheduler"):
        bm.parallel.map_units(abs, [1, 2], scheduler="tcp://127.0.0.1:9")


@pytest.fixture
def skat_bed(tmp_path):
    """A PLINK .bed of rare variants (some missing), 14 sets of uneven size (one non-contiguous, one absent)."""
    bed_reader = pytest.importorskip("bed_reader")
    rng = np.random.default_rng(11)
    n, m = 360, 70
    G = rng.binomial(2, rng.uniform(0.005, 0.05, size=m), size=(n, m)).astype(float)
    G[rng.random(size=G.shape) < 0.01] = np.nan
    ids = [f"v{j}" for j in range(m)]
    bed_reader.to_bed(tmp_path / "g.bed", G, properties={"sid": ids})
    cuts = [0, 2, 9, 10, 16, 30, 33, 41, 47, 52, 60, 63, 70]
    sets = {f"G{k}": ids[a:b] for k, (a, b) in enumerate(itertools.pairwise(cuts))}
    sets["split"] = [ids[65], ids[3], ids[40], "absent"]  # out of file order, across other sets' windows
    sets["none"] = ["absent"]
    X = rng.normal(size=(n, 2))
    y = X[:, 0] + np.nan_to_num(G[:, 12] + G[:, 14]) + rng.normal(size=n)
    keep = rng.random(n) > 0.1  # samples without a phenotype: rows of the .bed the null model does not see
    return tmp_path / "g.bed", G, ids, sets, y[keep], X[keep], keep


def test_skat_sets_read_from_bed_identical_serial_pool_and_dask(skat_bed, cluster, monkeypatch):
    """Sets whose workers read their own windows of a .bed give exactly the numbers of the in-memory matrix,
    serially, on 2 local processes and on a LocalCluster; the null model is scattered to the workers once."""
    path, G, ids, sets, y, X, keep = skat_bed
    kw = {"test": "skat-o", "included": keep}
    reference = bm.skat.run_sets(G, ids, sets, y, X, **kw)
    assert reference["p_value"].notna().sum() == len(sets) - 1
    geno = bm.io.open_genotypes(path)
    scatters = []
    real_scatter = distributed.Client.scatter

    def counting_scatter(self, data, *args, **kwargs):
        scatters.append((type(data).__name__, kwargs.get("broadcast")))
        return real_scatter(self, data, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "scatter", counting_scatter)
    runs = {"serial": bm.skat.run_sets(geno, None, sets, y, X, **kw),
            "pool": bm.skat.run_sets(geno, None, sets, y, X, workers=2, **kw),
            "dask": bm.skat.run_sets(geno, None, sets, y, X, scheduler=cluster.scheduler_address, **kw)}
    for name, table in runs.items():
        pd.testing.assert_frame_equal(table, reference, check_exact=True, obj=name)
    assert scatters == [("SetContext", True)]
    # the workers measured themselves: units ran in the worker processes, every set once
    units = runs["dask"].attrs["units"]
    assert sum(u["n_sets"] for u in units) == len(sets) and len(units) > 1
    with distributed.Client(cluster) as client:
        dask_pids = set(client.run(os.getpid).values())
    assert {u["pid"] for u in units} <= dask_pids
    assert all(u["peak_rss_mb"] > 0 and u["peak_rss_mb"] >= u["rss_start_mb"] * 0.99 for u in units)
    assert max(u["window_mb"] for u in units) == pytest.approx(G.shape[0] * 14 * 8 / 2**20)


def test_skat_on_dask_example_runs_against_a_given_scheduler(tmp_path, cluster, capsys):
    """examples/skat_on_dask.py with --scheduler: the simulated causal gene comes first, and the cluster's table is
    the serial one."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "skat_on_dask.py"
    spec = importlib.util.spec_from_file_location("skat_on_dask", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    table = example.main(["--scheduler", cluster.scheduler_address, "--workdir", str(tmp_path), "--samples", "400",
                          "--genes", "6", "--test", "skat"])
    out = capsys.readouterr().out
    assert "peak_rss_mb" in out and "400 samples" in out
    assert table["p_value"].idxmin() == 0 and table["p_value"].iloc[0] < 1e-3  # GENE1 carries the effect
    sets, y, X = example.simulate_cohort(tmp_path / "again", 400, 6)
    serial = bm.skat.run_sets(bm.io.open_genotypes(tmp_path / "cohort.bed"), None, sets, y, X, test="skat")
    pd.testing.assert_frame_equal(table, serial, check_exact=True)


def _traits_gwas(d, gwas, n_traits):
    rng = np.random.default_rng(11)
    paths = []
    for t in range(n_traits):
        paths.append(d / f"gwas_T{t + 1}.csv")
        gwas.assign(BETA=rng.normal(scale=0.01, size=len(gwas))).to_csv(paths[-1], index=False)
    genes = pd.DataFrame({"GENE": [f"G{i}" for i in range(9)], "CHR": 1,
                          "START": np.arange(9) * 250 + 1, "END": np.arange(9) * 250 + 240})
    genes.to_csv(d / "genes.csv", index=False)
    return paths, d / "genes.csv"


def test_run_with_five_traits_on_text_ld_is_identical_serial_pool_and_dask(gwas_files, cluster):
    """Text LD cannot be read in place: a parallel run spills each block once into <out>/ld_cache (owned by the
    run), units read it there; serial, 2 local workers and Dask write identical tables. Five traits: the
    multi-trait steps take the first four (2^p association types), with a warning."""
    import json

    from bayesmages.io.outdir import MARKER

    d, _, blocks, gwas = gwas_files
    ld = []
    for i, R in enumerate(blocks):
        ld.append(d / f"text{i}.ld")
        np.savetxt(ld[-1], R)
    paths, genes = _traits_gwas(d, gwas, 5)
    outs = {}
    for name, kw in [("serial", {}), ("pool", {"workers": 2}), ("dask", {"scheduler": cluster.scheduler_address})]:
        with pytest.warns(UserWarning, match=r"5 traits: the multi-trait .* use the first 4"):
            outs[name] = bm.pipeline.run(paths, ld, genes, d / name, figures=False, truncation=5, restarts=1,
                                         seed=1, **kw)
    serial = outs["serial"]
    assert serial.clusters["multi"].traits == ["T1", "T2", "T3", "T4"] and len(serial.traits) == 5
    assert not (d / "serial" / "ld_cache").exists()  # serial units use the blocks in memory
    for name in ("pool", "dask"):
        pd.testing.assert_frame_equal(outs[name].shrinkage, serial.shrinkage)
        cache = sorted(p.name for p in (d / name / "ld_cache").iterdir())
        assert len(cache) == len(blocks)
        owned = set(json.loads((d / name / MARKER).read_text())["files"])
        assert {f"ld_cache/{c}" for c in cache} <= owned
        info = json.loads((d / name / "shrink_T1" / "step.json").read_text())["info"]["units"]
        assert info["n_units"] == len(blocks) and info["unit_cpu_seconds"] > 0
    with pytest.raises(InputError, match="multi_traits: give 2 to 4 different traits"):
        bm.pipeline.run(paths, ld, genes, d / "bad", multi_traits=["T1"])
    with pytest.raises(InputError, match="'T9' is not one of the traits"):
        bm.pipeline.run(paths, ld, genes, d / "bad", multi_traits=["T1", "T9"])


def test_run_identical_with_one_two_workers_and_dask(tmp_path, cluster):
    """`bayesmages run`: the clusterings (fitted together over the workers) and the gene tests (workers read
    the LD from a file) write the same bytes serially, on 2 local processes and on Dask."""
    sim = tmp_path / "sim"
    assert main(["simulate", "--out", str(sim), "--seed", "4", "--quiet", "--traits", "3", "--blocks", "2",
                 "--variants-per-block", "80", "--ref-samples", "300"]) == 0
    gwas = [str(sim / f"gwas_T{t}.tsv") for t in (1, 2, 3)]
    outs = {}
    for name, extra in [("serial", {"workers": 1}), ("pool", {"workers": 2}),
                        ("dask", {"scheduler": cluster.scheduler_address})]:
        outs[name] = tmp_path / name
        bm.pipeline.run(gwas, sim / "ld", sim / "genes.tsv", outs[name], seed=2, truncation=8, restarts=2,
                        figures=False, **extra)
    tables = sorted(str(p.relative_to(outs["serial"])) for p in outs["serial"].rglob("*.csv")
                    if p.parent.name.startswith(("cluster_", "enrich_")))
    assert len(tables) == 4 * 3 + 3  # variants, clusters, elbo per clustering (3 traits + multi); 3 gene tests
    for name in ("pool", "dask"):
        for rel in tables:
            assert (outs[name] / rel).read_bytes() == (outs["serial"] / rel).read_bytes(), f"{name}: {rel} differs"
    enrich = pd.read_csv(outs["serial"] / "enrich_T1" / "gene_enrichment.csv")
    assert len(enrich) > 3 and enrich["p_value"].between(0, 1).all()


def _worker_warmups():
    from bayesmages import parallel

    return sorted(parallel._WARMED)


def test_warm_dask_imports_and_warms_every_worker_once(cluster):
    """run() warms a Dask cluster as it starts a local pool: every worker imports the step modules and runs
    the warm-up once, in the background; a second call finds them warm and does nothing again."""
    from bayesmages import parallel

    preload = ("bayesmages.genes.enrichment",)
    with distributed.Client(cluster) as client:
        parallel.warm_dask(client.scheduler.address, preload=preload, warm=_count_warm_up)
        client.wait_for_workers(2)
        deadline = 120  # seconds: the warm-up imports torch in a fresh worker
        import time

        ours = (preload, f"{__name__}._count_warm_up")

        def warmed() -> dict:
            # the module's cluster is shared: earlier tests' runs left their own warm-ups there too
            return {w: ours in [tuple(k) if isinstance(k, list) else k for k in v]
                    for w, v in client.run(_worker_warmups).items()}

        t0 = time.monotonic()
        while time.monotonic() - t0 < deadline and not all(warmed().values()):
            time.sleep(0.5)
        done = warmed()
        assert len(done) == 2 and all(done.values())
        parallel.warm_dask(client, preload=preload, warm=_count_warm_up)  # already warm: a no-op
        time.sleep(1.0)
        counts = client.run(_count_warm_up_calls)
        assert sorted(counts.values()) == [1, 1]
        assert all("bayesmages.genes.enrichment" in mods for mods in client.run(_loaded_modules).values())


_WARM_CALLS = [0]


def _count_warm_up():
    _WARM_CALLS[0] += 1


def _count_warm_up_calls():
    return _WARM_CALLS[0]


def _loaded_modules():
    import sys

    return [m for m in sys.modules if m.startswith("bayesmages.")]
