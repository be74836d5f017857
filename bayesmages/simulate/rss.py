"""Summary statistics with known truth: the RSS model and per-variant regression on genotypes.

RSS (regression with summary statistics): on the standardised scale, marginal GWAS estimates
from n samples satisfy ``beta_hat ~ N(R beta, R / n)``, with ``se_j = sqrt((1 - beta_hat_j^2) / (n - 2))``
(the OLS standard error of a standardised simple regression). :class:`RSSSampler` factorises R
once by an eigen-decomposition, so each further replicate costs one (m x m) matrix product per
batch rather than a new factorisation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesmages._threads import one_blas_thread
from bayesmages.errors import InputError
from bayesmages.simulate._checks import check_positive_int, check_seed, check_vector

__all__ = ["RSSSampler", "gwas_from_genotypes", "se_from_beta_hat", "simulate_sumstats"]

#: floor on 1 - beta_hat^2 in the SE formula; reached only when |beta_hat| >= 1 (tiny n)
_ONE_MINUS_B2_FLOOR = 1e-8


def se_from_beta_hat(beta_hat: np.ndarray, n: int) -> np.ndarray:
    """Standard errors ``sqrt((1 - beta_hat^2) / (n - 2))`` of standardised marginal effects.

    ``1 - beta_hat^2`` is floored at 1e-8, which only matters if ``|beta_hat| >= 1`` (impossible
    on the standardised scale except through sampling noise at tiny n).

    Examples
    --------
    >>> se_from_beta_hat(np.array([0.0, 0.6]), 102)
    array([0.1 , 0.08])
    """
    b = np.asarray(beta_hat, dtype=np.float64)
    return np.sqrt(np.maximum(1.0 - b * b, _ONE_MINUS_B2_FLOOR) / (n - 2))


#: below this size the eigen-decomposition runs on one BLAS thread (see :func:`_eigh`)
_SINGLE_THREAD_EIGH_MAX = 4000


def _eigh(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.linalg.eigh``, on one BLAS thread for blocks of up to a few thousand variants.

    See :mod:`bayesmages._threads` for why.
    """
    if R.shape[0] > _SINGLE_THREAD_EIGH_MAX:
        return np.linalg.eigh(R)
    with one_blas_thread():
        return np.linalg.eigh(R)


class RSSSampler:
    """Draw RSS summary statistics for one LD block, factorising R once.

    ``R = V diag(lam) V'``; eigenvalues below zero (rounding in real LD files) are clipped to 0
    and the noise is ``V diag(sqrt(lam)) z / sqrt(n)``, ``z ~ N(0, I)``, so its covariance is the
    nearest PSD matrix to R in Frobenius norm. The mean is ``R beta`` with R as given.

    Parameters
    ----------
    R : numpy.ndarray
        (m, m) LD correlation matrix (validated: square, symmetric, unit diagonal, |r| <= 1).
    neg_tol : float
        Largest tolerated negative eigenvalue magnitude (default 1e-3); a more negative
        eigenvalue means R is not an LD matrix of any sample and is an InputError.

    Attributes
    ----------
    m : int
        Number of variants.
    min_eigenvalue : float
        Smallest eigenvalue of R before clipping.

    Examples
    --------
    >>> R = np.array([[1.0, 0.8], [0.8, 1.0]])
    >>> sampler = RSSSampler(R)
    >>> bh, se = sampler.sample(np.zeros(2), 10_000, seed=0, n_replicates=3)
    >>> bh.shape, se.shape
    ((3, 2), (3, 2))
    """

    def __init__(self, R: np.ndarray, *, neg_tol: float = 1e-3):
        from bayesmages.io.ld import validate_ld

        self.R = validate_ld(R, source="R")
        self.m = int(self.R.shape[0])
        lam, V = _eigh(self.R)
        self.min_eigenvalue = float(lam[0])
        if lam[0] < -abs(float(neg_tol)):
            raise InputError(
                f"R is not positive semi-definite: smallest eigenvalue {lam[0]:.3g} < -{neg_tol:g}; "
                "regularise it (e.g. (1-a) R + a I) or raise neg_tol"
            )
        # Columns of the square-root factor L (R ≈ L L'); clipping keeps the draw well defined.
        self._L = V * np.sqrt(np.clip(lam, 0.0, None))

    def sample(
        self, beta: np.ndarray, n: int, *, seed: int, n_replicates: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``beta_hat ~ N(R beta, R / n)`` and ``se = sqrt((1 - beta_hat^2) / (n - 2))``.

        Parameters
        ----------
        beta : numpy.ndarray
            (m,) true standardised effects.
        n : int
            GWAS sample size, >= 3.
        seed : int
            Random seed; same seed, same draws.
        n_replicates : int, optional
            Number of independent replicates; None returns one draw of shape (m,).

        Returns
        -------
        beta_hat, se : numpy.ndarray
            Shapes (m,) or (n_replicates, m), float64.
        """
        beta = check_vector(beta, "beta", length=self.m)
        n = check_positive_int(n, "n", minimum=3)
        rng = np.random.default_rng(check_seed(seed))
        reps = 1 if n_replicates is None else check_positive_int(n_replicates, "n_replicates")
        mean = self.R @ beta
        z = rng.standard_normal((reps, self.m))
        beta_hat = mean + (z @ self._L.T) / np.sqrt(n)
        if n_replicates is None:
            beta_hat = beta_hat[0]
        return beta_hat, se_from_beta_hat(beta_hat, n)


def simulate_sumstats(
    R: np.ndarray, beta: np.ndarray, n: int, *, seed: int, n_replicates: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """RSS summary statistics ``beta_hat ~ N(R beta, R / n)``, ``se = sqrt((1 - beta_hat^2)/(n - 2))``.

    A one-call wrapper of :class:`RSSSampler`; build the sampler yourself to reuse the
    factorisation of R across many calls.

    Parameters
    ----------
    R : numpy.ndarray
        (m, m) LD correlation matrix.
    beta : numpy.ndarray
        (m,) true effects on the standardised scale.
    n : int
        GWAS sample size (>= 3).
    seed : int
        Random seed.
    n_replicates : int, optional
        Independent replicates; output shape (n_replicates, m) instead of (m,).

    Returns
    -------
    beta_hat, se : numpy.ndarray

    Raises
    ------
    InputError
        R not a correlation matrix (or clearly indefinite), beta of the wrong length or
        non-finite, n < 3, a bad seed.

    Examples
    --------
    >>> R = np.eye(3)
    >>> bh, se = simulate_sumstats(R, np.array([0.1, 0.0, 0.0]), 10_000, seed=1)
    >>> bh.shape, bool(np.all(se > 0))
    ((3,), True)
    """
    return RSSSampler(R).sample(beta, n, seed=seed, n_replicates=n_replicates)


def gwas_from_genotypes(
    G: np.ndarray, y: np.ndarray, *, trait: str = "continuous", standardize: bool = False,
    max_iter: int = 50, tol: float = 1e-10,
) -> pd.DataFrame:
    """Per-variant marginal association: centred simple regression (or logistic regression).

    Parameters
    ----------
    G : numpy.ndarray
        (n, m) genotypes (no missing values).
    y : numpy.ndarray
        (n,) phenotype; 0/1 for ``trait="binary"``.
    trait : {"continuous", "binary"}
        ``"continuous"``: OLS of y on an intercept and g_j, with
        ``BETA = g_c' y_c / g_c' g_c`` (centred vectors) and
        ``SE = sqrt(RSS_j / ((n - 2) g_c' g_c))`` — exactly the OLS estimate and standard error.
        ``"binary"``: maximum-likelihood logistic regression of y on an intercept and g_j
        (Newton's method, vectorised over variants); BETA is the log odds ratio and SE the
        Wald standard error from the observed information.
    standardize : bool
        Standardise genotype columns to unit variance first (and, for continuous traits, y), so
        that BETA is on the standardised scale of the RSS model.
    max_iter, tol : int, float
        Newton iterations and convergence tolerance (max absolute step) for binary traits.

    Returns
    -------
    pandas.DataFrame
        Columns ``BETA``, ``SE``, ``N`` (one row per variant, in column order).

    Raises
    ------
    InputError
        Shapes disagree, non-finite values, a monomorphic variant, y constant, y not 0/1 for
        binary traits, or a logistic fit that does not converge (separation).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> G = rng.binomial(2, 0.3, size=(200, 3)).astype(float)
    >>> y = 0.5 * G[:, 0] + rng.normal(size=200)
    >>> df = gwas_from_genotypes(G, y)
    >>> list(df.columns), len(df)
    (['BETA', 'SE', 'N'], 3)
    """
    X = np.asarray(G, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise InputError(f"G must be a 2-D (samples x variants) array, got shape {X.shape}")
    if yy.ndim != 1 or yy.shape[0] != X.shape[0]:
        raise InputError(f"y must be a 1-D array with one value per row of G ({X.shape[0]}), got shape {yy.shape}")
    n = X.shape[0]
    if n < 3:
        raise InputError(f"need at least 3 samples, got {n}")
    if not np.isfinite(X).all():
        raise InputError("G has non-finite entries; impute missing genotypes first")
    if not np.isfinite(yy).all():
        raise InputError("y has non-finite entries")
    if trait not in ("continuous", "binary"):
        raise InputError(f"trait must be 'continuous' or 'binary', got {trait!r}")
    Xc = X - X.mean(axis=0)
    gg = np.einsum("ij,ij->j", Xc, Xc)
    if (gg <= 0).any():
        j = int(np.flatnonzero(gg <= 0)[0])
        raise InputError(f"G: variant column {j} is monomorphic; no association can be estimated")
    if standardize:
        sd = np.sqrt(gg / n)
        Xc /= sd
        gg = np.full_like(gg, float(n))
    if trait == "continuous":
        yc = yy - yy.mean()
        yss = float(yc @ yc)
        if yss <= 0:
            raise InputError("y is constant; no association can be estimated")
        if standardize:
            yc /= np.sqrt(yss / n)
            yss = float(n)
        gy = Xc.T @ yc
        beta = gy / gg
        rss = np.maximum(yss - beta * gy, 0.0)
        se = np.sqrt(rss / ((n - 2) * gg))
    else:
        beta, se = _logistic_per_variant(Xc, yy, max_iter=max_iter, tol=tol)
    return pd.DataFrame({"BETA": beta, "SE": se, "N": np.full(beta.shape[0], n, dtype=np.int64)})


def _logistic_per_variant(Xc: np.ndarray, y: np.ndarray, *, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Newton's method for y ~ Bernoulli(sigmoid(a_j + b_j x_j)), all variants j at once."""
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError("y must be coded 0/1 for trait='binary'")
    ybar = float(y.mean())
    if ybar in (0.0, 1.0):
        raise InputError("y is constant (all 0 or all 1); no association can be estimated")
    m = Xc.shape[1]
    a = np.full(m, np.log(ybar / (1 - ybar)))  # intercept-only MLE: a good start
    b = np.zeros(m)
    step = np.full(m, np.inf)
    # Under separation the MLE is infinite: Newton steps grow or the information becomes singular;
    # such variants are reported below instead of warned about.
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            h_aa, h_ab, h_bb, g_a, g_b = _logistic_terms(Xc, y, a, b)
            det = h_aa * h_bb - h_ab**2
            step_a = (h_bb * g_a - h_ab * g_b) / det
            step_b = (h_aa * g_b - h_ab * g_a) / det
            a += step_a
            b += step_b
            step = np.maximum(np.abs(step_a), np.abs(step_b))
            if not np.all(np.isfinite(step)) or np.max(step) < tol:
                break
        h_aa, h_ab, h_bb, _, _ = _logistic_terms(Xc, y, a, b)
        se = np.sqrt(h_aa / (h_aa * h_bb - h_ab**2))
    bad = ~(step < tol) | ~np.isfinite(b) | ~np.isfinite(se)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"logistic regression for variant column {j} did not converge in {max_iter} iterations "
            "(separation: the variant perfectly predicts y?)"
        )
    return b, se


def _logistic_terms(
    Xc: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Information entries (aa, ab, bb) and score (a, b) of per-variant logistic likelihoods."""
    p = 0.5 * (1.0 + np.tanh(0.5 * (a + Xc * b)))  # overflow-free sigmoid
    wgt = p * (1.0 - p)
    r = y[:, None] - p
    return (
        wgt.sum(axis=0),
        np.einsum("ij,ij->j", Xc, wgt),
        np.einsum("ij,ij,ij->j", Xc, Xc, wgt),
        r.sum(axis=0),
        np.einsum("ij,ij->j", Xc, r),
    )
