"""The unrolled shrinker network (PyroModule MLPs; no training code here).

One small MLP is applied ``n_iter`` times. Iteration k builds per-variant features from the
conditional residuals of the current estimate (:func:`bayesmages.shrink.features.iteration_features`)
and outputs, per variant, a gate ``g`` and a scale ``h``:

* new estimate (z scale): ``est_j = sign(r_j) |r_j| sigmoid(g_j)`` -- a learned, LD-aware
  version of a spike-and-slab coordinate update (posterior inclusion x shrunk residual);
* predictive sd (last iteration): ``sd_j = softplus(h_j) sqrt(1 + r_j^2)``.

All iterations share weights, so the model stays small (a few thousand parameters) and the
cost per iteration is one mat-vec plus an MLP over m x (5 + 3T) features.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, PyroSample
from torch import nn

from bayesmages.errors import InputError
from bayesmages.shrink.features import BlockFeatures, iteration_features, n_features

__all__ = ["ARCHITECTURES", "ShrinkMLP", "UnrolledShrinker", "make_bayesian", "resolve_architecture"]

#: The reference family: hidden widths and dropout rates ("linear" has no hidden layer).
ARCHITECTURES: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "linear": ((), ()),
    "2L": ((64, 8), (0.2, 0.2)),
    "3L": ((64, 32, 8), (0.2, 0.2, 0.1)),
}
NORMS = ("none", "layer", "batch")


def resolve_architecture(
    architecture: str, widths: Sequence[int] | None, dropout: float | Sequence[float] | None
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Hidden widths and dropout rates from an architecture name and optional overrides.

    Examples
    --------
    >>> resolve_architecture("2L", None, 0.0)
    ((64, 8), (0.0, 0.0))
    """
    if widths is None:
        if architecture not in ARCHITECTURES:
            raise InputError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
        widths, default_drop = ARCHITECTURES[architecture]
    else:
        widths = tuple(int(w) for w in widths)
        if any(w < 1 for w in widths):
            raise InputError(f"widths must be positive integers, got {widths}")
        default_drop = (0.0,) * len(widths)
    if dropout is None:
        drops = tuple(default_drop)
    elif isinstance(dropout, int | float):
        drops = (float(dropout),) * len(widths)
    else:
        drops = tuple(float(d) for d in dropout)
    if len(drops) != len(widths):
        raise InputError(f"dropout needs one rate per hidden layer ({len(widths)}), got {len(drops)}")
    if any(not 0.0 <= d < 1.0 for d in drops):
        raise InputError(f"dropout rates must be in [0, 1), got {drops}")
    return tuple(widths), drops


class ShrinkMLP(PyroModule):
    """Linear -> normalisation -> ReLU -> dropout blocks, then a linear head with 2 outputs.

    Parameters
    ----------
    n_in : int
        Number of input features.
    widths : sequence of int
        Hidden widths (empty: a linear model).
    dropout : sequence of float
        Dropout rate per hidden layer.
    norm : {"none", "layer", "batch"}
        Normalisation after each hidden linear layer.
    """

    def __init__(self, n_in: int, widths: Sequence[int], dropout: Sequence[float], norm: str = "none") -> None:
        super().__init__()
        if norm not in NORMS:
            raise InputError(f"norm must be one of {list(NORMS)}, got {norm!r}")
        layers: list[nn.Module] = []
        prev = n_in
        for w, p in zip(widths, dropout):
            layers.append(PyroModule[nn.Linear](prev, w))  # type: ignore[call-arg, arg-type]  # PyroModule[cls] is pyro's metaclass subscription, typed as PyroModule(name)
            if norm == "layer":
                layers.append(PyroModule[nn.LayerNorm](w))  # type: ignore[arg-type]  # as above
            elif norm == "batch":
                layers.append(PyroModule[nn.BatchNorm1d](w))  # type: ignore[arg-type]  # as above
            layers.append(nn.ReLU())
            if p > 0:
                layers.append(nn.Dropout(p))
            prev = w
        head: nn.Linear = PyroModule[nn.Linear](prev, 2)  # type: ignore[call-arg, arg-type, assignment]  # as above
        layers.append(head)
        self.layers: nn.Sequential = PyroModule[nn.Sequential](*layers)  # type: ignore[arg-type, assignment]  # as above
        with torch.no_grad():
            # Start half closed (sigmoid(-1) = 0.27): small first steps keep the unrolled
            # parallel updates stable in strong LD while training opens the right gates.
            head.bias[0] = -1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (..., n_in) features to (..., 2) outputs."""
        shape = x.shape
        out = self.layers(x.reshape(-1, shape[-1]))  # BatchNorm1d wants (N, C)
        return out.reshape(*shape[:-1], 2)


class UnrolledShrinker(PyroModule):
    """The iterative shrinker: the MLP re-applied to features of the current residuals.

    Parameters
    ----------
    n_neighbours : int
        T, neighbours per variant.
    n_iter : int
        Unrolled iterations.
    widths, dropout, norm
        See :class:`ShrinkMLP`.
    """

    def __init__(
        self,
        n_neighbours: int,
        n_iter: int,
        widths: Sequence[int],
        dropout: Sequence[float],
        norm: str = "none",
    ) -> None:
        super().__init__()
        if not isinstance(n_iter, int) or n_iter < 1:
            raise InputError(f"n_iter must be a positive integer, got {n_iter!r}")
        self.n_neighbours = int(n_neighbours)
        self.n_iter = n_iter
        self.mlp = ShrinkMLP(n_features(self.n_neighbours), widths, dropout, norm)

    def forward(self, z: torch.Tensor, bf: BlockFeatures) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the unrolled iterations.

        Parameters
        ----------
        z : torch.Tensor
            (B, m) z-scores of B replicates of one block.
        bf : BlockFeatures
            The block's static features.

        Returns
        -------
        estimates : list of torch.Tensor
            (B, m) estimate of ``zeta`` after each iteration (the last one is the output).
        sd : torch.Tensor
            (B, m) predictive sd (z scale, before calibration).
        """
        est = torch.zeros_like(z)
        # log mean z^2 is ~0 for a null block whatever its LD, and grows with the block's signal.
        scale = torch.log(z.square().mean(dim=1, keepdim=True).clamp_min(1e-6))
        estimates = []
        denom = max(self.n_iter - 1, 1)
        out = r = None
        # A hard cap keeps a bad early step from feeding ever larger residuals to the next one.
        cap = 2.0 * z.abs().amax(dim=1, keepdim=True) + 1.0
        for k in range(self.n_iter):
            x, r, sgn, lead = iteration_features(z, est, bf, scale, k / denom)
            out = self.mlp(x)
            new = sgn * torch.minimum(r.abs() * torch.sigmoid(out[..., 0]), cap)
            if k < self.n_iter - 1:
                est = est + lead * (new - est)
            else:
                # Last step: every variant gets its conditional update given the others (the
                # mean-field output); near the fixed point this no longer double counts.
                est = new
            estimates.append(est)
        assert out is not None and r is not None  # n_iter >= 1 (checked in __init__)
        sd = nn.functional.softplus(out[..., 1]) * torch.sqrt(1.0 + r.square()) + 1e-4
        return estimates, sd


def make_bayesian(
    net: UnrolledShrinker, weight_prior: dist.TorchDistribution, bias_prior: dist.TorchDistribution
) -> None:
    """Turn every linear layer's weight and bias into a Pyro sample site (in place).

    The scalar priors are expanded to each parameter's shape; normalisation layers stay
    deterministic parameters (learned by the guide as ordinary ``pyro.param``).
    """
    for module in net.mlp.layers:
        if isinstance(module, nn.Linear):
            w_shape, b_shape = tuple(module.weight.shape), tuple(module.bias.shape)
            # PyroModule.__setattr__ turns a PyroSample into a sample site; torch types these attributes as tensors
            module.weight = PyroSample(weight_prior.expand(w_shape).to_event(2))  # type: ignore[assignment]
            module.bias = PyroSample(bias_prior.expand(b_shape).to_event(1))  # type: ignore[assignment]
