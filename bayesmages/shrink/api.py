"""Public entry point: ``bayesmages.shrink.shrink`` and the pretrained default model."""

from __future__ import annotations

import os
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

__all__ = ["OUTPUT_COLUMNS", "load_default", "shrink"]

#: Output columns of the shrinkage table (DESIGN §6).
_ENET_SCALE = 1e-3
OUTPUT_COLUMNS = ["SNP", "CHR", "POS", "trait", "beta_hat", "se", "beta_shrunk", "sd", "lower", "upper"]


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


def _shrink_block(unit: tuple[Any, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    # Module level so that process pools can pickle it.
    model, method, b, s, R = unit
    b, s, R = validate_block(b, s, R)
    if method == "enet":
        from bayesmages.shrink.enet import enet_shrink

        # The elastic net is fitted to z-scores (times a fixed constant, the standardised scale of a
        # GWAS of 1e6 samples): the same as the paper's recipe on standardised effects, where se
        # is nearly constant, and exactly unit-equivariant for any input units.
        coef = enet_shrink(b / s * _ENET_SCALE, R, seed=seed)
        return coef * s / _ENET_SCALE, np.full_like(b, np.nan)
    return model.predict(b, s, R)


def shrink(
    beta_hat: Any,
    se: Any,
    R: Any,
    model: Any = "default",
    method: str = "nn",
    *,
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
    method : {"nn", "enet"}
        The neural shrinker, or the paper's elastic-net baseline (no uncertainty: ``sd``,
        ``lower`` and ``upper`` are NaN; needs scikit-learn).
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
        Columns ``SNP, CHR, POS, trait, beta_hat, se, beta_shrunk, sd, lower, upper``; one row
        per variant in input order.

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

    if method not in ("nn", "enet"):
        raise InputError(f"method must be 'nn' or 'enet', got {method!r}")
    # Validated here, named "block <i>", so that a bad block stops the call before any work.
    blocks = [validate_block(b, s, Rb, name=f"block {i + 1}")
              for i, (b, s, Rb) in enumerate(_as_blocks(beta_hat, se, R))]
    nn_model = _resolve_model(model) if method == "nn" else None
    units = [(nn_model, method, b, s, Rb) for b, s, Rb in blocks]
    names = [f"block {i + 1}" for i in range(len(units))]
    with one_blas_thread():  # small per-block products; see bayesmages._threads
        results = map_units(_shrink_block, units, workers=workers, scheduler=scheduler, seed=seed,
                            progress=progress, desc="shrink", names=names)
    b_all = np.concatenate([np.asarray(b, dtype=np.float64) for b, _, _ in blocks])
    s_all = np.concatenate([np.asarray(s, dtype=np.float64) for _, s, _ in blocks])
    mean = np.concatenate([r[0] for r in results])
    sd = np.concatenate([r[1] for r in results])
    m = b_all.size
    if variants is not None:
        if len(variants) != m:
            raise InputError(f"variants has {len(variants)} rows but the blocks hold {m} variants")
        cols = {c: variants[c].to_numpy() if c in variants else np.full(m, None) for c in ("SNP", "CHR", "POS")}
    else:
        cols = {"SNP": np.array([f"variant{i + 1}" for i in range(m)]), "CHR": np.full(m, None),
                "POS": np.full(m, None)}
    return pd.DataFrame({
        **cols,
        "trait": trait,
        "beta_hat": b_all,
        "se": s_all,
        "beta_shrunk": mean,
        "sd": sd,
        "lower": mean - Z90 * sd,
        "upper": mean + Z90 * sd,
    })[OUTPUT_COLUMNS]


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
