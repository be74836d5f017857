"""Write susier_rss_reference.npz: an msprime block, 3 RSS replicates and R susieR's susie_rss on them.

susieR 0.12.35: ``susie_rss(bhat, shat, R, n, var_y = 1, L = 10)``; needs Rscript with susieR (see
bench/_susie_r.py). Run from the repository root: ``python tests/data/make_susier_rss_reference.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from _susie_r import run_susie_rss  # noqa: E402

from bayesmages.simulate.genotypes import simulate_ld_blocks  # noqa: E402
from bayesmages.simulate.rss import RSSSampler  # noqa: E402


def main() -> None:
    R = simulate_ld_blocks(1, 120, n_samples=1500, seed=2027)[0]
    m = R.shape[0]
    rng = np.random.default_rng(7)
    beta = np.zeros(m)
    beta[rng.choice(m, 3, replace=False)] = [0.012, -0.009, 0.007]
    n = 100_000
    B, S = RSSSampler(R).sample(beta, n, seed=11, n_replicates=3)
    out = run_susie_rss(R, B, S, n, 10)
    np.savez_compressed(REPO / "tests" / "data" / "susier_rss_reference.npz", R=R, beta_hat=B, se=S, n=n, beta=beta,
                        pip=out["pip"], coef=out["coef"])


if __name__ == "__main__":
    main()
