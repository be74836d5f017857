"""``bayesmages demo``: a short end-to-end run on simulated data."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bayesmages.cli._common import add_common, run_metadata


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` sub-command."""
    p = sub.add_parser(
        "demo",
        help="run a short end-to-end demo on simulated data",
        description="Simulate data with a known truth, fit bayesmages models and report what was recovered.",
    )
    p.add_argument("--out", type=Path, default=Path("bayesmages-demo"),
                   help="output folder (default ./bayesmages-demo)")
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Fit Bayesian linear regression to simulated data; write the summary and run.json."""
    import numpy as np

    from bayesmages.io import atomic_dir, write_json, write_table
    from bayesmages.registry import get_model

    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    n, truth = 500, np.array([0.8, -0.5, 0.0])
    X = rng.normal(size=(n, truth.size))
    y = 1.0 + X @ truth + rng.normal(scale=0.7, size=n)
    model = get_model("glm_gaussian").fit((X, y), seed=args.seed, progress=not args.quiet)
    summary = model.summary()
    with atomic_dir(args.out) as tmp:
        write_table(summary, tmp / "glm_gaussian_summary.csv", index=True)
        fig = model.plot_elbo(skip=50)
        (tmp / "figures").mkdir()
        fig.savefig(tmp / "figures" / "elbo.png", dpi=100)
        write_json(run_metadata(args, started, truth={"intercept": 1.0, "coef": truth.tolist(), "scale": 0.7}),
                   tmp / "run.json")
    print("glm_gaussian posterior (truth: intercept 1.0, coef [0.8, -0.5, 0.0], scale 0.7)")
    print(summary.round(3).to_string())
    print(f"results written to {args.out.resolve()}")
    return 0
