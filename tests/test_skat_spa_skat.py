"""SPA SKAT for binary traits with the exact laws of rare variants (``binary.spa_skat``) and its lattice tail.

References: brute-force enumeration of small discrete laws, closed-form chi-square tails, and the
exact joint efficient-resampling law (``er_pvalue``, enumeration) on small sets.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

import bayesmages as bm
from bayesmages.skat import binary
from bayesmages.skat.lattice import lattice_mixture_tail


def test_lattice_tail_of_discrete_parts_is_the_enumerated_tail():
    """Three independent discrete variables: the grid law's tail against direct enumeration of all
    27 combinations, at every attainable q. Atoms of these laws sit on multiples of 0.5 and q is one
    of their sums, so the upward rounding moves nothing onto the wrong side: equality to 1e-12."""
    values = [np.array([0.0, 1.0, 4.0]), np.array([0.0, 0.5, 2.5]), np.array([0.0, 3.0, 9.0])]
    probs = [np.array([0.6, 0.3, 0.1]), np.array([0.5, 0.45, 0.05]), np.array([0.9, 0.09, 0.01])]
    combos = [(sum(v), float(np.prod(p))) for v, p in
              (zip(*c, strict=True) for c in itertools.product(*[list(zip(v, p, strict=True))
                                                                  for v, p in zip(values, probs, strict=True)]))]
    for q in sorted({s for s, _ in combos if s > 0}):
        exact = sum(p for s, p in combos if s >= q - 1e-12)
        assert lattice_mixture_tail(q, values, probs) == pytest.approx(exact, rel=1e-12)


def test_lattice_tail_with_a_mixture_part():
    """Discrete part plus a chi-square mixture: the sum over atoms of the mixture's exact tail.
    Upward rounding makes the result conservative by at most one grid cell per variable
    (q / 4096): checked to be >= the exact value and within 1e-3 relative of it. Without atoms the
    mixture's own tail is returned (chi-square(2) closed form, 1e-8)."""
    lam = np.array([1.0, 1.0])
    assert lattice_mixture_tail(7.0, [], [], lam) == pytest.approx(np.exp(-3.5), rel=1e-8)
    v, p = np.array([0.0, 1.3, 5.1]), np.array([0.7, 0.2, 0.1])
    for q in (2.0, 8.0, 20.0):
        exact = sum(pi * (stats.chi2.sf(q - vi, 2) if q > vi else 1.0) for vi, pi in zip(v, p, strict=True))
        got = lattice_mixture_tail(q, [v], [p], lam)
        assert exact * (1 - 1e-12) <= got <= exact * (1 + 1e-3)


@pytest.fixture(scope="module")
def null_5pct():
    rng = np.random.default_rng(3)
    n = 2000
    x = rng.normal(size=(n, 1))
    y = (rng.random(n) < 1 / (1 + np.exp(-(-3.1 + 0.5 * x[:, 0])))).astype(float)
    return bm.skat.fit_null(y, x, trait="binary", adjustment=False), y, rng


@pytest.mark.parametrize("case_carriers", [(1, 1, 1), (2, 2, 2), (3, 2, 1), (0, 3, 2)])
def test_spa_skat_against_the_exact_joint_er_law(null_5pct, case_carriers):
    """Three rare variants with disjoint carriers (4, 6, 8), a chosen number of them cases: spa_skat
    convolves the exact single-variant laws as if independent; the exact joint law given the total
    number of cases (er_pvalue's enumeration, its ordinary p) couples them slightly. Measured
    ratios 1.000-1.28 (p = 0.07 to 8e-4), never below: treating the variants as independent
    gives a heavier tail than the joint law with a fixed total (conservative). Asserted: ratio
    within [1 - 1e-3, 1.35] (1e-3: the grid rounding's size)."""
    null, y, rng = null_5pct
    n = y.size
    cases, controls = rng.permutation(np.flatnonzero(y == 1)), rng.permutation(np.flatnonzero(y == 0))
    G = np.zeros((n, 3))
    a = b = 0
    for j, (size, k) in enumerate(zip((4, 6, 8), case_carriers, strict=True)):
        G[cases[a:a + k], j] = 1
        G[controls[b:b + size - k], j] = 1
        a, b = a + k, b + size - k
    w = np.array([1.0, 2.0, 0.5])
    p, stat, info = binary.spa_skat(G, w, null)
    assert info["n_exact_law"] == 3
    assert stat == pytest.approx(float(((w * (G.T @ null.residuals)) ** 2).sum()) / 2.0, rel=1e-9)
    ref = binary.er_pvalue(G * w, null, "skat")[1]["p_standard"]
    assert 1 - 1e-3 <= p / ref <= 1.35


def test_spa_skat_of_one_variant_is_its_exact_tail(null_5pct):
    """One hard-called rare variant: SKAT is that variant's exact two-sided ordinary p-value."""
    null, y, _ = null_5pct
    g = np.zeros((y.size, 1))
    g[np.flatnonzero(y == 1)[:3], 0] = 1
    g[np.flatnonzero(y == 0)[:9], 0] = 1
    res = bm.skat.test_prepared(g, np.ones(1), null, "skat", method_bin="spa")
    assert res.method == "spa+exact-laws"
    assert res.p_value == pytest.approx(binary._single_variant_er(g[:, 0], null, mid=False), rel=1e-9)


def test_spa_skat_keeps_common_and_correlated_variants_in_the_mixture(null_5pct):
    """Variants at >= 200 minor alleles, and a rare variant whose score correlates with an earlier
    rare one beyond 0.1 (here the same carriers), are tested through the saddlepoint mixture; with no
    rare variant left, the p-value is the mixture's tail of the spa_scores covariance (1e-9)."""
    null, y, rng = null_5pct
    n = y.size
    common = rng.binomial(2, 0.1, size=(n, 2)).astype(float)
    rare = np.zeros((n, 1))
    rare[rng.choice(n, 10, replace=False), 0] = 1
    G = np.column_stack([rare, rare, common])
    w = np.array([3.0, 2.0, 1.0, 1.0])
    _, _, info = binary.spa_skat(G, w, null)
    assert info["n_exact_law"] == 1
    p, _, info = binary.spa_skat(common, w[2:], null)
    assert info["n_exact_law"] == 0
    Sw, Phi, _ = binary.spa_scores(common, w[2:], null)
    ref = bm.stats.quadform.pvalue(float(Sw @ Sw), np.linalg.eigvalsh(Phi))
    assert p == pytest.approx(ref, rel=1e-9)
