"""Benchmark of bayesmages.simulate.

1. RSS summary statistics: 10 blocks x 1,000 variants x 3 traits (target: a few seconds), with
   :class:`RSSSampler` (one eigen-decomposition per block, shared by traits and replicates) against a
   baseline measured in the same run: ``numpy.random.Generator.multivariate_normal(R beta, R / n)`` per
   trait, which factorises R on every call (an SVD). Also 100 replicates per block and trait.
2. msprime: 5,000 diploid individuals x 2 Mb (target: under a minute), including the LD matrix.
3. The demo-sized multi-trait simulation (5 blocks x 300 variants, 2 traits).

Usage: ``python bench/simulate.py [--quick] [--threads N]``; writes bench/results/simulate.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from bayesmages.simulate import (
    RSSSampler,
    ld_from_genotypes,
    partition_blocks,
    simulate_effects,
    simulate_genotypes,
    simulate_ld_blocks,
    simulate_multitrait,
)

RESULTS = Path(__file__).resolve().parent / "results"


CPU: dict[str, float] = {}


def _timed(fn, label=None):
    """Wall-clock seconds of ``fn()``; its process CPU seconds are kept in CPU[label]."""
    c = time.process_time()
    t = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    if label:
        CPU[label] = time.process_time() - c
    return out, wall


def bench_rss(n_blocks: int, m: int, n_traits: int, reps: int, seed: int = 0) -> dict:
    blocks, t_ld = _timed(lambda: simulate_ld_blocks(n_blocks, m, n_samples=2000, seed=seed), "ld")
    betas = [
        [simulate_effects(np.full(R.shape[0], 0.2), p_causal=0.01, h2=0.005, R=R, seed=seed + 10 * b + t)
         for t in range(n_traits)]
        for b, R in enumerate(blocks)
    ]
    n = 300_000

    def ours():
        for b, R in enumerate(blocks):
            sampler = RSSSampler(R)
            for t in range(n_traits):
                sampler.sample(betas[b][t], n, seed=b * n_traits + t)

    def baseline():
        for b, R in enumerate(blocks):
            for t in range(n_traits):
                rng = np.random.default_rng(b * n_traits + t)
                rng.multivariate_normal(R @ betas[b][t], R / n)

    def ours_reps():
        for b, R in enumerate(blocks):
            sampler = RSSSampler(R)
            for t in range(n_traits):
                sampler.sample(betas[b][t], n, seed=b * n_traits + t, n_replicates=reps)

    def baseline_reps():
        for b, R in enumerate(blocks):
            for t in range(n_traits):
                rng = np.random.default_rng(b * n_traits + t)
                rng.multivariate_normal(R @ betas[b][t], R / n, size=reps)

    _, t_ours = _timed(ours, "rss")
    _, t_base = _timed(baseline, "base")
    _, t_ours_r = _timed(ours_reps, "rss_r")
    _, t_base_r = _timed(baseline_reps, "base_r")
    return {
        "n_blocks": n_blocks, "variants_per_block": m, "n_traits": n_traits, "replicates": reps,
        "msprime_ld_blocks_s": t_ld, "rss_one_draw_s": t_ours, "baseline_one_draw_s": t_base,
        "speedup_one_draw": t_base / t_ours, "rss_replicates_s": t_ours_r, "baseline_replicates_s": t_base_r,
        "speedup_replicates": t_base_r / t_ours_r,
    }


def bench_msprime(n_samples: int, length: float, seed: int = 1) -> dict:
    sim, t_sim = _timed(lambda: simulate_genotypes(n_samples, length, seed=seed), "msp")
    R, t_ld = _timed(lambda: ld_from_genotypes(sim.G), "msp_ld")
    blocks, t_part = _timed(lambda: partition_blocks(R, min_size=100, max_size=600), "partition")
    sizes = [b.stop - b.start for b in blocks]
    return {"n_samples": n_samples, "sequence_length": length, "n_variants": sim.n_variants,
            "simulate_genotypes_s": t_sim, "ld_from_genotypes_s": t_ld, "total_s": t_sim + t_ld,
            "partition_blocks_s": t_part, "block_sizes": sizes}


def bench_demo(seed: int = 1) -> dict:
    sim, t = _timed(lambda: simulate_multitrait(2, 5, variants_per_block=300, seed=seed), "demo")
    return {"n_traits": 2, "n_blocks": 5, "n_variants": sim.params["n_variants"], "n_genes": sim.params["n_genes"],
            "simulate_multitrait_s": t}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads (threadpoolctl)")
    parser.add_argument("--tables-only", action="store_true", help="rebuild simulate.md from simulate.json")
    args = parser.parse_args()
    if args.tables_only:
        for md_name, text in tables(RESULTS).items():
            (RESULTS / md_name).write_text(text)
        return
    name = "simulate.quick" if args.quick else "simulate"
    limiter = None
    if args.threads:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(args.threads)
    if args.quick:
        rss = bench_rss(2, 200, 3, 20)
        msp = bench_msprime(500, 200_000)
    else:
        rss = bench_rss(10, 1000, 3, 100)
        msp = bench_msprime(5000, 2_000_000)
    demo = bench_demo()
    if limiter is not None:
        limiter.unregister()
    result = {"quick": args.quick, "threads": args.threads, "python": platform.python_version(),
              "numpy": np.__version__, "rss": rss, "msprime": msp, "demo": demo, "cpu_s": dict(CPU)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = render(result)
    (RESULTS / f"{name}.md").write_text(md)
    print(md)


def render(result: dict) -> str:
    """simulate.md from the content of simulate.json."""
    rss, msp, demo, CPU = result["rss"], result["msprime"], result["demo"], result["cpu_s"]
    md = [
        f"# bench/simulate.py{' --quick' if result['quick'] else ''}",
        "",
        "| task | size | wall (s) | CPU (s) | baseline wall (s) | baseline CPU (s) | speed-up (wall) |",
        "|---|---|---|---|---|---|---|",
        f"| msprime LD blocks | {rss['n_blocks']} x {rss['variants_per_block']} variants, 2,000 samples "
        f"| {rss['msprime_ld_blocks_s']:.2f} | {CPU['ld']:.2f} | | | |",
        f"| RSS, one draw per trait | {rss['n_blocks']} blocks x {rss['variants_per_block']} x {rss['n_traits']} "
        f"traits | {rss['rss_one_draw_s']:.2f} | {CPU['rss']:.2f} | {rss['baseline_one_draw_s']:.2f} "
        f"| {CPU['base']:.2f} | {rss['speedup_one_draw']:.1f}x |",
        f"| RSS, {rss['replicates']} replicates per trait | same | {rss['rss_replicates_s']:.2f} | {CPU['rss_r']:.2f} "
        f"| {rss['baseline_replicates_s']:.2f} | {CPU['base_r']:.2f} | {rss['speedup_replicates']:.1f}x |",
        f"| msprime genotypes + LD | {msp['n_samples']} individuals x {msp['sequence_length'] / 1e6:g} Mb "
        f"({msp['n_variants']} variants) | {msp['total_s']:.2f} | {CPU['msp'] + CPU['msp_ld']:.2f} | | | |",
        f"| partition_blocks (sizes 100-600) | that region's {msp['n_variants']} x {msp['n_variants']} LD "
        f"-> {len(msp['block_sizes'])} blocks | {msp['partition_blocks_s']:.2f} | {CPU['partition']:.2f} | | | |",
        f"| simulate_multitrait (demo size) | 5 blocks x 300 variants, 2 traits | "
        f"{demo['simulate_multitrait_s']:.2f} | {CPU['demo']:.2f} | | | |",
        "",
        "Baseline: `numpy.random.Generator.multivariate_normal(R @ beta, R / n)` per trait (an SVD of R per call).",
        f"BLAS threads: {result['threads'] or 'default'}; machine shared with other jobs, timings are noisy.",
        "",
    ]
    return "\n".join(md)


def tables(results: Path) -> dict[str, str]:
    """The Markdown files of this benchmark, rebuilt from its simulate.jsonON in ``results`` (nothing runs)."""
    return {"simulate.md": render(json.loads((results / "simulate.json").read_text()))}


if __name__ == "__main__":
    main()
