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
import contextlib
import json
import os
import resource
import tempfile
import time
from collections.abc import Iterator
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
    genes: list[tuple[str, int, int, int]] = []
    betas, start = np.zeros((traits, m)), 0
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


@contextlib.contextmanager
def _mode_scheduler(label: str) -> Iterator[Any]:
    """None for local modes; for ``"dask"`` a client of a 2-worker LocalCluster started for this mode only.

    Started per mode, not for the whole benchmark: the scheduler runs in this process and its workers
    heartbeat, which took CPU from the local-worker timings when the cluster was alive throughout.
    """
    if label != "dask":
        yield None
        return
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl, \
            Client(cl) as client:
        yield client


def _cpu() -> dict[str, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"self": me.ru_utime + me.ru_stime, "children": kids.ru_utime + kids.ru_stime}


def _outputs(out: Path) -> dict[str, bytes]:
    """The result tables of a run, by relative path (for a bit-for-bit comparison)."""
    keep = ("variants.csv", "clusters.csv", "elbo.csv", "gene_enrichment.csv", "shrinkage.csv")
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.csv")) if p.name in keep}


def time_run(inputs: dict[str, Any], workers: list[int], seed: int = 0, dask: bool = False) -> dict[str, Any]:
    """Run the pipeline once per worker count (and once on a 2-worker Dask LocalCluster); timings and identity."""
    import bayesmages as bm
    from bayesmages.parallel import shutdown_pools

    runs, first = [], None
    modes: list[tuple[str, dict[str, Any]]] = [(f"workers={w}", {"workers": w}) for w in workers]
    if dask:
        modes.append(("dask", {}))
    with tempfile.TemporaryDirectory() as tmp:
        for label, kw in modes:
            out = Path(tmp) / label.replace("=", "")
            with _mode_scheduler(label) as sched:
                load0, cpu0, t0 = os.getloadavg(), _cpu(), time.perf_counter()
                res = bm.pipeline.run(inputs["gwas"], inputs["ld"], inputs["genes"], out, seed=seed, figures=False,
                                      force=True, scheduler=sched, **kw)
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
                         "step_walls": res.metadata.get("step_walls"),
                         "cpu_s": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1},
                         "load_before": [round(x, 2) for x in load0],
                         "load_after": [round(x, 2) for x in os.getloadavg()],
                         "identical_to_first": same})
            print(json.dumps(runs[-1]), flush=True)
    return {"settings": {k: v for k, v in inputs.items() if k in ("n_variants", "n_blocks", "n_genes", "traits")},
            "runs": runs, "speedup": _speedup(runs)}


def _worker_cpu(workers: int) -> float:
    """CPU seconds used so far by the kept local worker processes of ``map_units`` (0 without a pool)."""
    import psutil  # type: ignore[import-untyped]

    from bayesmages import parallel

    pool = parallel._POOLS.get(workers)
    total = 0.0
    for proc in (getattr(pool, "_processes", None) or {}).values():
        t = psutil.Process(proc.pid).cpu_times()
        total += t.user + t.system
    return total


def _phase(fn: Any, workers: int) -> tuple[Any, dict[str, Any]]:
    """Run ``fn()``; its result and wall seconds, CPU seconds of this process and of the local workers, loads."""
    load0, w0, c0, t0 = os.getloadavg(), _worker_cpu(workers), time.process_time(), time.perf_counter()
    out = fn()
    wall, cpu_self, cpu_workers = time.perf_counter() - t0, time.process_time() - c0, _worker_cpu(workers) - w0
    return out, {"wall_s": round(wall, 2), "cpu_self_s": round(cpu_self, 2), "cpu_workers_s": round(cpu_workers, 2),
                 "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in os.getloadavg()]}


def time_steps(inputs: dict[str, Any], workers: list[int], seed: int = 0, dask: bool = False) -> dict[str, Any]:
    """Time the clustering and gene-test steps of ``run`` alone, once per entry of ``workers`` (repeats allowed).

    The shrinkage is computed once (serially) and shared. Per mode: the pending clusterings of a run
    (:func:`bayesmages.pipeline.steps.cluster_steps`: one fit per trait and the multi-trait fit) and the gene
    tests of every trait (:func:`bayesmages.genes.enrichment.test`, the LD by reference for local workers),
    each with wall time, CPU time of this process and of the worker processes, and load averages. The
    worker pool is started before the timing (its start-up is paid once per ``run``, not per step).
    """
    import bayesmages as bm
    from bayesmages.io.ldrefs import spill_blocks
    from bayesmages.parallel import map_units, shutdown_pools
    from bayesmages.pipeline import steps
    from bayesmages.pipeline.inputs import load_inputs

    data = load_inputs(inputs["gwas"], inputs["ld"], inputs["genes"])
    shrunk = steps.shrink_traits(data, data.traits, model="default", workers=1, scheduler=None, progress=False)
    shrinkage = pd.concat([shrunk[t] for t in data.traits], ignore_index=True)
    fits = steps.cluster_fits(shrinkage, data.traits, {t: t for t in data.traits}, seed=seed, truncation=20,
                              restarts=5, select="quantile", quantile=0.9)
    units = {name: kw for name, (_, kw) in fits.items()}

    def enrich(w: int, sched: Any) -> list[pd.DataFrame]:
        with tempfile.TemporaryDirectory(prefix="bench-ld-") as tmp:
            # as `run` does: with workers, the LD is written once (content-named .npy files) for every trait
            ld = spill_blocks(data.blocks, tmp) if w > 1 or sched is not None else data.blocks
            return [bm.genes.enrichment.test(shrunk[t]["beta_shrunk"].to_numpy(), ld, data.genes,
                                             beta_hat=shrunk[t]["beta_hat"].to_numpy(), se=shrunk[t]["se"].to_numpy(),
                                             variants=data.variants, workers=w, scheduler=sched)
                    for t in data.traits]

    modes: list[tuple[str, int]] = [(f"workers={w}", w) for w in workers] + ([("dask", 1)] if dask else [])
    runs, first = [], None
    for label, w in modes:
        if w > 1:
            map_units(abs, [-1, -2], workers=w)  # start the pool outside the timing
        with _mode_scheduler(label) as sched:
            clustered, cl = _phase(lambda w=w, s=sched: steps.cluster_steps(units, workers=w, scheduler=s), w)
            genes, en = _phase(lambda w=w, s=sched: enrich(w, s), w)
        result = ({n: clustered[n]["files"] for n in sorted(clustered)}, genes)
        if first is None:
            first = result
        same = {"clusterings": result[0] == first[0],
                "gene_tests": all(a.equals(b) for a, b in zip(result[1], first[1]))}
        runs.append({"mode": label, "cluster": cl, "enrich": en, "identical_to_first": same})
        print(json.dumps(runs[-1]), flush=True)
    shutdown_pools()
    return {"settings": {k: v for k, v in inputs.items() if k in ("n_variants", "n_blocks", "n_genes", "traits")},
            "steps_runs": runs, "steps_speedup": _step_speedup(runs)}


def _step_speedup(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per step, the best wall time of each mode, and the 1 -> 2 worker ratio of those."""
    best: dict[str, dict[str, float]] = {}
    for r in runs:
        for step in ("cluster", "enrich"):
            best.setdefault(step, {})
            best[step][r["mode"]] = min(best[step].get(r["mode"], np.inf), r[step]["wall_s"])
    out: dict[str, Any] = {"best_wall_s": best}
    for step, b in best.items():
        if "workers=1" in b and "workers=2" in b:
            out[f"{step}_1_to_2"] = round(b["workers=1"] / b["workers=2"], 2)
        if "dask" in b and "workers=2" in b:
            out[f"{step}_dask_over_2_workers"] = round(b["dask"] / b["workers=2"], 2)
    return out


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
    ap.add_argument("--steps-only", action="store_true",
                    help="time the clustering and gene-test steps alone (not the whole run)")
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
    timer = time_steps if args.steps_only else time_run
    result = timer(inputs, args.workers, args.seed, dask=args.dask)
    print(json.dumps(result.get("speedup", result.get("steps_speedup"))))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
