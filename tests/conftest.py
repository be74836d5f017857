"""Shared fixtures.

* Pyro's global parameter store is cleared before every test (and tests check that fits
  never leave anything in it).
* The torch default dtype is left at float32 on purpose: bayesmages must produce float64
  statistics without relying on a global default a user may not have set.
* Reference numbers travel with the tests: ``tests/data`` holds the R SKAT 2.2.5 reference set
  (see tests/data/README.md for its provenance).
* LD blocks for the "realistic LD" tests are msprime blocks made by the package itself
  (:func:`msprime_ld`, seeded, built once per session). The real UK Biobank block cannot be
  committed; the few tests that read it take ``real_ld_path`` and skip with the reason when
  ../shared is absent.
* Skip budget: a run of the default suite may skip at most ``SKIP_BUDGET`` tests. More skips
  mean that tests silently stopped testing (missing data or extras), so the session fails
  (exit status 1) and says which tests skipped. ``BAYESMAGES_SKIP_BUDGET`` overrides the budget.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import pyro

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BAYESMAGES_SHARED", REPO.parent / "shared"))
DATA = REPO / "tests" / "data"
SKAT_REFERENCE = DATA / "skat_reference"

# A fresh clone (no ../shared) skips the real-UK-Biobank-block tests and nothing else it needs;
# issue #18 allows at most 5 skips in such a clone.
SKIP_BUDGET = int(os.environ.get("BAYESMAGES_SKIP_BUDGET", "5"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail an otherwise green session that skipped more than ``SKIP_BUDGET`` tests."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or session.config.option.collectonly:
        return
    skipped = [r for r in reporter.stats.get("skipped", []) if getattr(r, "when", "") in ("setup", "call", "collect")]
    if len(skipped) > SKIP_BUDGET and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter.write_line(
            f"skip budget exceeded: {len(skipped)} tests skipped, at most {SKIP_BUDGET} allowed "
            "(tests/conftest.py SKIP_BUDGET; set BAYESMAGES_SKIP_BUDGET to change it)", red=True)


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
    """The real UK Biobank block (never committed; optional)."""
    path = shared_dir / "data" / "ld" / "chr22_block0.ld"
    if not path.is_file():
        pytest.skip(f"real LD block not found at {path}")
    return path


@pytest.fixture
def skat_reference_dir() -> Path:
    """R SKAT 2.2.5 reference cases, committed under tests/data (a missing copy is an error, not a skip)."""
    assert (SKAT_REFERENCE / "reference.json").is_file(), f"{SKAT_REFERENCE} is part of the repository"
    return SKAT_REFERENCE


@dataclass(frozen=True)
class LDBlockData:
    """An LD block written as the ML-MAGES ``.ld`` text file, with a gene table in index format."""

    R: np.ndarray
    path: Path
    genes_path: Path


MSPRIME_LD_VARIANTS = 600  # about the size of the real chr22 block (603 variants)


@pytest.fixture(scope="session")
def msprime_ld(tmp_path_factory: pytest.TempPathFactory) -> LDBlockData:
    """A realistic LD block made by the package (msprime, seeded), built once per session.

    It stands in for the real UK Biobank block that cannot be committed. Unlike that block
    (full rank) it is rank-deficient (duplicated haplotype patterns), which the tests that take
    it must handle as real, rounded blocks can be as well. The gene table tiles the block with
    consecutive genes of 5-40 variants and gaps between them, in the ML-MAGES index format.
    """
    from bayesmages.simulate import simulate_ld_blocks

    R = simulate_ld_blocks(1, MSPRIME_LD_VARIANTS, n_samples=2000, seed=2024)[0]
    folder = tmp_path_factory.mktemp("msprime_ld")
    path = folder / "msprime_block0.ld"
    np.savetxt(path, R, fmt="%.6f")  # the ML-MAGES text format, rounded like the real files
    R = np.loadtxt(path)
    rng = np.random.default_rng(2024)
    rows, start = [], int(rng.integers(0, 10))
    while True:
        size = int(rng.integers(5, 41))
        if start + size > R.shape[0]:
            break
        rows.append({"GENE": f"G{len(rows) + 1}", "CHR": 22, "START": 1000 * start, "END": 1000 * (start + size - 1),
                     "N_SNPS": size, "start_idx_chr": start, "end_idx_chr": start + size - 1,
                     "chr_start_idx_gw": 0})
        start += size + int(rng.integers(0, 15))
    genes_path = folder / "msprime_block0_genes.csv"
    pd.DataFrame(rows).to_csv(genes_path, index=False)
    return LDBlockData(R=R, path=path, genes_path=genes_path)


@pytest.fixture(params=[0, 1, 2])
def seed(request) -> int:
    """Tests taking this fixture must pass for any seed; three are run."""
    return request.param
