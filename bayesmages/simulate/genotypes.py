"""Genotypes with realistic LD from msprime coalescent simulations, LD matrices and LD blocks.

A neutral, constant-size, panmictic population is simulated with the standard coalescent with
recombination (``msprime.sim_ancestry``) and neutral mutations are laid on the trees
(``msprime.sim_mutations`` with a binary mutation model on a discrete genome, so every site is
bi-allelic). Haplotypes are paired into diploid individuals; genotypes are minor-allele counts.
LD therefore decays with distance as it does in real data, which the fixed real blocks in
tests cannot vary.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np

from bayesmages.errors import InputError
from bayesmages.simulate._checks import (
    check_positive,
    check_positive_int,
    check_seed,
    child_seeds,
)
from bayesmages.stats.blocks import BlockCutter

__all__ = [
    "SimulatedGenotypes",
    "expected_variant_density",
    "ld_from_genotypes",
    "partition_blocks",
    "simulate_genotypes",
    "simulate_ld_blocks",
]


@dataclass(frozen=True)
class SimulatedGenotypes:
    """Simulated diploid genotypes.

    Attributes
    ----------
    G : numpy.ndarray
        (n, m) int8 minor-allele counts 0/1/2.
    positions : numpy.ndarray
        (m,) int64 base-pair positions (1-based), strictly increasing.
    maf : numpy.ndarray
        (m,) float64 minor-allele frequencies in the simulated sample.
    """

    G: np.ndarray
    positions: np.ndarray
    maf: np.ndarray

    @property
    def n_samples(self) -> int:
        """Number of individuals."""
        return int(self.G.shape[0])

    @property
    def n_variants(self) -> int:
        """Number of variants."""
        return int(self.G.shape[1])


def simulate_genotypes(
    n_samples: int,
    sequence_length: float,
    *,
    Ne: float = 10_000,
    recombination_rate: float = 1e-8,
    mutation_rate: float = 1e-8,
    maf_min: float = 0.01,
    max_variants: int | None = None,
    seed: int,
) -> SimulatedGenotypes:
    """Simulate diploid genotypes with coalescent LD (msprime).

    Parameters
    ----------
    n_samples : int
        Number of diploid individuals (2 * n_samples haplotypes).
    sequence_length : float
        Length of the simulated region in base pairs.
    Ne : float
        Effective (diploid) population size.
    recombination_rate, mutation_rate : float
        Per base pair per generation.
    maf_min : float
        Keep variants with minor-allele frequency >= ``maf_min`` (in [0, 0.5)); monomorphic
        sites are always dropped.
    max_variants : int, optional
        If more variants pass the filter, keep a random subset of this size (in position
        order), like the variants of a genotyping array; the region's span is preserved.
    seed : int
        Random seed; the ancestry, mutation and thinning seeds are derived from it.

    Returns
    -------
    SimulatedGenotypes

    Raises
    ------
    InputError
        Non-positive sizes or rates, ``maf_min`` outside [0, 0.5), a bad seed.

    Examples
    --------
    >>> sim = simulate_genotypes(500, 100_000, seed=1)
    >>> sim.G.shape[0], bool((sim.maf >= 0.01).all())
    (500, True)
    """
    try:
        import msprime
    except ImportError:  # pragma: no cover - optional dependency
        raise ImportError("simulate_genotypes needs msprime: pip install 'bayesmages[sim]'") from None

    n_samples = check_positive_int(n_samples, "n_samples")
    sequence_length = check_positive(sequence_length, "sequence_length")
    Ne = check_positive(Ne, "Ne")
    recombination_rate = check_positive(recombination_rate, "recombination_rate")
    mutation_rate = check_positive(mutation_rate, "mutation_rate")
    maf_min = _check_maf_min(maf_min)
    if max_variants is not None:
        max_variants = check_positive_int(max_variants, "max_variants")
    s_anc, s_mut, s_thin = child_seeds(check_seed(seed), 3)

    ts = msprime.sim_ancestry(
        samples=n_samples,
        ploidy=2,
        sequence_length=float(np.ceil(sequence_length)),  # a discrete genome needs an integer length
        recombination_rate=recombination_rate,
        population_size=Ne,
        discrete_genome=True,
        random_seed=s_anc,
    )
    # The binary model keeps every site bi-allelic (0/1), so no multi-allelic sites need dropping.
    mts = msprime.sim_mutations(ts, rate=mutation_rate, model=msprime.BinaryMutationModel(), random_seed=s_mut)
    haps = mts.genotype_matrix()  # (sites, 2n) in sample-node order
    if haps.shape[0] == 0:
        return _empty(n_samples)
    # msprime numbers the two sample nodes of individual i as 2i and 2i+1.
    dosage = (haps[:, 0::2] + haps[:, 1::2]).T  # (n, sites)
    freq = dosage.mean(axis=0) / 2.0
    maf = np.minimum(freq, 1.0 - freq)
    keep = (maf >= maf_min) & (maf > 0)
    idx = np.flatnonzero(keep)
    if max_variants is not None and idx.size > max_variants:
        rng = np.random.default_rng(s_thin)
        idx = np.sort(rng.choice(idx, size=max_variants, replace=False))
    G = dosage[:, idx]
    flip = freq[idx] > 0.5
    G[:, flip] = 2 - G[:, flip]  # count the minor allele
    positions = mts.tables.sites.position[idx].astype(np.int64) + 1  # msprime is 0-based
    return SimulatedGenotypes(G=G.astype(np.int8), positions=positions, maf=maf[idx].astype(np.float64))


def _empty(n: int) -> SimulatedGenotypes:
    return SimulatedGenotypes(
        G=np.zeros((n, 0), dtype=np.int8), positions=np.zeros(0, dtype=np.int64), maf=np.zeros(0)
    )


def _check_maf_min(maf_min: Any) -> float:
    try:
        v = float(maf_min)
    except (TypeError, ValueError):
        raise InputError(f"maf_min must be a number in [0, 0.5), got {maf_min!r}") from None
    if not (0 <= v < 0.5):
        raise InputError(f"maf_min must lie in [0, 0.5), got {maf_min!r}")
    return v


def expected_variant_density(
    n_samples: int, *, Ne: float = 10_000, mutation_rate: float = 1e-8, maf_min: float = 0.01
) -> float:
    """Expected number of variants per base pair with MAF >= ``maf_min`` under the neutral coalescent.

    Under the standard neutral model, the expected number of sites where the derived allele is
    carried by ``i`` of ``N = 2 n_samples`` haplotypes is ``theta / i`` per base pair, with
    ``theta = 4 Ne mu``; summing ``i`` over ``[ceil(N maf_min), floor(N (1 - maf_min))]`` gives
    the density of variants that pass the MAF filter. Used to choose a sequence length for a
    target number of variants.

    Examples
    --------
    >>> round(expected_variant_density(2000) * 1e3, 2)  # variants per kb
    1.84
    """
    n_hap = 2 * check_positive_int(n_samples, "n_samples")
    maf_min = _check_maf_min(maf_min)
    lo = max(1, int(np.ceil(n_hap * maf_min)))
    hi = min(n_hap - 1, int(np.floor(n_hap * (1 - maf_min))))
    harmonic = float(np.sum(1.0 / np.arange(lo, hi + 1))) if hi >= lo else 0.0
    return 4.0 * check_positive(Ne, "Ne") * check_positive(mutation_rate, "mutation_rate") * harmonic


def ld_from_genotypes(G: np.ndarray) -> np.ndarray:
    """LD correlation matrix of genotype columns (Pearson correlation of standardised genotypes).

    Parameters
    ----------
    G : numpy.ndarray
        (n, m) genotypes (any numeric coding, no missing values), n >= 2.

    Returns
    -------
    numpy.ndarray
        (m, m) float64, exactly symmetric, unit diagonal, entries clipped to [-1, 1].

    Raises
    ------
    InputError
        Not 2-D, fewer than two rows, non-finite entries, or a monomorphic column (its
        correlation is undefined; the message gives its index).

    Examples
    --------
    >>> G = np.array([[0, 1], [1, 2], [2, 2], [0, 0]])
    >>> R = ld_from_genotypes(G)
    >>> R.shape, float(R[0, 0])
    ((2, 2), 1.0)
    """
    X = np.asarray(G, dtype=np.float64)
    if X.ndim != 2:
        raise InputError(f"G must be a 2-D (samples x variants) array, got shape {X.shape}")
    if X.shape[0] < 2:
        raise InputError(f"G needs at least 2 samples (rows), got {X.shape[0]}")
    if not np.isfinite(X).all():
        i, j = np.argwhere(~np.isfinite(X))[0]
        raise InputError(f"G has a non-finite entry at sample {i}, variant {j}; impute missing genotypes first")
    X = X - X.mean(axis=0)
    norm = np.sqrt(np.einsum("ij,ij->j", X, X))
    if (norm == 0).any():
        j = int(np.flatnonzero(norm == 0)[0])
        raise InputError(f"G: variant column {j} is monomorphic; its LD correlation is undefined")
    X /= norm
    R = X.T @ X
    R = 0.5 * (R + R.T)
    np.clip(R, -1.0, 1.0, out=R)
    np.fill_diagonal(R, 1.0)
    return R


def partition_blocks(R: np.ndarray, *, min_size: int, max_size: int) -> list[slice]:
    """Cut consecutive variants into approximately independent LD blocks.

    **Cut rule.** Among all partitions of ``0..m-1`` into consecutive blocks whose sizes lie in
    ``[min_size, max_size]``, return the one that minimises the total cross-block LD
    ``sum_{i, j in different blocks} R_ij^2``; equivalently (the total is fixed) it maximises the
    within-block sum of ``R_ij^2``. Solved exactly by dynamic programming over block ends in
    ``O(m * max_size)`` time and ``O(m)`` extra memory. On ties the last block is the larger one.
    Since fewer cuts can only lower cross-block LD, the rule prefers large blocks; ``max_size``
    bounds them and ``min_size`` prevents slivers.

    Parameters
    ----------
    R : numpy.ndarray
        (m, m) correlation matrix of variants in position order.
    min_size, max_size : int
        Bounds on block sizes, 1 <= min_size <= max_size. A region with m < min_size is one block.

    Returns
    -------
    list of slice
        Consecutive slices covering ``0..m-1``.

    Raises
    ------
    InputError
        R not square, bad sizes, or no partition satisfies the size bounds.

    Examples
    --------
    >>> R = np.kron(np.eye(3), np.full((4, 4), 0.5)) + np.eye(12) * 0.5
    >>> partition_blocks(R, min_size=2, max_size=5)
    [slice(0, 4, None), slice(4, 8, None), slice(8, 12, None)]
    """
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise InputError(f"R must be a square matrix, got shape {R.shape}")
    min_size = check_positive_int(min_size, "min_size")
    max_size = check_positive_int(max_size, "max_size")
    if max_size < min_size:
        raise InputError(f"max_size ({max_size}) must be >= min_size ({min_size})")
    m = R.shape[0]
    cutter = BlockCutter(m, min_size=min_size, max_size=max_size)
    t = np.arange(max_size)[None, :]
    for a in range(0, m, 1024):
        i = np.arange(a, min(a + 1024, m))[:, None]
        cutter.push(np.where(i >= t, R[i, np.maximum(i - t, 0)] ** 2, 0.0))
    cuts = cutter.cuts() if m else [0]
    return [slice(a, b) for a, b in itertools.pairwise(cuts)]


@overload
def simulate_ld_blocks(
    n_blocks: int,
    variants_per_block: int,
    *,
    n_samples: int = ...,
    seed: int,
    return_genotypes: Literal[False] = ...,
    **msprime_kwargs: Any,
) -> list[np.ndarray]: ...


@overload
def simulate_ld_blocks(
    n_blocks: int,
    variants_per_block: int,
    *,
    n_samples: int = ...,
    seed: int,
    return_genotypes: Literal[True],
    **msprime_kwargs: Any,
) -> list[SimulatedGenotypes]: ...


@overload
def simulate_ld_blocks(
    n_blocks: int,
    variants_per_block: int,
    *,
    n_samples: int = ...,
    seed: int,
    return_genotypes: bool,
    **msprime_kwargs: Any,
) -> list[np.ndarray] | list[SimulatedGenotypes]: ...


def simulate_ld_blocks(
    n_blocks: int,
    variants_per_block: int,
    *,
    n_samples: int = 2000,
    seed: int,
    return_genotypes: bool = False,
    **msprime_kwargs: Any,
) -> list[np.ndarray] | list[SimulatedGenotypes]:
    """Independent LD blocks, each from its own msprime region of about ``variants_per_block`` variants.

    The region length is chosen from :func:`expected_variant_density` so that about 1.3 times
    the target number of variants pass the MAF filter; the simulated variants are then thinned
    at random to exactly ``variants_per_block``. Coalescent variance can leave a region short;
    it is then re-simulated with a longer region (up to 5 attempts; a block may end up with
    fewer variants only if all attempts fall short).

    Parameters
    ----------
    n_blocks, variants_per_block : int
        Number of blocks and target variants per block.
    n_samples : int
        Diploid individuals in the reference sample the LD is computed from.
    seed : int
        Random seed; each block gets an independent child seed.
    return_genotypes : bool
        Return the :class:`SimulatedGenotypes` of each block instead of its LD matrix.
    **msprime_kwargs
        Passed to :func:`simulate_genotypes` (``Ne``, ``recombination_rate``, ``mutation_rate``,
        ``maf_min``, ``sequence_length`` to fix the region length).

    Returns
    -------
    list of numpy.ndarray (or of SimulatedGenotypes)
        One (m_b, m_b) correlation matrix per block.

    Examples
    --------
    >>> blocks = simulate_ld_blocks(2, 100, n_samples=500, seed=3)
    >>> [R.shape for R in blocks]
    [(100, 100), (100, 100)]
    """
    n_blocks = check_positive_int(n_blocks, "n_blocks")
    variants_per_block = check_positive_int(variants_per_block, "variants_per_block", minimum=2)
    unknown = set(msprime_kwargs) - {"Ne", "recombination_rate", "mutation_rate", "maf_min", "sequence_length"}
    if unknown:
        raise InputError(f"simulate_ld_blocks: unknown msprime argument(s) {sorted(unknown)}")
    kwargs = dict(msprime_kwargs)
    length = kwargs.pop("sequence_length", None)
    if length is None:
        density = expected_variant_density(
            n_samples,
            Ne=kwargs.get("Ne", 10_000),
            mutation_rate=kwargs.get("mutation_rate", 1e-8),
            maf_min=kwargs.get("maf_min", 0.01),
        )
        if density <= 0:
            raise InputError("maf_min leaves no variants for this n_samples; lower maf_min")
        length = 1.3 * variants_per_block / density
    out: list[Any] = []
    for block_seed in child_seeds(check_seed(seed), n_blocks):
        attempt_seeds = child_seeds(block_seed, 5)
        sim = None
        for attempt, s in enumerate(attempt_seeds):
            sim = simulate_genotypes(
                n_samples, length * 1.5**attempt, max_variants=variants_per_block, seed=s, **kwargs
            )
            if sim.n_variants >= variants_per_block:
                break
        assert sim is not None
        out.append(sim if return_genotypes else ld_from_genotypes(sim.G))
    return out
