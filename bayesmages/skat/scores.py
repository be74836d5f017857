"""Weighted score vectors and their null covariance (the kernel in p x p form).

For weighted genotypes ``Gw = G diag(w)`` and null residuals r, the scores are ``S = Gw' r``, with
null covariance ``W = Gw' P0 Gw`` (p x p; never n x n). The linear weighted kernel of SKAT is
``K = Gw Gw'``; SKAT uses ``S'S``, burden ``(1'S)^2`` and SKAT-O their mixtures.
"""

from __future__ import annotations

import numpy as np

from bayesmages.skat.null import NullModel

__all__ = ["weighted_scores"]


def weighted_scores(G: np.ndarray, w: np.ndarray, null: NullModel) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``S`` (p,) and their null covariance ``W`` (p x p, unscaled by s2).

    The weights are applied to the p x p products, not to an n x p copy of ``G``.
    """
    S, W = null.scores_and_cov(G)
    return w * S, w[:, None] * W * w[None, :]
