"""The Markdown tables in bench/results are generated from the JSON next to them, never edited by hand.

``python bench/run_all.py --tables-only --check`` renders every ``bench/results/*.md`` (and summary.md)
from its JSON with the benchmark scripts' own ``tables()`` functions, without running a benchmark, and
exits 1 with a diff when a committed file differs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _check(root: Path) -> subprocess.CompletedProcess:
    # the scripts import bayesmages: use this checkout's
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "bench/run_all.py", "--tables-only", "--check"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def test_results_markdown_is_the_rendering_of_the_json():
    proc = _check(REPO)
    assert proc.returncode == 0, (
        "bench/results/*.md differ from what the scripts render from the JSON (a hand edit, or results not "
        f"regenerated: run python bench/run_all.py --tables-only):\n{proc.stdout}\n{proc.stderr}"
    )
    assert "0 Markdown file(s) differ" in proc.stdout


def test_the_check_catches_a_hand_edit(tmp_path):
    # The same check on a copy of the bench folder with one hand-edited table must fail and name the file.
    shutil.copytree(REPO / "bench", tmp_path / "bench", ignore=shutil.ignore_patterns("__pycache__", "quick"))
    md = tmp_path / "bench" / "results" / "cluster.md"
    md.write_text(md.read_text().replace("|---|", "|---|\n| a row typed by hand |", 1))
    proc = _check(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cluster.md" in proc.stdout
