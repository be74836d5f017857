"""Weighted score vectors and their null covariance (the kernel in p x p form).

For weighted genotypes ``Gw = G diag(w)`` and null residuals r, the scores are ``S = Gw' r``, with
null covariance ``W = Gw' P0 Gw`` (p x p; never n x n). The linear weighted kernel of SKAT is
``K = Gw Gw'``; SKAT uses ``S'S``, burden ``(1'S)^2`` and SKAT-O their mixtures.
"""

from __future__ import annotations

import numpy as np

from bayesmages.skat.null import NullModel

__all__ = ["boot_scores", "weighted_scores"]


def weighted_scores(G: np.ndarray, w: np.ndarray, null: NullModel) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Scores ``S`` (p,), their null covariance ``W`` (p x p, unscaled by s2) and ``Z1``.

    ``Z1 = null.project(Gw)`` (n x p) is returned only for a moment-adjusted binary null, whose
    p-values need it; otherwise ``None`` and the weights are applied to the p x p products, not
    to an n x p copy of ``G``.
    """
    if null.adjustment and null.trait == "binary":
        Gw = G * w[None, :]
        S = Gw.T @ null.residuals
        Z1 = null.project(Gw)
        return S, Z1.T @ Z1, Z1
    S, W = null.scores_and_cov(G)
    return w * S, w[:, None] * W * w[None, :], None


def boot_scores(null: NullModel, Z1: np.ndarray) -> np.ndarray:
    """Bootstrap scores ``T* = Z~' (y* - mu)`` (p x B), Z~ = Z1 / sqrt(V): the linearised null scores."""
    cache = null.__dict__.setdefault("_boot_cache", {})
    if "Yc" not in cache:
        assert null.y_boot is not None  # only moment-adjusted nulls get here, and they carry y_boot
        # centred bootstrap phenotypes, kept as float32 to halve the memory of an (n, B) matrix
        cache["Yc"] = (null.y_boot.astype(np.float32) - null.fitted[:, None].astype(np.float32))
    Zt = (Z1 / null.sqrt_var[:, None]).astype(np.float32)
    return (Zt.T @ cache["Yc"]).astype(np.float64)
