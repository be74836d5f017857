"""The one ``numba.njit`` wrapper of the package's compiled kernels (numba is imported by whoever uses it)."""

from __future__ import annotations

from typing import Any

import numba


def jit(fn: Any) -> Any:
    """``numba.njit`` with an on-disk cache where numba finds a writable place for it.

    No ``fastmath``: the kernels promise the same IEEE operations, in the same order, as the
    Python code they replace (no fused multiply-adds, no reassociation).
    """
    try:
        return numba.njit(cache=True)(fn)
    except RuntimeError:  # no cache locator (read-only install, no writable user cache)
        return numba.njit(fn)
