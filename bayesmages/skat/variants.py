"""Variant preparation as R SKAT 2.2.5 does it: QC, imputation, flipping, MAF and weights.

Order (``SKAT_MAIN_Check_Z``): genotype 9 -> missing; keep a variant only if its missing rate is
< ``missing_cutoff`` and its sd over observed values is > 0; impute missing genotypes
(``"fixed"``: the observed mean 2·MAF; ``"bestguess"``: round(2·MAF); ``"random"``:
Binomial(2, MAF)); flip variants whose MAF over all rows exceeds 0.5 (2 - Z); recompute the MAF;
drop variants with MAF >= ``max_maf``; weights = Beta(a1, a2) density of the MAF (or user weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from bayesmages.errors import InputError

__all__ = ["IMPUTE_METHODS", "PreparedVariants", "beta_weights", "prepare_variants"]

IMPUTE_METHODS = ("fixed", "bestguess", "random")


@dataclass(frozen=True)
class PreparedVariants:
    """Genotypes ready for a SKAT-family test.

    Attributes
    ----------
    G : numpy.ndarray
        (n, p_kept) imputed, flipped minor-allele counts.
    maf : numpy.ndarray
        (p_kept,) MAF after imputation and flipping, over all n rows.
    kept : numpy.ndarray
        Indices of the kept columns in the input.
    flipped : numpy.ndarray
        Indices (into the input) of the flipped columns.
    n_input : int
        Number of input columns.
    """

    G: np.ndarray
    maf: np.ndarray
    kept: np.ndarray
    flipped: np.ndarray
    n_input: int

    @property
    def n_tested(self) -> int:
        """Number of variants that passed QC."""
        return int(self.kept.size)


def _plain_genotypes(G: np.ndarray) -> bool:
    """Whether every entry is 0, 1 or 2 (no missing values), checked without n x p temporaries.

    The usual input, so it gets a fast path: on a (10,000 x 30) block each full-size temporary
    costs more than the whole check (fresh pages), while reductions stream over the data. Values
    in [0, 2] are integers exactly when their sum equals the sum of their truncations (sums of
    integers are exact in float64), up to fractional parts below the rounding of the sum.
    """
    with np.errstate(invalid="ignore"):
        if not (G.min() >= 0.0 and G.max() <= 2.0):  # False for NaN too
            return False
    with np.errstate(invalid="ignore"):
        truncated = int(G.astype(np.int8).sum(dtype=np.int64))
    return float(G.sum()) == truncated


def as_genotype_matrix(Z: Any, n: int | None = None, label: str = "Z") -> np.ndarray:
    """Validate a genotype matrix: (n, p) numeric, counts 0/1/2 or dosages in [0, 2], 9 or NaN = missing.

    Returns a float64 array with missing entries as NaN. A float64 input without missing values
    is returned as it is (not copied); callers never write into it.
    """
    try:
        G = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{label} must be a numeric (n, p) genotype matrix") from None
    if G.ndim == 1:
        G = G[:, None]
    if G.ndim != 2:
        raise InputError(f"{label} must be 2-D (n samples, p variants), got shape {G.shape}")
    if n is not None and G.shape[0] != n:
        raise InputError(f"{label} has {G.shape[0]} rows but the null model has {n} samples")
    if G.shape[1] == 0:
        raise InputError(f"{label} has no variant columns")
    if G.size and _plain_genotypes(G):
        return G
    G = np.array(G)  # 9 -> NaN below must not touch the caller's array
    G[G == 9] = np.nan
    bad = ~np.isnan(G) & ((G < 0) | (G > 2))  # counts 0/1/2 or dosages in [0, 2]
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{label}[{i}, {j}] = {G[i, j]:g}; genotypes must be allele counts or dosages in [0, 2], "
                         "or missing (NaN/9)")
    return G


def beta_weights(maf: Any, weights_beta: tuple[float, float] = (1.0, 25.0)) -> np.ndarray:
    """Beta(a1, a2) density at the MAF (R SKAT's ``Beta.Weights``: not normalised, not square-rooted).

    MAFs above 0.5 are folded to 1 - MAF; MAF 0 gets weight 0.

    Examples
    --------
    >>> beta_weights([0.01, 0.0], (1, 25)).round(2)
    array([19.64,  0.  ])
    """
    a1, a2 = _check_beta(weights_beta)
    maf = np.asarray(maf, dtype=np.float64)
    folded = np.where(maf > 0.5, 1.0 - maf, maf)
    w = np.zeros_like(folded)
    pos = folded > 0
    x = folded[pos]
    # the density in closed form: scipy.stats' per-call overhead exceeds a SKAT test's arithmetic
    w[pos] = np.exp((a1 - 1.0) * np.log(x) + (a2 - 1.0) * np.log1p(-x) - special.betaln(a1, a2))
    return w


def _check_beta(weights_beta: Any) -> tuple[float, float]:
    try:
        a1, a2 = (float(v) for v in weights_beta)
    except (TypeError, ValueError):
        raise InputError(f"weights_beta must be a pair (a1, a2) of positive numbers, got {weights_beta!r}") from None
    if not (a1 > 0 and a2 > 0 and np.isfinite(a1) and np.isfinite(a2)):
        raise InputError(f"weights_beta must be a pair (a1, a2) of positive numbers, got {weights_beta!r}")
    return a1, a2


def prepare_variants(
    Z: Any,
    *,
    impute: str = "fixed",
    missing_cutoff: float = 0.15,
    max_maf: float = 1.0,
    seed: int = 0,
    _validated: bool = False,
) -> PreparedVariants:
    """R SKAT's variant QC, imputation and flipping.

    Parameters
    ----------
    Z : array-like
        (n, p) genotypes 0/1/2; NaN or 9 = missing.
    impute : {"fixed", "bestguess", "random"}
        Imputation of missing genotypes (before flipping, from the observed MAF).
    missing_cutoff : float
        Keep variants whose missing rate is strictly below this.
    max_maf : float
        Keep variants whose (post-flip) MAF is strictly below this.
    seed : int
        Seed of ``"random"`` imputation.

    Returns
    -------
    PreparedVariants

    Examples
    --------
    >>> import numpy as np
    >>> Z = np.array([[0, 2, 1], [1, 2, 1], [0, 1, 1], [np.nan, 2, 1], [0, 2, 1], [0, 2, 1], [0, 2, 1]])
    >>> pv = prepare_variants(Z)  # column 2 is monomorphic, column 1 is coded by the major allele
    >>> pv.kept.tolist(), pv.flipped.tolist(), round(float(pv.G[3, 0]), 3)
    ([0, 1], [1], 0.167)
    """
    if impute not in IMPUTE_METHODS:
        raise InputError(f"impute must be one of {list(IMPUTE_METHODS)}, got {impute!r}")
    if not 0 < missing_cutoff <= 1:
        raise InputError(f"missing_cutoff must be in (0, 1], got {missing_cutoff!r}")
    G = Z if _validated else as_genotype_matrix(Z)
    n, p = G.shape
    col_sum = np.ones(n) @ G  # NaN exactly in the columns with missing values
    if np.isfinite(col_sum).all():
        return _prepare_complete(G, col_sum, max_maf)
    miss = np.isnan(G)
    if miss.any():
        n_obs = n - miss.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_obs = np.where(n_obs > 0, np.nansum(G, 0) / np.maximum(n_obs, 1), np.nan)
            sd = np.where(n_obs > 1, np.sqrt(np.nansum((G - mean_obs) ** 2, 0) / np.maximum(n_obs - 1, 1)), np.nan)
    else:
        mean_obs = G.mean(0)
        sd = G.std(0, ddof=1) if n > 1 else np.zeros(p)
    # The relative threshold keeps floating-point noise in the sd from admitting a monomorphic column.
    keep = (miss.mean(0) < missing_cutoff) & (np.nan_to_num(sd) > 1e-12)
    kept = np.flatnonzero(keep)
    if kept.size < p:
        G, miss = G[:, kept], miss[:, kept]
    if miss.any():
        maf_obs = mean_obs[kept] / 2.0
        if impute == "fixed":
            fill = np.broadcast_to(2.0 * maf_obs, G.shape)
        elif impute == "bestguess":
            fill = np.broadcast_to(np.round(2.0 * maf_obs), G.shape)
        else:
            rng = np.random.default_rng(seed)
            fill = rng.binomial(2, np.broadcast_to(np.clip(maf_obs, 0, 1), G.shape)).astype(np.float64)
        G = np.where(miss, fill, G)
    maf = G.mean(0) / 2.0
    flip = maf > 0.5
    if flip.any():
        if G is Z:
            G = G.copy()  # never modify the caller's matrix
        G[:, flip] = 2.0 - G[:, flip]
        maf = G.mean(0) / 2.0
    ok = maf < max_maf
    if not ok.all():
        G, maf, kept, flip = G[:, ok], maf[ok], kept[ok], flip[ok]
    flipped = kept[flip]
    return PreparedVariants(G=G, maf=maf, kept=kept, flipped=flipped, n_input=p)


def _prepare_complete(G: np.ndarray, col_sum: np.ndarray, max_maf: float) -> PreparedVariants:
    """:func:`prepare_variants` for a block without missing values, from column sums (no n x p temporaries).

    For 0/1/2 data the sums and sums of squares are exact integers, so the variance is exactly 0
    for a monomorphic column.
    """
    n, p = G.shape
    sum_sq = np.einsum("ij,ij->j", G, G)
    var = (sum_sq - col_sum * col_sum / n) / max(n - 1, 1)
    maf = col_sum / (2.0 * n)
    flip = maf > 0.5
    keep = var > 1e-12
    if flip.any():
        G = G.copy()  # never modify the caller's matrix
        G[:, flip] = 2.0 - G[:, flip]
        maf = np.where(flip, 1.0 - maf, maf)
    keep &= maf < max_maf
    kept = np.flatnonzero(keep)
    if kept.size < p:
        G = G[:, kept]
    return PreparedVariants(G=G, maf=maf[kept], kept=kept, flipped=np.flatnonzero(flip & keep), n_input=p)


def variant_weights(
    pv: PreparedVariants,
    weights_beta: tuple[float, float] = (1.0, 25.0),
    weights: Any = None,
) -> np.ndarray:
    """Per-variant kernel weights for the kept variants: user ``weights`` (one per input column) or Beta(a1, a2)."""
    if weights is None:
        return beta_weights(pv.maf, weights_beta)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.size != pv.n_input:
        raise InputError(f"weights has {w.size} values but Z has {pv.n_input} variant columns")
    if not np.isfinite(w).all():
        raise InputError("weights must be finite")
    return w[pv.kept]
