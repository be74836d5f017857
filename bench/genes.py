"""Gene-level benchmark: enrichment-test speed and quadratic-form accuracy by tail region.

Run: python bench/genes.py [--quick] [--parts speed,accuracy,calibration,power] [--tables-only]

1. Speed. N genes (20,000; --quick 2,000) of U{10..200} variants tiled over LD blocks (AR(1)-type
   correlation with different decays, 2,000 variants per block, a few distinct matrices reused), effects
   drawn from the exact null N(0, eps R) so the run also checks calibration (KS). Timed: the enrichment
   test serially and with 2 workers, and a baseline measured in the same run: the per-gene loop an R-SKAT-style
   implementation does (eigvalsh, then Davies with acc 1e-6) on a subset, extrapolated per gene.
2. Accuracy. Worst relative error of each quadform method against references, by tail region
   (p in [1e-3, 1], [1e-10, 1e-3), [1e-30, 1e-10)): mpmath Imhof at 45 digits and the exact hypoexponential
   formula (weights with multiplicity 2) from bench/results/genes.reference*.json (built by
   bench/_make_reference.py), plus scipy's exact chi2 survival for one weight and for equal weights (1-200).

3. Calibration (complete null) and 4. power/FDR with signal of the three gene tests (conditional, the paper's
   epsilon rule, the marginal raw-effect LD-aware test) on the same simulated GWAS: see bench/_gene_sims.py.
5. Speed of the conditional test against the epsilon test on the speed genes (same run).

Writes bench/results/genes.json (parts merged) and bench/results/genes.md (generated from the JSON only).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bayesmages._threads import one_blas_thread
from bayesmages.genes import GeneMap, enrichment
from bayesmages.stats import quadform

RESULTS = Path(__file__).parent / "results"
REGIONS = (("[1e-3, 1]", 1e-3, 1.01), ("[1e-10, 1e-3)", 1e-10, 1e-3), ("[1e-30, 1e-10)", 1e-30, 1e-10))
METHODS = ("auto", "davies", "imhof", "liu", "liu.mod", "saddlepoint")
BLOCK = 2000
EPS = 1e-4


def make_genes(n_genes: int, seed: int) -> tuple[list[np.ndarray], GeneMap, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = np.arange(BLOCK)
    distinct = [rho ** np.abs(idx[:, None] - idx[None, :]) for rho in (0.3, 0.6, 0.8, 0.9, 0.95)]
    chol = [np.linalg.cholesky(R) for R in distinct]
    blocks, kinds, indices = [], [], []
    start = 0
    while len(indices) < n_genes:
        k = len(blocks) % len(distinct)
        blocks.append(distinct[k])
        kinds.append(k)
        pos = 0
        while len(indices) < n_genes:
            size = int(rng.integers(10, 201))
            if pos + size > BLOCK:
                break
            indices.append(np.arange(start + pos, start + pos + size))
            pos += size + int(rng.integers(0, 10))
        start += BLOCK
    beta = np.concatenate([np.sqrt(EPS) * (chol[k] @ rng.normal(size=BLOCK)) for k in kinds])
    genes = pd.DataFrame({"GENE": [f"G{i}" for i in range(len(indices))], "CHR": "1",
                          "n_variants": [ix.size for ix in indices]})
    return blocks, GeneMap(genes, indices), beta


def baseline_per_gene(gmap: GeneMap, blocks: list[np.ndarray], beta: np.ndarray, n: int) -> float:
    """Seconds per gene of the plain loop: slice R_g, eigvalsh, Davies (acc 1e-6, lim 1e4)."""
    starts = np.arange(len(blocks) + 1) * BLOCK
    t0 = time.perf_counter()
    with one_blas_thread():
        for ix in gmap.indices[:n]:
            b = int(np.searchsorted(starts, ix[0], side="right") - 1)
            loc = ix - starts[b]
            lam = EPS * np.clip(np.linalg.eigvalsh(blocks[b][np.ix_(loc, loc)]), 0, None)
            quadform.davies(float(np.sum(beta[ix] ** 2)), lam)
    return (time.perf_counter() - t0) / n


def speed(n_genes: int) -> dict:
    blocks, gmap, beta = make_genes(n_genes, seed=1)
    out: dict = {"n_genes": len(gmap), "variants_per_gene": [10, 200], "n_variants": int(beta.size),
                 "cpu_count": os.cpu_count(), "load_average_before": list(os.getloadavg())}
    t0 = time.perf_counter()
    res = enrichment.test(beta, blocks, gmap, null_variance=EPS)
    out["serial_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with one_blas_thread():
        enrichment.gene_eigenvalues(gmap, blocks, EPS)
    out["eigen_only_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res2 = enrichment.test(beta, blocks, gmap, null_variance=EPS, workers=2)
    out["workers2_s"] = time.perf_counter() - t0
    out["workers_identical"] = bool(np.array_equal(res.p_value.to_numpy(), res2.p_value.to_numpy()))
    n_base = min(400, len(gmap))
    per_gene = baseline_per_gene(gmap, blocks, beta, n_base)
    out["baseline_per_gene_s"] = per_gene
    out["baseline_extrapolated_s"] = per_gene * len(gmap)
    out["speedup_serial"] = out["baseline_extrapolated_s"] / out["serial_s"]
    p = res.p_value.to_numpy()
    out["null_ks_statistic"] = float(stats.kstest(p, "uniform").statistic)
    out["null_frac_p_below_0.05"] = float(np.mean(p < 0.05))
    return out


def reference_points() -> list[dict]:
    pts = []
    for path in sorted(RESULTS.glob("genes.reference*.json")):
        for v in json.loads(path.read_text()).values():
            pts.append({"spectrum": v["spectrum"], "ref": f"mpmath {v['kind']}", "q": v["q"],
                        "weights": np.asarray(v["weights"]), "p": v["p_ref"]})
    # exact closed forms (scipy's regularised gamma keeps relative accuracy in the tail)
    for k, name in ((1, "one weight (m=1)"), (2, "flat (m=2)"), (10, "flat (m=10)"), (200, "flat (m=200)")):
        for target in (0.5, 1e-2, 1e-5, 1e-8, 1e-12, 1e-18, 1e-25, 1e-30):
            x = stats.chi2.isf(target, k)
            pts.append({"spectrum": name, "ref": "chi2 closed form", "q": 0.7 * x, "weights": np.full(k, 0.7),
                        "p": float(stats.chi2.sf(x, k))})
    return pts


def accuracy() -> tuple[list[dict], list[dict]]:
    rows = []
    for pt in reference_points():
        for method in METHODS:
            t0 = time.perf_counter()
            if method == "davies":
                pv, fault = quadform.davies(pt["q"], pt["weights"])
                val, fault = float(pv[0]), int(fault[0])
            else:
                val, fault = float(quadform.pvalue(pt["q"], pt["weights"], method=method)), 0
            rows.append({"spectrum": pt["spectrum"], "reference": pt["ref"], "m": int(pt["weights"].size),
                         "p_ref": pt["p"], "method": method, "p": val, "fault": fault,
                         "rel_err": abs(val / pt["p"] - 1), "seconds": time.perf_counter() - t0})
    table = []
    df = pd.DataFrame(rows)
    for method in METHODS:
        row = {"method": method}
        for label, lo, hi in REGIONS:
            sel = df[(df.method == method) & (df.p_ref >= lo) & (df.p_ref < hi)]
            ok = sel[sel.fault == 0]  # Davies fault results (p = 2, as R) are counted, not scored
            row[label] = float(ok.rel_err.max()) if len(ok) else float("nan")
            row[f"n {label}"] = len(sel)
            row[f"faults {label}"] = int((sel.fault != 0).sum())
        row["mean ms per call"] = 1e3 * float(df[df.method == method].seconds.mean())
        table.append(row)
    return rows, table


def speed_conditional(n_genes: int) -> dict:
    """The conditional test on the speed genes, against the epsilon test with a given epsilon (same run).

    z = beta / sqrt(eps) is the exact null; as a stand-in for the shrinker's output (not timed here: it is the
    pipeline's shrink step) the variants with |z| > 3 are kept, about 0.3% of them, each conditioned on by its
    neighbours. The pipeline's epsilon test also fits a dp_mixture for epsilon, which the conditional test does not
    need; that fit is not included, so the ratio below is the worst case for the conditional test.
    """
    blocks, gmap, beta = make_genes(n_genes, seed=1)
    se = np.full(beta.size, np.sqrt(EPS))
    z = beta / se
    shrunk = np.where(np.abs(z) > 3, beta, 0.0)
    t0 = time.perf_counter()
    eps_res = enrichment.test(beta, blocks, gmap, null_variance=EPS)
    eps_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = enrichment.test(shrunk, blocks, gmap, beta_hat=beta, se=se)
    cond_s = time.perf_counter() - t0
    p = res.p_value.to_numpy()
    return {"n_genes": len(gmap), "n_variants": int(beta.size), "epsilon_s": eps_s, "conditional_s": cond_s,
            "ratio": cond_s / eps_s, "mean_conditioned": float(res.n_conditioned.mean()),
            "load_average_before": list(os.getloadavg()), "eps_null_P(p<0.05)": float(np.mean(
                eps_res.p_value.to_numpy() < 0.05)), "conditional_null_P(p<0.05)": float(np.mean(p < 0.05))}


BASELINE_DAVIES = ("bayesmages.stats.quadform.davies, the package's own Python implementation: no compiled Davies "
                   "installs here (chi2comb 0.1.0 on PyPI needs an external C library that neither its sdist nor "
                   "Debian provides, chiscore depends on chi2comb, momentchi2 has moment approximations only), so "
                   "a compiled Davies baseline was not measured")


def _load(sp: dict) -> str:
    load = sp.get("load_average_before")
    return f"{load[0]:.1f}" if load else "not recorded"


def _calibration_md(c: dict, key: str) -> list[str]:
    held = key.startswith("heldout")
    md = [f"## Complete null{' (held-out seed ' + str(c['seed']) + ')' if held else ''}: {c['n_gwas']} null GWAS x "
          f"{c['genes_per_gwas']} genes ({', '.join(c['blocks'])}; n = 300,000, pretrained shrinker)", "",
          "| test | null genes | P(p < 0.05) | bound | P(p < 0.01) | bound | GWAS with a BH 0.05 call |",
          "|---|---|---|---|---|---|---|"]
    for t, r in c["tests"].items():
        md.append(f"| {t} | {r['n_null_genes']} | {r['P(p<0.05)']:.4f} | {r['bound 0.05']:.4f} | "
                  f"{r['P(p<0.01)']:.4f} | {r['bound 0.01']:.4f} | {r['gwas_with_bh_calls']} of {c['n_gwas']} |")
    md += ["", "Bound: alpha + 2 binomial sd (the goal). Per block P(p < 0.05):", "",
           "| test | " + " | ".join(c["blocks"]) + " |", "|---|" + "---|" * len(c["blocks"])]
    for t, r in c["tests"].items():
        md.append(f"| {t} | " + " | ".join(f"{r['per_block P(p<0.05)'][b]:.3f}" for b in c["blocks"]) + " |")
    return [*md, ""]


def _power_md(pw: dict, key: str) -> list[str]:
    held = key.startswith("heldout")
    md = [f"## With signal{' (held-out seed ' + str(pw['seed']) + ')' if held else ''}: two traits, "
          f"{pw['frac_causal_genes']:.0%} causal genes, h2 = {pw['h2_per_trait']} per trait, {pw['n_replicates']} "
          f"replicates ({pw['genes']} genes; {', '.join(pw['blocks'])})", "",
          "An associated gene holds a causal variant for the trait. False share = false BH 0.05 calls / calls, "
          "per replicate and trait (0 when nothing is called).", "",
          "| test | mean false share | max | pooled | mean AP | power | calls | associated | s per trait |",
          "|---|---|---|---|---|---|---|---|---|"]
    for t, r in pw["summary"].items():
        md.append(f"| {t} | {r['mean_false_share']:.3f} | {r['max_false_share']:.3f} | "
                  f"{r['pooled_false_share']:.3f} | {r['mean_ap']:.3f} | {r['mean_power']:.3f} | "
                  f"{r['mean_calls']:.1f} | {r['mean_associated']:.1f} | {r['mean_seconds']:.2f} |")
    if "reference_ap" in pw:
        ref = pw["reference_ap"]
        md += ["", "Reference rankings (not tests; they know the causal variants, see bench/_gene_sims.py): mean AP "
               + "; ".join(f"{k} {v:.3f}" for k, v in ref.items())
               + f". Associated genes whose causal variants all have a copy (|r| >= 0.99) outside the gene: "
               f"{pw['copied_share']:.1%}."]
    return [*md, ""]


def render(data: dict) -> str:
    """genes.md from the content of genes.json (the only way the markdown is made)."""
    md = ["# Gene-level benchmark", "", "Generated by `python bench/genes.py` from `bench/results/genes.json`; "
          "do not edit by hand.", ""]
    for key in ("calibration", "heldout calibration"):
        if key in data:
            md += _calibration_md(data[key], key)
    for key in sorted(k for k in data if k.startswith(("power", "heldout power"))):
        md += _power_md(data[key], key)
    if "speed" in data:
        sp = data["speed"]
        md += [f"## Enrichment test speed: {sp['n_genes']} genes of 10-200 variants ({sp['n_variants']} variants)", "",
               "| what | seconds |", "|---|---|",
               f"| epsilon test (given epsilon), serial | {sp['serial_s']:.1f} |",
               f"| of which eigen-decompositions | {sp['eigen_only_s']:.1f} |",
               f"| epsilon test, workers=2 | {sp['workers2_s']:.1f} |",
               f"| baseline per-gene loop (eigvalsh + Davies), extrapolated | {sp['baseline_extrapolated_s']:.1f} |",
               "", f"Machine: {sp.get('cpu_count', 'not recorded')} cores, load average before the run "
               f"{_load(sp)} (timings on a shared machine are noisy). "
               f"Davies in the baseline: {sp.get('baseline_davies', BASELINE_DAVIES)}. Exact-null "
               f"calibration of the epsilon test when epsilon is the true null variance: KS D = "
               f"{sp['null_ks_statistic']:.4f}, P(p < 0.05) = {sp['null_frac_p_below_0.05']:.4f}.", ""]
    if "speed_conditional" in data:
        sc = data["speed_conditional"]
        md += ["## Conditional test against the epsilon test (same genes, same run)", "",
               "| genes | epsilon test s | conditional test s | ratio | variants conditioned on per gene |",
               "|---|---|---|---|---|",
               f"| {sc['n_genes']} | {sc['epsilon_s']:.1f} | {sc['conditional_s']:.1f} | {sc['ratio']:.2f} | "
               f"{sc['mean_conditioned']:.1f} |", "",
               "The epsilon timing excludes the dp_mixture fit that the pipeline needs for epsilon (the conditional "
               "test needs none), so the ratio is the conditional test's worst case.", ""]
    if "accuracy_table" in data:
        md += ["## quadform: worst relative error by tail region", "",
               "| method | " + " | ".join(f"p in {lab} (n)" for lab, _, _ in REGIONS) + " | ms/call |",
               "|---|" + "---|" * (len(REGIONS) + 1)]
        for row in data["accuracy_table"]:
            cells = [f"{row[lab]:.2g} ({row['n ' + lab]}" + (f", {row['faults ' + lab]} faults)"
                                                             if row["faults " + lab] else ")") for lab, _, _ in REGIONS]
            md.append(f"| {row['method']} | " + " | ".join(cells) + f" | {row['mean ms per call']:.1f} |")
        md += ["", "References: mpmath Imhof (45 digits), exact hypoexponential (mpmath), scipy chi2 closed forms; "
               "see bench/genes.py. Davies is an absolute-accuracy method (acc 1e-6): its relative error in the tail "
               "is expected to be large (R SKAT falls back to liu.mod when it returns p <= 0)."]
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="speed,accuracy,calibration,power",
                    help="comma-separated: speed, speed-conditional (the conditional-against-epsilon timing of "
                         "speed alone), accuracy, calibration, power, heldout (calibration and power on seeds no "
                         "choice was made on, without the slow epsilon test)")
    ap.add_argument("--tables-only", action="store_true", help="rebuild genes.md from genes.json, run nothing")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "genes.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    if not args.tables_only:
        parts = set(args.parts.split(","))
        unknown = parts - {"speed", "speed-conditional", "accuracy", "calibration", "power", "heldout"}
        if unknown:
            ap.error(f"unknown parts {sorted(unknown)}")
        import _gene_sims as sims

        def save(**measured: object) -> None:
            # a part's JSON is written as soon as it is measured, merged into the file as it is now (another run
            # of other parts may have written it meanwhile): the other parts keep their last measurement
            now = json.loads(path.read_text()) if path.is_file() else {}
            now.update(json.loads(json.dumps(measured, default=float)))
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(now, indent=1, default=float))
            os.replace(tmp, path)
            data.update(now)

        if "speed" in parts:
            sp = speed(2000 if args.quick else 20_000)
            sp["baseline_davies"] = BASELINE_DAVIES
            save(speed=sp)
            save(speed_conditional=speed_conditional(2000 if args.quick else 20_000))
        elif "speed-conditional" in parts:  # the conditional-against-epsilon timing alone (speed takes ~20 min)
            save(speed_conditional=speed_conditional(2000 if args.quick else 20_000))
        if "accuracy" in parts:
            rows, table = accuracy()
            save(accuracy_table=table, accuracy_points=rows)
        if "calibration" in parts:
            # seeds that no choice of the conditional test was tuned on (development used 5, 11, 12, 47 and 101)
            save(calibration=sims.complete_null(3 if args.quick else 30, 2 if args.quick else 7, seed=2031))
        if "power" in parts:
            for h2 in (0.01, 0.003):
                save(**{f"power h2={h2}": sims.with_signal(2 if args.quick else 30, 2 if args.quick else 7,
                                                           seed=2029, h2=h2)})
        if "heldout" in parts:
            # checked after the choices of 2026-11-29 (docs/genes.md), never used to make one
            fast = tuple(t for t in sims.TESTS if t != "epsilon")
            save(**{"heldout calibration": sims.complete_null(3 if args.quick else 30, 2 if args.quick else 7,
                                                              seed=7719, tests=fast)})
            for h2 in (0.01, 0.003):
                save(**{f"heldout power h2={h2}": sims.with_signal(2 if args.quick else 30, 2 if args.quick else 7,
                                                                   seed=7717, h2=h2, tests=fast)})
    data = json.loads(path.read_text()) if path.is_file() else data
    md = render(json.loads(json.dumps(data, default=float)))
    (RESULTS / "genes.md").write_text(md)
    print(md)


def tables(results: Path) -> dict[str, str]:
    """The Markdown files of this benchmark, rebuilt from the genes.json in ``results`` (nothing runs)."""
    return {"genes.md": render(json.loads((results / "genes.json").read_text()))}


if __name__ == "__main__":
    main()
