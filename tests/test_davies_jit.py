"""The compiled Davies (bayesmages.stats._davies_jit, numba) against the Python implementation.

The compiled path replaces the Python one wherever numba imports, so the two must give the same
numbers: the same p-values to the last bit and the same fault codes, on random weight sets of
several shapes (negative weights included), quantiles in the bulk, the tails, beyond the cut-offs,
at 0 and below, accuracies from 1e-2 to 1e-15 and term limits small enough to raise faults 1 and 4
(and 2 at acc 1e-15). Bit-identical is the tolerance: both run the same operations in the same order
with the same C library and numpy functions (see the module docstring).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import bayesmages as bm
from bayesmages.stats import _davies_jit  # numba is a dependency: this import must work
from bayesmages.stats.davies import davies_many

DV = sys.modules["bayesmages.stats.davies"]  # the package re-exports a function of that name


def _both(monkeypatch, q, lam, acc, lim):
    """(compiled, Python) results of davies_many for the same input."""
    monkeypatch.setattr(DV, "_COMPILED", None)  # resolved again: the compiled module
    compiled = davies_many(q, lam, acc, lim)
    assert DV._COMPILED is _davies_jit
    monkeypatch.setattr(DV, "_COMPILED", False)  # as where numba cannot be imported
    python = davies_many(q, lam, acc, lim)
    return compiled, python


def _case(rng, t):
    m = int(rng.integers(1, 40))
    lam = [rng.gamma(0.5, size=m), np.r_[rng.uniform(5, 50), rng.uniform(0, 0.1, m - 1)],
           rng.uniform(0.5, 1.5, m), np.exp(rng.normal(0, 3, m)), rng.normal(size=m),
           np.r_[rng.gamma(1.0, size=m), np.zeros(3)]][t % 6]
    mu, sd = lam.sum(), math.sqrt(2 * np.sum(lam**2))
    q = np.r_[mu + sd * rng.normal(0, 3, 30), 0.0, -1.0, mu, mu + 40 * sd, 1e-3 * abs(mu)]
    acc, lim = [1e-6, 1e-9, 1e-3, 1e-6, 1e-2][t % 5], [10_000, 10_000, 20, 50, 200, 1000, 100][t % 7]
    return q, lam, acc, lim


def test_compiled_davies_is_bit_identical_to_python(monkeypatch):
    rng = np.random.default_rng(2516)
    faults = set()
    for t in range(240):  # 8,400 quantiles
        q, lam, acc, lim = _case(rng, t)
        (p1, f1), (p0, f0) = _both(monkeypatch, q, lam, acc, lim)
        np.testing.assert_array_equal(p1, p0, err_msg=f"case {t}")
        np.testing.assert_array_equal(f1, f0, err_msg=f"case {t}")
        faults.update(f0.tolist())
    assert {0, 1, 4} <= faults  # the fault paths were exercised


def test_compiled_davies_round_off_fault_and_long_integrations(monkeypatch):
    """acc 1e-15 with a large term limit: fault 2 (round-off) and integrations longer than one
    vectorised batch (20,000 terms), so the chunking and numpy's blocked pairwise sums are used."""
    rng = np.random.default_rng(7)
    faults = set()
    for _ in range(12):
        m = int(rng.integers(1, 30))
        lam = np.exp(rng.normal(0, 3, m))
        q = lam.sum() + math.sqrt(2 * np.sum(lam**2)) * rng.normal(0, 2, 8)
        (p1, f1), (p0, f0) = _both(monkeypatch, q, lam, 1e-15, 100_000)
        np.testing.assert_array_equal(p1, p0)
        np.testing.assert_array_equal(f1, f0)
        faults.update(f0.tolist())
    assert 2 in faults


def test_compiled_davies_memo_does_not_change_results(monkeypatch):
    """The compiled memo persists per weight vector across calls: a quantile gives the same result
    whatever was computed before it, alone or in company."""
    rng = np.random.default_rng(11)
    lam = np.sort(rng.gamma(0.5, size=25))[::-1]
    q = lam.sum() + math.sqrt(2 * np.sum(lam**2)) * rng.normal(0, 2, 60)
    monkeypatch.setattr(DV, "_COMPILED", None)
    DV._MEMO.clear()
    together = davies_many(q, lam, 1e-6, 10_000)
    DV._MEMO.clear()
    alone = [davies_many(q[i:i + 1], lam, 1e-6, 10_000) for i in range(q.size)[::-1]][::-1]
    np.testing.assert_array_equal(np.concatenate([a[0] for a in alone]), together[0])
    np.testing.assert_array_equal(np.concatenate([a[1] for a in alone]), together[1])


def test_compiled_davies_hands_over_to_python_where_it_would_raise(monkeypatch):
    """Where the compiled code meets what the interpreter would raise on (or leave its fast loop
    for), the call is run by the Python implementation: the result is the Python one."""
    lam, q = np.array([2.0, 1.0, 0.5]), np.array([1.0, 4.0, 9.0])

    def refuse(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(DV, "_COMPILED", False)
    expected = davies_many(q, lam, 1e-6, 10_000)
    monkeypatch.setattr(DV, "_COMPILED", None)
    DV._compiled()
    monkeypatch.setattr(_davies_jit, "davies_many_compiled", refuse)
    got = davies_many(q, lam, 1e-6, 10_000)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("n", [*range(1, 40), 127, 128, 129, 136, 255, 256, 257, 1000, 4097, 20_001])
def test_pairwise_sum_adds_in_numpys_order(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n + 5) * np.exp(rng.normal(0, 8, n + 5))  # wide magnitudes: order matters
    assert _davies_jit._pairwise_sum(a, 3, n) == a[3:3 + n].sum()


def test_compat_r_skato_identical_with_and_without_compiled_davies(monkeypatch):
    """End to end: compat="R" SKAT-O (R's QAGS over ~1,000 Davies points per gene) gives the same
    p-values to the last bit with the compiled Davies and with the Python one."""
    rng = np.random.default_rng(5)
    n = 1500
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    y = X @ [0.3, 0.2] + rng.normal(size=n)
    null = bm.skat.fit_null(y, X)
    genes = [rng.binomial(2, rng.uniform(0.005, 0.05, 15), size=(n, 15)).astype(float) for _ in range(3)]
    y2 = y + 0.3 * genes[2][:, :3].sum(axis=1)  # one gene with signal: p ~ 4e-4
    null2 = bm.skat.fit_null(y2, X)
    out = {}
    for mode in (None, False):
        monkeypatch.setattr(DV, "_COMPILED", mode)
        DV._MEMO.clear()
        out[mode] = [bm.skat.test(G, nm, test="skat-o", compat="R").p_value
                     for G, nm in ((genes[0], null), (genes[1], null), (genes[2], null2))]
    assert out[None] == out[False]
    assert min(out[None]) < 1e-3
