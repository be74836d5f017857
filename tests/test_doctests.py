"""The examples in the package's docstrings run and print what they show.

Each module's docstring examples are run with :mod:`doctest` (``+SKIP`` examples — those that need a user's
files — are not run, by doctest's own rule, and are not counted as skipped tests). Modules are imported by name,
so the checked code is this checkout's.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import bayesmages

MODULES = sorted(m.name for m in pkgutil.walk_packages(bayesmages.__path__, "bayesmages.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    for test in finder.find(module, name, globs=dict(vars(module))):
        if test.examples:
            result = runner.run(test, out=failures.append, clear_globs=True)
            assert result.failed == 0, "".join(failures)


def test_the_package_has_examples():
    # A guard against the finder silently finding nothing (e.g. a packaging change hiding the modules).
    n = sum(len(t.examples) for name in MODULES
            for t in doctest.DocTestFinder().find(importlib.import_module(name), name))
    assert n >= 50, n
