"""Slow statistical checks of the shipped shrinker (run with -m slow)."""

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import bayesmages as bm
from bayesmages.shrink.train import TrainConfig, evaluate, simulate_training_data

pytestmark = pytest.mark.slow


def _shipped_config() -> TrainConfig:
    path = Path(str(resources.files("bayesmages.shrink") / "pretrained" / "config.json"))
    return TrainConfig.from_dict(json.loads(path.read_text()))


def test_shipped_model_is_calibrated_on_held_out_simulations():
    # Fresh msprime LD and effects from the training distribution, with a seed the training and
    # validation never used: 90% intervals should cover 85-95% of true effects (6 blocks x 16
    # replicates x ~400 variants; the band is the project's goal, wider than Monte Carlo error).
    cfg = _shipped_config()
    cfg.replicates = 16
    blocks = simulate_training_data(cfg, 6, seed=31_337)
    model = bm.shrink.load_default()
    coverage = model._coverage(blocks)
    assert 0.85 <= coverage <= 0.95
    metrics = evaluate(model._predict_z, blocks)
    assert metrics["mse"] < metrics["mse_zero"] < metrics["mse_raw"]


def test_shipped_model_beats_enet_on_real_ld(real_ld_path):
    from bayesmages.io import read_ld
    from bayesmages.simulate.effects import simulate_effects
    from bayesmages.simulate.rss import RSSSampler

    R = read_ld(real_ld_path).R
    sampler = RSSSampler(R)
    rng = np.random.default_rng(8)
    err = {"nn": [], "enet": []}
    for _ in range(10):
        beta = simulate_effects(np.full(R.shape[0], 0.25), p_causal=0.01, h2=rng.uniform(0.005, 0.01), R=R,
                                seed=int(rng.integers(2**31)))
        b, s = sampler.sample(beta, 300_000, seed=int(rng.integers(2**31)))
        for method in err:
            out = bm.shrink.shrink(b, s, R, method=method)
            err[method].append(np.mean((out["beta_shrunk"].to_numpy() - beta) ** 2))
    # Goal: RMSE <= 0.4 x the elastic net's (bench/shrink.py measures it on 50 replicates).
    assert np.sqrt(np.mean(err["nn"])) <= 0.5 * np.sqrt(np.mean(err["enet"]))
