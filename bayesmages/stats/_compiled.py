"""Where the package's compiled (numba) kernels are loaded: on first use, never at import."""

from __future__ import annotations

import importlib
from typing import Any


def load_compiled(module: str) -> Any:
    """The module of compiled kernels ``module``, or ``False`` where numba (or the module) cannot be imported.

    Callers keep the result in a module-level variable (``None`` until the first call), so that importing
    numba and loading its cached machine code happen once, when a kernel is first needed; ``False`` makes
    them use their interpreted implementation.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        return False
