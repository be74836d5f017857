"""Binary traits with rare variants: efficient resampling (ER) and saddlepoint (SPA) set tests.

With few carriers or unbalanced case-control ratios the asymptotic SKAT null (a chi-square
mixture) is wrong in the tail. Two remedies, both for SKAT, burden and SKAT-O:

**ER** (Lee, Fuchsberger, Kim and Scott 2016; :mod:`bayesmages.skat.er`): the exact law of the
carriers' phenotypes given the number of cases, enumerated or resampled.

**SPA** (Zhao, Lee et al. 2020; :mod:`bayesmages.skat.spa`): per-variant saddlepoint or exact
p-values turned into adjusted variances of the weighted scores, then the usual SKAT machinery.
Its guarantee stops where variants expect well below one case carrier each (see that module).

This module runs either on a set and picks one by the hybrid rule; it re-exports the public
names of both.

**Hybrid** (``method_bin="hybrid"``): ER when max(minor-allele count, carriers) <= 40 (R's
``SKATBinary`` Hybrid uses ER/ER.A there) or when the carriers expect at most 10 carriers of the
rarer outcome (the sum of mu over the carriers, or of 1 - mu when cases are the majority); SPA
otherwise. The second clause is where SPA's SKAT fails (about 0.3 expected case carriers per
variant, :mod:`bayesmages.skat.spa`); at 1 % cases and n = 5,000 it sends every bench gene to ER (~2.7 expected case
carriers each), at 5 % about a third, at 20 % none.
Tried and not kept: SKAT referred to the convolution of the rare variants' *exact* single-variant
laws (as if independent) plus the adjusted mixture of the others (branch skat-spa, commit
f2330ff). It was exact against the joint ER law of small sets (to 0.4 %, or conservative), but its
type-I error on the same bench genes was no better: 1.44e-3 at alpha 1e-3 at 1 % cases (26 of
18,000 genes, 95 % interval [9.4e-4, 2.1e-3]; this adjusted-covariance SKAT: 1.35e-3 on 40,000)
and 1.8e-3 at 0.5 % (6 of 3,250), so the per-variant tails are not the whole cause.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmages.errors import InputError
from bayesmages.skat.er import ER_EXACT_MAX, _check_binary, er_pvalue
from bayesmages.skat.null import NullModel
from bayesmages.skat.result import RHO_DEFAULT, SKATResult
from bayesmages.skat.score_test import test_scores
from bayesmages.skat.spa import _spa_scores_cached, spa_pvalue, spa_scores

__all__ = ["BIN_METHODS", "ER_EXACT_MAX", "binary_test", "er_pvalue", "expected_minority_carriers", "spa_pvalue",
           "spa_scores"]

BIN_METHODS = ("er", "spa", "hybrid")
_HYBRID_ER_MAC = 40  # hybrid: ER up to this max(MAC, carriers) (R: ER/ER.A up to 40), SPA above
_HYBRID_ER_EXPECTED = 10.0  # hybrid: also ER while the carriers expect at most this many of the rarer outcome


def expected_minority_carriers(G: np.ndarray, null: NullModel, carrier_rows: np.ndarray | None = None) -> float:
    """Expected number of carriers with the rarer outcome under the null: sum of mu (or 1 - mu) over carriers.

    The hybrid rule's measure of how discrete a set's null law is: SPA is miscalibrated when it is
    small (see :mod:`bayesmages.skat.spa`), ER's cost grows with it. ``carrier_rows`` (the rows of G
    with a non-zero genotype, as a boolean mask) saves a pass over G when the caller has it.
    """
    mu = null.fitted[np.any(G != 0, axis=1) if carrier_rows is None else carrier_rows]
    s = float(mu.sum())
    return min(s, float(mu.size) - s)


def binary_test(
    G: np.ndarray,
    w: np.ndarray,
    null: NullModel,
    test: str,
    method_bin: str,
    *,
    method: str = "davies",
    rho_grid: Any = None,
    n_variants: int | None = None,
    skato_quadrature: str = "gk",
    n_resampling: int = 1_000_000,
    seed: int = 0,
) -> SKATResult:
    """SKAT, burden or SKAT-O on QC'd genotypes ``G`` with weights ``w`` by ER, SPA or the hybrid rule.

    ``method_bin="hybrid"`` uses ER when max(minor-allele count, carriers) <= 40 (R SKATBinary's
    Hybrid uses ER/ER.A there) and SPA above. See the module docstring (and :mod:`bayesmages.skat.er`,
    :mod:`bayesmages.skat.spa` for the two methods).
    """
    if method_bin not in BIN_METHODS:
        raise InputError(f"binary_test: method_bin must be one of {list(BIN_METHODS)}, got {method_bin!r} (the "
                         "asymptotic test is bayesmages.skat.test_prepared's method_bin='asymptotic')")
    _check_binary(null, method_bin)
    p = G.shape[1]
    n_variants = p if n_variants is None else n_variants
    mac = float(G.sum())
    carrier_rows = np.any(G != 0, axis=1)
    m = int(carrier_rows.sum())
    expected = None
    if method_bin == "hybrid":
        expected = expected_minority_carriers(G, null, carrier_rows)
        method_bin = "er" if max(mac, m) <= _HYBRID_ER_MAC or expected <= _HYBRID_ER_EXPECTED else "spa"
    if method_bin == "spa":
        Sw, Phi, info = _spa_scores_cached(G, w, null, seed)
        res = test_scores(Sw, Phi, 1.0, test, method, rho_grid=rho_grid, n_variants=n_variants,
                          skato_quadrature=skato_quadrature)
        res.method = f"spa+{res.method}"
        res.extra.update(info)
    else:
        Gw = G * w[None, :]
        pv, info = er_pvalue(Gw, null, test, rho_grid=rho_grid, n_resampling=n_resampling, seed=seed)
        S = Gw.T @ null.residuals
        stat = float(S.sum() ** 2 / 2.0) if test == "burden" else float(S @ S / 2.0)
        res = SKATResult(pv, stat, p, n_variants, test, "er-exact" if info["exact"] else "er-resampling")
        res.extra.update(info)
        res.extra["p_value_standard"] = info["p_standard"]
        if test == "skat-o":
            grid = np.asarray(RHO_DEFAULT if rho_grid is None else rho_grid, dtype=np.float64)
            res.rho_grid = grid
    res.extra.update(mac=mac, m=m)
    if expected is not None:
        res.extra["expected_minority_carriers"] = expected
    return res
