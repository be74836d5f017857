"""simulate.genotypes: msprime genotypes, LD matrices, LD-block partition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bayesmages.errors import InputError
from bayesmages.simulate import (
    expected_variant_density,
    ld_from_genotypes,
    partition_blocks,
    simulate_genotypes,
    simulate_ld_blocks,
)


@pytest.fixture(scope="module")
def region():
    # 500 diploids over 500 kb: ~900 variants with MAF >= 1%, long enough to see LD decay.
    return simulate_genotypes(500, 500_000, seed=11)


def test_genotypes_shapes_and_coding(region):
    G, pos, maf = region.G, region.positions, region.maf
    assert G.shape == (500, pos.size) == (500, maf.size)
    assert set(np.unique(G)) <= {0, 1, 2}
    assert np.all(np.diff(pos) > 0) and pos[0] >= 1 and pos[-1] <= 500_000
    # maf is the minor-allele frequency of the returned minor-allele counts
    freq = G.mean(axis=0) / 2
    np.testing.assert_allclose(maf, freq, atol=1e-12)
    assert np.all(maf >= 0.01) and np.all(maf <= 0.5)


def test_variant_count_matches_neutral_expectation():
    # Expected count = L * 4 Ne mu * sum_i 1/i (neutral site-frequency spectrum). The coalescent
    # variance over independent 500 kb regions is large, so average 4 regions and allow 25%.
    counts = [simulate_genotypes(300, 500_000, seed=s).n_variants for s in range(4)]
    expected = 500_000 * expected_variant_density(300)
    assert abs(np.mean(counts) / expected - 1) < 0.25


def test_ld_decays_with_distance(region):
    R = ld_from_genotypes(region.G)
    pos = region.positions
    i, j = np.triu_indices(pos.size, k=1)
    d = pos[j] - pos[i]
    r2 = R[i, j] ** 2
    near = r2[d < 10_000].mean()
    mid = r2[(d >= 50_000) & (d < 150_000)].mean()
    far = r2[d >= 300_000].mean()
    # Sved's approximation E[r^2] ~ 1/(1 + 4 Ne c d): ~0.2 at 5 kb, ~0.02 at 100 kb, ~0.007 at 400 kb,
    # plus ~1/n sampling noise; require a clear monotone decay rather than these exact values.
    assert near > 3 * mid and mid > far
    assert near > 0.05 and far < 0.03


def test_seed_reproducible_and_distinct():
    a = simulate_genotypes(100, 100_000, seed=5)
    b = simulate_genotypes(100, 100_000, seed=5)
    c = simulate_genotypes(100, 100_000, seed=6)
    np.testing.assert_array_equal(a.G, b.G)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.positions.size != c.positions.size or not np.array_equal(a.positions, c.positions)


def test_max_variants_thins_in_position_order():
    full = simulate_genotypes(200, 200_000, seed=3)
    thin = simulate_genotypes(200, 200_000, seed=3, max_variants=50)
    assert thin.n_variants == 50
    assert np.isin(thin.positions, full.positions).all() and np.all(np.diff(thin.positions) > 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_samples": 0, "sequence_length": 1e5},
        {"n_samples": 10, "sequence_length": -1},
        {"n_samples": 10, "sequence_length": 1e5, "maf_min": 0.5},
        {"n_samples": 10, "sequence_length": 1e5, "Ne": 0},
        {"n_samples": 10, "sequence_length": 1e5, "max_variants": 0},
    ],
)
def test_genotype_bad_arguments(kwargs):
    with pytest.raises(InputError):
        simulate_genotypes(**kwargs, seed=1)


def test_bad_seed():
    with pytest.raises(InputError, match="seed"):
        simulate_genotypes(10, 1e4, seed=-1)


def test_ld_from_genotypes_matches_corrcoef():
    rng = np.random.default_rng(0)
    G = rng.binomial(2, [0.1, 0.3, 0.5, 0.2], size=(300, 4))
    R = ld_from_genotypes(G)
    np.testing.assert_allclose(R, np.corrcoef(G, rowvar=False), atol=1e-12)
    assert np.array_equal(np.diag(R), np.ones(4)) and np.array_equal(R, R.T)


def test_ld_from_genotypes_rejects_monomorphic():
    G = np.array([[0, 1], [0, 2], [0, 0]])
    with pytest.raises(InputError, match="column 0 is monomorphic"):
        ld_from_genotypes(G)


def _brute_force_cross(R, min_size, max_size):
    """Smallest cross-block sum of R^2 over all valid partitions (exhaustive reference)."""
    m = R.shape[0]
    best = np.inf
    for k in range(1, m):
        for cuts in itertools.combinations(range(1, m), k - 1):
            edges = [0, *cuts, m]
            sizes = np.diff(edges)
            if sizes.min() < min_size or sizes.max() > max_size:
                continue
            label = np.repeat(np.arange(len(sizes)), sizes)
            best = min(best, float((R**2)[label[:, None] != label[None, :]].sum()))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partition_is_optimal_against_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 11)).cumsum(axis=1)  # random-walk columns: LD decaying along the order
    R = np.corrcoef(X, rowvar=False)
    blocks = partition_blocks(R, min_size=2, max_size=5)
    sizes = [b.stop - b.start for b in blocks]
    assert blocks[0].start == 0 and blocks[-1].stop == 11 and all(2 <= s <= 5 for s in sizes)
    assert all(a.stop == b.start for a, b in itertools.pairwise(blocks))
    label = np.repeat(np.arange(len(sizes)), sizes)
    ours = float((R**2)[label[:, None] != label[None, :]].sum())
    assert ours == pytest.approx(_brute_force_cross(R, 2, 5), rel=1e-12)


def test_partition_recovers_independent_blocks():
    rng = np.random.default_rng(4)
    true_sizes = [30, 45, 25, 50]
    R = np.zeros((150, 150))
    start = 0
    for s in true_sizes:
        A = rng.normal(size=(200, s)).cumsum(axis=1)
        R[start : start + s, start : start + s] = np.corrcoef(A, rowvar=False)
        start += s
    blocks = partition_blocks(R, min_size=20, max_size=50)
    assert [b.stop - b.start for b in blocks] == true_sizes


def test_partition_errors_and_small_input():
    with pytest.raises(InputError, match="cannot cut"):
        partition_blocks(np.eye(7), min_size=4, max_size=5)
    with pytest.raises(InputError, match="max_size"):
        partition_blocks(np.eye(7), min_size=4, max_size=3)
    assert partition_blocks(np.eye(3), min_size=4, max_size=10) == [slice(0, 3)]


def test_simulate_ld_blocks_valid_and_reproducible():
    blocks = simulate_ld_blocks(2, 60, n_samples=300, seed=9)
    again = simulate_ld_blocks(2, 60, n_samples=300, seed=9)
    assert [R.shape for R in blocks] == [(60, 60), (60, 60)]
    for R, R2 in zip(blocks, again):
        np.testing.assert_array_equal(R, R2)
        assert np.array_equal(R, R.T) and np.all(np.diag(R) == 1.0)
        # a sample correlation matrix is PSD; allow floating-point round-off
        assert np.linalg.eigvalsh(R)[0] > -1e-10
    assert not np.array_equal(blocks[0], blocks[1])


def test_simulate_ld_blocks_rejects_unknown_kwargs():
    with pytest.raises(InputError, match="unknown msprime"):
        simulate_ld_blocks(1, 10, seed=1, population=3)
