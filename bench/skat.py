"""SKAT family benchmark: speed, type-I error and power.

(a) speed at n = 10,000 with 200 genes x 30 rare variants: seconds per gene for SKAT and SKAT-O
    (one null fit, then ``bm.skat.test`` per gene, QC included), against R SKAT 2.2.5's
    0.029 and 0.057 s/gene on this kind of machine (R is not installed here, so the R numbers are
    the issue's anchors, not measured in this run);
(b) type-I error at alpha 1e-2 and 1e-3 for SKAT, burden, SKAT-O and ecSKAT, continuous and binary,
    with the binomial 95 % interval of the rejection count;
(c) power against SKAT Beta(1, 25) and burden in the ecSKAT paper's settings (sparse mixed-sign
    effects; a misspecified gene x environment interaction).

Run ``python bench/skat.py [--quick]``; writes bench/results/skat.json and skat.md. BLAS runs
single-threaded (set OPENBLAS_NUM_THREADS etc. to override): on a shared, oversubscribed machine
multi-threaded BLAS on these thin (n x 30) products was measured 200x slower than one thread.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import bayesmages as bm  # noqa: E402
from bayesmages.io import write_json, write_text  # noqa: E402
from bayesmages.parallel import map_units  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
R_SECONDS = {"skat": 0.029, "skat-o": 0.057}


# ----------------------------------------------------------------------------- (a) speed
def bench_speed(n_genes: int, n_genes_skato: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n, p = 10_000, 30
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n), rng.normal(size=(n, 3))])
    y = X @ [0.3, 0.2, 0.1, 0.0, -0.1] + rng.normal(size=n)
    maf = rng.uniform(0.001, 0.02, size=(n_genes, p))
    genes = [rng.binomial(2, maf[g], size=(n, p)).astype(float) for g in range(n_genes)]
    t0 = time.perf_counter()
    null = bm.skat.fit_null(y, X)
    t_null = time.perf_counter() - t0
    out = {"n": n, "variants_per_gene": p, "null_fit_seconds": t_null}
    for test, k in (("skat", n_genes), ("skat-o", n_genes_skato)):
        t0 = time.perf_counter()
        for G in genes[:k]:
            bm.skat.test(G, null, test=test)
        per = (time.perf_counter() - t0) / k
        out[test] = {"genes": k, "seconds_per_gene": per, "r_seconds_per_gene": R_SECONDS[test],
                     "ratio_to_r": per / R_SECONDS[test], "goal_ratio": 1 / 3}
    return out


# ----------------------------------------------------------------------------- (b) type-I error
def _null_design(trait: str, seed: int, n: int = 1000, p: int = 20):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    G = rng.binomial(2, rng.uniform(0.005, 0.05, p), size=(n, p)).astype(float)
    eta = (-0.8 if trait == "binary" else 0.0) + 0.5 * X[:, 0] + 0.3 * X[:, 1]
    return G, X, eta


def _typei_chunk(unit: tuple[str, str, int, int], design_seed: int) -> np.ndarray:
    test, trait, chunk_seed, reps = unit
    G, X, eta = _null_design(trait, design_seed)
    rng = np.random.default_rng(chunk_seed)
    pv = np.empty(reps)
    for i in range(reps):
        if trait == "binary":
            y = (rng.random(eta.size) < 1 / (1 + np.exp(-eta))).astype(float)
        else:
            y = eta + rng.normal(size=eta.size)
        if test == "ecskat":
            pv[i] = bm.skat.ecskat(G, y, X, trait=trait, seed=int(rng.integers(2**31))).p_value
        else:
            pv[i] = bm.skat.test(G, bm.skat.fit_null(y, X, trait=trait), test=test).p_value
    return pv


def bench_typei(reps: dict[str, int], workers: int, seed: int = 1) -> dict:
    out = {}
    for ti, trait in enumerate(("continuous", "binary")):
        for k_test, (test, total) in enumerate(reps.items()):
            # few large chunks: each worker process pays the package import once per chunk
            chunks = max(workers, min(16, total // 2000))
            sizes = np.full(chunks, total // chunks)
            sizes[: total - sizes.sum()] += 1
            seeds = np.random.SeedSequence([seed, k_test, ti]).generate_state(chunks)
            units = [(test, trait, int(s), int(k)) for s, k in zip(seeds, sizes)]
            t0 = time.perf_counter()
            res = map_units(functools.partial(_typei_chunk, design_seed=seed), units, workers=workers)
            p = np.concatenate(res)
            row = {"replicates": int(p.size), "seconds": time.perf_counter() - t0}
            for alpha in (1e-2, 1e-3):
                k = int((p < alpha).sum())
                lo, hi = stats.binom.ppf([0.025, 0.975], p.size, alpha)
                row[f"alpha_{alpha:g}"] = {"rejections": k, "rate": k / p.size, "binomial_95": [int(lo), int(hi)],
                                           "within": bool(lo <= k <= hi)}
            out[f"{test}/{trait}"] = row
            print(f"type-I {test:7s} {trait:10s} {row}", flush=True)
    return out


# ----------------------------------------------------------------------------- (c) power
def _power_rep(unit: tuple[str, int], n: int, p: int) -> dict[str, float]:
    setting, rep_seed = unit
    rng = np.random.default_rng(rep_seed)
    X = rng.normal(size=(n, 2))
    maf = rng.uniform(0.001, 0.02, p)
    G = rng.binomial(2, maf, size=(n, p)).astype(float)
    causal = rng.choice(p, size=max(2, p // 10), replace=False)  # sparse: 10 % causal
    beta = np.zeros(p)
    beta[causal] = 0.3 * np.abs(np.log10(maf[causal])) * rng.choice([-1.0, 1.0], causal.size)  # mixed signs
    if setting == "sparse_mixed":
        g = G @ beta
    else:  # misspecified interaction: the variants act only in exposed samples (E ~ Bernoulli(0.5))
        E = rng.integers(0, 2, n)
        g = (G @ np.abs(beta)) * E
    y = 0.3 * X[:, 0] + g + rng.normal(size=n)
    null = bm.skat.fit_null(y, X)
    return {
        "skat_b1_25": bm.skat.test(G, null, test="skat").p_value,
        "burden_b1_25": bm.skat.test(G, null, test="burden").p_value,
        "skat-o": bm.skat.test(G, null, test="skat-o").p_value,
        "ecskat": bm.skat.ecskat(G, y, X, seed=rep_seed).p_value,
    }


def bench_power(reps: int, workers: int, n: int = 2000, p: int = 30, seed: int = 2) -> dict:
    out = {}
    for si, setting in enumerate(("sparse_mixed", "interaction")):
        seeds = np.random.SeedSequence([seed, si]).generate_state(reps)
        t0 = time.perf_counter()
        rows = map_units(functools.partial(_power_rep, n=n, p=p), [(setting, int(s)) for s in seeds],
                         workers=workers)
        res = {"replicates": reps, "n": n, "variants": p, "seconds": time.perf_counter() - t0}
        for test in rows[0]:
            pv = np.array([r[test] for r in rows])
            res[test] = {f"power_{a:g}": float(np.mean(pv < a)) for a in (1e-2, 1e-3)}
        out[setting] = res
        print(f"power {setting}: {res}", flush=True)
    return out


def _markdown(res: dict) -> str:
    lines = ["# SKAT family benchmark", "", f"Mode: {res['mode']}; machine: {res['machine']}.", "",
             "## (a) Speed, n = 10,000, 30 rare variants per gene (null fit once)", "",
             "| test | genes | s/gene (ours) | s/gene (R SKAT 2.2.5 anchor) | ratio | goal |",
             "|---|---|---|---|---|---|"]
    for t in ("skat", "skat-o"):
        s = res["speed"][t]
        lines.append(f"| {t} | {s['genes']} | {s['seconds_per_gene']:.4f} | {s['r_seconds_per_gene']} | "
                     f"{s['ratio_to_r']:.2f} | <= 0.33 |")
    lines += ["", "## (b) Type-I error (binomial 95 % interval of the rejection count)", "",
              "| test / trait | replicates | alpha 1e-2: rejections [95 %] | alpha 1e-3: rejections [95 %] |",
              "|---|---|---|---|"]
    for key, row in res["type_i"].items():
        a, b = row["alpha_0.01"], row["alpha_0.001"]
        lines.append(f"| {key} | {row['replicates']} | {a['rejections']} [{a['binomial_95'][0]}, "
                     f"{a['binomial_95'][1]}]{'' if a['within'] else ' **out**'} | {b['rejections']} "
                     f"[{b['binomial_95'][0]}, {b['binomial_95'][1]}]{'' if b['within'] else ' **out**'} |")
    lines += ["", "## (c) Power at alpha 1e-2 (1e-3)", "", "| setting | SKAT b(1,25) | burden | SKAT-O | ecSKAT |",
              "|---|---|---|---|---|"]
    for setting, r in res["power"].items():
        cells = [f"{r[t]['power_0.01']:.2f} ({r[t]['power_0.001']:.2f})"
                 for t in ("skat_b1_25", "burden_b1_25", "skat-o", "ecskat")]
        lines.append(f"| {setting} (n={r['n']}, {r['variants']} variants, {r['replicates']} reps) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run for a smoke check")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if args.quick:
        speed = bench_speed(20, 3)
        reps = {"skat": 1000, "burden": 1000, "skat-o": 10, "ecskat": 100}
        power_reps = 6
    else:
        speed = bench_speed(200, 50)
        reps = {"skat": 20_000, "burden": 20_000, "skat-o": 200, "ecskat": 1_000}
        power_reps = 150
    print(json.dumps(speed, indent=1), flush=True)
    res = {"mode": "quick" if args.quick else "full", "machine": f"{platform.processor() or platform.machine()}, "
           f"{args.workers} worker(s), shared", "speed": speed, "type_i": bench_typei(reps, args.workers),
           "power": bench_power(power_reps, args.workers)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(res, RESULTS / "skat.json")
    write_text(_markdown(res), RESULTS / "skat.md")
    print(_markdown(res))


if __name__ == "__main__":
    main()
