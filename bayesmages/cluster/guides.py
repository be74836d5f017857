"""Hand-written guides of the DP mixture (MAP and mean-field), batched over restarts.

Both guides hold one set of variational parameters per restart (leading axis R) and are
written for the plates of :meth:`bayesmages.cluster.DPMixture.model` (``restarts`` at dim -2,
``sticks``/``components`` at dim -1), so one SVI run optimises all restarts together. Their
parameters are initialised lazily from a CAVI solution (``init_fn``) so that a few hundred SVI
steps suffice.

Mean-field family: ``v_k ~ Beta(a_k, b_k)``; precision ~ Normal on the unconstrained Cholesky
coordinates pushed through :class:`~bayesmages.cluster.kernels.VechToPrecision`; for the LKJ
prior, the correlation Cholesky factor ~ Normal pushed through ``CorrCholeskyTransform`` and
the scales ~ LogNormal; a random concentration ~ LogNormal. MAP: point masses at the same
coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.transforms import CorrCholeskyTransform

from bayesmages.cluster.kernels import VechToPrecision

__all__ = ["DPMixtureGuide"]

_PREFIX = "dpm_"


class DPMixtureGuide:
    """MAP or mean-field guide of the DP mixture.

    Parameters
    ----------
    kind : {"map", "meanfield"}
        Point masses or the mean-field family.
    restarts, truncation, n_traits : int
        R, K, p.
    covariance_prior : {"wishart", "lkj"}
        Which covariance parametrisation the model uses.
    random_concentration : bool
        Whether the model samples the concentration.
    init_fn : callable
        Zero-argument function returning the initial unconstrained values
        (``v_logit`` (R, K-1), ``v_count`` (R, K-1, 2), ``prec`` (R, K, q) or ``corr`` / ``log_scales``,
        ``log_alpha`` (R, 1), and ``<name>_sd`` starting sds of the Normal factors); called once,
        only for parameters not already in the store.
    """

    def __init__(
        self,
        kind: str,
        restarts: int,
        truncation: int,
        n_traits: int,
        covariance_prior: str,
        random_concentration: bool,
        init_fn: Callable[[], dict[str, torch.Tensor]],
    ) -> None:
        self.kind = kind
        self.R, self.K, self.p = restarts, truncation, n_traits
        self.covariance_prior = covariance_prior
        self.random_concentration = random_concentration
        self._init_fn = init_fn
        self._init: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ parameters
    def _init_value(self, key: str) -> torch.Tensor:
        if self._init is None:
            self._init = self._init_fn()
        return self._init[key]

    def _param(self, name: str, key: str, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
               constraint: constraints.Constraint = constraints.real) -> torch.Tensor:
        def init() -> torch.Tensor:
            value = self._init_value(key)
            return (transform(value) if transform else value).clone()

        return pyro.param(_PREFIX + name, init, constraint=constraint)

    def _scale(self, name: str, key: str) -> torch.Tensor:
        return self._param(name, key, constraint=constraints.positive)

    def distributions(self) -> dict[str, dist.TorchDistribution]:
        """The guide's distribution per latent site (batch shape (R, K or K-1 or 1))."""
        out: dict[str, dist.TorchDistribution] = {}
        mf = self.kind == "meanfield"
        if mf:
            ab = self._param("v_ab", "v_count", constraint=constraints.positive)
            out["v"] = dist.Beta(ab[..., 0], ab[..., 1])
        else:
            # MAP on the logit scale: the point mass carries the log-Jacobian of v = sigmoid(u), so
            # the objective is the density of u. Beta(1, alpha < 1) has no mode inside (0, 1); on
            # the logit scale the MAP exists (v = (1 + N_k) / (1 + alpha + N_k + N_{>k}) given counts).
            u = self._param("v_logit", "v_logit")
            out["v"] = dist.Delta(torch.sigmoid(u), log_density=-(F.logsigmoid(u) + F.logsigmoid(-u)))
        if self.random_concentration:
            loc = self._param("alpha_loc", "log_alpha")
            out["concentration"] = (dist.LogNormal(loc, self._scale("alpha_scale", "log_alpha_sd")) if mf
                                    else dist.Delta(loc.exp(), log_density=-loc))
        if self.covariance_prior == "wishart":
            if mf:
                loc = self._param("prec_loc", "prec_mf")
                base = dist.Normal(loc, self._scale("prec_scale", "prec_sd")).to_event(1)
                out["precision"] = dist.TransformedDistribution(base, VechToPrecision(cache_size=1))
            else:
                out["precision"] = dist.Delta(VechToPrecision()(self._param("prec_loc", "prec")), event_dim=2)
        else:
            scales_loc = self._param("scales_loc", "log_scales")
            if mf:
                out["scales"] = dist.LogNormal(scales_loc, self._scale("scales_scale", "log_scales_sd")).to_event(1)
            else:
                out["scales"] = dist.Delta(scales_loc.exp(), event_dim=1)
            if self.p > 1:
                corr_loc = self._param("corr_loc", "corr")
                if mf:
                    base = dist.Normal(corr_loc, self._scale("corr_scale", "corr_sd")).to_event(1)
                    out["corr_cholesky"] = dist.TransformedDistribution(base, CorrCholeskyTransform(cache_size=1))
                else:
                    out["corr_cholesky"] = dist.Delta(CorrCholeskyTransform()(corr_loc), event_dim=2)
        return out

    # ------------------------------------------------------------------ Pyro guide
    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Sample every latent site (the Pyro guide; arguments as the model's)."""
        dists = self.distributions()
        values: dict[str, torch.Tensor] = {}
        with pyro.plate("restarts", self.R, dim=-2):
            if "concentration" in dists:
                with pyro.plate("one", 1, dim=-1):
                    values["concentration"] = pyro.sample("concentration", dists["concentration"])
            with pyro.plate("sticks", self.K - 1, dim=-1):
                values["v"] = pyro.sample("v", dists["v"])
            with pyro.plate("components", self.K, dim=-1):
                for name in ("precision", "scales", "corr_cholesky"):
                    if name in dists:
                        values[name] = pyro.sample(name, dists[name])
        return values

    # ------------------------------------------------------------------ plain torch
    def sample(self, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``n`` draws of every site (leading axis n) and their log q per restart (n, R).

        Must run inside the parameter scope of the fit. MAP guides return the point ``n``
        times; their log q is the point masses' log-Jacobian terms (see ``distributions``).
        """
        values: dict[str, torch.Tensor] = {}
        log_q: float | torch.Tensor = 0.0
        for name, d in self.distributions().items():
            if isinstance(d, dist.Delta):
                values[name] = d.v.expand(n, *d.v.shape)
                log_q = log_q + d.log_density.expand(n, *d.log_density.shape).sum(-1)
                continue
            x = d.rsample((n,))
            values[name] = x
            log_q = log_q + d.log_prob(x).sum(-1)
        if isinstance(log_q, float):
            log_q = torch.zeros(n, self.R, dtype=torch.float64)
        return values, log_q

    def point(self) -> dict[str, torch.Tensor]:
        """A point per site (R, ...): the MAP, or the guide's mode-in-coordinates for mean-field.

        For mean-field this is the transform of the Normal means (and the Beta means of
        ``v``), a convenient centre for restart comparison, not a posterior mean.
        """
        out: dict[str, torch.Tensor] = {}
        for name, d in self.distributions().items():
            if isinstance(d, dist.Delta):
                out[name] = d.v
            elif isinstance(d, dist.Beta):
                out[name] = d.mean
            elif isinstance(d, dist.Independent) and isinstance(d.base_dist, dist.LogNormal):
                out[name] = d.base_dist.loc.exp()
            elif isinstance(d, dist.LogNormal):
                out[name] = d.loc.exp()
            else:  # a Normal pushed through one transform
                assert isinstance(d, dist.TransformedDistribution)
                base = d.base_dist.base_dist if isinstance(d.base_dist, dist.Independent) else d.base_dist
                out[name] = d.transforms[0](base.loc)
        return out
