"""The result of a SKAT-family test and the names shared by the SKAT modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["COMPAT", "METHODS", "RHO_DEFAULT", "TESTS", "SKATResult"]

TESTS = ("skat", "burden", "skat-o", "acat-v", "acat-o")
METHODS = ("exact", "davies", "liu", "liu.mod")
COMPAT = (None, "R")
RHO_DEFAULT = (0.0, 0.01, 0.04, 0.09, 0.25, 0.5, 1.0)  # R's SKAT-O "optimal.adj" grid


@dataclass
class SKATResult:
    """Result of one SKAT-family test.

    Attributes
    ----------
    p_value : float
        The p-value.
    statistic : float
        R's Q for SKAT and burden; for SKAT-O the minimum per-rho p-value (its test statistic;
        R reports no Q there).
    n_tested : int
        Variants that passed QC (R's ``param$n.marker.test``).
    n_variants : int
        Input variants.
    test : str
        ``"skat"``, ``"burden"``, ``"skat-o"``, ``"acat-v"``, ``"acat-o"`` or ``"ecskat"``.
    method : str
        How the p-value was computed (e.g. ``"exact"``, ``"davies"``, ``"liu.mod"``, ``"optimal.adj"``,
        ``"moment-adjusted"``).
    rho, rho_grid, p_each_rho, q_each_rho
        SKAT-O: the selected rho (``rho_est``), the grid and per-rho p-values and statistics.
    p_value_noadj : float or None
        With a moment-adjusted binary null: the unadjusted p-value for comparison.
    davies_fault : int or None
        Davies fault code (0 = fine); a fallback to liu.mod happened when ``method`` says so.
    extra : dict
        Anything else (ecSKAT puts its weights and split here; ACAT-O its component p-values,
        ``extra["components"]``; the exact SKAT-O its per-rho thresholds).
    """

    p_value: float
    statistic: float
    n_tested: int
    n_variants: int
    test: str
    method: str
    rho: float | None = None
    rho_grid: np.ndarray | None = None
    p_each_rho: np.ndarray | None = None
    q_each_rho: np.ndarray | None = None
    p_value_noadj: float | None = None
    davies_fault: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
