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


def test_shipped_interval_covers_causal_effects_on_held_out_simulations():
    # The table's interval (hull of the LD-conditional and the marginal interval) on fresh msprime blocks
    # from the training distribution (seed unused by training, validation and bench/shrink_calibration.py).
    # On 48 such blocks it covered 0.991 of all and 0.885 of the causal variants, the previous rule
    # (conditional alone) 0.936 / 0.707 (bench/results/shrink_calibration.md); with this seed 0.996 / 0.896 and
    # 0.955 / 0.667 (634 causal variant replicates). Claims, with room for the block-to-block spread of 6
    # blocks (binomial sd alone ~0.012): all >= 0.90, causal >= 0.80 and at least 0.05 above the conditional
    # interval's on the same fits.
    from bayesmages.shrink.intervals import conditional_interval

    cfg = _shipped_config()
    cfg.replicates = 16
    blocks = simulate_training_data(cfg, 6, seed=31_337)
    model = bm.shrink.load_default()
    hits, hits_cond, causal = [], [], []
    for blk in blocks:
        z, zeta, R = blk.z.double().numpy(), blk.zeta.double().numpy(), blk.bf.R.double().numpy()
        ones = np.ones_like(z)
        mean, sd, lo, hi = model.predict_interval(z, ones, R)  # se = 1: the z scale
        lo_c, hi_c = conditional_interval(z, R, mean, sd**2)
        hits.append(((lo <= zeta) & (zeta <= hi)).ravel())
        hits_cond.append(((lo_c <= zeta) & (zeta <= hi_c)).ravel())
        causal.append((zeta != 0).ravel())
    h, hc, c = np.concatenate(hits), np.concatenate(hits_cond), np.concatenate(causal)
    assert h.mean() >= 0.90
    assert h[c].mean() >= 0.80
    assert h[c].mean() >= hc[c].mean() + 0.05


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
