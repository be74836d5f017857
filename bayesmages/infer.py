"""The inference spine: one SVI loop, one NUTS wrapper, the PSIS k-hat check.

Every model in bayesmages fits through these functions, so that progress reporting,
convergence rules, restarts, seeding and parameter scoping behave the same everywhere.

Parameter scoping
-----------------
Pyro keeps parameters in a process-global store. Each SVI run here executes inside
:func:`param_scope`, which swaps in an empty store and restores the caller's store
afterwards; the fitted parameters travel in :attr:`SVIResult.param_state`. Two fits in one
process therefore never see each other's parameters.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.importance import psis_diagnostic
from tqdm.auto import tqdm

from bayesmages.errors import BayesmagesError, ConvergenceWarning, InputError

if TYPE_CHECKING:
    from pyro.params.param_store import StateDict

__all__ = [
    "NUTSResult",
    "SVIResult",
    "khat_from_log_weights",
    "param_scope",
    "progress_enabled",
    "psis_khat",
    "run_nuts",
    "run_svi",
    "seeded",
    "spawn_seeds",
]


def progress_enabled(progress: bool | str) -> bool:
    """Resolve a ``progress`` argument: ``True``/``False``, or ``"auto"`` (only on a TTY).

    Even ``True`` is silenced when stderr is not a terminal, so logs and CI output stay clean.
    """
    if progress is False or progress is None:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def spawn_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent child seeds derived from ``seed`` (numpy SeedSequence).

    Examples
    --------
    >>> spawn_seeds(0, 2) == spawn_seeds(0, 2)
    True
    """
    ss = np.random.SeedSequence(_check_seed(seed))
    return [int(s.generate_state(1, dtype=np.uint32)[0]) for s in ss.spawn(n)]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch/Pyro RNGs seeded, restoring the caller's RNG state afterwards."""
    seed = _check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def param_scope(state: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """A fresh Pyro parameter store for the duration of the block.

    Parameters
    ----------
    state : mapping, optional
        A state from :attr:`SVIResult.param_state` to load into the fresh store (e.g. to
        sample from a fitted guide).

    Yields
    ------
    dict
        On exit this dict is filled with the store's final state.
    """
    store = pyro.get_param_store()
    saved = store.get_state()
    store.clear()
    out: dict[str, Any] = {}
    try:
        if state is not None:
            store.set_state(_copy_state(state))
        yield out
        out.update(_copy_state(store.get_state()))
    finally:
        store.clear()
        store.set_state(saved)


def _copy_state(state: Mapping[str, Any]) -> StateDict:
    return {
        "params": {k: v.detach().clone() for k, v in state["params"].items()},
        "constraints": dict(state["constraints"]),
    }


@dataclass
class SVIResult:
    """Outcome of :func:`run_svi` (the best restart).

    Attributes
    ----------
    guide : callable
        The fitted guide of the best restart.
    param_state : dict
        Pyro parameter-store state of the best restart (use with :func:`param_scope`).
    losses : numpy.ndarray
        Loss (negative ELBO) per step of the best restart.
    restart_losses : numpy.ndarray
        Final smoothed loss of every restart.
    best_restart : int
        Index of the kept restart.
    converged : bool
        Whether the relative-change rule stopped the best restart before ``num_steps``.
    seconds : float
        Wall time of all restarts.
    """

    guide: Any
    param_state: dict[str, Any]
    losses: np.ndarray
    restart_losses: np.ndarray
    best_restart: int
    converged: bool
    seconds: float
    restart_states: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def elbo(self) -> np.ndarray:
        """ELBO history (the negated loss) of the best restart."""
        return -self.losses


def run_svi(
    model: Callable[..., Any],
    guide_factory: Callable[[int], Any],
    *args: Any,
    num_steps: int = 2000,
    lr: float = 0.02,
    final_lr_ratio: float = 0.01,
    schedule: str = "plateau",
    decay_factor: float = 0.1,
    clip_norm: float = 10.0,
    restarts: int = 1,
    batch_size: int | None = None,
    num_data: int | None = None,
    rel_tol: float = 1e-4,
    window: int = 50,
    min_steps: int = 200,
    loss: Any | None = None,
    seed: int = 0,
    progress: bool | str = False,
    desc: str = "SVI",
    keep_restart_states: bool = False,
    **kwargs: Any,
) -> SVIResult:
    """Fit ``guide`` to ``model`` by stochastic variational inference.

    The optimiser is ClippedAdam. Every ``window`` steps after ``min_steps`` the mean loss of
    the last window is compared with the previous window; the loss has *plateaued* when the
    improvement is below ``rel_tol`` (relative) or below one standard error of the window means
    (so that ELBO noise is not mistaken for progress).

    Learning-rate schedules:

    * ``"plateau"`` (default): on each plateau the learning rate is multiplied by
      ``decay_factor``; the run stops (converged) at a plateau once the rate has reached
      ``lr * final_lr_ratio``. Stopping therefore always happens at a small learning rate,
      where the iterates no longer jitter.
    * ``"exponential"``: the rate decays geometrically from ``lr`` to ``lr * final_lr_ratio``
      over ``num_steps``; the first plateau stops the run.

    Parameters
    ----------
    model : callable
        A Pyro model called as ``model(*args, **kwargs)``.
    guide_factory : callable
        ``guide_factory(restart_index) -> guide``; a new guide per restart, so that restarts
        can use different initialisations.
    *args
        Model arguments (tensors).
    num_steps : int
        Maximum number of optimisation steps per restart.
    lr : float
        Initial learning rate.
    final_lr_ratio : float
        Smallest learning rate as a fraction of ``lr`` (1 = constant).
    schedule : {"plateau", "exponential"}
        Learning-rate schedule (see above).
    decay_factor : float
        Factor applied to the learning rate at each plateau (``"plateau"`` schedule).
    clip_norm : float
        Gradient-norm clipping of ClippedAdam.
    restarts : int
        Number of independent runs; the run with the lowest final loss is kept.
    batch_size : int, optional
        Minibatch size. When given, ``subsample_size=batch_size`` is passed to model and guide
        (which must use ``pyro.plate(..., subsample_size=subsample_size)``).
    num_data : int, optional
        Number of data points, for checking ``batch_size``.
    rel_tol : float
        Relative-improvement threshold of the plateau rule on window-averaged losses.
    window : int
        Window length of the stopping rule.
    min_steps : int
        Steps before the stopping rule is checked.
    loss : pyro.infer.ELBO, optional
        ELBO estimator (default ``Trace_ELBO()``).
    seed : int
        Seed; restart ``i`` uses the ``i``-th child seed of ``seed``.
    progress : bool
        Show a tqdm bar (only on a terminal).
    desc : str
        Progress-bar label.
    keep_restart_states : bool
        Also return every restart's parameter state (for restart-agreement diagnostics).
    **kwargs
        Keyword arguments for model and guide.

    Returns
    -------
    SVIResult

    Raises
    ------
    InputError
        Invalid settings.
    BayesmagesError
        The loss became NaN or infinite (lower ``lr`` or check the data scale).
    """
    for name, value in (("num_steps", num_steps), ("restarts", restarts), ("window", window)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise InputError(f"lr must be a positive number, got {lr!r}")
    if not (0 < final_lr_ratio <= 1):
        raise InputError(f"final_lr_ratio must be in (0, 1], got {final_lr_ratio!r}")
    if schedule not in ("plateau", "exponential"):
        raise InputError(f"schedule must be 'plateau' or 'exponential', got {schedule!r}")
    if not (0 < decay_factor < 1):
        raise InputError(f"decay_factor must be in (0, 1), got {decay_factor!r}")
    if batch_size is not None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if num_data is not None and batch_size < num_data:
            kwargs = {**kwargs, "subsample_size": batch_size}
        elif num_data is None:
            kwargs = {**kwargs, "subsample_size": batch_size}
    loss = loss if loss is not None else Trace_ELBO()
    lrd = final_lr_ratio ** (1.0 / num_steps) if schedule == "exponential" else 1.0
    min_lr = lr * final_lr_ratio * (1 + 1e-9)
    show = progress_enabled(progress)
    seeds = spawn_seeds(seed, restarts)
    t0 = time.perf_counter()
    runs: list[tuple[float, np.ndarray, bool, Any, dict[str, Any]]] = []
    for r in range(restarts):
        with seeded(seeds[r]), param_scope() as state:
            guide = guide_factory(r)
            optim = pyro.optim.ClippedAdam({"lr": lr, "lrd": lrd, "clip_norm": clip_norm})
            svi = SVI(model, guide, optim, loss=loss)
            losses = np.empty(num_steps)
            converged = False
            bar = tqdm(
                total=num_steps,
                desc=f"{desc} {r + 1}/{restarts}" if restarts > 1 else desc,
                disable=not show,
                leave=False,
            )
            step = 0
            current_lr = lr
            stage_start = 0
            for step in range(num_steps):
                value = svi.step(*args, **kwargs)
                if not math.isfinite(value):
                    bar.close()
                    raise BayesmagesError(
                        f"{desc}: the loss became {value} at step {step} of restart {r}; "
                        "lower the learning rate (lr) or check the scale of the data"
                    )
                losses[step] = value
                if step % 25 == 0:
                    bar.set_postfix(loss=f"{value:.4g}")
                bar.update(1)
                if step + 1 >= max(min_steps, stage_start + 2 * window) and (step + 1) % window == 0:
                    if _plateaued(losses[step + 1 - 2 * window : step + 1], window, rel_tol):
                        if schedule == "exponential" or current_lr <= min_lr:
                            converged = True
                            break
                        current_lr = max(current_lr * decay_factor, lr * final_lr_ratio)
                        _set_lr(optim, current_lr)
                        stage_start = step + 1  # judge the new rate on its own windows only
            bar.close()
            losses = losses[: step + 1]
        final = float(losses[-min(window, losses.size) :].mean())
        runs.append((final, losses, converged, guide, state))
    finals = np.array([run[0] for run in runs])
    best = int(np.argmin(finals))
    _, losses, converged, guide, state = runs[best]
    if not converged:
        warnings.warn(
            f"{desc}: stopped at num_steps={num_steps} before the relative loss change fell below "
            f"rel_tol={rel_tol}; consider more steps",
            ConvergenceWarning,
            stacklevel=2,
        )
    return SVIResult(
        guide=guide,
        param_state=state,
        losses=losses,
        restart_losses=finals,
        best_restart=best,
        converged=converged,
        seconds=time.perf_counter() - t0,
        restart_states=[run[4] for run in runs] if keep_restart_states else [],
    )


def _plateaued(recent: np.ndarray, window: int, rel_tol: float) -> bool:
    """Whether the last window improved on the one before by less than rel_tol or one standard error."""
    prev, cur = recent[:window], recent[window:]
    improvement = prev.mean() - cur.mean()
    se = math.sqrt((prev.var() + cur.var()) / window)
    return improvement <= max(rel_tol * max(abs(cur.mean()), 1e-12), se)


def _set_lr(optim: Any, lr: float) -> None:
    # PyroOptim keeps one torch optimizer per parameter; the current ones and the defaults used
    # for parameters created later both need the new rate.
    if isinstance(optim.pt_optim_args, dict):
        optim.pt_optim_args = {**optim.pt_optim_args, "lr": lr}
    for opt in optim.optim_objs.values():
        for group in opt.param_groups:
            group["lr"] = lr


@dataclass
class NUTSResult:
    """Outcome of :func:`run_nuts`.

    Attributes
    ----------
    samples : dict
        ``site -> array`` of shape ``(chains, draws, *site_shape)`` (float64 numpy).
    sample_stats : dict
        ``diverging`` (and other per-draw statistics) shaped ``(chains, draws)``.
    seconds : float
        Wall time.
    """

    samples: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    seconds: float


def run_nuts(
    model: Callable[..., Any],
    *args: Any,
    num_samples: int = 500,
    warmup_steps: int = 500,
    num_chains: int = 2,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    seed: int = 0,
    progress: bool | str = False,
    **kwargs: Any,
) -> NUTSResult:
    """Sample the posterior of ``model`` with NUTS (for validation on small data).

    Chains run one after another in this process, each with its own child seed, so the result
    is reproducible and needs no multiprocessing.

    Parameters
    ----------
    model : callable
        Pyro model; all latent sites must be continuous.
    *args, **kwargs
        Model arguments.
    num_samples, warmup_steps, num_chains : int
        Draws kept per chain, warm-up steps per chain, number of chains.
    target_accept_prob : float
        NUTS step-size adaptation target.
    max_tree_depth : int
        NUTS maximum tree depth.
    seed : int
        Seed.
    progress : bool
        Progress bar (only on a terminal).

    Returns
    -------
    NUTSResult
    """
    for name, value in (("num_samples", num_samples), ("num_chains", num_chains)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise InputError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
    t0 = time.perf_counter()
    chains: list[dict[str, np.ndarray]] = []
    diverging: list[np.ndarray] = []
    for c, chain_seed in enumerate(spawn_seeds(seed, num_chains)):
        with seeded(chain_seed), param_scope():
            kernel = NUTS(model, target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth)
            mcmc = MCMC(
                kernel,
                num_samples=num_samples,
                warmup_steps=warmup_steps,
                num_chains=1,
                disable_progbar=not progress_enabled(progress),
            )
            mcmc.run(*args, **kwargs)
            chains.append({k: v.detach().double().numpy() for k, v in mcmc.get_samples().items()})
            # Pyro's MCMC has no get_extra_fields (that is NumPyro); its kernel diagnostics list
            # the post-warm-up indices of divergent transitions.
            kernel_diag = (getattr(mcmc, "_diagnostics", None) or [None])[0] or {}
            div = np.zeros(num_samples, dtype=bool)
            idx = np.asarray(kernel_diag.get("divergences", []), dtype=int)
            div[idx[(idx >= 0) & (idx < num_samples)]] = True
            diverging.append(div)
        del c
    samples = {k: np.stack([ch[k] for ch in chains]) for k in chains[0]}
    return NUTSResult(
        samples=samples,
        sample_stats={"diverging": np.stack(diverging)},
        seconds=time.perf_counter() - t0,
    )


def psis_khat(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    param_state: Mapping[str, Any],
    *args: Any,
    num_particles: int = 1000,
    max_simultaneous_particles: int | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> float:
    """Pareto-smoothed importance-sampling k-hat of a fitted guide.

    Values above 0.7 mean the variational approximation is not trustworthy for posterior
    expectations (Yao et al., 2018).

    Parameters
    ----------
    model, guide : callable
        The Pyro model and the fitted guide.
    param_state : mapping
        The guide's parameters (:attr:`SVIResult.param_state`).
    *args, **kwargs
        Model arguments.
    num_particles : int
        Importance samples.
    max_simultaneous_particles : int, optional
        Particles evaluated at once under a vectorising plate (must divide ``num_particles``);
        default: all at once. The model and guide must accept a leading batch dimension
        (Pyro's vectorised importance sampling).
    seed : int
        Seed.

    Returns
    -------
    float
    """
    with seeded(seed), param_scope(param_state), torch.no_grad():
        k = psis_diagnostic(
            model,
            guide,
            *args,
            num_particles=num_particles,
            max_simultaneous_particles=max_simultaneous_particles or num_particles,
            **kwargs,
        )
    return float(k)


def khat_from_log_weights(log_weights: Any) -> float:
    """PSIS k-hat from importance log-weights ``log p(x, z_s) - log q(z_s)`` of draws ``z_s ~ q``.

    The same estimator as :func:`psis_khat` (Pyro's: a generalised Pareto fit to the largest
    ``min(0.2 S, 3 sqrt(S))`` weights), for models whose guides are evaluated by hand, such as
    one restart of a batched guide.

    Parameters
    ----------
    log_weights : array_like
        (S,) log importance weights.

    Returns
    -------
    float
        k-hat (``inf`` when fewer than 10 weights lie in the tail).

    Examples
    --------
    >>> lw = torch.randn(2000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.1
    >>> khat_from_log_weights(lw) < 0.5   # nearly equal weights: a good proposal
    True
    """
    from pyro.ops.stats import fit_generalized_pareto

    lw = torch.as_tensor(log_weights, dtype=torch.float64).flatten()
    lw = torch.sort(lw - lw.max())[0]
    n = lw.numel()
    cutoff = max(math.log(1e-15), float(lw[-math.ceil(min(0.2 * n, 3.0 * math.sqrt(n))) - 1]))
    tail = lw[lw > cutoff]
    if tail.numel() < 10:
        return float("inf")
    k, _ = fit_generalized_pareto(tail.exp() - math.exp(cutoff))
    return float(k)
