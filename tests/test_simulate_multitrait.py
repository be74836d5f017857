"""simulate.multitrait: gene-level truth, heritability, effect correlations, files and CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from bayesmages.cli import main
from bayesmages.errors import InputError
from bayesmages.io import read_genes, read_gwas, read_ld
from bayesmages.simulate import simulate_multitrait

SMALL = {"variants_per_block": 120, "n_ref_samples": 300}


@pytest.fixture(scope="module")
def sim3():
    # Many causal genes so that every one of the 7 types of 3 traits appears.
    return simulate_multitrait(3, 3, p_causal_genes=0.8, h2=[0.02, 0.05, 0.1], seed=5, **SMALL)


def test_gwas_tables_and_layout(sim3):
    m = sim3.params["n_variants"]
    assert sim3.traits == ["T1", "T2", "T3"]
    for t in sim3.traits:
        df = sim3.gwas[t]
        assert list(df.columns) == ["CHR", "SNP", "POS", "A1", "A2", "BETA", "SE", "N"]
        assert len(df) == m and np.all(np.diff(df.POS) > 0) and (df.A1 != df.A2).all()
    assert [sl.start for sl in sim3.block_ranges] == [0, 120, 240] and sim3.block_ranges[-1].stop == m
    assert all(R.shape == (120, 120) for R in sim3.ld_blocks)


def test_genes_lie_inside_blocks_and_sizes(sim3):
    genes = sim3.genes
    read_back = read_genes_from_df(genes, sim3.params["n_variants"])
    assert read_back.attrs["format"] == "index"
    for row in genes.itertuples():
        sl = sim3.block_ranges[row.BLOCK]
        assert sl.start <= row.start_idx_chr <= row.end_idx_chr < sl.stop
        assert row.START == sim3.gwas["T1"].POS[row.start_idx_chr] and row.END == sim3.gwas["T1"].POS[row.end_idx_chr]
    # the last gene of a block may be shortened to fit, but never below the minimum
    assert genes.N_SNPS.between(5, 60).all()
    ends, starts = genes.end_idx_chr.to_numpy(), genes.start_idx_chr.to_numpy()
    assert np.all(starts[1:] > ends[:-1])  # genes do not overlap


def read_genes_from_df(genes, n_variants):
    from bayesmages.io import validate_genes

    return validate_genes(genes, n_variants=n_variants)


def test_heritability_per_trait(sim3):
    # independent recomputation from the written truth: sum over blocks of beta_b' R_b beta_b
    beta = sim3.beta
    h2 = sum(np.einsum("it,ij,jt->t", beta[sl], R, beta[sl]) for R, sl in zip(sim3.ld_blocks, sim3.block_ranges))
    np.testing.assert_allclose(h2, [0.02, 0.05, 0.1], rtol=1e-10)
    np.testing.assert_allclose(sim3.params["h2_achieved"], h2, rtol=1e-12)


def test_every_type_appears_and_truth_is_consistent(sim3):
    gt = sim3.gene_truth.set_index("GENE")
    types = set(gt.TYPE)
    expected = {"none"} | {
        ("specific:" if len(c) == 1 else "shared:") + "+".join(c)
        for k in (1, 2, 3)
        for c in itertools.combinations(sim3.traits, k)
    }
    assert types == expected
    vt = sim3.variant_truth
    for t in sim3.traits:
        nonzero_genes = set(vt.GENE[vt[f"BETA_{t}"] != 0])
        causal_genes = set(gt.index[gt[f"CAUSAL_{t}"]])
        assert nonzero_genes == causal_genes  # effects only in genes that are causal for that trait
        assert (gt.loc[~gt[f"CAUSAL_{t}"], f"H2_{t}"] == 0).all()
    assert not vt.CAUSAL[vt.GENE == ""].any()  # no intergenic causal variants
    n_causal = vt[vt.CAUSAL].groupby("GENE").size()
    assert (gt.loc[n_causal.index, "N_CAUSAL_VARIANTS"] == n_causal).all()


@pytest.mark.parametrize(("p_negative", "sign"), [(0.0, 1.0), (1.0, -1.0)])
def test_shared_effect_correlation(p_negative, sign):
    # Two traits, all causal genes shared, |rho| fixed at 0.8: pooled over causal variants the
    # sample correlation of (beta_T1, beta_T2) within a gene is sign * 0.8. Genes get different
    # per-trait scales only through one global factor per trait, which does not change a
    # correlation. With ~150 causal variants the sd is (1 - 0.64)/sqrt(150) ≈ 0.03; tolerance 0.12
    # (pooling over genes adds between-gene variance of the shared factor).
    sim = simulate_multitrait(
        2, 4, frac_specific=0.0, p_causal_genes=1.0, p_causal_in_gene=0.5, rho_range=(0.8, 0.8),
        p_negative=p_negative, seed=3, **SMALL,
    )
    gt = sim.gene_truth
    assert (gt.TYPE == "shared:T1+T2").all()
    np.testing.assert_allclose(gt.RHO, sign * 0.8)
    vt = sim.variant_truth[sim.variant_truth.CAUSAL]
    assert len(vt) > 100
    r = np.corrcoef(vt.BETA_T1, vt.BETA_T2)[0, 1]
    assert r == pytest.approx(sign * 0.8, abs=0.12)


def test_gwas_follow_rss_around_truth(sim3):
    # (beta_hat - R beta) * sqrt(n) ~ N(0, R): whitened by R^{-1/2} per block it is N(0, I), so the
    # mean square over the 360 variants x 3 traits is 1 with sd sqrt(2/1080) ≈ 0.043; tolerance 0.2.
    z2 = []
    for t, name in enumerate(sim3.traits):
        bh = sim3.gwas[name].BETA.to_numpy()
        n = sim3.gwas[name].N.iloc[0]
        for R, sl in zip(sim3.ld_blocks, sim3.block_ranges):
            lam, V = np.linalg.eigh(R)
            keep = lam > 1e-6
            e = V[:, keep].T @ ((bh[sl] - R @ sim3.beta[sl, t]) * np.sqrt(n))
            z2.append(e**2 / lam[keep])
    assert np.concatenate(z2).mean() == pytest.approx(1.0, abs=0.2)
    se = sim3.gwas["T1"].SE.to_numpy()
    np.testing.assert_allclose(se, np.sqrt((1 - sim3.gwas["T1"].BETA ** 2) / (sim3.gwas["T1"].N - 2)))


def test_reproducible_by_seed():
    a = simulate_multitrait(2, 2, seed=8, **SMALL)
    b = simulate_multitrait(2, 2, seed=8, **SMALL)
    c = simulate_multitrait(2, 2, seed=9, **SMALL)
    pd.testing.assert_frame_equal(a.gwas["T2"], b.gwas["T2"])
    pd.testing.assert_frame_equal(a.gene_truth, b.gene_truth)
    assert not np.array_equal(a.gwas["T2"].BETA, c.gwas["T2"].BETA)


def test_single_trait_and_every_trait_covered():
    sim = simulate_multitrait(1, 1, p_causal_genes=0.01, seed=2, **SMALL)
    assert set(sim.gene_truth.TYPE) <= {"none", "specific:T1"} and (sim.gene_truth.TYPE != "none").any()
    sim5 = simulate_multitrait(5, 1, p_causal_genes=0.01, seed=2, **SMALL)  # 1 causal gene, 5 traits
    assert all(sim5.gene_truth[f"CAUSAL_{t}"].any() for t in sim5.traits)


def test_user_ld_blocks(msprime_ld):
    R = read_ld(msprime_ld.path).R
    sim = simulate_multitrait(2, ld_blocks=[R, R[:200, :200]], seed=1)
    assert sim.params["n_variants"] == R.shape[0] + 200 and sim.params["ld_source"] == "user"
    np.testing.assert_array_equal(sim.ld_blocks[0], R)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_traits": 0}, "n_traits"),
        ({"h2": 1.2}, "h2"),
        ({"h2": [0.1, 0.2, 0.3]}, "h2"),
        ({"n_gwas": 0}, "n_gwas"),
        ({"p_causal_genes": 0.0}, "p_causal_genes"),
        ({"rho_range": (0.9, 0.2)}, "rho_range"),
        ({"rho_range": (0.1, 0.2, 0.3)}, "rho_range"),
        ({"rho_range": (0.1, 1.2)}, "rho_range"),
        ({"gene_size": (10, 5)}, "gene_size"),
        ({"gene_size": (500, 600)}, "too small"),
        ({"ld_blocks": [np.array([[1.0, 2.0], [2.0, 1.0]])]}, r"\[-1, 1\]"),
        ({"maf": [np.full(5, 0.2)]}, "maf"),
    ],
)
def test_bad_parameters(kwargs, match):
    args = {"n_traits": 2, "n_blocks": 1, "seed": 0, **SMALL} | kwargs
    if "ld_blocks" in kwargs:
        args.pop("variants_per_block")
        args.pop("n_ref_samples")
    with pytest.raises(InputError, match=match):
        simulate_multitrait(**args)


def test_cli_writes_readable_files(tmp_path):
    out = tmp_path / "sim"
    status = main(["simulate", "--traits", "2", "--blocks", "4", "--out", str(out), "--seed", "1",
                   "--variants-per-block", "100", "--ref-samples", "300", "--quiet"])
    assert status == 0
    names = {p.name for p in out.iterdir()}
    assert {"gwas_T1.tsv", "gwas_T2.tsv", "genes.tsv", "gene_truth.tsv", "variant_truth.tsv", "blocks.tsv",
            "params.json", "README.txt", "run.json", "ld"} <= names
    g1 = read_gwas(out / "gwas_T1.tsv")
    assert set(g1.columns) == {"CHR", "SNP", "POS", "A1", "A2", "BETA", "SE", "N"} and len(g1) == 400
    blocks = pd.read_csv(out / "blocks.tsv", sep="\t")
    assert len(blocks) == 4
    for row in blocks.itertuples():
        ld = read_ld(out / row.FILE, ids=g1.SNP.iloc[row.start_idx : row.end_idx + 1].to_numpy())
        assert ld.m == row.N_SNPS
    genes = read_genes(out / "genes.tsv", n_variants=len(g1))
    truth = pd.read_csv(out / "gene_truth.tsv", sep="\t")
    assert list(genes.GENE) == list(truth.GENE)
    run = json.loads((out / "run.json").read_text())
    assert run["arguments"]["seed"] == 1
    # same seed through the CLI, same files
    out2 = tmp_path / "sim2"
    main(["simulate", "--traits", "2", "--blocks", "4", "--out", str(out2), "--seed", "1",
          "--variants-per-block", "100", "--ref-samples", "300", "--quiet"])
    assert (out / "gwas_T2.tsv").read_bytes() == (out2 / "gwas_T2.tsv").read_bytes()


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["simulate", "--out", str(out), "--h2", "1.5", "--quiet"]) == 2
    assert "h2" in capsys.readouterr().err
    assert not out.exists()
    assert main(["simulate", "--out", str(out), "--ld", str(tmp_path / "missing.ld"), "--quiet"]) == 2
    assert not out.exists()


def test_write_read_round_trip(tmp_path, sim3):
    from bayesmages.simulate import MultiTraitSimulation

    sim3.write(tmp_path / "s")
    back = MultiTraitSimulation.read(tmp_path / "s")
    assert back.traits == sim3.traits and back.block_ranges == sim3.block_ranges
    for t in sim3.traits:
        # CSV keeps 10 significant digits
        pd.testing.assert_frame_equal(back.gwas[t], sim3.gwas[t], check_dtype=False, rtol=1e-9)
    for a, b in zip(back.ld_blocks, sim3.ld_blocks):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(back.genes, sim3.genes, check_dtype=False)
    pd.testing.assert_frame_equal(back.gene_truth, sim3.gene_truth, check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(back.variant_truth, sim3.variant_truth, check_dtype=False, rtol=1e-9)
    np.testing.assert_allclose(back.beta, sim3.beta, rtol=1e-9)
    with pytest.raises(InputError, match=r"params\.json"):
        MultiTraitSimulation.read(tmp_path)
