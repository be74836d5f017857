"""Benchmark: harmonisation and LD from a PLINK reference panel at genome scale (issue 15).

Data (simulated once into ``--workdir``; not part of the timings). A reference panel of ``--samples``
(default 2,500) people x ``--variants`` (default 1,000,000) variants on 10 chromosomes, written as a PLINK
1 .bed/.bim/.fam. Haplotypes follow a simple copying model: on each stretch of 4,096 variants, 40 founder
haplotypes are drawn (allele frequencies uniform in [0.02, 0.5]); each of the 2 x samples haplotypes copies
one founder and jumps to another at each variant with probability 1/150 (1/8 at a hot spot, 1 variant in
200), with 0.1% copying errors. That gives LD that decays along the chromosome in blocks of tens to
hundreds of variants. About 12% of the variants are A/T or C/G. The .bed is encoded here with numpy
(2 bits per genotype, PLINK's variant-major layout) and checked against bed-reader on a sample of variants.
The GWAS is a PLINK 2 ``.glm.linear`` file with a row for 97% of the panel variants plus 3% at other positions
(not in the panel); 30% report the panel's A2 as their A1 (swapped), 10% the other strand.

Timed, each run in a fresh process with ``OMP_NUM_THREADS`` = ``--threads`` (default 2):

1. **first run**: read the GWAS, harmonise it against the panel, compute the LD of every block from the
   panel's genotypes (the LD-based partition, default block sizes 100..600) into a new LD store, and
   assemble every block's LD for the harmonised variants (what ``bayesmages run --ld-panel`` holds);
2. **second run**: the same with the LD store already on disk (its key checked against the panel files).

Reported per phase: wall seconds; peak resident memory of the process (``resource.getrusage``); the
store's size on disk. Goals: first run <= 10 minutes on 2 cores, the second reads the store in seconds,
peak memory <= 8 GB.

Usage: ``python bench/ld_panel.py`` (full size) or ``--quick`` (50,000 variants x 500 samples);
``--variants`` and ``--samples`` set other sizes. Writes ``bench/results/ld_panel.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
N_CHROM = 10
STRETCH = 4096
N_FOUNDERS = 40
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def _peak_mb() -> float:
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2  # ru_maxrss: kB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


# ------------------------------------------------------------------------------------------- data
def _haplotype_stretch(rng: np.random.Generator, n_hap: int, length: int) -> np.ndarray:
    """(n_hap, length) 0/1 haplotypes copied from founders with jumps (see the module docstring)."""
    freq = rng.uniform(0.02, 0.5, length)
    founders = rng.random((N_FOUNDERS, length)) < freq
    jump_p = np.where(rng.random(length) < 1 / 200, 1 / 8, 1 / 150)
    jumps = rng.random((n_hap, length)) < jump_p
    segment = np.cumsum(jumps, axis=1, dtype=np.int32)
    choice = rng.integers(0, N_FOUNDERS, size=(n_hap, length + 1), dtype=np.int16)
    which = np.take_along_axis(choice, segment, axis=1)
    hap = founders[which, np.arange(length)]
    hap ^= rng.random((n_hap, length)) < 0.001
    return hap


def _encode_bed(G: np.ndarray) -> bytes:
    """PLINK 1 variant-major bytes of (n, k) A1 counts 0/1/2: 2 -> 00, 1 -> 10, 0 -> 11, four samples per byte."""
    n, k = G.shape
    code = np.array([3, 2, 0], dtype=np.uint8)[G.T]  # (k, n)
    pad = (-n) % 4
    if pad:
        code = np.concatenate([code, np.zeros((k, pad), dtype=np.uint8)], axis=1)
    code = code.reshape(k, -1, 4)
    return (code[..., 0] | (code[..., 1] << 2) | (code[..., 2] << 4) | (code[..., 3] << 6)).astype(np.uint8).tobytes()


def simulate(workdir: Path, n: int, m: int, seed: int = 15) -> dict:
    """Write panel.{bed,bim,fam} and gwas.glm.linear into ``workdir``; returns a description."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    per_chrom = np.diff(np.linspace(0, m, N_CHROM + 1).astype(int))
    chrom = np.repeat(np.arange(1, N_CHROM + 1), per_chrom).astype(str)
    pos = np.concatenate([np.cumsum(rng.integers(1, 6000, k)) + 10_000 for k in per_chrom])
    plain = [(a, b) for a in "ACGT" for b in "ACGT" if a != b and COMPLEMENT[a] != b]
    palin = [("A", "T"), ("T", "A"), ("C", "G"), ("G", "C")]
    is_pal = rng.random(m) < 0.12
    pick_plain = rng.integers(0, len(plain), m)
    pick_pal = rng.integers(0, len(palin), m)
    a1 = np.array([palin[j][0] if p else plain[i][0] for p, i, j in zip(is_pal, pick_plain, pick_pal)])
    a2 = np.array([palin[j][1] if p else plain[i][1] for p, i, j in zip(is_pal, pick_plain, pick_pal)])
    sid = np.array([f"rs{j}" for j in range(m)])
    pd.DataFrame({"c": chrom, "id": sid, "cm": 0, "pos": pos, "a1": a1, "a2": a2}).to_csv(
        workdir / "panel.bim", sep="\t", header=False, index=False)
    iid = [f"p{i}" for i in range(n)]
    pd.DataFrame({"f": iid, "i": iid, "a": 0, "b": 0, "s": 0, "y": -9}).to_csv(
        workdir / "panel.fam", sep=" ", header=False, index=False)
    check_cols = np.sort(rng.choice(m, 200, replace=False))
    checks = {}
    with open(workdir / "panel.bed", "wb") as fh:
        fh.write(b"\x6c\x1b\x01")
        for lo in range(0, m, STRETCH):
            hi = min(lo + STRETCH, m)
            hap = _haplotype_stretch(rng, 2 * n, hi - lo)
            G = (hap[0::2].astype(np.uint8) + hap[1::2]).astype(np.int64)
            fh.write(_encode_bed(G))
            for j in check_cols[(check_cols >= lo) & (check_cols < hi)]:
                checks[int(j)] = G[:, j - lo].copy()
    from bed_reader import open_bed

    with open_bed(workdir / "panel.bed", count_A1=True) as bed:
        back = bed.read(index=np.s_[:, check_cols], dtype="int8")
    assert np.array_equal(back.T, np.array([checks[int(j)] for j in check_cols])), "the .bed encoding is wrong"
    t_panel = time.perf_counter() - t0

    # GWAS: 97% of the panel variants (+3% elsewhere), swapped and strand-flipped alleles
    in_gwas = rng.random(m) < 0.97
    swapped = rng.random(m) < 0.3
    flipped = rng.random(m) < 0.1
    g1 = np.where(swapped, a2, a1)
    g2 = np.where(swapped, a1, a2)
    comp = np.vectorize(COMPLEMENT.get)
    g1 = np.where(flipped, comp(g1), g1)
    g2 = np.where(flipped, comp(g2), g2)
    rows = np.flatnonzero(in_gwas)
    n_extra = int(0.03 * m)
    extra = rng.choice(m, n_extra, replace=False)
    gw = pd.DataFrame({
        "#CHROM": np.concatenate([chrom[rows], chrom[extra]]),
        "POS": np.concatenate([pos[rows], pos[extra] + 1]),  # one base off: not a panel variant
        "ID": np.concatenate([sid[rows], [f"x{j}" for j in extra]]),
    })
    ref = np.concatenate([g2[rows], g2[extra]])
    alt = np.concatenate([g1[rows], g1[extra]])
    gw["REF"], gw["ALT"], gw["A1"] = ref, alt, alt
    gw["TEST"], gw["OBS_CT"] = "ADD", 10_000
    k = len(gw)
    beta = rng.normal(0, 0.01, k)
    se = rng.uniform(0.008, 0.012, k)
    gw["BETA"], gw["SE"] = np.round(beta, 6), np.round(se, 6)
    gw["T_STAT"] = np.round(beta / se, 5)
    gw["P"] = 0.5
    gw["ERRCODE"] = "."
    gw = gw.sort_values(["#CHROM", "POS"], kind="stable")
    gw.to_csv(workdir / "gwas.glm.linear", sep="\t", index=False)
    return {"n_samples": n, "n_variants": m, "n_gwas_rows": k, "seconds_panel": round(t_panel, 1),
            "seconds_total": round(time.perf_counter() - t0, 1), "seed": seed,
            "bed_mb": round((workdir / "panel.bed").stat().st_size / 2**20, 1)}


# ------------------------------------------------------------------------------------------- runs
def one_run(workdir: Path) -> dict:
    """One `run --ld-panel`-like pass in this process: read, harmonise, LD store, blocks. Timed by phase."""
    import warnings

    from bayesmages.io import DroppedRowsWarning, ld_store, read_gwas
    from bayesmages.pipeline.panel import harmonise_to_store

    times = {}
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedRowsWarning)
        gwas = read_gwas(workdir / "gwas.glm.linear", format="plink2")
    times["read_gwas"] = time.perf_counter() - t
    t = time.perf_counter()
    store = ld_store(workdir / "panel.bed", workdir / "store")
    times["ld_store"] = time.perf_counter() - t
    t = time.perf_counter()
    _ = store.variants  # the panel table the harmonisation matches against
    times["store_variants"] = time.perf_counter() - t
    t = time.perf_counter()
    data = harmonise_to_store({"T": gwas}, store)
    times["harmonise_and_blocks"] = time.perf_counter() - t
    rep = data.reports["T"]
    total = sum(times.values())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": {k: round(v, 2) for k, v in times.items()}, "total_seconds": round(total, 2),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1), "load_average": list(os.getloadavg()),
            "peak_rss_mb": round(_peak_mb(), 0), "n_input": rep["n_input"], "n_used": rep["n_used"],
            "dropped": {k: v for k, v in rep["dropped"].items() if v}, "n_swapped": rep["n_swapped"],
            "n_strand_flipped": rep["n_strand_flipped"], "n_blocks_used": len(data.blocks),
            "n_blocks_store": len(store.block_ids), "store_build_seconds": store.manifest["seconds"],
            "block_sizes": {"mean": float(np.mean(store.blocks["n_variants"])),
                            "max": int(store.blocks["n_variants"].max())},
            "excluded": store.manifest["excluded"]}


def _child(workdir: Path, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--one-run", str(workdir)], env=env, capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"run failed:\n{proc.stdout}\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_seconds"] = round(wall, 2)
    return out


def _du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50,000 variants x 500 samples")
    ap.add_argument("--variants", type=int, default=None)
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the simulated panel and the LD store go (default: a folder under /tmp, removed "
                    "at the end unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep --workdir (a later run reuses its simulated data)")
    ap.add_argument("--tables-only", action="store_true", help="rebuild ld_panel.md from ld_panel.json")
    ap.add_argument("--one-run", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_run is not None:
        print(json.dumps(one_run(args.one_run)))
        return
    if args.tables_only:
        for name, text in tables(RESULTS).items():
            (RESULTS / name).write_text(text)
        return
    m = args.variants or (50_000 if args.quick else 1_000_000)
    n = args.samples or (500 if args.quick else 2_500)
    workdir = args.workdir or Path("/tmp") / f"bayesmages-bench-ld-panel-{m}x{n}"
    workdir.mkdir(parents=True, exist_ok=True)
    described = workdir / "data.json"
    if described.exists() and json.loads(described.read_text()).get("n_variants") == m:
        data = json.loads(described.read_text())
        print(f"reusing the simulated data in {workdir}", flush=True)
    else:
        print(f"simulating {m} variants x {n} samples into {workdir} ...", flush=True)
        data = simulate(workdir, n, m)
        described.write_text(json.dumps(data))
    shutil.rmtree(workdir / "store", ignore_errors=True)
    first = _child(workdir, args.threads)
    print(f"first run: {first['total_seconds']:.0f} s, peak {first['peak_rss_mb']:.0f} MB", flush=True)
    second = _child(workdir, args.threads)
    print(f"second run: {second['total_seconds']:.1f} s, peak {second['peak_rss_mb']:.0f} MB", flush=True)
    result = {
        "data": data, "first_run": first, "second_run": second, "threads": args.threads,
        "store_mb": round(_du_mb(workdir / "store"), 0), "quick": args.quick,
        "cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg()), "python": platform.python_version(),
        "command": " ".join(["python", "bench/ld_panel.py", *sys.argv[1:]]),
    }
    RESULTS.mkdir(exist_ok=True)
    name = "ld_panel_quick" if args.quick else "ld_panel"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(render(result))
    print((RESULTS / f"{name}.md").read_text())
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


def render(r: dict) -> str:
    d, f, s = r["data"], r["first_run"], r["second_run"]
    goal_ok = {"first": f["total_seconds"] <= 600, "memory": max(f["peak_rss_mb"], s["peak_rss_mb"]) <= 8192}
    per_variant_us = 1e6 * f["total_seconds"] / d["n_variants"]
    lines = [
        "# LD from a PLINK reference panel: harmonisation + LD store",
        "",
        f"Command: `{r['command']}`. Panel {d['n_variants']:,} variants x {d['n_samples']:,} samples "
        f"(.bed {d['bed_mb']:,.0f} MB, simulated in {d['seconds_total']:.0f} s, not timed below); GWAS "
        f"{d['n_gwas_rows']:,} rows (PLINK 2 .glm.linear). {r['threads']} BLAS threads, {r['cpus']} CPUs, load "
        f"average at the end {r['load_average_at_end'][0]:.1f}. Each run is a fresh process. Goals: first run "
        "<= 600 s on 2 cores, the second reads the LD store in seconds, peak memory <= 8 GB.",
        "",
        "| phase | first run (s) | second run (s) |",
        "|---|---|---|",
    ]
    for k in f["seconds"]:
        lines.append(f"| {k} | {f['seconds'][k]:.1f} | {s['seconds'][k]:.1f} |")
    lines += [
        f"| **total** | **{f['total_seconds']:.1f}** | **{s['total_seconds']:.1f}** |",
        f"| CPU seconds (all threads) | {f.get('cpu_seconds', float('nan')):.1f} | "
        f"{s.get('cpu_seconds', float('nan')):.1f} |",
        f"| load average during the run (1 min, at its end) | {f.get('load_average', [float('nan')])[0]:.1f} | "
        f"{s.get('load_average', [float('nan')])[0]:.1f} |",
        f"| peak resident memory (MB) | {f['peak_rss_mb']:,.0f} | {s['peak_rss_mb']:,.0f} |",
        "",
        f"`ld_store` is opening the store (second run: hashing the panel files to check the store's key) or "
        f"building it (first run: {f['store_build_seconds']:.0f} s for {f['n_blocks_store']:,} blocks, mean "
        f"{f['block_sizes']['mean']:.0f} and at most {f['block_sizes']['max']} variants; "
        f"{r['store_mb']:,.0f} MB on disk). `harmonise_and_blocks` matches the GWAS to the panel and assembles "
        f"the LD of the {f['n_blocks_used']:,} blocks for the {f['n_used']:,} variants used (float64, in memory, "
        "as `run` holds them). First run: "
        f"{per_variant_us:.0f} microseconds per panel variant.",
        "",
        f"Harmonisation: {f['n_input']:,} GWAS rows, {f['n_used']:,} used ({f['n_swapped']:,} swapped, "
        f"{f['n_strand_flipped']:,} strand-flipped); dropped: "
        + ", ".join(f"{k} {v:,}" for k, v in f["dropped"].items()) + ". Panel variants in no block: "
        + ", ".join(f"{v:,} ({k})" for k, v in f["excluded"].items() if v) + ".",
        "",
        f"Goals: first run within 600 s: {'met' if goal_ok['first'] else 'NOT met'} as measured "
        f"({f['total_seconds']:.0f} s of wall time"
        + (f" with a load average of {f['load_average'][0]:.1f} on {r['cpus']} CPUs, i.e. other processes held most "
           f"of the cores; the run itself used {f['cpu_seconds']:.0f} CPU seconds, which is at least "
           f"{f['cpu_seconds'] / r['threads']:.0f} s of wall time on {r['threads']} idle cores and "
           f"{f['cpu_seconds']:.0f} s if nothing ran in parallel, plus any wait for the disk: an estimate, not a "
           "measurement"
           if "cpu_seconds" in f and "load_average" in f else "")
        + f"); peak memory within 8 GB: {'met' if goal_ok['memory'] else 'NOT met'}; second run "
        f"{s['total_seconds']:.0f} s in total ({s.get('cpu_seconds', float('nan')):.0f} CPU seconds), of which "
        f"{s['seconds']['ld_store'] + s['seconds']['store_variants']:.1f} s open and check the store; the rest is "
        "reading the GWAS, harmonising it and copying the used rows and columns of every block into memory.",
    ]
    return "\n".join(lines) + "\n"


def tables(results: Path) -> dict[str, str]:
    """The Markdown files of this benchmark, rebuilt from ld_panel.json in ``results`` (nothing runs)."""
    path = results / "ld_panel.json"
    return {"ld_panel.md": render(json.loads(path.read_text()))} if path.exists() else {}


if __name__ == "__main__":
    main()
