"""Public entry point: ``bayesmages.shrink.shrink`` and the pretrained default model."""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmages._threads import one_blas_thread
from bayesmages.errors import InputError
from bayesmages.shrink.features import validate_block, validate_effects
from bayesmages.shrink.network import NeuralShrinker

__all__ = ["METHODS", "OUTPUT_COLUMNS", "SUSIE_COLUMNS", "load_default", "shrink"]

#: Output columns of the shrinkage table (DESIGN §6).
OUTPUT_COLUMNS = ["SNP", "CHR", "POS", "trait", "beta_hat", "se", "beta_shrunk", "sd", "lower", "upper"]
#: Extra columns of ``method="susie"``: posterior inclusion probability and credible set label
SUSIE_COLUMNS = ["pip", "cs"]
METHODS = ("nn", "enet", "susie")
#: GWAS sample sizes of the pretrained network's training data (pretrained/MODEL_CARD.md)
NN_N_RANGE = (20_000, 1_000_000)


def _default_path() -> Path:
    return Path(str(resources.files("bayesmages.shrink") / "pretrained" / "model.pt"))


@lru_cache(maxsize=1)
def load_default() -> NeuralShrinker:
    """The pretrained shrinker shipped with the package (see ``pretrained/MODEL_CARD.md``).

    Examples
    --------
    >>> model = load_default()  # doctest: +SKIP
    >>> model.mode  # doctest: +SKIP
    'point'
    """
    from bayesmages.model import load_model

    path = _default_path()
    if not path.is_file():
        raise InputError(f"the pretrained shrinker is missing from the installation ({path})")
    model = load_model(path)
    if not isinstance(model, NeuralShrinker):
        raise InputError(f"{path} holds a {type(model).__name__}, not the pretrained shrinker")
    return model


def model_file(path: str | os.PathLike[str]) -> Path:
    """The model file behind ``path``: the file itself, or ``model.pt`` of a ``train-shrinker`` folder.

    Examples
    --------
    >>> model_file("my_model/")  # doctest: +SKIP
    PosixPath('my_model/model.pt')
    """
    p = Path(path)
    if p.is_dir():
        if (p / "model.pt").is_file():
            return p / "model.pt"
        raise InputError(f"model {p}: a folder without model.pt; give 'default', a model file or a folder "
                         "written by train-shrinker")
    if not p.is_file():
        raise InputError(f"model {p}: no such file; give 'default', a model file or a folder written by "
                         "train-shrinker")
    return p


def _resolve_model(model: Any) -> NeuralShrinker:
    if isinstance(model, NeuralShrinker):
        return model
    if isinstance(model, str) and model == "default":
        return load_default()
    if isinstance(model, str | os.PathLike):
        from bayesmages.model import load_model

        loaded = load_model(model_file(model))
        if not isinstance(loaded, NeuralShrinker):
            raise InputError(f"{model}: not a neural_shrinker model file")
        return loaded
    raise InputError(f"model must be 'default', a model file or a NeuralShrinker, got {type(model).__name__}")


def resolve_shrinker(model: Any, method: str, *, L: int = 10, ld_lambda: float = 0.0,
                     sizes: list[int] | None = None) -> Any:
    """The model object the units of ``method`` use: the NeuralShrinker, a ``susie_rss`` model, or None (enet)."""
    if method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, got {method!r}")
    if method == "nn":
        return _resolve_model(model)
    if method == "susie":
        from bayesmages.registry import get_model
        from bayesmages.shrink.susie_model import MAX_BLOCK

        big = [i + 1 for i, m in enumerate(sizes or []) if m > MAX_BLOCK]
        if big:
            warnings.warn(f"block(s) {big[:5]} hold more than {MAX_BLOCK} variants, beyond the benchmarked size; "
                          "the fit is slower (O(m^2) per sweep) and untested there", stacklevel=3)
        return get_model("susie_rss", L=L, ld_lambda=ld_lambda)
    return None


def shrink_blocks(
    beta_hat: list[np.ndarray],
    se: list[np.ndarray],
    ld: Any,
    *,
    model: Any,
    method: str,
    n: list[Any] | None = None,
    workers: int = 1,
    scheduler: Any = None,
    seed: int = 0,
    progress: bool = False,
    ld_cache: str | os.PathLike[str] | None = None,
) -> tuple[list[tuple[np.ndarray, ...]], dict[str, Any]]:
    """Shrink T traits on shared LD blocks: units of several blocks x all traits, mapped over workers.

    Parameters
    ----------
    beta_hat, se : list of numpy.ndarray
        Per block, (T, m) validated effects and standard errors of the T traits.
    ld : list of numpy.ndarray or LDRefs
        Validated LD blocks (arrays are written to ``ld_cache`` first when the units leave this process).
    model : object
        From :func:`resolve_shrinker`.
    method : str
        ``"nn"``, ``"enet"`` or ``"susie"``.
    n : list, optional
        Per block, the T sample sizes (None entries: unknown).
    workers, scheduler, seed, progress, ld_cache
        As in :func:`shrink`; trait t of block b gets the seed ``spawn_seeds(seed, T * B)[t * B + b]``
        whatever the units and backend.

    Returns
    -------
    list of tuple, dict
        Per block, ``(mean, sd, lower, upper[, pip, cs])`` each (T, m); the units' accounting.
    """
    import shutil
    import tempfile
    import time

    from bayesmages.infer import spawn_seeds
    from bayesmages.io.ldrefs import LDRefs, spill_blocks
    from bayesmages.parallel import map_units
    from bayesmages.shrink.units import ShrinkUnit, block_groups, run_unit, unit_stats

    nb = len(beta_hat)
    if not nb:
        raise InputError("no blocks given")
    T = beta_hat[0].shape[0]
    seeds = np.asarray(spawn_seeds(seed, T * nb), dtype=np.int64).reshape(T, nb)
    n_blocks = n if n is not None else [None] * nb
    sizes = [b.shape[1] for b in beta_hat]
    groups = block_groups(sizes)
    spilled = None
    if not isinstance(ld, LDRefs) and (workers > 1 or scheduler is not None) and len(groups) > 1:
        # units reference their LD: blocks given in memory go to disk once (equal blocks share a file)
        if ld_cache is None:
            ld_cache = spilled = tempfile.mkdtemp(prefix="bayesmages-ld-")
        ld = spill_blocks(ld, ld_cache)
    try:
        units = [ShrinkUnit(model=model, method=method,
                            ld=ld if isinstance(ld, LDRefs) else tuple(ld[b] for b in g), blocks=g,
                            beta_hat=[beta_hat[b] for b in g], se=[se[b] for b in g],
                            seeds=[seeds[:, b] for b in g], n=[n_blocks[b] for b in g]) for g in groups]
        names = [f"block {g[0] + 1}" if len(g) == 1 else f"blocks {g[0] + 1}-{g[-1] + 1}" for g in groups]
        started, cpu0 = time.perf_counter(), time.process_time()
        with one_blas_thread():  # small per-block products; see bayesmages._threads
            results = map_units(run_unit, units, workers=workers, scheduler=scheduler, progress=progress,
                                desc="shrink", names=names)
        stats = unit_stats(results, time.perf_counter() - started)
        # this process's CPU during the map: the units themselves when serial, else the cost of sending
        # the units and receiving the results
        stats["client_cpu_seconds"] = round(time.process_time() - cpu0, 3)
    finally:
        if spilled is not None:
            shutil.rmtree(spilled, ignore_errors=True)
    return [blk for r in results for blk in r["blocks"]], stats


def _block_n(n: Any, blocks: list[tuple[np.ndarray, np.ndarray, Any]]) -> list[float | None]:
    """One sample size per block: from a scalar, a per-block list or a per-variant array (block median)."""
    from bayesmages.shrink.susie_model import check_n

    if n is None:
        return [None] * len(blocks)
    if np.ndim(n) == 0:
        v = check_n(n)
        return [v] * len(blocks)
    arr = np.asarray(n, dtype=object)
    sizes = [b.size for b, _, _ in blocks]
    if arr.ndim == 1 and arr.size == len(blocks) and arr.size != sum(sizes):
        return [check_n(x, name=f"n (block {i + 1})") for i, x in enumerate(arr)]
    try:
        flat = np.asarray(n, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError("n must be a number, one number per block, or one per variant") from None
    if flat.size != sum(sizes):
        raise InputError(f"n has {flat.size} values; give one number, one per block ({len(blocks)}) or one per "
                         f"variant ({sum(sizes)})")
    cuts = np.cumsum(sizes)[:-1]
    return [check_n(float(np.median(part)), name=f"n (block {i + 1})")
            for i, part in enumerate(np.split(flat, cuts))]


def shrink(
    beta_hat: Any,
    se: Any,
    R: Any,
    model: Any = "default",
    method: str = "nn",
    *,
    n: Any = None,
    L: int = 10,
    ld_lambda: float = 0.0,
    variants: pd.DataFrame | None = None,
    trait: str = "trait",
    workers: int = 1,
    scheduler: Any = None,
    seed: int = 0,
    progress: bool = False,
    ld_cache: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Shrink GWAS effects for LD: posterior-style mean, sd and a 90% interval per variant.

    Parameters
    ----------
    beta_hat, se : array-like or list of array-like
        Observed effects and standard errors of one block, or a list with one array per block.
    R : array-like, list of array-like or LDRefs
        LD correlation matrix of the block, or a list (same length and order as the blocks), or the
        blocks by reference (:class:`bayesmages.io.ldrefs.LDRefs`: already validated ``.npy`` files,
        e.g. of an LD store), which each worker then opens itself.
    model : "default", path or NeuralShrinker
        The shrinker (``"default"``: the pretrained network shipped with the package).
    method : {"nn", "enet", "susie"}
        The neural shrinker; the paper's elastic-net baseline (no uncertainty: ``sd``,
        ``lower`` and ``upper`` are NaN; needs scikit-learn); or ``"susie"``, the registered model
        ``susie_rss`` (sum of single effects plus an infinitesimal background on the RSS likelihood),
        which adds the columns ``pip`` and ``cs`` (credible-set label, "" outside any set).
    n : float, sequence or None
        GWAS sample size: one number, one per block, or one per variant (the block median is used).
        ``method="susie"`` adjusts z for the variance a variant explains (a warning outside 500 -
        1,000,000, the benchmarked range; None: no adjustment). ``method="nn"`` does not use n but
        warns outside 20,000 - 1,000,000, the range of its training data.
    L : int
        Single effects to start with (``method="susie"``; more are added while all are in use, up to 40).
    ld_lambda : float
        ``method="susie"``: regularise each R to ``(R + lambda I) / (1 + lambda)``, a guard when R comes
        from a reference panel (see :func:`bayesmages.shrink.ld_mismatch` to check).
    variants : pandas.DataFrame, optional
        ``SNP``, ``CHR``, ``POS`` of the variants in block order (all blocks concatenated).
    trait : str
        Value of the ``trait`` column.
    workers, scheduler
        Parallelism over blocks (see :func:`bayesmages.parallel.map_units`).
    seed : int
        Seed (used by the elastic net's cross-validation).
    progress : bool
        Progress bar over blocks.
    ld_cache : str or path-like, optional
        With ``workers > 1`` or a scheduler and LD given as arrays: the folder where each block is
        written once (``<content hash>.npy``, reused by later calls) for the workers to read; it must be
        readable by every worker at the same path. Default: a temporary folder, removed at the end.

    Returns
    -------
    pandas.DataFrame
        Columns ``SNP, CHR, POS, trait, beta_hat, se, beta_shrunk, sd, lower, upper`` (+ ``pip, cs``
        for ``method="susie"``); one row per variant in input order. ``attrs["units"]``: the work
        units' accounting (:func:`bayesmages.shrink.units.unit_stats`). ``beta_shrunk``, ``sd``: the
        shrinker's posterior mean and sd. ``lower``/``upper``: a 90% interval built around the
        LD-conditional estimate ``c_j = beta_hat_j - se_j sum_{k != j} R_jk beta_shrunk_k / se_k``, not
        centred at ``beta_shrunk``. ``"susie"`` (on its n-adjusted scale):
        :func:`bayesmages.shrink.intervals.conditional_interval`, ``c_j -/+ 1.645 se_j sqrt(1 + sum_{k != j}
        R_jk^2 (sd_k / se_k)^2)``; ``"nn"``: :func:`bayesmages.shrink.intervals.union_interval`, the hull of
        that interval and the marginal ``beta_hat_j -/+ 1.645 se_j`` (docs/shrink.md has the measured
        coverage and where it stops). NaN for ``"enet"``.

    Raises
    ------
    InputError
        NaN/inf inputs, ``se <= 0``, an LD matrix whose size does not match its block, a
        malformed LD matrix, block lists of different lengths, an unknown method.

    Examples
    --------
    >>> import numpy as np, bayesmages as bm
    >>> R = np.array([[1.0, 0.9], [0.9, 1.0]])
    >>> out = bm.shrink.shrink([0.05, 0.045], [0.01, 0.01], R)  # doctest: +SKIP
    >>> list(out.columns)[-4:]  # doctest: +SKIP
    ['beta_shrunk', 'sd', 'lower', 'upper']
    """
    from bayesmages.io.ldrefs import LDRefs

    if method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, got {method!r}")
    if isinstance(R, LDRefs):
        # blocks by reference (an LD store or spilled blocks): validated when they were written
        if not (isinstance(beta_hat, list | tuple) and isinstance(se, list | tuple)):
            raise InputError("with LD blocks by reference, beta_hat and se must be lists of per-block arrays")
        if not len(beta_hat) == len(se) == len(R):
            raise InputError(f"got {len(beta_hat)} beta_hat blocks, {len(se)} se blocks and {len(R)} LD blocks")
        sizes = R.sizes()
        blocks: list[tuple[np.ndarray, np.ndarray, Any]] = []
        for i, (b, s) in enumerate(zip(beta_hat, se)):
            bv, sv = validate_effects(b, s, name=f"block {i + 1}")
            if bv.size != sizes[i]:
                raise InputError(f"block {i + 1}: LD matrix R is {sizes[i]} x {sizes[i]} but there are {bv.size} "
                                 "variants")
            blocks.append((bv, sv, None))
        ld: Any = R
    else:
        # Validated here, named "block <i>", so that a bad block stops the call before any work.
        blocks = [validate_block(b, s, Rb, name=f"block {i + 1}")
                  for i, (b, s, Rb) in enumerate(_as_blocks(beta_hat, se, R))]
        ld = [Rb for _, _, Rb in blocks]
    unit_model = resolve_shrinker(model, method, L=L, ld_lambda=ld_lambda, sizes=[b.size for b, _, _ in blocks])
    block_n = _block_n(n, blocks)
    if method == "nn" and n is not None:
        # The network does not take n; it was trained on n in NN_N_RANGE (pretrained/MODEL_CARD.md).
        out_of_range = sorted({v for v in block_n if v is not None and not NN_N_RANGE[0] <= v <= NN_N_RANGE[1]})
        if out_of_range:
            warnings.warn(f"n = {out_of_range[0]:g} is outside the range the neural shrinker was trained on "
                          f"({NN_N_RANGE[0]:,} to {NN_N_RANGE[1]:,}); consider method='susie', which uses n",
                          stacklevel=2)
    per_block, stats = shrink_blocks([b[None] for b, _, _ in blocks], [s[None] for _, s, _ in blocks], ld,
                                     model=unit_model, method=method, n=[[v] for v in block_n], workers=workers,
                                     scheduler=scheduler, seed=seed, progress=progress, ld_cache=ld_cache)
    results = [tuple(a[0] for a in r) for r in per_block]
    b_all = np.concatenate([np.asarray(b, dtype=np.float64) for b, _, _ in blocks])
    s_all = np.concatenate([np.asarray(s, dtype=np.float64) for _, s, _ in blocks])
    mean, sd, lower, upper = (np.concatenate([r[k] for r in results]) for k in range(4))
    m = b_all.size
    if variants is not None:
        if len(variants) != m:
            raise InputError(f"variants has {len(variants)} rows but the blocks hold {m} variants")
        cols = {c: variants[c].to_numpy() if c in variants else np.full(m, None) for c in ("SNP", "CHR", "POS")}
    else:
        cols = {"SNP": np.array([f"variant{i + 1}" for i in range(m)]), "CHR": np.full(m, None),
                "POS": np.full(m, None)}
    table = pd.DataFrame({
        **cols,
        "trait": trait,
        "beta_hat": b_all,
        "se": s_all,
        "beta_shrunk": mean,
        "sd": sd,
        "lower": lower,
        "upper": upper,
    })[OUTPUT_COLUMNS]
    if method == "susie":
        table["pip"] = np.concatenate([r[4] for r in results])
        # labels made unique across blocks: "<block>:L<k>"
        table["cs"] = np.concatenate([np.where(r[5] == "", "", np.char.add(f"{i + 1}:", r[5].astype(str)))
                                      for i, r in enumerate(results)])
    table.attrs["units"] = stats
    return table


def _as_blocks(beta_hat: Any, se: Any, R: Any) -> list[tuple[Any, Any, Any]]:
    if isinstance(R, list | tuple):
        if not (isinstance(beta_hat, list | tuple) and isinstance(se, list | tuple)):
            raise InputError("with a list of LD blocks, beta_hat and se must be lists of per-block arrays")
        if not len(beta_hat) == len(se) == len(R):
            raise InputError(f"got {len(beta_hat)} beta_hat blocks, {len(se)} se blocks and {len(R)} LD blocks")
        if not R:
            raise InputError("no blocks given")
        return [(b, s, np.asarray(getattr(r, "R", r))) for b, s, r in zip(beta_hat, se, R)]
    return [(beta_hat, se, np.asarray(getattr(R, "R", R)))]
