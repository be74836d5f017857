"""``bayesmages train-shrinker``: train the neural shrinker on msprime/RSS simulations."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bayesmages.cli._common import add_common, add_out, output_dir, run_metadata
from bayesmages.errors import InputError

if TYPE_CHECKING:
    from bayesmages.shrink.train import TrainConfig


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train-shrinker`` sub-command."""
    p = sub.add_parser(
        "train-shrinker",
        help="train the neural shrinker on simulated data",
        description="Simulate msprime LD blocks and RSS summary statistics, train the unrolled neural shrinker, "
        "calibrate its intervals on held-out LD, and write model.pt, config.json, metrics.json and run.json.",
    )
    add_out(p, "output folder (new, or one bayesmages wrote; see --overwrite)")
    p.add_argument("--config", type=Path, default=None,
                   help="JSON training configuration (keys of bayesmages.shrink.train.TrainConfig)")
    add_common(p, seed=False)
    p.set_defaults(func=run)
    return p


def load_config(path: Path | None) -> TrainConfig:
    """Read a training config file (None -> defaults)."""
    from bayesmages.shrink.train import TrainConfig

    if path is None:
        return TrainConfig()
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: the config must be a JSON object")
    return TrainConfig.from_dict(raw)


def run(args: argparse.Namespace) -> int:
    """Simulate, train, calibrate and write the model folder."""
    import torch

    from bayesmages.io import write_json
    from bayesmages.registry import get_model
    from bayesmages.shrink.train import simulate_training_data

    started = time.perf_counter()
    out = output_dir(args)
    cfg = load_config(args.config)
    progress = not args.quiet
    torch.set_num_threads(1)  # the training run is sized for one core; results do not depend on it
    train = simulate_training_data(cfg, cfg.n_train_blocks, seed=cfg.seed, progress=progress, desc="training LD")
    # Validation LD comes from another seed stream: other msprime genealogies than training.
    val = simulate_training_data(cfg, cfg.n_val_blocks, seed=cfg.seed + 1_000_003, progress=progress,
                                 desc="validation LD")
    sim_seconds = time.perf_counter() - started
    model = get_model(
        "neural_shrinker", mode=cfg.mode, architecture=cfg.architecture, widths=cfg.widths, dropout=cfg.dropout,
        norm=cfg.norm, n_neighbours=cfg.n_neighbours, n_iter=cfg.n_iter, lead_threshold=cfg.lead_threshold,
        n_members=cfg.n_members,
    )
    model.fit((train, val), seed=cfg.seed, progress=progress, config=cfg)
    metrics = {
        "validation": model.validation_,
        "sd_scale": model.sd_scale_,
        "history": model.history_,
        "simulation_seconds": sim_seconds,
        "training_seconds": time.perf_counter() - started - sim_seconds,
        "n_parameters": sum(p.numel() for p in model.members_[0].parameters()) * len(model.members_),
    }
    with out.build() as tmp:
        model.save(tmp / "model.pt")
        write_json(cfg.to_dict(), tmp / "config.json")
        write_json(metrics, tmp / "metrics.json")
        write_json(run_metadata(args, started), tmp / "run.json")
    v = model.validation_
    print(f"validation (z scale): MSE {v['mse']:.4g} (raw {v['mse_raw']:.4g}, zero {v['mse_zero']:.4g}), "
          f"90% coverage {v['coverage90']:.3f}; written to {args.out}")
    return 0
