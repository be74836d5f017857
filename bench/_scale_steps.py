"""Speedup of the gene-test and clustering steps with 1 and 2 workers (issue 17), importable by bench/scale.py.

Data. ``make_run_inputs`` writes a ``bayesmages run`` input folder: ``n_variants`` simulated variants in
blocks of ``block_size`` (default 600) whose LD is drawn from a library of ``library`` msprime blocks
(as bench/genome.py does: the per-block work is the same for a repeated matrix, nothing is cached across
blocks by identity of the file), genes of 15-80 variants tiling each block, ``traits`` traits whose causal
genes (8%) have correlated effects, per-trait h2 = 0.1, GWAS n = 100,000, summary statistics following RSS.
Every block is its own ``.npy`` file, as a user's LD folder would be.

Timings. ``time_run`` runs ``bayesmages.pipeline.run`` once per worker count (``force=True``, no figures),
and reports per step the wall seconds (from the step records), and per run the CPU seconds of this process
and of its worker processes (the pool is stopped after each run so that its CPU time is counted in
``RUSAGE_CHILDREN``), together with the load averages before and after: the machine is shared, and a speedup
is only meaningful next to the CPU time that the other users took. Outputs of the runs are compared bit for
bit.

Usage: ``python bench/_scale_steps.py [--variants 100000] [--traits 4] [--workers 1 2]`` prints a JSON
record (and writes it to ``--json`` when given).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_GWAS = 100_000
H2 = 0.1
P_CAUSAL_GENE = 0.08
P_CAUSAL_IN_GENE = 0.2


def make_run_inputs(folder: Path, n_variants: int = 100_000, traits: int = 4, block_size: int = 600,
                    library: int = 12, seed: int = 0) -> dict[str, Any]:
    """Write GWAS files (``T1.csv`` ...), LD blocks (``ld/block00000.npy`` ...) and ``genes.csv`` into ``folder``."""
    from bayesmages.simulate import RSSSampler, simulate_ld_blocks

    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n_variants / block_size))
    lib = simulate_ld_blocks(min(library, n_blocks), block_size, n_samples=1000, seed=seed)
    samplers = [RSSSampler(R) for R in lib]
    which = rng.integers(len(lib), size=n_blocks)
    sizes = [lib[w].shape[0] for w in which]
    m = int(sum(sizes))
    genes, betas, start = [], np.zeros((traits, m)), 0
    for size in sizes:
        pos = start
        while pos < start + size - 15:
            end = min(pos + int(rng.integers(15, 81)), start + size) - 1
            genes.append((f"G{len(genes) + 1}", 1, pos * 100 + 1, end * 100 + 1))
            if rng.random() < P_CAUSAL_GENE:
                idx = np.arange(pos, end + 1)
                hit = idx[rng.random(idx.size) < P_CAUSAL_IN_GENE]
                active = rng.random(traits) < 0.5
                active[rng.integers(traits)] = True
                shared = rng.normal(size=hit.size)
                eff = 0.7 * shared + np.sqrt(1 - 0.49) * rng.normal(size=(traits, hit.size))
                betas[:, hit] = eff * active[:, None]
            pos = end + 1 + int(rng.integers(0, 31))
        start += size
    betas *= np.sqrt(H2 / np.maximum((betas**2).sum(1, keepdims=True), 1e-300))
    (folder / "ld").mkdir(parents=True, exist_ok=True)
    per_trait: list[dict[str, list[np.ndarray]]] = [{"BETA": [], "SE": []} for _ in range(traits)]
    offset = 0
    for b, w in enumerate(which):
        np.save(folder / "ld" / f"block{b:05d}.npy", lib[w])
        size = lib[w].shape[0]
        for t in range(traits):
            bh, s = samplers[w].sample(betas[t, offset:offset + size], N_GWAS, seed=int(rng.integers(2**31)))
            per_trait[t]["BETA"].append(bh)
            per_trait[t]["SE"].append(s)
        offset += size
    base = pd.DataFrame({"CHR": 1, "SNP": [f"v{i}" for i in range(m)], "POS": np.arange(m) * 100 + 1,
                         "A1": "A", "A2": "G"})
    paths = []
    for t in range(traits):
        gw = base.assign(BETA=np.concatenate(per_trait[t]["BETA"]), SE=np.concatenate(per_trait[t]["SE"]),
                         N=N_GWAS)
        paths.append(folder / f"T{t + 1}.csv")
        gw.to_csv(paths[-1], index=False)
    pd.DataFrame(genes, columns=["GENE", "CHR", "START", "END"]).to_csv(folder / "genes.csv", index=False)
    return {"gwas": paths, "ld": folder / "ld", "genes": folder / "genes.csv", "n_variants": m,
            "n_blocks": n_blocks, "n_genes": len(genes), "traits": traits}


def _cpu() -> dict[str, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"self": me.ru_utime + me.ru_stime, "children": kids.ru_utime + kids.ru_stime}


def _outputs(out: Path) -> dict[str, bytes]:
    """The result tables of a run, by relative path (for a bit-for-bit comparison)."""
    keep = ("variants.csv", "clusters.csv", "elbo.csv", "gene_enrichment.csv", "shrinkage.csv")
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.csv")) if p.name in keep}


def time_run(inputs: dict[str, Any], workers: list[int], seed: int = 0, scheduler: Any = None) -> dict[str, Any]:
    """Run the pipeline once per worker count (and once on ``scheduler`` when given); timings and identity."""
    import bayesmages as bm
    from bayesmages.parallel import shutdown_pools

    runs, first = [], None
    modes: list[tuple[str, dict[str, Any]]] = [(f"workers={w}", {"workers": w}) for w in workers]
    if scheduler is not None:
        modes.append(("dask", {"scheduler": scheduler}))
    with tempfile.TemporaryDirectory() as tmp:
        for label, kw in modes:
            out = Path(tmp) / label.replace("=", "")
            load0, cpu0, t0 = os.getloadavg(), _cpu(), time.perf_counter()
            res = bm.pipeline.run(inputs["gwas"], inputs["ld"], inputs["genes"], out, seed=seed, figures=False,
                                  force=True, **kw)
            wall = time.perf_counter() - t0
            shutdown_pools()  # reap the kept workers so that their CPU time lands in RUSAGE_CHILDREN
            cpu1 = _cpu()
            steps: dict[str, float] = {}
            for rec in res.steps:
                kind = rec.name.split("_")[0]
                steps[kind] = round(steps.get(kind, 0.0) + rec.seconds, 2)
            files = _outputs(out)
            if first is None:
                first = files
            same = files == first
            runs.append({"mode": label, "wall_s": round(wall, 2), "steps_s": steps,
                         "cpu_s": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1},
                         "load_before": [round(x, 2) for x in load0],
                         "load_after": [round(x, 2) for x in os.getloadavg()],
                         "identical_to_first": same})
            print(json.dumps(runs[-1]), flush=True)
    return {"settings": {k: v for k, v in inputs.items() if k in ("n_variants", "n_blocks", "n_genes", "traits")},
            "runs": runs, "speedup": _speedup(runs)}


def _speedup(runs: list[dict[str, Any]]) -> dict[str, float]:
    by = {r["mode"]: r for r in runs}
    one, two = by.get("workers=1"), by.get("workers=2")
    if one is None or two is None:
        return {}
    out = {k: round(one["steps_s"][k] / two["steps_s"][k], 2) for k in one["steps_s"] if two["steps_s"].get(k)}
    out["total"] = round(one["wall_s"] / two["wall_s"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, default=100_000)
    ap.add_argument("--traits", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dask", action="store_true", help="also run on a 2-worker dask LocalCluster")
    ap.add_argument("--data", type=Path, help="input folder to reuse (made when missing)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    folder = args.data or Path(tempfile.mkdtemp(prefix="bm_scale_"))
    marker = folder / "inputs.json"
    if marker.is_file():
        inputs = json.loads(marker.read_text())
    else:
        inputs = make_run_inputs(folder, args.variants, args.traits, seed=args.seed)
        marker.write_text(json.dumps(inputs, default=str))
    inputs["gwas"] = [Path(p) for p in inputs["gwas"]]
    if args.dask:
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                Client(cl) as client:
            result = time_run(inputs, args.workers, args.seed, scheduler=client)
    else:
        result = time_run(inputs, args.workers, args.seed)
    print(json.dumps(result["speedup"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
