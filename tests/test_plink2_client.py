"""A real client: plink2 computes a GWAS on simulated genotypes; bayesmages reads plink2's own output and harmonises it.

plink2 is the Debian package ``plink2`` (.ci/run installs it where apt works); the test skips with that reason
where it is not installed. The reference panel is a .bed/.bim of *other* simulated samples, with some variants
removed, some alleles swapped and some reported on the other strand.
"""

from __future__ import annotations

import shutil
import subprocess

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


def test_plink2_glm_output_read_and_harmonised_equals_hand_harmonised(tmp_path):
    from bayesmages.simulate import simulate_genotypes

    sim = simulate_genotypes(700, 300_000, max_variants=80, maf_min=0.05, seed=11)
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
