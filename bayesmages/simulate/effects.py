"""Sparse effect-size architectures on the standardised scale (METHODS §A).

A fraction ``p_causal`` of variants is causal; a causal variant's effect is
``beta_j ~ N(0, sigma_j^2)`` with ``sigma_j^2 ∝ [2 f_j (1 - f_j)]^s * ell_j^w`` (``f`` the MAF, ``ell``
the LD score); all effects are then rescaled together to the target heritability ``h2``.
"Standardised scale" means per standard deviation of genotype, for a phenotype of unit variance,
so that ``beta' R beta`` is the variance the variants explain.
"""

from __future__ import annotations

import numpy as np

from bayesmages.errors import InputError
from bayesmages.simulate._checks import check_fraction, check_seed, check_vector

__all__ = ["effect_variances", "ld_scores_from_R", "simulate_effects"]


def ld_scores_from_R(R: np.ndarray) -> np.ndarray:
    """LD scores ``ell_j = sum_i R_ij^2`` (including ``R_jj^2 = 1``, so ``ell_j >= 1``).

    This is the LD-score-regression convention; it differs by exactly 1 from the shrinker's
    feature ``sum_i R_ij^2 - 1`` (METHODS §A), which can be 0 and so cannot be raised to ``w < 0``.

    Examples
    --------
    >>> ld_scores_from_R(np.array([[1.0, 0.5], [0.5, 1.0]]))
    array([1.25, 1.25])
    """
    R = np.asarray(R, dtype=np.float64)
    return np.einsum("ij,ij->j", R, R)


def effect_variances(
    maf: np.ndarray, ld_scores: np.ndarray | None = None, *, s: float = 0.0, w: float = 0.0
) -> np.ndarray:
    """Relative prior variances ``[2 f (1 - f)]^s * ell^w`` (unnormalised).

    Parameters
    ----------
    maf : numpy.ndarray
        (m,) minor-allele (or allele) frequencies in (0, 1).
    ld_scores : numpy.ndarray, optional
        (m,) positive LD scores; required when ``w != 0``.
    s, w : float
        MAF and LD-score exponents (the paper uses s in {-0.25, 0}, w in {-1, 0}).

    Returns
    -------
    numpy.ndarray
        (m,) positive float64.

    Examples
    --------
    >>> effect_variances(np.array([0.5, 0.1]), s=-1.0)
    array([2.        , 5.55555556])
    """
    f = check_vector(maf, "maf")
    if ((f <= 0) | (f >= 1)).any():
        j = int(np.flatnonzero((f <= 0) | (f >= 1))[0])
        raise InputError(f"maf must lie in (0, 1), got {float(f[j]):g} at index {j}")
    s, w = float(s), float(w)
    if not (np.isfinite(s) and np.isfinite(w)):
        raise InputError(f"s and w must be finite numbers, got s={s!r}, w={w!r}")
    var = (2.0 * f * (1.0 - f)) ** s
    if w != 0.0:
        if ld_scores is None:
            raise InputError("w != 0 needs ld_scores (or R to compute them)")
        ell = check_vector(ld_scores, "ld_scores", length=f.size)
        if (ell <= 0).any():
            j = int(np.flatnonzero(ell <= 0)[0])
            raise InputError(f"ld_scores must be positive when w != 0, got {float(ell[j]):g} at index {j}")
        var = var * ell**w
    return var


def simulate_effects(
    maf: np.ndarray,
    ld_scores: np.ndarray | None = None,
    *,
    p_causal: float,
    h2: float,
    s: float = 0.0,
    w: float = 0.0,
    R: np.ndarray | None = None,
    seed: int,
) -> np.ndarray:
    """Sparse true effects on the standardised scale with a target heritability.

    Exactly ``max(1, round(p_causal * m))`` variants, chosen uniformly at random, are causal;
    their effects are ``N(0, sigma_j^2)`` with ``sigma_j^2 ∝ [2 f_j (1 - f_j)]^s * ell_j^w``. The
    vector is then scaled so that **``beta' R beta = h2`` exactly when ``R`` is given** (the
    variance explained, LD included) and ``sum(beta^2) = h2`` when ``R`` is None (the sum of
    per-variant variances, LD ignored).

    Parameters
    ----------
    maf : numpy.ndarray
        (m,) minor-allele frequencies in (0, 1).
    ld_scores : numpy.ndarray, optional
        (m,) LD scores; when None and ``R`` is given they are ``sum_i R_ij^2`` (see
        :func:`ld_scores_from_R`). Needed only when ``w != 0``.
    p_causal : float
        Fraction of causal variants, in (0, 1].
    h2 : float
        Heritability explained by these variants, in (0, 1).
    s, w : float
        MAF and LD-score exponents.
    R : numpy.ndarray, optional
        (m, m) LD correlation matrix; validated as a correlation matrix.
    seed : int
        Random seed.

    Returns
    -------
    numpy.ndarray
        (m,) float64 effects, zero at non-causal variants.

    Raises
    ------
    InputError
        ``h2`` outside (0, 1), ``p_causal`` outside (0, 1], ``maf`` outside (0, 1), R not a
        correlation matrix or of the wrong size, ``w != 0`` without LD scores, or a causal set
        with ``beta' R beta = 0`` (R singular along the drawn effects).

    Examples
    --------
    >>> maf = np.full(100, 0.3)
    >>> beta = simulate_effects(maf, p_causal=0.05, h2=0.01, seed=0)
    >>> int((beta != 0).sum()), round(float(beta @ beta), 6)
    (5, 0.01)
    """
    f = check_vector(maf, "maf")
    m = f.size
    if m == 0:
        raise InputError("maf is empty: no variants to simulate effects for")
    p_causal = check_fraction(p_causal, "p_causal", high_closed=True)
    h2 = check_fraction(h2, "h2")
    rng = np.random.default_rng(check_seed(seed))
    if R is not None:
        from bayesmages.io.ld import validate_ld

        R = validate_ld(R, source="R", n_variants=m)
        if ld_scores is None:
            ld_scores = ld_scores_from_R(R)
    var = effect_variances(f, ld_scores, s=s, w=w)
    k = max(1, round(p_causal * m))
    causal = np.sort(rng.choice(m, size=k, replace=False))
    beta = np.zeros(m)
    beta[causal] = rng.normal(size=k) * np.sqrt(var[causal])
    if R is not None:
        sub = beta[causal]
        explained = float(sub @ R[np.ix_(causal, causal)] @ sub)
    else:
        explained = float(beta @ beta)
    if not explained > 0:
        raise InputError("the drawn effects explain no variance under R (R is singular along them); use another seed")
    return beta * np.sqrt(h2 / explained)
