"""genes: mapping, enrichment test (calibration, power, epsilon rule), multi-trait summaries, figures, CLI."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesmages.cli import main as cli_main
from bayesmages.errors import InputError
from bayesmages.genes import GeneMap, enrichment, map_genes, multitrait, null_variance_from_fit
from bayesmages.genes.plots import plot_cluster_fractions, plot_gene_pvalues, plot_s_summary
from bayesmages.io import read_genes, read_ld


def index_table(ranges, chrom="1"):
    return pd.DataFrame({
        "GENE": [f"G{i}" for i in range(len(ranges))], "CHR": chrom,
        "N_SNPS": [b - a + 1 for a, b in ranges], "start_idx_chr": [a for a, _ in ranges],
        "end_idx_chr": [b for _, b in ranges], "chr_start_idx_gw": 0,
    })


def ar1(m, rho):
    idx = np.arange(m)
    return rho ** np.abs(idx[:, None] - idx[None, :])


@pytest.fixture
def ld_block(msprime_ld):
    """A realistic LD block made by the package (msprime; tests/conftest.py) with its gene table."""
    R = read_ld(msprime_ld.path).R
    return R, read_genes(msprime_ld.genes_path, n_variants=R.shape[0]), msprime_ld.genes_path


@pytest.fixture
def real_block(real_ld_path):
    """The real UK Biobank block (optional: ../shared is not part of a clone)."""
    genes_path = real_ld_path.parent / "chr22_block0_genes.csv"
    R = read_ld(real_ld_path).R
    return R, read_genes(genes_path, n_variants=R.shape[0]), genes_path


# --- mapping ----------------------------------------------------------------------------------------------


def test_index_mapping_gene_table_is_inclusive(ld_block):
    R, genes, _ = ld_block
    gm = map_genes(genes, n_variants=R.shape[0])
    assert len(gm) == len(genes)
    for ix, (_, row) in zip(gm.indices, genes.iterrows()):
        assert ix[0] == row.start_idx_chr and ix[-1] == row.end_idx_chr and ix.size == row.N_SNPS


def test_positions_mapping_and_unmapped():
    variants = pd.DataFrame({"CHR": ["1", "1", "2", "1", "2"], "POS": [100, 200, 150, 300, 400]})
    genes = pd.DataFrame({"GENE": ["A", "B", "C"], "CHR": [1, 2, 3], "START": [150, 100, 1], "END": [300, 400, 10]})
    gm = map_genes(genes, variants=variants)
    assert [ix.tolist() for ix in gm.indices] == [[1, 3], [2, 4]]
    assert gm.unmapped == ["3:C"] and gm.by == "positions"


def test_index_mapping_is_chromosome_local_with_variants():
    variants = pd.DataFrame({"CHR": ["1"] * 4 + ["2"] * 3})
    genes = pd.concat([index_table([(1, 2)], "1"), index_table([(0, 2)], "2").assign(GENE="H")])
    gm = map_genes(genes, variants=variants)
    assert [ix.tolist() for ix in gm.indices] == [[1, 2], [4, 5, 6]]


@pytest.mark.parametrize(
    ("ranges", "n", "variants"),
    [
        ([(0, 2), (3, 10)], 8, None),  # past the last variant
        ([(0, 3)], 5, pd.DataFrame({"CHR": ["1", "1", "2", "2", "2"]})),  # chromosome 1 has 2 variants
    ],
)
def test_bad_gene_ranges_are_input_errors(ranges, n, variants):
    with pytest.raises(InputError, match="G"):
        map_genes(index_table(ranges), n_variants=n if variants is None else None, variants=variants)


def test_gene_on_absent_chromosome_is_input_error():
    with pytest.raises(InputError, match="chromosome 3"):
        map_genes(index_table([(0, 1)], "3"), variants=pd.DataFrame({"CHR": ["1", "1"]}))


def test_enrichment_rejects_ranges_outside_ld():
    with pytest.raises(InputError):
        enrichment.test(np.zeros(5), np.eye(5), index_table([(0, 2), (3, 5)]), null_variance=1.0)


# --- enrichment ------------------------------------------------------------------------------------------


def test_columns_and_block_diagonal_eigenvalues():
    R1, R2 = ar1(4, 0.7), ar1(3, 0.4)
    genes = index_table([(0, 1), (2, 5)])  # the second gene spans both blocks
    res = enrichment.test(np.arange(7) * 0.01, [R1, R2], genes, null_variance=2.0)
    assert res.columns.tolist() == ["GENE", "CHR", "n_variants", "Q", "p_value", "q_value", "test", "p_method"]
    assert res.Q.tolist() == pytest.approx([1e-4, (4 + 9 + 16 + 25) * 1e-4])
    gm = map_genes(genes, n_variants=7)
    eig = enrichment.gene_eigenvalues(gm, [R1, R2], 2.0)[1]
    # independent construction of the block-diagonal R_g
    Rg = np.zeros((4, 4))
    Rg[:2, :2] = R1[2:, 2:]
    Rg[2:, 2:] = R2[:2, :2]
    np.testing.assert_allclose(np.sort(eig), np.sort(2.0 * np.linalg.eigvalsh(Rg)), atol=1e-12)


def test_calibration_exact_null_on_msprime_ld(ld_block):
    _check_exact_null_calibration(*ld_block[:2])


def test_calibration_exact_null_on_real_ld(real_block):
    _check_exact_null_calibration(*real_block[:2])


def _check_exact_null_calibration(R, genes):
    # beta_g ~ N(0, eps R_g) exactly (RSS null: beta_hat ~ N(0, R/n), eps = 1/n), 150 replicates of the
    # block laid as 150 independent blocks -> 150 x (about 20) gene p-values, which must be Uniform(0, 1).
    from bayesmages.simulate.rss import simulate_sumstats

    n, reps = 10_000, 150
    beta_hat, _ = simulate_sumstats(R, np.zeros(R.shape[0]), n, seed=11, n_replicates=reps)
    gm = map_genes(genes, n_variants=R.shape[0])
    m = R.shape[0]
    big = GeneMap(pd.concat([gm.genes] * reps, ignore_index=True),
                  [ix + r * m for r in range(reps) for ix in gm.indices])
    res = enrichment.test(beta_hat.ravel(), [R] * reps, big, null_variance=1.0 / n)
    p = res.p_value.to_numpy()
    # KS: genes of one replicate share LD, so the p-values are mildly dependent; the 99.9% point for N
    # independent values is 1.95 / sqrt(N) (0.033 for the real block's 3,600), plus 0.007 for that dependence.
    assert stats.kstest(p, "uniform").statistic < 1.95 / np.sqrt(p.size) + 0.007
    # type-I error at 5%: 4 binomial sd either side (sd 0.004 for 3,600 p-values)
    assert abs(np.mean(p < 0.05) - 0.05) < 4 * np.sqrt(0.05 * 0.95 / p.size)


def test_power_on_simulated_causal_genes():
    from sklearn.metrics import roc_auc_score

    from bayesmages.simulate.multitrait import simulate_multitrait

    n = 20_000
    sim = simulate_multitrait(2, 6, variants_per_block=250, n_gwas=n, h2=0.05, p_causal_genes=0.3, seed=2)
    res = enrichment.test(sim.gwas["T1"].BETA.to_numpy(), sim.ld_blocks, sim.genes, null_variance=1.0 / n)
    truth = sim.gene_truth.set_index("GENE").loc[res.GENE]
    causal = truth.CAUSAL_T1.to_numpy()
    assert causal.sum() >= 5
    # Marginal effects carry LD spill-over, so null genes near causal ones also score; judge ranking and power,
    # and FDR only on genes in blocks without any T1-causal gene (there the null holds exactly).
    assert roc_auc_score(causal, -np.log(res.p_value)) > 0.75
    assert np.mean(res.q_value[causal] <= 0.05) >= 0.6
    genes_block = sim.genes.set_index("GENE").loc[res.GENE, "BLOCK"].to_numpy()
    clean = ~np.isin(genes_block, np.unique(genes_block[causal]))
    assert (res.q_value[clean] <= 0.05).sum() <= 1


class _Fit:
    def __init__(self, w, v):
        self.weights_ = np.asarray(w, float)
        self.covariances_ = np.asarray(v, float)[:, None, None]


@pytest.mark.parametrize(
    ("w", "v", "expected"),
    [
        ([0.05, 0.25, 0.7], [4.0, 0.1, 0.001], 0.1),  # pi_0 > 0.01: 2nd cluster by variance
        ([0.005, 0.25, 0.745], [40.0, 0.1, 0.001], 0.001),  # pi_0 <= 0.01 (outliers): 3rd
        ([0.005, 0.995], [40.0, 0.1], 0.1),  # K* = 2 guard: the last cluster
    ],
)
def test_null_variance_rule(w, v, expected):
    assert null_variance_from_fit(_Fit(w, v))[0] == expected


def test_null_variance_single_cluster_warns():
    with pytest.warns(UserWarning, match="single cluster"):
        assert null_variance_from_fit(_Fit([1.0], [0.3]))[0] == 0.3


def test_null_variance_needs_one_trait_fit():
    fit = _Fit([0.5, 0.5], [1.0, 0.1])
    fit.covariances_ = np.tile(np.eye(2), (2, 1, 1))
    with pytest.raises(InputError, match="one-trait"):
        null_variance_from_fit(fit)


def test_cluster_fit_is_used_and_given_variance_wins():
    genes = index_table([(0, 2)])
    beta = np.array([0.1, 0.2, 0.3])
    res = enrichment.test(beta, np.eye(3), genes, cluster_fit=_Fit([0.5, 0.5], [1.0, 0.02]))
    assert res.attrs["null_variance"] == 0.02
    expected = stats.chi2.sf(0.14 / 0.02, 3)  # identity LD: Q / eps ~ chi2_3
    assert res.p_value[0] == pytest.approx(expected, rel=1e-6)
    res = enrichment.test(beta, np.eye(3), genes, null_variance=0.5, cluster_fit=_Fit([0.5, 0.5], [1.0, 0.02]))
    assert res.attrs["null_variance"] == 0.5


@pytest.mark.slow
def test_end_to_end_with_dp_mixture_epsilon(real_block):
    # On the real block only: on the package's msprime block (tests/conftest.py) the fitted epsilon is
    # 0.29 / n, outside this factor-3 band (reported in issue #18; the epsilon rule is being recalibrated).
    from bayesmages.simulate.rss import simulate_sumstats

    R, genes, _ = real_block
    n = 10_000
    beta_hat, _ = simulate_sumstats(R, np.zeros(R.shape[0]), n, seed=5)
    res = enrichment.test(beta_hat, R, genes, seed=0)
    # Under the null every effect is noise of variance ~1/n; epsilon must be within a factor 3 of it.
    assert 1 / (3 * n) < res.attrs["null_variance"] < 3 / n


# --- multi-trait summaries ----------------------------------------------------------------------------------


def test_multitrait_against_brute_force():
    rng = np.random.default_rng(0)
    m, p, K = 60, 3, 4
    B = rng.normal(size=(m, p))
    labels = rng.integers(-1, K, size=m)
    cats = ["specific:T1", "shared:T1+T2", "specific:T1", "non-prioritised"]
    genes = index_table([(0, 9), (10, 29), (25, 59)])
    out = multitrait.summarize(pd.DataFrame(B, columns=["T1", "T2", "T3"]), genes, labels, cats)
    for g, (a, b) in enumerate([(0, 9), (10, 29), (25, 59)]):
        rows = np.arange(a, b + 1)
        size = rows.size
        for k in range(K):
            sel = rows[labels[rows] == k]
            assert out.fractions.loc[g, f"cluster_{k}"] == pytest.approx(sel.size / size)
            for i in range(p):
                for j in range(i, p):
                    r = out.products[(out.products.GENE == f"G{g}") & (out.products.cluster == k)
                                     & (out.products.trait_i == f"T{i + 1}") & (out.products.trait_j == f"T{j + 1}")]
                    assert r.signed.item() == pytest.approx(np.sum(B[sel, i] * B[sel, j]) / size)
                    assert r.absolute.item() == pytest.approx(np.sum(np.abs(B[sel, i] * B[sel, j])) / size)
        clustered = rows[labels[rows] >= 0]
        np.testing.assert_allclose(out.S_array[g], B[clustered].T @ B[clustered] / size, atol=1e-12)
        for typ in set(cats):
            sel = rows[np.isin(labels[rows], [k for k, c in enumerate(cats) if c == typ])]
            r = out.type_scores[(out.type_scores.GENE == f"G{g}") & (out.type_scores.type == typ)]
            assert r.abs_T2.item() == pytest.approx(np.abs(B[sel, 1]).sum())
            assert r.abs_total.item() == pytest.approx(np.abs(B[sel]).sum())
    assert np.allclose(out.fractions.filter(like="cluster_").sum(axis=1) + out.fractions.unclustered, 1.0)


def test_multitrait_bad_labels():
    with pytest.raises(InputError, match="labels"):
        multitrait.summarize(np.zeros((3, 2)), index_table([(0, 2)]), [0, 5, 1], ["a", "b"])


# --- figures -----------------------------------------------------------------------------------------------


def _png_size(fig) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return len(buf.getvalue())


def test_figures_render():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=40) ** 3
    p[:3] = [1e-12, 1e-9, 1e-7]
    res = pd.DataFrame({"GENE": [f"G{i}" for i in range(40)], "p_value": p})
    from bayesmages.stats import bh

    res["q_value"] = bh(p)
    B = rng.normal(size=(60, 2))
    out = multitrait.summarize(B, index_table([(0, 19), (20, 39), (40, 59)]), rng.integers(-1, 3, 60),
                               ["specific:trait1", "shared:trait1+trait2", "non-prioritised"])
    for fig in (plot_gene_pvalues(res), plot_cluster_fractions(out.fractions),
                plot_s_summary(out.S_array, out.fractions.GENE.tolist(), out.traits)):
        assert _png_size(fig) > 8_000  # a blank 80-dpi canvas of these sizes is ~2-4 kB


# --- CLI ---------------------------------------------------------------------------------------------------


def test_cli_enrich_and_genes(tmp_path: Path):
    rng = np.random.default_rng(3)
    m = 40
    R = ar1(m, 0.5)
    np.save(tmp_path / "block.npy", R)
    index_table([(0, 9), (10, 24), (25, 39)]).to_csv(tmp_path / "genes.csv", index=False)
    snps = [f"rs{i}" for i in range(m)]
    beta = rng.normal(scale=0.01, size=m)
    beta[12:15] += 0.2
    pd.DataFrame({"SNP": snps, "beta_shrunk": beta}).to_csv(tmp_path / "eff.csv", index=False)
    rc = cli_main(["enrich", "--effects", str(tmp_path / "eff.csv"), "--ld", str(tmp_path / "block.npy"),
                   "--genes", str(tmp_path / "genes.csv"), "--test", "epsilon", "--null-variance", "1e-4",
                   "--out", str(tmp_path / "e"), "--quiet"])
    assert rc == 0
    res = pd.read_csv(tmp_path / "e" / "gene_enrichment.csv")
    assert res.p_value.idxmin() == 1 and (tmp_path / "e" / "run.json").is_file()
    assert (tmp_path / "e" / "figures" / "gene_pvalues.png").stat().st_size > 5_000
    wide = pd.DataFrame({"SNP": snps, "T1": beta, "T2": -beta})
    wide.to_csv(tmp_path / "wide.csv", index=False)
    pd.DataFrame({"SNP": snps[::2], "cluster": [i % 2 for i in range(m // 2)],
                  "category": ["non-prioritised", "shared:T1+T2"] * (m // 4)}).to_csv(tmp_path / "cl.csv", index=False)
    rc = cli_main(["genes", "--effects", str(tmp_path / "wide.csv"), "--clusters", str(tmp_path / "cl.csv"),
                   "--genes", str(tmp_path / "genes.csv"), "--out", str(tmp_path / "g"), "--quiet"])
    assert rc == 0
    fr = pd.read_csv(tmp_path / "g" / "gene_cluster_fractions.csv")
    assert fr.unclustered.tolist() == pytest.approx([5 / 10, 7 / 15, 8 / 15])  # odd-indexed variants: unclustered
    for name in ("gene_effect_products.csv", "gene_S.csv", "gene_type_scores.csv", "run.json"):
        assert (tmp_path / "g" / name).is_file()


def test_cli_bad_gene_range_exits_2(tmp_path: Path, capsys):
    np.save(tmp_path / "block.npy", np.eye(5))
    index_table([(0, 2), (3, 9)]).to_csv(tmp_path / "genes.csv", index=False)
    pd.DataFrame({"beta_shrunk": np.zeros(5)}).to_csv(tmp_path / "eff.csv", index=False)
    with warnings.catch_warnings():
        rc = cli_main(["enrich", "--effects", str(tmp_path / "eff.csv"), "--ld", str(tmp_path / "block.npy"),
                       "--genes", str(tmp_path / "genes.csv"), "--test", "epsilon", "--null-variance", "1",
                       "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # no partial output


def test_worker_processes_give_identical_results():
    rng = np.random.default_rng(4)
    blocks = [ar1(120, 0.8), ar1(80, 0.5)]
    genes = index_table([(a, a + 14) for a in range(0, 185, 15)])
    beta = rng.normal(scale=0.02, size=200)
    serial = enrichment.test(beta, blocks, genes, null_variance=1e-4)
    # two processes that read the LD from a file written for them (the pool of other tests is reused)
    parallel = enrichment.test(beta, blocks, genes, null_variance=1e-4, workers=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_ld_by_reference_gives_the_results_of_the_arrays(tmp_path):
    from bayesmages.io.ldrefs import spill_blocks

    rng = np.random.default_rng(6)
    blocks = [ar1(60, 0.7), ar1(40, 0.4)]
    genes = index_table([(a, a + 9) for a in range(0, 95, 12)])
    beta_hat = rng.normal(scale=0.02, size=100)
    se = np.full(100, 0.01)
    shrunk = np.where(np.abs(beta_hat / se) > 1.5, beta_hat, 0.0)
    source = spill_blocks(blocks, tmp_path)
    arrays = enrichment.test(shrunk, blocks, genes, beta_hat=beta_hat, se=se)
    by_reference = enrichment.test(shrunk, source, genes, beta_hat=beta_hat, se=se)
    pd.testing.assert_frame_equal(arrays, by_reference)
    assert (arrays["n_conditioned"] > 0).any()  # the conditional statistic itself is exercised


def test_saddlepoint_fallback_is_warned_and_marked_in_the_table(monkeypatch):
    import bayesmages.stats.quadform as qf
    from bayesmages.errors import AccuracyWarning

    R = ar1(30, 0.5)
    genes = index_table([(0, 9), (10, 19), (20, 29)])
    beta = np.random.default_rng(0).normal(size=30) * 0.1
    exact = enrichment.test(beta, R, genes, null_variance=0.01)
    assert exact["p_method"].tolist() == ["exact"] * 3
    real = qf.contour_tail

    def contour(q, lam, **kw):  # the exact integral "fails" for the second gene only
        log_p, ok = real(q, lam, **kw)
        return log_p, ok & (q != exact["Q"][1])

    monkeypatch.setattr(qf, "contour_tail", contour)
    # and Imhof's integral, the engine's next resort at p > 1e-4, misses its error bound
    monkeypatch.setattr(qf, "_imhof_one", lambda q, lam, **kw: (0.5, 1.0))
    with pytest.warns(AccuracyWarning, match=r"1 gene\(s\) \(G1\)"):
        res = enrichment.test(beta, R, genes, null_variance=0.01)
    assert res["p_method"].tolist() == ["exact", "saddlepoint", "exact"]
    assert res["p_value"][1] != exact["p_value"][1]
