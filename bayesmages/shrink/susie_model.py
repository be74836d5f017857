"""The registered model ``susie_rss``: sum of single effects (+ infinitesimal background) on the RSS likelihood.

The algorithm is in :mod:`bayesmages.shrink.susie`; this module wraps it in the
:class:`~bayesmages.model.BayesianModel` contract (``get_model``, ``fit``, ``summary``, ``save``) and
does the bookkeeping of the shrinkage step: the z scale and back, the sample-size adjustment of z,
the optional LD regularisation, intervals, PIPs and credible sets.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch

from bayesmages.errors import InputError, NotFittedError
from bayesmages.model import BayesianModel
from bayesmages.priors import PriorSpec
from bayesmages.registry import register_model
from bayesmages.shrink.intervals import conditional_interval
from bayesmages.shrink.susie import SusieFit, credible_sets, fit_susie_rss, mixture_quantiles

__all__ = ["MAX_BLOCK", "N_RANGE", "SusieRSS", "adjust_z", "check_n", "regularise_ld"]

#: sample sizes the model was benchmarked on (bench/shrink.py); outside, a warning
N_RANGE = (500, 1_000_000)
#: largest block benchmarked; larger blocks work but cost O(m^2) per sweep (O(m^3) with the background)
MAX_BLOCK = 3000


def check_n(n: Any, *, name: str = "n") -> float:
    """Validate a GWAS sample size: a finite number >= 10 (error), warn outside :data:`N_RANGE`.

    Examples
    --------
    >>> check_n(300_000)
    300000.0
    """
    try:
        v = float(n)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number (the GWAS sample size), got {n!r}") from None
    if not np.isfinite(v) or v < 10:
        raise InputError(f"{name} must be a finite GWAS sample size >= 10, got {n!r}")
    if not N_RANGE[0] <= v <= N_RANGE[1]:
        warnings.warn(f"{name} = {v:g} is outside the range the susie shrinker was benchmarked on "
                      f"({N_RANGE[0]:,} to {N_RANGE[1]:,}); results are untested there", stacklevel=3)
    return v


def adjust_z(z: np.ndarray, n: float | None) -> np.ndarray:
    """z-scores on the scale of the RSS likelihood: ``z sqrt((n - 1) / (z^2 + n - 2))`` (Zou et al. 2022).

    The marginal t-statistic of a standardised regression overstates ``sqrt(n) * r`` when the
    variant explains a visible share of the trait; the adjustment undoes that. ``n = None`` leaves
    z unchanged.

    Examples
    --------
    >>> adjust_z(np.array([0.0, 30.0]), 1000).round(3)
    array([ 0.   , 21.765])
    """
    if n is None:
        return z
    return z * np.sqrt((n - 1.0) / (z * z + n - 2.0))


def regularise_ld(R: np.ndarray, ld_lambda: float) -> np.ndarray:
    """``(R + lambda I) / (1 + lambda)``: R pulled toward the identity.

    A guard against LD from a reference panel that does not match the GWAS sample.

    Examples
    --------
    >>> regularise_ld(np.array([[1.0, 0.5], [0.5, 1.0]]), 0.25)
    array([[1. , 0.4],
           [0.4, 1. ]])
    """
    if ld_lambda == 0:
        return R
    out = R / (1.0 + ld_lambda)
    out[np.diag_indices_from(out)] = 1.0
    return out


@register_model("susie_rss")
class SusieRSS(BayesianModel):
    """Sum of single effects plus an infinitesimal background on the RSS likelihood, fitted by coordinate ascent.

    Model on the z scale (``z = beta_hat / se``, adjusted for n): ``z ~ N(R (b + theta), R)``,
    ``b = sum_l b_l`` with each ``b_l`` one non-zero variant (uniform prior) of effect ``N(0, V_l)``,
    ``theta ~ N(0, tau2 I)``. ``V_l`` and ``tau2`` are set by empirical Bayes, so the model has no
    user-set priors (the prior table is empty).

    Parameters
    ----------
    L : int
        Single effects to start with (SuSiE's L).
    max_L : int
        While every effect is in use at convergence, the fit restarts with 3 times as many, up to ``max_L``.
    polygenic : bool or "auto"
        The infinitesimal background: always, never, or when ``max_L`` effects are not enough.
    ld_lambda : float
        Regularisation of R: ``(R + lambda I) / (1 + lambda)`` (0: R as given). A guard when R comes
        from a reference panel rather than the GWAS sample.
    max_iter, tol : int, float
        Coordinate-ascent sweeps at most and the stopping tolerance.
    coverage, min_purity : float
        Credible-set coverage and purity (smallest |r| inside a set).
    level : float
        Coverage of the reported interval ``lower_``/``upper_`` (LD-conditional,
        :func:`bayesmages.shrink.intervals.conditional_interval`) and of the posterior's central
        interval ``credible_lower_``/``credible_upper_``.

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> R = np.eye(4)
    >>> model = bm.get_model("susie_rss", L=2).fit((np.array([0.05, 0.0, 0.001, 0.0]), np.full(4, 0.005), R, 40_000))
    >>> model.pip_.round(2)[0]
    np.float64(1.0)
    """

    supported_methods: ClassVar[tuple[str, ...]] = ("cavi",)

    def __init__(
        self,
        L: int = 10,
        max_L: int = 30,
        polygenic: bool | str = "auto",
        ld_lambda: float = 0.0,
        max_iter: int = 200,
        tol: float = 1e-3,
        coverage: float = 0.95,
        min_purity: float = 0.5,
        level: float = 0.9,
        priors: Mapping[str, Any] | None = None,
    ) -> None:
        self.L = L
        self.max_L = max_L
        self.polygenic = polygenic
        self.ld_lambda = ld_lambda
        self.max_iter = max_iter
        self.tol = tol
        self.coverage = coverage
        self.min_purity = min_purity
        self.level = level
        super().__init__(priors)
        self._check_settings()

    def _check_settings(self) -> None:
        for key in ("L", "max_L", "max_iter"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"susie_rss: {key} must be a positive integer, got {v!r}")
        if self.polygenic not in (True, False, "auto"):
            raise InputError(f"susie_rss: polygenic must be True, False or 'auto', got {self.polygenic!r}")
        if not (np.isfinite(self.ld_lambda) and 0 <= float(self.ld_lambda) < 1e3):
            raise InputError(f"susie_rss: ld_lambda must be in [0, 1000), got {self.ld_lambda!r}")
        for key in ("coverage", "level"):
            v = getattr(self, key)
            if not 0 < float(v) < 1:
                raise InputError(f"susie_rss: {key} must be in (0, 1), got {v!r}")
        if not 0 <= float(self.min_purity) <= 1:
            raise InputError(f"susie_rss: min_purity must be in [0, 1], got {self.min_purity!r}")
        if not float(self.tol) > 0:
            raise InputError(f"susie_rss: tol must be positive, got {self.tol!r}")

    # ----------------------------------------------------------------- contract
    def prior_specs(self, dims: Mapping[str, int] | None) -> dict[str, PriorSpec]:
        """None: the prior variances are estimated by empirical Bayes (see the class docstring)."""
        return {}

    def model(self, z: torch.Tensor, R: torch.Tensor, V: torch.Tensor, tau2: float = 0.0) -> None:
        """The generative model in Pyro, for given prior variances ``V`` (L,) and ``tau2``.

        Used to check the closed-form updates against Pyro's densities; the fit itself is the
        coordinate ascent of :func:`bayesmages.shrink.susie.fit_susie_rss`.
        """
        m = z.shape[-1]
        b = torch.zeros(m, dtype=torch.float64)
        for ll in range(V.shape[0]):
            j = pyro.sample(f"gamma_{ll}", dist.Categorical(logits=torch.zeros(m, dtype=torch.float64)))
            size = pyro.sample(f"beta_{ll}", dist.Normal(torch.tensor(0.0, dtype=torch.float64), V[ll].sqrt()))
            b = b + torch.nn.functional.one_hot(j, m).to(torch.float64) * size
        if tau2 > 0:
            theta = pyro.sample("theta", dist.Normal(torch.zeros(m, dtype=torch.float64),
                                                     torch.full((m,), tau2, dtype=torch.float64).sqrt()).to_event(1))
            b = b + theta
        pyro.sample("z", dist.MultivariateNormal(R @ b, covariance_matrix=R), obs=z)

    def fit(self, data: Any, method: str = "cavi", seed: int = 0, progress: bool = False,
            **kwargs: Any) -> SusieRSS:
        """Fit one block.

        Parameters
        ----------
        data : tuple
            ``(beta_hat, se, R)`` or ``(beta_hat, se, R, n)``: (m,) effects and standard errors, the
            (m, m) LD matrix and the GWAS sample size (None: z is not adjusted for n).
        method : {"cavi"}
            Closed-form coordinate ascent (the only method).
        seed, progress
            Accepted for the common interface; the fit is deterministic.

        Returns
        -------
        self
        """
        from bayesmages.shrink.features import validate_block

        if method not in self.supported_methods:
            raise InputError(f"susie_rss: method must be 'cavi', got {method!r}")
        if kwargs:
            raise InputError(f"susie_rss.fit: unknown option(s) {sorted(kwargs)}")
        if not isinstance(data, tuple | list) or len(data) not in (3, 4):
            raise InputError("susie_rss.fit: data must be (beta_hat, se, R) or (beta_hat, se, R, n)")
        b, s, R = validate_block(*data[:3])
        n = None if len(data) == 3 or data[3] is None else check_n(data[3])
        self._fit_block(b, s, R, n)
        self.method_ = method
        self.seed_ = seed
        self.elbo_ = None
        return self

    def _fit_block(self, b: np.ndarray, s: np.ndarray, R: np.ndarray, n: float | None) -> None:
        z = adjust_z(b / s, n)
        Rr = regularise_ld(R, float(self.ld_lambda))
        # ld_lambda > 0 says the LD is from a panel: no extra effects and no "auto" background, which
        # fit LD error (bench/shrink_susie.py; the mismatch check of fit_susie_rss is calibrated on unregularised R)
        panel = float(self.ld_lambda) > 0
        fit = fit_susie_rss(z, Rr, L=self.L, max_L=self.L if panel else self.max_L,
                            polygenic=False if panel and self.polygenic == "auto" else self.polygenic,
                            max_iter=self.max_iter, tol=self.tol)
        w, mu, sd = fit.mixture()
        tail = (1.0 - self.level) / 2.0
        # the posterior's own interval (an atom at 0 for variants without an effect) ...
        cred_lo, cred_hi = mixture_quantiles(w, mu, sd, (tail, 1.0 - tail))
        # ... and the reported one: LD-conditional, covering small and null effects alike (shrink/intervals.py)
        lo, hi = conditional_interval(z, Rr, fit.mean, fit.var, level=self.level)
        # Back to the units of beta_hat: the RSS scale of z_adj is sqrt(n - 1) times the standardised
        # effect, and the per-allele effect is the standardised one times sd_y / sd_x = se sqrt(z^2 + n - 2)
        # (from se of a simple regression); without n, se alone.
        z0 = b / s
        unit = s if n is None else s * np.sqrt((z0 * z0 + n - 2.0) / (n - 1.0))
        self.fit_ = fit
        self.mean_ = fit.mean * unit
        self.sd_ = np.sqrt(fit.var) * unit
        self.lower_, self.upper_ = lo * unit, hi * unit
        self.credible_lower_, self.credible_upper_ = cred_lo * unit, cred_hi * unit
        self.pip_ = fit.pip
        self.credible_sets_ = credible_sets(fit, Rr, coverage=self.coverage, min_purity=self.min_purity)
        self.n_ = n
        self.se_ = unit

    def _check_fitted(self) -> None:
        if not hasattr(self, "fit_"):
            raise NotFittedError("susie_rss is not fitted yet; call fit((beta_hat, se, R, n))")

    def cs_labels(self) -> np.ndarray:
        """(m,) label of the credible set holding each variant (``"L<k>"``, its largest-alpha set), or ""."""
        self._check_fitted()
        fit: SusieFit = self.fit_
        labels = np.full(fit.alpha.shape[1], "", dtype=object)
        best = np.zeros(fit.alpha.shape[1])
        for cs in self.credible_sets_:
            idx = cs["variants"]
            a = fit.alpha[cs["effect"], idx]
            take = a > best[idx]
            labels[idx[take]] = f"L{cs['effect'] + 1}"
            best[idx[take]] = a[take]
        return labels

    def summary(self, n: int = 2000, seed: int = 0) -> pd.DataFrame:
        """One row per variant: posterior mean and sd, intervals, PIP and credible set.

        ``lower``/``upper``: the LD-conditional interval (:mod:`bayesmages.shrink.intervals`);
        ``credible_lower``/``credible_upper``: the posterior's own central interval.
        """
        self._check_fitted()
        return pd.DataFrame({"mean": self.mean_, "sd": self.sd_, "lower": self.lower_, "upper": self.upper_,
                             "credible_lower": self.credible_lower_, "credible_upper": self.credible_upper_,
                             "pip": self.pip_, "cs": self.cs_labels()})

    def sample_posterior(self, n: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
        """Draws of the per-variant effects ``b + theta`` (per-allele scale) from the fitted approximation."""
        self._check_fitted()
        fit: SusieFit = self.fit_
        rng = np.random.default_rng(seed)
        act = np.nonzero(fit.active)[0]
        m = fit.alpha.shape[1]
        out = rng.normal(fit.theta_mean, np.sqrt(fit.theta_var), size=(n, m))
        for ll in act:
            j = rng.choice(m, size=n, p=fit.alpha[ll] / fit.alpha[ll].sum())
            out[np.arange(n), j] += rng.normal(fit.mu[ll, j], np.sqrt(fit.s2[ll, j]))
        return {"beta": out * self.se_}

    def _state(self) -> dict[str, Any]:
        return dict(vars(self))

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(dict(state))
