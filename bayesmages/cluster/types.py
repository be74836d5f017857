"""Per-variant association-type probabilities from a fitted mixture (issue 13).

A cluster of the DP mixture can hold variants of several association types (the paper's cluster 1
mixes large trait-specific and shared effects), so types are given per variant, not per cluster.

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

**Weights.** With the library fixed, the weights are fitted by EM on
``x_i ~ sum_m w_m N(0, U_m + S_i)`` (a convex problem, as in mash), with a Dirichlet penalty that
favours the null component (``null_penalty``; mash's default is 10).

**Probabilities.** ``P(type A | x_i) = sum_{m of type A} w_m N(x_i; 0, U_m + S_i) / sum_m (...)``.
They are calibrated when the effects follow the fitted model; tests and ``bench/multitrait.py``
measure how far that holds.

**Two claims.** ``P(type A | x_i)`` is a statement about the *association signal the variant carries*
in the shrunk effects: a variant in LD with a causal variant keeps part of its signal after shrinkage
and is typed like it. It is not the probability that the variant itself is causal with type A (on the
LD simulations of ``bench/multitrait.py`` about 6 in 10 of the variants typed as signal are causal
where the probabilities say ~98%). When the shrinker gives per-trait posterior inclusion
probabilities (``shrink(method="susie")``), :func:`causal_type_probabilities` turns the first claim
into the second: ``P(v causal with type A) = P(type A | x_v) x PIP_v`` for A non-empty, with
``PIP_v = 1 - prod_t (1 - PIP_vt)`` the probability that v carries a non-zero effect in any trait
(fine-mapping spreads that probability over the variant's tags).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> n = 3000
>>> X = np.zeros((n, 2)); X[:300, 0] = rng.normal(0, 1, 300); X[300:600, 1] = rng.normal(0, 1, 300)
>>> X += 0.05 * rng.normal(size=(n, 2))
>>> noise = np.full((n, 2), 0.05**2)
>>> lib = type_library(np.array([0.2, 0.8]), np.array([np.eye(2), 1e-4 * np.eye(2)]), ["A", "B"], noise)
>>> lib = fit_type_weights(X, lib, noise)
>>> P = type_probabilities(X, lib, noise)
>>> lib.types
['non-prioritised', 'specific:A', 'specific:B', 'shared:A+B']
>>> bool(P[:300, 1].mean() > 0.8 and P[600:, 0].mean() > 0.9)
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import logsumexp

from bayesmages.errors import InputError

__all__ = [
    "DETECTION_Z",
    "NULL_TYPE",
    "TypeLibrary",
    "association_types",
    "canonical_grid",
    "causal_type_probabilities",
    "fit_type_weights",
    "gaussian_log_density",
    "null_noise",
    "type_library",
    "type_name",
    "type_probabilities",
    "variant_noise",
]

NULL_TYPE = "non-prioritised"


#: median of chi-square(1): median(x^2) / this is the variance of a centred normal
_CHI2_1_MEDIAN = 0.454936423119572


def null_noise(X: np.ndarray, se: np.ndarray | None = None) -> np.ndarray:
    """Per-variant null-level variances of the effects, estimated robustly from the effects.

    Most variants are null, so the spread of the bulk of the effects is the null level: with
    ``c_t = median_i (x_it / se_it)^2 / median(chi2_1)``, the null variance of variant i in trait t is
    ``c_t se_it^2`` (``se`` = 1 when not given: one level per trait). Relative precision thus
    follows the GWAS standard errors (e.g. sample size or allele frequency), and the level follows
    the data (shrunk effects of null variants are smaller than their ``se``).

    Parameters
    ----------
    X : numpy.ndarray
        (N, p) effects.
    se : numpy.ndarray, optional
        (N, p) GWAS standard errors (positive).

    Returns
    -------
    numpy.ndarray
        (N, p) with ``se``, else (p,).

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(0, 0.1, size=(20000, 1))
    >>> null_noise(x).round(3).tolist()
    [0.01]
    """
    X = np.asarray(X, dtype=float)
    if se is None:
        level = np.median(X**2, axis=0) / _CHI2_1_MEDIAN
    else:
        S = np.asarray(se, dtype=float)
        if S.shape != X.shape or not np.all(np.isfinite(S)) or np.any(S <= 0):
            raise InputError(f"se must be positive and finite, with the shape of the effects {X.shape}")
        level = (np.median((X / S) ** 2, axis=0) / _CHI2_1_MEDIAN) * S**2
    if np.any(level <= 0):
        # At least half of a trait's effects are exactly zero (e.g. a sparse shrinker): the mean
        # square is then the only scale the data give.
        fallback = (X**2).mean(0) if se is None else (((X / S) ** 2).mean(0)) * S**2
        level = np.where(level > 0, level, fallback)
    if np.any(level <= 0):
        raise InputError("null_noise: a trait's effects are all zero; give the noise variances explicitly")
    return level


_NOISE_FLOOR = 1e-4  # (1% of an se)^2
#: |z| below which a sparse shrinker (``susie``) leaves an effect unselected: a single effect puts
#: half its inclusion probability on a variant when the variant's Bayes factor reaches the number of
#: variants m, z^2 ~ 2 log m + log z^2, i.e. |z| ~ 4 for blocks of 500-2,000 variants
DETECTION_Z = 4.0
_NOISE_ABSOLUTE_FLOOR = 1e-30  # effects that are all exactly zero: keep the variances positive


def variant_noise(X: np.ndarray, sd: np.ndarray | None = None, se: np.ndarray | None = None,
                  cap: float = 25.0, pip: np.ndarray | None = None) -> np.ndarray:
    """Noise variances for the type probabilities: the shrinker's sd^2, capped; else the robust null level.

    With ``sd`` (the shrinker's posterior sds): ``min(sd_it^2, cap x level_t)``, ``level`` from
    :func:`null_noise`. The sd is the right null scale of each variant (on simulated null GWAS,
    |shrunk effect| / sd stayed below 2.03 for 99.9% of the variants, while |shrunk effect| / the
    robust level reached 22), but for a strong signal it is about |effect| (the posterior of a
    spike-and-slab-like shrinker), which would make every strong effect look possibly null in every
    trait; the cap (5 robust sds of the bulk) keeps the first and removes the second.

    With ``pip`` (per-trait posterior inclusion probabilities of a sparse shrinker, ``susie``) and
    ``se``, the noise is at least ``(1 - pip_it) c se_it^2`` with ``c = 2 tau^2 / pi`` (about 10.2,
    ``tau`` = :data:`DETECTION_Z`). A sparse shrinker sets an effect it did not select to (almost)
    exactly zero with an sd of about ``sqrt(pip) |effect|``; that sd comes from its sparsity prior.
    Taken as measurement noise it made the mixture certain that the trait is not involved (shared
    causal variants whose weaker effect was not selected were typed specific with probability
    0.99-1.0). What the zero says is that the effect's z-score was below the detection threshold
    ``tau``, a censored observation: under a component with effect sd ``sigma >> tau`` its
    likelihood is ``P(|z| < tau) ~ 2 tau / (sqrt(2 pi) sigma)`` against about 1 under the null; a
    Gaussian noise of variance ``c`` at 0 gives the ratio ``sqrt(c) / sigma``, which matches when
    ``c = 2 tau^2 / pi``. A selected effect (pip near 1) keeps its posterior sd.

    Examples
    --------
    >>> X = np.r_[np.full(99, 0.01), 1.0][:, None]
    >>> variant_noise(X, sd=np.r_[np.full(99, 0.02), 1.0][:, None])[[0, -1], 0].round(6).tolist()
    [0.0004, 0.005495]
    """
    X = np.asarray(X, dtype=float)
    se_arr = None if se is None else np.asarray(se, dtype=float)
    # A sparse shrinker (susie) returns exact zeros with sd 0 for most variants: the robust level and
    # the sds are then 0 and every Gaussian degenerates. Noise never goes below 1% of a GWAS se (or of
    # the effects' root mean square), far below any null level, so those variants stay certain nulls.
    floor = _NOISE_FLOOR * (se_arr**2 if se_arr is not None else np.mean(X**2, axis=0))
    floor = np.maximum(floor, _NOISE_ABSOLUTE_FLOOR)
    level = np.array(floor, dtype=float)
    live = np.any(X != 0, axis=0)  # a trait whose effects are all exactly zero keeps the floor
    if live.any():
        found = null_noise(X[:, live], None if se_arr is None else se_arr[:, live])
        level[..., live] = np.maximum(found, floor[..., live])
    if sd is None:
        return level
    S = np.asarray(sd, dtype=float)
    if S.shape != X.shape or not np.all(np.isfinite(S)) or np.any(S < 0):
        raise InputError(f"sd must be finite and non-negative, with the shape of the effects {X.shape}")
    if pip is not None:
        if se_arr is None:
            raise InputError("variant_noise: pip needs se (unselected effects are floored at (1 - pip) se^2)")
        pi = np.asarray(pip, dtype=float)
        if pi.shape != X.shape or not np.all(np.isfinite(pi)) or np.any(pi < 0) or np.any(pi > 1 + 1e-9):
            raise InputError(f"pip must lie in [0, 1], with the shape of the effects {X.shape}")
        floor = np.maximum(floor, (1.0 - np.clip(pi, 0.0, 1.0)) * (2.0 * DETECTION_Z**2 / math.pi) * se_arr**2)
    return np.maximum(np.minimum(S**2, cap * level), floor)


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


def fit_type_weights(
    X: np.ndarray,
    library: TypeLibrary,
    noise_var: np.ndarray,
    *,
    null_penalty: float = 10.0,
    type_pseudo_count: float = 0.0,
    max_iter: int = 500,
    tol: float = 1e-8,
    max_rows: int = 100_000,
    seed: int = 0,
    drop_below: float = 1e-6,
    screen_rows: int = 20_000,
) -> TypeLibrary:
    """EM for the library's weights with its covariances fixed (penalised maximum likelihood).

    Parameters
    ----------
    X : numpy.ndarray
        (N, p) effects.
    library : TypeLibrary
    noise_var : numpy.ndarray
        (N, p) per-row noise variances or (p,) one level per trait.
    null_penalty : float
        Dirichlet concentration of the null weight (the others get 1, plus ``type_pseudo_count``): ``null_penalty - 1``
        pseudo-rows for the null, which keeps weights of signal types from being driven by a
        few noise rows (mash uses 10).
    type_pseudo_count : float
        Dirichlet pseudo-rows given to each signal type, spread evenly over its components (default
        0: none). With a few dozen signal variants the maximum-likelihood weight of a type seen in
        only a handful of them can be exactly 0, which makes every variant's probability of that
        type 0 (in some susie replicates of ``bench/multitrait.py`` shared causal variants were typed
        specific with probability 1.000). One pseudo-row was measured and not made the default: it
        brought the causal claim's reliability within 0.1 at the bench seed (largest gap 0.062,
        0.102 without) but not on 30 held-out replicates (0.137 against 0.127), and it raised the
        expected number of variants typed as signal in a null GWAS from 2.9 to 4.5 (of 4,203).
    max_iter, tol : int, float
        EM stops when no weight moves by more than ``tol``. At 1e-6 weights of rare components were not
        converged: probabilities of signal variants moved by up to 2e-3 on ``bench/scale.py``'s 100k x 4
        run (1e-2 in ``tests/test_cluster_types.py``) against the EM run to 1e-10; at 1e-8 by 1e-6, at
        no measurable cost once the components are screened.
    max_rows : int
        EM runs on a seeded random subset of at most this many rows (the weights are means over
        rows; 100,000 rows estimate a weight of 1e-3 to about 10% relative error).
    seed : int
        Seed of the row subset.
    drop_below : float
        Components whose fitted weight is below this are dropped (the null components are kept):
        no row needed them, and with p traits a cluster gives up to 3 (2^p - 1) components, which
        would otherwise all enter the per-variant densities of every variant.
    screen_rows : int
        Above this many rows, a pilot EM first screens the components (see :func:`_screened_components`):
        every row with some ``|x / noise sd| > 3`` plus a seeded sample of the others, weighted by the
        inverse of their sampling fraction; the EM on all rows then starts from the pilot's weights with only the
        components the pilot kept. Same optimum as one EM over every component whenever the pilot kept
        every component the optimum uses (tested against the full EM); 2-4x less time on 100,000 rows of
        four traits, where the density of every row under ~175 components dominated the step.

    Returns
    -------
    TypeLibrary
        The library with fitted weights.
    """
    X = np.asarray(X, dtype=float)
    rows = np.arange(X.shape[0])
    if X.shape[0] > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(X.shape[0], size=max_rows, replace=False))
    nv = np.asarray(noise_var, dtype=float)
    nv = nv[rows] if nv.ndim == 2 else nv
    if not (math.isfinite(type_pseudo_count) and type_pseudo_count >= 0):
        raise InputError(f"type_pseudo_count must be a non-negative number, got {type_pseudo_count!r}")
    prior = np.ones(library.weights.size)
    prior[library.type_index == 0] = null_penalty
    for kind in set(library.type_index.tolist()) - {0}:
        members = library.type_index == kind
        prior[members] += type_pseudo_count / members.sum()
    comps = np.arange(library.weights.size)
    start = library.weights.copy()
    if rows.size > screen_rows:
        comps, start = _screened_components(X[rows], library, nv, prior, start, seed=seed, max_iter=max_iter,
                                            tol=tol, keep_above=drop_below * 1e-2)
    w = np.zeros(library.weights.size)
    w[comps] = _penalised_em(_likelihoods(X[rows], library.covariances[comps], nv), prior[comps],
                             start[comps] / start[comps].sum(), max_iter=max_iter, tol=tol)
    keep = (w >= drop_below) | (library.type_index == 0)
    return replace(library, weights=w[keep] / w[keep].sum(), covariances=library.covariances[keep],
                   type_index=library.type_index[keep], cluster=library.cluster[keep])


def _likelihoods(X: np.ndarray, covariances: np.ndarray, nv: np.ndarray) -> np.ndarray:
    """(N, M) densities of the rows under each component, each row scaled by its largest (EM ignores it)."""
    logL = gaussian_log_density(X, covariances, nv)
    logL -= logL.max(1, keepdims=True)
    return np.exp(logL)


def _screened_components(X: np.ndarray, library: TypeLibrary, nv: np.ndarray, prior: np.ndarray,
                         start: np.ndarray, *, seed: int, max_iter: int, tol: float,
                         keep_above: float) -> tuple[np.ndarray, np.ndarray]:
    """The components a pilot EM on a weighted subset of the rows keeps, and the pilot's weights.

    Rows with a clear signal (some ``|x_t| > 3`` noise sds) are all in the pilot: they are the only
    rows that can need a rare signal component. Of the others (the bulk, near the null) a seeded
    sample of 5,000 stands for all of them, each weighted by the inverse of the sampling fraction, so
    the pilot's objective estimates the full one. Components with pilot weight above ``keep_above``
    (100x below the final cut) and the null components are kept.
    """
    level = np.broadcast_to(nv, X.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        z2 = np.where(level > 0, X**2 / level, np.where(X != 0, np.inf, 0.0))
    clear = z2.max(1) > 9.0
    if clear.mean() > 0.5:  # mostly clear signals: a pilot would cost about what the full EM costs
        return np.arange(library.weights.size), start
    bulk = np.flatnonzero(~clear)
    sample = bulk
    if bulk.size > 5_000:
        sample = np.sort(np.random.default_rng([seed, 1]).choice(bulk, size=5_000, replace=False))
    pilot = np.concatenate([np.flatnonzero(clear), sample])
    row_weight = np.concatenate([np.ones(int(clear.sum())), np.full(sample.size, bulk.size / max(sample.size, 1))])
    nv_pilot = nv[pilot] if nv.ndim == 2 else nv
    w = _penalised_em(_likelihoods(X[pilot], library.covariances, nv_pilot), prior, start, max_iter=max_iter,
                      tol=tol, row_weight=row_weight)
    comps = np.flatnonzero((w >= keep_above) | (library.type_index == 0))
    return comps, np.maximum(w, 1e-12)


def _penalised_em(L: np.ndarray, prior: np.ndarray, w: np.ndarray, *, max_iter: int, tol: float,
                  row_weight: np.ndarray | None = None) -> np.ndarray:
    """Maximise sum_i c_i log (L w)_i + sum_m (prior_m - 1) log w_m over the simplex: EM accelerated by SQUAREM.

    ``c_i`` are ``row_weight`` (default 1: every row counts once).

    The EM map (responsibilities summed over rows, plus the Dirichlet pseudo-rows) converges linearly and
    slowly when many components overlap (mash-style grids: 190 components on 4 traits took the 500
    iterations allowed). SQUAREM (Varadhan & Roland 2008, step length ``-|r| / |v|``) extrapolates along
    two EM steps, and a step that lowers the objective is replaced by the plain two EM steps, so the
    objective never decreases. Stops when one EM step moves no weight by ``tol`` or more.
    """
    full = w.size
    cols = np.arange(full)  # the components still in play (see the compaction below)
    Lc, lp = L, prior - 1.0

    c = np.ones(L.shape[0]) if row_weight is None else np.asarray(row_weight, dtype=float)

    def objective(v: np.ndarray, mix: np.ndarray) -> float:
        has = lp > 0
        data = np.log(mix).sum() if row_weight is None else c @ np.log(mix)
        return float(data + (lp[has] * np.log(np.maximum(v[has], 1e-300))).sum())

    def em(v: np.ndarray) -> tuple[np.ndarray, float]:
        # one EM step from v, and the penalised objective at v (the mixture density L v comes for free)
        mix = Lc @ v
        new = np.clip(v * (Lc.T @ (c / mix)) + lp, 0.0, None)
        return new / new.sum(), objective(v, mix)

    def expand(v: np.ndarray) -> np.ndarray:
        out = np.zeros(full)
        out[cols] = v
        return out

    iterations = 0
    while iterations < max_iter:
        # Components whose weight fell below 1e-13 (and that have no pseudo-rows) are set to 0 and their
        # columns dropped: under the multiplicative EM update they could only regrow by factors that the
        # final cut at drop_below (1e-6) would remove anyway, and each EM step then costs rows x the
        # components left (grids of 175 components ended with 15: 23 s -> a few s).
        gone = (w < 1e-13) & (lp <= 0)
        if gone.sum() > 0.2 * w.size:
            keep = ~gone
            cols, Lc, lp, w = cols[keep], np.ascontiguousarray(Lc[:, keep]), lp[keep], w[keep] / w[keep].sum()
        w1, _ = em(w)
        iterations += 1
        if np.max(np.abs(w1 - w)) < tol:
            return expand(w1)
        w2, _ = em(w1)
        iterations += 1
        r, v = w1 - w, w2 - 2 * w1 + w
        nv = float(np.linalg.norm(v))
        alpha = min(-float(np.linalg.norm(r)) / nv, -1.0) if nv > 0 else -1.0
        jump = np.clip(w - 2 * alpha * r + alpha**2 * v, 0.0, None)
        if jump.sum() > 0 and alpha < -1.0:
            w3, obj3 = em(jump / jump.sum())
            iterations += 1
            if np.isfinite(obj3) and obj3 >= objective(w2, Lc @ w2):
                w = w3
                continue
        w = w2
    return expand(w)


def causal_type_probabilities(P: np.ndarray, pip: np.ndarray) -> np.ndarray:
    """(N, T) probabilities that the variant itself carries a non-zero effect of each type.

    ``P`` are association-type probabilities (columns :func:`association_types`, the null type
    first): the type of the association signal the variant carries, LD tags included. ``pip`` are
    the per-trait posterior inclusion probabilities of a fine-mapping shrinker (``susie``). For a
    non-null type A the result is ``P[:, A] x PIP_v`` with ``PIP_v = 1 - prod_t (1 - pip_vt)``; the
    null column gets the rest, so rows sum to one. The mixture says which traits a signal involves,
    fine-mapping says whether this variant or one of its tags carries it; treating the two as
    independent is an approximation whose calibration ``bench/multitrait.py`` (reliability part)
    measures against the causal truth.

    Parameters
    ----------
    P : numpy.ndarray
        (N, T) association-type probabilities, column 0 the null type (``non-prioritised``).
    pip : numpy.ndarray
        (N, p) posterior inclusion probabilities per trait, in [0, 1].

    Returns
    -------
    numpy.ndarray
        (N, T), rows summing to one.

    Examples
    --------
    >>> P = np.array([[0.0, 0.0, 1.0, 0.0], [0.9, 0.1, 0.0, 0.0]])
    >>> causal_type_probabilities(P, np.array([[0.0, 0.5], [0.2, 0.0]])).round(3).tolist()
    [[0.5, 0.0, 0.5, 0.0], [0.98, 0.02, 0.0, 0.0]]
    """
    P = np.asarray(P, dtype=float)
    pip = np.asarray(pip, dtype=float)
    if P.ndim != 2 or P.shape[1] < 2 or not np.all(np.isfinite(P)) or np.any(P < 0):
        raise InputError(f"causal_type_probabilities: expected (N, T) probabilities, got shape {P.shape}")
    if pip.ndim != 2 or pip.shape[0] != P.shape[0] or P.shape[1] != 2 ** pip.shape[1]:
        raise InputError(f"pip: expected ({P.shape[0]}, p) with 2^p = {P.shape[1]} types, got shape {pip.shape}")
    if not np.all(np.isfinite(pip)) or np.any(pip < 0) or np.any(pip > 1 + 1e-9):
        raise InputError("pip: posterior inclusion probabilities must lie in [0, 1]")
    any_effect = 1.0 - np.prod(1.0 - np.clip(pip, 0.0, 1.0), axis=1)
    out = P * any_effect[:, None]
    out[:, 0] = 1.0 - out[:, 1:].sum(1)
    return out


def type_probabilities(X: np.ndarray, library: TypeLibrary, noise_var: np.ndarray,
                       chunk: int = 200_000) -> np.ndarray:
    """(N, T) probabilities of the association types (columns ``library.types``); rows sum to one."""
    X = np.asarray(X, dtype=float)
    nv = np.asarray(noise_var, dtype=float)
    T = len(library.types)
    out = np.empty((X.shape[0], T))
    with np.errstate(divide="ignore"):
        log_w = np.log(library.weights)
    onehot = np.zeros((library.type_index.size, T))
    onehot[np.arange(library.type_index.size), library.type_index] = 1.0
    for a in range(0, X.shape[0], chunk):
        part = nv[a:a + chunk] if nv.ndim == 2 else nv
        lp = gaussian_log_density(X[a:a + chunk], library.covariances, part) + log_w
        lp -= logsumexp(lp, axis=1, keepdims=True)
        out[a:a + chunk] = np.exp(lp) @ onehot
    return out
