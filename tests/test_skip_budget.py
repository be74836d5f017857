"""The skip budget of tests/conftest.py: more than SKIP_BUDGET skips fail the session (issue #18)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _run_suite_with_skips(tmp_path: Path, n_skips: int) -> subprocess.CompletedProcess:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    body = "import pytest\n\n" + "".join(
        f"def test_skipped_{i}():\n    pytest.skip('no data {i}')\n\n" for i in range(n_skips)
    ) + "def test_runs():\n    assert True\n"
    (tmp_path / "test_some.py").write_text(body)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep the repository's options out
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "BAYESMAGES_SKIP_BUDGET": "2"})


@pytest.mark.parametrize(("n_skips", "rc"), [(2, 0), (3, 1)])
def test_more_skips_than_the_budget_fail_the_session(tmp_path, n_skips, rc):
    out = _run_suite_with_skips(tmp_path, n_skips)
    assert out.returncode == rc, out.stdout + out.stderr
    assert ("skip budget exceeded: 3 tests skipped, at most 2 allowed" in out.stdout) == (rc == 1)
