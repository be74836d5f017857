"""``bayesmages demo``: the quick setting in the default run, the real one (timed) marked slow."""

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmages.cli import main


def _check_demo_folder(out):
    assert (out / "data" / "gwas_T1.tsv").is_file() and (out / "data" / "gene_truth.tsv").is_file()
    report = (out / "results" / "report.md").read_text()
    figures = sorted((out / "results" / "figures").glob("*.png"))
    assert len(figures) == 8 and all(f"figures/{f.name}" in report for f in figures)
    rec = pd.read_csv(out / "recovery.csv")
    assert {"enrichment p-value, T1", "enrichment p-value, T2"} <= set(rec["ranking"])
    assert rec["average_precision"].between(0, 1).all() and rec["baseline"].between(0, 1).all()
    meta = json.loads((out / "run.json").read_text())
    assert meta["seeds"] == {"seed": meta["arguments"]["seed"]} and len(meta["recovery"]) == len(rec)
    # The pipeline ran on the demo's temporary twin; its run.json names the files where they are now.
    sources = json.loads((out / "results" / "run.json").read_text())["inputs"]["sources"]
    paths = [sources["gwas:T1"], sources["gwas:T2"], sources["genes"], *sources["ld"]]
    assert all(Path(p).is_file() and Path(p).is_relative_to(out.resolve()) for p in paths), paths
    return rec


def test_quick_demo_writes_data_results_and_recovery(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--blocks", "2", "--variants-per-block", "150", "--seed", "1",
                 "--quiet"]) == 0
    _check_demo_folder(out)
    printed = capsys.readouterr().out
    assert "average_precision" in printed and str(out.resolve()) in printed
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no temporary folder left next to it


@pytest.mark.slow
def test_full_demo_recovers_the_truth_in_under_two_minutes(tmp_path):
    started = time.perf_counter()
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    seconds = time.perf_counter() - started
    rec = _check_demo_folder(tmp_path / "demo").set_index("ranking")
    # The gene tests must rank causal genes far above chance (measured AP 0.86-0.91 at seed 0, baseline < 0.2).
    for t in ("T1", "T2"):
        row = rec.loc[f"enrichment p-value, {t}"]
        assert row["average_precision"] > 2 * row["baseline"]
    assert np.isfinite(rec["average_precision"]).all()
    assert seconds < 120, f"the demo took {seconds:.0f} s (goal: under 2 minutes on 2 cores)"
