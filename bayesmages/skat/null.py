"""SKAT null models: the exact maximum-likelihood GLM fit the score tests need.

The Bayesian counterparts are the registered models ``glm_gaussian`` and ``glm_logistic``
(:mod:`bayesmages.glm`); the score statistics need the exact MLE, computed here in closed form
(Gaussian) or by IRLS to tolerance 1e-8 (logistic, R ``glm``'s rule).

Everything downstream works in p x p: the null object keeps an orthonormal basis ``Qw`` of
``sqrt(V) X~`` (X~ = [1, X]), so that for a genotype block G,
``G' P0 G = (sqrt(V) G)'(sqrt(V) G) - (Qw' sqrt(V) G)'(Qw' sqrt(V) G)`` without any n x n matrix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesmages.errors import ConvergenceWarning, InputError, SeparationError
from bayesmages.glm import design_data

__all__ = ["NullModel", "fit_null", "irls_logistic"]

TRAITS = ("continuous", "binary")
ADJUSTMENT_MAX_N = 2000  # R SKAT_Null_Model: the binary moment adjustment by default below this n


@dataclass
class NullModel:
    """A fitted SKAT null model (create it with :func:`fit_null`).

    Attributes
    ----------
    trait : str
        ``"continuous"`` or ``"binary"``.
    n : int
        Number of samples.
    X1 : numpy.ndarray
        (n, q) design with the intercept (its orthonormal basis when [1, X] is rank-deficient,
        as R SKAT does).
    coef : numpy.ndarray
        MLE coefficients of ``X1``.
    fitted : numpy.ndarray
        Fitted mean (mu).
    residuals : numpy.ndarray
        y - mu.
    var : numpy.ndarray
        Null variance weights V per sample: mu (1 - mu) for binary, ones for continuous.
    s2 : float
        Residual variance RSS / (n - q) (continuous); 1 for binary.
    Qw : numpy.ndarray
        (n, q) orthonormal basis of sqrt(V) X1.
    n_iter : int
        IRLS iterations (0 for the closed form).
    converged : bool
        Whether IRLS met its stopping rule (always ``True`` for the closed form); a fit that did
        not also raised a :class:`~bayesmages.errors.ConvergenceWarning`.
    rank_deficient : bool
        Whether [1, X] was rank-deficient (handled as R does: its orthonormal basis is used).
    adjustment : bool
        Whether the null carries bootstrap phenotypes for the small-sample moment adjustment.
    n_boot : int
        How many (``n_resampling`` of :func:`fit_null`; 0 without the adjustment).
    y_boot : numpy.ndarray or None
        (n, B) uint8 bootstrap phenotypes with the observed number of cases, drawn with
        probabilities proportional to mu (binary adjustment); ``None`` without it. Drawn from
        ``seed`` on first access and kept: only the moment-adjusted tests (``method_bin="adjusted"``
        and ``compat="R"``) read them, and drawing 10,000 of them at n = 2,000 takes seconds.
    """

    trait: str
    n: int
    X1: np.ndarray
    coef: np.ndarray
    fitted: np.ndarray
    residuals: np.ndarray
    var: np.ndarray
    s2: float
    Qw: np.ndarray
    n_iter: int = 0
    rank_deficient: bool = False
    adjustment: bool = False
    n_boot: int = 0
    seed: int | None = None
    converged: bool = True

    @property
    def y_boot(self) -> np.ndarray | None:
        """The bootstrap phenotypes (see the class docstring), drawn on first access."""
        if not self.adjustment:
            return None
        cached = self.__dict__.get("_y_boot")
        if cached is None:
            n_case = int(np.rint(self.fitted + self.residuals).sum())
            cached = self.__dict__["_y_boot"] = _bootstrap_phenotypes(self.fitted, n_case, self.n_boot,
                                                                      0 if self.seed is None else self.seed)
        return cached

    @property
    def sqrt_var(self) -> np.ndarray:
        """sqrt(V) per sample."""
        return np.sqrt(self.var)

    def project(self, G: np.ndarray) -> np.ndarray:
        """Whitened projected genotypes ``Z1 = P sqrt(V) G`` (n x p), with ``Z1'Z1 = G' P0 G``.

        ``P = I - Qw Qw'`` is applied as a rank-q update, never as an n x n matrix.
        """
        A = self._whiten(G)
        return A - self.Qw @ (self.Qw.T @ A)

    def cov_scores(self, G: np.ndarray) -> np.ndarray:
        """``G' P0 G`` (p x p): the null covariance of the scores ``G' r`` (up to s2)."""
        A = self._whiten(G)
        B = self.Qw.T @ A
        return A.T @ A - B.T @ B

    def scores_and_cov(self, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(G' r, G' P0 G)`` with one pass over G for the scores and the projection."""
        if self.trait != "continuous":
            return self.scores(G), self.cov_scores(G)
        QR = self.__dict__.get("_qr_stack")
        if QR is None:  # [Qw, r] as one (n, q + 1) block: one matrix product instead of two
            QR = self.__dict__["_qr_stack"] = np.ascontiguousarray(np.column_stack([self.Qw, self.residuals]).T)
        B = QR @ G
        return B[-1], G.T @ G - B[:-1].T @ B[:-1]

    def _whiten(self, G: np.ndarray) -> np.ndarray:
        # V = I for the Gaussian model: skip a pass over the n x p block
        return G if self.trait == "continuous" else G * self.sqrt_var[:, None]

    def scores(self, G: np.ndarray) -> np.ndarray:
        """Scores ``G' r`` (p,)."""
        return G.T @ self.residuals


def _orthonormal_design(X1: np.ndarray, label: str) -> tuple[np.ndarray, bool]:
    """[1, X] itself when of full column rank, else its left singular vectors (R SKAT's rule)."""
    u, s, _ = np.linalg.svd(X1, full_matrices=False)
    tol = s.max() * max(X1.shape) * np.finfo(float).eps
    rank = int((s > tol).sum())
    if rank == X1.shape[1]:
        return X1, False
    warnings.warn(
        f"{label}: the design [1, X] has rank {rank} < {X1.shape[1]} columns (collinear covariates); "
        "using its orthonormal basis as R SKAT does (the projection, hence every test, is unchanged)",
        UserWarning,
        stacklevel=3,
    )
    return u[:, :rank], True


def irls_logistic(
    X1: np.ndarray, y: np.ndarray, *, tol: float = 1e-8, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray, int]:
    """Maximum-likelihood logistic regression by IRLS (Fisher scoring), R ``glm``'s stopping rule.

    Stops when ``|dev - dev_old| / (|dev| + 0.1) < tol``; steps are halved when the deviance
    increases. Raises :class:`InputError` on (quasi-)complete separation.

    Parameters
    ----------
    X1 : numpy.ndarray
        (n, q) design including the intercept column.
    y : numpy.ndarray
        (n,) 0/1 outcomes.
    tol : float
        Relative deviance tolerance.
    max_iter : int
        Maximum iterations.

    Returns
    -------
    coef, mu, n_iter

    Warns
    -----
    ConvergenceWarning
        The stopping rule was not met within ``max_iter`` iterations, or step-halving could not
        decrease the deviance (the returned fit is then not the MLE).

    Examples
    --------
    >>> import numpy as np
    >>> X1 = np.column_stack([np.ones(6), [0., 1, 2, 3, 4, 5]])
    >>> coef, mu, it = irls_logistic(X1, np.array([0., 0, 1, 0, 1, 1]))
    >>> bool(np.isclose(mu.sum(), 3.0))
    True
    """
    coef, mu, n_iter, _ = _irls_logistic(X1, y, tol=tol, max_iter=max_iter)
    return coef, mu, n_iter


def _irls_logistic(
    X1: np.ndarray, y: np.ndarray, *, tol: float = 1e-8, max_iter: int = 100, guard: bool = True
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """:func:`irls_logistic` that also returns whether it converged.

    ``guard=True`` raises :class:`SeparationError` as soon as the fit diverges (|eta| > 30 or a
    weight below 1e-12). ``guard=False`` (used once a linear program has shown that the data are
    *not* separated) fits through such values as R's ``glm`` does, with the linear predictor
    clamped to [-30, 30] in the weights (R's ``binomial()$linkinv`` threshold).
    """
    def deviance(eta: np.ndarray) -> float:
        # -2 log L, computed stably from the linear predictor
        return float(2.0 * np.sum(np.logaddexp(0.0, eta) - y * eta))

    ybar = y.mean()
    beta = np.linalg.lstsq(X1, np.full(y.size, np.log(ybar / (1 - ybar))), rcond=None)[0]
    eta = X1 @ beta
    dev = deviance(eta)
    for it in range(1, max_iter + 1):
        mu = 0.5 * (1.0 + np.tanh(0.5 * (eta if guard else np.clip(eta, -30.0, 30.0))))  # stable sigmoid
        w = mu * (1.0 - mu)
        if guard and w.min() < 1e-12:
            raise _separation()
        z = eta + (y - mu) / w
        sw = np.sqrt(w)
        new = np.linalg.lstsq(X1 * sw[:, None], z * sw, rcond=None)[0]
        step = new - beta
        for _ in range(30):
            eta_new = X1 @ (beta + step)
            dev_new = deviance(eta_new)
            if np.isfinite(dev_new) and dev_new <= dev + 1e-12 * (abs(dev) + 1):
                break
            step = step / 2
        else:
            # 30 halvings (a step of 1e-9 of the scoring step) still increase the deviance: the
            # scoring direction is no descent direction here, so the iteration is stuck. The
            # deviance change of that last tiny step would pass the stopping rule, but the point
            # is not the MLE: say so instead of reporting convergence.
            warnings.warn(
                f"logistic null model: step-halving could not decrease the deviance at IRLS iteration {it}; "
                "the fit is not converged (check the covariates for extreme values or near-collinearity)",
                ConvergenceWarning, stacklevel=3)
            return beta, 0.5 * (1.0 + np.tanh(0.5 * eta)), it, False
        beta = beta + step
        eta = eta_new
        converged = abs(dev_new - dev) / (abs(dev_new) + 0.1) < tol
        dev = dev_new
        if guard and np.abs(eta).max() > 30:
            raise _separation()
        if converged:
            mu = 0.5 * (1.0 + np.tanh(0.5 * eta))
            return beta, mu, it, True
    warnings.warn(f"logistic null model: IRLS did not converge in {max_iter} iterations", ConvergenceWarning,
                  stacklevel=3)
    return beta, 0.5 * (1.0 + np.tanh(0.5 * eta)), max_iter, False


_SEPARATION_CHECK_ETA = 10.0  # |linear predictor| beyond which (p < 4.5e-5 or > 1 - 4.5e-5) separation is checked


def _separation(covariates: list[str] | None = None) -> SeparationError:
    if covariates:
        names = ", ".join(covariates)
        what = f"covariate {names} separates" if len(covariates) == 1 else f"covariates {names} together separate"
        return SeparationError(
            f"fit_null: {what} the binary outcome (perfect or quasi-complete separation: fitted probabilities "
            "reach 0 or 1, the coefficients diverge); remove or merge the separating covariate(s)", covariates)
    return SeparationError(
        "fit_null: the covariates separate the binary outcome (fitted probabilities reach 0 or 1); "
        "remove or merge the separating covariate(s)"
    )


def _separating_direction(X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """A direction b (intercept first, standardised columns) that separates ``y``, or ``None``.

    A direction b separates when ``s_i x_i'b >= 0`` for every sample (s = 2y - 1) and ``> 0``
    for at least one: the likelihood then keeps increasing along b and the MLE does not exist.
    Found by the linear program of Konis (2007): maximise ``sum_i s_i x_i'b`` subject to
    ``s_i x_i'b >= 0`` and ``-1 <= b <= 1``; the optimum is 0 exactly when no separating
    direction exists. The solution is verified in floating point.
    """
    from scipy.optimize import linprog

    n = y.size
    sd = X.std(axis=0)
    Xs = np.column_stack([np.ones(n), (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)])
    A = (2.0 * y - 1.0)[:, None] * Xs
    res = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(n), bounds=[(-1.0, 1.0)] * Xs.shape[1], method="highs")
    if res.status != 0 or res.x is None:
        return None
    b = np.asarray(res.x)
    margins = A @ b
    scale = float(np.abs(margins).max(initial=0.0))
    # a separating direction is exact: margins >= 0 up to round-off, and some clearly > 0
    if scale <= 1e-6 or margins.min() < -1e-9 * scale:
        return None
    return b


def separating_covariates(X: np.ndarray, y: np.ndarray, names: list[str]) -> list[str] | None:
    """Names of a smallest-by-elimination set of covariates that separates the 0/1 outcome, or ``None``.

    ``None`` means that ``[1, X]`` does not separate ``y`` (perfectly or quasi-completely). When
    it does, covariates are dropped one at a time while the rest still separate (one linear
    program each, :func:`_separating_direction`), so that the message names the culprits only
    (with a covariate equal to 2y - 1, that covariate and not its innocent neighbours).
    """
    if X.shape[1] == 0 or _separating_direction(X, y) is None:
        return None
    keep = list(range(X.shape[1]))
    for j in list(keep):
        rest = [k for k in keep if k != j]
        if rest and _separating_direction(X[:, rest], y) is not None:
            keep = rest
    return [names[j] for j in keep]


def _bootstrap_phenotypes(mu: np.ndarray, n_cases: int, n_draws: int, seed: int) -> np.ndarray:
    """(n, B) 0/1 phenotypes with exactly ``n_cases`` cases drawn with probabilities proportional to mu.

    Conditioning on the case count makes this a permutation when there are no covariates (R SKAT's
    ``type.Resampling="bootstrap"``). Weighted sampling without replacement is done with the
    Gumbel-top-k trick (the same law as drawing cases one at a time), in chunks to bound memory.
    """
    rng = np.random.default_rng(seed)
    n = mu.size
    out = np.zeros((n_draws, n), dtype=np.uint8)
    logmu = np.log(mu)
    for start in range(0, n_draws, 1000):
        stop = min(start + 1000, n_draws)
        keys = logmu[None, :] + rng.gumbel(size=(stop - start, n))
        idx = np.argpartition(-keys, n_cases - 1, axis=1)[:, :n_cases]
        np.put_along_axis(out[start:stop], idx, 1, axis=1)
    return np.ascontiguousarray(out.T)


def fit_null(
    y: Any,
    X: Any = None,
    trait: str = "continuous",
    adjustment: bool | None = None,
    *,
    n_resampling: int = 10_000,
    seed: int = 0,
) -> NullModel:
    """Fit the SKAT null model y ~ 1 + X by exact maximum likelihood.

    Parameters
    ----------
    y : array-like
        (n,) phenotype: real values (continuous) or 0/1 (binary).
    X : array-like, optional
        (n, q) covariates without the intercept (added here); ``None`` for intercept only.
    trait : {"continuous", "binary"}
        Gaussian identity (OLS, ``s2 = RSS / (n - q - 1)``) or Bernoulli logit (IRLS to 1e-8).
    adjustment : bool or None
        Binary only: carry ``n_resampling`` parametric-bootstrap phenotypes for the small-sample
        moment adjustment of Lee et al. (2012) (drawn on first use: :attr:`NullModel.y_boot`).
        ``None`` (default) does so as R's ``SKAT_Null_Model`` does: for a binary trait with
        n < 2,000 samples. Seeded.
    n_resampling : int
        Bootstrap size for the adjustment (R: 10,000).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    NullModel

    Raises
    ------
    InputError
        Length mismatch, missing values, constant y, non-0/1 binary y.
    SeparationError
        (An :class:`InputError`.) Binary trait whose covariates separate the outcome (perfectly
        or quasi-completely); the message names the covariates (DataFrame column names, else
        "column j of X").

    Warns
    -----
    ConvergenceWarning
        The logistic fit did not converge (``NullModel.converged`` is then ``False``).

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 2)); y = X[:, 0] + rng.normal(size=100)
    >>> null = bm.skat.fit_null(y, X, trait="continuous")
    >>> null.X1.shape
    (100, 3)
    """
    if trait not in TRAITS:
        raise InputError(f"fit_null: trait must be one of {list(TRAITS)}, got {trait!r}")
    named = hasattr(X, "columns")  # a DataFrame names its covariates in messages
    X, y, names = design_data((X, y), "fit_null")
    if not named:
        names = [f"'column {j + 1} of X'" for j in range(X.shape[1])]
    else:
        names = [repr(c) for c in names]
    n = y.size
    X1, deficient = _orthonormal_design(np.column_stack([np.ones(n), X]), "fit_null")
    q = X1.shape[1]
    if n <= q:
        raise InputError(f"fit_null: {n} samples are too few for {q} null-model coefficients")
    if trait == "continuous":
        if np.ptp(y) == 0:
            raise InputError("fit_null: y is constant; there is nothing to test")
        coef = np.linalg.lstsq(X1, y, rcond=None)[0]
        fitted = X1 @ coef
        res = y - fitted
        s2 = float(res @ res / (n - q))
        if s2 <= 1e-14 * float(np.var(y)):
            raise InputError("fit_null: the covariates fit y exactly (zero residual variance)")
        var = np.ones(n)
        n_iter = 0
        converged = True
    else:
        if not np.isin(y, (0.0, 1.0)).all():
            bad = int(np.flatnonzero(~np.isin(y, (0.0, 1.0)))[0])
            raise InputError(f"fit_null: a binary trait must be coded 0/1, found {y[bad]:g} at row {bad + 1}")
        if y.min() == y.max():
            raise InputError(f"fit_null: the binary trait has only {'cases' if y[0] else 'controls'}")
        try:
            coef, fitted, n_iter, converged = _irls_logistic(X1, y)
        except SeparationError:
            found = separating_covariates(X, y, names)
            if found is not None:
                raise _separation(found) from None
            # not separated, only extreme probabilities (a strong covariate): fit as R's glm does
            coef, fitted, n_iter, converged = _irls_logistic(X1, y, guard=False)
        if np.abs(X1 @ coef).max() > _SEPARATION_CHECK_ETA:
            # Probabilities this close to 0 or 1 are what a separated fit converges to (the
            # deviance change falls below the tolerance while the coefficients still diverge:
            # a covariate equal to 2y - 1 "converges" at a coefficient of ~27 at n = 200).
            # Non-separated data can reach them too, so the linear program decides.
            found = separating_covariates(X, y, names)
            if found is not None:
                raise _separation(found)
        res = y - fitted
        var = fitted * (1.0 - fitted)
        s2 = 1.0
    if adjustment is None:
        adjustment = trait == "binary" and n < ADJUSTMENT_MAX_N
    if adjustment and trait != "binary":
        raise InputError("fit_null: adjustment=True is the binary small-sample adjustment; use trait='binary'")
    Qw, _ = np.linalg.qr(X1 * np.sqrt(var)[:, None])
    if adjustment and (not isinstance(n_resampling, int) or n_resampling < 100):
        raise InputError(f"fit_null: n_resampling must be an integer >= 100, got {n_resampling!r}")
    # the bootstrap phenotypes are drawn on first use (NullModel.y_boot), from this seed
    return NullModel(trait=trait, n=n, X1=X1, coef=coef, fitted=fitted, residuals=res, var=var, s2=s2, Qw=Qw,
                     n_iter=n_iter, rank_deficient=deficient, adjustment=bool(adjustment),
                     n_boot=n_resampling if adjustment else 0, seed=seed, converged=converged)
