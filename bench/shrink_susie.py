"""``method="susie"`` (the registered model ``susie_rss``) against R's susieR in the same run (issue 14).

Settings (every replicate is scored for every method on the same data):

* the real UK Biobank block (../shared/data/ld/chr22_block0.ld, 603 variants; RSS summary statistics
  ``beta_hat ~ N(R beta, R / n)``): sparse (1% causal, per-block h2 ~ U(0.005, 0.01)) at n = 50,000,
  300,000 and 1,000,000; polygenic (5% and 20% causal, h2 ~ U(0.02, 0.05)) at n = 300,000;
* an msprime block (600 variants, LD from 2,500 people; a seed no model here was tuned on): sparse and
  polygenic 5% at n = 300,000;
* small n with in-sample LD: msprime genotypes of 574 and 5,000 people, a phenotype y = X beta + e
  (1-5 causal variants, h2 0.05 or 0.2 per block), marginal regressions, R from the same genotypes;
* LD mismatch: the GWAS sample (5,000 people) and a reference panel (1,000 other people of the same
  msprime population); summary statistics from the GWAS sample's LD at n = 300,000, shrunk with the
  panel's LD (with and without the ``ld_lambda`` guard), and the in-sample result for the loss.

Methods: ours (``bm.shrink.shrink(..., method="susie", n=n)``, L = 10 growing to 40 while all effects are
used, infinitesimal background when all 40 are), susieR's ``susie_rss(bhat, shat, R, n, var_y = 1, L)`` with
L = 10 and L = 30 (polygenic settings), and all-zero. Metrics: RMSE of the effects (1e-3, the simulation's
standardised scale), average precision (AP) of |posterior mean| and of PIP for the causal variants, 90%
interval coverage (all, causal, null variants), median seconds per block (one thread each; R's time is
measured inside R around ``susie_rss``). A genome-scale run (``--genome``) shrinks 1,000,000 variants with two
worker processes.

Usage: python bench/shrink_susie.py [--quick] [--genome] [--tables-only]
Writes bench/results/shrink_susie.json and shrink_susie.md (the Markdown only from the JSON).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _susie_r import run_susie_rss, susie_version

import bayesmages as bm
from bayesmages.io import read_ld, write_json, write_text
from bayesmages.simulate.effects import simulate_effects
from bayesmages.simulate.genotypes import ld_from_genotypes, simulate_ld_blocks
from bayesmages.simulate.rss import RSSSampler, gwas_from_genotypes

ROOT = Path(__file__).resolve().parents[1]
REAL_LD = Path(os.environ.get("BAYESMAGES_SHARED", ROOT.parent / "shared")) / "data" / "ld" / "chr22_block0.ld"
OUT = ROOT / "bench" / "results"


def _ours(b: np.ndarray, s: np.ndarray, R: np.ndarray, n: float, ld_lambda: float = 0.0) -> tuple[dict, float]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n outside the benchmarked range is part of what is measured
        out = bm.shrink.shrink(b, s, R, method="susie", n=n, ld_lambda=ld_lambda)
    secs = time.perf_counter() - t0
    return {k: out[k].to_numpy() for k in ("beta_shrunk", "lower", "upper", "pip")}, secs


def score(reps: list[dict], susie: dict[int, dict] | None) -> dict:
    """Metrics of every method over the replicates of one setting."""
    T = np.array([r["beta"] for r in reps])
    causal = T != 0

    def rmse(E: np.ndarray) -> float:
        return float(np.sqrt(np.mean((E - T) ** 2)) * 1e3)

    def ap(E: np.ndarray) -> float:
        return float(np.mean([average_precision_score(c, np.abs(e)) for c, e in zip(causal, E) if c.any()]))

    res: dict = {}
    for key in reps[0]["ours"]:
        E = np.array([r["ours"][key]["beta_shrunk"] for r in reps])
        lo = np.array([r["ours"][key]["lower"] for r in reps])
        hi = np.array([r["ours"][key]["upper"] for r in reps])
        inside = (T >= lo) & (T <= hi)
        detected = causal & (np.array([r["ours"][key]["pip"] for r in reps]) >= 0.5)
        pips = np.array([r["ours"][key]["pip"] for r in reps])
        res[key] = {"coverage90_detected": float(inside[detected].mean()) if detected.any() else None,
                    "n_detected": int(detected.sum()), "rmse_e3": rmse(E), "ap": ap(E), "ap_pip": ap(pips),
                    "coverage90": float(inside.mean()), "coverage90_causal": float(inside[causal].mean()),
                    "coverage90_null": float(inside[~causal].mean()),
                    "seconds_per_block": float(np.median([r["ours_seconds"][key] for r in reps]))}
    res["zero"] = {"rmse_e3": rmse(np.zeros_like(T))}
    for L, out in (susie or {}).items():
        res[f"susie_L{L}"] = {"rmse_e3": rmse(out["coef"]), "ap": ap(out["coef"]), "ap_pip": ap(out["pip"]),
                              "seconds_per_block": float(np.median(out["seconds"]))}
    res["n_replicates"] = len(reps)
    res["n_causal_total"] = int(causal.sum())
    return res


def rss_replicates(R_true: np.ndarray, *, n: int, p_causal: float, h2: tuple[float, float], reps: int,
                   seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``reps`` RSS replicates ``(beta, beta_hat, se)`` drawn with R_true (also used by bench/shrink_intervals.py)."""
    rng = np.random.default_rng(seed)
    sampler = RSSSampler(R_true)
    m = R_true.shape[0]
    out = []
    for _ in range(reps):
        beta = simulate_effects(np.full(m, 0.25), p_causal=p_causal, h2=rng.uniform(*h2), R=R_true,
                                seed=int(rng.integers(2**31)))
        b, s = sampler.sample(beta, n, seed=int(rng.integers(2**31)))
        out.append((beta, b, s))
    return out


def genotype_replicates(n_people: int, *, h2: float, reps: int,
                        seed: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """In-sample LD of msprime genotypes of ``n_people`` and ``reps`` replicates ``(truth, beta_hat, se)``.

    1-5 causal variants, per-block h2, marginal OLS regressions; ``truth`` on the standardised scale of
    the regressions (y scaled to unit variance).
    """
    sim = simulate_ld_blocks(1, 600, n_samples=n_people, seed=seed, return_genotypes=True)[0]
    G = sim.G.astype(np.float64)
    X = (G - G.mean(0)) / G.std(0)
    R = ld_from_genotypes(G)
    rng = np.random.default_rng(seed + 1)
    m = R.shape[0]
    out = []
    for _ in range(reps):
        k = int(rng.integers(1, 6))
        beta = np.zeros(m)
        idx = rng.choice(m, size=k, replace=False)
        beta[idx] = rng.normal(size=k)
        g = X @ beta
        beta *= np.sqrt(h2 / g.var())
        y = X @ beta + rng.normal(size=n_people) * np.sqrt(1 - h2)
        gw = gwas_from_genotypes(G, y, standardize=True)
        out.append((beta / y.std(), gw["BETA"].to_numpy(), gw["SE"].to_numpy()))
    return R, out


def mismatch_ld(seed: int = 777) -> tuple[np.ndarray, np.ndarray]:
    """LD of a GWAS sample (5,000 people) and of a reference panel (1,000 others), one msprime population."""
    sim = simulate_ld_blocks(1, 600, n_samples=6000, seed=seed, return_genotypes=True)[0]
    G = sim.G.astype(np.float64)
    keep = (G[:5000].std(0) > 0) & (G[5000:].std(0) > 0)
    return ld_from_genotypes(G[:5000, keep]), ld_from_genotypes(G[5000:, keep])


def rss_setting(R_true: np.ndarray, R_fit: dict[str, tuple[np.ndarray, float]], *, n: int, p_causal: float,
                h2: tuple[float, float], reps: int, seed: int, Ls: tuple[int, ...], susie_R: str | None) -> dict:
    """RSS replicates drawn with R_true; ours fitted with each LD of ``R_fit`` (name -> (R, ld_lambda))."""
    rows, B, S = [], [], []
    for beta, b, s in rss_replicates(R_true, n=n, p_causal=p_causal, h2=h2, reps=reps, seed=seed):
        row: dict = {"beta": beta, "ours": {}, "ours_seconds": {}}
        for name, (Rf, lam) in R_fit.items():
            row["ours"][name], row["ours_seconds"][name] = _ours(b, s, Rf, n, lam)
        rows.append(row)
        B.append(b)
        S.append(s)
    susie = None
    if susie_R is not None:
        Rs = R_fit[susie_R][0]
        susie = {L: run_susie_rss(Rs, np.array(B), np.array(S), n, L) for L in Ls}
    return score(rows, susie)


def genotype_setting(n_people: int, *, h2: float, reps: int, seed: int, have_r: bool) -> dict:
    """In-sample LD from msprime genotypes of ``n_people``; 1-5 causal variants; marginal OLS regressions."""
    R, reps_ = genotype_replicates(n_people, h2=h2, reps=reps, seed=seed)
    rows, B, S = [], [], []
    for truth, b, s in reps_:
        row: dict = {"beta": truth, "ours": {}, "ours_seconds": {}}
        row["ours"]["in-sample LD"], row["ours_seconds"]["in-sample LD"] = _ours(b, s, R, n_people)
        rows.append(row)
        B.append(b)
        S.append(s)
    susie = {10: run_susie_rss(R, np.array(B), np.array(S), n_people, 10)} if have_r else None
    return score(rows, susie)


def genome_run(seed: int = 5) -> dict:
    """1,000,000 variants (the real block and msprime blocks, tiled), sparse signal, two workers."""
    blocks = simulate_ld_blocks(8, 600, n_samples=2000, seed=seed)
    if REAL_LD.is_file():
        blocks.append(read_ld(REAL_LD).R)
    samplers = [RSSSampler(R) for R in blocks]
    rng = np.random.default_rng(seed)
    Rs, bs, ss = [], [], []
    total = 0
    i = 0
    while total < 1_000_000:
        k = i % len(blocks)
        R = blocks[k]
        m = R.shape[0]
        beta = np.zeros(m)
        if rng.random() < 0.2:  # one block in five carries 1-3 causal variants
            beta = simulate_effects(np.full(m, 0.25), p_causal=rng.integers(1, 4) / m, h2=0.005, R=R,
                                    seed=int(rng.integers(2**31)))
        b, s = samplers[k].sample(beta, 300_000, seed=int(rng.integers(2**31)))
        Rs.append(R)
        bs.append(b)
        ss.append(s)
        total += m
        i += 1
    t0 = time.perf_counter()
    out = bm.shrink.shrink(bs, ss, Rs, method="susie", n=300_000, workers=2)
    secs = time.perf_counter() - t0
    return {"n_variants": len(out), "n_blocks": len(Rs), "workers": 2, "seconds": secs,
            "load_average": os.getloadavg()[0], "cores": os.cpu_count()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 replicates per setting")
    parser.add_argument("--genome", action="store_true", help="only the 1,000,000-variant timing (kept with the rest)")
    parser.add_argument("--tables-only", action="store_true", help="rebuild shrink_susie.md from its JSON")
    args = parser.parse_args()
    if args.tables_only:
        for name, text in tables(OUT).items():
            write_text(text, OUT / name)
        return 0
    if args.genome:
        out = json.loads((OUT / "shrink_susie.json").read_text())
        out["genome"] = genome_run()
        write_json(out, OUT / "shrink_susie.json")
        write_text(render(out), OUT / "shrink_susie.md")
        print(json.dumps(out["genome"], indent=2))
        return 0
    if not REAL_LD.is_file():
        print(f"real LD block not found at {REAL_LD}; set BAYESMAGES_SHARED", file=sys.stderr)
        return 2
    version = susie_version()
    if version is None:
        print("Rscript with susieR not found: the SuSiE-RSS columns are skipped (install R and susieR, e.g. "
              "Debian's r-cran-susier, to compare)", file=sys.stderr)
    started = time.perf_counter()
    reps = 3 if args.quick else 20
    small = 3 if args.quick else 10
    R_real = read_ld(REAL_LD).R
    R_ms = simulate_ld_blocks(1, 600, n_samples=2500, seed=424_242)[0]
    real = {"ours": (R_real, 0.0)}
    results = []

    def add(ld: str, setting: str, res: dict) -> None:
        results.append({"ld": ld, "setting": setting, **res})
        print(f"{ld} | {setting}: " + ", ".join(f"{k} {v.get('rmse_e3', 0):.3f}" for k, v in res.items()
                                                 if isinstance(v, dict)), flush=True)

    rv = "ours" if version else None
    for n in (300_000, 50_000, 1_000_000):
        add("UKB chr22 (real)", f"sparse 1%, n = {n:,}",
            rss_setting(R_real, real, n=n, p_causal=0.01, h2=(0.005, 0.01), reps=reps if n == 300_000 else small,
                        seed=n, Ls=(10,), susie_R=rv))
    for pc in (0.05, 0.2):
        add("UKB chr22 (real)", f"polygenic {pc:.0%}, n = 300,000",
            rss_setting(R_real, real, n=300_000, p_causal=pc, h2=(0.02, 0.05), reps=small, seed=int(pc * 1e3),
                        Ls=(10, 30), susie_R=rv))
    ms = {"ours": (R_ms, 0.0)}
    add("msprime", "sparse 1%, n = 300,000", rss_setting(R_ms, ms, n=300_000, p_causal=0.01, h2=(0.005, 0.01),
                                                       reps=small, seed=11, Ls=(10,), susie_R=rv))
    add("msprime", "polygenic 5%, n = 300,000", rss_setting(R_ms, ms, n=300_000, p_causal=0.05, h2=(0.02, 0.05),
                                                          reps=small, seed=12, Ls=(10, 30), susie_R=rv))
    for n_people in (574, 5000):
        for h2 in (0.05, 0.2):
            add(f"msprime genotypes, in-sample LD (n = {n_people:,})", f"1-5 causal, h2 = {h2}",
                genotype_setting(n_people, h2=h2, reps=small, seed=n_people + int(h2 * 100), have_r=bool(version)))
    # LD mismatch: one msprime population, GWAS sample LD vs a reference panel of other people.
    R_gwas, R_ref = mismatch_ld()
    fits = {"ours, in-sample LD": (R_gwas, 0.0), "ours, panel LD": (R_ref, 0.0),
            "ours, panel LD, ld_lambda 0.1": (R_ref, 0.1)}
    add("msprime, LD mismatch (GWAS 5,000 vs panel 1,000)", "sparse 1%, n = 300,000",
        rss_setting(R_gwas, fits, n=300_000, p_causal=0.01, h2=(0.005, 0.01), reps=small, seed=13, Ls=(10,),
                    susie_R="ours, panel LD" if version else None))
    out = {"susieR": version, "replicates": reps, "replicates_other": small, "results": results,
           "seconds_total": time.perf_counter() - started, "quick": args.quick,
           "date_utc": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}", "load_average_end": os.getloadavg()[0]}
    old = OUT / "shrink_susie.json"
    if old.is_file() and "genome" in json.loads(old.read_text()):
        out["genome"] = json.loads(old.read_text())["genome"]
    write_json(out, OUT / "shrink_susie.json")
    write_text(render(out), OUT / "shrink_susie.md")
    print(render(out))
    return 0


def _f(x: float | None, d: int = 3) -> str:
    return "–" if x is None else f"{x:.{d}f}"


def render(out: dict) -> str:
    """Markdown tables of the benchmark (from its JSON)."""
    sv = out.get("susieR")
    lines = [f"# susie_rss (method=\"susie\") vs R susieR {sv or '(not installed: skipped)'}, same run "
             f"({out['date_utc']} UTC)", "",
             f"{out['replicates']} replicates in the main setting (real block, sparse, n = 300,000), "
             f"{out['replicates_other']} in the others; the same replicates for every method. RMSE in 1e-3 "
             "(standardised effects); AP of |mean| / AP of PIP; 90% coverage over all / causal / null "
             "variants, and over causal variants with PIP >= 0.5 ('detected'); median seconds per block, one "
             "thread.", "",
             "| LD | setting | method | RMSE | RMSE / SuSiE L=10 | AP | AP (PIP) | coverage all / causal / null "
             "| coverage detected causal | s per block | time / SuSiE L=10 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["results"]:
        base = r.get("susie_L10")
        for key, v in r.items():
            if not isinstance(v, dict):
                continue
            ratio = _f(v["rmse_e3"] / base["rmse_e3"], 2) if base else "–"
            tratio = _f(v["seconds_per_block"] / base["seconds_per_block"], 2) \
                if base and "seconds_per_block" in v else "–"
            cov = (f"{v['coverage90']:.3f} / {v['coverage90_causal']:.3f} / {v['coverage90_null']:.3f}"
                   if "coverage90" in v else "–")
            det = f"{_f(v.get('coverage90_detected'))} (of {v['n_detected']})" if "n_detected" in v else "–"
            name = key.replace("susie_L", "SuSiE-RSS L=") if key.startswith("susie_L") else key
            lines.append(f"| {r['ld']} | {r['setting']} | {name} | {v['rmse_e3']:.3f} | {ratio} | "
                         f"{_f(v.get('ap'))} | {_f(v.get('ap_pip'))} | {cov} | {det} | "
                         f"{_f(v.get('seconds_per_block'), 4)} | {tratio} |")
    g = out.get("genome")
    if g:
        lines += ["", f"Genome scale (`python bench/shrink_susie.py --genome`): {g['n_variants']:,} variants in "
                  f"{g['n_blocks']:,} blocks, {g['workers']} worker processes, {g['seconds']:.1f} s "
                  f"(load average {g['load_average']:.1f} on {g['cores']} cores)."]
    lines += ["", f"Total {out['seconds_total']:.0f} s. The machine was shared (load average at the end "
              f"{out['load_average_end']:.1f}), so times are noisy; ratios compare methods in the same run."]
    return "\n".join(lines) + "\n"


def tables(results: Path) -> dict[str, str]:
    """The Markdown of this benchmark, rebuilt from ``shrink_susie.json`` in ``results`` (nothing runs)."""
    return {"shrink_susie.md": render(json.loads((results / "shrink_susie.json").read_text()))}


if __name__ == "__main__":
    sys.exit(main())
