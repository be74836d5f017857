"""The reporting side of :class:`~bayesmages.cluster.DPMixture`: association types, tables, summaries, plots.

:class:`DPMixtureOutput` is the base class that :class:`~bayesmages.cluster.DPMixture` inherits
(:mod:`bayesmages.cluster.dpmixture` holds the model, its fit and its posterior draws): what a fitted
mixture reports, per cluster (:meth:`~DPMixtureOutput.cluster_table`), per variant
(:meth:`~DPMixtureOutput.variant_table`, :meth:`~DPMixtureOutput.association_types`), as posterior
summaries (:meth:`~DPMixtureOutput.summary`, :meth:`~DPMixtureOutput.to_inference_data`) and as a plot.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesmages import diagnostics
from bayesmages.cluster.data import prepare_effects
from bayesmages.cluster.postprocess import log_responsibilities
from bayesmages.cluster.types import (
    TypeLibrary,
    canonical_grid,
    fit_type_weights,
    type_library,
    type_probabilities,
    variant_noise,
)
from bayesmages.cluster.types import association_types as association_type_names
from bayesmages.errors import InputError, PruningWarning
from bayesmages.model import BayesianModel

__all__ = ["DPMixtureOutput"]


class DPMixtureOutput(BayesianModel):
    """What a fitted :class:`~bayesmages.cluster.DPMixture` reports (its base class; not a model on its own).

    The attributes annotated here are set by :class:`~bayesmages.cluster.DPMixture`'s settings and fit.
    """

    # settings (DPMixture.__init__)
    keep_mass: float
    type_min_signal: float
    type_scales: tuple[float, ...]
    type_null_scales: tuple[float, ...]
    type_canonical: bool
    # fitted (DPMixture._prepare, DPMixture._after_fit)
    trait_names_: list[str]
    n_traits_: int
    scale_: float
    n_components_: int
    weights_: np.ndarray
    covariances_: np.ndarray
    all_weights_: np.ndarray
    all_covariances_: np.ndarray
    component_index_: np.ndarray
    responsibilities_: np.ndarray
    labels_: np.ndarray
    categories_: list[str]
    pruned_probability_: np.ndarray
    pruned_label_change_: np.ndarray
    type_library_: TypeLibrary
    _types_cache: np.ndarray | None
    # the kept clusters' draws of a NUTS fit (DPMixture's posterior draws)
    _chain_draws: Callable[[], dict[str, np.ndarray]]

    @property
    def types_(self) -> list[str]:
        """The association types of the fitted traits (columns of :attr:`type_probabilities_`)."""
        self._check_fitted()
        return association_type_names(self.trait_names_)

    @property
    def type_probabilities_(self) -> np.ndarray:
        """(N, T) association-type probabilities of the fitted rows (computed on first use).

        ``association_types()`` with the fit's own rows and ``sd``; when the fit used a selection
        of the variants, call :meth:`association_types` on all of them instead.
        """
        self._check_fitted()
        if getattr(self, "_types_cache", None) is None:
            self._types_cache = self.association_types().to_numpy()
        assert self._types_cache is not None
        return self._types_cache

    def _pruning_report(self, X: np.ndarray, noise: np.ndarray | None) -> None:
        """Probability of the pruned clusters per variant, and the labels that pruning changed.

        Responsibilities under the whole fitted mixture (every component): ``pruned_probability_`` is
        the mass of the clusters that ``keep_mass`` left out; a variant whose most probable cluster was
        pruned with probability > 0.5 has its label changed by pruning (``pruned_label_change_``), which
        a :class:`~bayesmages.errors.PruningWarning` reports.
        """
        used = self.all_weights_ > 0
        full = np.exp(log_responsibilities(X, self.all_weights_[used], self.all_covariances_[used], noise))
        kept = np.isin(np.flatnonzero(used), self.component_index_)
        self.pruned_probability_ = full[:, ~kept].sum(1)
        top = full.argmax(1)
        self.pruned_label_change_ = ~kept[top] & (full.max(1) > 0.5)
        n = int(self.pruned_label_change_.sum())
        if n:
            warnings.warn(
                f"{self._label}: keep_mass={self.keep_mass} pruned clusters that held {n} variant(s) with probability "
                "> 0.5; their labels now name a kept cluster (variant_table() columns p_pruned and "
                "pruned_label_change list them; raise keep_mass to keep those clusters). Association-type "
                "probabilities use every cluster and are not affected.", PruningWarning, stacklevel=3)

    def association_types(self, effects: Any = None, *, sd: Any = None, se: Any = None, noise_var: Any = None,
                          pip: Any = None, seed: int = 0, null_scales: Sequence[float] | None = None) -> pd.DataFrame:
        """Per-variant association-type probabilities (see :mod:`bayesmages.cluster.types`).

        Every fitted cluster (pruned ones included, by ``all_weights_``) is split into type-structured
        components whose weights are refitted on ``effects`` by EM; the result gives, per variant,
        the probability of each type: ``non-prioritised``, ``specific:<t>``, ``shared:<t1>+<t2>...``.

        Parameters
        ----------
        effects : array or DataFrame, optional
            (N, p) effects to type, default the fitted rows. When the fit used a selection of the
            variants, pass all of them: the null level is estimated from the bulk of the effects.
        sd : array, optional
            (N, p) posterior sds from the shrinker: the per-variant null scale, see
            :func:`bayesmages.cluster.types.variant_noise` (default: the fit's ``sd`` when ``effects``
            is not given).
        se : array, optional
            (N, p) GWAS standard errors: the robust null level then scales with se^2.
        noise_var : array, optional
            (N, p) or (p,) noise variances given directly (overrides ``sd``, ``se`` and ``pip``).
        pip : array, optional
            (N, p) per-trait posterior inclusion probabilities of a sparse shrinker (``susie``), with
            ``se``: an unselected effect gets noise ``(1 - pip) se^2`` at least (see
            :func:`~bayesmages.cluster.types.variant_noise`).
        seed : int
            Seed of the row subset EM uses on very large inputs.
        null_scales : sequence of float, optional
            Null components ``N(0, c x noise)`` (see :func:`~bayesmages.cluster.typelib.type_library`); default
            ``type_null_scales``, or ``(0,)`` with ``sd``. Observations whose noise is known (LD-deconvolved
            GWAS effects with ``se^2``, :mod:`bayesmages.cluster.observations`) take ``(0,)``.

        Returns
        -------
        pandas.DataFrame
            (N, T) probabilities, columns = types; the fitted library is kept in ``type_library_``.
        """
        self._check_fitted()
        if effects is None:
            X = self._fit_data.observed["effects"]
            sd = self._fit_data.observed.get("sd") if sd is None else sd
        else:
            X, _, _ = prepare_effects(effects, self.trait_names_, self._label)
        if X.shape[1] != self.n_traits_:
            raise InputError(f"{self._label}: effects have {X.shape[1]} traits; the fit has {self.n_traits_}")
        explicit = null_scales is not None
        null_scales = tuple(null_scales) if null_scales is not None else self.type_null_scales
        if noise_var is None:
            noise_var = variant_noise(X, sd=sd, se=se, pip=pip)
            if sd is not None and not explicit:
                null_scales = (0.0,)  # the shrinker's sd is the null scale of each variant
        # Clusters expected to hold at least one fitted row; the others are the prior, not the data.
        n_fit = self._fit_data.num_data
        lib = type_library(self.all_weights_, self.all_covariances_, self.trait_names_, noise_var,
                           min_signal=self.type_min_signal, min_weight=1.0 / n_fit, scales=self.type_scales,
                           null_scales=null_scales,
                           canonical_scales=canonical_grid(X, noise_var) if self.type_canonical else ())
        lib = fit_type_weights(X, lib, noise_var, seed=seed)
        self.type_library_ = lib
        return pd.DataFrame(type_probabilities(X, lib, noise_var), columns=lib.types)

    # ------------------------------------------------------------------ posterior summaries
    def summary(self, n: int = 2000, seed: int = 0) -> pd.DataFrame:
        """Posterior summary of the kept clusters' weights and covariances (one row per element)."""
        self._check_fitted()
        if self.method_ == "nuts":
            return diagnostics.summarize_draws(self._chain_draws(), chains=True)
        return diagnostics.summarize_draws(self.sample_posterior(n, seed))

    def _dims(self) -> dict[str, list[str]]:
        return {"weights": ["cluster"], "covariances": ["cluster", "trait", "trait_"]}

    def to_inference_data(self, n: int = 1000, seed: int = 0, psis: bool = False) -> Any:
        """ArviZ InferenceData with draws of the kept clusters' ``weights`` and ``covariances``.

        ``sample_stats`` holds the ELBO history (SVI: summed over the batched restarts) and
        the attributes carry per-restart ELBOs, restart agreement and the cluster categories;
        with ``psis`` (SVI fits) also the kept restart's k-hat (:meth:`psis_khat`).
        """
        self._check_fitted()
        chains = self.method_ == "nuts"
        post = self._chain_draws() if chains else self.sample_posterior(n, seed)
        coords = {"cluster": np.arange(self.n_components_), "trait": self.trait_names_,
                  "trait_": self.trait_names_}
        attrs = {"inference": self.method_, "model": self._label, "categories": list(self.categories_),
                 "scale": self.scale_}
        restart_elbos = getattr(self, "restart_elbos_", None)
        if restart_elbos is not None:
            attrs["restart_elbos"] = [float(x) for x in restart_elbos]
        restart_agreement = getattr(self, "restart_agreement_", None)
        if restart_agreement is not None:
            attrs["restart_agreement"] = [float(x) for x in restart_agreement]
        if psis and self.method_ == "svi":
            attrs["psis_khat"] = self.psis_khat(seed=seed)
        return diagnostics.to_inference_data(
            post, chains=chains, sample_stats=self._nuts_stats if chains else None,
            elbo=None if chains else self.elbo_, observed_data=self._fit_data.observed,
            dims=self._dims(), coords=coords, attrs=attrs,
        )

    def cluster_table(self) -> pd.DataFrame:
        """One row per kept cluster: ``cluster, weight, trace, category, cov_<a>_<b>`` (DESIGN §6)."""
        self._check_fitted()
        names = self.trait_names_
        rows = []
        for k in range(self.n_components_):
            row = {"cluster": k, "weight": self.weights_[k], "trace": float(np.trace(self.covariances_[k])),
                   "category": self.categories_[k]}
            for a in range(len(names)):
                for b in range(a, len(names)):
                    row[f"cov_{names[a]}_{names[b]}"] = self.covariances_[k, a, b]
            rows.append(row)
        return pd.DataFrame(rows)

    def variant_table(self, ids: Sequence[Any] | None = None, types: bool = True) -> pd.DataFrame:
        """One row per fitted variant (DESIGN §6).

        Columns: ``SNP, cluster, prob, category, p_pruned, pruned_label_change, type, type_prob``, then
        ``p_<type>`` for every association type. ``prob`` is the probability of the labelled cluster
        under the whole fitted mixture (pruned clusters included), so it is low for a variant that
        pruning moved; ``type`` is the most probable association type (``type_prob`` its probability).
        ``types=False`` leaves out the type columns (e.g. when all variants are typed separately).
        """
        self._check_fitted()
        n = self.labels_.size
        if ids is not None and len(ids) != n:
            raise InputError(f"ids has {len(ids)} entries for {n} variants")
        out = pd.DataFrame({
            "SNP": list(ids) if ids is not None else np.arange(n),
            "cluster": self.labels_,
            "prob": self.responsibilities_[np.arange(n), self.labels_] * (1.0 - self.pruned_probability_),
            "category": np.asarray(self.categories_, dtype=object)[self.labels_],
            "p_pruned": self.pruned_probability_,
            "pruned_label_change": self.pruned_label_change_,
        })
        if not types:
            return out
        P = self.type_probabilities_
        out["type"] = np.asarray(self.types_, dtype=object)[P.argmax(1)]
        out["type_prob"] = P.max(1)
        for j, name in enumerate(self.types_):
            out[f"p_{name}"] = P[:, j]
        return out

    def plot_clusters(self, **kwargs: Any) -> Any:
        """Scatter of the effects by cluster with 95% ellipses (see :func:`bayesmages.cluster.plot_clusters`)."""
        from bayesmages.cluster.plots import plot_clusters

        self._check_fitted()
        return plot_clusters(self._fit_data.observed["effects"], self.labels_, self.covariances_,
                             categories=self.categories_, trait_names=self.trait_names_, **kwargs)
