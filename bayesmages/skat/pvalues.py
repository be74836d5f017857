"""P-values of SKAT statistics (R SKAT 2.2.5 conventions).

Under H0, a SKAT or burden statistic is a mixture of chi-square(1) variables with weights the
eigenvalues of ``Gw' P0 Gw / 2``. R's rules are reproduced: eigenvalue truncation
(``Get_Lambda``), Davies with acc 1e-6 / lim 10,000 and its liu.mod fallback outside (0, 1],
liu and liu.mod from the traces. Tail probabilities come from :mod:`bayesmages.stats.quadform`
(the project's single engine). The moment-adjusted binary p-values are in
:mod:`bayesmages.skat.adjusted`; ER and saddlepoint ones in :mod:`bayesmages.skat.er`
and :mod:`bayesmages.skat.spa` (chosen by :mod:`bayesmages.skat.binary`).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from bayesmages.stats import quadform

__all__ = [
    "DAVIES_ACC",
    "DAVIES_LIM",
    "davies1",
    "davies_pvalue",
    "mixture_pvalue",
    "truncate_eigenvalues",
]

DAVIES_ACC = 1e-6
DAVIES_LIM = 10_000


def truncate_eigenvalues(lam: np.ndarray) -> np.ndarray:
    """R SKAT's ``Get_Lambda`` rule: keep eigenvalues >= 0 and > mean(non-negative ones) / 1e5."""
    lam = np.asarray(lam, dtype=np.float64)
    nonneg = lam[lam >= 0]
    if nonneg.size == 0 or nonneg.max() <= 0:
        return np.empty(0)
    return lam[lam > nonneg.mean() / 1e5]


def mixture_pvalue(q: float, lam_all: np.ndarray, method: str) -> tuple[float, str, int | None]:
    """P(sum lam_k chi2_1 > q) as R SKAT computes it for ``method``.

    ``lam_all`` are all eigenvalues of W1/2. ``"exact"`` (not an R method) is the exact tail of
    :func:`bayesmages.stats.quadform.pvalue` (relative accuracy ~1e-7 at any p) on all eigenvalues
    above round-off (1e-10 of the largest). ``"davies"`` uses the truncated eigenvalues, exact
    chi-square(1) (liu.mod) for a single one, and falls back to liu.mod only when the Davies
    value is outside (0, 1]. ``"liu"``/``"liu.mod"`` use all eigenvalues (R's trace formulas).

    Returns
    -------
    p, method used, Davies fault code (None when Davies did not run)
    """
    lam_pos = np.clip(lam_all, 0.0, None)
    if method == "exact":
        top = lam_pos.max(initial=0.0)
        if top <= 0:
            return 1.0, "none", None
        return float(quadform.pvalue(q, lam_pos[lam_pos > 1e-10 * top])), "exact", None
    if method in ("liu", "liu.mod"):
        if lam_pos.max(initial=0.0) <= 0:
            return 1.0, "none", None
        fn = quadform.liu if method == "liu" else quadform.liu_mod
        return float(np.ravel(fn(q, lam_pos))[0]), method, None
    return davies_pvalue(q, truncate_eigenvalues(lam_all))


def davies_pvalue(q: float, lam: np.ndarray) -> tuple[float, str, int | None]:
    """R's ``Get_PValue.Lambda`` on already truncated eigenvalues: Davies, liu.mod outside (0, 1]."""
    if lam.size == 0:
        return 1.0, "none", None
    if lam.size == 1:
        return float(sps.chi2.sf(q / lam[0], 1)), "liu.mod", None
    p, fault = davies1(q, lam)
    if not 0 < p <= 1:
        return float(np.ravel(quadform.liu_mod(q, lam))[0]), "liu.mod", fault
    return p, "davies", fault


def davies1(q: float, lam: np.ndarray) -> tuple[float, int]:
    """Davies' p-value (R SKAT's acc 1e-6, lim 10,000) for one quantile: ``(p, fault)``."""
    p, fault = quadform.davies(q, lam, acc=DAVIES_ACC, lim=DAVIES_LIM)
    return float(p[0]), int(fault[0])
