"""Output safety and one-line errors (issue 19): occupied --out, leftovers of killed runs, the umask,
corrupt inputs for every sub-command, progress lines, and the smaller CLI fixes."""

import errno
import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmages as bm
from bayesmages.cli import main
from bayesmages.errors import InputError
from bayesmages.io.outdir import MARKER, OutputDir, remove_leftovers

TINY = ["--blocks", "2", "--variants-per-block", "80", "--ref-samples", "300"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs") / "sim"
    assert main(["simulate", "--out", str(folder), "--seed", "4", "--quiet", *TINY]) == 0
    return folder


@pytest.fixture(scope="module")
def effects(sim):
    """Two per-trait effects files (SNP, beta_shrunk, sd) as written by shrink, with a trait column."""
    rng = np.random.default_rng(0)
    snps = pd.read_csv(sim / "gwas_T1.tsv", sep="\t")["SNP"]
    files = []
    for t in ("T1", "T2"):
        path = sim.parent / f"eff_{t}.csv"
        pd.DataFrame({"SNP": snps, "trait": t, "beta_shrunk": rng.normal(0, 0.02, len(snps)),
                      "sd": 0.01}).to_csv(path, index=False)
        files.append(path)
    return files


def _one_line(capsys, command, needle=""):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"bayesmages {command}: error:"), err
    assert needle.lower() in err[0].lower(), (needle, err)
    return err[0]


# ------------------------------------------------------------------------------------------ --out
def _commands(sim, effects, out):
    gwas, ld, genes = str(sim / "gwas_T1.tsv"), str(sim / "ld"), str(sim / "genes.tsv")
    e1, e2 = map(str, effects)
    return {
        "cluster": ["cluster", "--effects", e1, e2, "--out", out],
        "enrich": ["enrich", "--effects", e1, "--ld", *map(str, sorted((sim / "ld").glob("*.npz"))),
                   "--genes", genes, "--test", "epsilon", "--null-variance", "1e-4", "--out", out],
        "genes": ["genes", "--effects", e1, "--clusters", e1, "--genes", genes, "--out", out],
        "simulate": ["simulate", "--out", out, *TINY],
        "demo": ["demo", "--out", out, "--blocks", "1", "--variants-per-block", "60"],
        "train-shrinker": ["train-shrinker", "--out", out],
        "run": ["run", "--gwas", gwas, "--ld", ld, "--genes", genes, "--out", out],
    }


@pytest.mark.parametrize("command", ["cluster", "enrich", "genes", "simulate", "demo", "train-shrinker", "run"])
def test_occupied_out_is_refused_and_kept(sim, effects, tmp_path, capsys, command):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "thesis.docx").write_text("precious")
    argv = _commands(sim, effects, str(proj))[command]
    assert main([*argv, "--quiet"]) == 2
    _one_line(capsys, command, "not written by bayesmages")
    assert [p.name for p in proj.iterdir()] == ["thesis.docx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]  # no temporary folder either


def test_overwrite_keeps_foreign_files_and_rerun_replaces_own(sim, effects, tmp_path, capsys):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "thesis.docx").write_text("precious")
    argv = _commands(sim, effects, str(proj))["cluster"]
    assert main([*argv, "--quiet", "--overwrite"]) == 0
    assert (proj / "thesis.docx").read_text() == "precious"
    marker = json.loads((proj / MARKER).read_text())
    assert "thesis.docx" not in marker["files"] and "variants.csv" in marker["files"]
    # Ours now: a rerun needs no flag; a file the user added later is kept, as are foreign names.
    (proj / "figures" / "my_notes.txt").write_text("mine")
    assert main([*argv, "--quiet"]) == 0
    assert (proj / "figures" / "my_notes.txt").read_text() == "mine"
    # A file bayesmages would replace but did not write stops the command; nothing is moved.
    marker["files"].remove("clusters.csv")
    (proj / MARKER).write_text(json.dumps(marker))
    before = (proj / "variants.csv").read_bytes()
    assert main([*argv, "--quiet", "--overwrite", "--seed", "3"]) == 2
    _one_line(capsys, "cluster", "would replace 'clusters.csv'")
    assert (proj / "variants.csv").read_bytes() == before
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_out_dot(sim, effects, tmp_path, monkeypatch, capsys):
    e1, e2 = map(str, effects)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "data.csv").write_text("x")
    monkeypatch.chdir(occupied)
    assert main(["cluster", "--effects", e1, e2, "--out", ".", "--quiet"]) == 2
    _one_line(capsys, "cluster", "--out .")
    assert sorted(os.listdir(tmp_path)) == ["occupied"] and os.listdir(occupied) == ["data.csv"]
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert main(["cluster", "--effects", e1, e2, "--out", ".", "--quiet"]) == 0
    assert (empty / "variants.csv").is_file() and Path.cwd() == empty
    assert sorted(os.listdir(tmp_path)) == ["empty", "occupied"]


def test_new_output_honours_umask(sim, tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["simulate", "--out", str(tmp_path / "a"), "--quiet", *TINY]) == 0
        os.umask(0o077)
        assert main(["simulate", "--out", str(tmp_path / "b"), "--quiet", *TINY]) == 0
    finally:
        os.umask(old)
    for name, fmode, dmode in (("a", 0o644, 0o755), ("b", 0o600, 0o700)):
        root = tmp_path / name
        assert stat.S_IMODE(root.stat().st_mode) == dmode
        assert stat.S_IMODE((root / "ld").stat().st_mode) == dmode
        for f in (root / "gwas_T1.tsv", root / "run.json", root / "ld" / "block_000.npz"):
            assert stat.S_IMODE(f.stat().st_mode) == fmode, f


def test_leftovers_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".res.bm{dead.pid}-0123abcd.tmp").mkdir()
    (tmp_path / f".res.bm{dead.pid}-0123abce.tmp").write_text("half")
    (tmp_path / f".res.bm{os.getpid()}-0123abcd.tmp").mkdir()  # a live writer (this process)
    (tmp_path / f".other.bm{dead.pid}-0123abcd.tmp").mkdir()  # another target
    (tmp_path / ".res.x.tmp").mkdir()  # not a bayesmages name
    assert sorted(remove_leftovers(tmp_path, "res")) == [f".res.bm{dead.pid}-0123abcd.tmp",
                                                          f".res.bm{dead.pid}-0123abce.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        f".res.bm{os.getpid()}-0123abcd.tmp", f".other.bm{dead.pid}-0123abcd.tmp", ".res.x.tmp"])


def test_run_adopts_old_leftovers_and_cleans_killed_figures(sim, tmp_path):
    gwas = [str(sim / "gwas_T1.tsv")]
    kw = {"traits": ["T1"], "figures": False, "truncation": 6, "restarts": 1}
    first = bm.pipeline.run(gwas, sim / "ld", sim / "genes.tsv", tmp_path / "first", **kw)
    # bayesmages 0.1.0 built a new run under .OUT.XXXXXXXX.tmp; a killed one left its finished steps there.
    old = tmp_path / ".res.k3j_x9ab.tmp"
    old.mkdir()
    for name in ("shrink_T1", "cluster_T1"):
        os.rename(first.out / name, old / name)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    res = tmp_path / "res"
    res.mkdir()
    (res / MARKER).write_text(json.dumps({"files": []}))
    (res / f".figures.bm{dead.pid}-00000000.tmp").mkdir()
    again = bm.pipeline.run(gwas, sim / "ld", sim / "genes.tsv", res, **kw)
    assert {r.name: r.reused for r in again.steps} == {"shrink_T1": True, "cluster_T1": True,
                                                       "enrich_T1": False, "genes": False}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "res"]
    assert not [p for p in res.iterdir() if p.name.startswith(".") and p.name != MARKER]


def test_failed_first_run_leaves_nothing_but_keeps_finished_steps(sim, tmp_path, monkeypatch):
    from bayesmages.pipeline import gene_steps, steps

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure")

    kw = {"traits": ["T1"], "figures": False, "truncation": 6, "restarts": 1}
    monkeypatch.setattr(steps, "shrink_traits", boom)
    with pytest.raises(RuntimeError):
        bm.pipeline.run([sim / "gwas_T1.tsv"], sim / "ld", sim / "genes.tsv", tmp_path / "a", **kw)
    assert list(tmp_path.iterdir()) == []  # nothing had finished: no folder at all
    monkeypatch.undo()
    monkeypatch.setattr(gene_steps, "gene_summaries", boom)
    with pytest.raises(RuntimeError):
        bm.pipeline.run([sim / "gwas_T1.tsv"], sim / "ld", sim / "genes.tsv", tmp_path / "a", **kw)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [MARKER, "cluster_T1", "enrich_T1", "shrink_T1"]


def test_output_dir_never_replaces_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = OutputDir(".").check()
    with out.build() as tmp:
        (tmp / "a.txt").write_text("1")
    inode = tmp_path.stat().st_ino
    with out.build() as tmp:
        (tmp / "b.txt").write_text("2")
    assert tmp_path.stat().st_ino == inode
    assert sorted(os.listdir(tmp_path)) == [MARKER, "b.txt"]  # a.txt was ours and is gone


# ------------------------------------------------------------------------------------------ errors
def _corrupt_inputs(sim, effects, tmp):
    gwas, genes = sim / "gwas_T1.tsv", sim / "genes.tsv"
    blocks = sorted((sim / "ld").glob("*.npz"))
    raw = gzip.compress(gwas.read_bytes())
    truncated = tmp / "gwas_trunc.tsv.gz"
    truncated.write_bytes(raw[: len(raw) // 2])
    empty_npy = tmp / "empty.npy"
    empty_npy.write_bytes(b"")
    indefinite = tmp / "indefinite.npy"
    np.save(indefinite, np.array([[1, .9, -.9], [.9, 1, .9], [-.9, .9, 1.0]]))
    table = pd.read_csv(gwas, sep="\t")
    no_se = tmp / "gwas_no_se.tsv"
    table.drop(columns=["SE"]).to_csv(no_se, sep="\t", index=False)
    text_beta = tmp / "gwas_text.tsv"
    table.astype({"BETA": object}).assign(BETA=lambda d: d["BETA"].where(d.index != 7, "abc")).to_csv(
        text_beta, sep="\t", index=False)
    garbage = tmp / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 4)
    empty = tmp / "empty.csv"
    empty.write_text("")
    no_id = tmp / "no_id.csv"
    pd.read_csv(effects[0]).drop(columns=["SNP"]).to_csv(no_id, index=False)
    text_eff = tmp / "text_eff.csv"
    pd.read_csv(effects[0]).astype({"beta_shrunk": object}).assign(beta_shrunk="x").to_csv(text_eff, index=False)
    bad_genes = tmp / "genes_bad.csv"
    pd.DataFrame({"NAME": ["A"], "FROM": [1]}).to_csv(bad_genes, index=False)
    elsewhere = tmp / "genes_elsewhere.csv"
    pd.DataFrame({"GENE": ["A"], "CHR": [7], "START": [1], "END": [9]}).to_csv(elsewhere, index=False)
    eff_pos = tmp / "eff_pos.csv"
    pd.read_csv(effects[0]).merge(table[["SNP", "CHR", "POS"]]).to_csv(eff_pos, index=False)
    clusters_ok = tmp / "clusters_ok.csv"
    pd.DataFrame({"SNP": table["SNP"], "cluster": 0}).to_csv(clusters_ok, index=False)
    bad_ld_text = tmp / "bad.ld"
    bad_ld_text.write_text("1 0.5\n0.5 x\n")
    config = tmp / "config.json"
    config.write_text("{not json")
    no_model = tmp / "no_model"
    no_model.mkdir()
    an_file = tmp / "a_file"
    an_file.write_text("x")
    # SKAT: 40 samples, 6 variants
    rng = np.random.default_rng(0)
    geno = tmp / "geno.csv"
    pd.DataFrame(rng.binomial(2, 0.2, (40, 6)), columns=[f"v{i}" for i in range(6)]).assign(
        IID=[f"s{i}" for i in range(40)]).to_csv(geno, index=False)
    pheno_text = tmp / "pheno_text.csv"
    pd.DataFrame({"IID": [f"s{i}" for i in range(40)], "y": ["a"] * 40}).to_csv(pheno_text, index=False)
    pheno_2 = tmp / "pheno_2.csv"
    pd.DataFrame({"IID": [f"s{i}" for i in range(40)], "y": [0, 1, 2, 1] * 10}).to_csv(pheno_2, index=False)
    pheno_cases = tmp / "pheno_cases.csv"
    pd.DataFrame({"IID": [f"s{i}" for i in range(40)], "y": [1] * 40}).to_csv(pheno_cases, index=False)
    sets = tmp / "sets.csv"
    pd.DataFrame({"SET": ["g"] * 6, "SNP": [f"v{i}" for i in range(6)]}).to_csv(sets, index=False)
    sets_bad = tmp / "sets_bad.csv"
    pd.DataFrame({"SET": ["g"]}).to_csv(sets_bad, index=False)
    e1, e2 = map(str, effects)
    ld1 = [str(b) for b in blocks]
    skat = ["skat", "--genotypes", str(geno), "--sets", str(sets), "--out", str(tmp / "skat.csv")]
    shrink = ["shrink", "--ld", *ld1, "--out", str(tmp / "s.csv")]
    run = ["run", "--ld", str(sim / "ld"), "--genes", str(genes), "--out", str(tmp / "r")]
    return [
        ("run", ["run", "--gwas", str(truncated), "--ld", str(sim / "ld"), "--genes", str(genes), "--out",
                 str(tmp / "r")], "truncated or corrupt"),
        ("run", ["run", "--gwas", str(gwas), "--ld", str(empty_npy), "--genes", str(genes), "--out",
                 str(tmp / "r")], "empty.npy"),
        ("run", [*run, "--gwas", str(no_se)], "standard-error"),
        ("run", [*run, "--gwas", str(gwas), "--genes", str(bad_genes)], "genes_bad.csv"),
        ("run", ["run", "--gwas", str(gwas), "--ld", str(bad_ld_text), "--genes", str(genes), "--out",
                 str(tmp / "r")], "bad.ld"),
        ("shrink", [*shrink, "--gwas", str(truncated)], "truncated or corrupt"),
        ("shrink", ["shrink", "--gwas", str(gwas), "--ld", str(empty_npy), "--out", str(tmp / "s.csv")],
         "not a valid .npy"),
        ("shrink", ["shrink", "--gwas", str(gwas), "--ld", str(indefinite), "--out", str(tmp / "s.csv")],
         "not positive semi-definite"),
        ("shrink", [*shrink, "--gwas", str(text_beta)], "non-numeric value 'abc' at row 8"),
        ("shrink", [*shrink, "--gwas", str(gwas), "--model", str(no_model)], "without model.pt"),
        ("shrink", ["shrink", "--gwas", str(gwas), "--ld", *ld1, "--out", str(tmp / "s.xlsx")], "unknown file type"),
        ("shrink", ["shrink", "--gwas", str(gwas), "--ld", str(no_model), "--out", str(tmp / "s.csv")],
         "no LD block files"),
        ("cluster", ["cluster", "--effects", str(garbage), e2, "--out", str(tmp / "c")], "garbage.csv"),
        ("cluster", ["cluster", "--effects", str(empty), e2, "--out", str(tmp / "c")], "empty"),
        ("cluster", ["cluster", "--effects", str(no_id), e2, "--out", str(tmp / "c")], "no variant id column"),
        ("cluster", ["cluster", "--effects", str(text_eff), e2, "--out", str(tmp / "c")], "non-numeric"),
        ("cluster", ["cluster", "--effects", e1, e2, "--out", str(an_file)], "not a folder"),
        ("enrich", ["enrich", "--effects", e1, "--ld", str(empty_npy), "--genes", str(genes), "--out",
                    str(tmp / "e")], "empty.npy"),
        ("enrich", ["enrich", "--effects", str(no_id), "--column", "nope", "--ld", *ld1, "--genes", str(genes),
                    "--out", str(tmp / "e")], "no effect column"),
        ("enrich", ["enrich", "--effects", e1, "--ld", *ld1, "--genes", str(elsewhere), "--test", "epsilon",
                    "--null-variance", "1e-4", "--out", str(tmp / "e")], f"{e1}: positions mapping needs"),
        ("enrich", ["enrich", "--effects", str(eff_pos), "--ld", *ld1, "--genes", str(elsewhere),
                    "--test", "epsilon", "--null-variance", "1e-4", "--out", str(tmp / "e")], "none of its 1 genes"),
        ("genes", ["genes", "--effects", e1, "--clusters", e2, "--genes", str(genes), "--out", str(tmp / "g")],
         "cluster"),
        ("genes", ["genes", "--effects", e1, "--clusters", str(clusters_ok), "--genes", str(empty), "--out",
                   str(tmp / "g")], "empty"),
        ("simulate", ["simulate", "--ld", str(empty_npy), "--out", str(tmp / "sim")], "empty.npy"),
        ("skat", [*skat, "--phenotype", str(pheno_text)], "non-numeric"),
        ("skat", [*skat, "--phenotype", str(pheno_2), "--trait", "binary"], "pheno_2.csv: column y must be coded 0/1"),
        ("skat", [*skat, "--phenotype", str(pheno_cases), "--trait", "binary"], "pheno_cases.csv column y"),
        ("skat", ["skat", "--genotypes", str(geno), "--sets", str(sets_bad), "--phenotype", str(pheno_2),
                  "--out", str(tmp / "skat.csv")], "sets_bad.csv"),
        ("skat", ["skat", "--genotypes", str(empty), "--sets", str(sets), "--phenotype", str(pheno_2),
                  "--out", str(tmp / "skat.csv")], "empty"),
        ("train-shrinker", ["train-shrinker", "--config", str(config), "--out", str(tmp / "m")], "not valid JSON"),
    ]


def test_every_command_with_corrupt_input_is_one_line_exit_2(sim, effects, tmp_path, capsys):
    cases = _corrupt_inputs(sim, effects, tmp_path)
    before = set(os.listdir(tmp_path))
    for command, argv, needle in cases:
        assert main([*argv, "--quiet"]) == 2, (command, argv)
        line = _one_line(capsys, command, needle)
        assert "np.float64" not in line and "np.str_" not in line, line
        assert set(os.listdir(tmp_path)) == before, (command, argv)  # no output, no temporary file


def test_corrupt_input_through_a_process_has_no_traceback(sim, tmp_path):
    bad = tmp_path / "empty.npy"
    bad.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "bayesmages", "shrink", "--gwas", str(sim / "gwas_T1.tsv"),
                           "--ld", str(bad), "--out", str(tmp_path / "s.csv")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_full_disk_is_one_line_exit_2_and_leaves_nothing(effects, tmp_path, monkeypatch, capsys):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    import pyarrow.csv

    # both table writers (Arrow's, and pandas' for tables Arrow cannot take) hit the full disk
    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    monkeypatch.setattr(pyarrow.csv, "write_csv", full)
    out = tmp_path / "c"
    assert main(["cluster", "--effects", *map(str, effects), "--out", str(out), "--quiet"]) == 2
    _one_line(capsys, "cluster", f"no space left on the device (writing --out {out})")
    assert list(tmp_path.iterdir()) == []


def test_parquet_dependency_checked_before_computing(sim, tmp_path, monkeypatch, capsys):
    import importlib.util

    import bayesmages.shrink as shrink_pkg

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    monkeypatch.setattr(shrink_pkg, "shrink", lambda *a, **k: pytest.fail("computed before checking pyarrow"))
    assert main(["shrink", "--gwas", str(sim / "gwas_T1.tsv"), "--ld", str(sim / "ld"),
                 "--out", str(tmp_path / "s.parquet")]) == 2
    _one_line(capsys, "shrink", "needs pyarrow")


# ------------------------------------------------------------------------------------------ item 6
def test_indefinite_ld_is_refused_mild_indefiniteness_accepted():
    R = np.array([[1, .9, -.9], [.9, 1, .9], [-.9, .9, 1.0]])  # smallest eigenvalue -0.8
    with pytest.raises(InputError, match=r"not positive semi-definite \(smallest eigenvalue -0.8"):
        bm.io.validate_ld(R, source="ld.npy")
    # Rounding/pairwise-estimation noise of real LD (smallest eigenvalue about -0.01) is accepted.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 60))
    C = np.corrcoef(X, rowvar=False)
    w, V = np.linalg.eigh(C)
    w[0] = -0.01
    S = (V * w) @ V.T
    d = np.sqrt(np.diag(S))
    S = S / np.outer(d, d)
    assert np.linalg.eigvalsh(S)[0] < 0
    bm.io.validate_ld(S)


def test_enrich_notes_genes_outside_the_data(sim, effects, tmp_path, capsys):
    genes = pd.read_csv(sim / "genes.tsv", sep="\t")
    extra = pd.DataFrame({"GENE": ["FAR1", "FAR2"], "CHR": [9, 9], "START": [1, 5], "END": [3, 9]})
    table = pd.concat([genes[["GENE", "CHR", "START", "END"]], extra], ignore_index=True)
    path = tmp_path / "genes.csv"
    table.to_csv(path, index=False)
    eff = pd.read_csv(effects[0]).merge(pd.read_csv(sim / "gwas_T1.tsv", sep="\t")[["SNP", "CHR", "POS"]])
    eff_path = tmp_path / "eff.csv"
    eff.to_csv(eff_path, index=False)
    out = tmp_path / "e"
    assert main(["enrich", "--effects", str(eff_path), "--ld", *map(str, sorted((sim / "ld").glob("*.npz"))),
                 "--genes", str(path), "--test", "epsilon", "--null-variance", "1e-4", "--out", str(out),
                 "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bayesmages enrich: note: 2 of {len(table)} genes contain no variant of the data and were "
                   "skipped (listed in run.json)"]
    meta = json.loads((out / "run.json").read_text())
    assert sorted(meta["genes_unmapped"]) == ["9:FAR1", "9:FAR2"]


# ------------------------------------------------------------------------------------------ item 7
def test_progress_lines_when_not_a_tty_bar_on_a_tty(monkeypatch, capsys):
    import io

    from bayesmages.pipeline.runner import _Progress

    p = _Progress(True, n_steps=2)
    p.start("shrink_T1")
    p.done("shrink_T1", 1.25)
    p.done("cluster_T1", 3.0, reused=True)
    p.close()
    assert capsys.readouterr().err.splitlines() == [
        "bayesmages run: shrink_T1: started", "bayesmages run: shrink_T1: done (1.2 s)",
        "bayesmages run: cluster_T1: reused (computed earlier in 3.0 s)"]
    quiet = _Progress(False, n_steps=2)
    quiet.start("x")
    quiet.done("x", 1.0)
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = _Progress(True, n_steps=2)
    bar.start("genes")
    bar.done("genes", 0.5)
    bar.close()
    assert "genes" in term.getvalue() and "1/2" in term.getvalue() and "started" not in term.getvalue()


# ------------------------------------------------------------------------------------------ item 8
def test_shrink_takes_an_ld_folder_and_a_model_folder(sim, tmp_path):
    from bayesmages.shrink.api import _default_path

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.pt").write_bytes(_default_path().read_bytes())
    files = [str(p) for p in sorted((sim / "ld").glob("*.npz"))]
    gwas = str(sim / "gwas_T1.tsv")
    assert main(["shrink", "--gwas", gwas, "--ld", *files, "--out", str(tmp_path / "a.csv"), "--quiet"]) == 0
    assert main(["shrink", "--gwas", gwas, "--ld", str(sim / "ld"), "--model", str(model_dir),
                 "--out", str(tmp_path / "b.csv"), "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))
    # The table is ours (its run.json names it): a rerun replaces it; a foreign file needs --overwrite.
    assert main(["shrink", "--gwas", gwas, "--ld", *files, "--out", str(tmp_path / "a.csv"), "--quiet"]) == 0
    (tmp_path / "mine.csv").write_text("x")
    assert main(["shrink", "--gwas", gwas, "--ld", *files, "--out", str(tmp_path / "mine.csv"), "--quiet"]) == 2


def test_help_texts_and_cluster_table_digits(effects, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["shrink", "--help"])
    assert "90% interval" in capsys.readouterr().out
    assert main(["cluster", "--effects", *map(str, effects), "--out", str(tmp_path / "c"), "--truncation", "6",
                 "--restarts", "1"]) == 0
    table = capsys.readouterr().out
    assert "0.0000" not in table and "e-0" in table  # variances ~1e-4 keep their significant digits


def test_ecskat_result_repr_is_compact():
    rng = np.random.default_rng(0)
    Z = rng.binomial(2, 0.05, size=(200, 12)).astype(float)
    res = bm.skat.ecskat(Z, rng.normal(size=200), rng.normal(size=(200, 1)), seed=1)
    text = repr(res)
    assert len(text.splitlines()) == 1 and len(text) < 300 and "p_value=" in text


def test_ci_runs_the_readme_test_command():
    root = Path(bm.__file__).resolve().parents[1]
    if not (root / ".ci" / "run").is_file():
        pytest.skip("not a source checkout")
    quickstart = (root / "README.md").read_text().split("## Quickstart")[1].split("```bash")[1].split("```")[0]
    commands = quickstart.strip().splitlines()
    assert len(commands) == 2
    # Both make (or reuse) .venv themselves: the system Python's pip refuses to install outside one (PEP 668).
    assert all(c.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install ") for c in commands)
    assert commands[1] in (root / ".ci" / "run").read_text().splitlines()


def test_a_folder_of_another_command_is_not_replaced(sim, effects, tmp_path, capsys):
    import shutil

    folder = tmp_path / "sim"
    shutil.copytree(sim, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    argv = ["cluster", "--effects", *map(str, effects), "--out", str(folder), "--quiet"]
    assert main(argv) == 2
    _one_line(capsys, "cluster", "holds the output of 'bayesmages simulate'")
    # With --overwrite, simulate's run.json is in the way: not cluster's to replace.
    assert main([*argv, "--overwrite"]) == 2
    _one_line(capsys, "cluster", "would replace 'run.json'")
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_shrink_block_errors_name_the_block_once():
    b, s = np.array([0.1, 0.2]), np.array([0.05, 0.0])
    with pytest.raises(InputError) as err:
        bm.shrink.shrink([b, b], [b * 0 + 0.05, s], [np.eye(2), np.eye(2)])
    assert str(err.value) == "block 2: se must be > 0; variant 2 has se = 0"


def test_a_second_run_on_a_folder_being_written_is_refused(sim, tmp_path, capsys):
    """Two runs landing steps in one folder would interleave their marker writes: the second is refused
    while the first holds the folder, and a killed holder (SIGKILL, no clean-up) leaves no lock behind."""
    out = tmp_path / "res"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from bayesmages.io.outdir import OutputDir; "
         f"OutputDir({str(out)!r}, command='run').open(); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        argv = ["run", "--gwas", str(sim / "gwas_T1.tsv"), "--ld", str(sim / "ld"), "--genes",
                str(sim / "genes.tsv"), "--out", str(out), "--quiet"]
        assert main(argv) == 2
        _one_line(capsys, "run", "another bayesmages process is writing to this folder")
        assert sorted(p.name for p in out.iterdir()) == [MARKER]  # nothing of the refused run landed
    finally:
        holder.kill()
        holder.communicate()
    assert main(argv) == 0  # the killed holder's lock went with it
    assert (out / "report.md").is_file()
    again = OutputDir(out, command="run")
    again.open()  # this process's run released the folder when it finished
    again.release()
