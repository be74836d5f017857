"""The registered model ``neural_shrinker``: point, Bayesian and ensemble unrolled shrinkers.

The network itself lives in :mod:`bayesmages.shrink.net`; training loops in
:mod:`bayesmages.shrink.train` and :mod:`bayesmages.shrink.ensemble`. This module wraps them in
the :class:`~bayesmages.model.BayesianModel` contract (``get_model``, ``fit``, ``save``,
``load_model``) and turns network outputs into calibrated predictions on the per-allele scale.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch
from pyro.infer.autoguide import AutoNormal, init_to_value
from torch.distributions import constraints

from bayesmages import infer
from bayesmages.errors import InputError, NotFittedError
from bayesmages.model import BayesianModel
from bayesmages.priors import PriorSpec
from bayesmages.registry import register_model
from bayesmages.shrink.ensemble import ensemble_predictor, train_ensemble
from bayesmages.shrink.fast import numpy_predictor
from bayesmages.shrink.features import BlockFeatures, block_features, validate_block
from bayesmages.shrink.net import UnrolledShrinker, make_bayesian, resolve_architecture
from bayesmages.shrink.train import (
    SimBlock,
    TrainConfig,
    calibrate_sd,
    evaluate,
    one_thread,
    point_predictor,
    train_point,
)

__all__ = ["INTERVAL_KAPPA", "Z90", "NeuralShrinker"]

#: standard-normal quantile of a central 90% interval
Z90 = 1.6448536269514722
#: factor on the neighbours' variances in the table's interval (:meth:`NeuralShrinker.predict_interval`),
#: chosen on held-out msprime calibration simulations (bench/shrink_calibration.py)
INTERVAL_KAPPA = 1.0
MODES = ("point", "bayesian", "ensemble")


@register_model("neural_shrinker")
class NeuralShrinker(BayesianModel):
    """Iterative (unrolled) neural shrinker of GWAS effects for LD-induced inflation.

    Priors (``mode="bayesian"`` only; scalars expanded to every weight/bias):

    | name   | shape | support | default      |
    |--------|-------|---------|--------------|
    | weight | any   | real    | Normal(0, 1) |
    | bias   | any   | real    | Normal(0, 1) |

    Parameters
    ----------
    mode : {"point", "bayesian", "ensemble"}
        Point network (MAP), Bayesian network (priors on weights, mean-field SVI initialised at
        the point fit), or an ensemble of ``n_members`` point networks.
    architecture : {"2L", "linear", "3L"}
        Reference MLP family; ``widths``/``dropout`` override it.
    widths : sequence of int, optional
        Hidden widths.
    dropout : float or sequence of float, optional
        Dropout per hidden layer.
    norm : {"none", "layer", "batch"}
        Normalisation after hidden layers.
    n_neighbours : int
        T, the neighbours (by |r|) whose residuals and estimates are features.
    n_iter : int
        Unrolled iterations.
    lead_threshold : float
        |r| above which two variants are not updated in the same iteration.
    n_members : int
        Ensemble size (``mode="ensemble"``).
    n_draws : int
        Weight draws for Bayesian predictions.
    priors : mapping, optional
        ``{"weight": dist, "bias": dist}`` for ``mode="bayesian"``.

    Examples
    --------
    >>> import bayesmages as bm
    >>> model = bm.get_model("neural_shrinker", mode="point", widths=(16,), n_iter=3)
    >>> model.fit(training_blocks, seed=0)  # doctest: +SKIP
    >>> mean, sd = model.predict(beta_hat, se, R)  # doctest: +SKIP
    """

    supported_methods: ClassVar[tuple[str, ...]] = ("map", "svi")

    def __init__(
        self,
        mode: str = "point",
        architecture: str = "2L",
        widths: Sequence[int] | None = (64, 32),
        dropout: float | Sequence[float] | None = 0.0,
        norm: str = "none",
        n_neighbours: int = 8,
        n_iter: int = 10,
        lead_threshold: float = 0.2,
        n_members: int = 5,
        n_draws: int = 20,
        priors: Mapping[str, Any] | None = None,
    ) -> None:
        self.mode = mode
        self.architecture = architecture
        self.widths = widths
        self.dropout = dropout
        self.norm = norm
        self.n_neighbours = n_neighbours
        self.n_iter = n_iter
        self.lead_threshold = lead_threshold
        self.n_members = n_members
        self.n_draws = n_draws
        super().__init__(priors)
        self._check_settings()

    def _check_settings(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"neural_shrinker: mode must be one of {list(MODES)}, got {self.mode!r}")
        resolve_architecture(self.architecture, self.widths, self.dropout)
        for key in ("n_neighbours", "n_iter", "n_members", "n_draws"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"neural_shrinker: {key} must be a positive integer, got {v!r}")
        if not 0.0 < float(self.lead_threshold) <= 1.0:
            raise InputError(f"neural_shrinker: lead_threshold must be in (0, 1], got {self.lead_threshold!r}")

    # ----------------------------------------------------------------- contract
    def prior_specs(self, dims: Mapping[str, int] | None) -> dict[str, PriorSpec]:
        """Weight and bias priors of the Bayesian mode (see the class docstring)."""
        f64 = torch.float64
        return {
            "weight": PriorSpec(lambda: dist.Normal(torch.tensor(0.0, dtype=f64), torch.tensor(1.0, dtype=f64)),
                                constraints.real, shape=None, doc="prior of every linear-layer weight"),
            "bias": PriorSpec(lambda: dist.Normal(torch.tensor(0.0, dtype=f64), torch.tensor(1.0, dtype=f64)),
                              constraints.real, shape=None, doc="prior of every linear-layer bias"),
        }

    def make_net(self) -> UnrolledShrinker:
        """A fresh (untrained) network with this model's settings."""
        widths, drops = resolve_architecture(self.architecture, self.widths, self.dropout)
        return UnrolledShrinker(self.n_neighbours, self.n_iter, widths, drops, self.norm)

    def fit(
        self,
        data: Any,
        method: str | None = None,
        seed: int = 0,
        progress: bool = False,
        config: TrainConfig | None = None,
        **train_kwargs: Any,
    ) -> NeuralShrinker:
        """Train on simulated blocks.

        Parameters
        ----------
        data : tuple of (list of SimBlock, list of SimBlock)
            ``(train, validation)`` blocks, e.g. from
            :func:`bayesmages.shrink.train.simulate_training_data` (their ``n_neighbours`` must
            match the model's).
        method : str, optional
            ``"map"`` or ``"svi"``; by default ``"svi"`` for ``mode="bayesian"``, else ``"map"`` (plain training).
        seed : int
            Seed (initialisation, minibatch order, ensemble subsets, SVI).
        progress : bool
            Progress bars.
        config : TrainConfig, optional
            Optimisation settings (epochs, lr, batch size, patience, ...); keyword arguments
            override single fields.

        Returns
        -------
        self
        """
        cfg = copy.deepcopy(config) if config is not None else TrainConfig()
        for k, v in train_kwargs.items():
            if not hasattr(cfg, k):
                raise InputError(f"neural_shrinker.fit: unknown training option {k!r}")
            setattr(cfg, k, v)
        cfg.n_members = self.n_members
        method = method or ("svi" if self.mode == "bayesian" else "map")
        if method not in self.supported_methods or (method == "svi") != (self.mode == "bayesian"):
            raise InputError(f"neural_shrinker: method {method!r} does not fit mode {self.mode!r} "
                             "(bayesian uses 'svi', point and ensemble use 'map')")
        train, val = self._check_data(data)
        infer._check_seed(seed)
        self._resolved = self.priors
        self._predictor_cache = None
        with infer.param_scope():
            if self.mode == "ensemble":
                members, hist = train_ensemble(self.make_net, train, val, cfg, seed, progress)
            else:
                with infer.seeded(seed):
                    net = self.make_net()
                members, hist = [net], [train_point(net, train, val, cfg, seed, progress)]
        self.members_ = members
        self.history_ = hist
        self.method_ = method
        self.seed_ = seed
        self.elbo_ = None
        if self.mode == "bayesian":
            self._fit_bayesian(train, cfg, seed, progress)
        self.sd_scale_ = 1.0
        self.sd_scale_ = calibrate_sd(self._predict_z, val)
        self.validation_ = evaluate(self._predict_z, val)
        self.validation_["coverage90"] = self._coverage(val)
        return self

    def _check_data(self, data: Any) -> tuple[list[SimBlock], list[SimBlock]]:
        if not (isinstance(data, tuple | list) and len(data) == 2):
            raise InputError("neural_shrinker.fit: data must be (train_blocks, validation_blocks)")
        train, val = list(data[0]), list(data[1])
        for label, blocks in (("training", train), ("validation", val)):
            if not blocks or not all(isinstance(b, SimBlock) for b in blocks):
                raise InputError(f"neural_shrinker.fit: {label} blocks must be a non-empty list of SimBlock")
            if any(b.bf.idx.shape[1] != self.n_neighbours for b in blocks):
                raise InputError(f"neural_shrinker.fit: {label} blocks were built with another n_neighbours "
                                 f"than the model's {self.n_neighbours}")
        return train, val

    # ----------------------------------------------------------------- Bayesian mode
    def _bayes_model(self, train: list[SimBlock]) -> None:
        # One random block per step; its likelihood is scaled by the number of blocks, an
        # unbiased estimate of the full-data log-likelihood (subsampling without a plate,
        # because the weights' PyroSample sites must stay outside any plate).
        k = int(torch.randint(len(train), ()))
        blk = train[k]
        estimates, sd = self._bnet(blk.z, blk.bf)
        with pyro.poutine.scale(scale=float(len(train))):
            pyro.sample("zeta", dist.Normal(estimates[-1], sd).to_event(2), obs=blk.zeta)

    def _bayes_net(self) -> UnrolledShrinker:
        bnet = copy.deepcopy(self.members_[0])
        w, b = self._resolved["weight"], self._resolved["bias"]
        make_bayesian(bnet, dist.Normal(w.loc.float(), w.scale.float()) if isinstance(w, dist.Normal) else w,
                      dist.Normal(b.loc.float(), b.scale.float()) if isinstance(b, dist.Normal) else b)
        bnet.eval()
        return bnet

    def _bayes_guide(self, train: list[SimBlock]) -> AutoNormal:
        init = {k: v.detach().clone() for k, v in self.members_[0].state_dict().items()}
        return AutoNormal(lambda: self._bayes_model(train), init_loc_fn=init_to_value(values=init), init_scale=1e-3)

    def _fit_bayesian(self, train: list[SimBlock], cfg: TrainConfig, seed: int, progress: bool) -> None:
        self._bnet = self._bayes_net()
        with one_thread():
            res = infer.run_svi(
                lambda: self._bayes_model(train),
                lambda r: self._bayes_guide(train),
                num_steps=cfg.svi_steps, lr=cfg.lr, min_steps=min(200, cfg.svi_steps), window=50,
                seed=seed, progress=progress, desc="neural_shrinker (svi)",
            )
        self._svi_param_state = res.param_state
        self.elbo_ = res.elbo
        self._weight_draws = self._draw_weights(self.n_draws, seed, train[:1])

    def _draw_weights(self, n: int, seed: int, train: list[SimBlock]) -> list[dict[str, torch.Tensor]]:
        guide = self._bayes_guide(train)
        draws = []
        with infer.param_scope(self._svi_param_state), infer.seeded(seed), torch.no_grad():
            for _ in range(n):
                values = guide()
                draws.append({k: v.detach().clone() for k, v in values.items()})
        return draws

    # ----------------------------------------------------------------- prediction
    def __getstate__(self) -> dict[str, Any]:
        # The predictor cache holds closures, which cannot be pickled; it is rebuilt on first use. Dropping it
        # lets a model that has already predicted be sent to worker processes (shrink(..., workers=N)).
        state = self.__dict__.copy()
        state["_predictor_cache"] = None
        return state

    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise NotFittedError("neural_shrinker is not fitted yet; call fit(...) or use the pretrained default")

    def _raw_predictor(self) -> Any:
        if self.mode == "bayesian":
            nets = []
            base = self.members_[0].state_dict()
            for draw in self._weight_draws:
                net = self.make_net()
                net.load_state_dict({**base, **draw})
                net.eval()
                nets.append(net)
            return ensemble_predictor(nets)
        if self.mode == "ensemble":
            return ensemble_predictor(self.members_)
        # Point mode: the numpy float32 copy of the network (same outputs up to round-off, about 3x
        # faster on CPU); the torch path for networks it does not cover (normalisation layers).
        return numpy_predictor(self.members_[0]) or point_predictor(self.members_[0])

    @torch.no_grad()
    def _predict_z(self, z: torch.Tensor, bf: BlockFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated (mean, sd) on the z scale for a (B, m) batch of one block."""
        predictor = getattr(self, "_predictor_cache", None)
        if predictor is None:
            predictor = self._predictor_cache = self._raw_predictor()
        with one_thread():
            mean, sd = predictor(z, bf)
        return mean, sd * self.sd_scale_

    def _coverage(self, blocks: list[SimBlock]) -> float:
        hits = total = 0
        for blk in blocks:
            mean, sd = self._predict_z(blk.z, blk.bf)
            hits += int(((blk.zeta - mean).abs() <= Z90 * sd).sum())
            total += blk.zeta.numel()
        return hits / total

    def block_features(self, R: np.ndarray) -> BlockFeatures:
        """Static features of an LD block for this model (reuse them across traits)."""
        return block_features(np.asarray(R, dtype=np.float64), self.n_neighbours, self.lead_threshold)

    def predict(
        self, beta_hat: Any, se: Any, R: Any, *, features: BlockFeatures | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Shrunk effects and their sd for one block (per-allele scale, float64).

        Parameters
        ----------
        beta_hat, se : array-like
            (m,) observed effects and standard errors, or (p, m) for p traits sharing R.
        R : array-like
            (m, m) LD correlation matrix.
        features : BlockFeatures, optional
            Precomputed :meth:`block_features` of ``R`` (skips validation of R).

        Returns
        -------
        mean, sd : numpy.ndarray
            Same shape as ``beta_hat``.
        """
        self._check_fitted()
        b = np.asarray(beta_hat, dtype=np.float64)
        s = np.asarray(se, dtype=np.float64)
        two_d = b.ndim == 2
        b2, s2 = np.atleast_2d(b), np.atleast_2d(s)
        if features is None:
            for t in range(b2.shape[0]):
                validate_block(b2[t], s2[t], R, name="block" if not two_d else f"block (trait {t + 1})")
            features = self.block_features(R)
        elif b2.shape[1] != features.m:
            raise InputError(f"block: {b2.shape[1]} variants but the LD features are for {features.m}")
        z = torch.as_tensor(b2 / s2, dtype=torch.float32)
        mean, sd = self._predict_z(z, features)
        mean_b = mean.double().numpy() * s2
        sd_b = sd.double().numpy() * s2
        return (mean_b, sd_b) if two_d else (mean_b[0], sd_b[0])

    def predict_interval(
        self, beta_hat: Any, se: Any, R: Any, *, features: BlockFeatures | None = None, level: float = 0.9,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`predict` and the 90% interval of the shrink table (``lower``/``upper``).

        The interval is :func:`bayesmages.shrink.intervals.union_interval`: the hull of the LD-conditional
        interval ``c_j -/+ 1.645 sqrt(1 + kappa sum_{k != j} R_jk^2 sd_k^2)`` (``c_j = z_j - sum_{k != j} R_jk
        beta_shrunk_k / se_k``, sds on the z scale, ``kappa`` = :data:`INTERVAL_KAPPA`) and the marginal
        interval ``z_j -/+ 1.645``, times ``se_j``. The marginal part covers the causal effects that the
        network attributed to an LD neighbour; the choice and its coverage on held-out msprime simulations
        are in docs/shrink.md and bench/results/shrink_calibration.md.

        Returns
        -------
        mean, sd, lower, upper : numpy.ndarray
            Same shape as ``beta_hat``; ``lower``/``upper`` are not centred at ``mean``.
        """
        from bayesmages.shrink.intervals import union_interval

        mean, sd = self.predict(beta_hat, se, R, features=features)
        b = np.asarray(beta_hat, dtype=np.float64)
        s = np.asarray(se, dtype=np.float64)
        # on the network's z scale (z = beta_hat / se), all traits of a block in one product
        lo, hi = union_interval(b / s, np.asarray(R, dtype=np.float64), mean / s, INTERVAL_KAPPA * (sd / s) ** 2,
                                level=level)
        return mean, sd, lo * s, hi * s

    # ----------------------------------------------------------------- posterior access
    def sample_posterior(self, n: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
        """Network weights as draws: guide draws (Bayesian), members (ensemble), one draw (point)."""
        self._check_fitted()
        if self.mode == "bayesian":
            draws = self._weight_draws
        else:
            draws = [{k: v for k, v in m.state_dict().items()} for m in self.members_]
        keys = draws[0].keys()
        return {k: np.stack([d[k].double().numpy() for d in draws]) for k in keys}

    def summary(self, n: int = 2000, seed: int = 0) -> pd.DataFrame:
        """Training summary: one row per member with validation metrics and epochs."""
        self._check_fitted()
        rows = [{"member": i, "epochs": len(h["val_mse"]), "best_val_mse": h["best_val_mse"], "stopped": h["stopped"]}
                for i, h in enumerate(self.history_)]
        out = pd.DataFrame(rows)
        for k, v in self.validation_.items():
            out[f"final_{k}"] = v
        return out

    def to_inference_data(self, n: int = 1000, seed: int = 0, psis: bool = False) -> Any:
        """Weights as an ArviZ object (draws as in :meth:`sample_posterior`)."""
        from bayesmages import diagnostics

        self._check_fitted()
        return diagnostics.to_inference_data(self.sample_posterior(n, seed), elbo=self.elbo_,
                                             attrs={"inference": self.method_, "model": self._label})

    # ----------------------------------------------------------------- persistence
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"params": self.get_params()}
        if hasattr(self, "members_"):
            state.update(
                members=[m.state_dict() for m in self.members_],
                history=self.history_, method=self.method_, seed=self.seed_, elbo=self.elbo_,
                sd_scale=self.sd_scale_, validation=self.validation_,
                weight_draws=getattr(self, "_weight_draws", None),
            )
        return state

    def _restore(self, state: Mapping[str, Any]) -> None:
        params = dict(state["params"])
        priors = params.pop("priors", None)
        # re-running __init__ on a loaded instance restores its settings (mypy flags any explicit __init__ call)
        self.__init__(priors=priors, **params)  # type: ignore[misc]
        if "members" in state:
            members = []
            for sd in state["members"]:
                net = self.make_net()
                net.load_state_dict(sd)
                net.eval()
                members.append(net)
            self.members_ = members
            self.history_ = state["history"]
            self.method_ = state["method"]
            self.seed_ = state["seed"]
            self.elbo_ = state["elbo"]
            self.sd_scale_ = state["sd_scale"]
            self.validation_ = state["validation"]
            if state.get("weight_draws") is not None:
                self._weight_draws = state["weight_draws"]

