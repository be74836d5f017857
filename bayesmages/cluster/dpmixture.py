"""The registered model ``dp_mixture``: a stick-breaking mixture of zero-mean Gaussians.

A truncated Dirichlet-process mixture of zero-mean multivariate normals for clustering
multi-trait effects (METHODS §B):

gamma_i ~ sum_k pi_k N(0, Sigma_k [+ S_i]),  pi_k = v_k prod_{l<k} (1 - v_l),  v_k ~ Beta(1, alpha),

with assignments marginalised (logsumexp), so every latent is continuous (SVI, MAP, NUTS).
Restarts are a batch dimension of one SVI run; initialisation is a few closed-form CAVI sweeps of the conjugate model.
What a fitted mixture reports (tables, association types, summaries, plots) is in its base class
:class:`~bayesmages.cluster.dpoutput.DPMixtureOutput`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from bayesmages import infer
from bayesmages._threads import torch_threads
from bayesmages.cluster import kernels
from bayesmages.cluster.data import prepare_effects
from bayesmages.cluster.dpoutput import DPMixtureOutput
from bayesmages.cluster.guides import DPMixtureGuide
from bayesmages.cluster.initialise import cavi_start
from bayesmages.cluster.postprocess import (
    adjusted_rand_index,
    categorize_clusters,
    log_responsibilities,
    truncate_components,
)
from bayesmages.errors import InputError
from bayesmages.model import FitData
from bayesmages.priors import PriorSpec
from bayesmages.registry import register_model

__all__ = ["DPMixture"]

_F64 = torch.float64


def _t(x: Any) -> torch.Tensor:
    return torch.as_tensor(x, dtype=_F64)


@register_model("dp_mixture")
class DPMixture(DPMixtureOutput):
    """Stick-breaking DP mixture of zero-mean Gaussians for multi-trait effects.

    Data are divided by one scale ``s`` (the mean over traits of the root-mean-square effect)
    before fitting; priors refer to the scaled data and results are reported on the original
    scale. Reported covariances are posterior means of Sigma_k (the MAP for ``method="map"``).

    Priors (``priors={...}``; p = number of traits, K = truncation):

    | name          | shape     | support           | default                                               |
    |---------------|-----------|-------------------|-------------------------------------------------------|
    | concentration | ()        | positive          | fixed at ``concentration`` unless given a prior       |
    | precision     | (K, p, p) | positive definite | Wishart(df=p + 3, 1000 I) (``"wishart"`` only)        |
    | corr_cholesky | (K, p, p) | corr. Cholesky    | LKJCholesky(p, 1) (``"lkj"``, p >= 2)                 |
    | scales        | (K, p)    | positive          | HalfCauchy(1) per trait (``"lkj"`` only)              |

    A ``concentration`` prior such as ``dist.Gamma(1., 1.)`` makes alpha random.

    The default Wishart has inverse scale ``1e-3 I``: in the conjugate update it adds the
    scatter of ``p + 3`` pseudo-rows of variance about ``1e-3`` (scaled units) to each cluster,
    negligible even for a near-null cluster. The paper's choice, ``Wishart(5, I)`` on the scaled
    data, pulls small clusters' variances up noticeably (a near-null cluster of 700 variants at
    1/30 of the data scale had its variance doubled in our tests); pass it explicitly to
    reproduce the paper.

    Parameters
    ----------
    truncation : int
        K, the number of mixture components of the truncated process (>= 2).
    concentration : float
        The fixed stick-breaking concentration alpha (when no ``concentration`` prior is given).
    covariance_prior : {"wishart", "lkj"}
        Wishart on the precision (the paper's choice) or LKJ-Cholesky x per-trait scales.
    restarts : int
        Restarts fitted together as a batch dimension (restart 0 starts from axis-aligned
        trait-specific components); the best ELBO is kept.
    keep_mass : float
        Keep the heaviest clusters up to this cumulative weight (K*).
    trait_names : sequence of str, optional
        Names used in categories (default: DataFrame columns or ``trait1 .. traitp``).
    null_trace_fraction, null_variance, angle_tol, eig_ratio, shared_fraction : float
        Category thresholds (see :func:`bayesmages.cluster.categorize_clusters`).
    guide : callable, optional
        A custom guide factory ``guide(model) -> guide`` (e.g.
        ``pyro.infer.autoguide.AutoLowRankMultivariateNormal``) used by ``method="svi"``;
        restarts then run one after another.
    init_iterations : int
        CAVI sweeps used to initialise the guides (see :func:`bayesmages.cluster.kernels.cavi_fit`).
    adaptive_truncation : bool
        Speed: during SVI only the leading components that the CAVI start uses (expected count
        >= 1 in some restart) plus one spare enter the per-row likelihood. The later components
        carry no data, so their posterior is their prior; leaving them out of the row densities
        drops at most the stick mass beyond them (tiny once the data are assigned). ``False``
        evaluates all K components at every step (exact truncation-K model, slower).
    num_threads : int or None
        torch intra-op threads while fitting (restored afterwards). The per-step tensors are
        small (rows x restarts x components), where extra threads mostly add synchronisation;
        on a busy 2-core machine one thread was 4x faster than two. ``None`` keeps torch's setting.
    priors : mapping, optional
        Prior overrides (table above).
    type_min_signal : float
        Association types (:meth:`association_types`): a trait is active in a cluster when its
        variance is at least this multiple of the null level of the trait (default 16, see
        docs/cluster.md; in ``bench/multitrait.py``-type simulations 1, 4 and 16 gave average
        precisions within 0.05 of each other).
    type_scales : sequence of float
        Each type-structured component is also used scaled by these factors (a grid, as mash does).
    type_canonical : bool
        Also give every type canonical components (independent effects on its traits at a grid of
        scales, :func:`bayesmages.cluster.typelib.canonical_grid`), so that a type too rare to form a
        cluster of its own can still be recognised (docs/cluster.md).

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(size=(300, 2)) * [1.0, 0.05], 0.02 * rng.normal(size=(700, 2))])
    >>> m = bm.get_model("dp_mixture", truncation=10).fit(X, seed=0)  # doctest: +SKIP
    >>> m.categories_  # doctest: +SKIP
    ['specific:trait1', 'non-prioritised']
    """

    supported_methods: ClassVar[tuple[str, ...]] = ("svi", "map", "nuts")
    svi_defaults: ClassVar[dict[str, Any]] = {
        "num_steps": 300, "lr": 0.01, "min_steps": 20, "window": 10, "rel_tol": 1e-4, "final_lr_ratio": 0.1,
    }
    #: SVI subsamples this many rows per step when the data have more than twice as many
    batch_rows: ClassVar[int] = 2048
    # Set by fit() (None after NUTS or a custom guide).
    restart_elbos_: np.ndarray | None
    restart_agreement_: np.ndarray | None
    #: the CAVI initialisation runs on at most this many rows (a seeded random subset)
    init_rows: ClassVar[int] = 2000

    def __init__(
        self,
        truncation: int = 20,
        concentration: float = 0.5,
        covariance_prior: str = "wishart",
        restarts: int = 5,
        keep_mass: float = 0.99,
        trait_names: Sequence[str] | None = None,
        null_trace_fraction: float = 0.05,
        null_variance: float | None = None,
        angle_tol: float = 15.0,
        eig_ratio: float = 2.0,
        shared_fraction: float = 0.1,
        guide: Callable[[Any], Any] | None = None,
        init_iterations: int = 100,
        adaptive_truncation: bool = True,
        num_threads: int | None = 1,
        priors: Mapping[str, Any] | None = None,
        type_min_signal: float = 16.0,
        type_scales: Sequence[float] = (0.25, 1.0, 4.0),
        type_null_scales: Sequence[float] = (0.0, 3.0, 15.0),
        type_canonical: bool = True,
    ) -> None:
        self.truncation = truncation
        self.concentration = concentration
        self.covariance_prior = covariance_prior
        self.restarts = restarts
        self.keep_mass = keep_mass
        self.trait_names = trait_names
        self.null_trace_fraction = null_trace_fraction
        self.null_variance = null_variance
        self.angle_tol = angle_tol
        self.eig_ratio = eig_ratio
        self.shared_fraction = shared_fraction
        self.guide = guide
        self.init_iterations = init_iterations
        self.adaptive_truncation = adaptive_truncation
        self.num_threads = num_threads
        self.type_min_signal = type_min_signal
        self.type_scales = tuple(type_scales)
        self.type_null_scales = tuple(type_null_scales)
        self.type_canonical = type_canonical
        self._check_settings()
        super().__init__(priors)

    def _check_settings(self) -> None:
        lab = self._label
        if isinstance(self.truncation, bool) or not isinstance(self.truncation, int) or self.truncation < 2:
            raise InputError(f"{lab}: truncation must be an integer >= 2, got {self.truncation!r}")
        if not (isinstance(self.concentration, int | float) and self.concentration > 0):
            raise InputError(f"{lab}: concentration must be a positive number, got {self.concentration!r}")
        if self.covariance_prior not in ("wishart", "lkj"):
            raise InputError(f"{lab}: covariance_prior must be 'wishart' or 'lkj', got {self.covariance_prior!r}")
        if isinstance(self.restarts, bool) or not isinstance(self.restarts, int) or self.restarts < 1:
            raise InputError(f"{lab}: restarts must be a positive integer, got {self.restarts!r}")
        if not (isinstance(self.keep_mass, int | float) and 0 < self.keep_mass <= 1):
            raise InputError(f"{lab}: keep_mass must be in (0, 1], got {self.keep_mass!r}")
        if self.guide is not None and not callable(self.guide):
            raise InputError(f"{lab}: guide must be a callable guide(model) -> guide")
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            raise InputError(f"{lab}: num_threads must be a positive integer or None, got {self.num_threads!r}")
        if not (isinstance(self.type_min_signal, int | float) and self.type_min_signal > 0):
            raise InputError(f"{lab}: type_min_signal must be a positive number, got {self.type_min_signal!r}")
        if not isinstance(self.type_canonical, bool):
            raise InputError(f"{lab}: type_canonical must be True or False, got {self.type_canonical!r}")
        if not self.type_scales or not all(isinstance(c, int | float) and c > 0 for c in self.type_scales):
            raise InputError(f"{lab}: type_scales must be positive numbers, got {self.type_scales!r}")
        if not isinstance(self.init_iterations, int) or self.init_iterations < 0:
            raise InputError(f"{lab}: init_iterations must be a non-negative integer")

    # ------------------------------------------------------------------ priors
    def _p(self, dims: Mapping[str, int] | None) -> int:
        if dims is not None:
            return int(dims["n_traits"])
        return len(self.trait_names) if self.trait_names is not None else 2

    def prior_specs(self, dims: Mapping[str, int] | None) -> dict[str, PriorSpec]:
        """Priors: ``concentration``, and ``precision`` or ``corr_cholesky``/``scales``.

        Before the data is known, defaults are shown for p = 2 (or ``len(trait_names)``).
        """
        p = self._p(dims)
        K = self.truncation
        known = dims is not None
        alpha = float(self.concentration)
        specs = {
            # nonnegative (not positive) so that Gamma priors, whose torch support is [0, inf), pass.
            "concentration": PriorSpec(lambda: dist.Delta(_t(alpha)), constraints.nonnegative, shape=(),
                                       doc="stick-breaking concentration alpha (fixed unless a prior is given)"),
        }
        if self.covariance_prior == "wishart":
            specs["precision"] = PriorSpec(
                lambda: dist.Wishart(_t(p + 3.0), covariance_matrix=1e3 * torch.eye(p, dtype=_F64)),
                constraints.positive_definite, shape=(K, p, p) if known else None,
                doc="component precision matrices (inverse covariances), on the scaled data")
        else:
            specs["scales"] = PriorSpec(lambda: dist.HalfCauchy(_t(1.0)), constraints.nonnegative,
                                        shape=(K, p) if known else None, doc="per-trait component sds (scaled data)")
            if p > 1:
                specs["corr_cholesky"] = PriorSpec(
                    lambda: dist.LKJCholesky(p, _t(1.0)), constraints.corr_cholesky,
                    shape=(K, p, p) if known else None, doc="Cholesky factors of the component correlations")
        return specs

    def _random_alpha(self) -> bool:
        return not isinstance(self._resolved["concentration"], dist.Delta)

    # ------------------------------------------------------------------ data
    def _prepare(self, data: Any) -> FitData:
        X, sd, names = prepare_effects(data, self.trait_names, self._label)
        self.trait_names_ = names
        self.n_traits_ = X.shape[1]
        self.scale_ = float(np.sqrt((X**2).mean(0)).mean())
        Xs = _t(X / self.scale_)
        XX, weight = kernels.outer_products(Xs)
        noise_var = None if sd is None else _t((sd / self.scale_) ** 2)
        observed = {"effects": X} if sd is None else {"effects": X, "sd": sd}
        return FitData(
            args=(XX, weight),
            kwargs={"X": Xs, "noise_var": noise_var},
            dims={"n_traits": X.shape[1], "truncation": self.truncation},
            observed=observed,
            num_data=X.shape[0],
        )

    # ------------------------------------------------------------------ model
    def _scales_prior(self) -> dist.TorchDistribution:
        prior = self._resolved["scales"]
        if len(prior.batch_shape) == 0:
            prior = prior.expand([self.n_traits_])
        return prior.to_event(1)

    def _precision(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if "precision" in values:
            return values["precision"]
        scales = values["scales"]
        L = scales.unsqueeze(-1) * values["corr_cholesky"] if "corr_cholesky" in values else scales.unsqueeze(-1)
        return torch.cholesky_inverse(L)

    def model(self, XX: torch.Tensor, weight: torch.Tensor, X: torch.Tensor | None = None,
              noise_var: torch.Tensor | None = None, subsample_size: int | None = None) -> None:
        """Pyro model (restarts as a plate at dim -2, components at dim -1; rows may be subsampled)."""
        priors = self._resolved
        R, K = self._n_batch, self.truncation
        values: dict[str, torch.Tensor] = {}
        with pyro.plate("restarts", R, dim=-2):
            if self._random_alpha():
                with pyro.plate("one", 1, dim=-1):
                    alpha = pyro.sample("concentration", priors["concentration"])
            else:
                alpha = priors["concentration"].v
            with pyro.plate("sticks", K - 1, dim=-1):
                v = pyro.sample("v", dist.Beta(torch.ones_like(alpha), alpha))
            with pyro.plate("components", K, dim=-1):
                if self.covariance_prior == "wishart":
                    values["precision"] = pyro.sample("precision", priors["precision"])
                else:
                    values["scales"] = pyro.sample("scales", self._scales_prior())
                    if self.n_traits_ > 1:
                        values["corr_cholesky"] = pyro.sample("corr_cholesky", priors["corr_cholesky"])
        log_w, precision = self._fitted_components(v, values)
        with pyro.plate("data", XX.shape[0], subsample_size=subsample_size, dim=-1) as idx:
            if subsample_size is not None:  # the plate scales the factor by N / batch
                XX = XX[idx]
                X = None if X is None else X[idx]
                noise_var = None if noise_var is None else noise_var[idx]
            loglik = kernels.mixture_log_density(log_w, XX, weight, precision, X=X, noise_var=noise_var)
            pyro.factor("loglik", loglik.reshape(XX.shape[0], -1).sum(-1))

    def _fitted_components(
        self, v: torch.Tensor, values: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log weights and precisions of the components that enter the likelihood.

        With adaptive truncation only the leading ``_k_fit`` components (all that the CAVI start
        uses, plus one) enter; the later ones carry no data, so their posterior is their prior
        and their mixture mass (at most the stick left after ``_k_fit``) is left out of the
        per-row densities.
        """
        k = self._k_fit
        log_w = kernels.log_stick_weights(v)[..., :k]
        sliced = {name: value[..., :k, :] if name == "scales" else value[..., :k, :, :]
                  for name, value in values.items() if name in ("precision", "scales", "corr_cholesky")}
        return log_w, self._precision(sliced)

    def _log_joint(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Log p(data, values) per restart, for values with leading shape (..., R)."""
        fd = self._fit_data
        priors = self._resolved
        lp = 0.0
        if self._random_alpha():
            alpha = values["concentration"]
            lp = lp + priors["concentration"].log_prob(alpha).sum(-1)
        else:
            alpha = priors["concentration"].v
        lp = lp + dist.Beta(torch.ones_like(alpha), alpha).log_prob(values["v"]).sum(-1)
        if self.covariance_prior == "wishart":
            lp = lp + priors["precision"].log_prob(values["precision"]).sum(-1)
        else:
            lp = lp + self._scales_prior().log_prob(values["scales"]).sum(-1)
            if "corr_cholesky" in values:
                lp = lp + priors["corr_cholesky"].log_prob(values["corr_cholesky"]).sum(-1)
        log_w, precision = self._fitted_components(values["v"], values)
        XX, weight = fd.args
        loglik = kernels.mixture_log_density(log_w, XX, weight, precision, **fd.kwargs)
        return lp + loglik.sum(0)

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Any, method: str = "svi", seed: int = 0, progress: bool = False,
            **infer_kwargs: Any) -> DPMixture:
        """Fit the mixture (see :meth:`bayesmages.model.BayesianModel.fit`).

        Parameters
        ----------
        data : array, DataFrame or mapping
            (N, p) effects, or ``{"effects": X, "sd": S}`` for the per-variant noise model.
        method : {"svi", "map", "nuts"}
            Mean-field SVI (default), MAP, or NUTS (small data; one chain set, no restarts).
        seed : int
            Seed.
        progress : bool
            Progress bar on a terminal.
        **infer_kwargs
            ``restarts`` overrides the constructor's; the rest goes to
            :func:`bayesmages.infer.run_svi` or :func:`bayesmages.infer.run_nuts`.

        Returns
        -------
        self
        """
        self._check_settings()
        restarts = infer_kwargs.pop("restarts", self.restarts)
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
            raise InputError(f"{self._label}: restarts must be a positive integer, got {restarts!r}")
        self._custom_guide = method == "svi" and self.guide is not None
        self._n_batch = 1 if (method == "nuts" or self._custom_guide) else restarts
        self._k_fit = self.truncation  # lowered by the CAVI start when adaptive_truncation
        if self._custom_guide:
            infer_kwargs["restarts"] = restarts
        if method != "nuts" and "batch_size" not in infer_kwargs:
            shape = np.shape(data.get("effects", ()) if isinstance(data, Mapping) else data)
            n_rows = int(shape[0]) if shape else 0  # bad data is reported by _prepare
            if n_rows > 2 * self.batch_rows:
                infer_kwargs["batch_size"] = self.batch_rows
        if method == "nuts":
            infer_kwargs.setdefault("num_samples", 300)
            infer_kwargs.setdefault("warmup_steps", 300)
        kernels.register_positive_definite()  # NUTS's Wishart precisions need the bijection
        # The built-in guides draw inside the priors' supports by construction and the priors were
        # validated before fitting, so torch's per-draw support checks (symmetry tests of every
        # precision matrix, ~5-10% of a step) only cost time. User guides and NUTS keep them.
        validate = method == "nuts" or self._custom_guide
        with torch_threads(self.num_threads), pyro.validation_enabled(validate):
            return super().fit(data, method=method, seed=seed, progress=progress, **infer_kwargs)

    def _make_guide(self, method: str, restart: int) -> Any:
        if method == "svi" and self.guide is not None:
            return self.guide(self.model)
        return DPMixtureGuide(
            "map" if method == "map" else "meanfield",
            restarts=self._n_batch,
            truncation=self.truncation,
            n_traits=self.n_traits_,
            covariance_prior=self.covariance_prior,
            random_concentration=self._random_alpha(),
            init_fn=self._initial_values,
        )

    def _initial_values(self) -> dict[str, torch.Tensor]:
        """Unconstrained starting values of all restarts from CAVI (uses the torch RNG)."""
        XX, weight = self._fit_data.args
        X = self._fit_data.kwargs["X"]
        N = X.shape[0]
        if N > self.init_rows:
            rows = torch.randperm(N)[: self.init_rows]
            X, XX = X[rows], XX[rows]
        p = self.n_traits_
        prior = self._resolved.get("precision")
        if isinstance(prior, dist.Wishart) and len(prior.batch_shape) == 0:
            df, scale_inv = float(prior.df), torch.linalg.inv(prior.covariance_matrix)
        else:
            # No conjugate prior (LKJ, or per-component Wisharts): a weak Wishart for the start only.
            df, scale_inv = p + 2.0, 1e-3 * torch.eye(p, dtype=_F64)
        alpha = self._resolved["concentration"].mean if self._random_alpha() else self._resolved["concentration"].v
        out, occupied = cavi_start(X, XX, weight, restarts=self._n_batch, truncation=self.truncation,
                                   prior_df=df, prior_scale_inv=scale_inv, alpha=float(alpha), n_rows=N,
                                   n_iter=self.init_iterations)
        if self.adaptive_truncation:
            self._k_fit = min(self.truncation, occupied + 1)
        return out

    # ------------------------------------------------------------------ after fitting
    def _raw_draws(self, n: int, seed: int) -> dict[str, torch.Tensor]:
        """Draws of the latent sites of the kept restart, shaped (n, ...)."""
        if self.method_ == "nuts":
            rng = np.random.default_rng(seed)
            pooled = {k: v.reshape(-1, *v.shape[3:]) for k, v in self._fitted_nuts_samples().items()}
            total = next(iter(pooled.values())).shape[0]
            idx = rng.choice(total, size=n, replace=n > total)
            return {k: _t(v[idx]) for k, v in pooled.items()}
        if self._custom_guide:
            return {k: _t(v).reshape(n, *v.shape[2:]) for k, v in self._guide_draws(n, seed).items()}
        svi = self._fitted_svi()
        with infer.seeded(seed), infer.param_scope(svi.param_state), torch.no_grad():
            values, _ = svi.guide.sample(n)
        return {k: v[:, self.best_restart_] for k, v in values.items()}

    def _derived(self, raw: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Full-K weights and covariances (original scale) from raw site values (any leading shape)."""
        w = kernels.log_stick_weights(raw["v"]).exp()
        cov = torch.cholesky_inverse(torch.linalg.cholesky(self._precision(raw))) * self.scale_**2
        out = {"weights": w.numpy(), "covariances": cov.numpy()}
        if "concentration" in raw:
            out["concentration"] = raw["concentration"][..., 0].numpy()
        return out

    def _kept(self, derived: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        idx = self.component_index_
        w = derived["weights"][..., idx]
        out = {"weights": w / w.sum(-1, keepdims=True), "covariances": derived["covariances"][..., idx, :, :]}
        if "concentration" in derived:
            out["concentration"] = derived["concentration"]
        return out

    def _after_fit(self) -> None:
        fd = self._fit_data
        if self.method_ == "nuts" or self._custom_guide:
            self.best_restart_ = 0
            self.restart_elbos_ = None if self.method_ == "nuts" else -np.asarray(self._fitted_svi().restart_losses)
            self.restart_agreement_ = None
        else:
            self._select_restart()
        with torch.no_grad():
            full = self._derived(self._raw_draws(1 if self.method_ == "map" else 1000, self.seed_))
        weights = full["weights"].mean(0)
        covs = full["covariances"].mean(0)
        idx, kept_w = truncate_components(weights, covs, self.keep_mass)
        self.component_index_ = idx
        self.n_components_ = int(idx.size)
        self.weights_ = kept_w
        self.covariances_ = covs[idx]
        self.all_weights_ = weights / weights.sum()
        self.all_covariances_ = covs
        X = fd.observed["effects"]
        sd = fd.observed.get("sd")
        noise = None if sd is None else sd**2
        logr = log_responsibilities(X, kept_w, self.covariances_, noise)
        self.responsibilities_ = np.exp(logr)
        self.labels_ = logr.argmax(1)
        self._pruning_report(X, noise)
        self.categories_ = categorize_clusters(
            self.covariances_, self.trait_names_, null_trace_fraction=self.null_trace_fraction,
            null_variance=self.null_variance, angle_tol=self.angle_tol, eig_ratio=self.eig_ratio,
            shared_fraction=self.shared_fraction,
        )
        self._types_cache: np.ndarray | None = None

    def _select_restart(self, particles: int = 4) -> None:
        """Per-restart ELBO (MAP: log joint) and agreement of labels with the best restart.

        Four particles estimate each restart's ELBO to a few nats (its spread is about the square
        root of half the number of latent dimensions per particle); restarts closer than that
        are equivalent fits, which the reported agreement shows.
        """
        fd = self._fit_data
        svi = self._fitted_svi()
        guide = svi.guide
        R = self._n_batch
        with infer.seeded(self.seed_), infer.param_scope(svi.param_state), torch.no_grad():
            if self.method_ == "map":
                elbo = self._log_joint(guide.point())
            else:
                elbo = self._restart_log_weights(particles).mean(0)
            point = guide.point()
            log_w = kernels.log_stick_weights(point["v"])
            XX, weight = fd.args
            comp = kernels.component_log_density(XX, weight, self._precision(point), **fd.kwargs)
            labels = (log_w + comp).argmax(-1).numpy()  # (N, R)
        self.restart_elbos_ = elbo.numpy()
        self.best_restart_ = int(np.argmax(self.restart_elbos_))
        self.restart_agreement_ = np.array(
            [adjusted_rand_index(labels[:, self.best_restart_], labels[:, r]) for r in range(R)]
        )

    def _restart_log_weights(self, particles: int) -> torch.Tensor:
        """(particles, R) importance log-weights ``log p(x, z) - log q(z)``, ``z ~ q``, per restart.

        Call inside the fit's parameter scope; draws are evaluated in chunks that keep the
        (particles x N x R x K) log-densities to about 2e7 numbers.
        """
        fd = self._fit_data
        guide = self._fitted_svi().guide
        N, R, K = fd.num_data, self._n_batch, self.truncation
        chunk = max(1, min(particles, int(2e7 // max(1, N * R * K))))
        out = []
        done = 0
        while done < particles:
            m = min(chunk, particles - done)
            values, log_q = guide.sample(m)
            out.append(self._log_joint(values) - log_q)
            done += m
        return torch.cat(out, 0)

    def psis_khat(self, num_particles: int = 500, seed: int = 0) -> float:
        """PSIS k-hat of the kept restart's mean-field guide (> 0.7: do not trust posterior expectations).

        The restarts are one batched guide; k-hat is computed from the importance weights of the
        kept restart alone (the batch's joint weights would mix all restarts).
        """
        self._check_fitted()
        if self.method_ != "svi":
            raise InputError(f"psis_khat applies to mean-field SVI fits, not {self.method_!r}")
        if self._custom_guide:
            return super().psis_khat(num_particles=num_particles, seed=seed)
        with infer.seeded(seed), infer.param_scope(self._fitted_svi().param_state), torch.no_grad():
            lw = self._restart_log_weights(num_particles)[:, self.best_restart_]
        return infer.khat_from_log_weights(lw)

    # ------------------------------------------------------------------ posterior API
    def sample_posterior(self, n: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior draws of the kept clusters' ``weights`` (n, K*) and ``covariances`` (n, K*, p, p).

        Clusters are in the order of :attr:`weights_`; weights are renormalised over the kept
        clusters per draw; covariances are on the original data scale. A random concentration
        adds ``concentration`` (n,). MAP fits repeat the point.
        """
        self._check_fitted()
        if not isinstance(n, int) or n < 1:
            raise InputError(f"n must be a positive integer, got {n!r}")
        with torch.no_grad():
            return self._kept(self._derived(self._raw_draws(n, seed)))

    def _chain_draws(self) -> dict[str, np.ndarray]:
        raw = {k: _t(v[:, :, 0]) for k, v in self._fitted_nuts_samples().items()}
        with torch.no_grad():
            return self._kept(self._derived(raw))
