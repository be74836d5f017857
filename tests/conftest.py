"""Shared fixtures.

* Pyro's global parameter store is cleared before every test (and tests check that fits
  never leave anything in it).
* The torch default dtype is left at float32 on purpose: bayesmages must produce float64
  statistics without relying on a global default a user may not have set.
* ``SHARED`` points at ../shared when present; tests that need it skip with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

import pyro

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BAYESMAGES_SHARED", REPO.parent / "shared"))


@pytest.fixture(autouse=True)
def _clean_param_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared folder (real LD block, R SKAT references); skip when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED} (a fresh clone has no shared data); set BAYESMAGES_SHARED")
    return SHARED


@pytest.fixture
def real_ld_path(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "ld" / "chr22_block0.ld"
    if not path.is_file():
        pytest.skip(f"real LD block not found at {path}")
    return path


@pytest.fixture(params=[0, 1, 2])
def seed(request) -> int:
    """Tests taking this fixture must pass for any seed; three are run."""
    return request.param
