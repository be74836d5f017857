"""A real client: plink2 computes a GWAS on simulated genotypes; bayesmages reads plink2's own output and harmonises it.

plink2 is the Debian package ``plink2`` (.ci/run installs it where apt works); the test skips with that reason
where it is not installed. The reference panel is a .bed/.bim of *other* simulated samples, with some variants
removed, some alleles swapped and some reported on the other strand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bayesmages.io import harmonise, read_bim, read_gwas

PLINK2 = shutil.which("plink2")
pytestmark = pytest.mark.skipif(
    PLINK2 is None, reason="plink2 is not installed (Debian package 'plink2'; .ci/run installs it when apt works)")
bed_reader = pytest.importorskip("bed_reader", reason="bed-reader is needed to write .bed files")
pytest.importorskip("msprime", reason="msprime is needed to simulate genotypes")

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def _to_bed(path, G, chrom, sid, pos, allele_1, allele_2, iid):
    # count_A1=True: G counts allele_1 (the .bim's fifth column)
    bed_reader.to_bed(path, G.astype(np.float32), properties={
        "fid": iid, "iid": iid, "chromosome": chrom, "sid": sid, "bp_position": pos,
        "allele_1": allele_1, "allele_2": allele_2, "cm_position": np.zeros(len(sid)),
    }, count_A1=True)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """plink2's GWAS of a simulated cohort, and a reference panel of other samples (some variants removed,
    some alleles swapped, some on the other strand)."""
    from bayesmages.simulate import simulate_genotypes

    tmp_path = tmp_path_factory.mktemp("plink2")
    sim = simulate_genotypes(700, 300_000, max_variants=100, maf_min=0.05, seed=11)
    # Variants in perfect LD in the panel tie in the shrinker's LD features, and ties are broken by the last
    # bit of R, which differs between two correct computations: keep one variant of each such group.
    ref = sim.G[500:].astype(float)
    R = np.abs(np.corrcoef(ref.T))
    cols = [j for j in range(sim.n_variants) if not (R[j, :j] > 0.999).any()]
    sim = SimpleNamespace(G=sim.G[:, cols], positions=sim.positions[cols], n_variants=len(cols))
    rng = np.random.default_rng(5)
    m = sim.n_variants
    pairs = [(a, b) for a in "ACGT" for b in "ACGT" if a != b]
    alleles = [pairs[i] for i in rng.integers(0, len(pairs), m)]  # about 1 in 3 is A/T or C/G
    a_counted = np.array([a for a, _ in alleles])  # the allele G counts in the cohort
    a_other = np.array([b for _, b in alleles])
    sid = np.array([f"rs{j}" for j in range(m)])
    chrom = np.full(m, "7")

    # cohort: 500 people, a quantitative trait with 5 causal variants
    G = sim.G[:500].astype(float)
    iid = np.array([f"s{i}" for i in range(500)])
    beta = np.zeros(m)
    beta[rng.choice(m, 5, replace=False)] = rng.normal(0, 0.4, 5)
    y = G @ beta + rng.normal(size=500)
    _to_bed(tmp_path / "cohort.bed", G, chrom, sid, sim.positions, a_counted, a_other, iid)
    pd.DataFrame({"#FID": iid, "IID": iid, "y": y}).to_csv(tmp_path / "pheno.txt", sep="\t", index=False)
    proc = subprocess.run(
        [PLINK2, "--bfile", str(tmp_path / "cohort"), "--pheno", str(tmp_path / "pheno.txt"),
         "--glm", "allow-no-covars", "--threads", "1", "--memory", "1000", "--out", str(tmp_path / "gwas")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    glm = tmp_path / "gwas.y.glm.linear"

    # panel: the other 200 people; every 6th variant removed, every 4th with its alleles swapped,
    # every 5th reported on the other strand
    keep = np.arange(m) % 6 != 3
    swapped = np.arange(m) % 4 == 1
    flipped = np.arange(m) % 5 == 2
    p_a1 = np.where(swapped, a_other, a_counted)
    p_a2 = np.where(swapped, a_counted, a_other)
    p_a1 = np.where(flipped, [COMPLEMENT[a] for a in p_a1], p_a1)
    p_a2 = np.where(flipped, [COMPLEMENT[a] for a in p_a2], p_a2)
    Gp = sim.G[500:].astype(float)
    Gp = np.where(swapped, 2 - Gp, Gp)  # the panel's genotypes count its own A1
    _to_bed(tmp_path / "panel.bed", Gp[:, keep], chrom[keep], sid[keep], sim.positions[keep], p_a1[keep],
            p_a2[keep], np.array([f"r{i}" for i in range(200)]))
    return SimpleNamespace(**{k: v for k, v in locals().items() if k not in ("proc", "rng", "pairs")})


def test_plink2_glm_output_read_and_harmonised_equals_hand_harmonised(case):
    c = case
    tmp_path, m, glm, sid, alleles, keep, flipped, swapped = (c.tmp_path, c.m, c.glm, c.sid, c.alleles, c.keep,
                                                               c.flipped, c.swapped)
    p_a1, p_a2, sim, G, y = c.p_a1, c.p_a2, c.sim, c.G, c.y
    panel = read_bim(tmp_path / "panel.bed")

    gwas = read_gwas(glm)
    assert gwas.attrs["format"] == "plink2" and gwas.attrs["n_rows"] == m
    table, dropped, report = harmonise(gwas, panel)

    # --- by hand, from plink2's raw file and what was done to the panel --------------------------
    raw = pd.read_csv(glm, sep="\t", dtype={"ERRCODE": str})
    assert len(raw) == m and raw["ID"].tolist() == sid.tolist()
    ok = (raw["ERRCODE"] == ".").to_numpy()
    palindromic = np.array([COMPLEMENT[a] == b for a, b in alleles])
    usable = ok & keep & ~palindromic
    # plink2's A1 is the allele its BETA is for; on the panel's strand it is A1 or its complement
    a1_panel_strand = np.where(flipped, [COMPLEMENT[a] for a in raw["A1"]], raw["A1"])
    sign = np.where(a1_panel_strand == p_a1, 1.0, -1.0)
    assert set(a1_panel_strand[usable]) <= set(p_a1) | set(p_a2)
    panel_index = np.cumsum(keep) - 1
    hand = pd.DataFrame({
        "SNP": sid[usable], "CHR": "7", "POS": sim.positions[usable], "A1": p_a1[usable], "A2": p_a2[usable],
        "BETA": (raw["BETA"].to_numpy(dtype=float) * sign)[usable], "SE": raw["SE"].to_numpy(dtype=float)[usable],
        "N": raw["OBS_CT"].to_numpy(dtype=float)[usable], "PANEL_INDEX": panel_index[usable],
    })
    cols = list(hand.columns)
    pd.testing.assert_frame_equal(table[cols].reset_index(drop=True), hand, check_dtype=False)
    assert table["STRAND_FLIPPED"].tolist() == flipped[usable].tolist()

    expected = {"not_in_panel": int((ok & ~keep).sum()),
                "ambiguous_strand": int((ok & keep & palindromic).sum()), "errcode": int((~ok).sum())}
    assert {r: c for r, c in report["dropped"].items() if c} == {r: c for r, c in expected.items() if c}
    assert report["n_input"] == m == report["n_harmonised"] + report["n_dropped"] == len(table) + len(dropped)
    assert expected["not_in_panel"] > 0 and expected["ambiguous_strand"] > 0 and table["SWAPPED"].any()

    # --- and plink2's numbers, oriented to the panel's A1, are least squares on that allele's dosage ---
    j = np.flatnonzero(usable)
    counts_panel_a1 = np.where(swapped[j], 2 - G[:, j], G[:, j])  # swapped: the panel's A1 is the uncounted one
    x = counts_panel_a1 - counts_panel_a1.mean(axis=0)
    slope = x.T @ (y - y.mean()) / (x**2).sum(axis=0)
    resid = (y - y.mean())[:, None] - x * slope
    se = np.sqrt((resid**2).sum(axis=0) / (500 - 2) / (x**2).sum(axis=0))
    # plink2 prints 6 significant digits: relative agreement to 1e-5
    np.testing.assert_allclose(table["BETA"], slope, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(table["SE"], se, rtol=1e-5, atol=1e-7)


def _hand_harmonised(c):
    """The GWAS rows a careful user keeps, oriented to the panel's A1, from plink2's raw file and the known edits."""
    raw = pd.read_csv(c.glm, sep="\t", dtype={"ERRCODE": str})
    palindromic = np.array([COMPLEMENT[a] == b for a, b in c.alleles])
    panel_g = c.Gp[:, c.keep]
    polymorphic = np.zeros(c.m, dtype=bool)
    polymorphic[c.keep] = panel_g.std(axis=0) > 0  # a variant without variation in the panel has no LD
    usable = (raw["ERRCODE"] == ".").to_numpy() & c.keep & ~palindromic & polymorphic
    a1_panel_strand = np.where(c.flipped, [COMPLEMENT[a] for a in raw["A1"]], raw["A1"])
    sign = np.where(a1_panel_strand == c.p_a1, 1.0, -1.0)
    return raw, usable, pd.DataFrame({
        "SNP": c.sid[usable], "CHR": "7", "POS": c.sim.positions[usable], "A1": c.p_a1[usable],
        "A2": c.p_a2[usable], "BETA": (raw["BETA"].to_numpy(dtype=float) * sign)[usable],
        "SE": raw["SE"].to_numpy(dtype=float)[usable], "N": raw["OBS_CT"].to_numpy(dtype=float)[usable],
    })


def test_run_with_ld_panel_equals_run_on_hand_harmonised_gwas_and_ld_files(case, tmp_path):
    from bayesmages.cli import main
    from bayesmages.simulate import ld_from_genotypes

    c = case
    raw, usable, hand = _hand_harmonised(c)
    pos = c.sim.positions
    # three LD regions (half-open [START, END)) with gaps between them, and four genes over the simulated stretch
    starts = np.quantile(pos, [0, 0.35, 0.7]).astype(np.int64)
    ends = np.append(np.quantile(pos, [0.3, 0.65]).astype(np.int64), pos.max() + 1)
    pd.DataFrame({"chr": "chr7", "start": starts, "stop": ends}).to_csv(tmp_path / "blocks.bed", sep="\t",
                                                                        index=False)
    in_region = ((pos[:, None] >= starts) & (pos[:, None] < ends)).any(axis=1)
    assert (~in_region & usable).sum() > 0  # some harmonised variants have no LD block
    usable &= in_region
    hand = hand[in_region[np.flatnonzero(_hand_harmonised(c)[1])]].reset_index(drop=True)
    genes = pd.DataFrame({"GENE": [f"G{k}" for k in range(4)], "CHR": "7",
                          "START": np.quantile(pos, [0.0, 0.25, 0.5, 0.75]).astype(int),
                          "END": np.quantile(pos, [0.2, 0.45, 0.7, 1.0]).astype(int)})
    genes.to_csv(tmp_path / "genes.tsv", sep="\t", index=False)

    # by hand: the same variants, LD of each region from the panel's genotypes (numpy), as .npy files
    hand.to_csv(tmp_path / "hand.tsv", sep="\t", index=False)
    (tmp_path / "ld").mkdir()
    counted = np.where(c.swapped, 2 - c.sim.G[500:], c.sim.G[500:]).astype(float)  # panel's A1 counts, all variants
    for k, (lo, hi) in enumerate(zip(starts, ends)):
        j = np.flatnonzero(usable & (pos >= lo) & (pos < hi))
        if j.size:
            np.save(tmp_path / "ld" / f"block{k}.npy", ld_from_genotypes(counted[:, j]))
    fast = ["--traits", "y", "--genes", str(tmp_path / "genes.tsv"), "--truncation", "8", "--restarts", "2",
            "--quiet", "--seed", "3"]
    assert main(["run", "--gwas", str(tmp_path / "hand.tsv"), "--ld", str(tmp_path / "ld"),
                 "--out", str(tmp_path / "by_hand"), *fast]) == 0

    # bayesmages: plink2's own file and the panel .bed
    assert main(["run", "--gwas", str(c.glm), "--gwas-format", "plink2", "--ld-panel", str(c.tmp_path / "panel.bed"),
                 "--ld-blocks", str(tmp_path / "blocks.bed"), "--ld-store", str(tmp_path / "store"),
                 "--out", str(tmp_path / "by_panel"), *fast]) == 0

    for rel in ("shrink_y/shrinkage.csv", "enrich_y/gene_enrichment.csv", "cluster_y/variants.csv",
                "genes/gene_S.csv"):
        a = pd.read_csv(tmp_path / "by_panel" / rel)
        b = pd.read_csv(tmp_path / "by_hand" / rel)
        # the LD matrices agree to rounding (~1e-15: a region's correlations computed whole, then subset, vs the
        # subset alone); downstream that stays far below the 6 significant digits of the CSV files, but a value
        # on a rounding boundary may print one unit of its last digit apart
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=2e-6, atol=2e-6)
    shrink = pd.read_csv(tmp_path / "by_panel" / "shrink_y" / "shrinkage.csv")
    assert shrink["SNP"].tolist() == hand["SNP"].tolist()

    # the Python API does the same, reading the LD store the CLI run built
    import bayesmages as bm

    stamp = (tmp_path / "store" / "manifest.json").stat().st_mtime_ns
    res = bm.pipeline.run(str(c.glm), None, tmp_path / "genes.tsv", tmp_path / "api", traits=["y"], seed=3,
                          truncation=8, restarts=2, figures=False, gwas_format="plink2",
                          ld_panel=bm.pipeline.LDPanel(c.tmp_path / "panel.bed", store=tmp_path / "store",
                                                       boundaries=tmp_path / "blocks.bed"))
    assert (tmp_path / "store" / "manifest.json").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(res.shrinkage.drop(columns="trait").reset_index(drop=True),
                                  shrink.drop(columns="trait"), check_exact=False, rtol=2e-6, atol=2e-6,
                                  check_dtype=False)

    # every plink2 row is used or dropped with a reason
    report = json.loads((tmp_path / "by_panel" / "harmonisation" / "report.json").read_text())["traits"]["y"]
    dropped = pd.read_csv(tmp_path / "by_panel" / "harmonisation" / "dropped_y.csv")
    assert report["n_input"] == c.m == report["n_used"] + report["n_dropped"] == len(hand) + len(dropped)
    assert sorted(dropped["SNP"]) == sorted(c.sid[~usable])
    ok = (raw["ERRCODE"] == ".").to_numpy()
    assert report["dropped"]["not_in_panel"] == int((ok & ~c.keep).sum()) > 0
    assert report["dropped"]["no_panel_ld"] == int((~in_region & _hand_harmonised(c)[1]).sum()) > 0
    assert set(dropped.loc[dropped["reason"] == "no_panel_ld", "detail"]) == {
        "outside every region of the LD block boundary file"}
    assert report["n_swapped"] > 0 and report["n_strand_flipped"] > 0
    run_json = json.loads((tmp_path / "by_panel" / "run.json").read_text())
    assert run_json["harmonisation"]["y"]["n_used"] == len(hand)
    assert "Harmonisation with the reference panel" in (tmp_path / "by_panel" / "report.md").read_text()


def _error_line(capsys, argv):
    from bayesmages.cli import main

    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_run_with_ld_panel_bad_inputs_exit_2_with_one_line(case, tmp_path, capsys):
    c = case
    genes = tmp_path / "genes.tsv"
    pd.DataFrame({"GENE": ["G"], "CHR": "7", "START": [0], "END": [10**9]}).to_csv(genes, sep="\t", index=False)
    base = ["run", "--gwas", str(c.glm), "--genes", str(genes), "--quiet"]

    # a fileset without its .fam
    shutil.copy(c.tmp_path / "panel.bed", tmp_path / "nofam.bed")
    shutil.copy(c.tmp_path / "panel.bim", tmp_path / "nofam.bim")
    err = _error_line(capsys, [*base, "--ld-panel", str(tmp_path / "nofam.bed"), "--out", str(tmp_path / "o1")])
    assert "nofam.fam is missing" in err
    assert not (tmp_path / "o1").exists()

    # a .bed of another fileset (the cohort's 500 samples) with the panel's .bim/.fam
    shutil.copy(c.tmp_path / "cohort.bed", tmp_path / "mixed.bed")
    shutil.copy(c.tmp_path / "panel.bim", tmp_path / "mixed.bim")
    shutil.copy(c.tmp_path / "panel.fam", tmp_path / "mixed.fam")
    err = _error_line(capsys, [*base, "--ld-panel", str(tmp_path / "mixed.bed"), "--out", str(tmp_path / "o2")])
    assert "mixed.bed" in err and "not one fileset" in err

    # a panel with no variant in common (another chromosome)
    bim = pd.read_csv(c.tmp_path / "panel.bim", sep="\t", header=None)
    bim[0] = 9
    for ext in (".bed", ".fam"):
        shutil.copy(c.tmp_path / f"panel{ext}", tmp_path / f"chr9{ext}")
    bim.to_csv(tmp_path / "chr9.bim", sep="\t", header=False, index=False)
    err = _error_line(capsys, [*base, "--ld-panel", str(tmp_path / "chr9.bed"), "--out", str(tmp_path / "o3")])
    assert "none of the" in err and "not_in_panel" in err

    # matching by id when the panel's ids are other ids
    bim = pd.read_csv(c.tmp_path / "panel.bim", sep="\t", header=None)
    bim[1] = "x" + bim[1].astype(str)
    for ext in (".bed", ".fam"):
        shutil.copy(c.tmp_path / f"panel{ext}", tmp_path / f"ids{ext}")
    bim.to_csv(tmp_path / "ids.bim", sep="\t", header=False, index=False)
    err = _error_line(capsys, [*base, "--ld-panel", str(tmp_path / "ids.bed"), "--harmonise-by", "id",
                               "--out", str(tmp_path / "o4")])
    assert "none of the" in err

    # --ld and --ld-panel together, --ld-store without --ld-panel
    err = _error_line(capsys, [*base, "--ld-panel", str(c.tmp_path / "panel.bed"), "--ld", str(tmp_path),
                               "--out", str(tmp_path / "o5")])
    assert "not allowed with" in err
    err = _error_line(capsys, [*base, "--ld", str(tmp_path), "--ld-store", str(tmp_path / "s"),
                               "--out", str(tmp_path / "o6")])
    assert "--ld-store applies to --ld-panel only" in err


def test_documented_worked_example_gives_the_documented_numbers(tmp_path):
    """docs/formats.md's worked example: its commands run, and its numbers are what they give."""
    import re
    import sys
    from pathlib import Path

    import bayesmages as bm

    repo = Path(__file__).resolve().parents[1]
    toy = tmp_path / "toy"
    subprocess.run([sys.executable, str(repo / "examples" / "make_plink_example.py"), str(toy)], check=True,
                   capture_output=True, timeout=300)
    proc = subprocess.run([PLINK2, "--bfile", str(toy / "cohort"), "--pheno", str(toy / "pheno.txt"), "--glm",
                           "allow-no-covars", "--out", str(toy / "gwas"), "--threads", "1"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    inputs = bm.pipeline.load_inputs(str(toy / "gwas.y.glm.linear"), None, toy / "genes.tsv", traits=["y"],
                                     ld_panel=toy / "panel.bed")
    rep = inputs.harmonisation.reports["y"]
    docs = (repo / "docs" / "formats.md").read_text()
    line = re.search(r"y: (\d+) GWAS variants: (\d+) used \((\d+) swapped, (\d+) strand-flipped\), (\d+) dropped", docs)
    assert line is not None
    assert [int(x) for x in line.groups()] == [rep["n_input"], rep["n_used"], rep["n_swapped"],
                                               rep["n_strand_flipped"], rep["n_dropped"]]
    reasons = ", ".join(f"{k} {v}" for k, v in rep["dropped"].items() if v)
    assert f"| y | {rep['n_input']} | {rep['n_used']} |" in docs and reasons in docs
    assert len(inputs.blocks) == 2 and (toy / "panel.ldstore" / "manifest.json").is_file()
