"""Tail probabilities of positive quadratic forms: P(sum_k lambda_k chi2_1 > q).

The shared engine of the gene-level tests (``genes.enrichment``) and the SKAT family. Methods:

``"auto"`` (default)
    Exact and fast: one weight -> the scaled chi2_1 survival function; otherwise the
    saddlepoint-contour inversion of :mod:`bayesmages.stats._contour` (Laplace inversion along a
    parabola through the saddlepoint, trapezoid rule refined to relative agreement 1e-6). It has
    no cancellation in the tail, so it is accurate in *relative* terms from p ~ 1 down to the
    smallest doubles (measured against mpmath: see ``bench/genes.py``). If that integration does
    not converge (seen only with one dominant weight and tiny others, a little below the mean), Imhof's
    integral is used when p > 1e-4 and QUADPACK's error bound meets the 1e-6 relative target; else
    the Lugannani-Rice saddlepoint value is used instead,
    with an :class:`~bayesmages.errors.AccuracyWarning` (its relative error can reach ~15 %), and
    :func:`pvalue_many` can report which values it affected. Results
    are clipped to ``[tiny, 1]`` with ``tiny`` = the smallest normal double (2.2e-308), so a
    finite input never gives 0, a negative value or NaN.
``"davies"``
    Davies (1980), as R's ``CompQuadForm::davies`` / ``SKAT_davies`` (absolute accuracy ``acc``,
    at most ``lim`` terms). Returns what R returns, including values ``<= 0`` or ``2`` on faults;
    :func:`davies` also gives the fault codes.
``"imhof"``
    Imhof (1961) numerical integration (``scipy.integrate.quad``); absolute accuracy ~1e-12.
``"liu"``, ``"liu.mod"``
    Liu, Tang & Zhang (2009) moment matching, and R SKAT's modified version, from the cumulants
    c_k = sum(lambda^k) exactly as R SKAT computes them (see :func:`liu_params`).
``"saddlepoint"``
    Lugannani-Rice / Kuonen (1999); relative error a few percent with several comparable weights,
    up to ~15% with one dominant weight (chi2_1-like), roughly constant far into the tail.

Examples
--------
>>> import numpy as np
>>> from bayesmages.stats.quadform import pvalue
>>> round(float(pvalue(3.841458820694124, [1.0])), 6)
0.05
>>> p = pvalue(np.array([5.0, 50.0]), [2.0, 1.0, 0.5])
>>> bool(p[0] > p[1] > 0)
True
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import integrate, special, stats

from bayesmages.errors import AccuracyWarning, InputError
from bayesmages.stats._contour import contour_tail, contour_tail_slopes
from bayesmages.stats.davies import davies_many
from bayesmages.stats.qf_approx import (
    _TINY,
    _quantiles,
    _shape,
    _weights,
    cgf_root,
    liu,
    liu_mod,
    liu_params,
    liu_params_rows,
    saddlepoint,
)

__all__ = [
    "METHODS",
    "cgf_root",
    "davies",
    "imhof",
    "liu",
    "liu_mod",
    "liu_params",
    "liu_params_rows",
    "pvalue",
    "pvalue_many",
    "pvalue_rows",
    "saddlepoint",
]

METHODS = ("auto", "davies", "imhof", "liu", "liu.mod", "saddlepoint")
def davies(
    q: float | np.ndarray, eigenvalues: Sequence[float] | np.ndarray, *, acc: float = 1e-6, lim: int = 10_000
) -> tuple[np.ndarray, np.ndarray]:
    """Davies' algorithm as in R's ``CompQuadForm::davies`` (and R SKAT's ``SKAT_davies``).

    Parameters
    ----------
    q : float or array_like
        Quantile(s).
    eigenvalues : array_like
        Non-negative weights lambda_k.
    acc : float
        Absolute error bound (R SKAT uses 1e-6).
    lim : int
        Maximum number of integration terms (R SKAT uses 10,000).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        p-values ``1 - P(Q < q)`` as R returns them (can be ``<= 0`` far in the tail, and 2 on
        faults 1 and 4) and the integer fault codes (0 fine, 1 accuracy not reached within
        ``lim`` terms, 2 round-off may be significant, 4 evaluation counter exceeded ``lim``).

    Examples
    --------
    >>> p, fault = davies([3.84], [1.0, 1.0])
    >>> round(float(p[0]), 4), int(fault[0])
    (0.1466, 0)
    """
    if not (acc > 0) or int(lim) < 1:
        raise InputError(f"davies: need acc > 0 and lim >= 1, got acc={acc!r}, lim={lim!r}")
    lam = _weights(eigenvalues)
    qs, _ = _quantiles(q)
    # All quantiles in one call: each follows the algorithm on its own (its own term count,
    # convergence factor and fault), and the inversion sums are evaluated together.
    return davies_many(qs, lam, float(acc), int(lim))


def imhof(
    q: float | np.ndarray,
    eigenvalues: Sequence[float] | np.ndarray,
    *,
    epsabs: float = 1e-12,
    epsrel: float = 1e-10,
    limit: int = 10_000,
) -> np.ndarray:
    """Imhof (1961): P(Q > q) = 1/2 + (1/pi) int_0^inf sin(theta(u)) / (u rho(u)) du.

    theta(u) = sum_k atan(lambda_k u)/2 - q u/2 and rho(u) = prod_k (1 + lambda_k^2 u^2)^(1/4).
    The integral is computed in double precision by ``scipy.integrate.quad`` (adaptive on the first
    two periods, QUADPACK's Fourier integrator QAWF beyond), so the result has *absolute* accuracy
    of about ``epsabs``: fine for p above ~1e-10, meaningless below.

    Parameters
    ----------
    q : float or array_like
        Quantile(s).
    eigenvalues : array_like
        Non-negative weights.
    epsabs, epsrel, limit
        Passed to ``scipy.integrate.quad``.

    Returns
    -------
    numpy.ndarray
        p-values (integration warnings are suppressed; compare with ``"auto"`` when in doubt).

    Examples
    --------
    >>> round(float(imhof(2.0, [1.0, 1.0])[0]), 6)  # chi2_2 survival exp(-1)
    0.367879
    """
    lam = _weights(eigenvalues)
    qs, _ = _quantiles(q)
    out = np.ones(qs.size)
    for i, qi in enumerate(qs):
        if qi > 0:
            out[i] = _imhof_one(float(qi), lam, epsabs=epsabs, epsrel=epsrel, limit=limit)[0]
    return out


def _imhof_one(qi: float, lam: np.ndarray, *, epsabs: float = 1e-12, epsrel: float = 1e-10,
               limit: int = 10_000) -> tuple[float, float]:
    """Imhof's integral for one ``q > 0``: ``(p, QUADPACK's estimate of its absolute error)``."""

    def amp(u: float) -> tuple[float, float]:
        # A(u) = sum atan(lam u)/2 and the envelope 1/(u rho(u)); theta(u) = A(u) - q u/2.
        return 0.5 * float(np.sum(np.arctan(lam * u))), float(np.exp(-0.25 * np.sum(np.log1p((lam * u) ** 2))) / u)

    def head(u: float) -> float:
        if u == 0.0:
            return 0.5 * (float(lam.sum()) - qi)
        a, env = amp(u)
        return np.sin(a - 0.5 * qi * u) * env

    # [0, a]: plain adaptive quadrature; [a, inf): the oscillation sin(A - q u/2) is split as
    # sin A cos(q u/2) - cos A sin(q u/2) and handled by QUADPACK's Fourier integrator (QAWF).
    omega = 0.5 * qi
    a = 4.0 * np.pi / omega
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        v0, e0 = integrate.quad(head, 0.0, a, epsabs=epsabs, epsrel=epsrel, limit=limit)[:2]
        v1, e1 = integrate.quad(lambda u: np.sin(amp(u)[0]) * amp(u)[1], a, np.inf, weight="cos", wvar=omega,
                                epsabs=epsabs, limlst=200, limit=limit)[:2]
        v2, e2 = integrate.quad(lambda u: -np.cos(amp(u)[0]) * amp(u)[1], a, np.inf, weight="sin", wvar=omega,
                                epsabs=epsabs, limlst=200, limit=limit)[:2]
    return 0.5 + (v0 + v1 + v2) / np.pi, (e0 + e1 + e2) / np.pi


def _auto(qs: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The default method (see the module docstring) for one spectrum: ``(p, approximate)``."""
    return _auto_rows(qs, np.broadcast_to(lam, (qs.size, lam.size)))


def _auto_rows(
    qs: np.ndarray, lam: np.ndarray, ncp: np.ndarray | None = None, rtol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """``auto`` for rows of (q, weights[, non-centralities]).

    Weights are padded with zeros, each row with a positive one.
    Returns the p-values and a boolean mask of the rows where the contour integral did not
    converge and the saddlepoint approximation was used (no warning here: callers decide). With
    non-centralities there is no such fallback: the last contour sum is kept and flagged.
    """
    out = np.ones(qs.size)
    approximate = np.zeros(qs.size, dtype=bool)
    npos = (lam > 0).sum(axis=1)
    top = lam.max(axis=1)
    # P(Q <= q) <= P(top chi2_1 <= q) < sqrt(q / top): below 1e-34 * top that is < 1e-17, so p = 1 to
    # double precision (and the tail integrals would only meet underflow there). With
    # non-centralities Q is stochastically larger, so the bound holds as well.
    pos = qs > 1e-34 * top
    central = np.ones(qs.size, dtype=bool) if ncp is None else ~np.any(ncp * (lam > 0) > 0, axis=1)
    one = (npos == 1) & pos & central
    out[one] = special.chdtrc(1.0, qs[one] / top[one])  # stats.chi2.sf's own function, without its overhead
    many = pos & ~one
    if many.any():
        idx = np.flatnonzero(many)
        log_p, ok = contour_tail(qs[idx], np.ascontiguousarray(lam[idx]),
                                 ncp=None if ncp is None else np.ascontiguousarray(ncp[idx]), rtol=rtol)
        out[idx] = np.exp(log_p)
        for i in idx[~ok]:
            if not central[i]:
                approximate[i] = True
                continue
            row = lam[i][lam[i] > 0]
            out[i] = saddlepoint(qs[i], row)[0]
            # Deep lower tail (q far below the mean, where the contour sum can stall): Q <= q needs every
            # independent term lam_j chi2_1 <= q, so P(Q <= q) <= B = prod_j P(chi2_1 <= q / lam_j) and
            # p lies in [1 - B, 1]; with B <= rtol that interval is the engine's accuracy, not an approximation.
            lower = float(np.prod(stats.chi2.cdf(qs[i] / row, 1)))
            if lower <= rtol:
                out[i] = min(max(out[i], 1.0 - lower), 1.0)
                continue
            # Elsewhere the contour stalls with one dominant weight and tiny others, a little below the
            # mean (p near 1). There Imhof's integral is accurate in absolute terms (~1e-12), hence in
            # relative terms too: take it when QUADPACK's own error bound meets the engine's rtol.
            if out[i] > 1e-4:
                p_imhof, err = _imhof_one(float(qs[i]), row)
                if np.isfinite(p_imhof) and 0.0 < p_imhof <= 1.0 + err and err <= rtol * p_imhof:
                    out[i] = min(p_imhof, 1.0)
                    continue
            # A tail below the smallest double is reported as that floor by either method (e.g.
            # q = 1e12 with weights ~1, where the contour sum underflows): nothing approximate there.
            approximate[i] = out[i] > _TINY
    out[~np.isfinite(out)] = _TINY
    return np.clip(out, _TINY, 1.0), approximate


def _warn_approximate(n_approx: int, n: int, stacklevel: int, noncentral: bool = False) -> None:
    fallback = ("the last contour sum was kept for them (not converged)" if noncentral else
                "the saddlepoint approximation was used for them (relative error up to ~15%)")
    warnings.warn(
        f"quadform: the exact contour integral did not converge for {n_approx} of {n} p-value(s); {fallback}",
        AccuracyWarning, stacklevel=stacklevel + 1)


def pvalue(
    q: float | np.ndarray,
    eigenvalues: Sequence[float] | np.ndarray,
    method: str = "auto",
    *,
    acc: float = 1e-6,
    lim: int = 10_000,
) -> float | np.ndarray:
    """P(sum_k lambda_k chi2_1 > q), vectorised over ``q``.

    Parameters
    ----------
    q : float or array_like
        Observed statistic(s); a scalar gives a float, an array an array of the same length.
    eigenvalues : array_like
        Weights lambda_k >= 0 (e.g. ``eigvalsh`` of the null covariance); zeros are ignored and
        round-off negatives above ``-1e-8 * max`` are treated as zero.
    method : {"auto", "davies", "imhof", "liu", "liu.mod", "saddlepoint"}
        See the module docstring. ``"auto"`` is accurate to relative ~1e-7 at any p and never
        returns 0, a negative value or NaN for finite input (where its exact integral does not
        converge it warns, see Warns).
    acc, lim
        Davies' absolute accuracy and term limit (used by ``"davies"`` only).

    Returns
    -------
    float or numpy.ndarray
        Tail probabilities.

    Raises
    ------
    InputError
        Unknown method, non-finite ``q``, negative, non-finite or all-zero weights.

    Warns
    -----
    AccuracyWarning
        ``"auto"`` only: the exact integral did not converge for some ``q`` and the saddlepoint
        approximation (relative error up to ~15 %) was used for them.

    Examples
    --------
    >>> float(pvalue(0.0, [1.0, 2.0]))
    1.0
    >>> p = pvalue(200.0, [1.0, 0.5, 0.25])  # far tail: relative accuracy is kept
    >>> bool(1e-45 < p < 1e-40)
    True
    """
    if method not in METHODS:
        raise InputError(f"method: expected one of {list(METHODS)}, got {method!r}")
    lam = _weights(eigenvalues)
    qs, scalar = _quantiles(q)
    if method == "auto":
        p, approximate = _auto(qs, lam)
        if approximate.any():
            _warn_approximate(int(approximate.sum()), qs.size, stacklevel=2)
    elif method == "davies":
        p = davies(qs, lam, acc=acc, lim=lim)[0]
    elif method == "imhof":
        p = imhof(qs, lam)
    elif method == "liu":
        p = liu(qs, lam)
    elif method == "liu.mod":
        p = liu_mod(qs, lam)
    else:
        p = saddlepoint(qs, lam)
    return _shape(np.asarray(p, dtype=np.float64), scalar)


def pvalue_rows(
    q: Sequence[float] | np.ndarray,
    eigenvalues: np.ndarray,
    ncp: np.ndarray | None = None,
    *,
    rtol: float = 1e-6,
    return_approximate: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """P(sum_k lambda_ik chi2_1(delta_ik) > q_i) for rows i: the exact (``"auto"``) engine, vectorised.

    Non-central chi-square(1) terms (``ncp``) are supported here; the inversion is the same
    saddlepoint-contour integral with the non-central moment generating function, so relative
    accuracy is kept far into the tail.

    Parameters
    ----------
    q : array_like
        Shape (n,), the quantiles.
    eigenvalues : numpy.ndarray
        Shape (m,) (the same weights for every row) or (n, m); non-negative, padded with zeros as
        needed, at least one positive weight per row.
    ncp : numpy.ndarray, optional
        Non-centralities delta_ik >= 0, broadcastable to (n, m); default central.
    rtol : float
        Relative agreement of successive contour sums required (default 1e-6, as
        :func:`pvalue`); the error of the result is far below it.
    return_approximate : bool
        Also return the mask of rows whose contour integral did not converge (no warning then).

    Returns
    -------
    numpy.ndarray
        Shape (n,) tail probabilities (or the tuple with the mask).

    Warns
    -----
    AccuracyWarning
        Without ``return_approximate``: some rows did not converge.

    Examples
    --------
    >>> from scipy import stats
    >>> p = pvalue_rows([30.0], np.array([1.0]), np.array([[5.0]]))
    >>> bool(abs(p[0] / stats.ncx2.sf(30.0, 1, 5.0) - 1) < 1e-8)
    True
    """
    qs, _ = _quantiles(q)
    lam = np.asarray(eigenvalues, dtype=np.float64)
    lam = np.broadcast_to(lam, (qs.size, lam.shape[-1])) if lam.ndim == 1 else lam
    if lam.shape[0] != qs.size or not np.all(np.isfinite(lam)) or np.any(lam < 0) or np.any(lam.max(axis=1) <= 0):
        raise InputError(f"pvalue_rows: eigenvalues must be finite, non-negative, shape ({qs.size}, m) or (m,), "
                         "with a positive weight in every row")
    nc = None
    if ncp is not None:
        nc = np.broadcast_to(np.asarray(ncp, dtype=np.float64), lam.shape)
        if not np.all(np.isfinite(nc)) or np.any(nc < 0):
            raise InputError("pvalue_rows: ncp must be finite and non-negative")
    if not 0 < rtol < 1:
        raise InputError(f"pvalue_rows: rtol must be in (0, 1), got {rtol!r}")
    p, approximate = _auto_rows(qs, lam, nc, rtol)
    if return_approximate:
        return p, approximate
    if approximate.any():
        _warn_approximate(int(approximate.sum()), qs.size, stacklevel=2, noncentral=nc is not None)
    return p


def log_tail_slopes(
    q: np.ndarray, eigenvalues: np.ndarray, *, rtol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log P(Q_i > q_i)`` of central forms (rows of weights) with its first two derivatives in q.

    For quantile inversion (:func:`bayesmages.skat.skato_exact.exact_quantiles`): the value is
    that of :func:`pvalue_rows`; the derivatives come from the same contour integral
    (:func:`bayesmages.stats._contour.contour_tail_slopes`), and are NaN for the rows where it did
    not converge (their value is then :func:`pvalue_rows`' fallback).

    Parameters
    ----------
    q : numpy.ndarray
        Shape (n,), positive quantiles.
    eigenvalues : numpy.ndarray
        Shape (n, m), non-negative weights padded with zeros, a positive weight in every row.
    rtol : float
        As in :func:`pvalue_rows`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        ``log p``, ``d log p / dq`` and ``d^2 log p / dq^2`` per row.
    """
    qs = np.asarray(q, dtype=np.float64)
    lam = np.ascontiguousarray(eigenvalues, dtype=np.float64)
    log_p, ok, d1, d2 = contour_tail_slopes(qs, lam, rtol=rtol)
    ok &= np.isfinite(d1) & np.isfinite(d2) & (qs > 1e-34 * lam.max(axis=1))
    if not ok.all():
        bad = ~ok
        with np.errstate(divide="ignore"):
            log_p[bad] = np.log(_auto_rows(qs[bad], lam[bad], None, rtol)[0])
        d1[bad] = d2[bad] = np.nan
    return log_p, d1, d2


def pvalue_many(
    q: Sequence[float] | np.ndarray, eigenvalue_sets: Sequence[np.ndarray], *, return_approximate: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``pvalue(q[i], eigenvalue_sets[i], method="auto")`` for many independent forms at once.

    The forms are grouped by size and each group is integrated in one vectorised batch, which
    removes the per-call Python overhead (20,000 gene-sized forms take seconds).

    Parameters
    ----------
    q : array_like
        Shape (n,), one statistic per form.
    eigenvalue_sets : sequence of array_like
        n weight vectors (any lengths).
    return_approximate : bool
        Also return a boolean mask of the p-values computed by the saddlepoint fallback, and do
        not warn (the caller records them and tells the user).

    Returns
    -------
    numpy.ndarray
        Shape (n,) p-values; with ``return_approximate``, the tuple ``(p, approximate)``.

    Warns
    -----
    AccuracyWarning
        Without ``return_approximate``: some p-values come from the saddlepoint fallback.

    Examples
    --------
    >>> p = pvalue_many([3.84, 5.99], [[1.0], [1.0, 1.0]])
    >>> [round(float(x), 3) for x in p]
    [0.05, 0.05]
    """
    qs, _ = _quantiles(q)
    if len(eigenvalue_sets) != qs.size:
        raise InputError(f"pvalue_many: {qs.size} statistics but {len(eigenvalue_sets)} eigenvalue sets")
    sets = [_weights(e, name=f"eigenvalue_sets[{i}]") for i, e in enumerate(eigenvalue_sets)]
    sizes = np.array([s.size for s in sets])
    out = np.empty(qs.size)
    approximate = np.zeros(qs.size, dtype=bool)
    # Buckets of similar size (powers of 1.25) keep the zero padding below ~25%. Each bucket is
    # padded to its own fixed width, not to its largest member: the padding length changes numpy's
    # pairwise summation, so a width that depended on the other forms in the call would make a
    # form's p-value depend (in the last bits) on how the forms were split into calls.
    bucket = np.floor(np.log(sizes) / np.log(1.25)).astype(int)
    for b in np.unique(bucket):
        idx = np.flatnonzero(bucket == b)
        width = max(int(np.ceil(1.25 ** (b + 1))), int(sizes[idx].max()))  # max(): guards round-off only
        mat = np.zeros((idx.size, width))
        for r, i in enumerate(idx):
            mat[r, : sizes[i]] = sets[i]
        out[idx], approximate[idx] = _auto_rows(qs[idx], mat)
    if return_approximate:
        return out, approximate
    if approximate.any():
        _warn_approximate(int(approximate.sum()), qs.size, stacklevel=2)
    return out
