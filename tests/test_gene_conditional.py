"""The LD-conditional gene test (default of genes.enrichment.test): exactness, calibration, power, inputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmages as bm
from bayesmages.cli import main as cli_main
from bayesmages.errors import InputError
from bayesmages.genes import GeneMap, enrichment
from bayesmages.genes.conditional import gene_statistics
from bayesmages.genes.units import form_pvalues


def ar1(m: int, rho: float) -> np.ndarray:
    idx = np.arange(m)
    return rho ** np.abs(idx[:, None] - idx[None, :])


def tiled(sizes: list[int], gap: int = 0) -> GeneMap:
    indices, start = [], 0
    for size in sizes:
        indices.append(np.arange(start, start + size))
        start += size + gap
    genes = pd.DataFrame({"GENE": [f"G{i}" for i in range(len(sizes))], "CHR": "1",
                          "n_variants": [ix.size for ix in indices]})
    return GeneMap(genes, indices)


def null_z(R: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    w, V = np.linalg.eigh(R)
    return (rng.normal(size=(n, R.shape[0])) * np.sqrt(np.clip(w, 0, None))) @ V.T


def pvals(st) -> np.ndarray:
    # the conditional test's p-values (Cauchy combination of the Q_g and Wald parts)
    return enrichment.conditional_pvalues(st)[0]


def marginal_pvals(st) -> np.ndarray:
    return form_pvalues(st.Q, st.weights)[0]


def binomial_upper(alpha: float, n: int) -> float:
    # two binomial sd above alpha: the acceptance bound for P(p < alpha)
    return alpha + 2 * np.sqrt(alpha * (1 - alpha) / n)


@pytest.fixture(scope="module")
def msprime_blocks():
    # Blocks the shipped shrinker never saw (its training used other seed streams); seeded, made here.
    return bm.simulate.simulate_ld_blocks(3, 250, n_samples=1500, seed=2024)


def neighbour_of_strong_signal(seed: int, n: int):
    # A null gene (variants 21-30) next to a strong causal variant (20) that the shrinker selects: n replicates.
    R = ar1(40, 0.9)
    gmap = GeneMap(pd.DataFrame({"GENE": ["null_neighbour"], "CHR": "1", "n_variants": [10]}), [np.arange(21, 31)])
    zeta = np.zeros(40)
    zeta[20] = 25.0
    lam = np.zeros(40)
    lam[20] = 25.0  # z ~ 25 at the causal variant; raw z of the neighbour gene is ~ 0.9^k * 25
    z = lam @ R + null_z(R, n, np.random.default_rng(seed))
    return R, gmap, z, [gene_statistics(zi, zeta, [R], gmap) for zi in z]


def test_exact_null_given_the_conditioning_set():
    # With the conditioning set fixed (a strong outside signal at variant 20), the neighbour gene's residual is
    # N(0, C) exactly whatever that signal's size: P(p < alpha) must match alpha within binomial error.
    n = 4000
    R, gmap, z, sts = neighbour_of_strong_signal(0, n)
    p = np.array([pvals(st)[0] for st in sts])
    p_q = np.array([marginal_pvals(st)[0] for st in sts])  # the Q_g part alone
    p_w = np.array([stats.chi2.sf(st.wald[0], st.wald_df[0]) for st in sts])  # the Wald part alone
    assert all(st.wald_df[0] >= 1 for st in sts)
    for part in (p, p_q, p_w):
        for alpha in (0.05, 0.01):
            sd = np.sqrt(alpha * (1 - alpha) / n)
            # 3.5 sd: two levels for each of three p-values on one sample (each exact or, for the combination,
            # exact up to the Cauchy approximation, which is tiny at these levels for two p-values)
            assert abs(np.mean(part < alpha) - alpha) < 3.5 * sd, (alpha, np.mean(part < alpha))
        assert stats.kstest(part, "uniform").pvalue > 1e-3
    # the marginal test on the same data calls the neighbour almost always (LD spill-over)
    pm = marginal_pvals(gene_statistics(z[0], None, [R], gmap))
    assert pm[0] < 1e-10


def test_single_variant_part_is_valid_given_the_conditioning_set():
    # The optional single-variant part (Cauchy combination of the exact chi2_1 p-values of r_i / sqrt(C_ii)) and the
    # three-part combination, on the set-up of the exactness test above: the neighbour gene of a strong conditioned
    # signal. Each one-variant p-value is exact given A; their Cauchy combination is exact in the tail for any
    # dependence (Liu & Xie 2020) and approximate in the bulk, so only the tail levels are checked.
    n = 4000
    _, _, _, sts = neighbour_of_strong_signal(10, n)
    assert all(st.single_n[0] == 10 for st in sts)  # every variant keeps conditional variance >= 0.01 here
    p_single = np.array([np.arctan2(1.0, st.single[0] / st.single_n[0]) / np.pi for st in sts])
    p_three = np.array([enrichment.conditional_pvalues(st, single=True)[0][0] for st in sts])
    for part in (p_single, p_three):
        for alpha in (0.05, 0.01):
            sd = np.sqrt(alpha * (1 - alpha) / n)
            # 3.5 sd: two levels for each of two p-values on one sample; the Cauchy approximation is accurate at
            # these levels (its error is o(alpha) as alpha -> 0) but not exact, so only an upper bound is asserted
            # with the binomial slack, and a lower one far below (a test that never rejects would be useless)
            assert np.mean(part < alpha) < alpha + 3.5 * sd, (alpha, np.mean(part < alpha))
            assert np.mean(part < alpha) > alpha / 3, (alpha, np.mean(part < alpha))
    # the default combination does not change when the single-variant part is computed
    st = sts[0]
    assert enrichment.conditional_pvalues(st)[0][0] == bm.stats.multitest.cauchy_rows(np.array([[
        form_pvalues(st.Q, st.weights)[0][0], stats.chi2.sf(st.wald[0], st.wald_df[0])]]))[0]


def test_single_variant_part_finds_one_causal_variant_in_a_large_gene():
    # A 60-variant gene of nearly independent variants with one causal variant (z ~ 4.5): the sum-type parts
    # spread it over 60 degrees of freedom, the single-variant part does not. Power at 0.05 over 300 replicates
    # (binomial sd of each power <= 0.03): the three-part combination must beat the default by a clear margin.
    m = 60
    R = ar1(m, 0.2)
    gmap = GeneMap(pd.DataFrame({"GENE": ["g"], "CHR": "1", "n_variants": [m]}), [np.arange(m)])
    lam = np.zeros(m)
    lam[30] = 4.5
    rng = np.random.default_rng(11)
    z = R @ lam + null_z(R, 300, rng)
    sts = [gene_statistics(zi, np.zeros(m), [R], gmap) for zi in z]
    p2 = np.array([enrichment.conditional_pvalues(st)[0][0] for st in sts])
    p3 = np.array([enrichment.conditional_pvalues(st, single=True)[0][0] for st in sts])
    assert np.mean(p3 < 0.05) > np.mean(p2 < 0.05) + 0.1, (np.mean(p3 < 0.05), np.mean(p2 < 0.05))


def test_conditional_single_by_name_in_test_and_test_traits():
    # method="conditional+single" is conditional_pvalues(..., single=True) of the same statistics, named in the
    # gene table's test column; the default's p-values are unchanged, and local workers give the same table
    R = ar1(60, 0.7)
    gmap = tiled([20, 20, 20])
    rng = np.random.default_rng(21)
    lam = np.zeros(60)
    lam[[5, 45]] = [6.0, -5.0]
    se = np.full(60, 0.002)
    z = [lam @ R + null_z(R, 1, rng)[0] for _ in range(2)]
    zeta = [np.where(np.abs(zi) > 4, zi, 0.0) for zi in z]
    res = enrichment.test(zeta[0] * se, R, gmap, beta_hat=z[0] * se, se=se, method="conditional+single")
    st = gene_statistics(z[0], zeta[0], [R], gmap)
    np.testing.assert_array_equal(res.p_value.to_numpy(), enrichment.conditional_pvalues(st, single=True)[0])
    assert set(res["test"]) == {"conditional+single"} and res.attrs["test"] == "conditional+single"
    default = enrichment.test(zeta[0] * se, R, gmap, beta_hat=z[0] * se, se=se)
    np.testing.assert_array_equal(default.p_value.to_numpy(), enrichment.conditional_pvalues(st)[0])
    assert not np.array_equal(default.p_value.to_numpy(), res.p_value.to_numpy())  # the part changes something
    both = enrichment.test_traits({"T1": zeta[0] * se, "T2": zeta[1] * se}, R, gmap, beta_hat={
        "T1": z[0] * se, "T2": z[1] * se}, se={"T1": se, "T2": se}, method="conditional+single", workers=2)
    pd.testing.assert_frame_equal(both["T1"].drop(columns=[]), res, check_like=False)
    assert set(both["T2"]["test"]) == {"conditional+single"}
    with pytest.raises(InputError, match="conditional, conditional\\+single, marginal, epsilon; got 'single'"):
        enrichment.test(zeta[0] * se, R, gmap, beta_hat=z[0] * se, se=se, method="single")


def test_cli_test_choices_are_the_library_tests():
    # the CLI spells the names out (its parser does not import numpy); they must stay the library's
    from bayesmages.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.choices and "enrich" in a.choices).choices
    for cmd, flag in (("enrich", "--test"), ("run", "--gene-test")):
        action = next(a for a in sub[cmd]._actions if flag in a.option_strings)
        assert tuple(action.choices) == enrichment.TESTS and action.default == "conditional"


def test_complete_null_calibration_on_msprime_blocks(msprime_blocks):
    # beta_hat ~ N(0, R/n) with the shipped shrinker: valid (uniform or conservative) p-values.
    rng = np.random.default_rng(1)
    n_rep, se = 40, 1 / np.sqrt(300_000)
    model = bm.shrink.load_default()
    p_all = []
    for R in msprime_blocks:
        m = R.shape[0]
        gmap = tiled([int(s) for s in rng.integers(8, 30, size=40) if True][: m // 25], gap=5)
        gmap = GeneMap(gmap.genes, [ix for ix in gmap.indices if ix[-1] < m])
        gmap = GeneMap(gmap.genes.iloc[: len(gmap.indices)].reset_index(drop=True), gmap.indices)
        z = null_z(R, n_rep, rng)
        zeta, _ = model.predict(z, np.ones_like(z), R)
        for zi, zetai in zip(z, zeta):
            res = enrichment.test(zetai * se, R, gmap, beta_hat=zi * se, se=np.full(m, se))
            p_all.append(res.p_value.to_numpy())
    p = np.concatenate(p_all)
    assert p.size >= 1000
    for alpha in (0.05, 0.01):
        assert np.mean(p < alpha) <= binomial_upper(alpha, p.size), (alpha, np.mean(p < alpha))
    # one-sided KS: the empirical CDF must not lie above the uniform one (conservative is allowed).
    # Genes of one replicate share a block, so the KS p-value is only a rough guide: threshold 1e-3.
    assert stats.kstest(p, "uniform", alternative="greater").pvalue > 1e-3


def test_planted_gene_is_called_and_its_neighbour_is_not():
    R = ar1(30, 0.9)
    gmap = tiled([10, 10, 10])
    rng = np.random.default_rng(3)
    se = np.full(30, 0.002)
    lam = np.zeros(30)
    lam[10] = 9.0  # z-scale effect on the first variant of the middle gene: r = 0.9 with the left neighbour's last
    z = lam @ R + null_z(R, 1, rng)[0]
    zeta = np.where(np.arange(30) == 10, z[10], 0.0)  # a shrinker that found the causal variant
    cond = enrichment.test(zeta * se, R, gmap, beta_hat=z * se, se=se)
    marg = enrichment.test(zeta * se, R, gmap, beta_hat=z * se, se=se, method="marginal")
    # the planted gene may condition on variant 20 (|z| >= 3, r = 0.9 with its last variant, which does not beat it
    # clearly: the proxy rule), never on the causal variant's proxy 9, which z_10 beats by 1.6 sd here
    assert cond.p_value[1] < 1e-6 and cond.n_conditioned[1] <= 1 and (cond.n_conditioned[[0, 2]] >= 1).all()
    assert cond.p_value[0] > 1e-3 and cond.p_value[2] > 1e-3
    assert marg.p_value[0] < 1e-6  # spill-over: the marginal test calls the left neighbour too
    assert set(cond["test"]) == {"conditional"} and set(marg["test"]) == {"marginal"}


def test_real_shrinker_end_to_end_and_thread_identity(msprime_blocks):
    R = msprime_blocks[0]
    m = R.shape[0]
    gmap = tiled([25] * (m // 25))
    rng = np.random.default_rng(5)
    # gene 1 (rows 25-49) is causal, at the variant with the weakest LD outside the gene, so that the shrinker
    # cannot put the signal on an equally good proxy in another gene
    outside = np.r_[0:25, 50:m]
    j = 25 + int(np.argmin(np.abs(R[25:50][:, outside]).max(axis=1)))
    lam = np.zeros(m)
    lam[j] = 9.0
    z = lam @ R + null_z(R, 1, rng)[0]
    se = np.full(m, 0.002)
    out = bm.shrink.shrink(z * se, se, R)
    serial = enrichment.test(out.beta_shrunk, R, gmap, beta_hat=out.beta_hat, se=out.se)
    threaded = enrichment.test(out.beta_shrunk, R, gmap, beta_hat=out.beta_hat, se=out.se, workers=2)
    np.testing.assert_array_equal(serial.p_value.to_numpy(), threaded.p_value.to_numpy())
    assert serial.p_value.idxmin() == 1 and serial.q_value[1] < 0.05


def test_cauchy_rows_matches_the_scalar_combination():
    rng = np.random.default_rng(4)
    P = rng.uniform(1e-12, 1, size=(50, 3)) ** 3
    expected = [bm.stats.multitest.cauchy(row) for row in P]
    np.testing.assert_allclose(bm.stats.multitest.cauchy_rows(P), expected, rtol=1e-12)
    with pytest.raises(InputError, match="cauchy_rows"):
        bm.stats.multitest.cauchy_rows(np.array([0.5, 1.5]))


def test_wald_part_recovers_signal_left_after_conditioning():
    # The causal gene variant 1 has an outside proxy (variant 0, r = 0.9) that the shrinker wrongly selected.
    # After conditioning, the causal variant's own part lies in a direction of conditional variance 0.19, which
    # Q_g (variance-weighted) underweights next to the gene's noisy main direction; the Wald form does not.
    # Averaged over replicates, the combined test ranks the causal gene higher than Q_g alone.
    m = 12
    R = np.eye(m)
    R[0, 1] = R[1, 0] = 0.9
    R[2:11, 2:11] = ar1(9, 0.95)
    gmap = GeneMap(pd.DataFrame({"GENE": ["g"], "CHR": "1", "n_variants": [10]}), [np.arange(1, 11)])
    zeta = np.zeros(m)
    zeta[0] = 3.0
    lam = np.zeros(m)
    lam[1] = 8.0
    rng = np.random.default_rng(8)
    z = lam @ R + null_z(R, 400, rng)
    sts = [gene_statistics(zi, zeta, [R], gmap) for zi in z]
    p_comb = np.array([pvals(st)[0] for st in sts])
    p_q = np.array([marginal_pvals(st)[0] for st in sts])
    # power at 0.05 of the combined test against Q_g alone (binomial sd of each ~0.025 on 400 replicates)
    assert np.mean(p_comb < 0.05) > np.mean(p_q < 0.05) + 0.1, (np.mean(p_comb < 0.05), np.mean(p_q < 0.05))


def test_gene_across_blocks_uses_both_parts():
    R1, R2 = ar1(10, 0.5), ar1(10, 0.5)
    gmap = GeneMap(pd.DataFrame({"GENE": ["span"], "CHR": "1", "n_variants": [8]}), [np.arange(6, 14)])
    z = np.zeros(20)
    st = gene_statistics(z, np.zeros(20), [R1, R2], gmap)
    assert st.weights[0].size == 8  # 4 directions per block part
    np.testing.assert_allclose(np.sort(st.weights[0]), np.sort(np.concatenate(
        [np.linalg.eigvalsh(R1[6:, 6:]), np.linalg.eigvalsh(R2[:4, :4])])), rtol=1e-10)


def test_near_copy_of_a_conditioned_signal_is_not_testable():
    # Gene variant 1 is a near-copy (r = 0.99999) of the conditioned outside variant 0: its conditional variance
    # (2e-5) is below min_variance, so LD error there cannot make a discovery.
    R = np.array([[1.0, 0.99999], [0.99999, 1.0]])
    gmap = GeneMap(pd.DataFrame({"GENE": ["copy"], "CHR": "1", "n_variants": [1]}), [np.array([1])])
    z = np.array([20.0, 19.9])  # LD mismatch: the copy's z is off by 0.1
    res = enrichment.test(np.array([20.0, 0.0]), R, gmap, beta_hat=z, se=np.ones(2))
    assert res.p_value[0] == 1.0 and res.n_conditioned[0] == 1


def test_bad_inputs():
    R, gmap = ar1(6, 0.3), tiled([3, 3])
    b = np.zeros(6)
    with pytest.raises(InputError, match="needs beta_hat and se"):
        enrichment.test(b, R, gmap)
    with pytest.raises(InputError, match="se must be positive"):
        enrichment.test(b, R, gmap, beta_hat=b, se=np.r_[np.ones(5), 0.0])
    with pytest.raises(InputError, match="one value per variant"):
        enrichment.test(b, R, gmap, beta_hat=b[:5], se=np.ones(5))
    with pytest.raises(InputError, match="belong to method='epsilon'"):
        enrichment.test(b, R, gmap, beta_hat=b, se=np.ones(6), method="conditional", null_variance=1.0)
    with pytest.raises(InputError, match="method"):
        enrichment.test(b, R, gmap, beta_hat=b, se=np.ones(6), method="magma")
    with pytest.raises(InputError, match="threshold"):
        enrichment.test(b, R, gmap, beta_hat=b, se=np.ones(6), threshold=-1.0)


def _cli_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(7)
    m = 60
    R = ar1(m, 0.8)
    np.save(tmp_path / "block.npy", R)
    pd.DataFrame({"GENE": ["A", "B", "C"], "CHR": 1, "N_SNPS": 20, "start_idx_chr": [0, 20, 40],
                  "end_idx_chr": [19, 39, 59], "chr_start_idx_gw": 0}).to_csv(tmp_path / "genes.csv", index=False)
    lam = np.zeros(m)
    lam[20] = 10.0  # first variant of gene B: r = 0.8 with gene A's last variant
    z = lam @ R + null_z(R, 1, rng)[0]
    se = np.full(m, 0.002)
    pd.DataFrame({"SNP": [f"rs{i}" for i in range(m)], "BETA": z * se, "SE": se}).to_csv(
        tmp_path / "gwas.csv", index=False)
    variants = pd.DataFrame({"SNP": [f"rs{i}" for i in range(m)], "CHR": 1, "POS": np.arange(m) + 1})
    shrunk = bm.shrink.shrink(z * se, se, R, variants=variants)
    shrunk.to_csv(tmp_path / "shrunk.csv", index=False)
    return tmp_path / "shrunk.csv", tmp_path / "gwas.csv", tmp_path / "block.npy"


def test_cli_enrich_conditional_and_marginal(tmp_path: Path, capsys):
    shrunk, gwas, block = _cli_files(tmp_path)
    common = ["--ld", str(block), "--genes", str(tmp_path / "genes.csv"), "--quiet"]
    assert cli_main(["enrich", "--effects", str(shrunk), "--out", str(tmp_path / "c"), *common]) == 0
    cond = pd.read_csv(tmp_path / "c" / "gene_enrichment.csv")
    assert set(cond["test"]) == {"conditional"} and cond.p_value.idxmin() == 1
    assert cli_main(["enrich", "--effects", str(gwas), "--test", "marginal", "--out", str(tmp_path / "m"),
                     *common]) == 0
    marg = pd.read_csv(tmp_path / "m" / "gene_enrichment.csv")
    assert set(marg["test"]) == {"marginal"} and marg.p_value[0] < 1e-3  # A tags B's causal variant
    assert cond.p_value[0] > 1e-3
    # the optional single-variant part by name: the table's test column and run.json say which test it is
    assert cli_main(["enrich", "--effects", str(shrunk), "--test", "conditional+single", "--out",
                     str(tmp_path / "s"), *common]) == 0
    single = pd.read_csv(tmp_path / "s" / "gene_enrichment.csv")
    assert set(single["test"]) == {"conditional+single"} and single.p_value.idxmin() == 1
    assert json.loads((tmp_path / "s" / "run.json").read_text())["test"] == "conditional+single"
    assert json.loads((tmp_path / "c" / "run.json").read_text())["test"] == "conditional"
    capsys.readouterr()
    for cmd in (["enrich", "--effects", str(shrunk), "--test", "single", "--out", str(tmp_path / "y"), *common],
                ["run", "--gwas", str(gwas), "--ld", str(block), "--genes", str(tmp_path / "genes.csv"),
                 "--gene-test", "conditional-single", "--out", str(tmp_path / "y")]):
        with pytest.raises(SystemExit) as bad:
            cli_main(cmd)
        err = capsys.readouterr().err.strip().splitlines()
        assert bad.value.code == 2 and len(err) == 1 and "conditional+single" in err[0], err
        assert not (tmp_path / "y").exists()
    # a table with shrunk effects only cannot be tested conditionally: one line, exit 2, nothing written
    pd.read_csv(shrunk)[["SNP", "beta_shrunk"]].to_csv(tmp_path / "only.csv", index=False)
    capsys.readouterr()
    rc = cli_main(["enrich", "--effects", str(tmp_path / "only.csv"), "--out", str(tmp_path / "x"), *common])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "beta_hat and se" in err[0]
    assert not (tmp_path / "x").exists()


def test_signal_on_a_near_perfect_proxy_is_not_credited_to_the_gene():
    # Variant 1 (in the gene) and variant 0 (outside) have r = 0.97. When their |z| are close the data cannot say on
    # which side of the gene boundary the signal lies, so the gene's selected variant brings its outside proxy into
    # the conditioning set and the gene is not called; with proxy_r = 1 (rule off) it is. When the gene's variant
    # beats the proxy by more than proxy_margin sd of z_1 - z_0 (sd = sqrt(2 (1 - 0.97)) = 0.245), the gene keeps it.
    R = np.array([[1.0, 0.97, 0.1], [0.97, 1.0, 0.1], [0.1, 0.1, 1.0]])
    gmap = GeneMap(pd.DataFrame({"GENE": ["g"], "CHR": "1", "n_variants": [2]}), [np.array([1, 2])])
    zeta = np.array([0.0, 12.0, 0.0])  # the shrinker credited the inside variant
    tie = np.array([11.9, 12.0, 1.2])  # 0.41 sd apart: within the margin 0.5
    on = gene_statistics(tie, zeta, [R], gmap)
    off = gene_statistics(tie, zeta, [R], gmap, proxy_r=1.0)
    assert on.n_conditioned.tolist() == [1] and off.n_conditioned.tolist() == [0]
    assert pvals(off)[0] < 1e-20 and pvals(on)[0] > 1e-3
    clear = np.array([11.6, 12.0, 1.2])  # 1.63 sd apart: the data place the signal in the gene
    kept = gene_statistics(clear, zeta, [R], gmap)
    assert kept.n_conditioned.tolist() == [0] and pvals(kept)[0] < 1e-20
    # an infinite margin never credits the gene with a strong proxy's signal (the rule before 2026-11-30)
    never = gene_statistics(clear, zeta, [R], gmap, proxy_margin=np.inf)
    assert never.n_conditioned.tolist() == [1] and pvals(never)[0] > 1e-3
    # the rule also asks about a strong outside proxy of a variant the shrinker did not select (|z| >= lead_z)
    unselected = gene_statistics(tie, np.zeros(3), [R], gmap)
    assert unselected.n_conditioned.tolist() == [1]


def test_proxy_rule_credits_the_gene_rarely_when_the_proxy_is_causal():
    # The outside variant 0 is causal (z ~ 8) and the gene's variant 1 is its proxy at r = 0.95; the shrinker
    # selects the gene's variant (worst case). The gene is credited only when z_1 beats z_0 by the margin: at most
    # P(N(0,1) > 0.5) = 0.31 per proxy, and here P(N(0,1) > 0.5 + 8 sqrt(0.05 / 2)) = P(N > 1.76) = 0.039; over
    # 2,000 replicates (binomial sd 0.0043) the share of replicates where the proxy is not conditioned on must be
    # within 3 sd of 0.039.
    R = np.array([[1.0, 0.95, 0.0], [0.95, 1.0, 0.0], [0.0, 0.0, 1.0]])
    gmap = GeneMap(pd.DataFrame({"GENE": ["g"], "CHR": "1", "n_variants": [2]}), [np.array([1, 2])])
    lam = np.array([8.0, 0.0, 0.0])
    z = lam @ R + null_z(R, 2000, np.random.default_rng(12))
    zeta = np.array([0.0, 8.0, 0.0])
    kept = np.mean([gene_statistics(zi, zeta, [R], gmap).n_conditioned[0] == 0 for zi in z])
    expected = stats.norm.sf(0.5 + 8 * np.sqrt(0.05 / 2))
    assert abs(kept - expected) < 3 * np.sqrt(expected * (1 - expected) / 2000), (kept, expected)


def test_a_strong_signal_the_shrinker_missed_is_conditioned_on_as_a_lead():
    # The shrinker left a z of 28 unselected (zeta = 0 everywhere): the lead rule still removes its spill-over
    # from the neighbour gene, which the shrinker-only selection (lead_z = inf) does not.
    R = ar1(40, 0.9)
    gmap = tiled([20, 20])
    lam = np.zeros(40)
    lam[21] = 28.0
    z = lam @ R + null_z(R, 1, np.random.default_rng(9))[0]
    zeta = np.zeros(40)
    with_lead = gene_statistics(z, zeta, [R], gmap)
    without = gene_statistics(z, zeta, [R], gmap, lead_z=np.inf, strong_z=np.inf)
    p_with = pvals(with_lead)
    p_without = pvals(without)
    assert with_lead.n_conditioned[0] >= 1 and without.n_conditioned.tolist() == [0, 0]
    assert p_without[0] < 1e-20 and p_with[0] > 1e-3 and p_with[1] < 1e-20


def test_strong_outside_variant_in_moderate_ld_is_conditioned_on():
    # Two strong effects of opposite sign outside the gene partly cancel in the marginals; the shrinker (zeta = 0
    # here) misses them. Outside variants with |z| >= 6 in moderate LD (0.1 <= |r| < 0.5) with the gene are
    # conditioned on regardless; the rule can be switched off (strong_z = inf).
    m = 12
    R = np.eye(m)
    R[0, 5] = R[5, 0] = 0.4  # gene variant 0 and outside variant 5
    R[1, 6] = R[6, 1] = 0.45  # gene variant 1 and outside variant 6
    gmap = GeneMap(pd.DataFrame({"GENE": ["g"], "CHR": "1", "n_variants": [3]}), [np.arange(3)])
    lam = np.zeros(m)
    lam[5], lam[6] = 30.0, -30.0
    z = lam @ R
    zeta = np.zeros(m)
    on = gene_statistics(z, zeta, [R], gmap)
    off = gene_statistics(z, zeta, [R], gmap, strong_z=np.inf, lead_z=np.inf)
    assert on.n_conditioned.tolist() == [2] and off.n_conditioned.tolist() == [0]
    assert on.Q[0] == pytest.approx(0.0, abs=1e-9) and off.Q[0] > 100
