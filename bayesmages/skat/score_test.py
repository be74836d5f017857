"""SKAT, burden and SKAT-O p-values from weighted scores and their null covariance.

``Q = S'S / (2 s2)`` (SKAT) or ``(1'S)^2 / (2 s2)`` (burden, R's ``r.corr = 1``); p-values from
:mod:`bayesmages.skat.pvalues` (exact tails by default, R's Davies/Liu rules on request), SKAT-O
from :mod:`bayesmages.skat.skato` (which dispatches ``method="exact"`` to
:mod:`bayesmages.skat.skato_exact`). The one Q-to-p-value step of the package: shared by the
plain tests (:mod:`bayesmages.skat.set_test`, hence ACAT's burden and SKAT components) and the
saddlepoint-adjusted binary ones (:mod:`bayesmages.skat.spa`), which hand over an adjusted
covariance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmages.skat.pvalues import mixture_pvalue
from bayesmages.skat.result import RHO_DEFAULT, SKATResult
from bayesmages.skat.skato import skato

__all__ = ["test_scores"]


def test_scores(
    S: np.ndarray,
    W: np.ndarray,
    s2: float,
    test: str = "skat",
    method: str = "exact",
    *,
    rho_grid: Any = None,
    n_variants: int | None = None,
    skato_quadrature: str = "gk",
) -> SKATResult:
    """Test weighted scores ``S`` (p,) with null covariance ``s2 * W`` (p x p).

    See :func:`bayesmages.skat.test` for ``test``, ``method``, ``rho_grid`` and ``skato_quadrature``.
    """
    p = S.size
    n_variants = p if n_variants is None else n_variants
    if test == "skat-o" and p > 1:
        return skato(S, W, s2, rho_grid=rho_grid, method=method, n_variants=n_variants, quadrature=skato_quadrature)
    if test == "skat-o":
        # one variant: every Q_rho is the same multiple of S^2, so SKAT-O is the SKAT test
        res = test_scores(S, W, s2, "skat", method, n_variants=n_variants)
        res.test = "skat-o"
        res.rho_grid = np.asarray(RHO_DEFAULT if rho_grid is None else rho_grid, dtype=np.float64)
        res.p_each_rho = np.full(res.rho_grid.size, res.p_value)
        res.rho = float(res.rho_grid[0])
        return res
    if test == "burden":
        Q = float(S.sum() ** 2 / (2.0 * s2))
        lam_all = np.array([W.sum() / 2.0])
    else:
        Q = float(S @ S / (2.0 * s2))
        lam_all = np.linalg.eigvalsh(W / 2.0)
    p_val, used, fault = mixture_pvalue(Q, lam_all, method)
    return SKATResult(p_val, Q, p, n_variants, test, used, davies_fault=fault)
