"""Scale-out: the commands give identical results serially, on a local process pool and on a real
``dask.distributed.LocalCluster`` (two worker processes on loopback)."""

from __future__ import annotations

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
    from bayesmages.io.ld_access import spill_blocks

    source = spill_blocks(blocks, gwas_files[0])
    with distributed.Client(cluster) as client:
        by_ref = bm.genes.enrichment.test(shrunk, source, genes, beta_hat=beta, se=se, variants=gwas,
                                          scheduler=client)
    pd.testing.assert_frame_equal(local, by_ref)


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
