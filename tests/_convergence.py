"""Convergence warnings in tests are recorded and asserted on, never silenced (issue #18)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from types import SimpleNamespace

from bayesmages.errors import ConvergenceWarning


@contextlib.contextmanager
def record_convergence() -> Iterator[SimpleNamespace]:
    """Collect the block's ConvergenceWarnings in ``.warnings``; every other warning keeps the
    suite's filters (``filterwarnings = error``: it still fails the test)."""
    box = SimpleNamespace(warnings=[])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        yield box
    box.warnings = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(box.warnings) == len(caught), [str(w.message) for w in caught]


def assert_warned_iff_not_converged(model, box: SimpleNamespace) -> None:
    """A fit warns exactly when its SVI record says it stopped before the convergence rule."""
    svi = getattr(model, "_svi", None)
    expected = svi is not None and not svi.converged
    assert bool(box.warnings) == expected, (expected, [str(w.message) for w in box.warnings])
