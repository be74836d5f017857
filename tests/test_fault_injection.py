"""Fault injection: ``bayesmages run`` killed (SIGKILL or SIGTERM) at random moments, then resumed.

Each case starts ``python -m bayesmages run`` on a small simulated data set, kills it at a random
moment (after a random number of its progress lines on stderr, plus a random delay), kills the
rerun the same way (a start that finishes before its moment does not count), and lets a last run
finish. Checked after every case: the final run reuses
exactly the steps that had finished, no temporary file or folder is left anywhere, and every result
file is byte-identical to that of an uninterrupted run.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bayesmages as bm
from bayesmages.cli import main

TINY = ["--blocks", "2", "--variants-per-block", "80", "--ref-samples", "300"]
HIDDEN_TMP = re.compile(r"^\..*\.(tmp|old)$")


def _env():
    # The subprocess must run this checkout's code, whatever is installed.
    env = dict(os.environ)
    root = str(Path(bm.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    sim = folder / "sim"
    assert main(["simulate", "--out", str(sim), "--seed", "5", "--quiet", *TINY]) == 0
    argv = [sys.executable, "-m", "bayesmages", "run", "--gwas", str(sim / "gwas_T1.tsv"), str(sim / "gwas_T2.tsv"),
            "--ld", str(sim / "ld"), "--genes", str(sim / "genes.tsv"), "--truncation", "6", "--restarts", "1"]
    ref = folder / "reference"
    proc = subprocess.run([*argv, "--out", str(ref)], env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    events = [line for line in proc.stderr.splitlines() if line.startswith("bayesmages run:")]
    assert events and events[-1].startswith("bayesmages run: report: done"), proc.stderr
    return argv, ref, len(events)


def _result_files(out):
    """Every result file of a run folder (relative path -> bytes) except those holding timings."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and p.name not in ("step.json", "run.json", "report.md", ".bayesmages.json"):
            files[rel] = p.read_bytes()
    for p in out.glob("*/step.json"):
        files[p.parent.name + "/step.json:key"] = json.loads(p.read_text())["key"].encode()
    return files


def _leftovers(root):
    return [str(p) for p in root.rglob("*") if HIDDEN_TMP.match(p.name)]


def _start_and_kill(argv, n_events, rng):
    """Start a run, kill it after a random number of its progress lines plus a random delay.

    Returns the signal sent, or None when the run finished first.
    """
    sig = signal.SIGKILL if rng.random() < 0.5 else signal.SIGTERM
    wait_for = int(rng.integers(0, n_events))  # 0: during start-up, before the first line
    delay = float(rng.uniform(0.0, 1.5))
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = 0
    while seen < wait_for:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line.startswith("bayesmages run:")
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    if not killed:
        assert proc.returncode == 0, err
        return None
    if sig == signal.SIGTERM and proc.returncode == 0:
        # The signal came as the run was returning, after its last step had landed and while the CLI was
        # putting back the previous handler (a pending Python-level handler that has just been replaced is
        # dropped): the run finished, which the caller's rerun checks like any finished run. Seen at load ~8.
        assert "Traceback" not in err, err
        return None
    if sig == signal.SIGTERM:
        # Terminated in Python (exit 143, one line) unless the signal came before the handler was installed.
        assert proc.returncode in (143, -signal.SIGTERM), (proc.returncode, err)
        assert "Traceback" not in err, err
    else:
        assert proc.returncode == -signal.SIGKILL
    return sig


def _fault_cases(data, tmp_path, seeds):
    argv, ref, n_events = data
    expected = _result_files(ref)
    kills = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        out = tmp_path / f"run{seed}"
        cmd = [*argv, "--out", str(out)]
        case_kills = 0
        for _ in range(8):  # kill the first run and a rerun (a start that finishes first is rerun and killed)
            case_kills += _start_and_kill(cmd, n_events, rng) is not None
            if case_kills == 2:
                break
        kills += case_kills
        finished = sorted(p.parent.name for p in out.glob("*/step.json")) if out.exists() else []
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (seed, proc.stderr)
        meta = json.loads((out / "run.json").read_text())
        reused = sorted(s["name"] for s in meta["steps"] if s["reused"])
        assert reused == finished, (seed, reused, finished)
        assert _leftovers(tmp_path) == [], seed
        got = _result_files(out)
        assert sorted(got) == sorted(expected), seed
        for name, content in expected.items():
            assert got[name] == content, (seed, name)
    return kills


def test_kill_and_resume(data, tmp_path):
    assert _fault_cases(data, tmp_path, seeds=[11, 12]) == 4


@pytest.mark.slow  # 10 cases of three or more runs each: several minutes
def test_kill_and_resume_20_kills(data, tmp_path):
    assert _fault_cases(data, tmp_path, seeds=range(100, 110)) == 20
