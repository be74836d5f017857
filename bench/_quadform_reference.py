"""High-precision Imhof (mpmath) reference values for the quadratic-form accuracy table.

Separate from bench/genes.py because it is slow (seconds to minutes per point); the results
are cached in bench/results/genes.reference.json and recomputed only when missing.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np


def imhof_mp(q: float, lam: np.ndarray, dps: int = 45) -> float:
    """P(sum lam_k chi2_1 > q) by Imhof's formula evaluated with ``dps`` significant digits.

    p = 1/2 + (1/pi) int_0^inf sin(theta(u)) / (u rho(u)) du. In the far tail the integral
    cancels 1/2 to ~30 digits, hence the high precision. The oscillatory integrand (asymptotic
    angular frequency q/2) is integrated by ``mp.quadosc`` (integration between zeros plus series
    acceleration). Cost: 10 s to a few minutes per point, growing with the number of weights.
    """
    with mp.workdps(dps):
        L = [mp.mpf(float(x)) for x in lam]
        Q = mp.mpf(float(q))

        def f(u):
            if u == 0:
                return (sum(L) - Q) / 2
            th = sum(mp.atan(x * u) for x in L) / 2 - Q * u / 2
            log_rho = sum(mp.log1p((x * u) ** 2) for x in L) / 4
            return mp.sin(th) * mp.exp(-log_rho) / u

        val = mp.quadosc(f, [0, mp.inf], omega=Q / 2)
        return float(mp.mpf(1) / 2 + val / mp.pi)


def hypoexponential_mp(q: float, lam: np.ndarray, dps: int = 60) -> float:
    """Exact P(sum_k lam_k chi2_2 > q) for distinct lam_k (each weight with multiplicity 2).

    A sum of independent exponentials with means 2 lam_k has survival
    sum_k prod_{j != k} lam_k / (lam_k - lam_j) exp(-q / (2 lam_k)); the alternating sum is
    evaluated with ``dps`` digits so that the cancellation is harmless.
    """
    with mp.workdps(dps):
        L = [mp.mpf(float(x)) for x in lam]
        tot = mp.mpf(0)
        for k, lk in enumerate(L):
            pr = mp.mpf(1)
            for j, lj in enumerate(L):
                if j != k:
                    pr *= lk / (lk - lj)
            tot += pr * mp.exp(-mp.mpf(float(q)) / (2 * lk))
        return float(tot)
