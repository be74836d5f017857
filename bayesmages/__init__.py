"""bayesmages: Bayesian genetic association analysis on Pyro.

Effect-size shrinkage for LD (neural shrinker), clustering of multi-trait effects (a
stick-breaking Dirichlet-process mixture), gene-level tests, and the SKAT family with ecSKAT,
all behind one model registry with ArviZ diagnostics.

Examples
--------
>>> import bayesmages as bm
>>> "glm_gaussian" in bm.list_models()
True
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bayesmages import errors
from bayesmages.registry import get_model, list_models, register_model

try:
    __version__ = version("bayesmages")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "errors",
    "get_model",
    "list_models",
    "load_model",
    "register_model",
]

# Subpackages load on first attribute access (bm.io, bm.simulate, ...): `import bayesmages`
# stays fast and a capability's heavy dependencies are imported only when used.
_SUBMODULES = {
    "cluster", "diagnostics", "genes", "glm", "infer", "io", "model", "parallel", "pipeline",
    "plots", "priors", "shrink", "simulate", "skat", "stats",
}


def load_model(path: Any) -> Any:
    """Load a model saved with ``model.save(path)`` (see :func:`bayesmages.model.load_model`)."""
    from bayesmages.model import load_model as _load

    return _load(path)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"bayesmages.{name}")
    raise AttributeError(f"module 'bayesmages' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)
