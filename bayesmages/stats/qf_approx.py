"""Approximate tail probabilities of quadratic forms, and the input checks every method shares.

``P(sum_k lambda_k chi2_1 > q)`` by moment matching (Liu, Tang & Zhang 2009, and R SKAT's modified
version, from c_k = sum lambda^k exactly as R computes them: :func:`liu`, :func:`liu_mod`,
:func:`liu_params`) and by the Lugannani-Rice saddlepoint (Kuonen 1999: :func:`saddlepoint`, with
the root of the cumulant generating function's equation :func:`cgf_root`). They are approximations
(per cent in the bulk, orders of magnitude in the far tail for Liu); the exact engine is
:func:`bayesmages.stats.quadform.pvalue`, which re-exports these functions and uses the saddlepoint
only as its announced fall-back (docs/genes.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special, stats

from bayesmages.errors import InputError

__all__ = ["cgf_root", "liu", "liu_mod", "liu_params", "liu_params_rows", "saddlepoint"]

_TINY = float(np.finfo(np.float64).tiny)
_NEG_TOL = 1e-8  # eigenvalues in [-1e-8 * max, 0) are round-off from eigvalsh and set to 0


def _weights(eigenvalues: object, name: str = "eigenvalues") -> np.ndarray:
    """Validate weights: finite, non-negative up to round-off, at least one positive."""
    lam = np.asarray(eigenvalues, dtype=np.float64).ravel()
    if lam.size == 0:
        raise InputError(f"{name}: expected at least one positive weight, got an empty array")
    if not np.all(np.isfinite(lam)):
        raise InputError(f"{name}: all weights must be finite")
    top = lam.max()
    if top <= 0:
        raise InputError(f"{name}: expected at least one positive weight, the largest is {top:g}")
    if lam.min() < -_NEG_TOL * top:
        raise InputError(
            f"{name}: weights must be non-negative (positive semi-definite form); found {lam.min():g} "
            f"with largest {top:g}"
        )
    return lam[lam > 0]


def _quantiles(q: object) -> tuple[np.ndarray, bool]:
    arr = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError("q: quantiles must be finite numbers")
    return arr.ravel(), arr.ndim == 0


def _shape(p: np.ndarray, scalar: bool) -> float | np.ndarray:
    return float(p[0]) if scalar else p


def liu_params(eigenvalues: Sequence[float] | np.ndarray, modified: bool) -> dict[str, float]:
    """Moment-matching parameters of Liu, Tang & Zhang (2009), as R SKAT computes them.

    With c_k = sum(lambda^k), s1 = c3 / c2^1.5 and s2 = c4 / c2^2: if s1^2 > s2,
    a = 1 / (s1 - sqrt(s1^2 - s2)), d = s1 a^3 - a^2, l = a^2 - 2 d; otherwise ``liu``:
    a = 1/s1, d = 0, l = 1/s1^2 and ``liu.mod`` (R SKAT's modification): l = 1/s2, a = sqrt(l), d = 0.
    All eigenvalues are used (R uses traces of the full matrix, without truncation).

    Parameters
    ----------
    eigenvalues : array_like
        Non-negative weights.
    modified : bool
        ``True`` for R SKAT's "liu.mod", ``False`` for the original "liu".

    Returns
    -------
    dict
        ``muQ`` (= c1), ``sigmaQ`` (= sqrt(2 c2)), ``muX`` (= l + d), ``sigmaX`` (= sqrt(2) a),
        ``df`` (l), ``ncp`` (d).

    Examples
    --------
    >>> liu_params([1.0, 1.0], modified=True)["df"]
    2.0
    """
    lam = _weights(eigenvalues)
    return {k: float(v[0]) for k, v in liu_params_rows(lam[None, :], modified).items()}


def liu_params_rows(lam: np.ndarray, modified: bool) -> dict[str, np.ndarray]:
    """:func:`liu_params` for each row of ``lam`` (rows x m, non-negative, padded with zeros), as arrays."""
    c1, c2, c3, c4 = (np.sum(lam**k, axis=1) for k in (1, 2, 3, 4))
    s1 = c3 / c2**1.5
    s2 = c4 / c2**2
    nonc = s1 * s1 > s2  # never for exact arithmetic (c3^2 <= c2 c4), possible by round-off
    with np.errstate(divide="ignore", invalid="ignore"):
        a_nc = 1.0 / (s1 - np.sqrt(np.maximum(s1 * s1 - s2, 0.0)))
        d = np.where(nonc, s1 * a_nc**3 - a_nc * a_nc, 0.0)
        if modified:
            df = np.where(nonc, a_nc * a_nc - 2.0 * d, 1.0 / s2)
            a = np.where(nonc, a_nc, np.sqrt(df))
        else:
            a = np.where(nonc, a_nc, 1.0 / s1)
            df = np.where(nonc, a_nc * a_nc - 2.0 * d, 1.0 / (s1 * s1))
    return {
        "muQ": c1,
        "sigmaQ": np.sqrt(2.0 * c2),
        "muX": df + d,
        "sigmaX": np.sqrt(2.0) * a,
        "df": df,
        "ncp": d,
    }


def _liu(q: float | np.ndarray, eigenvalues: Sequence[float] | np.ndarray, modified: bool) -> np.ndarray:
    par = liu_params(eigenvalues, modified)
    qs, _ = _quantiles(q)
    x = (qs - par["muQ"]) / par["sigmaQ"] * par["sigmaX"] + par["muX"]
    if par["ncp"] == 0.0:
        return stats.chi2.sf(x, par["df"])
    return stats.ncx2.sf(x, par["df"], par["ncp"])


def liu(q: float | np.ndarray, eigenvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Liu, Tang & Zhang (2009) approximation, as R SKAT's ``method="liu"``.

    Parameters
    ----------
    q : float or array_like
        Quantile(s).
    eigenvalues : array_like
        Non-negative weights.

    Returns
    -------
    numpy.ndarray
        Approximate p-values.

    Examples
    --------
    >>> round(float(liu(3.84, [1.0])[0]), 4)  # exact for one weight
    0.05
    """
    return _liu(q, eigenvalues, False)


def liu_mod(q: float | np.ndarray, eigenvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """R SKAT's modified Liu approximation (``method="liu.mod"``; kurtosis-matched df).

    Parameters
    ----------
    q : float or array_like
        Quantile(s).
    eigenvalues : array_like
        Non-negative weights.

    Returns
    -------
    numpy.ndarray
        Approximate p-values.

    Examples
    --------
    >>> round(float(liu_mod(3.84, [1.0])[0]), 4)
    0.05
    """
    return _liu(q, eigenvalues, True)


def _cgf_root(q: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Solve K'(s) = q on (-inf, 1/(2 max lam)) for each q (K the cumulant generating function).

    ``lam`` is one weight vector (m,) for every q, or one row (n, m) per q (zero-padded).
    """
    L = lam[None, :] if lam.ndim == 1 else lam
    cmax = 0.5 / L.max(axis=1)
    lo = -L.shape[1] / np.maximum(q, 1e-300) - 1.0  # K'(lo) < q there
    hi = np.broadcast_to(cmax, q.shape).copy()
    s = np.clip(cmax - 0.5 / np.maximum(q, 1e-300), lo, 0.5 * cmax)
    for _ in range(200):
        d = 1.0 - 2.0 * L * s[:, None]
        r = L / d
        k1 = r.sum(axis=1) - q
        k2 = 2.0 * (r * r).sum(axis=1)
        hi = np.where(k1 > 0, s, hi)
        lo = np.where(k1 > 0, lo, s)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # For q far below the mean (e.g. 1e-185) K'' underflows to 0; the non-finite Newton
            # step is then replaced by bisection just below, as intended.
            new = s - k1 / k2
        bad = (new <= lo) | (new >= hi) | ~np.isfinite(new)
        new = np.where(bad, 0.5 * (lo + hi), new)
        if np.all(np.abs(new - s) <= 1e-15 * np.maximum(np.abs(s), 1e-12)):
            s = new
            break
        s = new
    return s


def cgf_root(q: float | np.ndarray, eigenvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """The saddlepoint s_hat(q): the root of K'(s) = q, with K the cumulant generating function of Q.

    ``-s_hat(q)`` is the leading term of ``d log P(Q > q) / dq`` in the tail (used to start
    quantile inversions).

    Examples
    --------
    >>> round(float(cgf_root(np.array([2.0]), [1.0])[0]), 12)  # chi2_1: K'(s) = 1 / (1 - 2 s)
    0.25
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    qs = np.asarray(q, dtype=np.float64).ravel()
    if lam.ndim == 2:  # one zero-padded row of weights per quantile
        if lam.shape[0] != qs.size or not np.all(np.isfinite(lam)) or np.any(lam < 0) or np.any(lam.max(1) <= 0):
            raise InputError("cgf_root: rows of weights must be finite, non-negative, one per quantile")
        return _cgf_root(qs, lam)
    return _cgf_root(qs, _weights(lam))


def saddlepoint(q: float | np.ndarray, eigenvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Lugannani-Rice saddlepoint approximation (Kuonen 1999), computed in log space.

    With K(s) = -sum log(1 - 2 lambda s)/2 and K'(s_hat) = q: w = sign(s_hat) sqrt(2 (s_hat q -
    K(s_hat))), v = s_hat sqrt(K''(s_hat)) and P(Q > q) ~ 1 - Phi(w) + phi(w) (1/v - 1/w). At
    q = mean (s_hat = 0) the limit 1/2 - kappa3 / (6 sqrt(2 pi) kappa2^1.5) is used.

    Parameters
    ----------
    q : float or array_like
        Quantile(s).
    eigenvalues : array_like
        Non-negative weights.

    Returns
    -------
    numpy.ndarray
        Approximate p-values (relative error a few percent, up to ~15% for one dominant weight).

    Examples
    --------
    >>> p = saddlepoint(60.0, [1.0, 1.0, 1.0])
    >>> bool(abs(p[0] / 5.878e-13 - 1) < 0.05)  # chi2_3 survival at 60
    True
    """
    lam = _weights(eigenvalues)
    qs, _ = _quantiles(q)
    out = np.ones(qs.size)
    pos = qs > 1e-34 * lam.max()  # below, p = 1 to double precision (see _auto_rows)
    if not pos.any():
        return out
    qq = qs[pos]
    s = _cgf_root(qq, lam)
    d = 1.0 - 2.0 * lam[None, :] * s[:, None]
    k = -0.5 * np.log(d).sum(axis=1)
    k2 = 2.0 * ((lam[None, :] / d) ** 2).sum(axis=1)
    w = np.sign(s) * np.sqrt(np.maximum(2.0 * (s * qq - k), 0.0))
    v = s * np.sqrt(k2)
    res = np.empty(qq.size)
    near = np.abs(w) < 1e-4
    kap2, kap3 = 2.0 * np.sum(lam**2), 8.0 * np.sum(lam**3)
    res[near] = 0.5 - kap3 / (6.0 * np.sqrt(2.0 * np.pi) * kap2**1.5)
    ww, vv = w[~near], v[~near]
    big = ww > 0
    # Upper tail in log space: p = phi(w) * (Mills(w) + 1/v - 1/w), no underflow before the end.
    log_phi = -0.5 * ww**2 - 0.5 * np.log(2.0 * np.pi)
    mills = np.sqrt(np.pi / 2.0) * special.erfcx(ww / np.sqrt(2.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        upper = np.exp(log_phi + np.log(np.maximum(mills + 1.0 / vv - 1.0 / ww, _TINY)))
        lower = stats.norm.sf(ww) + np.exp(log_phi) * (1.0 / vv - 1.0 / ww)
    res[~near] = np.where(big, upper, lower)
    out[pos] = np.clip(res, _TINY, 1.0)
    return out
