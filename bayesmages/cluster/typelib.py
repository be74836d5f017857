"""Association types and the type library: type-structured Gaussian components of a fitted mixture.

Part of the per-variant association types of :mod:`bayesmages.cluster.types` (which re-exports
these names); the library's weights are fitted by :mod:`bayesmages.cluster.typefit`.

**Types.** For p traits a type is the set A of traits a variant's true effect involves: the empty set
(``"non-prioritised"``), one trait (``"specific:<t>"``) or several (``"shared:<t1>+<t2>[+...]"``).

**Type library.** Each fitted cluster k (covariance Sigma_k of the true effects) is split into
type-structured components, one per non-empty subset A of its *active* traits:
``U_kA = P_A Sigma_k P_A`` (Sigma_k with the rows and columns of the traits outside A set to zero),
plus one null component ``U_0 = 0``. A trait t is active in cluster k when
``Sigma_k[t, t] >= min_signal x`` the typical noise variance of trait t (the median of ``S_i[t]``):
below that, involving t or not gives the same likelihood and the split between the two types
would be arbitrary. The structure of U_kA, not an eigenvector, says which traits it involves, so
nothing depends on eigenvector signs or angle thresholds.

The Gaussian log-density of rows under components plus per-row noise (:func:`gaussian_log_density`)
is shared by the weight fit and the probabilities.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bayesmages.errors import InputError

__all__ = [
    "NULL_TYPE",
    "TypeLibrary",
    "association_types",
    "canonical_grid",
    "gaussian_log_density",
    "type_library",
    "type_name",
]

NULL_TYPE = "non-prioritised"


def type_name(subset: Sequence[int], trait_names: Sequence[str]) -> str:
    """The name of the type involving the traits ``subset`` (indices into ``trait_names``).

    Examples
    --------
    >>> type_name([], ["A", "B"]), type_name([1], ["A", "B"]), type_name([1, 0], ["A", "B"])
    ('non-prioritised', 'specific:B', 'shared:A+B')
    """
    idx = sorted(set(int(t) for t in subset))
    if not idx:
        return NULL_TYPE
    if len(idx) == 1:
        return f"specific:{trait_names[idx[0]]}"
    return "shared:" + "+".join(trait_names[t] for t in idx)


def _subsets(p: int) -> list[tuple[int, ...]]:
    return [c for r in range(1, p + 1) for c in itertools.combinations(range(p), r)]


def association_types(trait_names: Sequence[str]) -> list[str]:
    """All 2^p types of p traits: the null type, each trait, then shared sets by size.

    Examples
    --------
    >>> association_types(["T1", "T2"])
    ['non-prioritised', 'specific:T1', 'specific:T2', 'shared:T1+T2']
    """
    names = [str(t) for t in trait_names]
    return [NULL_TYPE] + [type_name(s, names) for s in _subsets(len(names))]


@dataclass(frozen=True)
class TypeLibrary:
    """Type-structured Gaussian components built from a mixture's clusters.

    Attributes
    ----------
    types : list of str
        All association types (:func:`association_types`), the columns of the probabilities.
    covariances : numpy.ndarray
        (M, p, p) component covariances of the true effects (component 0 is the null, all zeros).
    type_index : numpy.ndarray
        (M,) index into ``types`` of each component.
    cluster : numpy.ndarray
        (M,) the cluster each component was built from (-1 for the null and canonical components).
    weights : numpy.ndarray
        (M,) mixture weights (sum to one).
    trait_names : list of str
    """

    types: list[str]
    covariances: np.ndarray
    type_index: np.ndarray
    cluster: np.ndarray
    weights: np.ndarray
    trait_names: list[str]


def _noise_level(noise_var: np.ndarray | None, p: int) -> np.ndarray:
    if noise_var is None:
        raise InputError("type_library: noise variances are needed (per-variant sd^2 or a constant null level)")
    nv = np.asarray(noise_var, dtype=float)
    if nv.ndim not in (1, 2) or nv.shape[-1] != p or not np.all(np.isfinite(nv)) or np.any(nv < 0):
        raise InputError(f"noise variances must be finite, non-negative, shaped (N, {p}) or ({p},)")
    level = nv if nv.ndim == 1 else np.median(nv, axis=0)
    if np.any(level <= 0):
        raise InputError("noise variances: the median noise variance of every trait must be positive")
    return level


def type_library(
    weights: np.ndarray,
    covariances: np.ndarray,
    trait_names: Sequence[str],
    noise_var: np.ndarray,
    *,
    min_signal: float = 1.0,
    min_weight: float = 0.0,
    scales: Sequence[float] = (1.0,),
    null_scales: Sequence[float] = (0.0,),
    canonical_scales: Sequence[float] = (),
) -> TypeLibrary:
    """Split every cluster into type-structured components (see the module docstring).

    Parameters
    ----------
    weights : numpy.ndarray
        (K,) cluster weights (all clusters of the fit, pruned ones included: a small cluster can
        be the only one of its type).
    covariances : numpy.ndarray
        (K, p, p) cluster covariances of the true effects (the noise not included).
    trait_names : sequence of str
    noise_var : numpy.ndarray
        (N, p) per-variant noise variances, or (p,) one level per trait.
    min_signal : float
        A trait is active in a cluster when its variance is at least this multiple of the median
        noise variance of that trait.
    min_weight : float
        Clusters lighter than this are left out.
    scales : sequence of float
        Each type-structured component is also used scaled by these factors (a grid, as in mash).
    null_scales : sequence of float
        Null components ``N(0, c diag(level))`` (on top of the noise) for these c; ``min_signal``
        should be at least the largest, so that an active trait is above every null scale.
    canonical_scales : sequence of float
        Canonical components, as mash's canonical covariances: for every type A and every s here,
        ``s^2 diag(level)`` restricted to the traits of A (independent effects of s noise sds on
        each trait of A). Every type then has components whatever shape the clusters took, which
        matters when a type has too few variants to form a cluster of its own (see
        :func:`canonical_grid`).

    Returns
    -------
    TypeLibrary
        Initial weights: the null gets the weight of the clusters without an active trait (at
        least 0.5), each other cluster's weight is spread evenly over its components.
    """
    covs = np.asarray(covariances, dtype=float)
    w = np.asarray(weights, dtype=float)
    if covs.ndim != 3 or covs.shape[1] != covs.shape[2] or w.shape != covs.shape[:1]:
        raise InputError(f"type_library: expected (K,) weights and (K, p, p) covariances, got {w.shape}, {covs.shape}")
    p = covs.shape[1]
    names = [str(t) for t in trait_names]
    if len(names) != p:
        raise InputError(f"type_library: {len(names)} trait names for {p} traits")
    level = _noise_level(noise_var, p)
    types = association_types(names)
    lookup = {s: types.index(type_name(s, names)) for s in _subsets(p)}
    # Null components: N(0, c diag(level)) on top of the noise; shrunk effects of null variants have
    # heavier tails than one Gaussian, which a grid of scales absorbs.
    nulls = sorted(set(float(c) for c in null_scales))
    mats = [c * np.diag(level) for c in nulls]
    tix, src, init = [0] * len(nulls), [-1] * len(nulls), [0.0] * len(nulls)
    null_mass = 0.0
    for k in range(covs.shape[0]):
        if w[k] <= min_weight:
            continue
        active = [t for t in range(p) if covs[k, t, t] >= min_signal * level[t]]
        if not active:
            null_mass += w[k]
            continue
        subs = [s for s in _subsets(p) if set(s) <= set(active)]
        for s in subs:
            for c in scales:
                u = np.zeros((p, p))
                u[np.ix_(s, s)] = c * covs[k][np.ix_(s, s)]
                mats.append(u)
                tix.append(lookup[s])
                src.append(k)
                init.append(w[k] / len(subs) / len(scales))
    canon = sorted(set(float(c) for c in canonical_scales))
    signal_mass = max(float(np.sum(init[len(nulls):])), 1e-3)
    for A in _subsets(p) if canon else []:
        for c in canon:
            u = np.zeros((p, p))
            u[list(A), list(A)] = c**2 * level[list(A)]  # diagonal: independent effects
            mats.append(u)
            tix.append(lookup[A])
            src.append(-1)
            init.append(signal_mass / (len(canon) * (2**p - 1)))
    init_w = np.asarray(init)
    init_w[: len(nulls)] = max(null_mass, 0.5 * init_w.sum(), 1e-3) / len(nulls)
    return TypeLibrary(types, np.array(mats), np.array(tix), np.array(src), init_w / init_w.sum(), names)


def canonical_grid(X: np.ndarray, noise_var: np.ndarray, smallest: float = 2.0, factor: float = 2.0) -> list[float]:
    """Scales (in noise sds) for the canonical components of :func:`type_library`.

    ``smallest x factor^k`` up to the first at least twice the largest ``|x_it| / sqrt(level_t)``
    (``level`` = the median noise variance of each trait): the grid spans from just above the noise
    to beyond the largest effect, as mash's grid does.

    Examples
    --------
    >>> canonical_grid(np.array([[0.1, 0.0], [1.0, 0.5]]), np.array([0.01, 0.01]))
    [2.0, 4.0, 8.0, 16.0, 32.0]
    """
    X = np.asarray(X, dtype=float)
    level = _noise_level(noise_var, X.shape[1])
    top = 2.0 * float(np.max(np.abs(X) / np.sqrt(level))) if X.size else smallest
    grid = [smallest]
    while grid[-1] < top:
        grid.append(grid[-1] * factor)
    return grid


def gaussian_log_density(X: np.ndarray, covariances: np.ndarray, noise_var: np.ndarray | None = None,
                         chunk: int = 100_000) -> np.ndarray:
    """(N, M) log N(x_i; 0, U_m + diag(noise_var_i)) for every row and component.

    ``U_m`` may be singular when ``noise_var`` is positive. Rows are processed in chunks so that
    memory stays at about ``chunk x M x p x p`` numbers.

    Examples
    --------
    >>> gaussian_log_density(np.array([[0.0]]), np.array([[[1.0]]]), np.array([[0.0]])).round(4).tolist()
    [[-0.9189]]
    """
    X = np.asarray(X, dtype=float)
    covs = np.asarray(covariances, dtype=float)
    N, p = X.shape
    out = np.empty((N, covs.shape[0]))
    const = p * math.log(2 * math.pi)
    if noise_var is None or np.ndim(noise_var) == 1:
        total = covs if noise_var is None else covs + np.diag(np.asarray(noise_var, dtype=float))
        chol = np.linalg.cholesky(total)
        inv = np.linalg.inv(chol)
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
        flat = inv.reshape(-1, p).T  # (p, M p): one matrix product gives every L_m^{-1} x
        step = max(1, chunk * 8 // max(1, covs.shape[0] * p))
        for a in range(0, N, step):
            z = (X[a:a + step] @ flat).reshape(-1, covs.shape[0], p)
            out[a:a + step] = -0.5 * ((z**2).sum(-1) + logdet + const)
        return out
    nv = np.asarray(noise_var, dtype=float)
    step = max(1, chunk * 10 // max(1, covs.shape[0]))
    for a in range(0, N, step):
        out[a:a + step] = _logpdf_diag_noise(X[a:a + step], covs, nv[a:a + step]) - 0.5 * const
    return out


def _logpdf_diag_noise(X: np.ndarray, covs: np.ndarray, nv: np.ndarray) -> np.ndarray:
    """(n, M) ``-0.5 (x' A^{-1} x + log|A|)`` with ``A = U_m + diag(nv_i)``.

    The Cholesky factor is written out element by element over the (n, M) batch: for p <= ~6 this
    is many times faster than one LAPACK call per small matrix.
    """
    n, p = X.shape
    A = [[covs[None, :, i, j] + (nv[:, i, None] if i == j else 0.0) for j in range(i + 1)] for i in range(p)]
    L: list[list[np.ndarray]] = [[np.empty(0)] * p for _ in range(p)]
    z = [np.empty(0)] * p
    quad = np.zeros((n, covs.shape[0]))
    logdet = np.zeros_like(quad)
    for i in range(p):
        for j in range(i):
            acc = A[i][j].copy() if j == 0 else A[i][j] - sum(L[i][k] * L[j][k] for k in range(j))
            L[i][j] = acc / L[j][j]
        d = A[i][i] - sum(L[i][k] ** 2 for k in range(i)) if i else A[i][i]
        L[i][i] = np.sqrt(d)
        logdet += np.log(d)
        r = X[:, i, None] - sum(L[i][k] * z[k] for k in range(i)) if i else np.broadcast_to(X[:, :1], quad.shape)
        z[i] = r / L[i][i]
        quad += z[i] ** 2
    return -0.5 * (quad + logdet)
