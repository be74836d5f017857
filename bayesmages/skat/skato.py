"""SKAT-O (Lee, Wu and Lin 2012), following R SKAT 2.2.5's ``"optimal.adj"`` computation.

For rho on a grid, ``Q_rho = [(1 - rho) S'S + rho (1'S)^2] / (2 s2)`` (rho = 1 is evaluated at
0.999, as R does, so that the integrand below stays finite). The per-rho p-values use Davies on
the eigenvalues of ``R_rho^(1/2) (W/2) R_rho^(1/2)``; the SKAT-O p-value is
``1 - P(Q_rho < q_rho(p_min) for all rho)``, written as a one-dimensional integral over a
chi-square(1) variable (the burden direction) of the conditional probability of the remainder,
integrated on [0, 40] with QUADPACK's QAGS (``scipy.integrate.quad``, the routine behind R's
``integrate``; same tolerances: rel. 1.22e-4, abs. 1e-25, 1000 subdivisions). If the Davies
integrand faults or the integration fails, the Liu-type integrand is used (R's fallback).
Everything is p x p.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import integrate
from scipy import stats as sps

from bayesmages.errors import InputError
from bayesmages.skat.null import NullModel
from bayesmages.skat.tests import (
    DAVIES_ACC,
    DAVIES_LIM,
    RHO_DEFAULT,
    SKATResult,
    _boot_scores,
    _quadform,
    davies1,
    davies_pvalue,
    moment_params,
    moment_pvalue,
    truncate_eigenvalues,
)
from bayesmages.stats.davies import davies_one

__all__ = ["RHO_OPTIMAL", "RHO_OPTIMAL_ADJ", "skato"]

RHO_OPTIMAL_ADJ = RHO_DEFAULT
RHO_OPTIMAL = tuple(round(0.1 * i, 1) for i in range(11))
_REL_TOL = float(np.finfo(float).eps ** 0.25)  # R integrate()'s default rel.tol


class _IntegrationFailed(Exception):
    pass


def _check_grid(rho_grid: Any) -> np.ndarray:
    grid = np.asarray(RHO_OPTIMAL_ADJ if rho_grid is None else rho_grid, dtype=np.float64).ravel()
    if grid.size < 1 or not np.all((grid >= 0) & (grid <= 1)):
        raise InputError(f"rho_grid must be values in [0, 1], got {rho_grid!r}")
    return grid


def _sqrt_exchangeable(rho: float, p: int) -> np.ndarray:
    """Symmetric square root of R_rho = (1 - rho) I + rho 11' (closed form)."""
    a = math.sqrt(1.0 - rho)
    c = (math.sqrt(1.0 - rho + rho * p) - a) / p
    return a * np.eye(p) + c * np.ones((p, p))


def _mixture_param(M: np.ndarray, r: np.ndarray) -> dict[str, Any]:
    """R's ``SKAT_Optimal_Param`` from M = Z1'Z1/2 (p x p).

    Q_rho decomposes into a chi-square(1) term along the mean direction (coefficient tau_rho)
    and a remainder mixture (eigenvalues ``lam``) plus a variance correction ``var_remain``.
    """
    p = M.shape[0]
    m1 = M.sum(1) / p  # z_mean' Z1 as a p-vector
    sz = float(m1.sum() / p)  # sum(z_mean^2)
    cof1 = m1 / sz
    item1 = sz * np.outer(cof1, cof1)
    item2 = M - item1
    lam = truncate_eigenvalues(np.linalg.eigvalsh(item2))
    var_remain = 4.0 * float(np.sum(item1 * item2))
    mu_q = float(lam.sum())
    var_q = 2.0 * float(np.sum(lam**2)) + var_remain
    df = float(np.sum(lam**2) ** 2 / np.sum(lam**4)) if lam.size else 1.0
    tau = (p * p * r + float(cof1 @ cof1) * (1.0 - r)) * sz
    return {"lam": lam, "mu_q": mu_q, "var_q": var_q, "var_remain": var_remain, "df": df, "tau": tau,
            "cof1": cof1}


def _dchisq1(x: float) -> float:
    return math.exp(-0.5 * x) / math.sqrt(2.0 * math.pi * x)


def _integrate(f: Any, limit: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        out = integrate.quad(f, 0.0, 40.0, epsabs=1e-25, epsrel=_REL_TOL, limit=limit, full_output=1)
    if out[2] != 0 and len(out) > 3:  # R's integrate() stops on any QUADPACK error code
        raise _IntegrationFailed(out[3])
    return float(out[0])


def _pvalue_liu_integral(q_min: np.ndarray, r: np.ndarray, pm: dict[str, Any]) -> float:
    sd, df = math.sqrt(pm["var_q"]), pm["df"]

    def f(x: float) -> float:
        m = float(np.min((q_min - pm["tau"] * x) / (1.0 - r)))
        t = (m - pm["mu_q"]) / sd * math.sqrt(2.0 * df) + df
        return float(sps.chi2.cdf(t, df)) * _dchisq1(x)

    return 1.0 - _integrate(f, 2000)


def _pvalue_davies_integral(q_min: np.ndarray, r: np.ndarray, pm: dict[str, Any]) -> float:
    lam = pm["lam"]
    big = float(lam.sum()) * 1e4
    shrink = math.sqrt(pm["var_q"] - pm["var_remain"]) / math.sqrt(pm["var_q"])

    try:  # validated once: the integrand then calls the Davies kernel directly
        lam_w = _quadform()._weights(lam)
    except InputError:
        lam_w = None
    tau, mu_q, one_r = pm["tau"], pm["mu_q"], 1.0 - r

    def tail_prob(q: float) -> tuple[float, int]:
        if lam_w is None or not math.isfinite(q):
            return davies1(q, lam)
        return davies_one(q, lam_w, DAVIES_ACC, DAVIES_LIM)

    terms = list(zip(np.broadcast_to(q_min, r.shape).tolist(), np.broadcast_to(tau, r.shape).tolist(),
                     one_r.tolist()))
    finite = all(math.isfinite(v) for t in terms for v in t)

    def f(x: float) -> float:
        if finite:  # a few scalars: faster than numpy, same values
            m = min([(a - b * x) / c for a, b, c in terms])
        else:
            m = float(np.min((q_min - tau * x) / one_r))
        if m > big:
            tail = 0.0
        else:
            tail, fault = tail_prob((m - mu_q) * shrink + mu_q)
            if fault != 0:
                raise _IntegrationFailed(f"Davies fault {fault}")
            tail = min(float(tail), 1.0)
        return (1.0 - tail) * _dchisq1(x)

    return 1.0 - _integrate(f, 1000)


def skato(
    S: np.ndarray,
    W: np.ndarray,
    null: NullModel,
    *,
    rho_grid: Any = None,
    method: str = "davies",
    Z1: np.ndarray | None = None,
    n_variants: int | None = None,
) -> SKATResult:
    """SKAT-O from the weighted scores ``S`` (p,) and ``W = Gw' P0 Gw`` (p x p).

    Parameters
    ----------
    S, W : numpy.ndarray
        Scores and their null covariance (unscaled by s2).
    null : NullModel
        The null model (its ``s2`` scales Q; a moment-adjusted binary null switches to the
        small-sample computation, which needs ``Z1``).
    rho_grid : sequence of float, optional
        Default R's optimal.adj grid.
    method : {"davies", "liu", "liu.mod"}
        ``"davies"`` integrates the Davies tail (R ``"optimal.adj"``); the Liu names use the
        Liu-type integrand (R ``"optimal.moment.adj"``).
    Z1 : numpy.ndarray, optional
        ``null.project(Gw)`` (n x p), needed for the adjusted binary null only.
    n_variants : int, optional
        Input variant count for the result.

    Returns
    -------
    SKATResult
        ``statistic`` is the minimum per-rho p-value.
    """
    grid = _check_grid(rho_grid)
    p = S.size
    n_variants = p if n_variants is None else n_variants
    r = np.minimum(grid, 0.999)
    q_rho = ((1.0 - r) * float(S @ S) + r * float(S.sum()) ** 2) / (2.0 * null.s2)
    M = W / 2.0
    adjusted = null.adjustment and null.trait == "binary"
    qf = _quadform()
    n_r = r.size
    p_each = np.empty(n_r)
    mom = []
    if adjusted:
        T = _boot_scores(null, Z1)
    for i, rho in enumerate(r):
        if adjusted:
            R = (1.0 - rho) * np.eye(p) + rho * np.ones((p, p))
            prm = moment_params(null, Z1, R, T)
            p_each[i] = moment_pvalue(q_rho[i], prm)
            mom.append((prm[0], math.sqrt(prm[1]), prm[2]))
        else:
            Rh = _sqrt_exchangeable(rho, p)
            lam = truncate_eigenvalues(np.linalg.eigvalsh(Rh @ M @ Rh))
            p_each[i] = davies_pvalue(q_rho[i], lam)[0]
            par = qf.liu_params(lam, modified=True)
            mom.append((float(par["muQ"]), float(par["sigmaQ"]), float(par["df"])))
    pmin = float(p_each.min())
    q_min = np.array([(sps.chi2.isf(pmin, df) - df) / math.sqrt(2.0 * df) * sd + mu for mu, sd, df in mom])
    pm = _mixture_param(M, r)
    used = "optimal.adj" if method == "davies" else "optimal.moment.adj"
    if adjusted:
        C = np.eye(p) - np.outer(np.ones(p), pm["cof1"]) / p
        mu_rem, var_rem, df_rem = moment_params(null, Z1, C @ C.T, T)
        pm = {**pm, "mu_q": mu_rem, "var_q": var_rem + pm["var_remain"], "df": df_rem}
        used = "moment-adjusted"
    try:
        if method == "davies" and not adjusted:
            p_val = _pvalue_davies_integral(q_min, r, pm)
        else:
            p_val = _pvalue_liu_integral(q_min, r, pm)
    except _IntegrationFailed:
        p_val = _pvalue_liu_integral(q_min, r, pm)
        used += "+liu-integral"
    p_val = min(p_val, pmin * n_r)
    # R's final guards: SKAT-O lies between burden and SKAT, so a failed value is replaced by a
    # conservative multiple of the smallest per-rho p-value.
    multi = 3 if n_r >= 3 else 2
    if p_val <= 0 or np.any(p_each <= 0):
        p_val = pmin * multi
    if p_val == 0 and np.any(p_each > 0):
        p_val = float(p_each[p_each > 0].min())
    rho_report = np.where(r >= 0.999, 1.0, r)
    res = SKATResult(
        p_value=float(p_val), statistic=pmin, n_tested=p, n_variants=n_variants, test="skat-o", method=used,
        rho=float(rho_report[int(np.argmin(p_each))]), rho_grid=grid, p_each_rho=p_each, q_each_rho=q_rho,
    )
    return res
