"""Tail of a sum of independent discrete (lattice) variables plus a chi-square mixture.

Used by the saddlepoint SKAT for binary traits (:func:`bayesmages.skat.binary.spa_skat`): the
squared scores of rare variants have discrete, heavy-tailed exact laws, the others a chi-square
mixture. For ``Q = sum_j V_j + Q_R`` with independent discrete ``V_j`` (atoms ``values[j]``,
probabilities ``probs[j]``) and ``Q_R = sum_k lam_k chi2_1`` independent of them,

    P(Q >= q) = sum_u P(sum_j V_j = u) P(Q_R >= q - u).

The law of ``sum_j V_j`` is built on a grid of ``n_bins`` cells of width ``h = q / n_bins``: each
atom is rounded *up* to the grid (so the computed tail is never below the true one: conservative,
by at most ``len(values)`` cells, 0.25 % of ``q`` with 10 variables and the default 4,096 cells),
atoms at or beyond ``q`` are pooled (the mixture's tail there is 1), and atoms with probability
below ``1e-12`` are pooled with them (conservative too: they add at most their total mass, ~1e-12
per variable's dropped atoms, to the tail). The mixture's tail is the exact engine
(:func:`bayesmages.stats.quadform.pvalue_rows`) at every occupied cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bayesmages.stats import quadform

__all__ = ["lattice_mixture_tail"]

_DROP = 1e-12  # atoms below this probability are pooled with the tail (conservative)


def lattice_mixture_tail(
    q: float,
    values: Sequence[np.ndarray],
    probs: Sequence[np.ndarray],
    lam: np.ndarray | None = None,
    *,
    n_bins: int = 4096,
) -> float:
    """``P(sum_j V_j + Q_R >= q)``: discrete ``V_j`` (``values[j]``, ``probs[j]``) plus ``Q_R = sum lam chi2_1``.

    Parameters
    ----------
    q : float
        Observed total (> 0; ``q <= 0`` gives 1).
    values, probs : sequence of numpy.ndarray
        Atoms (non-negative) and their probabilities (each summing to 1) of the independent discrete parts.
    lam : numpy.ndarray, optional
        Non-negative weights of the chi-square(1) mixture (empty or ``None``: no continuous part).
    n_bins : int
        Grid cells below ``q`` (see the module docstring for the rounding, which is conservative).

    Returns
    -------
    float
        The tail probability, in [0, 1].

    Examples
    --------
    >>> float(lattice_mixture_tail(2.0, [np.array([0.0, 2.0])], [np.array([0.75, 0.25])]))
    0.25
    """
    if q <= 0:
        return 1.0
    h = q / n_bins
    law = np.zeros(n_bins + 1)  # cell n_bins pools everything >= q
    law[0] = 1.0
    for v, pr in zip(values, probs, strict=True):
        # (1 - 1e-12): an atom on a grid point stays there despite round-off in v / h
        cells = np.minimum(np.ceil(np.asarray(v, dtype=np.float64) / h * (1.0 - 1e-12)), n_bins).astype(np.int64)
        pr = np.asarray(pr, dtype=np.float64)
        keep = pr > _DROP
        cell_p = np.bincount(cells[keep], weights=pr[keep], minlength=n_bins + 1)
        new = np.zeros(n_bins + 1)
        # the pool stays pooled whatever the atom; dropped atoms join it
        new[n_bins] = law[n_bins] + law[:n_bins].sum() * (float(pr[~keep].sum()) + cell_p[n_bins])
        below = law[:n_bins]
        csum = np.concatenate([[0.0], np.cumsum(below)])
        for c in np.flatnonzero(cell_p[:n_bins]):
            p = cell_p[c]
            new[c:n_bins] += p * below[: n_bins - c]
            new[n_bins] += p * (csum[n_bins] - csum[n_bins - c])
        law = new
    tail = float(law[n_bins])
    occupied = np.flatnonzero(law[:n_bins] > 0)
    lam = np.empty(0) if lam is None else np.asarray(lam, dtype=np.float64)
    lam = lam[lam > 0]
    if occupied.size and lam.size:
        rest = q - occupied * h
        tail += float(law[occupied] @ np.asarray(quadform.pvalue_rows(rest, lam)))
    return min(max(tail, 0.0), 1.0) if math.isfinite(tail) else 1.0
