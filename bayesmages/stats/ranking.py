"""Ranking metrics for recovery of a known truth (simulations, the demo, benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayesmages.errors import InputError

__all__ = ["average_precision"]


def average_precision(labels: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Average precision of ``scores`` for the binary truth ``labels`` (area under the step precision-recall curve).

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first, where
    ``P_n`` and ``R_n`` are the precision and recall of calling every item with a score at least the
    n-th threshold. Tied scores enter together (no optimistic ordering within ties), which is the
    definition scikit-learn's ``average_precision_score`` uses. A random ranking scores about the
    fraction of positives.

    Parameters
    ----------
    labels : array_like of bool
        (n,) truth: True for the items that should rank first.
    scores : array_like of float
        (n,) scores, larger = more likely positive.

    Returns
    -------
    float
        AP in [0, 1]; NaN when there is no positive label.

    Raises
    ------
    InputError
        Lengths differ, empty input, or non-finite scores.

    Examples
    --------
    >>> average_precision([True, False, True, False], [0.9, 0.8, 0.7, 0.1])  # (1/2)(1) + (1/2)(2/3)
    0.8333333333333333
    """
    y = np.asarray(labels, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size != s.size or y.size == 0:
        raise InputError(f"labels and scores: expected two non-empty arrays of one length, got {y.size} and {s.size}")
    if not np.all(np.isfinite(s)):
        raise InputError("scores: all scores must be finite")
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # The last index of each run of equal scores is a threshold: everything up to it is called.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(recall_step * precision))
