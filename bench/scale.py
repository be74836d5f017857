"""Benchmark: scale-out of the shrinkage and the pipeline over 1 and 2 workers and a Dask LocalCluster (issue 17).

Parts (each timed with ``--workers`` local processes, default 1 and 2, and a 2-process Dask LocalCluster):

1. ``genome``: the shrink step of the genome benchmark (``bench/genome.py``'s data: 1,000,000 variants in
   1,701 blocks x 2 traits, its ``simulate`` imported, not copied), both traits in one map of work units
   (groups of blocks x both traits; the LD spilled once to a cache folder, equal blocks sharing a file).
2. ``run``: ``bayesmages.pipeline.run`` on 100,000 variants x 4 traits (the same simulation, traits 3-4
   drawn on the same LD), per step from the run's own timings (``run.json``): shrink, the per-trait
   clustering, the per-trait gene tests, the multi-trait clustering.
3. ``many``: ``run`` on 20 traits x 1,000,000 variants end to end (goal: 15 minutes on 2 cores).

Reported per configuration: wall seconds; for the shrink units, the sum of the units' CPU seconds (measured
in the process that ran each unit) against the map's wall seconds, and each worker process's peak resident
memory as that process measured it (``ru_maxrss`` of the process itself, returned with each unit);
whether every output equals the 1-worker run bit for bit; the load average. The local pool is started
before timing (its start-up, importing torch in each worker, is reported apart), as is the LocalCluster.

Usage: ``python bench/scale.py`` (full sizes: about an hour on a quiet 2-core machine, most of it the
20-trait run), ``python bench/scale.py --quick`` (60,000 / 20,000 variants, 20 traits on 20,000: minutes),
``--parts genome run``. Writes ``bench/results/scale.json`` (``scale_quick.json``) and the ``.md`` from it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayesmages as bm
from bayesmages.parallel import map_units, shutdown_pools, start_pool
from bayesmages.pipeline.runner import WORKER_MODULES
from bayesmages.pipeline.steps import warm_up_worker

HERE = Path(__file__).resolve().parent


def _genome():
    """bench/genome.py as a module (its data generation is reused, not copied)."""
    spec = importlib.util.spec_from_file_location("_bench_genome", HERE / "genome.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _self_peak_mb() -> float:
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1)


def simulate_traits(n_variants: int, n_traits: int, seed: int) -> dict:
    """genome.py's data (2 traits), plus traits 3.. drawn on the same LD blocks (RSS, h2 0.1, 1% causal)."""
    from bayesmages.simulate import RSSSampler

    g = _genome()
    data = g.simulate(n_variants, 588, 24, seed)
    if n_traits > 2:
        rng = np.random.default_rng(seed + 1)
        samplers: dict[int, RSSSampler] = {}
        for _ in range(2, n_traits):
            beta = np.where(rng.random(data["n_variants"]) < 0.01, rng.normal(size=data["n_variants"]), 0.0)
            beta *= np.sqrt(g.H2 / max(float((beta**2).sum()), 1e-300))
            bh, ss, offset = [], [], 0
            for R in data["ld"]:
                # one factorisation per distinct block (setdefault would build a sampler on every call)
                sampler = samplers.get(id(R))
                if sampler is None:
                    sampler = samplers[id(R)] = RSSSampler(R)
                m = R.shape[0]
                b, s = sampler.sample(beta[offset:offset + m], g.N_GWAS, seed=int(rng.integers(2**31)))
                bh.append(b)
                ss.append(s)
                offset += m
            data["beta_hat"].append(bh)
            data["se"].append(ss)
    data["beta_hat"], data["se"] = data["beta_hat"][:n_traits], data["se"][:n_traits]
    return data


def _gwas_tables(data: dict) -> dict[str, pd.DataFrame]:
    v = data["variants"]
    return {f"T{t + 1}": pd.DataFrame({"SNP": v["SNP"], "CHR": v["CHR"], "POS": v["POS"], "A1": "A", "A2": "G",
                                       "BETA": np.concatenate(data["beta_hat"][t]),
                                       "SE": np.concatenate(data["se"][t]), "N": 100_000})
            for t in range(len(data["beta_hat"]))}


def _backends(workers: list[int], dask: bool):
    out: list[tuple[str, int, object]] = [(f"{w} worker{'s' if w > 1 else ''}", w, None) for w in workers]
    if dask:
        out.append(("dask LocalCluster (2 processes)", 1, "dask"))
    return out


def genome_part(n_variants: int, workers: list[int], client, seed: int) -> dict:
    from bayesmages.pipeline.inputs import PipelineInputs
    from bayesmages.pipeline.steps import shrink_traits

    t0 = time.perf_counter()
    data = simulate_traits(n_variants, 2, seed)
    sim_s = time.perf_counter() - t0
    gwas = _gwas_tables(data)
    inputs = PipelineInputs(traits=list(gwas), gwas=gwas, variants=data["variants"], blocks=data["ld"],
                            genes=data["genes"])
    runs, first = [], None
    with tempfile.TemporaryDirectory(prefix="bm-scale-") as cache:
        from bayesmages.io.ldrefs import spill_blocks

        t0 = time.perf_counter()
        refs = spill_blocks(data["ld"], cache)  # what a run does once for LD given in memory or as text
        spill_s = time.perf_counter() - t0
        for label, w, sched in _backends(workers, client is not None):
            t0 = time.perf_counter()
            out = shrink_traits(inputs, list(gwas), model="default", workers=w,
                                scheduler=client if sched else None, progress=False, seed=seed,
                                ld=refs if (w > 1 or sched) else None)
            wall = time.perf_counter() - t0
            effects = np.column_stack([out[t]["beta_shrunk"].to_numpy() for t in gwas])
            sds = np.column_stack([out[t]["sd"].to_numpy() for t in gwas])
            same = None
            if first is None:
                first = (effects, sds)
            else:
                same = bool(np.array_equal(effects, first[0]) and np.array_equal(sds, first[1]))
            runs.append({"backend": label, "workers": w, "shrink_seconds": round(wall, 2),
                         "units": out[next(iter(gwas))].attrs["units"], "identical_to_first": same,
                         "load_average": _load()})
            print(json.dumps(runs[-1]), flush=True)
    return {"n_variants": data["n_variants"], "n_blocks": data["n_blocks"], "n_traits": 2,
            "simulation_seconds": round(sim_s, 1), "spill_seconds": round(spill_s, 2),
            "distinct_ld_files": len(set(refs.files)), "runs": runs}


STEP_GROUPS = {"shrink": "shrink_", "cluster (per trait)": "cluster_T", "gene tests": "enrich_",
               "cluster (multi-trait)": "cluster_multi", "gene summaries": "genes"}


def run_part(n_variants: int, n_traits: int, workers: list[int], client, seed: int, backends: bool = True,
             repeats: int = 1) -> dict:
    """``bayesmages.pipeline.run`` over the backends, ``repeats`` rounds (each round runs every backend once,
    in the same order, so that a slow spell of a shared machine hits the backends of one round alike)."""
    t0 = time.perf_counter()
    data = simulate_traits(n_variants, n_traits, seed)
    sim_s = time.perf_counter() - t0
    gwas = _gwas_tables(data)
    runs, first = [], None
    fast = {"truncation": 10, "restarts": 2}
    chosen = (_backends(workers, client is not None) if backends
              else [(f"{workers[-1]} workers", workers[-1], None)])
    for round_, (label, w, sched) in ((r, b) for r in range(repeats) for b in chosen):
        with tempfile.TemporaryDirectory(prefix="bm-scale-run-") as tmp:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # > 4 traits: multi-trait steps on the first 4
                res = bm.pipeline.run(gwas, data["ld"], data["genes"], Path(tmp) / "out", workers=w,
                                      scheduler=client if sched else None, seed=seed, figures=False, **fast)
            wall = time.perf_counter() - t0
            timings = res.metadata["timings"]
            steps = {k: round(sum(v for n, v in timings.items() if n.startswith(prefix)), 2)
                     for k, prefix in STEP_GROUPS.items()}
            units = next(r.info.get("units") for r in res.steps if r.name.startswith("shrink_"))
            # the gene tests of all traits are one map: every enrich step carries the same accounting
            gene_units = next((r.info.get("units") for r in res.steps if r.name.startswith("enrich_")), None)
            snapshot = (res.shrinkage[["beta_shrunk", "sd"]].to_numpy(),
                        np.concatenate([res.enrichment[t]["p_value"].to_numpy() for t in res.traits]),
                        res.clusters["multi"].labels if "multi" in res.clusters else None)
            same = None
            if first is None:
                first = snapshot
            else:
                same = {"shrinkage": bool(np.array_equal(snapshot[0], first[0])),
                        "gene_p_values": bool(np.array_equal(snapshot[1], first[1])),
                        "multi_trait_labels": bool(np.array_equal(snapshot[2], first[2]))}
            # steps fitted together over the workers (the clusterings; the gene tests of all traits) have one
            # wall time between them: a step's own "seconds" is its compute time and overlaps the others'
            walls = res.metadata.get("step_walls", {})
            runs.append({"backend": label, "round": round_, "workers": w, "wall_seconds": round(wall, 1),
                         "steps": steps,
                         "group_walls": {"shrink": round(units["map_wall_seconds"], 2),
                                         "clusterings": walls.get("cluster"), "gene tests": walls.get("enrich")},
                         # the main process's time outside the three parallel phases (reading and checking the
                         # inputs, writing and reading back tables, the gene summaries, the report): serial work
                         "outside_phases_seconds": round(wall - units["map_wall_seconds"] - walls.get("cluster", 0.0)
                                                         - walls.get("enrich", 0.0), 1), "units": units,
                         "gene_units": _gene_units(gene_units),
                         "identical_to_first": same, "load_average": _load(), "peak_mb_main": _self_peak_mb()})
            print(json.dumps(runs[-1]), flush=True)
    return {"n_variants": data["n_variants"], "n_blocks": data["n_blocks"], "n_traits": n_traits,
            "simulation_seconds": round(sim_s, 1), "settings": fast, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    ap.add_argument("--parts", nargs="+", choices=("genome", "run", "many"), default=["genome", "run", "many"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3,
                    help="rounds of the run part (every backend once per round; ratios are medians over rounds)")
    ap.add_argument("--many-workers", type=int, nargs="+", default=None,
                    help="worker counts of the many-traits part (default: the largest of --workers only)")
    ap.add_argument("--tables-only", action="store_true", help="rebuild the .md from the JSON (nothing runs)")
    args = ap.parse_args()
    out = HERE / "results"
    if args.tables_only:
        for name, text in tables(out).items():
            (out / name).write_text(text)
        return
    sizes = ({"genome": 60_000, "run": 20_000, "many": 20_000} if args.quick
             else {"genome": 1_000_000, "run": 100_000, "many": 1_000_000})
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    t0 = time.perf_counter()
    # start the kept pool outside the timings, its workers importing what the run's units use (as `run` does
    # while it reads its inputs)
    start_pool(max(args.workers), preload=WORKER_MODULES, warm=warm_up_worker)
    map_units(abs, [-1, -2, -3, -4], workers=max(args.workers))
    pool_start = time.perf_counter() - t0
    client = cluster = None
    if not args.no_dask:
        try:
            from dask.distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None)
            client = Client(cluster, set_as_default=False)
            # the Dask workers import the same modules before timing, as the local pool's workers did above
            import importlib

            for module in WORKER_MODULES:
                client.run(lambda m: importlib.import_module(m) and None, module)
            client.run(warm_up_worker)  # and pay their first fit's cost, as the local workers did
        except ImportError:
            print("dask.distributed is not installed: no Dask runs", flush=True)
    result: dict = {"settings": {"quick": args.quick, "sizes": sizes, "workers": args.workers,
                                 "dask": client is not None, "cpus": os.cpu_count(), "seed": args.seed,
                                 "bayesmages": bm.__version__, "load_average_at_start": _load(),
                                 "pool_start_seconds": round(pool_start, 1)}}
    name = "scale_quick" if args.quick else "scale"
    out.mkdir(exist_ok=True)
    previous = out / f"{name}.json"
    if previous.exists():
        # a run of some parts keeps the other parts of the last run (each part records its own load averages)
        old = json.loads(previous.read_text())
        result.update({k: v for k, v in old.items() if k != "settings" and k not in args.parts})
        result["settings"]["parts_kept_from_an_earlier_run"] = sorted(k for k in old if k != "settings"
                                                                      and k not in args.parts)

    def save() -> None:  # after every part: a long run that is stopped keeps the parts it finished
        result["settings"]["load_average_at_end"] = _load()
        result["settings"]["bench_seconds"] = round(time.perf_counter() - started, 1)
        (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / f"{name}.md").write_text(render(result))

    try:
        if "genome" in args.parts:
            result["genome"] = genome_part(sizes["genome"], args.workers, client, args.seed)
            save()
        if "run" in args.parts:
            result["run"] = run_part(sizes["run"], 4, args.workers, client, args.seed, repeats=args.repeats)
            save()
        if "many" in args.parts:
            # by default one configuration (the most workers): the goal is the end-to-end time on 2 cores
            many = args.many_workers
            result["many"] = (run_part(sizes["many"], 20, many, None, args.seed) if many
                              else run_part(sizes["many"], 20, args.workers, None, args.seed, backends=False))
            save()
    finally:
        if client is not None:
            client.close()
            cluster.close()
        shutdown_pools()


def _speedup(base: float, other: float) -> str:
    return f"{base / other:.2f}x" if other > 0 else "—"


def _same(flag) -> str:
    if flag is None:
        return "(reference)"
    if isinstance(flag, dict):
        return "yes" if all(flag.values()) else "no: " + ", ".join(k for k, v in flag.items() if not v)
    return "yes" if flag else "no"


def _units(u: dict | None) -> str:
    if not u:
        return "—"
    peaks = ", ".join(f"{p:.0f}" for p in u["peak_rss_mb_per_process"])
    client = f", client process {u['client_cpu_seconds']:.1f} CPU s" if "client_cpu_seconds" in u else ""
    return (f"{u['n_units']} units: {u['unit_cpu_seconds']:.1f} CPU s in {u['map_wall_seconds']:.1f} wall s "
            f"({u['unit_cpu_seconds'] / max(u['map_wall_seconds'], 1e-9):.2f} cores busy{client}); "
            f"peak MB per process: {peaks}")


def _gene_units(u: dict | None) -> dict | None:
    """The gene-test map's accounting without its per-unit lists."""
    if not u:
        return None
    keep = ("n_units", "unit_cpu_seconds", "cpu_seconds_per_process", "map_wall_seconds", "processes",
            "first_unit_start_seconds", "tail_seconds", "gather_seconds")
    return {k: u[k] for k in keep if k in u}


def _gene_units_text(u: dict | None) -> str:
    if not u:
        return "—"
    return (f"{u['n_units']} units: {u['unit_cpu_seconds']:.1f} CPU s (per process "
            + ", ".join(f"{c:.1f}" for c in u["cpu_seconds_per_process"])
            + f") in {u['map_wall_seconds']:.1f} wall s; first unit started after "
            f"{u['first_unit_start_seconds']:.2f} s, processes finished {u['tail_seconds']:.2f} s apart")


def render(result: dict) -> str:
    """scale.md from the content of scale.json."""
    st = result["settings"]
    lines = ["# Scale-out: 1 and 2 workers, Dask LocalCluster", "",
             f"{'Quick sizes' if st['quick'] else 'Full sizes'}; {st['cpus']} CPUs; load average at start "
             f"{st['load_average_at_start'][0]:.1f}, at end {st['load_average_at_end'][0]:.1f} (a busy shared machine "
             "makes wall-clock ratios noisy: compare the units' CPU seconds with the wall seconds). Local pool "
             f"start-up (not in the times): {st['pool_start_seconds']:.1f} s. Goals (issue 17): 2 workers >= 1.7x "
             "faster than 1; Dask within 10% of local processes; identical outputs; 20 traits x 1,000,000 variants "
             "<= 15 minutes on 2 cores.", ""]
    if "genome" in result:
        g = result["genome"]
        base = g["runs"][0]["shrink_seconds"]
        lines += [f"## Genome benchmark, shrink step ({g['n_variants']:,} variants, {g['n_blocks']:,} blocks x "
                  f"{g['n_traits']} traits)", "",
                  f"LD spilled once to {g['distinct_ld_files']} content-addressed files in {g['spill_seconds']:.1f} s "
                  "(not in the times).", "",
                  "| backend | shrink s | speedup vs first | identical | work units | load |",
                  "|---|---|---|---|---|---|"]
        for r in g["runs"]:
            lines.append(f"| {r['backend']} | {r['shrink_seconds']:.1f} | {_speedup(base, r['shrink_seconds'])} "
                         f"| {_same(r['identical_to_first'])} | {_units(r['units'])} | {r['load_average'][0]:.1f} |")
        lines.append("")
    for key, title in (("run", "`run`"), ("many", "`run`, many traits")):
        if key not in result:
            continue
        p = result[key]
        rounds = sorted({r.get("round", 0) for r in p["runs"]})
        first_of = {k: next(r for r in p["runs"] if r.get("round", 0) == k) for k in rounds}
        lines += [f"## {title}: {p['n_variants']:,} variants x {p['n_traits']} traits ({p['n_blocks']:,} blocks)", "",
                  "Per step from the run's own timings (run.json); dp_mixture truncation "
                  f"{p['settings']['truncation']}, {p['settings']['restarts']} restarts; no figures.", "",
                  "| backend | total s | " + " | ".join(f"{k} s" for k in STEP_GROUPS) + " | identical | load |",
                  "|---|---|" + "---|" * len(STEP_GROUPS) + "---|---|"]
        for r in p["runs"]:
            base = first_of[r.get("round", 0)]
            cells = []
            for k in STEP_GROUPS:
                v = r["steps"][k]
                extra = f" ({_speedup(base['steps'][k], v)})" if r is not base and base["steps"][k] > 0.5 else ""
                cells.append(f"{v:.1f}{extra}")
            tot = f" ({_speedup(base['wall_seconds'], r['wall_seconds'])})" if r is not base else ""
            label = r["backend"] + (f", round {r['round'] + 1}" if len(rounds) > 1 else "")
            lines.append(f"| {label} | {r['wall_seconds']:.1f}{tot} | " + " | ".join(cells)
                         + f" | {_same(r['identical_to_first'])} | {r['load_average'][0]:.1f} |")
        if all("group_walls" in r for r in p["runs"]):
            groups = list(p["runs"][0]["group_walls"])
            lines += ["", "Wall seconds of each parallel phase (the map of the shrink units; all clusterings, per "
                      "trait and multi-trait, fitted together; the gene tests of every trait), speedup against the "
                      "first row of the same round in brackets:", "",
                      "| backend | " + " | ".join(f"{g} s" for g in groups) + " |",
                      "|---|" + "---|" * len(groups)]
            for r in p["runs"]:
                base = first_of[r.get("round", 0)]
                cells = [f"{r['group_walls'][g]:.1f}" + (f" ({_speedup(base['group_walls'][g], r['group_walls'][g])})"
                                                          if r is not base else "") for g in groups]
                label = r["backend"] + (f", round {r['round'] + 1}" if len(rounds) > 1 else "")
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            if len(rounds) > 1:
                lines += ["", f"Median over the {len(rounds)} rounds of each round's speedup against its first row "
                          "(goal: >= 1.7x with 2 workers for each phase; Dask within 10% of local processes):", "",
                          "| backend | " + " | ".join(f"{g}" for g in groups) + " | total |",
                          "|---|" + "---|" * (len(groups) + 1)]
                for label in dict.fromkeys(r["backend"] for r in p["runs"][1:]):
                    mine = [r for r in p["runs"] if r["backend"] == label and r is not first_of[r.get("round", 0)]]
                    if not mine:
                        continue
                    ratios = {g: [first_of[r["round"]]["group_walls"][g] / r["group_walls"][g] for r in mine]
                              for g in groups}
                    cells = [f"{np.median(ratios[g]):.2f}x" for g in groups]
                    total = np.median([first_of[r["round"]]["wall_seconds"] / r["wall_seconds"] for r in mine])
                    lines.append(f"| {label} | " + " | ".join(cells) + f" | {total:.2f}x |")
        if all("outside_phases_seconds" in r for r in p["runs"]):
            lines += ["", "Seconds of the main process outside the three phases (reading and checking the inputs, "
                      "writing the tables, gene summaries, report; serial whatever the workers): "
                      + ", ".join(f"{r['backend']}" + (f" round {r['round'] + 1}" if len(rounds) > 1 else "")
                                  + f" {r['outside_phases_seconds']:.1f}" for r in p["runs"]) + "."]
        lines += ["", "Shrink units: " + "; ".join(f"{r['backend']}: {_units(r['units'])}" for r in p["runs"]), ""]
        if any(r.get("gene_units") for r in p["runs"]):
            lines += ["Gene-test units (CPU of the thread that ran each unit): "
                      + "; ".join(f"{r['backend']}" + (f" round {r['round'] + 1}" if len(rounds) > 1 else "")
                                  + f": {_gene_units_text(r.get('gene_units'))}" for r in p["runs"]), ""]
        if key == "many":
            r = p["runs"][-1]
            if p["n_variants"] >= 1_000_000:
                verdict = "goal of 15 minutes " + ("met" if r["wall_seconds"] <= 900 else "not met")
            else:
                verdict = "the goal (15 minutes for 1,000,000 variants) is not measured at these quick sizes"
            lines += [f"End to end {r['wall_seconds'] / 60:.1f} min with {r['workers']} workers at load "
                      f"{r['load_average'][0]:.0f}: {verdict}. Peak memory of the main process "
                      f"{r['peak_mb_main']:.0f} MB.", ""]
    return "\n".join(lines).rstrip() + "\n"


def tables(results: Path) -> dict[str, str]:
    """The Markdown files of this benchmark, rebuilt from its JSON in ``results`` (nothing runs)."""
    out = {}
    for name in ("scale", "scale_quick"):
        path = results / f"{name}.json"
        if path.exists():
            out[f"{name}.md"] = render(json.loads(path.read_text()))
    skat = results / "scale_skat.json"
    if skat.exists():
        # SKAT sets reading their genotype windows on the workers (bench/_scale_skat.py writes the JSON)
        spec = importlib.util.spec_from_file_location("_bench_scale_skat", HERE / "_scale_skat.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out["scale_skat.md"] = ("# Scale-out of SKAT sets read from a PLINK .bed on each worker\n\n"
                                "Generated by `python bench/_scale_skat.py` from `bench/results/scale_skat.json`; "
                                "do not edit by hand.\n\n" + module.markdown(json.loads(skat.read_text())))
    return out


if __name__ == "__main__":
    main()
