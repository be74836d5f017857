"""Ensembles of unrolled shrinkers: members trained on random subsets, predictive mixture moments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from bayesmages.infer import spawn_seeds
from bayesmages.shrink.features import BlockFeatures
from bayesmages.shrink.net import UnrolledShrinker
from bayesmages.shrink.train import SimBlock, TrainConfig, point_predictor, train_point

__all__ = ["combine", "ensemble_predictor", "train_ensemble"]


def combine(means: Sequence[torch.Tensor], sds: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments of an equal-weight mixture of Gaussians.

    Mean = average of the member means; variance = average within-member variance plus the
    variance between member means (law of total variance).

    Examples
    --------
    >>> m, s = combine([torch.tensor([0.0]), torch.tensor([2.0])], [torch.tensor([1.0]), torch.tensor([1.0])])
    >>> float(m[0]), round(float(s[0]) ** 2, 6)  # float32 tensors: 2.0 to single precision
    (1.0, 2.0)
    """
    mu = torch.stack(list(means))
    var = torch.stack([s.square() for s in sds])
    mean = mu.mean(0)
    total = var.mean(0) + (mu - mean).square().mean(0)
    return mean, total.sqrt()


def ensemble_predictor(
    members: Sequence[UnrolledShrinker],
) -> Callable[[torch.Tensor, BlockFeatures], tuple[torch.Tensor, torch.Tensor]]:
    """``predict(z, bf) -> (mean, sd)`` of an ensemble (uncalibrated)."""
    preds = [point_predictor(m) for m in members]

    def predict(z: torch.Tensor, bf: BlockFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [p(z, bf) for p in preds]
        return combine([o[0] for o in outs], [o[1] for o in outs])

    return predict


def train_ensemble(
    make_net: Callable[[], UnrolledShrinker],
    train: list[SimBlock],
    val: list[SimBlock],
    cfg: TrainConfig,
    seed: int,
    progress: bool = False,
) -> tuple[list[UnrolledShrinker], list[dict[str, Any]]]:
    """Train ``cfg.n_members`` point networks, each on a random 80% of the training blocks.

    Members differ by their initialisation seed and their training subset, so the spread of
    their predictions reflects both optimisation and data uncertainty.
    """
    members, histories = [], []
    for k, s in enumerate(spawn_seeds(seed, cfg.n_members)):
        rng = np.random.default_rng(s)
        n_sub = max(1, round(0.8 * len(train)))
        subset = [train[i] for i in np.sort(rng.choice(len(train), size=n_sub, replace=False))]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            net = make_net()
        hist = train_point(net, subset, val, cfg, seed=s, progress=progress, desc=f"member {k + 1}/{cfg.n_members}")
        members.append(net)
        histories.append(hist)
    return members, histories
