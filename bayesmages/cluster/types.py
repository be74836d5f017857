"""Per-variant association-type probabilities from a fitted mixture (issue 13).

A cluster of the DP mixture can hold variants of several association types (the paper's cluster 1
mixes large trait-specific and shared effects), so types are given per variant, not per cluster.

**Types.** For p traits a type is the set A of traits a variant's true effect involves: the empty set
(``"non-prioritised"``), one trait (``"specific:<t>"``) or several (``"shared:<t1>+<t2>[+...]"``).

**Type library** (:mod:`bayesmages.cluster.typelib`). Each fitted cluster is split into
type-structured components, one per set of its active traits, plus a null component.

**Weights** (:mod:`bayesmages.cluster.typefit`). With the library fixed, the weights are fitted by
a penalised EM that favours the null component (as in mash).

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

import math

import numpy as np
from scipy.special import logsumexp

from bayesmages.cluster.typefit import fit_type_weights
from bayesmages.cluster.typelib import (
    NULL_TYPE,
    TypeLibrary,
    association_types,
    canonical_grid,
    gaussian_log_density,
    type_library,
    type_name,
)
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
