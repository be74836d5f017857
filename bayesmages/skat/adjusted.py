"""The small-sample moment adjustment for binary traits (Lee, Emond et al. 2012), as R SKAT 2.2.5 computes it.

R's ``SKAT_Null_Model`` stores, for a binary trait with n < 2,000, B = 10,000 bootstrap phenotypes
y* (the observed number of cases, drawn with probabilities proportional to the fitted mu) and
``SKAT()`` then ignores ``method`` and refers Q to a scaled chi-square whose mean and variance are
the exact null moments of Q under independent Bernoulli outcomes and whose degrees of freedom come
from the bootstrap kurtosis, ``df = 12 / kurtosis``.

Which bootstrap statistic the kurtosis is taken from matters (issue #16: up to 36 % on SKAT-O):
R takes it from the *raw* weighted genotypes, ``Q* = || Gw' (y* - mu) ||^2 / 2`` (and the rho
mixtures of it), not from covariate-projected scores; only the SKAT-O remainder term uses the
projected, sqrt(V)-whitened genotypes (``Z.item2`` in ``SKAT_Optimal_Param_VarMatching``). The
kurtosis is ``m4 / sd^4 - 3`` with the sd on n - 1 degrees of freedom (R's ``sd``); df = 1e5 when
the kurtosis is not positive, ``8 / skewness^2`` when df < 0.01 (``SKAT_Get_DF_Sim``). SKAT-O's
per-rho quantiles at the minimum p-value use the df of the chi-square(1) + remainder mixture
(``SKAT_Optimal_Get_Kertosis_Mixture``), as R does; the final integral is the Liu-type one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from bayesmages.skat.null import NullModel
from bayesmages.skat.pvalues import mixture_pvalue
from bayesmages.skat.result import RHO_DEFAULT, SKATResult
from bayesmages.skat.skato import _IntegrationFailed, _mixture_param, _pvalue_liu_integral, skato_guards

__all__ = ["adjusted_test", "kurtosis_df", "moment_params", "moment_pvalue"]


def kurtosis_df(qs: np.ndarray) -> float:
    """R's ``SKAT_Get_DF_Sim``: degrees of freedom ``12 / excess kurtosis`` of simulated statistics."""
    qs = np.asarray(qs, dtype=np.float64)
    c = qs - qs.mean()
    sd = float(qs.std(ddof=1))
    if sd == 0:
        return 1e5
    kurt = float(np.mean(c**4)) / sd**4 - 3.0
    if kurt <= 0:
        return 1e5
    df = 12.0 / kurt
    if df < 0.01:
        skew = float(np.mean(c**3)) / sd**3
        df = 8.0 / skew**2
    return df


def _centred_boot(null: NullModel) -> np.ndarray:
    """(n, B) centred bootstrap phenotypes y* - mu (float32: an (n, B) matrix is large)."""
    cache = null.__dict__.setdefault("_boot_cache", {})
    if "Yc" not in cache:
        assert null.y_boot is not None  # only moment-adjusted nulls get here, and they carry y_boot
        cache["Yc"] = null.y_boot.astype(np.float32) - null.fitted[:, None].astype(np.float32)
    return cache["Yc"]


def boot_stats(null: NullModel, A: np.ndarray) -> np.ndarray:
    """``A' (y* - mu)`` (p x B) for an (n, p) block A."""
    return (A.astype(np.float32).T @ _centred_boot(null)).astype(np.float64)


def moment_params(null: NullModel, Z1: np.ndarray, R: np.ndarray, q_boot: np.ndarray) -> tuple[float, float, float]:
    """Mean, variance and df of ``Q = S' R S / 2`` under a Bernoulli null (Lee et al. 2012 moment matching).

    The mean and variance are exact for independent Bernoulli outcomes given the linearised,
    covariate-projected scores (``Z1 = P sqrt(V) Gw``; the variance includes the fourth-moment
    term ``sum_i (m4_i - 3 v_i^2) A_ii^2``); the df comes from ``q_boot``, the bootstrap
    statistics (:func:`kurtosis_df`).
    """
    Omega = Z1.T @ Z1
    RO = R @ Omega / 2.0
    mu = float(np.trace(RO))
    v = null.var
    a = 0.5 * np.einsum("ij,jk,ik->i", Z1, R, Z1)  # z1_i' R z1_i / 2 (z1 whitened)
    var = 2.0 * float(np.sum(RO * RO.T)) + float(np.sum((1.0 / v - 6.0) * a * a))
    return mu, max(var, 1e-300), kurtosis_df(q_boot)


def moment_pvalue(q: float, params: tuple[float, float, float]) -> float:
    """P-value of ``q`` under the scaled chi-square with matched mean, variance and df."""
    mu, var, df = params
    return float(sps.chi2.sf((q - mu) / math.sqrt(var) * math.sqrt(2 * df) + df, df))


def _rho_stats(T: np.ndarray, rho: float) -> np.ndarray:
    """``[(1 - rho) sum_j T_j^2 + rho (sum_j T_j)^2] / 2`` per bootstrap column of T (p x B)."""
    return ((1.0 - rho) * np.einsum("jb,jb->b", T, T) + rho * T.sum(0) ** 2) / 2.0


def _mixture_kurtosis(df1: float, v1: float, a1: float, a2: float) -> float:
    """Excess kurtosis of ``a1 X1 + a2 chi2_1``, var(X1) = v1, df1 (R ``SKAT_Optimal_Get_Kertosis_Mixture``)."""
    v2 = 2.0
    s4 = a1**4 * (12.0 / df1 + 3.0) * v1**2 + a2**4 * 15.0 * v2**2 + 6.0 * a1**2 * a2**2 * v1 * v2
    s2 = a1**2 * v1 + a2**2 * v2
    k = s4 / s2**2 - 3.0
    return k if k >= 0 else 1e-4


def adjusted_test(G: np.ndarray, w: np.ndarray, null: NullModel, test: str, *, rho_grid: Any = None,
                  n_variants: int | None = None, quadrature: str = "gk") -> SKATResult:
    """SKAT, burden or SKAT-O with R's small-sample moment adjustment (the null must carry ``y_boot``).

    ``G`` are QC'd genotypes (n x p), ``w`` their weights. See the module docstring.
    """
    p = G.shape[1]
    n_variants = p if n_variants is None else n_variants
    Gw = G * w[None, :]
    S = Gw.T @ null.residuals
    Z1 = null.project(Gw)
    T = boot_stats(null, Gw)  # raw weighted genotypes, as R
    if test in ("skat", "burden") or p == 1:
        rho = 1.0 if test == "burden" else 0.0
        R = np.ones((p, p)) if rho == 1.0 else np.eye(p)
        Q = float(S @ R @ S / 2.0)
        params = moment_params(null, Z1, R, _rho_stats(T, rho))
        res = SKATResult(moment_pvalue(Q, params), Q, p, n_variants, test, "moment-adjusted")
        # R reports the unadjusted liu.mod value next to the adjusted one
        W = Z1.T @ Z1
        lam = np.array([W.sum() / 2.0]) if rho == 1.0 else np.linalg.eigvalsh(W / 2.0)
        res.p_value_noadj = mixture_pvalue(Q, lam, "liu.mod")[0]
        if test == "skat-o":  # one variant: every rho gives the same test
            grid = np.asarray(RHO_DEFAULT if rho_grid is None else rho_grid, dtype=np.float64)
            res.test, res.rho_grid, res.rho = "skat-o", grid, float(grid[0])
            res.p_each_rho = np.full(grid.size, res.p_value)
        return res
    grid = np.asarray(RHO_DEFAULT if rho_grid is None else rho_grid, dtype=np.float64).ravel()
    r = np.minimum(grid, 0.999)
    q_rho = ((1.0 - r) * float(S @ S) + r * float(S.sum()) ** 2) / 2.0
    pm = _mixture_param(Z1.T @ Z1 / 2.0, r)
    # remainder after the burden direction: projected whitened genotypes (R's Z.item2)
    C = np.eye(p) - np.outer(np.ones(p), pm["cof1"]) / p
    Z2 = Z1 @ C
    q_rem = 0.5 * np.einsum("jb,jb->b", *(2 * [boot_stats(null, Z2)]))
    mu_rem, var_rem, df_rem = moment_params(null, Z1, C @ C.T, q_rem)
    v1 = var_rem + pm["var_remain"]
    p_each = np.empty(r.size)
    mom = []
    for i, rho in enumerate(r):
        R = (1.0 - rho) * np.eye(p) + rho * np.ones((p, p))
        prm = moment_params(null, Z1, R, _rho_stats(T, rho))
        p_each[i] = moment_pvalue(q_rho[i], prm)
        mom.append(prm[0])
    pmin = float(p_each.min())
    q_min = np.empty(r.size)
    for i, rho in enumerate(r):
        df = 12.0 / _mixture_kurtosis(df_rem, v1, 1.0 - rho, pm["tau"][i])
        var = (1.0 - rho) ** 2 * v1 + 2.0 * pm["tau"][i] ** 2
        q_min[i] = (sps.chi2.isf(pmin, df) - df) / math.sqrt(2.0 * df) * math.sqrt(var) + mom[i]
    pm = {**pm, "mu_q": mu_rem, "var_q": v1, "df": df_rem}
    used = "moment-adjusted"
    try:
        p_val = _pvalue_liu_integral(q_min, r, pm, quadrature)
    except _IntegrationFailed:
        p_val, used = 2.0, used + "+failed-integral"  # replaced by the guards below
    p_val = skato_guards(min(p_val, pmin * r.size), p_each)
    rho_report = np.where(r >= 0.999, 1.0, r)
    return SKATResult(p_value=float(p_val), statistic=pmin, n_tested=p, n_variants=n_variants, test="skat-o",
                      method=used, rho=float(rho_report[int(np.argmin(p_each))]), rho_grid=grid, p_each_rho=p_each,
                      q_each_rho=q_rho)
