"""Argument checks and seed handling shared by the simulation modules."""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmages.errors import InputError

#: msprime accepts seeds in 1..2**32 - 1
_MSPRIME_SEED_MAX = 2**32 - 1


def check_seed(seed: Any, name: str = "seed") -> int:
    """A non-negative integer seed, or InputError."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def child_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent child seeds in 1..2**32-1 (valid for msprime and numpy) from one seed."""
    ss = np.random.SeedSequence(check_seed(seed))
    out = []
    for child in ss.spawn(n):
        s = int(child.generate_state(1, dtype=np.uint32)[0])
        out.append(s if s > 0 else 1)  # msprime refuses 0
    return out


def check_fraction(value: Any, name: str, *, low_open: bool = True, high_closed: bool = False) -> float:
    """A float in (0, 1) (or (0, 1] with ``high_closed``), else InputError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    ok = np.isfinite(v) and (v > 0 if low_open else v >= 0) and (v <= 1 if high_closed else v < 1)
    if not ok:
        interval = ("(" if low_open else "[") + "0, 1" + ("]" if high_closed else ")")
        raise InputError(f"{name} must lie in {interval}, got {value!r}")
    return v


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """An integer >= ``minimum``, else InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(value: Any, name: str) -> float:
    """A finite float > 0, else InputError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number, got {value!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return v


def check_vector(x: Any, name: str, *, length: int | None = None) -> np.ndarray:
    """A finite 1-D float64 array (of ``length``), else InputError naming ``name``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise InputError(f"{name} must have {length} entries, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise InputError(f"{name} has a non-finite entry at index {i}")
    return arr
