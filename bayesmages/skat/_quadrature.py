"""Adaptive Gauss-Kronrod (3-7 or 7-15) quadrature of a vectorised integrand on a piecewise-smooth range.

SKAT-O's p-value is a one-dimensional integral whose integrand costs one Davies inversion per
point. R's ``integrate`` (QUADPACK QAGS) spends about a thousand of them per gene, mostly on the
``1/sqrt(x)`` singularity of the chi-square(1) density and on the kinks of a piecewise-linear
minimum. :mod:`bayesmages.skat.skato` removes both before integrating (a change of variable and
explicit breakpoints), so a Gauss-Kronrod pair on each smooth piece, bisected only where its
error estimate is too large, needs a few dozen points; all points of a round are evaluated in
one call.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["RULES", "gauss_kronrod"]


def _exact_weights(nodes: np.ndarray, degree: int) -> np.ndarray:
    """Weights integrating the Legendre polynomials up to ``degree`` exactly on [-1, 1]."""
    V = np.polynomial.legendre.legvander(nodes, degree).T
    moments = np.zeros(degree + 1)
    moments[0] = 2.0
    return np.linalg.solve(V, moments)


def _rule(half: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kronrod nodes and weights, and the embedded Gauss weights (zero at the Kronrod-only nodes).

    ``half`` are the non-negative Kronrod abscissae, largest first, ending with 0; every second
    one (from the second) is a Gauss node. The weights follow from exactness on polynomials.
    """
    h = np.asarray(half)
    nodes = np.concatenate([-h[:-1], h[::-1]])
    gauss = np.zeros(nodes.size)
    gauss[1::2] = _exact_weights(nodes[1::2], nodes[1::2].size - 1)
    return nodes, _exact_weights(nodes, nodes.size - 1), gauss


# Kronrod extensions of the 3- and 7-point Gauss-Legendre rules (exact to degree 11 and 23).
RULES = {
    7: _rule([0.960491268708020, 0.774596669241483, 0.434243749346802, 0.0]),
    15: _rule([0.991455371120813, 0.949107912342759, 0.864864423359769, 0.741531185599394,
               0.586087235467691, 0.405845151377397, 0.207784955007898, 0.0]),
}


def gauss_kronrod(
    f: Callable[[np.ndarray], np.ndarray],
    breaks: np.ndarray,
    *,
    rtol: float,
    atol: float,
    max_pieces: int = 200,
    points: int = 15,
) -> tuple[float, float]:
    """Integrate ``f`` over ``[breaks[0], breaks[-1]]``, smooth between consecutive ``breaks``.

    Parameters
    ----------
    f : callable
        Vectorised integrand: an array of points -> an array of values.
    breaks : numpy.ndarray
        Increasing points; the integrand may have kinks there.
    rtol, atol : float
        Stop when the summed error estimate ``|K15 - G7|`` is below ``max(atol, rtol * |I|)``.
    max_pieces : int
        Bisection stops once this many pieces have been evaluated (the estimate is then returned
        as it is).
    points : {7, 15}
        Kronrod rule per piece (error estimate against its embedded 3- or 7-point Gauss rule).

    Returns
    -------
    (float, float)
        The Kronrod estimate and its error estimate.

    Examples
    --------
    >>> v, err = gauss_kronrod(np.cos, np.array([0.0, np.pi / 2]), rtol=1e-12, atol=0.0)
    >>> round(v, 12)
    1.0
    """
    nodes, k_weights, g_weights = RULES[points]
    lo, hi = np.asarray(breaks[:-1], dtype=np.float64), np.asarray(breaks[1:], dtype=np.float64)
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    done_val = done_err = 0.0  # pieces accepted in earlier rounds
    evaluated = 0
    while True:
        half = 0.5 * (hi - lo)
        pts = (0.5 * (hi + lo))[:, None] + half[:, None] * nodes[None, :]
        vals = np.asarray(f(pts.ravel()), dtype=np.float64).reshape(pts.shape)
        k = half * (vals @ k_weights)
        err = np.abs(k - half * (vals @ g_weights))
        total, total_err = done_val + float(k.sum()), done_err + float(err.sum())
        tol = max(atol, rtol * abs(total))
        evaluated += lo.size
        if total_err <= tol or evaluated >= max_pieces:
            return total, total_err
        # Bisect the pieces that hold more than their share of the error budget (at least the worst).
        split = err > tol / max(lo.size, 1)
        split[int(np.argmax(err))] = True
        done_val += float(k[~split].sum())
        done_err += float(err[~split].sum())
        mid = 0.5 * (lo[split] + hi[split])
        lo, hi = np.concatenate([lo[split], mid]), np.concatenate([mid, hi[split]])
