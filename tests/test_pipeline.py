"""The end-to-end pipeline: outputs, resumability, atomicity, the ``run`` command and its errors."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayesmages as bm
from bayesmages.cli import main
from bayesmages.errors import InputError
from bayesmages.io.outdir import MARKER
from bayesmages.pipeline import gene_steps, steps

TINY = ["--blocks", "2", "--variants-per-block", "80", "--ref-samples", "300"]
FAST = {"truncation": 8, "restarts": 2}  # small fits: the tests check plumbing, not clustering quality


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A `bayesmages simulate` folder: two traits on two small msprime blocks."""
    folder = tmp_path_factory.mktemp("pipeline") / "sim"
    assert main(["simulate", "--out", str(folder), "--seed", "3", "--quiet", *TINY]) == 0
    return folder


def _files(sim):
    return [str(sim / "gwas_T1.tsv"), str(sim / "gwas_T2.tsv")], str(sim / "ld"), str(sim / "genes.tsv")


@pytest.fixture(scope="module")
def cli_run(sim):
    """`bayesmages run` on the simulate output (figures and report included)."""
    out = sim.parent / "cli_run"
    gwas, ld, genes = _files(sim)
    status = main(["run", "--gwas", *gwas, "--traits", "T1", "T2", "--ld", ld, "--genes", genes, "--out", str(out),
                   "--truncation", "8", "--restarts", "2", "--quiet"])
    assert status == 0
    return out


def _png_ok(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    # Non-trivial: a real plot weighs several kB and has more than one colour.
    return path.stat().st_size > 5_000 and float(img[..., :3].std()) > 0.01


def test_cli_run_on_simulate_output_writes_everything(cli_run):
    out = cli_run
    shrink = pd.read_csv(out / "shrink_T1" / "shrinkage.csv")
    assert list(shrink.columns) == ["SNP", "CHR", "POS", "trait", "beta_hat", "se", "beta_shrunk", "sd", "lower",
                                    "upper"]
    assert set(shrink["trait"]) == {"T1"} and len(shrink) == 160
    for folder in ("cluster_T1", "cluster_T2", "cluster_multi"):
        variants = pd.read_csv(out / folder / "variants.csv")
        assert {"SNP", "cluster", "prob", "category"} <= set(variants.columns) and len(variants) == 160
        clusters = pd.read_csv(out / folder / "clusters.csv")
        assert {"cluster", "weight", "trace", "category"} <= set(clusters.columns)
        assert clusters["weight"].sum() == pytest.approx(1.0, abs=1e-6)  # renormalised kept weights
    enrich = pd.read_csv(out / "enrich_T2" / "gene_enrichment.csv")
    assert list(enrich.columns) == ["GENE", "CHR", "n_variants", "Q", "p_value", "q_value", "test", "p_method",
                                    "n_conditioned"]
    assert set(enrich["test"]) == {"conditional"} and set(enrich["p_method"]) <= {"exact", "none"}
    for name in gene_steps.GENE_TABLES:
        assert (out / "genes" / f"{name}.csv").is_file()

    meta = json.loads((out / "run.json").read_text())
    assert meta["bayesmages_version"] == bm.__version__
    assert meta["arguments"]["seed"] == 0 and meta["arguments"]["traits"] == ["T1", "T2"]
    assert set(meta["seeds"]) == {"run", "cluster_T1", "cluster_T2", "cluster_multi"}
    names = [s["name"] for s in meta["steps"]]
    assert names == ["shrink_T1", "shrink_T2", "cluster_T1", "enrich_T1", "cluster_T2", "enrich_T2",
                     "cluster_multi", "genes"]
    assert all(s["seconds"] >= 0 and not s["reused"] for s in meta["steps"])
    assert {"figures", "report", "total"} <= set(meta["timings"])

    report = (out / "report.md").read_text()
    figures = sorted((out / "figures").glob("*.png"))
    # effects by cluster, covariances, one p-value plot per trait, fractions, S_g, ELBO, top variants
    assert len(figures) == 8
    for fig in figures:
        assert f"](figures/{fig.name})" in report, fig.name
        assert _png_ok(fig), fig.name
    assert "## Gene-level tests" in report and "| GENE |" in report


def test_resume_reuses_steps_and_invalidates_downstream(sim, tmp_path, cli_run):
    gwas, ld, genes = _files(sim)
    out = tmp_path / "res"
    first = bm.pipeline.run(gwas, ld, genes, out, figures=False, **FAST)
    assert not any(r.reused for r in first.steps)
    # Same seed and settings as the CLI run: the same clustering.
    multi = pd.read_csv(cli_run / "cluster_multi" / "clusters.csv")
    np.testing.assert_allclose(first.clusters["multi"].weights, multi["weight"].to_numpy(), rtol=1e-6)
    manifest = out / "cluster_multi" / "step.json"
    stamp = manifest.stat().st_mtime_ns

    again = bm.pipeline.run(gwas, ld, genes, out, figures=False, **FAST)
    assert all(r.reused for r in again.steps)
    assert manifest.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again.enrichment["T1"], first.enrichment["T1"], check_exact=False, rtol=1e-9)

    # A changed argument of the clusterings: shrinkage and the gene tests (the default conditional test does
    # not use the clusters) are reused, the clusterings and gene summaries recomputed.
    changed = bm.pipeline.run(gwas, ld, genes, out, figures=False, truncation=8, restarts=1)
    status = {r.name: r.reused for r in changed.steps}
    assert status["shrink_T1"] and status["shrink_T2"] and status["enrich_T1"] and status["enrich_T2"]
    assert not any(v for k, v in status.items() if k.startswith("cluster") or k == "genes")

    # A changed input (T2's GWAS): T1's steps are reused, T2's and the joint ones recomputed.
    table = pd.read_csv(gwas[1], sep="\t")
    table.loc[0, "BETA"] += 0.01
    edited = tmp_path / "gwas_T2.tsv"
    table.to_csv(edited, sep="\t", index=False)
    redo = bm.pipeline.run([gwas[0], edited], ld, genes, out, figures=False, truncation=8, restarts=1)
    status = {r.name: r.reused for r in redo.steps}
    assert status["shrink_T1"] and status["cluster_T1"] and status["enrich_T1"]
    assert not (status["shrink_T2"] or status["cluster_T2"] or status["cluster_multi"] or status["genes"])

    forced = bm.pipeline.run([gwas[0], edited], ld, genes, out, figures=False, truncation=8, restarts=1, force=True)
    assert not any(r.reused for r in forced.steps)
    assert manifest.stat().st_mtime_ns != stamp

    # One trait left: its steps are reused, the other trait's and the multi-trait folders are removed.
    single = bm.pipeline.run([gwas[0]], ld, genes, out, traits=["T1"], figures=False, truncation=8, restarts=1)
    assert [r.reused for r in single.steps] == [True, True, True, False]  # genes now from T1's clustering
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["cluster_T1", "enrich_T1", "genes", "shrink_T1"]
    # The paper's epsilon test takes epsilon from the trait's clustering: switching to it recomputes the tests.
    eps = bm.pipeline.run([gwas[0]], ld, genes, out, traits=["T1"], figures=False, truncation=8, restarts=1,
                          gene_test="epsilon")
    status = {r.name: r.reused for r in eps.steps}
    assert not status["enrich_T1"] and status["cluster_T1"]
    assert set(eps.enrichment["T1"]["test"]) == {"epsilon"} and eps.enrichment["T1"].attrs["null_variance"] > 0
    # The conditional test with its single-variant part, by name: only the gene tests are recomputed, and the
    # gene table, run.json and the report say which test produced the p-values.
    sv = bm.pipeline.run([gwas[0]], ld, genes, out, traits=["T1"], figures=False, truncation=8, restarts=1,
                         gene_test="conditional+single")
    status = {r.name: r.reused for r in sv.steps}
    assert not status["enrich_T1"] and status["cluster_T1"] and status["shrink_T1"]
    table = pd.read_csv(out / "enrich_T1" / "gene_enrichment.csv")
    assert set(table["test"]) == {"conditional+single"}
    assert json.loads((out / "run.json").read_text())["arguments"]["gene_test"] == "conditional+single"
    assert "single-variant part" in (out / "report.md").read_text()


@pytest.mark.slow  # a spawned process pool imports torch in each worker: about 25 s on two busy cores
def test_workers_do_not_change_shrinkage(sim, tmp_path, cli_run):
    gwas, ld, genes = _files(sim)
    out = tmp_path / "w2"
    assert main(["run", "--gwas", *gwas, "--ld", ld, "--genes", genes, "--out", str(out), "--workers", "2",
                 "--truncation", "8", "--restarts", "2", "--quiet"]) == 0
    for t in ("T1", "T2"):
        parallel = pd.read_csv(out / f"shrink_{t}" / "shrinkage.csv")
        serial = pd.read_csv(cli_run / f"shrink_{t}" / "shrinkage.csv")
        np.testing.assert_array_equal(parallel["beta_shrunk"].to_numpy(), serial["beta_shrunk"].to_numpy())


@pytest.mark.slow  # starts a two-process LocalCluster
def test_dask_scheduler_gives_identical_results(sim, tmp_path, cli_run):
    distributed = pytest.importorskip("dask.distributed", reason="dask.distributed is not installed")
    gwas, ld, genes = _files(sim)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        res = bm.pipeline.run(gwas, ld, genes, tmp_path / "dask", scheduler=cluster.scheduler_address,
                              figures=False, **FAST)
    for t in ("T1", "T2"):
        serial = pd.read_csv(cli_run / f"shrink_{t}" / "shrinkage.csv")
        np.testing.assert_array_equal(res.shrinkage.loc[res.shrinkage["trait"] == t, "beta_shrunk"].to_numpy(),
                                      serial["beta_shrunk"].to_numpy())
        serial_genes = pd.read_csv(cli_run / f"enrich_{t}" / "gene_enrichment.csv")
        # Same chunks of the same genes, whichever machine computes them; CSV keeps 10 significant digits.
        np.testing.assert_allclose(res.enrichment[t]["p_value"].to_numpy(), serial_genes["p_value"].to_numpy(),
                                   rtol=1e-8)


def test_used_shrinker_still_pickles():
    # shrink(workers=N) pickles the model for the worker processes, also after it has predicted once.
    import pickle

    from bayesmages.shrink import load_default, shrink

    R = np.array([[1.0, 0.5], [0.5, 1.0]])
    first = shrink([0.05, 0.01], [0.01, 0.01], R)
    copy = pickle.loads(pickle.dumps(load_default()))
    again = shrink([0.05, 0.01], [0.01, 0.01], R, model=copy)
    np.testing.assert_array_equal(first["beta_shrunk"].to_numpy(), again["beta_shrunk"].to_numpy())


def test_one_trait_from_memory_runs_and_renders(sim, tmp_path, cli_run):
    gwas, _, genes = _files(sim)
    (tmp_path / "one").mkdir()  # an empty folder is used like a new one
    blocks = [np.load(f)["R"] for f in sorted((sim / "ld").glob("*.npz"))]  # in-memory tables and arrays
    res = bm.pipeline.run({"T1": pd.read_csv(gwas[0], sep="\t")}, blocks, pd.read_csv(genes, sep="\t"),
                          tmp_path / "one", **FAST)
    assert res.traits == ["T1"] and "multi" not in res.clusters
    serial = pd.read_csv(cli_run / "enrich_T1" / "gene_enrichment.csv")
    np.testing.assert_allclose(res.enrichment["T1"]["p_value"], serial["p_value"], rtol=1e-8)  # CSV round-off
    assert [r.name for r in res.steps] == ["shrink_T1", "cluster_T1", "enrich_T1", "genes"]
    assert len(res.genes["gene_cluster_fractions"]) == len(res.enrichment["T1"])
    for name in res.figures:
        assert _png_ok(tmp_path / "one" / name), name


def test_failed_step_keeps_finished_steps_and_no_temporary_folder(sim, tmp_path, monkeypatch):
    gwas, ld, genes = _files(sim)

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure in the gene step")

    monkeypatch.setattr(gene_steps, "gene_summaries", boom)
    out = tmp_path / "fresh"
    with pytest.raises(RuntimeError, match="simulated failure"):
        bm.pipeline.run(gwas[:1], ld, genes, out, traits=["T1"], figures=False, **FAST)
    # The finished steps stay for a rerun to reuse; nothing half-written, no temporary folder.
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "cluster_T1", "enrich_T1", "shrink_T1"]
    assert list(tmp_path.iterdir()) == [out]

    monkeypatch.undo()
    res = bm.pipeline.run(gwas[:1], ld, genes, out, traits=["T1"], figures=False, **FAST)
    assert [r.reused for r in res.steps] == [True, True, True, False]
    shutil.rmtree(out / "genes")
    monkeypatch.setattr(gene_steps, "gene_summaries", boom)
    with pytest.raises(RuntimeError):
        bm.pipeline.run(gwas[:1], ld, genes, out, traits=["T1"], figures=False, **FAST)
    assert (out / "cluster_T1" / "step.json").is_file() and not (out / "genes").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != MARKER]


def _bad_cases(sim, tmp_path):
    gwas, ld, genes = _files(sim)
    g = pd.read_csv(genes, sep="\t")
    outside = tmp_path / "genes_outside.tsv"
    g.assign(start_idx_chr=g["start_idx_chr"] + 150, end_idx_chr=g["end_idx_chr"] + 150).to_csv(
        outside, sep="\t", index=False)
    elsewhere = tmp_path / "genes_elsewhere.csv"
    pd.DataFrame({"GENE": ["A", "B"], "CHR": [7, 7], "START": [100, 5000], "END": [900, 9000]}).to_csv(
        elsewhere, index=False)
    blocks = sorted((sim / "ld").glob("*.npz"))
    not_run = tmp_path / "occupied"
    not_run.mkdir()
    (not_run / "notes.txt").write_text("mine")
    return {
        "missing file": (["--gwas", str(tmp_path / "nope.tsv"), "--ld", ld, "--genes", genes], "nope.tsv"),
        "counts": (["--gwas", *gwas, "--traits", "T1", "--ld", ld, "--genes", genes], "2 GWAS files but 1 trait"),
        "ld short": (["--gwas", gwas[0], "--ld", str(blocks[0]), "--genes", genes], "cover 80 variants"),
        "genes index": (["--gwas", gwas[0], "--ld", ld, "--genes", str(outside)], "genes_outside.tsv"),
        "genes positions": (["--gwas", gwas[0], "--ld", ld, "--genes", str(elsewhere)], "none of its 2 genes"),
        "out occupied": (["--gwas", gwas[0], "--ld", ld, "--genes", genes, "--out", str(not_run)],
                         "not written by bayesmages"),
    }


def test_cli_bad_inputs_one_line_exit_2_no_output(sim, tmp_path, capsys):
    for label, (argv, needle) in _bad_cases(sim, tmp_path).items():
        out = tmp_path / f"out_{label.replace(' ', '_')}"
        if "--out" not in argv:
            argv = [*argv, "--out", str(out)]
        assert main(["run", *argv, "--quiet"]) == 2, label
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bayesmages run: error:") and needle in err[0], (label, err)
        assert not out.exists(), label
    assert [p.name for p in (tmp_path / "occupied").iterdir()] == ["notes.txt"]


def test_cli_bad_input_through_a_process_has_no_traceback(sim, tmp_path):
    gwas, ld, genes = _files(sim)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bayesmages", "run", "--gwas", *gwas, "--traits", "A", "B", "C",
                           "--ld", ld, "--genes", genes, "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bayesmages run: error: got 2 GWAS files but 3 trait names; give one name per file"]
    assert not out.exists()


def test_api_argument_errors(sim, tmp_path):
    gwas, ld, genes = _files(sim)
    for kwargs, needle in (({"select": "best"}, "select"), ({"quantile": 1.0}, "quantile"), ({"fdr": 0}, "fdr"),
                           ({"workers": 0}, "workers"), ({"traits": ["T 1", "T2"]}, "trait name"),
                           ({"model": "missing.pt"}, "missing.pt")):
        with pytest.raises(InputError, match=needle):
            bm.pipeline.run(gwas, ld, genes, tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("p", [1, 2, 3])
def test_new_figures_render(tmp_path, p):
    from bayesmages.pipeline import plot_cluster_covariances, plot_top_variants

    rng = np.random.default_rng(p)
    A = rng.normal(size=(3, p, p))
    cov = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(p)
    fig = plot_cluster_covariances(cov, np.array([0.6, 0.3, 0.1]), categories=["a", "b", "c"])
    fig.savefig(tmp_path / "cov.png", dpi=100)
    assert _png_ok(tmp_path / "cov.png")
    with pytest.raises(InputError, match="expected"):
        plot_cluster_covariances(cov, np.ones(2))
    m = 40
    beta = rng.normal(size=m)
    tab = pd.DataFrame({"SNP": [f"v{i}" for i in range(m)], "trait": "T1", "beta_hat": beta, "beta_shrunk": beta / 2,
                        "sd": 0.1, "lower": beta / 2 - 0.2, "upper": beta / 2 + 0.2})
    plot_top_variants(tab, n_top=10).savefig(tmp_path / "top.png", dpi=100)
    assert _png_ok(tmp_path / "top.png")
    with pytest.raises(InputError, match="columns"):
        plot_top_variants(tab.drop(columns="sd"))


def test_load_inputs_aligns_ld_blocks_by_variant_ids(tmp_path):
    from bayesmages.io import write_npz
    from bayesmages.pipeline import load_inputs

    rng = np.random.default_rng(0)
    R = np.corrcoef(rng.normal(size=(30, 4)), rowvar=False)
    R = (R + R.T) / 2
    np.fill_diagonal(R, 1.0)  # as validate_ld stores it
    ids = np.array(["a", "b", "c", "d"])
    perm = np.array([2, 0, 3, 1])
    write_npz(tmp_path / "shuffled.npz", R=R[np.ix_(perm, perm)], ids=ids[perm])
    write_npz(tmp_path / "foreign.npz", R=R, ids=np.array(["a", "b", "c", "x"]))
    pd.DataFrame({"SNP": ids, "CHR": 1, "POS": [1, 2, 3, 4], "BETA": 0.01, "SE": 0.01}).to_csv(
        tmp_path / "g.csv", index=False)
    pd.DataFrame({"GENE": ["G"], "CHR": [1], "START": [1], "END": [3]}).to_csv(tmp_path / "genes.csv", index=False)
    inputs = load_inputs([tmp_path / "g.csv"], [tmp_path / "shuffled.npz"], tmp_path / "genes.csv")
    np.testing.assert_array_equal(inputs.blocks[0], R)  # a permutation: exact
    with pytest.raises(InputError, match="variant id 'd'"):
        load_inputs([tmp_path / "g.csv"], [tmp_path / "foreign.npz"], tmp_path / "genes.csv")


@pytest.mark.parametrize("method", ["susie", "enet"])
def test_run_with_another_shrinker(sim, tmp_path, method):
    """`bayesmages run --shrink-method`: the shrink step is the chosen method's output (same as the API call)."""
    gwas, ld, genes = _files(sim)
    out = tmp_path / f"run_{method}"
    assert main(["run", "--gwas", *gwas, "--traits", "T1", "T2", "--ld", ld, "--genes", genes, "--out", str(out),
                 "--truncation", "8", "--restarts", "1", "--shrink-method", method, "--quiet"]) == 0
    table = pd.read_csv(out / "shrink_T1" / "shrinkage.csv", keep_default_na=False, na_values=[""])
    inputs = bm.pipeline.inputs.load_inputs(gwas, ld, genes, ["T1", "T2"])
    api = steps.shrink_traits(inputs, ["T1"], model="default", workers=1, scheduler=None, progress=False,
                              method=method, seed=json.loads((out / "run.json").read_text())["seeds"]["run"])["T1"]
    np.testing.assert_allclose(table.beta_shrunk, api.beta_shrunk, rtol=1e-6, atol=1e-12)
    variants = pd.read_csv(out / "cluster_multi" / "variants.csv")
    causal = [c for c in variants.columns if c.startswith("causal_p_")]
    if method == "susie":
        assert {"pip", "cs"} <= set(table.columns) and table.pip.between(0, 1).all()
        # PIPs give the causal-type columns: the association-type probability x P(any effect), rows sum to one
        assert causal == [f"causal_p_{t}" for t in ("non-prioritised", "specific:T1", "specific:T2", "shared:T1+T2")]
        np.testing.assert_allclose(variants[causal].sum(1), 1.0, atol=1e-9)
        assert (variants["causal_p_specific:T1"] <= variants["p_specific:T1"] + 1e-12).all()
    step = json.loads((out / "cluster_multi" / "step.json").read_text())
    # run types with types_from="auto": from the LD-deconvolved effects for a joint shrinker (susie), else shrunk
    expected = ("deconvolved", "probabilities-v5-deconvolved") if method == "susie" else ("shrunk", "probabilities-v4")
    assert (step["info"]["types_from"], step["spec"]["types"]) == expected
    if method != "susie":
        assert table.sd.isna().all()
        assert not causal  # no PIPs: only the association-type claim
    with pytest.raises(InputError, match="shrink_method"):
        bm.pipeline.run(gwas, ld, genes, tmp_path / "bad", shrink_method="lasso")


def test_trait_rows_select_what_a_comparison_per_trait_selects():
    """steps.trait_rows (one pass over the trait column) gives each trait's rows in table order, as the boolean
    mask `trait == t` does, for a long table whose traits are interleaved; steps.wide follows it."""
    rng = np.random.default_rng(0)
    n = 500
    table = pd.DataFrame({"SNP": np.tile([f"rs{i}" for i in range(n)], 3), "trait": np.repeat(["B", "A", "C"], n),
                          "beta_shrunk": rng.normal(size=3 * n)})
    table = table.sample(frac=1, random_state=1).sort_values("SNP", kind="stable").reset_index(drop=True)
    rows = steps.trait_rows(table)
    assert sorted(rows) == ["A", "B", "C"]
    for t in "ABC":
        pd.testing.assert_frame_equal(table.iloc[rows[t]], table[table["trait"] == t])
    wide = steps.wide(table, ["C", "A"])
    assert list(wide.columns) == ["C", "A"]
    np.testing.assert_array_equal(wide["A"].to_numpy(), table.loc[table["trait"] == "A", "beta_shrunk"].to_numpy())
    np.testing.assert_array_equal(wide.index.to_numpy(), table.loc[table["trait"] == "C", "SNP"].to_numpy())
