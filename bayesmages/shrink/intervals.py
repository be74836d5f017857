"""LD-conditional 90% intervals, one rule for every shrinker that gives posterior means and variances.

Under the RSS model on the z scale, ``z ~ N(R b, R)`` (``b`` the non-centralities, ``R`` with unit
diagonal), variant j's z-score is ``z_j = b_j + sum_{k != j} R_jk b_k + e_j`` with ``e_j ~ N(0, 1)``.
Given the neighbours' effects, the **LD-conditional estimate**

    c_j = z_j - sum_{k != j} R_jk b_k

is ``N(b_j, 1)``, so ``c_j -/+ 1.645`` is an exact 90% interval for ``b_j``, whether ``b_j`` is zero
or not. A shrinker supplies the neighbours' effects as posterior means ``E b_k`` with variances
``var_k``; the interval is

    c_j -/+ 1.645 sqrt(1 + sum_{k != j} R_jk^2 var_k),   c_j = z_j - sum_{k != j} R_jk E b_k,

the neighbours' uncertainty propagated as if their errors were independent. That is conservative
for a posterior that is right: the errors of variants in LD are negatively correlated (one effect
sits on one of them), which the sum ignores. It is what keeps the interval honest where the
posterior is confidently wrong (an effect on the wrong member of an LD group, two causal
variants of opposite sign that mask each other): the exact variance under SuSiE's fitted
approximation gave 0.48-0.89 causal coverage on msprime blocks where this rule gave 0.78-1.0
(bench/results/shrink_intervals.md; the choice is explained in docs/shrink.md).

With ``R = I`` it is ``z_j -/+ 1.645``: the marginal interval. It is the one-step ("debiased")
estimate of high-dimensional regression with the identity as the approximate inverse of R.
Where it stops being exact: a causal effect put with confidence on a near-copy (``|r|`` close to
1) of the causal variant; two causal variants in LD that the shrinker misses together; LD that
is not the GWAS sample's (a reference panel: ``e`` is then not ``N(0, R)``).

A shrinker whose posterior means often put a causal effect on an LD neighbour, and whose posterior
variances do not say so (the neural shrinker), gets :func:`union_interval` instead: the hull of the
conditional interval and the marginal interval ``z_j -/+ 1.645``, each exact under its own hypothesis
(the neighbours' effects are the posterior's / the neighbours carry nothing of variant j's signal).

Everything here is on the z scale; callers multiply by their per-variant unit (``se``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

__all__ = ["conditional_estimate", "conditional_interval", "neighbour_sum", "union_interval"]


def conditional_estimate(z: np.ndarray, R: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """LD-conditional estimate ``c_j = z_j - sum_{k != j} R_jk mean_k`` of each variant (z scale).

    The centre of :func:`conditional_interval`, and the unshrunk observation the association types can
    be computed from (:mod:`bayesmages.cluster.observations`). The diagonal is taken as stored (a
    regularised block may have ``R_jj`` slightly off 1).

    Parameters
    ----------
    z, mean : numpy.ndarray
        (m,) or (T, m): z-scores of one block (T traits sharing R) and the neighbours' effects.
    R : numpy.ndarray
        (m, m) symmetric LD correlation matrix.

    Returns
    -------
    numpy.ndarray
        Same shape as ``z``.

    Examples
    --------
    >>> R = np.array([[1.0, 0.9], [0.9, 1.0]])
    >>> conditional_estimate(np.array([5.0, 4.5]), R, np.array([5.0, 0.0])).round(3).tolist()
    [5.0, 0.0]
    """
    return np.asarray(z, dtype=np.float64) - neighbour_sum(R, mean)


def neighbour_sum(R: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``sum_{k != j} R_jk mean_k`` for every variant j (rows of ``mean``: traits sharing the symmetric R).

    Exactly 0 at ``R = I``, so that :func:`conditional_estimate` returns ``z`` itself there.

    Examples
    --------
    >>> neighbour_sum(np.array([[1.0, 0.5], [0.5, 1.0]]), np.array([2.0, 0.0])).tolist()
    [0.0, 1.0]
    """
    mean = np.asarray(mean, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    # one product with R per block for all traits; R is symmetric
    return mean @ R - mean * np.diagonal(R)


def conditional_interval(
    z: np.ndarray, R: np.ndarray, mean: np.ndarray, var: np.ndarray | None = None, *, level: float = 0.9,
) -> tuple[np.ndarray, np.ndarray]:
    """LD-conditional central interval of each variant's non-centrality (z scale).

    Parameters
    ----------
    z : numpy.ndarray
        (m,) or (T, m) z-scores of one block (T traits sharing R).
    R : numpy.ndarray
        (m, m) LD correlation matrix the shrinker used.
    mean : numpy.ndarray
        Same shape as ``z``: the shrinker's posterior means of the non-centralities.
    var : numpy.ndarray, optional
        Same shape as ``z``: their posterior variances (None: the neighbours' effects taken as known).
    level : float
        Central coverage.

    Returns
    -------
    lower, upper : numpy.ndarray
        Same shape as ``z``: ``c -/+ q sqrt(1 + sum_{k != j} R_jk^2 var_k)`` with
        ``c_j = z_j - sum_{k != j} R_jk mean_k`` and ``q`` the standard-normal ``(1 + level) / 2`` quantile.

    Examples
    --------
    >>> lo, hi = conditional_interval(np.array([3.0, 0.5]), np.eye(2), np.array([2.5, 0.0]))
    >>> lo.round(3), hi.round(3)
    (array([ 1.355, -1.145]), array([4.645, 2.145]))
    """
    R = np.asarray(R, dtype=np.float64)
    diag = np.diagonal(R)
    c = conditional_estimate(z, R, mean)
    spread = np.ones_like(c)
    if var is not None:
        v = np.asarray(var, dtype=np.float64)
        spread += v @ (R * R) - v * diag * diag
    half = float(ndtri(0.5 + level / 2.0)) * np.sqrt(spread)
    return c - half, c + half


def union_interval(
    z: np.ndarray, R: np.ndarray, mean: np.ndarray, var: np.ndarray | None = None, *, level: float = 0.9,
) -> tuple[np.ndarray, np.ndarray]:
    """Hull of the LD-conditional interval and the marginal interval ``z_j -/+ q`` (z scale).

    The conditional interval is exact when the neighbours' effects are right, the marginal one when the
    neighbours carry none of variant j's signal (``z_j ~ N(b_j + sum_{k != j} R_jk b_k, 1)``); their hull
    covers ``b_j`` with probability at least ``level`` under either hypothesis, and everything between
    them (an effect shared between j and its neighbours). It is the neural shrinker's interval (with
    its sds as ``var``): no rescaling of its sds made the conditional interval cover the causal effects
    without over-covering the null ones (docs/shrink.md gives the calibration numbers).

    Parameters
    ----------
    z, R, mean, var, level
        As in :func:`conditional_interval` (``var=None``: the neighbours taken as known).

    Returns
    -------
    lower, upper : numpy.ndarray
        Same shape as ``z``: ``min(c_j - h_j, z_j - q)``, ``max(c_j + h_j, z_j + q)`` with ``c_j -/+ h_j`` the
        conditional interval and ``q`` the standard-normal ``(1 + level) / 2`` quantile.

    Examples
    --------
    >>> R = np.array([[1.0, 0.9], [0.9, 1.0]])
    >>> lo, hi = union_interval(np.array([5.0, 4.5]), R, np.array([5.0, 0.0]))
    >>> lo.round(3).tolist(), hi.round(3).tolist()
    ([3.355, -1.645], [6.645, 6.145])
    """
    lo, hi = conditional_interval(z, R, mean, var, level=level)
    q = float(ndtri(0.5 + level / 2.0))
    z = np.asarray(z, dtype=np.float64)
    return np.minimum(lo, z - q), np.maximum(hi, z + q)
