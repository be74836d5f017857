"""Run every benchmark and write ``bench/results/summary.md`` (issue 8).

Usage::

    python bench/run_all.py            # full sizes (see bench/README.md; about an hour on 2 cores)
    python bench/run_all.py --quick    # small sizes, a few minutes: checks that everything runs
    python bench/run_all.py --only cluster genome
    python bench/run_all.py --summary-only   # rebuild summary.md from the results already on disk

Each benchmark runs as its own process (``python bench/<name>.py [--quick]``), so one failing
benchmark does not stop the others; its exit status and wall time are in the summary. The summary
collects the Markdown table every benchmark writes next to its JSON results.

``--quick`` never replaces full-size results: whatever a quick run writes to ``bench/results/`` is
moved to ``bench/results/quick/`` (the full files are put back), and its summary is
``bench/results/quick/summary.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
QUICK = RESULTS / "quick"

#: name -> (title, results Markdown of the full run, of the quick run, extra arguments of the full run)
BENCHMARKS: dict[str, tuple[str, str, str, list[str]]] = {
    "shrink": ("Shrinkage accuracy and speed vs the elastic net", "shrink.md", "shrink.md", []),
    "cluster": ("DP mixture vs scikit-learn", "cluster.md", "cluster.md", []),
    "skat": ("SKAT family: per-gene time, type-I error, power", "skat.md", "skat_quick.md", []),
    "genes": ("Gene-level enrichment and quadratic-form accuracy", "genes.md", "genes.md", []),
    "simulate": ("Simulation speed", "simulate.md", "simulate.md", []),
    "genome": ("Genome-scale run (1,000,000 variants x 2 traits)", "genome.md", "genome_quick.md", []),
}


def run_one(name: str, quick: bool) -> dict:
    cmd = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else BENCHMARKS[name][3])]
    print(f"== {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=HERE.parent, check=False)
    seconds = time.perf_counter() - t0
    print(f"== {name}: exit {proc.returncode} after {seconds:.0f} s", flush=True)
    return {"name": name, "command": " ".join(["python", f"bench/{name}.py", *cmd[2:]]),
            "exit_status": proc.returncode, "seconds": round(seconds, 1)}


def run_quick_isolated(name: str) -> dict:
    """Run a benchmark with ``--quick`` and move what it wrote into ``results/quick/``."""
    before = {p: p.read_bytes() for p in RESULTS.iterdir() if p.is_file()}
    record = run_one(name, True)
    QUICK.mkdir(exist_ok=True)
    for p in RESULTS.iterdir():
        if p.is_file() and (p not in before or p.read_bytes() != before[p]):
            shutil.copy2(p, QUICK / p.name)
            if p in before:
                p.write_bytes(before[p])
            else:
                p.unlink()
    return record


def _demote(markdown: str) -> str:
    """Headings two levels down (the summary's sections are level 2)."""
    return "\n".join("##" + line if line.startswith("#") else line for line in markdown.splitlines())


def write_summary(runs: list[dict], quick: bool, summary_only: bool = False) -> Path:
    lines = [
        "# bayesmages benchmark summary",
        "",
        f"Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `python bench/run_all.py"
        f"{' --quick' if quick else ''}{' --summary-only' if summary_only else ''}`"
        f"{' from the results on disk (each section says when its benchmark ran)' if summary_only else ''}"
        f" on {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (load average now {os.getloadavg()[0]:.1f}). Times are wall-clock on a shared "
        "machine; every speed goal is a ratio to a baseline measured in the same run.",
        "",
    ]
    if runs:
        lines += ["| benchmark | command | exit status | wall s |", "|---|---|---|---|"]
        lines += [f"| {r['name']} | `{r['command']}` | {r['exit_status']} | {r['seconds']:.0f} |" for r in runs]
        lines.append("")
    for name, (title, full_md, quick_md, _) in BENCHMARKS.items():
        path = QUICK / quick_md if quick else RESULTS / full_md
        lines += [f"## {title}", ""]
        if path.exists():
            stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
            lines += [f"From `{path.relative_to(HERE.parent)}` (written {stamp:%Y-%m-%d %H:%M} UTC).", "",
                      _demote(path.read_text().strip()), ""]
        else:
            lines += [f"No results yet: run `python bench/{name}.py{' --quick' if quick else ''}`.", ""]
    out = (QUICK if quick else RESULTS) / "summary.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines).rstrip() + "\n")
    tmp.replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    ap.add_argument("--summary-only", action="store_true", help="rebuild summary.md without running anything")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    record = (QUICK if args.quick else RESULTS) / "run_all.json"
    runs: list[dict] = []
    if not args.summary_only:
        for name in args.only or list(BENCHMARKS):
            runs.append(run_quick_isolated(name) if args.quick else run_one(name, False))
        record.parent.mkdir(exist_ok=True)
        record.write_text(json.dumps({"quick": args.quick, "runs": runs}, indent=2) + "\n")
    elif record.exists():
        runs = json.loads(record.read_text())["runs"]
    print(f"summary: {write_summary(runs, args.quick, args.summary_only)}")
    return 1 if any(r["exit_status"] != 0 for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
