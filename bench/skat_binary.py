"""Type-I error of the binary-trait SKAT-family tests at low case fractions (issue #16).

Null simulation, n = 5,000 people, two covariates (x1 ~ N(0, 1), x2 ~ Bernoulli(0.5), log-odds
effects 0.5 each) and an intercept set so that the expected case fraction is 0.5 %, 1 %, 5 % or
20 %. For each fraction, ``n_pheno`` phenotype replicates are drawn and the null model is fitted
once per replicate (``bm.skat.fit_null``, no moment adjustment: n >= 2,000); every replicate is
tested against fresh genes drawn independently of the phenotype, so every p-value is a null one.

Genes (a): 10 variants with MAF log-uniform on [10^-3.7, 10^-2] (minor-allele counts ~2-100 per
variant), Beta(1, 25) weights. Tested by the saddlepoint-adjusted scores (``method_bin="spa"``:
SKAT, burden, SKAT-O), by the hybrid rule (``method_bin="hybrid"``: ER for sets whose carriers
expect <= 10 carriers of the rarer outcome or have <= 40 minor alleles, SPA otherwise; a seed per
gene for ER's resampling; the share of genes sent to ER is reported) and by the plain asymptotic
tests (SKAT and burden, for comparison).
Genes (b), 1 % cases only: 4 variants with MAF log-uniform on [10^-4, 10^-3.3] (a gene's
minor-allele count is ~3-25), tested by efficient resampling (``method_bin="er"``, exact
enumeration here; R's mid-p and the ordinary p-value) for SKAT and burden, and by the asymptotic
tests for comparison.

For each test the observed rates P(p < 1e-3) and P(p < 1e-4) are reported with the exact
(Clopper-Pearson) binomial 95 % interval of the count; the goal of issue #16 is that alpha lies in
that interval at 1 % cases. Low-MAC genes have discrete null laws: ER's mid-p can then only reach
a few values, so its rate can sit below alpha without any flaw (reported as it is).

Scale (``--scale N``, default 100,000): the cost of the default binary test (the hybrid rule) at
biobank n, one null model per case fraction (1 % and 20 %), 5 genes of 20 variants with MAF
log-uniform on [10^-5, 10^-3.7] (~200 carriers: ER at 1 % cases) and 5 on [10^-4.3, 10^-2.7]
(~2,000 carriers: SPA): CPU seconds of the null fit, of ER's total case-count pmf
(:mod:`bayesmages.stats.poibin`, FFT at this n) and per test, the method each test used, and the
largest relative difference of the ER p-values from the same computed with the direct O(n^2)
recursion (``poibin.FFT_MIN_WORK`` raised; 1 % only), with the load average.

Usage: ``python bench/skat_binary.py [--fractions 0.01,0.2]`` (full: 40,000 genes at 1 % cases, 5,000 at the other
fractions, 10,000 ER genes; about 25 + 10 minutes of one core), ``--quick`` (a smoke run),
``--tables-only`` (rebuild skat_binary.md from skat_binary.json). BLAS runs single-threaded.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy import optimize, stats  # noqa: E402

import bayesmages as bm  # noqa: E402
from bayesmages.io import write_json, write_text  # noqa: E402
from bayesmages.skat.binary import spa_scores  # noqa: E402
from bayesmages.skat.score_test import test_scores  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ALPHAS = (1e-3, 1e-4)
N_SAMPLES = 5000


def _phenotype(rng: np.random.Generator, n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    X = np.column_stack([rng.normal(size=n), rng.binomial(1, 0.5, size=n)])
    lin = 0.5 * X[:, 0] + 0.5 * X[:, 1]
    b0 = optimize.brentq(lambda b: float(np.mean(1 / (1 + np.exp(-(b + lin))))) - fraction, -20, 5)
    while True:  # at least two cases, so that the null model exists
        y = rng.binomial(1, 1 / (1 + np.exp(-(b0 + lin)))).astype(float)
        if 2 <= y.sum() < n - 1:
            return y, X


def _genes(rng: np.random.Generator, n: int, p: int, log_maf: tuple[float, float]) -> np.ndarray:
    maf = 10 ** rng.uniform(*log_maf, size=p)
    return rng.binomial(2, maf, size=(n, p)).astype(float)


def _count(ps: list[float]) -> dict:
    arr = np.asarray(ps)
    out: dict = {"n_tests": int(arr.size)}
    for a in ALPHAS:
        k = int((arr < a).sum())
        ci = stats.binomtest(k, arr.size).proportion_ci(0.95, method="exact")
        out[f"{a:g}"] = {"count": k, "rate": k / arr.size, "ci_low": ci.low, "ci_high": ci.high,
                         "alpha_in_ci": bool(ci.low <= a <= ci.high)}
    return out


def run_fraction(fraction: float, n_genes: int, n_pheno: int, seed: int, er_genes: int,
                 deadline: float = float("inf"), save: Any = None, only: set[str] | None = None,
                 reps: tuple[int, int] | None = None) -> dict:
    """Null p-values for one case fraction; ``save(result)`` after every phenotype replicate.

    Replicates stop early (and the result says so) once ``time.time()`` passes ``deadline``.
    ``only``: the tests (row names) to run, the others skipped (their genes are still drawn, so
    the genes of every test are those of a full run). ``reps = (a, b)``: test only replicates
    a..b-1 (the earlier ones are drawn, not tested), for splitting a fraction across processes;
    the result then also has the raw p-values (``p_values``) for :func:`merge_parts`.
    """
    rng = np.random.default_rng(seed)
    ps: dict[str, list[float]] = {}
    cases = []
    hybrid_er: list[bool] = []  # per gene tested by the hybrid rule: did it use ER?
    t0 = time.perf_counter()
    out: dict = {}
    first, stop = reps if reps is not None else (0, n_pheno)

    def want(name: str) -> bool:
        return only is None or name in only

    for rep in range(stop):
        y, X = _phenotype(rng, N_SAMPLES, fraction)
        tested = rep >= first
        if tested:
            cases.append(int(y.sum()))
            null = bm.skat.fit_null(y, X, trait="binary", adjustment=False)
        for gene in range(n_genes // n_pheno):
            G = _genes(rng, N_SAMPLES, 10, (-3.7, -2.0))  # drawn even when not tested: the same genes
            if not tested:
                continue
            pv = bm.skat.prepare_variants(G)
            if pv.n_tested == 0:
                continue
            w = bm.skat.beta_weights(pv.maf)
            if any(want(f"spa {t}") for t in ("skat", "burden", "skat-o")):
                Sw, Phi, _ = spa_scores(pv.G, w, null, seed=0)
                for t in ("skat", "burden", "skat-o"):
                    if want(f"spa {t}"):
                        ps.setdefault(f"spa {t}", []).append(test_scores(Sw, Phi, 1.0, t).p_value)
            for t in ("skat", "burden", "skat-o"):
                if want(f"hybrid {t}"):
                    # a seed per gene, so that the resampled genes' p-values are independent draws
                    res = bm.skat.test_prepared(pv.G, w, null, t, method_bin="hybrid", seed=rep * 1_000_003 + gene)
                    ps.setdefault(f"hybrid {t}", []).append(res.p_value)
                    if t == "skat":
                        hybrid_er.append(res.method.startswith("er"))
            for t in ("skat", "burden"):
                if want(f"asymptotic {t}"):
                    ps.setdefault(f"asymptotic {t}", []).append(bm.skat.test_prepared(pv.G, w, null, t).p_value)
        for _ in range(er_genes // n_pheno):
            G = _genes(rng, N_SAMPLES, 4, (-4.0, -3.3))
            if not tested or (only is not None and not any("low-MAC" in o for o in only)):
                continue
            pv = bm.skat.prepare_variants(G)
            if pv.n_tested == 0:
                continue
            w = bm.skat.beta_weights(pv.maf)
            for t in ("skat", "burden"):
                er = bm.skat.test_prepared(pv.G, w, null, t, method_bin="er")
                ps.setdefault(f"er {t} mid-p (R's; low-MAC genes)", []).append(er.p_value)
                ps.setdefault(f"er {t} ordinary p (low-MAC genes)", []).append(er.extra["p_value_standard"])
                ps.setdefault(f"asymptotic {t} (low-MAC genes)", []).append(
                    bm.skat.test_prepared(pv.G, w, null, t).p_value)
        if not tested:
            continue
        out = {"case_fraction": fraction, "mean_cases": float(np.mean(cases)), "n_pheno": rep + 1 - first,
               "n_pheno_planned": stop - first, "seconds": round(time.perf_counter() - t0, 1),
               "tests": {k: _count(v) for k, v in ps.items()}}
        if hybrid_er:
            out["hybrid_er_genes"] = [int(sum(hybrid_er)), len(hybrid_er)]
        if reps is not None:
            out.update(reps=[first, rep + 1], p_values=ps, cases=cases)
        if save is not None:
            save(out)
        if time.time() > deadline:
            break
    return out


def merge_parts(parts: list[dict]) -> dict:
    """One fraction's result from replicate ranges run separately (``run_fraction(..., reps=)``)."""
    ps: dict[str, list[float]] = {}
    for part in parts:
        for k, v in part["p_values"].items():
            ps.setdefault(k, []).extend(v)
    cases = [c for part in parts for c in part["cases"]]
    extra = {}
    if any("hybrid_er_genes" in part for part in parts):
        extra["hybrid_er_genes"] = [sum(part.get("hybrid_er_genes", [0, 0])[i] for part in parts) for i in (0, 1)]
    return {**extra, "case_fraction": parts[0]["case_fraction"], "mean_cases": float(np.mean(cases)),
            "n_pheno": sum(part["n_pheno"] for part in parts),
            "n_pheno_planned": sum(part["n_pheno_planned"] for part in parts),
            "seconds": round(sum(part["seconds"] for part in parts), 1),
            "replicates_run": [part["reps"] for part in parts],
            "tests": {k: _count(v) for k, v in ps.items()}}


def run_independent(seed: int, n_pheno: int, n_genes: int, fraction: float = 0.01) -> dict:
    """The 1 % design on independent data (phenotype and gene seed ``seed``): hybrid SKAT, burden and
    SKAT-O, and, as a diagnostic of ER's one approximation (the fitted probabilities taken as known),
    ER SKAT with the *true* probabilities in place of the fitted ones (its conditional law is then
    exact; the hybrid's SKAT is ER's with the fitted ones wherever the hybrid chose ER). Same genes for
    every row."""
    rng = np.random.default_rng(seed)
    ps: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    cases = []
    er_genes: list[bool] = []
    for rep in range(n_pheno):
        X = np.column_stack([rng.normal(size=N_SAMPLES), rng.binomial(1, 0.5, size=N_SAMPLES)])
        lin = 0.5 * X[:, 0] + 0.5 * X[:, 1]
        b0 = optimize.brentq(lambda b, lin=lin: float(np.mean(1 / (1 + np.exp(-(b + lin))))) - fraction, -20, 5)
        mu = 1 / (1 + np.exp(-(b0 + lin)))
        y = rng.binomial(1, mu).astype(float)
        cases.append(int(y.sum()))
        null = bm.skat.fit_null(y, X, trait="binary", adjustment=False)
        truth = copy.copy(null)
        truth.__dict__.pop("_er_cache", None)
        truth.fitted, truth.residuals = mu, y - mu
        for gene in range(n_genes // n_pheno):
            pv = bm.skat.prepare_variants(_genes(rng, N_SAMPLES, 10, (-3.7, -2.0)))
            if pv.n_tested == 0:
                continue
            w = bm.skat.beta_weights(pv.maf)
            gseed = rep * 1_000_003 + gene
            for t in ("skat", "burden", "skat-o"):
                res = bm.skat.test_prepared(pv.G, w, null, t, method_bin="hybrid", seed=gseed)
                ps.setdefault(f"hybrid {t}", []).append(res.p_value)
                if t == "skat":
                    er_genes.append(res.method.startswith("er"))
            ps.setdefault("er skat, true mu (diagnostic)", []).append(
                bm.skat.test_prepared(pv.G, w, truth, "skat", method_bin="er", seed=gseed).p_value)
    return {"seed": seed, "case_fraction": fraction, "n_pheno": n_pheno, "mean_cases": float(np.mean(cases)),
            "seconds": round(time.perf_counter() - t0, 1), "hybrid_er_genes": [int(sum(er_genes)), len(er_genes)],
            "tests": {k: _count(v) for k, v in ps.items()}}


def run_scale(n: int, seed: int = 7, n_genes: int = 5) -> dict:
    """Timings of the default binary tests at biobank n (see the module docstring)."""
    from bayesmages.skat import er
    from bayesmages.stats import poibin

    out: dict[str, Any] = {"n": n, "genes": 2 * n_genes, "variants": 20, "load_average_before": os.getloadavg()[0],
                           "fractions": []}
    for fraction in (0.01, 0.2):
        rng = np.random.default_rng(seed)
        y, x = _phenotype(rng, n, fraction)
        c0 = time.process_time()
        null = bm.skat.fit_null(y, x, trait="binary")
        t_null = time.process_time() - c0
        c0 = time.process_time()
        er._total_pmf(null)
        t_pmf = time.process_time() - c0
        genes = [_genes(rng, n, 20, lm) for lm in ((-5.0, -3.7), (-4.3, -2.7)) for _ in range(n_genes)]
        per: dict[str, list[float]] = {t: [] for t in ("skat", "burden", "skat-o")}
        methods: dict[str, int] = {}
        ps = []
        for G in genes:
            for t in per:
                c0 = time.process_time()
                r = bm.skat.test(G, null, test=t)
                per[t].append(time.process_time() - c0)
                methods[r.method] = methods.get(r.method, 0) + 1
                ps.append((G, t, r.p_value, r.method))
        rec: dict[str, Any] = {"case_fraction": fraction, "cases": int(y.sum()), "null_fit_cpu_s": t_null,
                               "total_pmf_cpu_s": t_pmf, "methods": methods,
                               "cpu_s_per_test": {t: float(np.mean(v)) for t, v in per.items()}}
        if fraction == 0.01:
            # the same ER p-values with the direct recursion throughout (a fresh null: nothing cached)
            old = poibin.FFT_MIN_WORK
            try:
                poibin.FFT_MIN_WORK = 10**15
                direct = bm.skat.fit_null(y, x, trait="binary")
                c0 = time.process_time()
                er._total_pmf(direct)
                rec["total_pmf_direct_cpu_s"] = time.process_time() - c0
                diffs = [abs(bm.skat.test(G, direct, test=t).p_value / p - 1)
                         for G, t, p, m in ps if m.startswith("er")]
            finally:
                poibin.FFT_MIN_WORK = old
            rec["er_tests_compared"] = len(diffs)
            rec["er_max_rel_diff_vs_direct"] = float(max(diffs)) if diffs else None
        out["fractions"].append(rec)
    out["load_average_after"] = os.getloadavg()[0]
    return out


def _scale_markdown(sc: dict) -> list[str]:
    lines = [f"## Scale: the default binary test (hybrid) at n = {sc['n']:,}", "",
             f"{sc['genes']} genes x {sc['variants']} variants per case fraction (half ultra-rare, half rare: "
             "see bench/skat_binary.py); CPU seconds of one process; load "
             f"average {sc['load_average_before']:.1f} before, {sc['load_average_after']:.1f} after (2 cores, "
             f"shared); `{sc['command']}`.", "",
             "| cases | null fit (s) | ER total pmf (s) | skat (s/test) | burden (s/test) | skat-o (s/test) "
             "| methods used |",
             "|---|---|---|---|---|---|---|"]
    for fr in sc["fractions"]:
        c = fr["cpu_s_per_test"]
        meth = ", ".join(f"{k} {v}" for k, v in sorted(fr["methods"].items()))
        lines.append(f"| {100 * fr['case_fraction']:g}% ({fr['cases']:,}) | {fr['null_fit_cpu_s']:.2f} | "
                     f"{fr['total_pmf_cpu_s']:.3f} | {c['skat']:.3f} | {c['burden']:.3f} | {c['skat-o']:.3f} "
                     f"| {meth} |")
    for fr in sc["fractions"]:
        if fr.get("er_tests_compared"):
            lines += ["", f"At {100 * fr['case_fraction']:g}% cases the ER p-values of {fr['er_tests_compared']} "
                      "tests differ from those computed with the direct recursion (total pmf "
                      f"{fr['total_pmf_direct_cpu_s']:.1f} s) by at most {fr['er_max_rel_diff_vs_direct']:.1e} "
                      "relative (same seeds; a resampled p-value changes only if the law moves a draw across the "
                      "observed statistic; tests/test_skat_binary.py compares the laws themselves at n = 12,000)."]
    return [*lines, ""]


def _cells(t: dict) -> str:
    """A row's rate, interval and verdict cells at each alpha."""
    cells = []
    for a in ALPHAS:
        c = t[f"{a:g}"]
        cells += [f"{c['rate']:.2e} ({c['count']})", f"[{c['ci_low']:.1e}, {c['ci_high']:.1e}]",
                  "yes" if c["alpha_in_ci"] else "**no**"]
    return " | ".join(cells)


def _markdown(res: dict) -> str:
    lines = [f"# Binary-trait SKAT family: type-I error at low case fractions ({res['mode']} run)", "",
             f"n = {res['n_samples']:,}; machine: {res['machine']}; command: `{res['command']}`. "
             "Generated from skat_binary.json by bench/skat_binary.py (see its docstring for the design).", "",
             "| cases | test | tests | P(p<1e-3) | 95% CI | alpha in CI | P(p<1e-4) | 95% CI | alpha in CI |",
             "|---|---|---|---|---|---|---|---|---|"]
    for fr in res["fractions"]:
        for name, t in fr["tests"].items():
            lines.append(f"| {100 * fr['case_fraction']:g}% ({fr['mean_cases']:.0f}) | {name} | {t['n_tests']:,} | "
                         + _cells(t) + " |")
    lines += ["", "Phenotype replicates run (of planned) and seconds per case fraction: " + ", ".join(
        f"{100 * fr['case_fraction']:g}%: {fr['n_pheno']}/{fr.get('n_pheno_planned', fr['n_pheno'])}, "
        f"{fr['seconds']:,.0f} s (`{fr.get('command', res['command'])}`)"
        for fr in res["fractions"]) + ". A fraction stopped before its planned replicates "
        "(``--minutes``) has fewer tests than planned; its counts are exact for the tests it ran.", ""]
    for ind in res.get("independent", []):
        lines += [f"Independent data, {100 * ind['case_fraction']:g}% cases (seed {ind['seed']}, {ind['n_pheno']} "
                  f"phenotypes, {ind['mean_cases']:.0f} cases on average, hybrid chose ER for "
                  f"{ind['hybrid_er_genes'][0]:,} of {ind['hybrid_er_genes'][1]:,} genes, {ind['seconds']:,.0f} s; "
                  f"`{ind['command']}`):", "",
                  "| test | tests | P(p<1e-3) | 95% CI | alpha in CI | P(p<1e-4) | 95% CI | alpha in CI |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, t in ind["tests"].items():
            lines.append(f"| {name} | {t['n_tests']:,} | " + _cells(t) + " |")
        lines.append("")
    shares = [f"{100 * fr['case_fraction']:g}%: {fr['hybrid_er_genes'][0]:,} of {fr['hybrid_er_genes'][1]:,}"
              for fr in res["fractions"] if "hybrid_er_genes" in fr]
    if shares:
        lines += ["Genes the hybrid rule sent to ER (the others to SPA): " + ", ".join(shares) + ".", ""]
    if "scale" in res:
        lines += _scale_markdown(res["scale"])
    for fr in res["fractions"]:
        for name, info in fr.get("rows_rerun", {}).items():
            lines += [f"Row rerun on its own ({100 * fr['case_fraction']:g}% {name}): replicates "
                      f"{', '.join(f'{a}-{b - 1}' for a, b in info['replicates_run'])} "
                      f"({info['n_pheno']} of {info['n_pheno_planned']} planned), the same genes as the other rows "
                      f"of that fraction; {info['wall_seconds_sum']:,.0f} s of wall time summed over "
                      f"{len(info['replicates_run'])} process(es); commands: "
                      + "; ".join(f"`{c}`" for c in info["commands"]) + f"; merged by `{info['merged_by']}`.", ""]
    return "\n".join(lines)


def tables(results: Path) -> dict[str, str]:
    """The Markdown files of this benchmark, rebuilt from its JSON in ``results`` (nothing runs)."""
    return {"skat_binary.md": _markdown(json.loads((results / "skat_binary.json").read_text()))}


def merge_into_json(part_files: list[str], path: Path) -> None:
    """Replace one fraction's rows by those of merged parts, keeping its other rows; provenance per row."""
    parts = [json.loads(Path(f).read_text()) for f in part_files]
    merged = merge_parts(parts)
    res = json.loads(path.read_text())
    frac = next(f for f in res["fractions"] if f["case_fraction"] == merged["case_fraction"])
    if "hybrid_er_genes" in merged:
        frac["hybrid_er_genes"] = merged["hybrid_er_genes"]
    for name, row in merged["tests"].items():
        frac["tests"][name] = row
        frac.setdefault("rows_rerun", {})[name] = {
            "n_pheno": merged["n_pheno"], "n_pheno_planned": merged["n_pheno_planned"],
            "replicates_run": merged["replicates_run"], "wall_seconds_sum": merged["seconds"],
            "commands": sorted({p["command"] for p in parts}),
            "merged_by": "python bench/skat_binary.py --merge " + ",".join(Path(f).name for f in part_files)}
    write_json(res, path)
    write_text(_markdown(res), path.with_suffix(".md"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run for a smoke check")
    ap.add_argument("--tables-only", action="store_true", help="rebuild skat_binary.md from its JSON")
    ap.add_argument("--minutes", type=float, default=float("inf"),
                    help="stop each fraction after the phenotype replicate that passes this many minutes")
    ap.add_argument("--fractions", default=None,
                    help="comma-separated subset of the case fractions to run (the others are kept from the JSON)")
    ap.add_argument("--only", default=None,
                    help="comma-separated test rows to run (e.g. 'spa skat'); the fraction's other rows are kept "
                         "from the JSON (same genes: they are drawn either way)")
    ap.add_argument("--reps", default=None, help="A:B: run replicates A..B-1 of one fraction into --part-out")
    ap.add_argument("--part-out", default=None, help="where --reps writes its part (JSON with the raw p-values)")
    ap.add_argument("--merge", default=None,
                    help="comma-separated part files of one fraction: merge their rows into the JSON")
    ap.add_argument("--independent", type=int, default=None, metavar="SEED",
                    help="run the 1 %% design on independent data with this seed (hybrid rows and ER with the "
                         "true probabilities; --n-pheno phenotypes, 2,000 genes each) into the JSON's 'independent'")
    ap.add_argument("--n-pheno", type=int, default=5)
    ap.add_argument("--scale", type=int, nargs="?", const=100_000, default=None, metavar="N",
                    help="time the default binary tests at n = N (default 100,000) into the JSON's 'scale'")
    args = ap.parse_args()
    if args.scale is not None:
        sc = run_scale(args.scale)
        sc["command"] = " ".join(["python bench/skat_binary.py", *sys.argv[1:]])
        path = RESULTS / "skat_binary.json"
        res = json.loads(path.read_text())
        res["scale"] = sc
        write_json(res, path)
        write_text(_markdown(res), path.with_suffix(".md"))
        print("\n".join(_scale_markdown(sc)))
        return
    if args.independent is not None:
        ind = run_independent(args.independent, args.n_pheno, 2000 * args.n_pheno)
        ind["command"] = " ".join(["python bench/skat_binary.py", *sys.argv[1:]])
        path = RESULTS / "skat_binary.json"
        res = json.loads(path.read_text())
        res["independent"] = [i for i in res.get("independent", []) if i["seed"] != ind["seed"]] + [ind]
        write_json(res, path)
        write_text(_markdown(res), path.with_suffix(".md"))
        return
    if args.merge:
        merge_into_json(args.merge.split(","), RESULTS / "skat_binary.json")
        return
    if args.tables_only:
        for md_name, text in tables(RESULTS).items():
            write_text(text, RESULTS / md_name)
        return
    plan = [(0.005, 5_000, 0), (0.01, 40_000, 10_000), (0.05, 5_000, 0), (0.2, 5_000, 0)]
    if args.quick:
        plan = [(0.01, 400, 200), (0.2, 200, 0)]
    name = "skat_binary_quick" if args.quick else "skat_binary"
    path = RESULTS / f"{name}.json"
    wanted = None if args.fractions is None else {float(f) for f in args.fractions.split(",")}
    command = " ".join(["python bench/skat_binary.py", *sys.argv[1:]])

    def save(out: dict) -> None:
        # merge into the JSON as read now, so that fractions run by concurrent processes are all kept
        res = json.loads(path.read_text()) if path.exists() else {"fractions": []}
        res.update({"mode": "quick" if args.quick else "full", "n_samples": N_SAMPLES,
                    "machine": f"{platform.processor() or platform.machine()}, one process per fraction set, shared",
                    "command": "python bench/skat_binary.py [--fractions F] [--minutes M] (per fraction below)"})
        res["fractions"] = sorted([f for f in res["fractions"] if f["case_fraction"] != out["case_fraction"]]
                                  + [{**out, "command": command}], key=lambda f: f["case_fraction"])
        write_json(res, path)
        write_text(_markdown(res), RESULTS / f"{name}.md")

    only = None if args.only is None else set(args.only.split(","))
    reps = None
    if args.reps is not None:
        a, b = (int(v) for v in args.reps.split(":"))
        reps = (a, b)
    if reps is not None:
        if args.part_out is None or wanted is None or len(wanted) != 1:
            ap.error("--reps needs --part-out and exactly one fraction in --fractions")

        def save_part(out: dict) -> None:
            write_json({**out, "command": command}, Path(args.part_out))
        save = save_part
    for i, (fr, n_genes, er_genes) in enumerate(plan):
        if wanted is not None and fr not in wanted:
            continue
        out = run_fraction(fr, n_genes, 20 if not args.quick else 2, 1000 + i, er_genes,
                           deadline=time.time() + 60 * args.minutes, save=save, only=only, reps=reps)
        if reps is not None:
            return
        print(json.dumps(out, indent=1), flush=True)
    res = json.loads(path.read_text())
    print(_markdown(res))


if __name__ == "__main__":
    main()
