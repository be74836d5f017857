"""Related samples: the EMMAX-style linear mixed null model (R SKAT's ``SKAT_NULL_emmaX``).

Model: ``y = X b + g + e`` with ``g ~ N(0, s_g^2 K)`` (K a kinship or genetic relationship
matrix) and ``e ~ N(0, s_e^2 I)``. The variance components are estimated once, under the null,
by restricted maximum likelihood (REML) as EMMA does (Kang et al. 2008, *Genetics* 178:1709;
EMMAX, Kang et al. 2010, *Nat Genet* 42:348): with U0 an orthonormal basis of the complement of
X's column space and ``U0' K U0 = E diag(xi) E'``, the REML log-likelihood in ``delta = s_e^2 / s_g^2``
is

    l(delta) = -1/2 [ (n - q) log(sum_i eta_i^2 / (xi_i + delta)) + sum_i log(xi_i + delta) ] + const,

``eta = E' U0' y``; it is maximised over log(delta) on R's grid (101 points on [-10, 10]) and then
refined between the neighbours of the best grid point; ``s_g^2 = sum eta^2 / (xi + delta) / (n - q)``.
With ``V = s_g^2 K + s_e^2 I`` fixed, the score test is that of a Gaussian model with covariance V:
scores ``G' P y`` and their null covariance ``G' P G`` with ``P = V^-1 - V^-1 X (X' V^-1 X)^-1 X' V^-1``
(R's ``res`` and ``P``); SKAT, burden and SKAT-O then run unchanged (``s2 = 1``).

Cost: one eigendecomposition of K (O(n^3); n = 10,000 takes about a minute and 800 MB for the
eigenvectors) and an O(n^2 p) rotation per gene.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from bayesmages.errors import InputError
from bayesmages.glm import design_data
from bayesmages.skat.null import NullModel

__all__ = ["KinshipNullModel", "fit_null_kinship"]

_GRID = np.linspace(-10.0, 10.0, 101)  # R's ngrids = 100, llim = -10, ulim = 10 (log delta)


@dataclass
class KinshipNullModel(NullModel):
    """A SKAT null model with related samples (create it with :func:`fit_null_kinship`).

    Besides :class:`~bayesmages.skat.null.NullModel`'s attributes (``residuals`` is ``P y``,
    ``s2`` is 1): ``sigma_g2`` and ``sigma_e2`` (R's ``va`` and ``ve``), ``delta`` = their
    ratio s_e^2 / s_g^2, and the rotation of K's eigendecomposition.
    """

    sigma_g2: float = 0.0
    sigma_e2: float = 1.0
    delta: float = 1.0
    rot: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)  # U' (n x n)
    inv_sd: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)  # (s_g^2 d + s_e^2)^-1/2

    def _whiten(self, G: np.ndarray) -> np.ndarray:
        # V^-1/2 in K's eigenbasis: G' P G = (W G)'(I - Qw Qw')(W G) with W = D^-1/2 U'
        return (self.rot @ G) * self.inv_sd[:, None]

    def scores_and_cov(self, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(G' P y, G' P G)``."""
        return self.scores(G), self.cov_scores(G)


def _check_kinship(K: Any, n: int) -> np.ndarray:
    try:
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("kinship: K must be a numeric (n, n) matrix") from None
    if K.shape != (n, n):
        raise InputError(f"kinship: K has shape {K.shape}, expected ({n}, {n}) for the {n} samples of y")
    if not np.isfinite(K).all():
        i, j = np.argwhere(~np.isfinite(K))[0]
        raise InputError(f"kinship: K[{i}, {j}] is not finite")
    scale = max(float(np.abs(K).max()), 1e-300)
    asym = float(np.abs(K - K.T).max())
    if asym > 1e-8 * scale:
        raise InputError(f"kinship: K is not symmetric (largest |K - K'| = {asym:.3g})")
    return (K + K.T) / 2.0


def fit_null_kinship(y: Any, X: Any = None, K: Any = None) -> KinshipNullModel:
    """Fit the EMMAX null model ``y = X b + g + e``, ``Var(g) = s_g^2 K``, by REML (R ``SKAT_NULL_emmaX``).

    Parameters
    ----------
    y : array-like
        (n,) continuous phenotype.
    X : array-like, optional
        (n, q) covariates without the intercept (added here).
    K : array-like
        (n, n) kinship or genetic relationship matrix of the same samples in the same order:
        symmetric and positive semi-definite.

    Returns
    -------
    KinshipNullModel
        Use it with :func:`bayesmages.skat.test` like any null model.

    Raises
    ------
    InputError
        K missing, of the wrong shape, not finite, not symmetric or not positive semi-definite;
        the usual phenotype and covariate errors of :func:`bayesmages.skat.fit_null`.

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> rng = np.random.default_rng(0)
    >>> n = 200; fam = np.repeat(np.arange(50), 4)
    >>> K = np.where(fam[:, None] == fam[None, :], 0.5, 0.0); np.fill_diagonal(K, 1.0)
    >>> y = rng.multivariate_normal(np.zeros(n), 0.6 * K + 0.4 * np.eye(n))
    >>> null = bm.skat.fit_null_kinship(y, None, K)
    >>> bool(null.sigma_g2 > 0)
    True
    """
    if K is None:
        raise InputError("fit_null_kinship: a kinship matrix K is required")
    X, y, _ = design_data((X, y), "fit_null_kinship")
    n = y.size
    if np.ptp(y) == 0:
        raise InputError("fit_null_kinship: y is constant; there is nothing to test")
    K = _check_kinship(K, n)
    d, U = np.linalg.eigh(K)
    if d[0] < -1e-8 * max(float(d[-1]), 1e-300):
        raise InputError(f"kinship: K is not positive semi-definite (smallest eigenvalue {d[0]:.3g}, largest "
                         f"{d[-1]:.3g}); use a kinship or GRM matrix, or project it onto the PSD cone")
    d = np.clip(d, 0.0, None)
    X1 = np.column_stack([np.ones(n), X])
    q = int(np.linalg.matrix_rank(X1))
    if n <= q + 1:
        raise InputError(f"fit_null_kinship: {n} samples are too few for {q} covariates and two variance components")
    # REML on the complement of X's column space
    Qfull, _ = np.linalg.qr(X1, mode="complete")
    U0 = Qfull[:, q:]
    xi, E = np.linalg.eigh(U0.T @ K @ U0)
    xi = np.clip(xi, 0.0, None)
    eta2 = (E.T @ (U0.T @ y)) ** 2
    m = n - q

    def neg_reml(log_delta: float) -> float:
        v = xi + np.exp(log_delta)
        return 0.5 * (m * np.log(np.sum(eta2 / v)) + np.sum(np.log(v)))

    vals = np.array([neg_reml(t) for t in _GRID])
    i = int(np.argmin(vals))
    lo, hi = _GRID[max(i - 1, 0)], _GRID[min(i + 1, _GRID.size - 1)]
    log_delta = float(optimize.minimize_scalar(neg_reml, bounds=(lo, hi), method="bounded",
                                               options={"xatol": 1e-10}).x) if hi > lo else float(_GRID[i])
    delta = float(np.exp(log_delta))
    sigma_g2 = float(np.sum(eta2 / (xi + delta)) / m)
    sigma_e2 = delta * sigma_g2
    inv_sd = 1.0 / np.sqrt(sigma_g2 * d + sigma_e2)
    rot = np.ascontiguousarray(U.T)
    WX = (rot @ X1) * inv_sd[:, None]
    Qw, _ = np.linalg.qr(WX)
    Wy = (rot @ y) * inv_sd
    r_w = Wy - Qw @ (Qw.T @ Wy)  # P y in whitened coordinates
    residuals = U @ (r_w * inv_sd)  # P y = V^-1/2 (I - Qw Qw') V^-1/2 y
    coef = np.linalg.lstsq(WX, Wy, rcond=None)[0]  # GLS estimate of b
    return KinshipNullModel(trait="continuous", n=n, X1=X1, coef=coef, fitted=X1 @ coef, residuals=residuals,
                            var=np.ones(n), s2=1.0, Qw=Qw, sigma_g2=sigma_g2, sigma_e2=sigma_e2, delta=delta,
                            rot=rot, inv_sd=inv_sd)
