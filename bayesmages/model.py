"""The model contract shared by every registered model.

A :class:`BayesianModel` subclass supplies

* ``prior_specs(self)`` -> ``{name: PriorSpec}`` (documented defaults, shapes, supports);
* ``_prepare(self, data)`` -> a :class:`FitData` of validated float64 tensors;
* ``model(self, *args, **kwargs)`` -> the Pyro model, reading priors from ``self.priors``;

and optionally ``_make_guide(method, restart)`` (default: AutoNormal for ``"svi"``,
AutoDelta for ``"map"``), ``_after_fit()`` (set fitted attributes ending in ``_``) and
``_dims()`` (ArviZ dimension names). Everything else — fitting through :mod:`bayesmages.infer`,
posterior draws, summaries, ArviZ conversion, save/load — is implemented once, here.

Conventions follow scikit-learn: ``__init__`` stores its arguments, ``fit`` returns ``self``,
fitted attributes end in ``_``, ``get_params`` works by introspection.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import pyro
import torch
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_median, init_to_sample

from bayesmages import diagnostics, infer
from bayesmages.errors import InputError, NotFittedError
from bayesmages.priors import PriorSpec, resolve_priors

__all__ = ["BayesianModel", "FitData", "load_model"]

_FORMAT_VERSION = 1


@dataclass
class FitData:
    """Validated model arguments.

    Attributes
    ----------
    args : tuple
        Positional arguments of ``model`` (float64 tensors).
    kwargs : dict
        Keyword arguments of ``model``.
    dims : dict
        Sizes the priors' shapes depend on (e.g. ``{"n_features": 3}``).
    observed : dict
        Observed arrays for the ArviZ ``observed_data`` group.
    num_data : int
        Number of independent observations (for minibatching).
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    observed: dict[str, np.ndarray] = field(default_factory=dict)
    num_data: int = 0


class BayesianModel:
    """Base class of all bayesmages models (see the module docstring for the contract).

    Parameters
    ----------
    priors : mapping, optional
        ``name -> Pyro distribution`` overriding the documented defaults (see
        :meth:`prior_specs`). Unknown names or supports outside the parameter's domain raise
        :class:`~bayesmages.errors.InputError` immediately; shapes are checked again against
        the data before fitting.
    """

    registry_name: ClassVar[str] = ""
    supported_methods: ClassVar[tuple[str, ...]] = ("svi", "map", "nuts")
    #: default keyword arguments of :func:`bayesmages.infer.run_svi` for this model
    svi_defaults: ClassVar[dict[str, Any]] = {}

    # Set by fit(): the SVI/MAP result, or the NUTS draws (``None`` for the other family).
    _svi: infer.SVIResult | None
    _nuts_samples: dict[str, np.ndarray] | None
    elbo_: np.ndarray | None

    def __init__(self, priors: Mapping[str, Any] | None = None) -> None:
        self.priors_user = dict(priors or {})
        # Name and support errors surface at construction; shapes need the data.
        resolve_priors(self.prior_specs(None), self.priors_user, model_name=self._label)

    # ----------------------------------------------------------------- subclass API
    def prior_specs(self, dims: Mapping[str, int] | None) -> dict[str, PriorSpec]:
        """The model's priors: ``name -> PriorSpec``.

        ``dims`` holds data-dependent sizes (``None`` before the data is known, in which
        case shapes may be ``None``).
        """
        raise NotImplementedError

    def _prepare(self, data: Any) -> FitData:
        raise NotImplementedError

    def model(self, *args: Any, **kwargs: Any) -> Any:
        """The Pyro model."""
        raise NotImplementedError

    def _make_guide(self, method: str, restart: int) -> Any:
        init = init_to_median(num_samples=15) if restart == 0 else init_to_sample()
        if method == "map":
            return AutoDelta(self.model, init_loc_fn=init)
        return AutoNormal(self.model, init_loc_fn=init, init_scale=0.05)

    def _after_fit(self) -> None:
        """Set fitted attributes (ending in ``_``) from the posterior."""

    def _dims(self) -> dict[str, list[str]]:
        """ArviZ dims per posterior variable."""
        return {}

    # ----------------------------------------------------------------- priors
    @property
    def _label(self) -> str:
        return self.registry_name or type(self).__name__

    @property
    def priors(self) -> dict[str, Any]:
        """Priors in force: the documented defaults merged with the user's (validated)."""
        dims = getattr(self, "_fit_dims", None)
        return resolve_priors(self.prior_specs(dims), self.priors_user, model_name=self._label)

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        data: Any,
        method: str = "svi",
        seed: int = 0,
        progress: bool = False,
        **infer_kwargs: Any,
    ) -> Self:
        """Fit the model.

        Parameters
        ----------
        data : object
            Model-specific data (see the subclass).
        method : {"svi", "map", "nuts"}
            Mean-field SVI, MAP (SVI with a point-mass guide), or NUTS (small data).
        seed : int
            Seed; the same seed gives the same fit.
        progress : bool
            Progress bar on a terminal.
        **infer_kwargs
            Passed to :func:`bayesmages.infer.run_svi` (e.g. ``num_steps``, ``lr``,
            ``restarts``, ``batch_size``) or :func:`bayesmages.infer.run_nuts`
            (``num_samples``, ``warmup_steps``, ``num_chains``).

        Returns
        -------
        self
        """
        if method not in self.supported_methods:
            raise InputError(
                f"{self._label}: method must be one of {list(self.supported_methods)}, got {method!r}"
            )
        fd = self._prepare(data)
        self._fit_dims = dict(fd.dims)
        self._resolved = self.priors  # full validation (names, shapes, supports) before inference
        self._fit_data = fd
        self.method_ = method
        self.seed_ = seed
        if method == "nuts":
            res = infer.run_nuts(self.model, *fd.args, seed=seed, progress=progress, **infer_kwargs, **fd.kwargs)
            self._nuts_samples = res.samples
            self._nuts_stats = res.sample_stats
            self._svi = None
            self.elbo_ = None
            self.fit_seconds_ = res.seconds
        else:
            opts = {**self.svi_defaults, **infer_kwargs}
            svi_res = infer.run_svi(
                self.model,
                lambda r: self._make_guide(method, r),
                *fd.args,
                seed=seed,
                progress=progress,
                num_data=fd.num_data or None,
                desc=self._label,
                **opts,
                **fd.kwargs,
            )
            self._svi = svi_res
            self._nuts_samples = None
            self.elbo_ = svi_res.elbo
            self.restart_losses_ = svi_res.restart_losses
            self.fit_seconds_ = svi_res.seconds
        self._after_fit()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "method_"):
            raise NotFittedError(f"{self._label} is not fitted yet; call fit(data) first")

    def _fitted_svi(self) -> infer.SVIResult:
        """The SVI/MAP result of the fit (the code paths that call this are not reached after NUTS)."""
        if self._svi is None:
            raise NotFittedError(f"{self._label} has no SVI result (fitted with method {self.method_!r})")
        return self._svi

    def _fitted_nuts_samples(self) -> dict[str, np.ndarray]:
        """The NUTS draws of the fit (the code paths that call this are reached after NUTS only)."""
        if self._nuts_samples is None:
            raise NotFittedError(f"{self._label} has no NUTS draws (fitted with method {self.method_!r})")
        return self._nuts_samples

    # ----------------------------------------------------------------- posterior
    def _latent_sites(self) -> tuple[dict[str, tuple[int, ...]], int]:
        """Latent site shapes and the model's maximum plate nesting (from one prior trace)."""
        fd = self._fit_data
        with infer.seeded(0), infer.param_scope(), torch.no_grad():
            tr = pyro.poutine.trace(self.model).get_trace(*fd.args, **fd.kwargs)
        shapes: dict[str, tuple[int, ...]] = {}
        nesting = 0
        for name, site in tr.nodes.items():
            if site["type"] != "sample":
                continue
            dims = [f.dim for f in site["cond_indep_stack"] if f.vectorized and f.dim is not None]
            nesting = max([nesting, *(-d for d in dims)])
            if not site["is_observed"] and not name.startswith("_"):
                value = site["value"]
                assert value is not None  # a traced sample site always holds its value
                shapes[name] = tuple(value.shape)
        return shapes, nesting

    def sample_posterior(self, n: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
        """Draws from the fitted posterior (approximation).

        Parameters
        ----------
        n : int
            Number of draws.
        seed : int
            Seed.

        Returns
        -------
        dict
            ``name -> array`` shaped ``(n, *site_shape)``, float64. For NUTS, ``n`` draws are
            taken (with replacement when needed) from the pooled chains.
        """
        self._check_fitted()
        if not isinstance(n, int) or n < 1:
            raise InputError(f"n must be a positive integer, got {n!r}")
        if self.method_ == "nuts":
            rng = np.random.default_rng(seed)
            pooled = {k: v.reshape(-1, *v.shape[2:]) for k, v in self._fitted_nuts_samples().items()}
            total = next(iter(pooled.values())).shape[0]
            idx = rng.choice(total, size=n, replace=n > total)
            return {k: v[idx] for k, v in pooled.items()}
        return self._guide_draws(n, seed)

    def _guide_draws(self, n: int, seed: int) -> dict[str, np.ndarray]:
        # Draw all n samples in one vectorised guide call under an outer plate; the model is
        # not re-run, so models need not be written for vectorised prediction.
        fd = self._fit_data
        shapes, nesting = self._latent_sites()
        svi = self._fitted_svi()
        with infer.seeded(seed), infer.param_scope(svi.param_state), torch.no_grad():
            with pyro.plate("_posterior_draws", n, dim=-(nesting + 1)):
                values = svi.guide(*fd.args, **fd.kwargs)
        return {
            k: values[k].detach().double().reshape(n, *shape).numpy()
            for k, shape in shapes.items()
            if k in values
        }

    def summary(self, n: int = 2000, seed: int = 0) -> pd.DataFrame:
        """Posterior summary: one row per parameter element.

        Columns ``mean, sd, q5, q50, q95``; for NUTS also ``r_hat, ess_bulk, ess_tail``.
        """
        self._check_fitted()
        if self.method_ == "nuts":
            return diagnostics.summarize_draws(self._fitted_nuts_samples(), chains=True)
        return diagnostics.summarize_draws(self.sample_posterior(n, seed))

    def to_inference_data(self, n: int = 1000, seed: int = 0, psis: bool = False) -> Any:
        """The fit as :class:`arviz.InferenceData`.

        Parameters
        ----------
        n : int
            Number of SVI draws (NUTS keeps its chains).
        seed : int
            Seed of the SVI draws.
        psis : bool
            Also compute the PSIS k-hat of the SVI guide (attribute ``psis_khat``).

        Returns
        -------
        arviz.InferenceData
            ``posterior``, ``sample_stats`` (ELBO history for SVI, ``diverging`` for NUTS),
            ``observed_data``.
        """
        self._check_fitted()
        attrs: dict[str, Any] = {"inference": self.method_, "model": self._label}
        fd = self._fit_data
        if self.method_ == "nuts":
            return diagnostics.to_inference_data(
                self._fitted_nuts_samples(),
                chains=True,
                sample_stats=self._nuts_stats,
                observed_data=fd.observed,
                dims=self._dims(),
                attrs=attrs,
            )
        if psis:
            attrs["psis_khat"] = self.psis_khat(seed=seed)
        return diagnostics.to_inference_data(
            self.sample_posterior(n, seed),
            elbo=self.elbo_,
            observed_data=fd.observed,
            dims=self._dims(),
            attrs=attrs,
        )

    def psis_khat(self, num_particles: int = 500, seed: int = 0) -> float:
        """PSIS k-hat of the fitted SVI guide (> 0.7: do not trust posterior expectations)."""
        self._check_fitted()
        if self.method_ == "nuts":
            raise InputError("psis_khat applies to SVI fits, not NUTS")
        fd = self._fit_data
        svi = self._fitted_svi()
        return infer.psis_khat(
            self.model, svi.guide, svi.param_state, *fd.args,
            num_particles=num_particles, seed=seed, **fd.kwargs,
        )

    def plot_elbo(self, **kwargs: Any) -> Any:
        """Plot the ELBO history (see :func:`bayesmages.diagnostics.plot_elbo`)."""
        self._check_fitted()
        if self.elbo_ is None:
            raise InputError(f"{self._label} was fitted with {self.method_!r}; it has no ELBO history")
        return diagnostics.plot_elbo(self.elbo_, **kwargs)

    # ----------------------------------------------------------------- params, persistence
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments, by introspection of ``__init__`` (scikit-learn style)."""
        out = {}
        for name in self._param_names():
            out[name] = self.priors_user if name == "priors" else getattr(self, name)
        return out

    def set_params(self, **params: Any) -> BayesianModel:
        """Set constructor arguments; returns ``self``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise InputError(f"{self._label}: unknown parameter {key!r}; valid: {sorted(valid)}")
            if key == "priors":
                self.priors_user = dict(value or {})
            else:
                setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "priors")
        return f"{type(self).__name__}({args})"

    def _state(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k != "_svi"}
        svi = getattr(self, "_svi", None)
        if svi is not None:
            state["_svi_saved"] = {
                "param_state": svi.param_state,
                "losses": svi.losses,
                "restart_losses": svi.restart_losses,
                "best_restart": svi.best_restart,
                "converged": svi.converged,
                "seconds": svi.seconds,
            }
        return state

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the model (settings, priors, fitted state) to ``path``, atomically.

        The file is a torch pickle: load only files you trust.
        """
        from bayesmages.io.tables import atomic_path

        payload = {
            "format_version": _FORMAT_VERSION,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "registry_name": self.registry_name,
            "state": self._state(),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    def _restore(self, state: Mapping[str, Any]) -> None:
        saved = dict(state)
        svi = saved.pop("_svi_saved", None)
        self.__dict__.update(saved)
        if svi is not None:
            fd = self._fit_data
            guide = self._make_guide(self.method_, 0)
            with infer.param_scope(svi["param_state"]), infer.seeded(0):
                guide(*fd.args, **fd.kwargs)  # builds the guide's structure; values come from the state
            self._svi = infer.SVIResult(guide=guide, restart_states=[], **svi)


def load_model(path: str | os.PathLike[str]) -> BayesianModel:
    """Load a model written by :meth:`BayesianModel.save`.

    Parameters
    ----------
    path : str or path-like
        File written by ``save``. Only load files you trust (torch pickle).

    Returns
    -------
    BayesianModel
    """
    import importlib

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such model file")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # corrupt or not a torch file
        raise InputError(f"{p}: not a bayesmages model file ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format_version") != _FORMAT_VERSION:
        raise InputError(f"{p}: not a bayesmages model file of format version {_FORMAT_VERSION}")
    module, qualname = payload["class"].split(":")
    cls = getattr(importlib.import_module(module), qualname)
    obj = cls.__new__(cls)
    obj._restore(payload["state"])
    return obj
