"""Association clustering: the stick-breaking DP mixture ``dp_mixture`` (METHODS §B).

Examples
--------
>>> import numpy as np, bayesmages as bm
>>> X = np.random.default_rng(0).normal(size=(500, 2))
>>> m = bm.get_model("dp_mixture", truncation=10).fit(X, seed=0)  # doctest: +SKIP
>>> m.weights_, m.covariances_, m.labels_, m.categories_  # doctest: +SKIP
"""

from bayesmages.cluster.data import prepare_effects
from bayesmages.cluster.dpmixture import DPMixture
from bayesmages.cluster.plots import plot_clusters
from bayesmages.cluster.postprocess import (
    adjusted_rand_index,
    categorize_clusters,
    log_responsibilities,
    select_variants,
    truncate_components,
)

__all__ = [
    "DPMixture",
    "adjusted_rand_index",
    "categorize_clusters",
    "log_responsibilities",
    "plot_clusters",
    "prepare_effects",
    "select_variants",
    "truncate_components",
]
