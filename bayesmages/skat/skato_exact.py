"""The exact null probability of the SKAT-O statistic (the default SKAT-O p-value).

SKAT-O's statistic is ``T = min_rho p_rho`` with ``p_rho = P0(Q_rho > q_rho)``, and its p-value is
``P0(T <= t)`` for the observed ``t``. With ``S~ = S / sqrt(2 s2) ~ N(0, M)`` (``M = W / 2``),

    Q_rho = (1 - rho) |S~|^2 + rho (1'S~)^2.

Split ``S~`` along the burden direction: ``eta = 1'S~ / sqrt(1'M1) ~ N(0, 1)`` and
``R = S~ - c eta`` with ``c = M1 / sqrt(1'M1)``; ``R ~ N(0, Sigma)``, ``Sigma = M - cc'``, is
independent of ``eta``. Then, with ``x = eta^2`` (chi-square(1)),

    Q_rho = tau_rho x + (1 - rho) kappa,    tau_rho = rho 1'M1 + (1 - rho) |c|^2,
    kappa = |R + eta c|^2 - x |c|^2.

This is the representation of Lee, Wu and Lin (2012), who treat ``kappa`` as independent of
``eta`` and replace its law by a moment-matched chi-square (R's "optimal.adj" integrand, a Davies
tail of the remainder eigenvalues with a variance correction). That step is not needed: given
``eta``, ``R + eta c`` is Gaussian with mean ``eta c``, so with ``Sigma = U diag(lambda) U'`` and
``d = U'c``,

    kappa | x  =  sum_k lambda_k chi2_1(x d_k^2 / lambda_k)  -  x sum_k d_k^2

(sum over the positive eigenvalues; directions of zero variance contribute ``x d_k^2`` to both
terms and cancel). So, exactly,

    P0(T <= t) = int_0^inf P( sum_k lambda_k chi2_1(x d_k^2 / lambda_k) > m(x) + x sum_k d_k^2 ) dchi2_1(x),
    m(x) = min_{rho < 1} (q_rho(t) - tau_rho x) / (1 - rho),

where ``q_rho(t)`` is the exact ``1 - t`` quantile of ``Q_rho`` (inverted from the exact tail of
:func:`bayesmages.stats.quadform.pvalue_rows`). A rho = 1 point (the burden test, taken at 1
exactly, not at R's 0.999) is the constraint ``x < q_1(t) / tau_1``: beyond it the integrand
is 1. The conditional tail is the non-central quadratic-form tail of the same exact engine
(relative accuracy ~1e-7 at any p), the integral is adaptive Gauss-Kronrod on ``t = sqrt(x)``
with the kinks of ``m`` as breakpoints, formed as a sum of positive terms (no cancellation), so
the p-value has relative accuracy ~1e-4 or better down to the smallest p. Checked against Monte
Carlo with importance sampling in ``bench/skat.py`` (part ``tails``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as sps

from bayesmages.skat._quadrature import gauss_kronrod
from bayesmages.skat.result import SKATResult
from bayesmages.stats import quadform

__all__ = ["exact_quantiles", "exact_tails", "rho_spectra", "skato_exact", "skato_exact_pvalue"]

_EIG_TOL = 1e-10  # eigenvalues below 1e-10 * max are round-off zeros of a semi-definite matrix
_QUAD_RTOL = 1e-5  # on |Kronrod - Gauss| per integral: measured accuracy better than 1e-5 relative
_POINTS = 7  # Kronrod 7 per piece: agrees with 15 to 1e-13 on the smooth pieces, at half the points
_LOGP_TOL = 1e-4  # |log P(Q > q) - log p| at which a quantile is accepted (moves the p-value <= ~1e-4)
# contour agreement inside the quantile search and the integrand: its error is far below this, and
# below the 1e-4 tolerances it serves
_INNER_RTOL = 1e-5
_X_TAIL = 1e-8  # the chi-square(1) mass left out beyond the range, relative to the p-value's lower bound


def _positive(lam: np.ndarray) -> np.ndarray:
    lam = np.asarray(lam, dtype=np.float64)
    top = lam.max(initial=0.0)
    return lam[lam > _EIG_TOL * top] if top > 0 else np.empty(0)


def rho_spectra(M: np.ndarray, rho: np.ndarray) -> list[np.ndarray]:
    """Positive eigenvalues of ``R_rho^(1/2) M R_rho^(1/2)`` per rho: the null weights of ``Q_rho``.

    ``R_rho = (1 - rho) I + rho 11'``; its square root is closed-form, and at rho = 1 the form has
    the single eigenvalue ``1'M1``.
    """
    p = M.shape[0]
    rho = np.asarray(rho, dtype=np.float64)
    inner = rho < 1.0
    # R^(1/2) M R^(1/2) = a^2 M + a b (M 11' + 11' M) + b^2 (1'M1) 11' with R^(1/2) = a I + b 11':
    # all rho < 1 at once, one batched eigvalsh
    a = np.sqrt(1.0 - rho[inner])
    b = (np.sqrt(1.0 - rho[inner] + rho[inner] * p) - a) / p
    m1 = M.sum(axis=1)
    cross = m1[:, None] + m1[None, :]
    forms = ((a * a)[:, None, None] * M + (a * b)[:, None, None] * cross
             + (b * b * float(m1.sum()))[:, None, None])
    ev = np.linalg.eigvalsh(forms) if forms.shape[0] else np.empty((0, p))
    it = iter(ev)
    return [np.array([float(M.sum())]) if not i else _positive(next(it)) for i in inner]


def _padded(spectra: list[np.ndarray]) -> np.ndarray:
    width = max(s.size for s in spectra)
    mat = np.zeros((len(spectra), width))
    for i, s in enumerate(spectra):
        mat[i, : s.size] = s
    return mat


def exact_tails(q: np.ndarray, spectra: list[np.ndarray]) -> np.ndarray:
    """``P(Q_i > q_i)`` for ``Q_i = sum_k spectra[i][k] chi2_1``, exactly (one batched call)."""
    return np.asarray(quadform.pvalue_rows(np.asarray(q, dtype=np.float64), _padded(spectra)))


def exact_quantiles(
    p: float,
    spectra: list[np.ndarray],
    known: dict[int, float] | None = None,
    start: np.ndarray | None = None,
    start_tail: np.ndarray | None = None,
) -> np.ndarray:
    """The ``1 - p`` quantile of each ``sum_k spectra[i][k] chi2_1``, by inverting the exact tail.

    Solves ``g(q) = log P(Q_i > q) - log p = 0`` from a first guess: the quantile of the Liu-mod
    approximation shifted to agree with the exact tail at the given start (without a start: the
    Liu-mod quantile and a Newton step with the saddlepoint slope ``d log P / dq ~ -s_hat(q)``).
    Then rounds of second-order Taylor steps with the exact first two derivatives of ``log P``
    (:func:`bayesmages.stats.quadform.log_tail_slopes`: one contour integral per row gives all
    three; all rows in one batched evaluation per round), kept inside a bracket (bisection when a
    step leaves it), until ``|g| <= 1e-4`` (a threshold for level ``p (1 +- 1e-4)``, which moves
    the SKAT-O p-value by ~1e-4 relative at most); the quadratic's root is accepted without a
    further evaluation when it lies within 10 % of the point and its quadratic term is below the
    tolerance. Typically 1 round.

    Parameters
    ----------
    p : float
        Tail probability.
    spectra : list of numpy.ndarray
        Positive weights of each form.
    known : dict, optional
        Rows whose quantile is already known (the row that attained the minimum p-value: its
        observed statistic).
    start, start_tail : numpy.ndarray, optional
        A starting point per row and its exact tail (e.g. the observed statistics and their
        p-values), which saves an evaluation; default the Liu-mod quantile.
    """
    known = known or {}
    n = len(spectra)
    out = np.empty(n)
    for i, v in known.items():
        out[i] = v
    rows = np.array([i for i in range(n) if i not in known], dtype=int)
    if rows.size == 0:
        return out
    lam = _padded([spectra[i] for i in rows])
    target = math.log(p)

    def g(qv: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.log(np.asarray(quadform.pvalue_rows(qv, lam[idx], rtol=_INNER_RTOL))) - target

    pars = quadform.liu_params_rows(lam, modified=True)
    mu_q, sd_q, mu_x, sd_x, df, ncp = (pars[k] for k in ("muQ", "sigmaQ", "muX", "sigmaX", "df", "ncp"))
    central = ncp == 0

    # scipy.special's chi-square functions are what scipy.stats.chi2 calls, without its ~0.1 ms
    # of argument handling per call (this runs per gene)
    def liu_quantile(level: np.ndarray) -> np.ndarray:
        lv = np.clip(level, 1e-300, 1.0 - 1e-16)
        x = np.empty(lv.size)
        x[central] = special.chdtri(df[central], lv[central])
        if not central.all():
            x[~central] = sps.ncx2.isf(lv[~central], df[~central], ncp[~central])
        return np.maximum((x - mu_x) / sd_x * sd_q + mu_q, 1e-12 * mu_q)

    def liu_log_tail(q: np.ndarray) -> np.ndarray:
        x = (q - mu_q) / sd_q * sd_x + mu_x
        out_l = np.empty(q.size)
        with np.errstate(divide="ignore"):
            out_l[central] = np.log(special.chdtrc(df[central], x[central]))
        if not central.all():
            out_l[~central] = sps.ncx2.logsf(x[~central], df[~central], ncp[~central])
        return out_l

    if start is None or start_tail is None:
        liu = liu_quantile(np.full(rows.size, p))
        qa = liu
        ga = g(qa, np.arange(rows.size))
        lo = np.where(ga > 0, qa, 0.0)  # g > 0 left of the root (the tail there is still above p)
        hi = np.where(ga > 0, np.inf, qa)
        # Newton step with the saddlepoint slope d log P / dq ~ -s_hat (accurate in the tail)
        slope = -quadform.cgf_root(qa, lam)
        with np.errstate(divide="ignore", invalid="ignore"):
            qb = qa - ga / np.where(slope < 0, slope, -1.0 / (2.0 * lam.max(axis=1)))
    else:
        qa = np.asarray(start, dtype=np.float64)[rows].copy()
        ga = np.log(np.asarray(start_tail, dtype=np.float64)[rows]) - target
        lo = np.where(ga > 0, qa, 0.0)
        hi = np.where(ga > 0, np.inf, qa)
        # the Liu-mod curve shifted (in log p) to pass through the known exact point: its quantile is
        # within ~1e-3 of the exact one when the start is not far from the target
        with np.errstate(divide="ignore", invalid="ignore"):
            offset = np.log(np.asarray(start_tail, dtype=np.float64)[rows]) - liu_log_tail(qa)
        qb = liu_quantile(p * np.exp(-np.where(np.isfinite(offset), offset, 0.0)))
    qb = np.where((qb > lo) & (qb < hi), qb, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * qa))
    done = np.abs(ga) <= _LOGP_TOL
    qb[done] = qa[done]
    # Each round evaluates g and its first two derivatives at c (one contour integral per row,
    # quadform.log_tail_slopes) for every unfinished row in one batched call and moves c to the
    # root of the Taylor quadratic. (Before, the first round fitted the quadratic through g at
    # c (1 - h), c, c (1 + h), three integrals per row, and later rounds took secant steps.)
    c = qb
    active = np.flatnonzero(~done)
    for _ in range(40):
        if active.size == 0:
            break
        pts = c[active]
        log_p, d1, d2 = quadform.log_tail_slopes(pts, lam[active], rtol=_INNER_RTOL)
        G = log_p - target
        left = G > 0
        lo[active] = np.where(left, np.maximum(lo[active], pts), lo[active])
        hi[active] = np.where(left, hi[active], np.minimum(hi[active], pts))
        b1, a2 = d1, 0.5 * d2
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = np.sqrt(np.maximum(b1 * b1 - 4.0 * a2 * G, 0.0))
            u = -2.0 * G / (b1 - disc)  # the root nearer c (b1 < 0: g decreases)
        r = pts + u
        # A root within 10 % of c whose quadratic term is itself below the tolerance is accepted:
        # for a gamma-like tail (log P ~ -q / theta + (k - 1) log q) the neglected cubic term is
        # ~(2/3) (u / c) of the quadratic one, below 7e-6 here. Rows without derivatives (b1 NaN:
        # the contour did not converge) bisect their bracket.
        accept = np.isfinite(r) & (b1 < 0) & (np.abs(u) <= 0.1 * pts) & (np.abs(a2) * u * u <= _LOGP_TOL)
        hit = np.abs(G) <= _LOGP_TOL
        ok = np.isfinite(r) & (b1 < 0) & (r > lo[active]) & (r < hi[active])
        fallback = np.where(np.isfinite(hi[active]), 0.5 * (lo[active] + hi[active]), 2.0 * pts)
        stop = hit | accept | (np.isfinite(hi[active]) & (hi[active] - lo[active] <= 1e-12 * hi[active]))
        c[active] = np.where(hit, pts, np.where(ok | accept, r, fallback))
        active = active[~stop]
    qb = c
    out[rows] = qb
    return out


def _breaks(a: np.ndarray, b: np.ndarray, c: np.ndarray, shift: float, x_max: float) -> np.ndarray:
    """Kinks of the integrand in (0, x_max).

    The kinks of the envelope ``m(x) = min_k (a_k - b_k x) / c_k`` (where the minimising line
    changes) and the zeros of ``m(x) + shift x`` (where the conditional tail reaches 1 and stops
    being smooth; ``m`` is concave, so there are at most two).
    """
    slope, icpt = -b / c, a / c
    ds, di = slope[:, None] - slope[None, :], icpt[None, :] - icpt[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = np.where(ds != 0, di / ds, np.nan).ravel()
    cand = np.unique(cand[(cand > 0) & (cand < x_max)])
    grid = np.concatenate([[0.0], cand, [x_max]])
    mid = 0.5 * (grid[:-1] + grid[1:])
    arg = np.argmin(icpt[None, :] + slope[None, :] * mid[:, None], axis=1)
    kinks = cand[arg[1:] != arg[:-1]]
    # on each piece between kinks the envelope is one line: its zero of line + shift x
    edges = np.concatenate([[0.0], kinks, [x_max]])
    mid = 0.5 * (edges[:-1] + edges[1:])
    k = np.argmin(icpt[None, :] + slope[None, :] * mid[:, None], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = -icpt[k] / (slope[k] + shift)
    zero = zero[(zero > edges[:-1]) & (zero < edges[1:])]
    return np.unique(np.concatenate([kinks, zero]))


def skato_exact_pvalue(M: np.ndarray, rho: np.ndarray, q_thr: np.ndarray, p_min: float) -> tuple[float, dict[str, Any]]:
    """``P0(min_rho p_rho <= p_min)`` given the exact per-rho thresholds ``q_thr`` (see the module docstring).

    Parameters
    ----------
    M : numpy.ndarray
        ``W / 2`` (p x p), the null covariance of ``S / sqrt(2 s2)``.
    rho : numpy.ndarray
        The grid (values in [0, 1]; 1 means the burden test exactly).
    q_thr : numpy.ndarray
        ``q_rho(p_min)``: the exact ``1 - p_min`` quantiles of ``Q_rho``.
    p_min : float
        The observed minimum per-rho p-value.

    Returns
    -------
    (float, dict)
        The p-value and diagnostics (``error_estimate`` of the quadrature, ``x_max``).
    """
    one_m1 = float(M.sum())
    c = M.sum(axis=1) / math.sqrt(one_m1)
    Sigma = M - np.outer(c, c)
    ev, U = np.linalg.eigh(Sigma)
    # relative to M's scale, not Sigma's: when Sigma is ~0 (identical columns) its own largest
    # eigenvalue is round-off
    keep = ev > _EIG_TOL * float(np.trace(M))
    lam = ev[keep]
    d2 = (U[:, keep].T @ c) ** 2
    shift = float(d2.sum())
    tau = rho * one_m1 + (1.0 - rho) * float(c @ c)
    # Beyond x_max the chi-square(1) mass is negligible against the p-value (>= p_min); a rho = 1
    # point caps the range: for x > q_1 / tau_1 the burden term alone exceeds its threshold.
    x_max = float(special.chdtri(1.0, _X_TAIL * p_min))
    burden = rho >= 1.0
    if np.any(burden):
        x_max = min(x_max, float(np.min(q_thr[burden] / tau[burden])))
    beyond = float(special.chdtrc(1.0, x_max))  # the integrand is 1 (or within _X_TAIL of it) there
    inner = ~burden
    if not np.any(inner) or lam.size == 0:
        # only the burden direction varies: P(x > x_max) is the whole answer
        if lam.size == 0 and np.any(inner):
            # kappa = 0: the constraint is tau x < q for each rho
            x_max = min(x_max, float(np.min(q_thr[inner] / tau[inner])))
            beyond = float(special.chdtrc(1.0, x_max))
        return beyond, {"error_estimate": 0.0, "x_max": x_max}
    a, b, cc = q_thr[inner], tau[inner], 1.0 - rho[inner]
    ncp_unit = d2 / lam

    def f(t: np.ndarray) -> np.ndarray:
        x = t * t
        m = np.min((a[None, :] - b[None, :] * x[:, None]) / cc[None, :], axis=1)
        tail = np.asarray(quadform.pvalue_rows(m + shift * x, lam, x[:, None] * ncp_unit[None, :], rtol=_INNER_RTOL))
        return tail * (2.0 * np.exp(-0.5 * x) / math.sqrt(2.0 * math.pi))

    edges = np.sqrt(np.concatenate([[0.0], _breaks(a, b, cc, shift, x_max), [x_max]]))
    value, err = gauss_kronrod(f, edges, rtol=_QUAD_RTOL, atol=1e-300, points=_POINTS, max_pieces=400)
    return beyond + value, {"error_estimate": err, "x_max": x_max}


def skato_exact(S: np.ndarray, W: np.ndarray, s2: float, grid: np.ndarray, n_variants: int) -> SKATResult:
    """SKAT-O with exact per-rho p-values and the exact null probability of ``min_rho p_rho``.

    ``S``, ``W``: weighted scores and their null covariance (unscaled by ``s2``); ``grid``: the rho
    grid, used as given (rho = 1 is the burden test itself).
    """
    M = W / 2.0
    rho = np.asarray(grid, dtype=np.float64)
    q_rho = ((1.0 - rho) * float(S @ S) + rho * float(S.sum()) ** 2) / (2.0 * s2)
    spectra = rho_spectra(M, rho)
    p_each = exact_tails(q_rho, spectra)
    i_min = int(np.argmin(p_each))
    p_min = float(p_each[i_min])
    q_thr = exact_quantiles(p_min, spectra, known={i_min: float(q_rho[i_min])}, start=q_rho, start_tail=p_each)
    p_val, info = skato_exact_pvalue(M, rho, q_thr, p_min)
    # P(min_rho p_rho <= t) lies in [t, n_rho t] (the union bound); the integral respects it to
    # its accuracy, the clip removes round-off only.
    p_val = float(min(max(p_val, p_min), 1.0, rho.size * p_min))
    return SKATResult(
        p_value=p_val, statistic=p_min, n_tested=S.size, n_variants=n_variants, test="skat-o", method="exact",
        rho=float(rho[i_min]), rho_grid=np.asarray(grid, dtype=np.float64), p_each_rho=p_each, q_each_rho=q_rho,
        extra={"quadrature_error": info["error_estimate"], "thresholds": q_thr},
    )
