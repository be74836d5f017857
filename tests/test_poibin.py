"""The Poisson-binomial pmf (bayesmages.stats.poibin) against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesmages.stats import poibin


def test_direct_recursion_matches_enumeration():
    """All 2^12 outcomes enumerated: the reference shares nothing with the recursion. Round-off only (1e-14)."""
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, size=12)
    Y = (np.arange(2**12)[:, None] >> np.arange(12)) & 1
    prob = np.prod(np.where(Y == 1, p, 1 - p), axis=1)
    ref = np.bincount(Y.sum(1), weights=prob, minlength=13)
    np.testing.assert_allclose(poibin.pmf_direct(p), ref, rtol=1e-12, atol=1e-14)
    trunc = poibin.pmf_direct(p, k_max=4)
    np.testing.assert_allclose(trunc[:5], ref[:5], rtol=1e-12)
    assert np.all(trunc[5:] == 0)


@pytest.mark.parametrize(("n", "lo", "hi", "k_max"), [(150, 0.001, 0.05, 120), (3000, 0.0, 1.0, None),
                                                      (10_000, 0.05, 0.4, 2300), (40, 0.3, 0.7, 5)])
def test_compiled_recursion_equals_the_interpreters(monkeypatch, n, lo, hi, k_max):
    """The compiled kernels do the interpreter's operations in its order, so every entry they keep equals the
    interpreter's to the last bit; it flushes intermediate subnormals to 0, which can only move entries within
    n * 2.2e-308 of 0 (the 3,000 x U(0, 1) case reaches 1e-308 in both tails)."""
    p = np.random.default_rng(n).uniform(lo, hi, size=n)
    assert poibin._compiled() is not None  # numba is a dependency: the default path is the compiled one
    compiled = poibin.pmf_direct(p, k_max)
    leaves = poibin._leaves(p)  # the FFT's leaves: the same recursion, block by block
    monkeypatch.setattr(poibin, "_COMPILED", False)  # the interpreter's loops
    python = poibin.pmf_direct(p, k_max)
    python_leaves = poibin._leaves(p)
    big_leaves = python_leaves > 64 * 1e-293
    np.testing.assert_array_equal(leaves[big_leaves], python_leaves[big_leaves])
    assert np.all(np.abs(leaves[~big_leaves] - python_leaves[~big_leaves]) <= 64 * 1e-293)
    big = python > n * 1e-293
    assert big.sum() > min(n, k_max or n) // 4  # the comparison covers the bulk, not only tails
    np.testing.assert_array_equal(compiled[big], python[big])
    assert np.all(np.abs(compiled[~big] - python[~big]) <= n * 1e-293)


@pytest.mark.parametrize(("n", "prob"), [(1000, 0.01), (5001, 0.3), (20_000, 0.001)])
def test_fft_matches_the_binomial_closed_form(n, prob):
    """Equal probabilities: scipy's binomial pmf (its own algorithm). The FFT's error is absolute: 1e-14
    on every entry (the module docstring's bound; measured <= 4.3e-15 here, of which scipy's own value
    and the direct recursion differ by up to 3.5e-15); relative 1e-9 on entries above 1e-6."""
    got = poibin.pmf_fft(np.full(n, prob))
    ref = stats.binom.pmf(np.arange(n + 1), n, prob)
    assert np.max(np.abs(got - ref)) <= 1e-14
    big = ref > 1e-6
    np.testing.assert_allclose(got[big], ref[big], rtol=1e-9)


@pytest.mark.parametrize("k_max", [None, 0, 30, 700])
def test_fft_matches_the_direct_recursion_with_truncation(k_max):
    """Unequal probabilities (a skewed Beta, like fitted case probabilities), odd n (padding of the last
    merge) and truncation at k_max: against the direct recursion, 1e-15 absolute per entry."""
    rng = np.random.default_rng(3)
    p = rng.beta(0.5, 15, size=3001)
    got, ref = poibin.pmf_fft(p, k_max), poibin.pmf_direct(p, k_max)
    assert got.shape == ref.shape == (3002,)
    assert np.max(np.abs(got - ref)) <= 1e-15
    if k_max is not None:
        assert np.all(got[k_max + 1:] == 0)


def test_pmf_switches_to_fft_only_beyond_the_work_threshold(monkeypatch):
    """pmf() is the direct recursion up to FFT_MIN_WORK and the FFT beyond (same values to 1e-15)."""
    p = np.random.default_rng(4).uniform(0, 0.05, size=2000)
    calls: list[str] = []
    monkeypatch.setattr(poibin, "pmf_fft", lambda q, k=None: calls.append("fft") or poibin.pmf_direct(q, k))
    poibin.pmf(p)
    assert calls == []
    monkeypatch.setattr(poibin, "FFT_MIN_WORK", 100)
    poibin.pmf(p)
    assert calls == ["fft"]
