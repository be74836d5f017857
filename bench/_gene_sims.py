"""Gene-test calibration and power/FDR simulations for bench/genes.py (issue: gene tests that hold their error rates).

The simulator is written here, independently of ``bayesmages.simulate.multitrait``: LD blocks are the real UK
Biobank block of ../shared/data/ld (when present) plus msprime blocks made with seeds the shipped shrinker never
saw; genes tile each block (10-40 variants, gaps of 0-15); summary statistics follow the RSS model
z ~ N(R lambda, R) drawn through each block's eigendecomposition, beta_hat = z se with se = 1/sqrt(n).

Every replicate goes through the public API: ``bm.shrink.shrink`` (the pretrained shrinker) and
``bm.genes.enrichment.test`` with the three tests: ``conditional`` (default), ``epsilon`` (the paper's rule, with
its own one-trait dp_mixture fit, as ``bayesmages run --gene-test epsilon``) and ``marginal`` (the raw-effect
LD-aware test, sum z^2 against eig(R_g): the fastBAT/MAGMA-style baseline). A fourth row,
``conditional+single``, is the conditional test with its optional single-variant part in the Cauchy combination
(``method="conditional+single"``), not the default: measured here against the default on the same data.

With signal, two reference rankings that are not tests (they know where the causal variants are) bound what
a gene test can reach on these data: ``oracle`` ranks each associated gene by the chi2_1 p-value of its
strongest causal variant's marginal z, multiplied by the gene's size (Bonferroni: a test does not know which
variant it is), null genes by uniform draws (an exact test); ``oracle, copies removed`` does the same but gives
a uniform draw to associated genes whose causal variants all have a copy (|r| >= 0.99) outside the gene, which no
valid test of "the gene holds a causal variant" can credit (the data are the same whichever copy is causal).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import chi2
from sklearn.metrics import average_precision_score

import bayesmages as bm
from bayesmages.genes import GeneMap
from bayesmages.stats.multitest import bh

REAL_BLOCK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ld" / "chr22_block0.ld"
TESTS = ("conditional", "conditional+single", "epsilon", "marginal")
COPY_R = 0.99
N_GWAS = 300_000


def make_layout(n_msprime: int, seed: int) -> tuple[list[np.ndarray], GeneMap, list[str]]:
    """LD blocks (real first when present) and genes tiling them."""
    blocks, names = [], []
    if REAL_BLOCK.is_file():
        blocks.append(np.loadtxt(REAL_BLOCK))
        names.append("UKB chr22 block0")
    sim = bm.simulate.simulate_ld_blocks(n_msprime, 600, n_samples=2000, seed=seed)
    blocks += sim
    names += [f"msprime {i + 1}" for i in range(len(sim))]
    rng = np.random.default_rng(seed)
    indices, start = [], 0
    for R in blocks:
        pos = int(rng.integers(0, 10))
        while True:
            size = int(rng.integers(10, 41))
            if pos + size > R.shape[0]:
                break
            indices.append(np.arange(start + pos, start + pos + size))
            pos += size + int(rng.integers(0, 16))
        start += R.shape[0]
    genes = pd.DataFrame({"GENE": [f"G{i}" for i in range(len(indices))], "CHR": "1",
                          "n_variants": [ix.size for ix in indices]})
    return blocks, GeneMap(genes, indices), names


class Sampler:
    """z ~ N(R lambda, R) per block through one eigendecomposition each."""

    def __init__(self, blocks: list[np.ndarray]) -> None:
        self.blocks = blocks
        self.factors = []
        for R in blocks:
            w, V = np.linalg.eigh(R)
            self.factors.append(V * np.sqrt(np.clip(w, 0.0, None)))

    def z(self, lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out, start = [], 0
        for R, F in zip(self.blocks, self.factors):
            m = R.shape[0]
            out.append(R @ lam[start:start + m] + F @ rng.normal(size=m))
            start += m
        return np.concatenate(out)


def gene_tests(z: np.ndarray, blocks: list[np.ndarray], gmap: GeneMap, seed: int,
               tests: tuple[str, ...] = TESTS) -> dict[str, pd.DataFrame]:
    """Shrink one trait and run the gene tests on it (public API)."""
    se = np.full(z.size, 1 / np.sqrt(N_GWAS))
    sizes = [R.shape[0] for R in blocks]
    cuts = np.cumsum(sizes)[:-1]
    b_hat = z * se
    out = bm.shrink.shrink(np.split(b_hat, cuts), np.split(se, cuts), blocks)
    shrunk = out.beta_shrunk.to_numpy()
    res = {}
    for test in tests:
        t0 = time.perf_counter()
        if test == "epsilon":
            r = bm.genes.enrichment.test(shrunk, blocks, gmap, method="epsilon", seed=seed)
        else:
            r = bm.genes.enrichment.test(shrunk, blocks, gmap, beta_hat=b_hat, se=se, method=test)
        r.attrs["seconds"] = time.perf_counter() - t0
        res[test] = r
    return res


def complete_null(n_gwas: int, n_msprime: int, seed: int, tests: tuple[str, ...] = TESTS) -> dict:
    """Null GWAS (no causal variant): P(p < alpha) per test and the share of GWAS with any BH call."""
    blocks, gmap, names = make_layout(n_msprime, seed)
    sampler = Sampler(blocks)
    rng = np.random.default_rng(seed + 1)
    pvals: dict[str, list[np.ndarray]] = {t: [] for t in tests}
    by_block: dict[str, list[np.ndarray]] = {t: [] for t in tests}
    starts = np.r_[0, np.cumsum([R.shape[0] for R in blocks])]
    gene_block = np.array([int(np.searchsorted(starts, ix[0], side="right") - 1) for ix in gmap.indices])
    with_calls = dict.fromkeys(tests, 0)
    for rep in range(n_gwas):
        z = sampler.z(np.zeros(int(starts[-1])), rng)
        res = gene_tests(z, blocks, gmap, seed=rep, tests=tests)
        for t in tests:
            p = res[t].p_value.to_numpy()
            pvals[t].append(p)
            by_block[t].append(gene_block)
            with_calls[t] += int((res[t].q_value <= 0.05).any())
    out: dict = {"n_gwas": n_gwas, "blocks": names, "genes_per_gwas": len(gmap), "seed": seed, "tests": {}}
    for t in tests:
        p = np.concatenate(pvals[t])
        blk = np.concatenate(by_block[t])
        n = p.size
        row = {"n_null_genes": n, "gwas_with_bh_calls": with_calls[t]}
        for alpha in (0.05, 0.01):
            row[f"P(p<{alpha})"] = float(np.mean(p < alpha))
            row[f"bound {alpha}"] = float(alpha + 2 * np.sqrt(alpha * (1 - alpha) / n))
        row["per_block P(p<0.05)"] = {names[b]: float(np.mean(p[blk == b] < 0.05)) for b in range(len(blocks))}
        out["tests"][t] = row
    return out


def copied(gmap: GeneMap, blocks: list[np.ndarray]) -> list[np.ndarray]:
    """Per gene, which of its variants have a copy (|r| >= COPY_R) outside the gene in their block."""
    starts = np.r_[0, np.cumsum([R.shape[0] for R in blocks])]
    out = []
    for ix in gmap.indices:
        b = int(np.searchsorted(starts, ix[0], side="right") - 1)
        R, loc = blocks[b], ix - starts[b]
        outside = np.setdiff1d(np.arange(R.shape[0]), loc)
        out.append(np.abs(R[np.ix_(loc, outside)]).max(axis=1) >= COPY_R if outside.size else np.zeros(loc.size, bool))
    return out


def oracle_rankings(z: np.ndarray, lam: np.ndarray, truth: np.ndarray, gmap: GeneMap, copies: list[np.ndarray],
                    rng: np.random.Generator) -> dict[str, float]:
    """Average precision of the two reference rankings of the module docstring (not tests), and how many
    associated genes have all their causal variants copied outside the gene."""
    p_or = rng.uniform(size=truth.size)
    p_nc = p_or.copy()
    n_copied = 0
    for g in np.flatnonzero(truth):
        ix = gmap.indices[g]
        causal = lam[ix] != 0
        p = min(1.0, ix.size * float(chi2.sf(np.max(z[ix][causal] ** 2), 1)))
        p_or[g] = p
        if copies[g][causal].all():
            n_copied += 1
        else:
            p_nc[g] = p
    out = {name: float(average_precision_score(truth, -np.log10(np.maximum(p, 1e-300))))
           for name, p in (("oracle", p_or), ("oracle, copies removed", p_nc))}
    return {**out, "n_copied": n_copied, "n_associated": int(truth.sum())}


def with_signal(n_rep: int, n_msprime: int, seed: int, frac_causal: float = 0.1, h2: float = 0.01,
                tests: tuple[str, ...] = TESTS) -> dict:
    """Two traits, ~10% causal genes (T1-specific, T2-specific or shared), FDR and AP per test."""
    blocks, gmap, names = make_layout(n_msprime, seed)
    sampler = Sampler(blocks)
    m = sum(R.shape[0] for R in blocks)
    rng = np.random.default_rng(seed + 2)
    copies = copied(gmap, blocks)
    ref_rng = np.random.default_rng(seed + 3)  # the reference rankings' draws, apart from the data's stream
    refs = []
    rows = []
    for rep in range(n_rep):
        n_genes = len(gmap)
        causal_genes = rng.choice(n_genes, size=max(2, round(frac_causal * n_genes)), replace=False)
        kinds = rng.choice(["T1", "T2", "shared"], size=causal_genes.size, p=[0.4, 0.4, 0.2])
        for t_index, trait in enumerate(("T1", "T2")):
            lam = np.zeros(m)
            truth = np.zeros(n_genes, dtype=bool)
            for g, kind in zip(causal_genes, kinds):
                if kind not in (trait, "shared"):
                    continue
                ix = gmap.indices[g]
                c = rng.choice(ix, size=min(ix.size, int(rng.integers(1, 4))), replace=False)
                lam[c] = rng.normal(size=c.size)
                truth[g] = True
            beta = lam.copy()
            g_var = float(sum(beta[s:s + R.shape[0]] @ R @ beta[s:s + R.shape[0]]
                              for s, R in zip(np.r_[0, np.cumsum([R.shape[0] for R in blocks])], blocks)))
            beta *= np.sqrt(h2 / g_var)
            z = sampler.z(beta * np.sqrt(N_GWAS), rng)
            res = gene_tests(z, blocks, gmap, seed=1000 * rep + t_index, tests=tests)
            refs.append(oracle_rankings(z, lam, truth, gmap, copies, ref_rng))
            for t in tests:
                p = res[t].p_value.to_numpy()
                called = bh(p) <= 0.05
                rows.append({"rep": rep, "trait": trait, "test": t, "n_associated": int(truth.sum()),
                             "n_called": int(called.sum()), "n_false": int((called & ~truth).sum()),
                             "false_share": float((called & ~truth).sum() / max(called.sum(), 1)),
                             "power": float((called & truth).sum() / max(truth.sum(), 1)),
                             "ap": float(average_precision_score(truth, -np.log10(np.maximum(p, 1e-300)))),
                             "seconds": res[t].attrs["seconds"]})
    df = pd.DataFrame(rows)
    summary = {}
    for t, d in df.groupby("test"):
        summary[t] = {"mean_false_share": float(d.false_share.mean()), "max_false_share": float(d.false_share.max()),
                      "pooled_false_share": float(d.n_false.sum() / max(d.n_called.sum(), 1)),
                      "mean_ap": float(d.ap.mean()), "mean_power": float(d.power.mean()),
                      "mean_calls": float(d.n_called.mean()), "mean_associated": float(d.n_associated.mean()),
                      "mean_seconds": float(d.seconds.mean())}
    copied_share = sum(r["n_copied"] for r in refs) / max(sum(r["n_associated"] for r in refs), 1)
    return {"n_replicates": n_rep, "traits": 2, "blocks": names, "genes": len(gmap), "frac_causal_genes": frac_causal,
            "h2_per_trait": h2, "n": N_GWAS, "seed": seed, "summary": summary, "rows": rows,
            "reference_ap": {k: float(np.mean([r[k] for r in refs])) for k in ("oracle", "oracle, copies removed")},
            "copied_share": copied_share}
