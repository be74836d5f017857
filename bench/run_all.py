"""Run every benchmark and write ``bench/results/summary.md`` (issue 8).

Usage::

    python bench/run_all.py            # full sizes (see bench/README.md; about an hour on 2 cores)
    python bench/run_all.py --quick    # small sizes, a few minutes: checks that everything runs
    python bench/run_all.py --only cluster genome
    python bench/run_all.py --summary-only   # rebuild summary.md from the results already on disk
    python bench/run_all.py --tables-only    # rebuild every results/*.md and summary.md from the JSON (nothing runs)
    python bench/run_all.py --tables-only --check   # exit 1 if a committed .md differs from its JSON's rendering

Each benchmark runs as its own process (``python bench/<name>.py [--quick]``), so one failing
benchmark does not stop the others; its exit status and wall time are in the summary. The summary
collects the Markdown table every benchmark writes next to its JSON results.

``--quick`` never replaces full-size results: whatever a quick run writes to ``bench/results/`` is
moved to ``bench/results/quick/`` (the full files are put back), and its summary is
``bench/results/quick/summary.md``.

Every Markdown file in ``bench/results`` is generated: each benchmark script has a ``tables(results)``
function that renders its ``.md`` from its ``.json`` (also reachable as ``python bench/<name>.py
--tables-only``), and the summary is built from those. ``tests/test_bench_tables.py`` runs
``--tables-only --check``, so a hand edit of a results table fails the test suite.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
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
    "shrink_susie": ("Fine-mapping shrinkage (method=\"susie\") vs R susieR, same run", "shrink_susie.md",
                     "shrink_susie.md", []),
    "shrink_intervals": ("Candidate 90% intervals for the shrink table (nn, susie)", "shrink_intervals.md",
                         "shrink_intervals.md", []),
    "shrink_calibration": ("Calibration of the neural shrinker's uncertainty (held-out msprime)",
                           "shrink_calibration.md", "shrink_calibration.md", []),
    "cluster": ("DP mixture vs scikit-learn", "cluster.md", "cluster.md", []),
    "skat": ("SKAT family: per-gene time, type-I error, power", "skat.md", "skat_quick.md", []),
    "skat_binary": ("Binary-trait SKAT family: type-I error at low case fractions", "skat_binary.md",
                    "skat_binary_quick.md", []),
    "genes": ("Gene-level enrichment and quadratic-form accuracy", "genes.md", "genes.md", []),
    "simulate": ("Simulation speed", "simulate.md", "simulate.md", []),
    "genome": ("Genome-scale run (1,000,000 variants x 2 traits)", "genome.md", "genome_quick.md", []),
    "ld_panel": ("LD from a PLINK reference panel (1,000,000 variants x 2,500 samples)", "ld_panel.md",
                 "ld_panel_quick.md", []),
    "multitrait": ("Multi-trait association types (Fig. 2E-G protocol)", "multitrait.md", "multitrait.md", []),
    "scale": ("Scale-out: 1 and 2 workers, Dask, 20 traits", "scale.md", "scale_quick.md", []),
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


def summary_text(runs: list[dict], quick: bool, tables: dict[str, str] | None = None) -> str:
    """summary.md: the record of the last run_all run and every benchmark's Markdown.

    ``tables`` maps file names to Markdown already rendered (``--tables-only``); other files are read
    from disk. The text depends only on the results, so that it can be checked against the JSON.
    """
    lines = [
        "# bayesmages benchmark summary",
        "",
        f"Built by `python bench/run_all.py{' --quick' if quick else ''}` from the results in "
        f"`bench/results{'/quick' if quick else ''}`: every table below is generated by its benchmark script from "
        "its JSON (`python bench/run_all.py --tables-only` rebuilds them without running anything); a section "
        "says on what machine and load its benchmark ran where that was recorded. Times are wall-clock on a "
        "shared machine; a speed goal is a ratio to a baseline measured in the same run unless the table says "
        "that baseline was not measured.",
        "",
    ]
    if runs:
        lines += ["Last `run_all.py` run (from `run_all.json`):", "",
                  "| benchmark | command | exit status | wall s |", "|---|---|---|---|"]
        lines += [f"| {r['name']} | `{r['command']}` | {r['exit_status']} | {r['seconds']:.0f} |" for r in runs]
        lines.append("")
    for name, (title, full_md, quick_md, _) in BENCHMARKS.items():
        path = QUICK / quick_md if quick else RESULTS / full_md
        lines += [f"## {title}", ""]
        text = (tables or {}).get(path.name) if not quick else None
        if text is None and path.exists():
            text = path.read_text()
        if text is not None:
            lines += [f"From `{path.relative_to(HERE.parent)}`.", "", _demote(text.strip()), ""]
        else:
            lines += [f"No results yet: run `python bench/{name}.py{' --quick' if quick else ''}`.", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_summary(runs: list[dict], quick: bool, tables: dict[str, str] | None = None) -> Path:
    out = (QUICK if quick else RESULTS) / "summary.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(summary_text(runs, quick, tables))
    tmp.replace(out)
    return out


def all_tables() -> dict[str, str]:
    """Every Markdown file of ``bench/results`` (summary included), rendered from the JSON there."""
    out: dict[str, str] = {}
    for name in BENCHMARKS:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out.update(module.tables(RESULTS))
    record = RESULTS / "run_all.json"
    runs = json.loads(record.read_text())["runs"] if record.exists() else []
    out["summary.md"] = summary_text(runs, False, out)
    return out


def tables_only(check: bool) -> int:
    """Rebuild (or, with ``check``, compare) every results Markdown from the JSON; 1 if a file differed."""
    differ = []
    for md_name, text in all_tables().items():
        path = RESULTS / md_name
        old = path.read_text() if path.exists() else ""
        if old == text:
            continue
        differ.append(md_name)
        if check:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                       f"{md_name} (on disk)", f"{md_name} (from the JSON)"))
        else:
            path.write_text(text)
    verb = "differ from their JSON" if check else "rewritten"
    print(f"{len(differ)} Markdown file(s) {verb}: {', '.join(differ) or 'none'}")
    return 1 if check and differ else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    ap.add_argument("--summary-only", action="store_true", help="rebuild summary.md without running anything")
    ap.add_argument("--tables-only", action="store_true",
                    help="rebuild every results/*.md and summary.md from the JSON without running anything")
    ap.add_argument("--check", action="store_true",
                    help="with --tables-only: write nothing, exit 1 if a Markdown file differs from its rendering")
    args = ap.parse_args()
    if args.check and not args.tables_only:
        ap.error("--check goes with --tables-only")
    if args.tables_only:
        return tables_only(args.check)
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
    print(f"summary: {write_summary(runs, args.quick)}")
    return 1 if any(r["exit_status"] != 0 for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
