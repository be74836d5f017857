"""Public entry point: ``bayesmages.shrink.shrink`` and the pretrained default model."""

from __future__ import annotations

import copy
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
from bayesmages.shrink.features import validate_block
from bayesmages.shrink.network import Z90, NeuralShrinker

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


def _shrink_block(unit: tuple[Any, ...], seed: int = 0) -> tuple[np.ndarray, ...]:
    # Module level so that process pools can pickle it. Returns (mean, sd, lower, upper[, pip, cs]).
    model, method, b, s, R, n = unit
    if method == "enet":
        from bayesmages.shrink.enet import enet_shrink

        # The paper's recipe on beta_hat itself (ElasticNetCV's alpha grid and tolerance scale with y,
        # so the fit is equivariant to the units of beta_hat).
        coef = enet_shrink(b, R, seed=seed)
        nan = np.full_like(b, np.nan)
        return coef, nan, nan, nan
    if method == "susie":
        fitted = copy.copy(model)  # units may share one model object (threads); each fit writes its own copy
        fitted._fit_block(b, s, R, n)
        return fitted.mean_, fitted.sd_, fitted.lower_, fitted.upper_, fitted.pip_, fitted.cs_labels()
    mean, sd = model.predict(b, s, R)
    return mean, sd, mean - Z90 * sd, mean + Z90 * sd


def _block_n(n: Any, blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[float | None]:
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
) -> pd.DataFrame:
    """Shrink GWAS effects for LD: posterior-style mean, sd and central 90% interval per variant.

    Parameters
    ----------
    beta_hat, se : array-like or list of array-like
        Observed effects and standard errors of one block, or a list with one array per block.
    R : array-like or list of array-like
        LD correlation matrix of the block, or a list (same length and order as the blocks).
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

    Returns
    -------
    pandas.DataFrame
        Columns ``SNP, CHR, POS, trait, beta_hat, se, beta_shrunk, sd, lower, upper`` (+ ``pip, cs``
        for ``method="susie"``); one row per variant in input order. ``lower``/``upper``: the central
        90% interval (the posterior mixture's quantiles for ``"susie"``, ``mean -/+ 1.645 sd`` for ``"nn"``).

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
    from bayesmages.parallel import map_units

    if method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, got {method!r}")
    # Validated here, named "block <i>", so that a bad block stops the call before any work.
    blocks = [validate_block(b, s, Rb, name=f"block {i + 1}")
              for i, (b, s, Rb) in enumerate(_as_blocks(beta_hat, se, R))]
    if method == "nn":
        unit_model: Any = _resolve_model(model)
    elif method == "susie":
        from bayesmages.registry import get_model
        from bayesmages.shrink.susie_model import MAX_BLOCK

        unit_model = get_model("susie_rss", L=L, ld_lambda=ld_lambda)
        big = [i + 1 for i, (b, _, _) in enumerate(blocks) if b.size > MAX_BLOCK]
        if big:
            warnings.warn(f"block(s) {big[:5]} hold more than {MAX_BLOCK} variants, beyond the benchmarked size; "
                          "the fit is slower (O(m^2) per sweep) and untested there", stacklevel=2)
    else:
        unit_model = None
    block_n = _block_n(n, blocks)
    if method == "nn" and n is not None:
        # The network does not take n; it was trained on n in NN_N_RANGE (pretrained/MODEL_CARD.md).
        out_of_range = sorted({v for v in block_n if v is not None and not NN_N_RANGE[0] <= v <= NN_N_RANGE[1]})
        if out_of_range:
            warnings.warn(f"n = {out_of_range[0]:g} is outside the range the neural shrinker was trained on "
                          f"({NN_N_RANGE[0]:,} to {NN_N_RANGE[1]:,}); consider method='susie', which uses n",
                          stacklevel=2)
    units = [(unit_model, method, b, s, Rb, nb) for (b, s, Rb), nb in zip(blocks, block_n)]
    names = [f"block {i + 1}" for i in range(len(units))]
    with one_blas_thread():  # small per-block products; see bayesmages._threads
        results = map_units(_shrink_block, units, workers=workers, scheduler=scheduler, seed=seed,
                            progress=progress, desc="shrink", names=names)
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
