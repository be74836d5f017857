import numpy as np
import pytest

from bayesmages.errors import InputError
from bayesmages.stats import average_precision


def test_hand_computed_values():
    # Positives at ranks 1 and 3: AP = (1/2)(1/1) + (1/2)(2/3).
    assert average_precision([1, 0, 1, 0], [4.0, 3.0, 2.0, 1.0]) == pytest.approx(5 / 6, abs=1e-15)
    # A perfect ranking scores 1, the reversed one the mean of i / (n - k + i).
    assert average_precision([1, 1, 0, 0], [4.0, 3.0, 2.0, 1.0]) == 1.0
    assert average_precision([0, 0, 1, 1], [4.0, 3.0, 2.0, 1.0]) == pytest.approx((1 / 3 + 2 / 4) / 2, abs=1e-15)


def test_ties_enter_together():
    # All scores tied: one threshold, precision = prevalence, whatever the order of the input.
    assert average_precision([1, 0, 0, 0], np.zeros(4)) == pytest.approx(0.25, abs=1e-15)
    assert average_precision([0, 0, 0, 1], np.zeros(4)) == pytest.approx(0.25, abs=1e-15)


def test_no_positive_is_nan_and_bad_input_raises():
    assert np.isnan(average_precision([0, 0], [1.0, 2.0]))
    with pytest.raises(InputError, match="one length"):
        average_precision([1, 0], [1.0])
    with pytest.raises(InputError, match="finite"):
        average_precision([1, 0], [1.0, np.nan])


def test_matches_scikit_learn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    for _ in range(50):
        n = int(rng.integers(2, 60))
        y = rng.random(n) < 0.3
        y[0] = True
        s = rng.integers(0, 4, n).astype(float) if rng.random() < 0.5 else rng.normal(size=n)
        # Both sum the same few terms; only round-off can differ.
        assert average_precision(y, s) == pytest.approx(metrics.average_precision_score(y, s), abs=1e-12)
