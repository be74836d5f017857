"""Simulation with known truth (METHODS §A and §C).

msprime genotypes and LD, effect architectures, RSS summary statistics and multi-trait
gene-level data.

Examples
--------
>>> import numpy as np
>>> from bayesmages import simulate
>>> R = simulate.simulate_ld_blocks(1, 50, n_samples=300, seed=0)[0]
>>> beta = simulate.simulate_effects(np.full(50, 0.2), p_causal=0.1, h2=0.01, R=R, seed=0)
>>> beta_hat, se = simulate.simulate_sumstats(R, beta, 10_000, seed=0)
>>> beta_hat.shape
(50,)
"""

from bayesmages.simulate.effects import effect_variances, ld_scores_from_R, simulate_effects
from bayesmages.simulate.genotypes import (
    SimulatedGenotypes,
    expected_variant_density,
    ld_from_genotypes,
    partition_blocks,
    simulate_genotypes,
    simulate_ld_blocks,
)
from bayesmages.simulate.multitrait import MultiTraitSimulation, simulate_multitrait
from bayesmages.simulate.rss import RSSSampler, gwas_from_genotypes, se_from_beta_hat, simulate_sumstats

__all__ = [
    "MultiTraitSimulation",
    "RSSSampler",
    "SimulatedGenotypes",
    "effect_variances",
    "expected_variant_density",
    "gwas_from_genotypes",
    "ld_from_genotypes",
    "ld_scores_from_R",
    "partition_blocks",
    "se_from_beta_hat",
    "simulate_effects",
    "simulate_genotypes",
    "simulate_ld_blocks",
    "simulate_multitrait",
    "simulate_sumstats",
]
