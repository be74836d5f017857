"""Effect-size shrinkage for LD: the neural shrinker, ``susie_rss`` (method="susie") and the elastic-net baseline.

Examples
--------
>>> import bayesmages as bm
>>> out = bm.shrink.shrink(beta_hat, se, R)  # doctest: +SKIP
>>> out[["beta_shrunk", "sd", "lower", "upper"]]  # doctest: +SKIP
"""

from __future__ import annotations

from bayesmages.shrink.api import OUTPUT_COLUMNS, load_default, shrink
from bayesmages.shrink.enet import enet_shrink
from bayesmages.shrink.features import block_features, ld_scores, neighbours, validate_block
from bayesmages.shrink.intervals import conditional_estimate, conditional_interval, union_interval
from bayesmages.shrink.ldcheck import ld_mismatch
from bayesmages.shrink.network import NeuralShrinker
from bayesmages.shrink.train import TrainConfig, simulate_training_data

__all__ = [
    "OUTPUT_COLUMNS",
    "NeuralShrinker",
    "TrainConfig",
    "block_features",
    "conditional_estimate",
    "conditional_interval",
    "enet_shrink",
    "ld_mismatch",
    "ld_scores",
    "load_default",
    "neighbours",
    "shrink",
    "simulate_training_data",
    "union_interval",
    "validate_block",
]
