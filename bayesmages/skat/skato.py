"""SKAT-O (Lee, Wu and Lin 2012): R SKAT 2.2.5's ``"optimal.adj"`` formula, and the dispatch to the exact one.

The default (``method="exact"``) is :mod:`bayesmages.skat.skato_exact`, the exact null probability
of the SKAT-O statistic. This module computes R's formula (``method="davies"`` and the Liu names),
which approximates the law of the non-burden part by a moment-matched chi-square:

For rho on a grid, ``Q_rho = [(1 - rho) S'S + rho (1'S)^2] / (2 s2)`` (rho = 1 is evaluated at
0.999, as R does, so that the integrand below stays finite). The per-rho p-values use Davies on
the eigenvalues of ``R_rho^(1/2) (W/2) R_rho^(1/2)``; the SKAT-O p-value is
``1 - P(Q_rho < q_rho(p_min) for all rho)``, written as a one-dimensional integral over a
chi-square(1) variable (the burden direction) of the conditional probability of the remainder,
over [0, 40] as R does. R integrates it with QUADPACK's QAGS (~1000 Davies evaluations per gene);
here the same integrand is integrated after the change of variable x = t^2 (which removes the
density's 1/sqrt(x) singularity), split at the kinks of the piecewise-linear minimum over rho,
by adaptive Gauss-Kronrod (3-7 rule) to relative accuracy ~1e-3 of the p-value or better
(:mod:`._quadrature`; typically 30-100 integrand points instead of R's ~1000). The integrand's
Davies tail is evaluated for all points of a round on one shared inversion grid
(:func:`bayesmages.stats.davies.davies_grid`) at accuracy 1e-9 instead of R's 1e-6: cheaper per
point and more accurate. Both changes make "gk" a more accurate evaluation of R's formula;
R's value carries its QAGS error (relative tolerance 1.22e-4 on 1 - p, i.e. absolute) and the
1e-6 Davies error of its integrand, which at p ~ 1e-6 amount to up to ~15 % (reference case_14;
our value there agrees with the saddlepoint-contour engine). ``quadrature="qags"`` replays R's
computation and reproduces R's numbers (reference cases to ~1e-8 relative). If the Davies
integrand faults, the Liu-type integrand is used (R's fallback). Everything is p x p.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import integrate
from scipy import stats as sps

from bayesmages.errors import InputError
from bayesmages.skat._quadrature import gauss_kronrod as _gauss_kronrod
from bayesmages.skat.pvalues import DAVIES_ACC, DAVIES_LIM, davies_pvalue, truncate_eigenvalues
from bayesmages.skat.result import RHO_DEFAULT, SKATResult
from bayesmages.skat.skato_exact import skato_exact
from bayesmages.stats import quadform
from bayesmages.stats.davies import davies_grid, davies_many

__all__ = ["QUADRATURES", "RHO_OPTIMAL", "RHO_OPTIMAL_ADJ", "skato", "skato_guards"]

RHO_OPTIMAL_ADJ = RHO_DEFAULT
RHO_OPTIMAL = tuple(round(0.1 * i, 1) for i in range(11))


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


_X_MAX = 40.0  # R integrates the chi-square(1) variable over [0, 40]
_P_BEYOND = float(sps.chi2.sf(_X_MAX, 1))  # the part of 1 - integral that lies beyond 40
_QUAD_RTOL = 1e-3  # on |Kronrod - Gauss|, which overstates the error: measured accuracy 3e-4 relative or better
_QUAD_POINTS = 7  # Kronrod 7 per piece: fewer Davies calls than 15 at the same measured accuracy
_GRID_ACC = 1e-9  # the SKAT-O integrand on a shared grid: cheap per point, so more accurate than R's 1e-6
_R_REL_TOL = float(np.finfo(float).eps ** 0.25)  # R integrate()'s default rel.tol
QUADRATURES = ("gk", "qags")


def _envelope_breaks(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Kinks in (0, 40) of m(x) = min_k (a_k - b_k x) / c_k, the lower envelope of lines."""
    slope, icpt = -b / c, a / c
    ds, di = slope[:, None] - slope[None, :], icpt[None, :] - icpt[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = np.where(ds != 0, di / ds, np.nan).ravel()
    cand = np.unique(cand[(cand > 0) & (cand < _X_MAX)])
    if cand.size == 0:
        return cand
    # keep a crossing only where the minimising line changes
    grid = np.concatenate([[0.0], cand, [_X_MAX]])
    mid = 0.5 * (grid[:-1] + grid[1:])
    arg = np.argmin(icpt[None, :] + slope[None, :] * mid[:, None], axis=1)
    return cand[arg[1:] != arg[:-1]]


# QUADPACK's 21-point Kronrod abscissae (dqk21), the order in which its rule asks for them: the
# centre, then the Kronrod-only nodes (even indices), then the Gauss nodes.
_QK21 = (0.995657163025808080735527280689003, 0.973906528517171720077964012084452,
         0.930157491355708226001207180059508, 0.865063366688984510732096688423493,
         0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
         0.562757134668604683339000099272694, 0.433395394129247190799265943165784,
         0.294392862701460198131126603103866, 0.148874338981631210884826001129720)
_QK21_ORDER = tuple(_QK21[j] for j in (1, 3, 5, 7, 9, 0, 2, 4, 6, 8))


def _qk21_points(a: float, b: float) -> list[float]:
    """The 21 points at which QUADPACK's dqk21 evaluates the integrand on [a, b], computed as it does."""
    centr, hlgth = 0.5 * (a + b), 0.5 * (b - a)
    pts = [centr]
    for xk in _QK21_ORDER:
        absc = hlgth * xk
        pts += [centr - absc, centr + absc]
    return pts


class _QagsBatches:
    """The SKAT-O integrand for ``scipy.integrate.quad`` (QAGS), evaluated 42 points at a time.

    QAGS asks for one point at a time, but its points are predictable: the 21 Kronrod points of
    [0, 40], then those of both halves of the interval it bisects. When it asks for the centre
    of an interval that is half of one already integrated, the 21 points of that half and of
    its sibling are evaluated in one vectorised call (as R's ``integrate`` evaluates its
    integrand on vectors) and served from a cache; any point not predicted is evaluated alone.
    Values are those of the point-by-point integrand: the tail per point does not depend on the
    other points of the call. With ``nan_is_fault``, a NaN tail marks a Davies fault (R's
    integrate stops there), raised only when QAGS asks for that point.
    """

    def __init__(self, tail: Any, nan_is_fault: bool) -> None:
        self.tail = tail
        self.nan_is_fault = nan_is_fault
        self.cache: dict[float, float] = {}
        self.halves: dict[float, tuple[float, float, float, float]] = {}  # centre -> (a, b, sibling a, b)
        self._register(0.0, _X_MAX, None)

    def _register(self, a: float, b: float, sibling: tuple[float, float] | None) -> None:
        if sibling is None:
            self.halves[0.5 * (a + b)] = (a, b, a, b)
            return
        self.halves[0.5 * (a + b)] = (a, b, *sibling)
        self.halves[0.5 * (sibling[0] + sibling[1])] = (*sibling, a, b)

    def _evaluate(self, xs: list[float]) -> None:
        t = self.tail(np.asarray(xs, dtype=np.float64))
        for xi, ti in zip(xs, t.tolist()):
            self.cache[xi] = (1.0 - ti) * math.exp(-0.5 * xi) / math.sqrt(2.0 * math.pi * xi)

    def __call__(self, x: float) -> float:
        hit = self.cache.pop(x, None)
        if hit is None:
            interval = self.halves.pop(x, None)
            if interval is None:
                self._evaluate([x])
            else:
                a, b, sa, sb = interval
                self.halves.pop(0.5 * (sa + sb), None)
                pts = _qk21_points(a, b) + ([] if (sa, sb) == (a, b) else _qk21_points(sa, sb))
                self._evaluate(pts)
                for lo, hi in {(a, b), (sa, sb)}:
                    mid = 0.5 * (lo + hi)  # QAGS bisects at the midpoint
                    self._register(lo, mid, (mid, hi))
            hit = self.cache.pop(x)
        if self.nan_is_fault and math.isnan(hit):
            raise _IntegrationFailed("Davies fault")
        return hit


class _NanMarksFault:
    """A tail function whose NaN values mark Davies faults (the qags integrand then fails there)."""

    def __init__(self, tail: Any) -> None:
        self.tail = tail

    def __call__(self, m: np.ndarray) -> np.ndarray:
        return np.asarray(self.tail(m))


def _integrate_tail(tail: Any, q_min: np.ndarray, r: np.ndarray, tau: Any, quadrature: str, limit: int) -> float:
    """``1 - int_0^40 (1 - T(m(x))) dchisq1(x)`` with ``T = tail(m)`` evaluated on arrays of m.

    ``quadrature="gk"``: written as ``P(chi2_1 > 40) + int_0^40 T dchisq1``, so that small
    p-values lose no digits to cancellation, and with ``x = t^2``, which turns the density's
    ``1/sqrt(x)`` singularity into the smooth ``2 phi(t)``; the kinks of ``m`` are explicit
    breakpoints, so :func:`gauss_kronrod` needs few points. ``quadrature="qags"``: R's own
    computation (QUADPACK QAGS on the x scale, rel. tol 1.22e-4, abs. 1e-25, ``limit``
    subdivisions; any QUADPACK error code -> failure), ~1000 points, which :class:`_QagsBatches`
    evaluates 42 at a time as R evaluates them 21 at a time. Its error at
    p ~ 1e-5 is up to ~1 % (the cancellation in 1 - integral), which "gk" does not have.
    """
    a = np.broadcast_to(np.asarray(q_min, dtype=np.float64), r.shape)
    b = np.broadcast_to(np.asarray(tau, dtype=np.float64), r.shape)
    c = 1.0 - r
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise _IntegrationFailed("non-finite SKAT-O quantiles")

    def envelope(x: np.ndarray) -> np.ndarray:
        return np.min((a[None, :] - b[None, :] * x[:, None]) / c[None, :], axis=1)

    if quadrature == "qags":
        # the Davies integrand marks its faults with NaN (see _pvalue_davies_integral)
        f_x = _QagsBatches(lambda x: tail(envelope(x)), nan_is_fault=isinstance(tail, _NanMarksFault))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", integrate.IntegrationWarning)
            out = integrate.quad(f_x, 0.0, _X_MAX, epsabs=1e-25, epsrel=_R_REL_TOL, limit=limit, full_output=1)
        if out[2] != 0 and len(out) > 3:  # R's integrate() stops on any QUADPACK error code
            raise _IntegrationFailed(out[3])
        return 1.0 - float(out[0])

    def f(t: np.ndarray) -> np.ndarray:
        x = t * t
        return tail(envelope(x)) * (2.0 * np.exp(-0.5 * x) / math.sqrt(2.0 * math.pi))

    breaks = np.sqrt(np.concatenate([[0.0], _envelope_breaks(a, b, c), [_X_MAX]]))
    value, _ = _gauss_kronrod(f, breaks, rtol=_QUAD_RTOL, atol=1e-14, points=_QUAD_POINTS)
    return _P_BEYOND + value


def _pvalue_liu_integral(q_min: np.ndarray, r: np.ndarray, pm: dict[str, Any], quadrature: str) -> float:
    sd, df, mu_q = math.sqrt(pm["var_q"]), pm["df"], pm["mu_q"]

    def tail(m: np.ndarray) -> np.ndarray:
        return sps.chi2.sf((m - mu_q) / sd * math.sqrt(2.0 * df) + df, df)

    return _integrate_tail(tail, q_min, r, pm["tau"], quadrature, 2000)


def _pvalue_davies_integral(q_min: np.ndarray, r: np.ndarray, pm: dict[str, Any], quadrature: str) -> float:
    lam = pm["lam"]
    big = float(lam.sum()) * 1e4
    shrink = math.sqrt(pm["var_q"] - pm["var_remain"]) / math.sqrt(pm["var_q"])
    mu_q = pm["mu_q"]

    def tail(m: np.ndarray) -> np.ndarray:
        out = np.zeros(m.size)  # R: quantiles beyond sum(lam) * 1e4 have tail 0
        near = m <= big
        if np.any(near):
            q = (m[near] - mu_q) * shrink + mu_q
            p = davies_grid(q, lam, _GRID_ACC) if quadrature == "gk" else None
            if p is None:
                p, fault = davies_many(q, lam, DAVIES_ACC, DAVIES_LIM)
                if np.any(fault != 0):
                    if quadrature == "gk":
                        raise _IntegrationFailed(f"Davies fault {int(fault[fault != 0][0])}")
                    # qags evaluates points ahead of QUADPACK's requests: a fault counts only at a
                    # point it asks for (_QagsBatches raises there)
                    p = np.where(fault != 0, np.nan, p)
            out[near] = np.minimum(p, 1.0)
        return out

    return _integrate_tail(_NanMarksFault(tail), q_min, r, pm["tau"], quadrature, 1000)


def skato_guards(p_val: float, p_each: np.ndarray) -> float:
    """R's final guards on a SKAT-O p-value.

    SKAT-O lies between burden and SKAT, so a failed value is replaced by a conservative multiple
    of the smallest per-rho p-value (3x with >= 3 rho values, else 2x).
    """
    multi = 3 if p_each.size >= 3 else 2
    if p_val <= 0 or np.any(p_each <= 0):
        p_val = float(p_each.min()) * multi
    if p_val == 0 and np.any(p_each > 0):
        p_val = float(p_each[p_each > 0].min())
    return p_val


def skato(
    S: np.ndarray,
    W: np.ndarray,
    s2: float,
    *,
    rho_grid: Any = None,
    method: str = "davies",
    n_variants: int | None = None,
    quadrature: str = "gk",
) -> SKATResult:
    """SKAT-O from the weighted scores ``S`` (p,) and ``W = Gw' P0 Gw`` (p x p).

    Parameters
    ----------
    S, W : numpy.ndarray
        Scores and their null covariance (unscaled by s2).
    s2 : float
        The null model's dispersion (scales Q; 1 for a binary trait). The moment-adjusted binary
        computation is :func:`bayesmages.skat.adjusted.adjusted_test`.
    rho_grid : sequence of float, optional
        Default R's optimal.adj grid.
    method : {"davies", "exact", "liu", "liu.mod"}
        ``"exact"``: exact per-rho p-values and the exact null probability of their minimum
        (:mod:`bayesmages.skat.skato_exact`; the rho grid is used as given, rho = 1 included).
        ``"davies"`` integrates the Davies tail (R ``"optimal.adj"``); the Liu names use the
        Liu-type integrand (R ``"optimal.moment.adj"``).
    n_variants : int, optional
        Input variant count for the result.
    quadrature : {"gk", "qags"}
        How the final integral is computed: ``"gk"`` (default) accurately with few integrand
        evaluations; ``"qags"`` as R does (QUADPACK QAGS, ~1,200 Davies points per gene instead of
        a few dozen), reproducing R's numbers including its quadrature error (up to ~1 % at
        p ~ 1e-5). See the module docstring.

    Returns
    -------
    SKATResult
        ``statistic`` is the minimum per-rho p-value.
    """
    if quadrature not in QUADRATURES:
        raise InputError(f"quadrature must be one of {list(QUADRATURES)}, got {quadrature!r}")
    grid = _check_grid(rho_grid)
    p = S.size
    n_variants = p if n_variants is None else n_variants
    if method == "exact":
        return skato_exact(S, W, s2, grid, n_variants)
    r = np.minimum(grid, 0.999)
    q_rho = ((1.0 - r) * float(S @ S) + r * float(S.sum()) ** 2) / (2.0 * s2)
    M = W / 2.0
    n_r = r.size
    p_each = np.empty(n_r)
    mom = []
    for i, rho in enumerate(r):
        Rh = _sqrt_exchangeable(rho, p)
        lam = truncate_eigenvalues(np.linalg.eigvalsh(Rh @ M @ Rh))
        p_each[i] = davies_pvalue(q_rho[i], lam)[0]
        par = quadform.liu_params(lam, modified=True)
        mom.append((float(par["muQ"]), float(par["sigmaQ"]), float(par["df"])))
    pmin = float(p_each.min())
    q_min = np.array([(sps.chi2.isf(pmin, df) - df) / math.sqrt(2.0 * df) * sd + mu for mu, sd, df in mom])
    pm = _mixture_param(M, r)
    used = "optimal.adj" if method == "davies" else "optimal.moment.adj"
    try:
        if method == "davies":
            p_val = _pvalue_davies_integral(q_min, r, pm, quadrature)
        else:
            p_val = _pvalue_liu_integral(q_min, r, pm, quadrature)
    except _IntegrationFailed:
        p_val = _pvalue_liu_integral(q_min, r, pm, quadrature)
        used += "+liu-integral"
    p_val = skato_guards(min(p_val, pmin * n_r), p_each)
    rho_report = np.where(r >= 0.999, 1.0, r)
    res = SKATResult(
        p_value=float(p_val), statistic=pmin, n_tested=p, n_variants=n_variants, test="skat-o", method=used,
        rho=float(rho_report[int(np.argmin(p_each))]), rho_grid=grid, p_each_rho=p_each, q_each_rho=q_rho,
    )
    return res
