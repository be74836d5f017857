"""Validation of clustering input (effects and optional per-variant noise sds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError

__all__ = ["prepare_effects"]


def prepare_effects(
    data: Any, trait_names: Sequence[str] | None = None, label: str = "dp_mixture"
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Validate clustering input.

    Parameters
    ----------
    data : array, DataFrame or mapping
        (N, p) effects (a 1-D array is one trait; DataFrame columns name the traits), or
        ``{"effects": ..., "sd": ...}`` with per-variant noise sds of the same shape.
    trait_names : sequence of str, optional
        Trait names (override DataFrame columns).
    label : str
        Model name for messages.

    Returns
    -------
    X : numpy.ndarray
        (N, p) float64.
    sd : numpy.ndarray or None
        (N, p) noise sds.
    names : list of str

    Examples
    --------
    >>> X, sd, names = prepare_effects(np.array([[0.1, 0.0], [0.0, 0.2], [0.3, 0.1]]))
    >>> names
    ['trait1', 'trait2']
    """
    sd = None
    if isinstance(data, Mapping):
        if "effects" not in data:
            raise InputError(f"{label}: a data mapping needs the key 'effects' (and optionally 'sd')")
        sd = data.get("sd")
        data = data["effects"]
    names = [str(c) for c in data.columns] if isinstance(data, pd.DataFrame) else None
    try:
        X = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{label}: effects must be numeric") from None
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise InputError(f"{label}: effects must be an (N, p) array, got shape {X.shape}")
    N, p = X.shape
    if p == 0:
        raise InputError(f"{label}: effects have no columns (traits)")
    if N <= p or N < 3:
        raise InputError(f"{label}: need more variants (rows) than traits and at least 3; got N={N}, p={p}")
    if not np.isfinite(X).all():
        i, j = np.argwhere(~np.isfinite(X))[0]
        raise InputError(f"{label}: effects have a missing or infinite value at row {i + 1}, column {j + 1}; "
                         "drop or impute such variants first")
    if trait_names is not None:
        names = [str(t) for t in trait_names]
    names = names or [f"trait{t + 1}" for t in range(p)]
    if len(names) != p:
        raise InputError(f"{label}: trait_names has {len(names)} names but effects have {p} columns")
    rms = np.sqrt((X**2).mean(0))
    for j in range(p):
        if rms[j] == 0 or np.ptp(X[:, j]) == 0:
            raise InputError(f"{label}: effects column {j + 1} ({names[j]}) is constant; it carries no information")
    if sd is not None:
        sd = np.asarray(sd, dtype=np.float64)
        sd = sd[:, None] if sd.ndim == 1 else sd
        if sd.shape != X.shape:
            raise InputError(f"{label}: sd has shape {sd.shape}; expected the shape of effects {X.shape}")
        if not (np.isfinite(sd).all() and (sd >= 0).all()):
            raise InputError(f"{label}: sd must be finite and non-negative")
    return X, sd, names
