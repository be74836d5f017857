"""The example notebooks execute headless, top to bottom, at their quick settings.

Each notebook reads ``BAYESMAGES_NOTEBOOK_QUICK=1`` and shrinks its problem sizes; nbclient runs
it (Agg backend) and fails on the first cell error. The three notebooks share one kernel, whose
namespace is cleared (``%reset -f``) before each: importing torch, Pyro and ArviZ dominates a
quick run, and paying it once keeps the suite fast while every notebook still starts from an
empty namespace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[dev]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[dev]')")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[dev]')")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
CELL_TIMEOUT_S = 180  # generous per-cell limit for a loaded 2-core machine; the quick runs take seconds


def _run(nb: nbformat.NotebookNode, km=None) -> nbformat.NotebookNode:
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(EXAMPLES)}})
    try:
        client.execute()  # raises CellExecutionError, naming the cell, on any error
    finally:
        if km is not None and client.kc is not None:
            client.kc.stop_channels()
    return nb


def _execute(path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> nbformat.NotebookNode:
    """Run one notebook in a kernel of its own (for non-default environment settings)."""
    monkeypatch.setenv("BAYESMAGES_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return _run(nbformat.read(path, as_version=4))


@pytest.fixture(scope="module")
def kernel() -> Iterator[object]:
    from jupyter_client import KernelManager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESMAGES_NOTEBOOK_QUICK", "1")
        mp.setenv("MPLBACKEND", "Agg")
        km = KernelManager(kernel_name="python3")
        km.start_kernel(cwd=str(EXAMPLES))
    try:
        yield km
    finally:
        km.shutdown_kernel(now=True)


def _stream_text(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_the_three_notebooks_are_there_and_stored_without_outputs():
    assert [p.name for p in NOTEBOOKS] == [
        "01_dp_mixture_priors_diagnostics.ipynb", "02_shrinkage_and_genes.ipynb", "03_skat_ecskat.ipynb",
    ]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        assert "BAYESMAGES_NOTEBOOK_QUICK" in code[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path: Path, kernel):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))  # start from an empty namespace
    _run(nb, km=kernel)
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    if path.stem.startswith("02"):
        # the notebook finds the shared folder the way the test suite does (../shared or BAYESMAGES_SHARED)
        shared = Path(os.environ.get("BAYESMAGES_SHARED", EXAMPLES.parent.parent / "shared"))
        real = (shared / "data" / "ld" / "chr22_block0.ld").is_file()
        text = _stream_text(nb)
        assert ("real UK Biobank LD" if real else "simulated msprime LD") in text
        assert "90% interval coverage" in text


@pytest.mark.slow
def test_shrinkage_notebook_falls_back_to_simulated_ld(monkeypatch, tmp_path):
    # Without the shared data folder the notebook must simulate its LD block instead.
    nb = _execute(EXAMPLES / "02_shrinkage_and_genes.ipynb", monkeypatch, BAYESMAGES_SHARED=str(tmp_path))
    assert "simulated msprime LD" in _stream_text(nb)
