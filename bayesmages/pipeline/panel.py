"""Pipeline inputs from a reference panel: GWAS harmonised to the panel's alleles, LD from its LD store.

Every trait's GWAS is harmonised against the panel (:func:`bayesmages.io.harmonise`). A harmonised
variant is used when the panel gives it LD (it lies in an LD block of the store) and every trait has it;
otherwise it joins that trait's dropped table with one of :data:`RUN_DROP_REASONS`. The used variants
are in panel order, block by block, and each block's LD is the store's matrix restricted to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError

__all__ = ["RUN_DROP_REASONS", "LDPanel", "PanelData", "harmonise_to_store", "panel_inputs"]

#: reasons, beyond :data:`bayesmages.io.DROP_REASONS`, that a harmonised variant is not used by ``run``
RUN_DROP_REASONS: tuple[str, ...] = (
    "no_panel_ld",  # the panel variant is in no LD block (no variation in the panel, or outside the boundary file)
    "not_in_every_trait",  # harmonised for this trait but dropped for another one
)


@dataclass(frozen=True)
class LDPanel:
    """A PLINK reference panel as the LD input of :func:`bayesmages.pipeline.run`, with how to use it.

    Attributes
    ----------
    path : str or path-like
        ``prefix.bed`` (with ``.bim`` and ``.fam``) or the prefix.
    store : str or path-like, optional
        The LD store folder (default ``<prefix>.ldstore`` beside the panel); built on first use,
        reused while the panel files and block parameters are unchanged.
    boundaries : str or path-like, optional
        LD block boundary file (``CHR, START, END``); default: blocks cut from the panel's LD.
    min_size, max_size : int
        Block sizes of the LD-based partition.
    shrinkage : float
        Shrink each block toward the identity, ``(1 - s) R + s I`` (for small panels).
    by, ambiguous, freq_margin
        Harmonisation options (:func:`bayesmages.io.harmonise`).

    Examples
    --------
    >>> LDPanel("ref.bed", shrinkage=0.05)  # doctest: +ELLIPSIS
    LDPanel(path='ref.bed', store=None, ..., shrinkage=0.05, ...)
    """

    path: Any
    store: Any = None
    boundaries: Any = None
    min_size: int = 100
    max_size: int = 600
    shrinkage: float = 0.0
    by: str = "position"
    ambiguous: str = "drop"
    freq_margin: float = 0.1


@dataclass
class PanelData:
    """GWAS tables on the variants the run uses, their LD blocks, and the account of every input variant.

    Attributes
    ----------
    gwas : dict of str to pandas.DataFrame
        Per trait: ``SNP, CHR, POS, A1, A2, BETA, SE, N`` (+ ``EAF``) on the used variants in data order.
    variants : pandas.DataFrame
        ``SNP, CHR, POS, A1, A2`` of the used variants.
    blocks : list of numpy.ndarray
        LD matrices in data order (shrunk when asked).
    block_ids : list of int
        The store's id of each block.
    block_rows : list of numpy.ndarray
        Per block, the rows of the store's matrix that the used variants are (``INDEX`` values): a worker
        can read a block itself with ``LDStore(store).block(block_ids[b], rows=block_rows[b],
        shrinkage=shrinkage)`` instead of being sent the matrix.
    store : pathlib.Path or None
        The LD store's folder.
    shrinkage : float
        The shrinkage toward the identity applied to ``blocks``.
    dropped : dict of str to pandas.DataFrame
        Per trait, every input variant not used, with its reason.
    reports : dict of str to dict
        Per trait: the counts of :func:`bayesmages.io.harmonise` plus ``n_used``; ``n_input == n_used +
        n_dropped`` and ``dropped`` counts every reason.
    """

    gwas: dict[str, pd.DataFrame]
    variants: pd.DataFrame
    blocks: list[np.ndarray]
    block_ids: list[int]
    dropped: dict[str, pd.DataFrame]
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    block_rows: list[np.ndarray] = field(default_factory=list)
    store: Any = None
    shrinkage: float = 0.0


def _moved(gwas: pd.DataFrame, table: pd.DataFrame, mask: np.ndarray, reason: str, detail: Any) -> pd.DataFrame:
    """Rows of the harmonised ``table`` under ``mask`` as dropped-table rows (alleles as the GWAS gave them)."""
    rows = table.loc[mask, "GWAS_ROW"].to_numpy(dtype=np.int64)
    src = gwas.iloc[rows]
    return pd.DataFrame({
        "SNP": table.loc[mask, "GWAS_SNP"].to_numpy(),
        "CHR": src["CHR"].astype(str).to_numpy() if "CHR" in src else table.loc[mask, "CHR"].to_numpy(),
        "POS": pd.to_numeric(src["POS"]).to_numpy() if "POS" in src else table.loc[mask, "POS"].to_numpy(),
        "A1": src["A1"].astype(str).str.upper().to_numpy(), "A2": src["A2"].astype(str).str.upper().to_numpy(),
        "reason": reason, "detail": detail, "GWAS_ROW": rows, "FILE_ROW": None,
    })


def harmonise_to_store(
    gwas: Mapping[str, pd.DataFrame],
    store: Any,
    *,
    by: str = "position",
    ambiguous: str = "drop",
    freq_margin: float = 0.1,
    shrinkage: float = 0.0,
    source: str = "the reference panel",
) -> PanelData:
    """Harmonise each trait's GWAS against an LD store's panel; the variants every trait has, with their LD.

    Parameters
    ----------
    gwas : mapping of str to pandas.DataFrame
        Trait name -> table from :func:`bayesmages.io.read_gwas`.
    store : LDStore
        The panel's LD store (:func:`bayesmages.io.ld_store`).
    by, ambiguous, freq_margin
        As in :func:`bayesmages.io.harmonise`; the panel's ``FREQ`` (of its A1, from the panel's
        genotypes) is used for strand-ambiguous variants with ``ambiguous="frequency"``.
    shrinkage : float
        Shrink every LD block toward the identity (:func:`bayesmages.io.ldstore.shrink_ld`).
    source : str
        The panel's name in error messages.

    Returns
    -------
    PanelData

    Raises
    ------
    InputError
        No variant of a GWAS matches the panel, or no variant is left that every trait has.
    """
    from bayesmages.io import harmonise
    from bayesmages.io.ldstore import EXCLUDED_REASONS, shrink_ld

    panel = store.variants
    in_block = panel["BLOCK"].to_numpy() >= 0
    excluded = panel["EXCLUDED"].to_numpy()
    results = {}
    for t, table in gwas.items():
        h_table, h_dropped, report = harmonise(table, panel, by=by, ambiguous=ambiguous,  # type: ignore[arg-type]
                                               freq_margin=freq_margin)
        if report["n_harmonised"] == 0:
            reasons = ", ".join(f"{k} {v}" for k, v in report["dropped"].items() if v)
            raise InputError(f"{source}: none of the {report['n_input']} variants of the GWAS of {t} matches a panel "
                             f"variant ({reasons}); check the genome build, the chromosome names and whether to match "
                             "by position or by id")
        results[t] = (h_table, h_dropped, report)
    common = None
    for h_table, _, _ in results.values():
        idx = h_table["PANEL_INDEX"].to_numpy()
        idx = idx[in_block[idx]]
        common = idx if common is None else np.intersect1d(common, idx, assume_unique=True)
    assert common is not None
    if common.size == 0:
        raise InputError(f"{source}: no harmonised variant has LD in the panel"
                         + (" and is in every trait's GWAS" if len(results) > 1 else "")
                         + "; see the dropped tables")
    out_gwas, dropped, reports = {}, {}, {}
    for t, (h_table, h_dropped, report) in results.items():
        idx = h_table["PANEL_INDEX"].to_numpy()
        no_ld = ~in_block[idx]
        other = ~no_ld & ~np.isin(idx, common)
        detail = np.array([EXCLUDED_REASONS.get(int(c), "") for c in excluded[idx[no_ld]]], dtype=object)
        extra = [_moved(gwas[t], h_table, no_ld, "no_panel_ld", detail),
                 _moved(gwas[t], h_table, other, "not_in_every_trait", "harmonised here, dropped for another trait")]
        dropped[t] = pd.concat([h_dropped, *[e for e in extra if len(e)]], ignore_index=True)
        used = h_table[~(no_ld | other)].reset_index(drop=True)
        out_gwas[t] = used.drop(columns=["GWAS_ROW", "GWAS_SNP", "SWAPPED", "STRAND_FLIPPED"])
        counts = {**report["dropped"], "no_panel_ld": int(no_ld.sum()), "not_in_every_trait": int(other.sum())}
        reports[t] = {**report, "dropped": counts, "n_used": len(used), "n_dropped": len(dropped[t])}
        # the promise: every input variant is used or dropped with a reason
        assert reports[t]["n_input"] == len(used) + len(dropped[t]) == len(used) + sum(counts.values())

    first = out_gwas[next(iter(out_gwas))]
    variants = first[["SNP", "CHR", "POS", "A1", "A2"]].reset_index(drop=True)
    blk = panel["BLOCK"].to_numpy()[common]
    pos_in_block = panel["INDEX"].to_numpy()[common]
    cuts = np.flatnonzero(np.diff(blk)) + 1
    blocks, block_ids, block_rows = [], [], []
    for part in np.split(np.arange(common.size), cuts):
        b = int(blk[part[0]])
        rows = pos_in_block[part]
        blocks.append(shrink_ld(store.matrix(b)[np.ix_(rows, rows)], shrinkage))
        block_ids.append(b)
        block_rows.append(rows)
    return PanelData(gwas=out_gwas, variants=variants, blocks=blocks, block_ids=block_ids, dropped=dropped,
                     reports=reports, block_rows=block_rows, store=getattr(store, "path", None), shrinkage=shrinkage)


def panel_inputs(gwas: Mapping[str, pd.DataFrame], panel: Any, *, progress: bool = False) -> tuple[PanelData, str]:
    """Open (or build) the panel's LD store and harmonise every trait against it; ``(data, store key)``.

    Parameters
    ----------
    gwas : mapping of str to pandas.DataFrame
        Trait name -> GWAS table.
    panel : LDPanel, str or path-like
        The reference panel (a path means ``LDPanel(path)``).
    progress : bool
        Progress lines of the store build on stderr.
    """
    import os

    from bayesmages.io.ldstore import ld_store

    if isinstance(panel, str | os.PathLike):
        panel = LDPanel(panel)
    if not isinstance(panel, LDPanel):
        raise InputError(f"ld_panel: expected a path or an LDPanel, got {type(panel).__name__}")
    if not 0 <= panel.shrinkage < 1:
        raise InputError(f"ld_panel: shrinkage must be in [0, 1), got {panel.shrinkage!r}")
    store = ld_store(panel.path, panel.store, boundaries=panel.boundaries, min_size=panel.min_size,
                     max_size=panel.max_size, progress=progress)
    data = harmonise_to_store(gwas, store, by=panel.by, ambiguous=panel.ambiguous, freq_margin=panel.freq_margin,
                              shrinkage=panel.shrinkage, source=str(panel.path))
    return data, store.key
