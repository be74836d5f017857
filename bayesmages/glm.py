"""Generalised linear models as registered Pyro models.

``glm_gaussian`` is Bayesian linear regression, y ~ N(intercept + X coef, scale^2). It proves
the inference spine and is the Bayesian face of the SKAT continuous null model (whose score
test uses the exact least-squares fit, see :mod:`bayesmages.skat`). ``glm_logistic`` is
Bayesian logistic regression, the Bayesian face of the binary null model (exact fit: IRLS in
:mod:`bayesmages.skat.null`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from bayesmages.errors import InputError
from bayesmages.model import BayesianModel, FitData
from bayesmages.priors import PriorSpec
from bayesmages.registry import register_model

__all__ = ["GLMGaussian", "GLMLogistic", "design_data"]


def _f64(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def design_data(data: Any, label: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate ``(X, y)`` data for a GLM.

    Parameters
    ----------
    data : tuple or mapping
        ``(X, y)`` or ``{"X": X, "y": y}``; ``X`` is (n, q) (a DataFrame keeps its column
        names; ``None`` or q = 0 means intercept only), ``y`` has length n.
    label : str
        Model name for error messages.

    Returns
    -------
    X : numpy.ndarray
        (n, q) float64.
    y : numpy.ndarray
        (n,) float64.
    names : list of str
        Covariate names.
    """
    if isinstance(data, Mapping):
        if "y" not in data:
            raise InputError(f"{label}: data mapping needs keys 'X' and 'y'")
        X, y = data.get("X"), data["y"]
    elif isinstance(data, tuple | list) and len(data) == 2:
        X, y = data
    else:
        raise InputError(f"{label}: data must be (X, y) or {{'X': X, 'y': y}}, got {type(data).__name__}")
    y = np.asarray(y, dtype=np.float64).ravel() if not isinstance(y, pd.Series) else y.to_numpy(np.float64)
    n = y.size
    if n == 0:
        raise InputError(f"{label}: y is empty")
    if X is None:
        X = np.zeros((n, 0))
    names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{label}: X must be numeric") from None
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise InputError(f"{label}: X must be 2-D (n, q), got shape {X.shape}")
    if X.shape[0] != n:
        raise InputError(f"{label}: X has {X.shape[0]} rows but y has {n} values")
    if not np.isfinite(y).all():
        row = int(np.flatnonzero(~np.isfinite(y))[0]) + 1
        raise InputError(f"{label}: y has a missing or infinite value at row {row}")
    if not np.isfinite(X).all():
        i, j = np.argwhere(~np.isfinite(X))[0]
        raise InputError(f"{label}: X has a missing or infinite value at row {i + 1}, column {j + 1}")
    names = names or [f"x{j}" for j in range(X.shape[1])]
    return X, y, names


class _GLM(BayesianModel):
    """Shared parts of the GLMs: priors on intercept and coefficients, data, linear predictor."""

    svi_defaults: ClassVar[dict[str, Any]] = {"num_steps": 4000, "lr": 0.05, "min_steps": 300, "window": 100}
    #: default prior sds of the intercept and of each coefficient
    _intercept_sd: ClassVar[float] = 10.0
    _coef_sd: ClassVar[float] = 10.0
    _coef_doc: ClassVar[str] = "regression coefficients"

    def __init__(self, fit_intercept: bool = True, priors: Mapping[str, Any] | None = None) -> None:
        self.fit_intercept = fit_intercept
        super().__init__(priors)

    def prior_specs(self, dims: Mapping[str, int] | None) -> dict[str, PriorSpec]:
        """Priors: ``intercept`` (when fitted), ``coef`` (q,) and the subclass's extras."""
        q = None if dims is None else dims["n_features"]
        coef_sd, intercept_sd = self._coef_sd, self._intercept_sd
        specs = {
            "coef": PriorSpec(lambda: dist.Normal(_f64(0.0), _f64(coef_sd)), constraints.real,
                              shape=None if q is None else (q,), doc=self._coef_doc),
            **self._extra_prior_specs(),
        }
        if self.fit_intercept:
            specs["intercept"] = PriorSpec(lambda: dist.Normal(_f64(0.0), _f64(intercept_sd)), constraints.real,
                                           shape=(), doc="intercept")
        return specs

    def _extra_prior_specs(self) -> dict[str, PriorSpec]:
        return {}

    def _check_y(self, y: np.ndarray) -> None:
        """Family-specific validation of the response."""

    def _prepare(self, data: Any) -> FitData:
        X, y, names = design_data(data, self._label)
        self._check_y(y)
        self.feature_names_in_ = names
        return FitData(
            args=(torch.as_tensor(X), torch.as_tensor(y)),
            dims={"n_features": X.shape[1]},
            observed={"y": y},
            num_data=y.size,
        )

    def _linear_predictor(self, X: torch.Tensor) -> torch.Tensor:
        priors = self._resolved
        q = X.shape[1]
        eta = torch.zeros(X.shape[0], dtype=X.dtype)
        if self.fit_intercept:
            eta = eta + pyro.sample("intercept", priors["intercept"]).to(X.dtype)
        if q:
            prior = priors["coef"]
            if tuple(prior.batch_shape) + tuple(prior.event_shape) != (q,):
                prior = prior.expand([q])
            coef = pyro.sample("coef", prior.to_event(1)).to(X.dtype)
            # (X * coef).sum(-1), not X @ coef: a leading batch of draws (vectorised prediction,
            # PSIS particles) then broadcasts against the data dimension.
            eta = eta + (X * coef).sum(-1)
        return eta

    def _dims(self) -> dict[str, list[str]]:
        return {"coef": ["covariate"]}

    def _after_fit(self) -> None:
        draws = self.sample_posterior(1000, seed=self.seed_)
        if "coef" in draws:
            self.coef_ = draws["coef"].mean(0)
        self.intercept_ = float(draws["intercept"].mean()) if "intercept" in draws else 0.0
        if "scale" in draws:
            self.scale_ = float(draws["scale"].mean())


@register_model("glm_gaussian")
class GLMGaussian(_GLM):
    """Bayesian linear regression: y ~ N(intercept + X coef, scale^2).

    Priors (defaults are weakly informative for data of order 1; rescale your data or set
    priors otherwise):

    | name      | shape | support  | default                       |
    |-----------|-------|----------|-------------------------------|
    | intercept | ()    | real     | Normal(0, 10)                 |
    | coef      | (q,)  | real     | Normal(0, 10) per coefficient |
    | scale     | ()    | positive | HalfCauchy(5)                 |

    Parameters
    ----------
    fit_intercept : bool
        Include the intercept (its prior is ``intercept``).
    priors : mapping, optional
        Overrides, e.g. ``{"coef": dist.Normal(0., 1.)}``; a scalar prior broadcasts over
        coefficients.

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)); y = 1 + X @ [0.5, -0.2] + rng.normal(size=200)
    >>> m = bm.get_model("glm_gaussian").fit((X, y), seed=0)  # doctest: +SKIP
    >>> m.summary().loc["coef[0]", "mean"]  # doctest: +SKIP
    0.5...
    """

    def _extra_prior_specs(self) -> dict[str, PriorSpec]:
        return {"scale": PriorSpec(lambda: dist.HalfCauchy(_f64(5.0)), constraints.positive, shape=(),
                                   doc="residual standard deviation")}

    def model(self, X: torch.Tensor, y: torch.Tensor | None = None, subsample_size: int | None = None) -> None:
        """Pyro model; ``y=None`` samples from the prior predictive."""
        mean = self._linear_predictor(X)
        scale = pyro.sample("scale", self._resolved["scale"]).to(X.dtype)
        with pyro.plate("data", X.shape[0], subsample_size=subsample_size) as idx:
            pyro.sample("y", dist.Normal(mean[..., idx], scale), obs=None if y is None else y[idx])


@register_model("glm_logistic")
class GLMLogistic(_GLM):
    """Bayesian logistic regression: y ~ Bernoulli(sigmoid(intercept + X coef)).

    The Bayesian face of the SKAT binary null model (whose score test uses the exact
    maximum-likelihood fit, :func:`bayesmages.skat.fit_null`).

    | name      | shape | support | default                        |
    |-----------|-------|---------|--------------------------------|
    | intercept | ()    | real    | Normal(0, 5)                   |
    | coef      | (q,)  | real    | Normal(0, 2.5) per coefficient |

    The defaults are weakly informative on the log-odds scale for standardised covariates.

    Parameters
    ----------
    fit_intercept : bool
        Include the intercept (its prior is ``intercept``).
    priors : mapping, optional
        Overrides, e.g. ``{"coef": dist.Normal(0., 1.)}``; a scalar prior broadcasts over
        coefficients.

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)); y = rng.random(300) < 1 / (1 + np.exp(-(X @ [1.0, -0.5])))
    >>> m = bm.get_model("glm_logistic").fit((X, y.astype(float)), seed=0)  # doctest: +SKIP
    >>> m.coef_  # doctest: +SKIP
    array([ 1.0..., -0.5...])
    """

    _intercept_sd: ClassVar[float] = 5.0
    _coef_sd: ClassVar[float] = 2.5
    _coef_doc: ClassVar[str] = "log-odds coefficients"

    def _check_y(self, y: np.ndarray) -> None:
        if not np.isin(y, (0.0, 1.0)).all():
            row = int(np.flatnonzero(~np.isin(y, (0.0, 1.0)))[0]) + 1
            raise InputError(f"{self._label}: y must be 0/1, found {y[row - 1]:g} at row {row}")

    def model(self, X: torch.Tensor, y: torch.Tensor | None = None, subsample_size: int | None = None) -> None:
        """Pyro model; ``y=None`` samples from the prior predictive."""
        logits = self._linear_predictor(X)
        with pyro.plate("data", X.shape[0], subsample_size=subsample_size) as idx:
            pyro.sample("y", dist.Bernoulli(logits=logits[..., idx]), obs=None if y is None else y[idx])
