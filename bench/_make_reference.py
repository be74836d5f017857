"""Compute (or extend) the cached mpmath references used by bench/genes.py.

Run: python bench/_make_reference.py [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _quadform_reference import hypoexponential_mp, imhof_mp
from scipy import optimize

from bayesmages.stats.quadform import pvalue

CACHE = Path(__file__).parent / "results" / "genes.reference.json"
TARGETS = (0.5, 1e-2, 1e-4, 1e-7, 1e-10, 1e-14, 1e-20, 1e-25, 1e-30)


def ld_like(m: int, seed: int = 0) -> np.ndarray:
    """Eigenvalues of an AR(1)-like correlation with a random decay (LD-like spectrum)."""
    rng = np.random.default_rng(seed)
    rho = rng.uniform(0.6, 0.95)
    idx = np.arange(m)
    r = rho ** np.abs(idx[:, None] - idx[None, :])
    return np.sort(np.linalg.eigvalsh(r))[::-1] * 1e-4  # epsilon * R_g scale of gene tests


def spectra() -> dict[str, tuple[str, np.ndarray]]:
    """name -> (reference kind, weights). 'imhof' = mpmath Imhof; 'hypo' = exact, weights doubled."""
    return {
        "one weight (m=1)": ("imhof", np.array([2.5])),
        "dominant (m=5)": ("imhof", np.array([10.0, 0.3, 0.2, 0.15, 0.1])),
        "flat (m=6)": ("imhof", np.ones(6)),
        "geometric (m=10)": ("imhof", 0.6 ** np.arange(10)),
        "LD-like (m=8)": ("imhof", ld_like(8, 1)),
        "dominant (m=2x10)": ("hypo", np.r_[20.0, np.linspace(0.1, 0.3, 9)]),
        "geometric (m=2x30)": ("hypo", 0.8 ** np.arange(30)),
        "LD-like (m=2x50)": ("hypo", ld_like(50, 2) + 1e-9 * np.arange(50)),
        "LD-like (m=2x100)": ("hypo", ld_like(100, 3) + 1e-9 * np.arange(100)),
    }


def weights_of(kind: str, lam: np.ndarray) -> np.ndarray:
    return np.repeat(lam, 2) if kind == "hypo" else lam


def quantile_for(p: float, lam: np.ndarray) -> float:
    """q with pvalue(q) ~ p (only to place the evaluation points)."""
    f = lambda x: np.log(float(pvalue(x, lam))) - np.log(p)  # noqa: E731
    hi = lam.sum() + 1.0
    while f(hi) > 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0 if p > 0.4 else 1e-12, hi, xtol=1e-12 * hi))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=3600.0)
    ap.add_argument("--only", nargs="*", default=None, help="spectrum name prefixes to compute")
    ap.add_argument("--targets", nargs="*", type=float, default=None, help="subset of target p-values")
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args()
    cache_path = args.cache
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    targets = args.targets or TARGETS
    start = time.time()
    # hypoexponential first (fast), then Imhof points ordered so each spectrum gets coverage early
    items = sorted(spectra().items(), key=lambda kv: kv[1][0] != "hypo")
    for name, (kind, lam) in items:
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        w = weights_of(kind, lam)
        for p in targets:
            key = f"{name}|{p:g}"
            if key in cache:
                continue
            if time.time() - start > args.budget:
                break
            q = quantile_for(p, w)
            t0 = time.time()
            ref = hypoexponential_mp(q, lam) if kind == "hypo" else imhof_mp(q, lam)
            cache[key] = {"spectrum": name, "kind": kind, "weights": w.tolist(), "q": q, "p_ref": ref,
                          "seconds": time.time() - t0}
            cache_path.parent.mkdir(exist_ok=True)
            tmp = cache_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache, indent=1))
            tmp.replace(cache_path)
            print(key, ref, f"{time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
