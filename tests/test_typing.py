"""Static checks CI runs: mypy on ``bayesmages/`` (the package ships ``py.typed``; settings: ``[tool.mypy]`` in
pyproject.toml) and ruff on the whole repository (settings: ``[tool.ruff]``).

mypy, ruff and the stub packages mypy needs (pandas-stubs, scipy-stubs, types-tqdm) are in the ``dev`` extra, so
CI runs these checks; each is skipped only where its tool is not installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (pip install -e '.[dev]')")
def test_mypy_is_clean_on_the_package():
    # Run from the repository root so that pyproject.toml's [tool.mypy] applies and the checked files are
    # this checkout's (not an installed copy); no cache is written into the clone.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", "/dev/null", "bayesmages"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"mypy found errors:\n{proc.stdout}\n{proc.stderr}"
    assert "Success: no issues found" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[dev]')")
def test_ruff_is_clean_on_the_repository():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"ruff found problems:\n{proc.stdout}\n{proc.stderr}"
