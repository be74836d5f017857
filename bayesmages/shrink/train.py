"""Training data and training loops of the neural shrinker.

Training data (:func:`simulate_training_data`) come from :mod:`bayesmages.simulate`: msprime
LD blocks of varied size and demography, sparse effects with varied ``p_causal``, ``h2``,
``s``, ``w``, and RSS summary statistics with varied ``n``. They are generated once and kept in
memory (z scale, float32). Validation uses other msprime LD blocks.

Point training (:func:`train_point`) minimises the deep-supervised MSE of the unrolled
estimates (later iterations weigh more) plus the Gaussian negative log-likelihood of the sd
head (with the mean detached, so the sd never distorts the point estimate), with Adam, early
stopping on the validation MSE evaluated in eval mode, keeping the best weights.
Bayesian training (:func:`train_bayesian`) puts priors on the weights and fits a mean-field
guide by SVI (through :func:`bayesmages.infer.run_svi`), initialised at the point fit.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bayesmages._threads import torch_threads
from bayesmages.errors import InputError
from bayesmages.infer import progress_enabled, seeded, spawn_seeds
from bayesmages.shrink.features import BlockFeatures, block_features
from bayesmages.shrink.net import UnrolledShrinker

__all__ = [
    "SimBlock",
    "TrainConfig",
    "calibrate_sd",
    "evaluate",
    "one_thread",
    "simulate_training_data",
    "train_point",
]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run a block with one torch thread, restoring the caller's setting.

    The shrinker's tensors are small (m x 64); thread hand-offs cost more than they save, and on
    a shared machine an oversubscribed thread pool makes backward passes many times slower.
    """
    with torch_threads(1):  # restored safely when several threads train or predict at once
        yield


@dataclass
class TrainConfig:
    """Everything that determines a trained shrinker (recorded next to the weights).

    Simulation ranges are ``[low, high]``; ``n`` and ``p_causal`` are drawn log-uniformly,
    the others uniformly. Block sizes are drawn uniformly from ``block_sizes``.
    """

    # --- simulation
    n_train_blocks: int = 40
    n_val_blocks: int = 10
    block_sizes: tuple[int, int] = (100, 700)
    ld_samples: tuple[int, int] = (1000, 3000)
    Ne: tuple[float, float] = (5_000.0, 20_000.0)
    recombination_rate: tuple[float, float] = (0.5e-8, 2e-8)
    replicates: int = 64
    n: tuple[float, float] = (2e4, 1e6)
    h2: tuple[float, float] = (0.001, 0.02)
    p_causal: tuple[float, float] = (0.002, 0.05)
    s: tuple[float, float] = (-0.25, 0.0)
    w: tuple[float, float] = (-1.0, 0.0)
    # --- network
    mode: str = "point"
    architecture: str = "2L"
    widths: tuple[int, ...] | None = (64, 32)
    dropout: float | tuple[float, ...] | None = 0.0
    norm: str = "none"
    n_neighbours: int = 8
    n_iter: int = 10
    lead_threshold: float = 0.2
    n_members: int = 1
    # --- optimisation
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    patience: int = 6
    nll_weight: float = 0.1
    seed: int = 0
    max_minutes: float = 12.0
    # --- Bayesian mode
    prior_scale: float = 1.0
    svi_steps: int = 2000
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build from a (JSON) mapping; unknown keys -> InputError."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"training config: unknown key(s) {sorted(unknown)}; valid: {sorted(names)}")
        kw: dict[str, Any] = {}
        for k, v in d.items():
            kw[k] = tuple(v) if isinstance(v, list) else v
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def validate(self) -> None:
        """Check ranges and choices (InputError naming the key)."""
        if self.mode not in ("point", "bayesian", "ensemble"):
            raise InputError(f"training config: mode must be point, bayesian or ensemble, got {self.mode!r}")
        for key in ("n_train_blocks", "n_val_blocks", "replicates", "epochs", "batch_size", "n_iter",
                    "n_neighbours", "n_members", "svi_steps"):
            v = getattr(self, key)
            if not isinstance(v, int) or v < 1:
                raise InputError(f"training config: {key} must be a positive integer, got {v!r}")
        for key in ("block_sizes", "ld_samples", "Ne", "recombination_rate", "n", "h2", "p_causal", "s", "w"):
            v = getattr(self, key)
            if len(v) != 2 or not v[0] <= v[1]:
                raise InputError(f"training config: {key} must be [low, high] with low <= high, got {v!r}")
        if not 0 < self.h2[0] and self.h2[1] < 1:
            raise InputError(f"training config: h2 range must lie in (0, 1), got {self.h2}")
        if self.block_sizes[0] < 2:
            raise InputError("training config: block_sizes must be >= 2")


@dataclass
class SimBlock:
    """One simulated LD block and its replicates on the z scale.

    Attributes
    ----------
    bf : BlockFeatures
        Static features of the block.
    z, zeta : torch.Tensor
        (replicates, m) observed z-scores and true non-centralities ``beta / se``.
    info : dict
        Simulation settings per replicate (n, h2, p_causal, s, w) and of the block.
    """

    bf: BlockFeatures
    z: torch.Tensor
    zeta: torch.Tensor
    info: dict[str, Any]


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float], log: bool = False) -> float:
    lo, hi = lo_hi
    if log:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


def simulate_training_data(
    cfg: TrainConfig, n_blocks: int, seed: int, progress: bool = False, desc: str = "simulating"
) -> list[SimBlock]:
    """Simulate ``n_blocks`` msprime LD blocks with ``cfg.replicates`` RSS replicates each.

    Parameters
    ----------
    cfg : TrainConfig
        Simulation ranges.
    n_blocks : int
        Number of LD blocks.
    seed : int
        Seed; training and validation use different seeds so their LD differs.
    progress : bool
        Progress bar.
    desc : str
        Progress label.

    Returns
    -------
    list of SimBlock
    """
    from bayesmages.simulate.effects import simulate_effects
    from bayesmages.simulate.genotypes import ld_from_genotypes, simulate_ld_blocks
    from bayesmages.simulate.rss import RSSSampler

    out = []
    seeds = spawn_seeds(seed, n_blocks)
    for b in tqdm(range(n_blocks), desc=desc, disable=not progress_enabled(progress)):
        rng = np.random.default_rng(seeds[b])
        m = int(rng.integers(cfg.block_sizes[0], cfg.block_sizes[1] + 1))
        ld_n = int(rng.integers(cfg.ld_samples[0], cfg.ld_samples[1] + 1))
        Ne = _uniform(rng, cfg.Ne, log=True)
        rho = _uniform(rng, cfg.recombination_rate, log=True)
        sim = simulate_ld_blocks(1, m, n_samples=ld_n, seed=int(rng.integers(2**31)), return_genotypes=True,
                                 Ne=Ne, recombination_rate=rho)[0]
        R = ld_from_genotypes(sim.G)
        sampler = RSSSampler(R)
        zs, zetas, settings = [], [], []
        for _ in range(cfg.replicates):
            n = _uniform(rng, cfg.n, log=True)
            h2 = _uniform(rng, cfg.h2)
            p = _uniform(rng, cfg.p_causal, log=True)
            s = _uniform(rng, cfg.s)
            w = _uniform(rng, cfg.w)
            beta = simulate_effects(sim.maf, p_causal=p, h2=h2, s=s, w=w, R=R, seed=int(rng.integers(2**31)))
            beta_hat, se = sampler.sample(beta, int(n), seed=int(rng.integers(2**31)))
            zs.append(beta_hat / se)
            zetas.append(beta / se)
            settings.append({"n": n, "h2": h2, "p_causal": p, "s": s, "w": w})
        out.append(SimBlock(
            bf=block_features(R, cfg.n_neighbours, cfg.lead_threshold),
            z=torch.as_tensor(np.array(zs), dtype=torch.float32),
            zeta=torch.as_tensor(np.array(zetas), dtype=torch.float32),
            info={"m": R.shape[0], "ld_samples": ld_n, "Ne": Ne, "recombination_rate": rho, "replicates": settings},
        ))
    return out


def _deep_weights(n_iter: int) -> torch.Tensor:
    # Later iterations matter more; the last one carries half of the total weight.
    w = torch.tensor([0.5 ** (n_iter - 1 - k) for k in range(n_iter)])
    return w / w.sum()


def _loss(net: UnrolledShrinker, z: torch.Tensor, zeta: torch.Tensor, bf: BlockFeatures,
          nll_weight: float) -> torch.Tensor:
    estimates, sd = net(z, bf)
    w = _deep_weights(len(estimates))
    # Per-replicate normalisation by the mean z^2 (~1 for a null block): strong-signal blocks
    # would otherwise dominate every gradient.
    norm = z.square().mean(dim=1, keepdim=True)
    mse = sum(wk * ((e - zeta).square() / norm).mean() for wk, e in zip(w, estimates))
    resid = (zeta - estimates[-1].detach()) / sd
    nll = (0.5 * resid.square() + torch.log(sd)).mean()
    return mse + nll_weight * nll


@torch.no_grad()
def evaluate(predict: Callable[[torch.Tensor, BlockFeatures], tuple[torch.Tensor, torch.Tensor]],
             blocks: list[SimBlock]) -> dict[str, float]:
    """Validation metrics on the z scale: MSE of the final estimate, of raw z and of zero.

    ``predict(z, bf) -> (mean, sd)``. ``nmse`` is the MSE with each replicate's errors divided by
    its mean z^2 (the training objective's scale; used for early stopping because the plain MSE
    is dominated by the few replicates with the strongest signal).
    """
    se_sum = raw_sum = zero_sum = count = nse_sum = 0.0
    for blk in blocks:
        mean, _ = predict(blk.z, blk.bf)
        err = (mean - blk.zeta).square()
        nse_sum += float((err / blk.z.square().mean(dim=1, keepdim=True)).sum())
        se_sum += float(err.sum())
        raw_sum += float((blk.z - blk.zeta).square().sum())
        zero_sum += float(blk.zeta.square().sum())
        count += blk.zeta.numel()
    return {"mse": se_sum / count, "mse_raw": raw_sum / count, "mse_zero": zero_sum / count,
            "nmse": nse_sum / count}


@torch.no_grad()
def calibrate_sd(predict: Callable[[torch.Tensor, BlockFeatures], tuple[torch.Tensor, torch.Tensor]],
                 blocks: list[SimBlock], level: float = 0.9) -> float:
    """Scale factor c such that ``mean +- z_{level} c sd`` covers ``level`` of the true effects.

    Computed on held-out simulations (the validation blocks), over all variants.
    """
    ratios = []
    for blk in blocks:
        mean, sd = predict(blk.z, blk.bf)
        ratios.append(((blk.zeta - mean).abs() / sd).reshape(-1).double())
    q = float(torch.quantile(torch.cat(ratios), level))
    zq = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.5 + level / 2)))
    return max(q / zq, 1e-6)


Predictor = Callable[[torch.Tensor, BlockFeatures], tuple[torch.Tensor, torch.Tensor]]


def point_predictor(net: UnrolledShrinker) -> Predictor:
    """``predict(z, bf) -> (mean, sd)`` of a point network in eval mode."""

    def predict(z: torch.Tensor, bf: BlockFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        net.eval()
        estimates, sd = net(z, bf)
        return estimates[-1], sd

    return predict


def train_point(
    net: UnrolledShrinker,
    train: list[SimBlock],
    val: list[SimBlock],
    cfg: TrainConfig,
    seed: int,
    progress: bool = False,
    desc: str = "training",
) -> dict[str, Any]:
    """Train ``net`` in place (point mode); returns the history.

    Each epoch visits every training block once in random order, in minibatches of
    ``cfg.batch_size`` replicates (replicates of one block share R, so a minibatch costs one
    (B, m) x (m, m) product per iteration). Early stopping: the validation MSE normalised per
    replicate (``nmse`` of :func:`evaluate`), evaluated in eval mode after each epoch; the best
    weights are restored at the end.

    Returns
    -------
    dict
        ``train_loss``, ``val_mse`` (per epoch, normalised), ``best_epoch``, ``seconds``, ``stopped``.
    """
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with seeded(seed), one_thread():
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr * 0.05)
        predict = point_predictor(net)
        best, best_state, bad = math.inf, copy.deepcopy(net.state_dict()), 0
        hist: dict[str, Any] = {"train_loss": [], "val_mse": [], "stopped": "epochs"}
        bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress_enabled(progress))
        for epoch in bar:
            net.train()
            total, nb = 0.0, 0
            for b in rng.permutation(len(train)):
                blk = train[b]
                perm = torch.as_tensor(rng.permutation(blk.z.shape[0]))
                for start in range(0, perm.numel(), cfg.batch_size):
                    sel = perm[start:start + cfg.batch_size]
                    loss = _loss(net, blk.z[sel], blk.zeta[sel], blk.bf, cfg.nll_weight)
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    opt.step()
                    total += float(loss.detach())
                    nb += 1
            sched.step()
            val_mse = evaluate(predict, val)["nmse"]
            hist["train_loss"].append(total / max(nb, 1))
            hist["val_mse"].append(val_mse)
            bar.set_postfix(val_mse=f"{val_mse:.4g}")
            if val_mse < best - 1e-6:
                best, best_state, bad = val_mse, copy.deepcopy(net.state_dict()), 0
                hist["best_epoch"] = epoch
            else:
                bad += 1
                if bad >= cfg.patience:
                    hist["stopped"] = "early stopping"
                    break
            if time.perf_counter() - started > 60 * cfg.max_minutes:
                hist["stopped"] = "time limit"
                break
        net.load_state_dict(best_state)
        net.eval()
    hist["seconds"] = time.perf_counter() - started
    hist["best_val_mse"] = best
    return hist
