"""ArviZ adapter, ELBO plots and posterior summary tables.

:func:`to_inference_data` is the single place that builds :class:`arviz.InferenceData` in
bayesmages. It builds from dictionaries of draws (never ``az.from_pyro``, which supports MCMC
only), so SVI and NUTS fits share one representation:

* ``posterior``: draws shaped ``(chain, draw, ...)`` (SVI draws are one pseudo-chain);
* ``sample_stats``: for NUTS the per-draw statistics (``diverging``); for SVI the ELBO history
  as the variable ``elbo`` on its own dimension ``svi_step`` (R-hat and ESS mean nothing for
  independent SVI draws; report the ELBO, restart agreement and PSIS k-hat instead);
* attributes: ``inference`` (``"svi"``, ``"map"`` or ``"nuts"``), the model name and, when
  computed, ``psis_khat``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError

if TYPE_CHECKING:
    import arviz as az


def _arviz() -> Any:
    """Import arviz on first use.

    With matplotlib it costs a process 1.5-5 s to import, which every command and worker would pay through
    :mod:`bayesmages.model` although most never build an InferenceData.
    """
    with warnings.catch_warnings():
        # arviz 0.2x announces its 1.x refactor with a FutureWarning on every import; users of
        # bayesmages cannot act on it, so it is not passed on.
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz

__all__ = ["plot_elbo", "summarize_draws", "to_inference_data"]


def to_inference_data(
    posterior: Mapping[str, Any],
    *,
    chains: bool = False,
    sample_stats: Mapping[str, Any] | None = None,
    elbo: Sequence[float] | np.ndarray | Mapping[str, np.ndarray] | None = None,
    observed_data: Mapping[str, Any] | None = None,
    dims: Mapping[str, list[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> az.InferenceData:
    """Build an :class:`arviz.InferenceData` from dictionaries of draws.

    Parameters
    ----------
    posterior : mapping
        ``name -> array``. Shaped ``(draw, ...)``, or ``(chain, draw, ...)`` when ``chains``.
    chains : bool
        Whether the arrays carry a leading chain axis.
    sample_stats : mapping, optional
        Per-draw statistics (same leading axes as ``posterior``), e.g. ``diverging``.
    elbo : array or mapping, optional
        ELBO history per SVI step (one array), or ``{"restart_0": ..., ...}``; stored in
        ``sample_stats`` on dimension ``svi_step``.
    observed_data : mapping, optional
        Observed arrays.
    dims, coords : mapping, optional
        ArviZ dimension names per variable and their coordinates.
    attrs : mapping, optional
        Attributes stored on every group (e.g. ``{"inference": "svi"}``).

    Returns
    -------
    arviz.InferenceData

    Examples
    --------
    >>> import numpy as np
    >>> idata = to_inference_data({"mu": np.zeros(100)}, elbo=np.linspace(-10, -1, 50))
    >>> sorted(idata.groups())
    ['posterior', 'sample_stats']
    """
    if not posterior:
        raise InputError("to_inference_data: the posterior dict is empty")
    post: dict[str, np.ndarray] = {}
    for name, value in posterior.items():
        arr = np.asarray(value, dtype=float)
        if arr.ndim < (2 if chains else 1):
            raise InputError(f"to_inference_data: draws of {name!r} need a draw axis, got shape {arr.shape}")
        post[name] = arr if chains else arr[None, ...]
    kwargs: dict[str, Any] = {"posterior": post, "dims": dict(dims or {}), "coords": dict(coords or {})}
    if observed_data:
        kwargs["observed_data"] = {k: np.asarray(v) for k, v in observed_data.items()}
    per_draw: dict[str, np.ndarray] = {}
    for name, value in (sample_stats or {}).items():
        arr = np.asarray(value)
        per_draw[name] = arr if chains else arr[None, ...]
    if per_draw:
        kwargs["sample_stats"] = per_draw
    import xarray as xr

    az = _arviz()
    idata = az.from_dict(**kwargs)
    if elbo is not None:
        histories = dict(elbo) if isinstance(elbo, Mapping) else {"elbo": np.asarray(elbo, dtype=float)}
        data_vars = {}
        for key, hist in histories.items():
            hist = np.asarray(hist, dtype=float)
            dim = "svi_step" if key == "elbo" else f"{key}_step"
            data_vars[key if key == "elbo" else f"elbo_{key}"] = ((dim,), hist)
        ds = xr.Dataset(data_vars)
        if "sample_stats" in idata.groups():
            idata.sample_stats = xr.merge([idata.sample_stats, ds])
        else:
            idata.add_groups(sample_stats=ds, warn_on_custom_groups=False)
    for group in idata.groups():
        getattr(idata, group).attrs.update(dict(attrs or {}))
    return idata


def summarize_draws(
    draws: Mapping[str, np.ndarray],
    *,
    chains: bool = False,
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
) -> pd.DataFrame:
    """One row per parameter element: mean, sd and quantiles of the draws.

    With ``chains=True`` (NUTS) the ArviZ diagnostics ``r_hat``, ``ess_bulk`` and ``ess_tail``
    are added.

    Parameters
    ----------
    draws : mapping
        ``name -> array`` shaped ``(draw, ...)`` or ``(chain, draw, ...)``.
    chains : bool
        Whether a leading chain axis is present.
    quantiles : sequence of float
        Quantile levels (columns ``q5``, ``q50``, ``q95`` for the defaults).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``name`` or ``name[i,j]``.
    """
    rows = []
    index = []
    for name, value in draws.items():
        arr = np.asarray(value, dtype=float)
        flat = arr.reshape(arr.shape[0] * arr.shape[1], *arr.shape[2:]) if chains else arr
        elem_shape = flat.shape[1:]
        for idx in np.ndindex(*elem_shape) if elem_shape else [()]:
            x = flat[(slice(None), *idx)]
            row = {"mean": x.mean(), "sd": x.std(ddof=1) if x.size > 1 else 0.0}
            for q in quantiles:
                row[f"q{round(100 * q, 3):g}"] = np.quantile(x, q)
            if chains:
                az = _arviz()
                per_chain = arr[(slice(None), slice(None), *idx)]
                row["r_hat"] = float(az.rhat(per_chain))
                row["ess_bulk"] = float(az.ess(per_chain, method="bulk"))
                row["ess_tail"] = float(az.ess(per_chain, method="tail"))
            rows.append(row)
            index.append(name if not idx else f"{name}[{','.join(map(str, idx))}]")
    return pd.DataFrame(rows, index=pd.Index(index, name="parameter"))


def plot_elbo(elbo: Any, *, ax: Any = None, skip: int = 0, title: str | None = None) -> Any:
    """Plot an ELBO history.

    Parameters
    ----------
    elbo : array, mapping of arrays, fitted model or InferenceData
        ELBO per step; a mapping draws one line per restart; a fitted model uses its
        ``elbo_``; an InferenceData uses ``sample_stats.elbo``.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure otherwise.
    skip : int
        Leading steps to leave out (the first steps dwarf the rest).
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if isinstance(elbo, _arviz().InferenceData):
        elbo = elbo["sample_stats"]["elbo"].values
    elif hasattr(elbo, "elbo_"):
        elbo = elbo.elbo_
    histories = dict(elbo) if isinstance(elbo, Mapping) else {"ELBO": np.asarray(elbo, dtype=float)}
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    for label, hist in histories.items():
        hist = np.asarray(hist, dtype=float)
        steps = np.arange(hist.size)
        ax.plot(steps[skip:], hist[skip:], lw=1, label=str(label))
    ax.set_xlabel("SVI step")
    ax.set_ylabel("ELBO")
    if len(histories) > 1:
        ax.legend(fontsize="small")
    ax.set_title(title or "ELBO history")
    fig.tight_layout()
    return fig
