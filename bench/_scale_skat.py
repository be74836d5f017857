"""SKAT sets at scale: ``run_sets`` on a simulated PLINK .bed with 1 and 2 local workers and a Dask LocalCluster.

The SKAT part of the scale story (issue 17): each worker reads its sets' genotype windows from the
.bed itself (the client never loads the matrix) and the null model is fitted once. Per-worker
memory is measured by the workers themselves (every unit reports its process's resident memory
and ``ru_maxrss``); each mode runs in a fresh Python process so that peaks are not inherited.

Importable (``bench/scale.py`` calls :func:`run` and renders with :func:`markdown`), or::

    OMP_NUM_THREADS=1 python bench/_scale_skat.py --samples 50000 --genes 500 --out bench/results/scale_skat.json

Timings on a shared machine are noisy: every mode records the load average before and after it, and
CPU seconds (inside the units, in the client, and of all worker processes including their start-up)
next to the wall time, so overhead can be told from contention. Starting the workers (a pool or a
LocalCluster, each worker importing torch) is timed apart from the run: it is paid once per session.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: modes: name -> (local workers, Dask LocalCluster workers)
MODES: dict[str, tuple[int, int]] = {"workers=1": (1, 0), "workers=2": (2, 0), "LocalCluster(2)": (1, 2)}


def make_bed(folder: Path, n_samples: int, n_genes: int, seed: int = 0) -> dict[str, Any]:
    """Write ``folder/geno.bed`` (rare variants, 1% missing), ``sets.json`` and ``pheno.npz``; return the layout.

    Genes have 5-60 variants (mean 32.5); the .bed is written one variant at a time with
    bed-reader's ``create_bed``, so writing never holds the matrix either.
    """
    from bed_reader import create_bed

    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 61, size=n_genes)
    m = int(sizes.sum())
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"v{j}" for j in range(m)]
    with create_bed(folder / "geno.bed", iid_count=n_samples, sid_count=m, properties={"sid": ids}) as out:
        for maf in rng.uniform(0.001, 0.03, size=m):
            g = rng.binomial(2, maf, size=n_samples).astype(np.int8)
            g[rng.random(n_samples) < 0.01] = -127  # missing
            out.write(g)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    sets = {f"GENE{k}": ids[bounds[k]:bounds[k + 1]] for k in range(n_genes)}
    (folder / "sets.json").write_text(json.dumps(sets))
    X = rng.normal(size=(n_samples, 3))
    y = X @ np.array([0.3, -0.2, 0.1]) + rng.normal(size=n_samples)
    np.savez(folder / "pheno.npz", y=y, X=X)
    return {"n_samples": n_samples, "n_genes": n_genes, "n_variants": m, "largest_gene": int(sizes.max()),
            "bed_mb": round((folder / "geno.bed").stat().st_size / 2**20, 1),
            "genotypes_in_memory_gb": round(n_samples * m * 8 / 2**30, 2)}


def _one_mode(folder: Path, mode: str) -> dict[str, Any]:
    """Run one mode in this (fresh) process; called through ``--one-mode``."""
    import resource

    import bayesmages as bm
    from bayesmages.parallel import shutdown_pools
    from bayesmages.skat.set_units import worker_memory

    local, dask_workers = MODES[mode]
    sets = json.loads((folder / "sets.json").read_text())
    ph = np.load(folder / "pheno.npz")
    geno = bm.io.open_genotypes(folder / "geno.bed")
    record: dict[str, Any] = {"mode": mode, "load_before": os.getloadavg()}
    client_before = worker_memory()
    cluster = client = None
    start_s = 0.0
    if dask_workers:
        from dask.distributed import Client, LocalCluster

        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=dask_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
        # importing bayesmages (torch) on every worker is a once-per-session cost: paid here, not in the timing
        client.run(importlib.import_module, "bayesmages.skat.set_units")
        start_s = time.perf_counter() - t0
    elif local > 1:
        from bayesmages.parallel import map_units

        t0 = time.perf_counter()
        map_units(abs, list(range(-4 * local, 0)), workers=local)  # start the pool (each worker imports torch)
        start_s = time.perf_counter() - t0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    table = bm.skat.run_sets(geno, None, sets, ph["y"], ph["X"], workers=local, scheduler=client)
    record["wall_s"] = time.perf_counter() - wall0
    record["client_cpu_s"] = time.process_time() - cpu0
    record["worker_start_s"] = start_s
    units = table.attrs["units"]
    if client is not None:
        client.close()
        cluster.close()  # type: ignore[union-attr]
    shutdown_pools()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    record["load_after"] = os.getloadavg()
    record["unit_cpu_s"] = sum(u["cpu_s"] for u in units)
    # the unit's own thread only: on Dask the worker process also runs its event loop and profiler threads
    record["unit_thread_cpu_s"] = sum(u.get("thread_cpu_s", np.nan) for u in units)
    # worker processes' whole CPU (imports and start-up included); 0 serially, where the client is the worker
    record["worker_process_cpu_s"] = children.ru_utime + children.ru_stime
    record["client_peak_rss_mb"] = worker_memory()["peak_rss_mb"]
    record["client_rss_before_mb"] = client_before["rss_mb"]
    workers: dict[int, dict[str, Any]] = {}
    for u in units:
        w = workers.setdefault(u["pid"], {"pid": u["pid"], "units": 0, "sets": 0, "cpu_s": 0.0,
                                          "rss_first_unit_start_mb": u["rss_start_mb"], "peak_rss_mb": 0.0,
                                          "widest_window_mb": 0.0})
        w["units"] += 1
        w["sets"] += u["n_sets"]
        w["cpu_s"] += u["cpu_s"]
        w["peak_rss_mb"] = max(w["peak_rss_mb"], u["peak_rss_mb"])
        w["widest_window_mb"] = max(w["widest_window_mb"], u["window_mb"])
    record["workers"] = list(workers.values())
    record["n_units"] = len(units)
    p = table["p_value"].to_numpy()
    record["p_value_sha256"] = hashlib.sha256(np.ascontiguousarray(p).tobytes()).hexdigest()
    record["n_sets"] = len(table)
    record["min_p"] = float(np.nanmin(p))
    return record


def run(folder: Path, n_samples: int, n_genes: int, modes: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
    """Write the data (unless already there) and time every mode, each in a fresh process."""
    layout_file = folder / "layout.json"
    want = {"n_samples": n_samples, "n_genes": n_genes, "seed": seed}
    if layout_file.exists() and json.loads(layout_file.read_text()).get("request") == want:
        layout = json.loads(layout_file.read_text())["layout"]
        write_s = None
    else:
        t0 = time.perf_counter()
        layout = make_bed(folder, n_samples, n_genes, seed)
        write_s = time.perf_counter() - t0
        layout_file.write_text(json.dumps({"request": want, "layout": layout}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    records = []
    for mode in modes or list(MODES):
        proc = subprocess.run([sys.executable, __file__, "--one-mode", mode, "--folder", str(folder)], env=env,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{mode} failed:\n{proc.stderr[-3000:]}")
        records.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = records[0]
    for r in records:
        r["identical_to_first"] = r["p_value_sha256"] == base["p_value_sha256"]
        r["speedup_wall"] = base["wall_s"] / r["wall_s"]
    return {"layout": layout, "bed_write_s": write_s, "cpu_count": os.cpu_count(), "modes": records}


def memory_model(runs: list[dict[str, Any]], n_target: int = 500_000, m_target: int | None = None
                 ) -> dict[str, Any]:
    """Fit each worker's peak memory to its widest window and extrapolate to ``n_target`` samples.

    Per run and mode, every worker reports ``peak_rss_mb`` and its resident memory when its first unit
    started (the interpreter, torch and bayesmages: the baseline). The increase is what the units
    cost: the null model (a few n-vectors) and the widest set's window with the test's working
    copies. It is fitted by least squares as ``b * n * m_widest * 8 bytes`` (through the origin: no
    window, no increase) over all workers of all runs; the prediction for ``n_target`` people and a
    largest set of ``m_target`` variants (default: the widest measured) adds the largest baseline seen.
    """
    xs, ys, base = [], [], []
    for run in runs:
        for mode in run["modes"]:
            if mode["worker_process_cpu_s"] == 0:  # serial: the "worker" is the client, which holds more
                continue
            for w in mode["workers"]:
                n_m = w["widest_window_mb"]  # n * m_widest * 8 bytes, in MB
                xs.append(n_m)
                ys.append(w["peak_rss_mb"] - w["rss_first_unit_start_mb"])
                base.append(w["rss_first_unit_start_mb"])
    x, y = np.asarray(xs), np.asarray(ys)
    b = float(x @ y / (x @ x))
    widest = max(r["layout"]["largest_gene"] for r in runs)
    m = m_target or widest
    window_mb = n_target * m * 8 / 2**20
    return {"points": [{"window_mb": round(a, 1), "increase_mb": round(c, 1)} for a, c in zip(xs, ys)],
            "copies_of_window": round(b, 2), "max_relative_residual": round(float(np.max(np.abs(y - b * x) / y)), 3),
            "baseline_mb": round(max(base), 0), "n_target": n_target, "m_target": m,
            "predicted_window_mb": round(window_mb, 0), "predicted_peak_mb": round(max(base) + b * window_mb, 0)}


def markdown(result: dict[str, Any]) -> str:
    """Markdown tables of a :func:`run` result or a ``--combine``d file (rendered from the JSON, never typed)."""
    if "runs" in result:
        parts = [markdown(r) for r in result["runs"]]
        mm = result["memory_model"]
        parts.append(f"Per-worker memory: increase over the worker's resident memory at its first unit = "
                     f"{mm['copies_of_window']} x the widest set's window (n x m x 8 bytes), least squares over "
                     f"{len(mm['points'])} workers (largest relative residual {mm['max_relative_residual']}); "
                     f"baseline {mm['baseline_mb']:.0f} MB. Extrapolated to {mm['n_target']:,} people and a "
                     f"{mm['m_target']}-variant set: window {mm['predicted_window_mb']:.0f} MB, peak about "
                     f"{mm['predicted_peak_mb']:.0f} MB per worker.\n")
        return "\n".join(parts)
    lay = result["layout"]
    lines = [f"SKAT sets read from a .bed by the workers: {lay['n_samples']:,} samples x {lay['n_genes']:,} genes "
             f"({lay['n_variants']:,} variants, largest gene {lay['largest_gene']}; .bed {lay['bed_mb']} MB, "
             f"{lay['genotypes_in_memory_gb']} GB as a float64 matrix, which no process loads).",
             "",
             "| mode | wall s | speed-up | CPU s in units (per worker) | of which the units' threads "
             "| client CPU s | worker processes CPU s "
             "| worker start s | per-worker peak RSS MB (start of first unit) | client peak MB | identical "
             "| load before/after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["modes"]:
        peaks = ", ".join(f"{w['peak_rss_mb']:.0f} ({w['rss_first_unit_start_mb']:.0f})" for w in r["workers"])
        per = " + ".join(f"{w['cpu_s']:.1f}" for w in r["workers"])
        thread = r.get("unit_thread_cpu_s")
        thread_txt = "not recorded" if thread is None or thread != thread else f"{thread:.1f}"
        lines.append(f"| {r['mode']} | {r['wall_s']:.1f} | {r['speedup_wall']:.2f}x | {r['unit_cpu_s']:.1f} ({per}) | "
                     f"{thread_txt} | "
                     f"{r['client_cpu_s']:.1f} | {r['worker_process_cpu_s']:.1f} | {r['worker_start_s']:.1f} | "
                     f"{peaks} | {r['client_peak_rss_mb']:.0f} | {'yes' if r['identical_to_first'] else 'NO'} | "
                     f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=50_000)
    ap.add_argument("--genes", type=int, default=500)
    ap.add_argument("--folder", type=Path, default=Path("/tmp/bayesmages_scale_skat"))
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=None)
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the result")
    ap.add_argument("--combine", nargs="+", type=Path, default=None,
                    help="merge the JSON of several runs (e.g. different --samples) and fit the memory model")
    ap.add_argument("--one-mode", choices=list(MODES), default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.combine:
        runs = [json.loads(f.read_text()) for f in args.combine]
        combined = {"runs": runs, "memory_model": memory_model(runs)}
        if args.out is not None:
            args.out.write_text(json.dumps(combined, indent=1) + "\n")
        print(markdown(combined))
        return
    if args.one_mode:
        print(json.dumps(_one_mode(args.folder, args.one_mode)))
        return
    result = run(args.folder, args.samples, args.genes, args.modes)
    result["command"] = "python bench/_scale_skat.py " + " ".join(sys.argv[1:])
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
