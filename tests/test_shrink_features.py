"""Features of the neural shrinker on small hand-built LD matrices (no training)."""

import numpy as np
import pytest
import torch

from bayesmages.errors import InputError
from bayesmages.shrink.features import (
    block_features,
    iteration_features,
    ld_scores,
    n_features,
    neighbours,
    residuals,
    validate_block,
)

R4 = np.array([
    [1.0, -0.8, 0.3, 0.0],
    [-0.8, 1.0, -0.1, 0.5],
    [0.3, -0.1, 1.0, 0.2],
    [0.0, 0.5, 0.2, 1.0],
])


def test_ld_scores_match_definition():
    expected = [sum(R4[i, j] ** 2 for i in range(4)) - 1.0 for j in range(4)]
    np.testing.assert_allclose(ld_scores(R4), expected, rtol=0, atol=1e-15)


def test_neighbours_rank_by_absolute_correlation_and_keep_sign():
    idx, corr, mask = neighbours(R4, 2)
    for j in range(4):
        others = [i for i in range(4) if i != j]
        brute = sorted(others, key=lambda i: -abs(R4[j, i]))[:2]
        assert idx[j].tolist() == brute
        np.testing.assert_array_equal(corr[j], R4[j, brute])  # signed
    assert idx[0, 0] == 1 and corr[0, 0] == -0.8  # strong negative LD is visible
    assert mask.sum() == 8


def test_neighbours_pad_small_blocks():
    R = np.array([[1.0, 0.4], [0.4, 1.0]])
    idx, corr, mask = neighbours(R, 3)
    assert idx.shape == (2, 3)
    np.testing.assert_array_equal(mask, [[1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(corr[:, 1:], 0.0)
    np.testing.assert_array_equal(idx[:, 0], [1, 0])
    idx1, _, mask1 = neighbours(np.eye(1), 2)  # a single variant: all padding
    assert mask1.sum() == 0 and idx1.tolist() == [[0, 0]]


def test_neighbours_rejects_bad_T():
    with pytest.raises(InputError, match="n_neighbours"):
        neighbours(R4, 0)


def test_residuals_match_loop():
    rng = np.random.default_rng(0)
    z, est = rng.normal(size=4), rng.normal(size=4)
    expected = [z[j] - sum(R4[j, i] * est[i] for i in range(4) if i != j) for j in range(4)]
    got = residuals(torch.tensor(z)[None], torch.tensor(est)[None], torch.tensor(R4))
    np.testing.assert_allclose(got[0].numpy(), expected, atol=1e-12)


def test_iteration_features_are_sign_canonical():
    bf = block_features(R4, 3, dtype=torch.float64)
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(size=(2, 4)) * 3)
    est = torch.tensor(rng.normal(size=(2, 4)))
    scale = torch.zeros(2, 1, dtype=torch.float64)
    x, _, sgn, lead = iteration_features(z, est, bf, scale, 0.5)
    xn, _, sgnn, leadn = iteration_features(-z, -est, bf, scale, 0.5)
    assert x.shape == (2, 4, n_features(3))
    torch.testing.assert_close(x, xn)  # flipping every sign leaves the features unchanged
    torch.testing.assert_close(sgn, -sgnn)
    torch.testing.assert_close(lead, leadn)


def test_lead_variants_are_never_strongly_correlated():
    rng = np.random.default_rng(2)
    bf = block_features(R4, 2, lead_threshold=0.2, dtype=torch.float64)
    z = torch.tensor(rng.normal(size=(50, 4)) * 3)
    _, _, _, lead = iteration_features(z, torch.zeros_like(z), bf, torch.zeros(50, 1, dtype=torch.float64), 0.0)
    for row in lead.numpy():
        on = np.flatnonzero(row)
        assert on.size >= 1  # the variant with the largest |r| always leads
        sub = np.abs(R4[np.ix_(on, on)]) - np.eye(on.size)
        assert (sub < 0.2).all()


@pytest.mark.parametrize(
    ("beta_hat", "se", "R", "match"),
    [
        ([0.1, np.nan], [0.1, 0.1], np.eye(2), "beta_hat has a missing"),
        ([0.1, 0.2], [0.1, 0.0], np.eye(2), "se must be > 0"),
        ([0.1, 0.2], [0.1, -1.0], np.eye(2), "se must be > 0"),
        ([0.1, 0.2], [0.1, 0.1], np.eye(3), "LD matrix R is 3 x 3 but there are 2 variants"),
        ([0.1, 0.2], [0.1, 0.1], [[1.0, 0.3], [0.2, 1.0]], "symmetric"),
        ([0.1, 0.2], [0.1, 0.1], [[2.0, 0.3], [0.3, 1.0]], "unit diagonal"),
        ([0.1, 0.2], [0.1, 0.1], [[1.0, np.nan], [np.nan, 1.0]], "R has a missing"),
        ([0.1, 0.2], [0.1], np.eye(2), "se has shape"),
    ],
)
def test_validate_block_errors(beta_hat, se, R, match):
    with pytest.raises(InputError, match=match):
        validate_block(beta_hat, se, R)


def test_neighbours_match_a_full_sort_with_ties_and_small_blocks():
    # The partial selection against a stable full sort of |r| (ties: lower index first), on
    # random correlation matrices rounded to one decimal (many ties) and every T up to m - 1.
    rng = np.random.default_rng(5)
    for m in (2, 3, 5, 9, 17, 40, 130):
        C = np.round(np.corrcoef(rng.normal(size=(m, 3 * m))), 1)
        A = np.abs(C)
        np.fill_diagonal(A, -1.0)
        full = np.argsort(-A, axis=1, kind="stable")
        for T in sorted({1, 2, 8, m - 1, m, m + 2}):
            idx, corr, mask = neighbours(C, T)
            k = min(T, m - 1)
            np.testing.assert_array_equal(idx[:, :k], full[:, :k])
            np.testing.assert_array_equal(corr[:, :k], np.take_along_axis(C, full[:, :k], axis=1))
            assert mask.sum() == m * k


def test_block_features_share_numpy_views_with_torch():
    bf = block_features(R4, 2)
    nb = bf.numpy_view()
    assert np.shares_memory(nb["R"], bf.R.numpy())
    strong = np.zeros((4, 4))
    strong[nb["strong_rows"], nb["strong_cols"]] = 1.0
    np.testing.assert_array_equal(strong, bf.strong.numpy())
    np.testing.assert_array_equal(strong, (np.abs(R4) >= 0.2) & ~np.eye(4, dtype=bool))
