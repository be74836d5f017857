"""Genes -> variant indices (by positions or by the ML-MAGES index-range format).

Variant indices are row numbers of the data (the order of ``beta_shrunk`` and of the LD
blocks laid one after another). Two ways to map (DESIGN §5):

* **positions**: a variant belongs to a gene when it is on the gene's chromosome and
  ``START <= POS <= END`` (inclusive); needs a variant table with ``CHR`` and ``POS``;
* **index**: the ML-MAGES columns ``start_idx_chr..end_idx_chr`` are inclusive, 0-based and
  *chromosome-local*. With a variant table, the local index is counted among that chromosome's
  rows in data order; without one the data are taken to be a single chromosome (local index =
  row). ``index_base="genome"`` uses ``chr_start_idx_gw + start_idx_chr`` as a genome-wide row instead.

Every range is checked against the data: an index past the data's last row, or a gene whose
chromosome has no variants, is an :class:`~bayesmages.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.genes import INDEX_COLUMNS, validate_genes
from bayesmages.io.tables import chromosome_names

__all__ = ["GeneMap", "map_genes"]


@dataclass(frozen=True)
class GeneMap:
    """Genes and the data rows of their variants.

    Attributes
    ----------
    genes : pandas.DataFrame
        ``GENE, CHR, n_variants`` for the genes with at least one variant, in input order.
    indices : list of numpy.ndarray
        Sorted row indices of each gene's variants (aligned with ``genes``).
    unmapped : list of str
        Genes (``CHR:GENE``) that cover no variant of the data (positions mapping only).
    by : str
        ``"positions"`` or ``"index"``.
    """

    genes: pd.DataFrame
    indices: list[np.ndarray]
    unmapped: list[str] = field(default_factory=list)
    by: str = "index"

    def __len__(self) -> int:
        return len(self.indices)


def _as_gene_table(genes: pd.DataFrame, n_variants: int | None) -> pd.DataFrame:
    if not isinstance(genes, pd.DataFrame):
        raise InputError(f"genes: expected a pandas DataFrame (see bayesmages.io.read_genes), got {type(genes)}")
    if "format" in genes.attrs and "GENE" in genes.columns:
        return genes
    return validate_genes(genes, source="genes", n_variants=n_variants)


def map_genes(
    genes: pd.DataFrame,
    *,
    variants: pd.DataFrame | None = None,
    n_variants: int | None = None,
    by: str = "auto",
    index_base: str = "chromosome",
) -> GeneMap:
    """Map genes to the rows of their variants.

    Parameters
    ----------
    genes : pandas.DataFrame
        A gene table (:func:`bayesmages.io.read_genes` output, or raw columns it accepts).
    variants : pandas.DataFrame, optional
        One row per variant in data order with ``CHR`` (and ``POS`` for positions mapping).
    n_variants : int, optional
        Number of variants in the data (default ``len(variants)``); required for index mapping
        without ``variants``.
    by : {"auto", "index", "positions"}
        ``"auto"`` uses the index columns when present, otherwise positions.
    index_base : {"chromosome", "genome"}
        For index mapping: chromosome-local indices (ML-MAGES, default) or genome-wide
        ``chr_start_idx_gw + start_idx_chr``.

    Returns
    -------
    GeneMap

    Raises
    ------
    InputError
        Bad table, unknown ``by``, positions mapping without ``CHR``/``POS`` columns, an index range
        outside the data or on a chromosome absent from ``variants``.

    Examples
    --------
    >>> g = pd.DataFrame({"GENE": ["A", "B"], "CHR": [1, 1], "N_SNPS": [3, 2], "start_idx_chr": [0, 4],
    ...                   "end_idx_chr": [2, 5], "chr_start_idx_gw": [0, 0]})
    >>> gm = map_genes(g, n_variants=6)
    >>> [ix.tolist() for ix in gm.indices]
    [[0, 1, 2], [4, 5]]
    """
    if by not in ("auto", "index", "positions"):
        raise InputError(f"by: expected 'auto', 'index' or 'positions', got {by!r}")
    if index_base not in ("chromosome", "genome"):
        raise InputError(f"index_base: expected 'chromosome' or 'genome', got {index_base!r}")
    if variants is not None:
        if not isinstance(variants, pd.DataFrame):
            raise InputError("variants: expected a DataFrame with CHR (and POS) columns")
        if n_variants is not None and n_variants != len(variants):
            raise InputError(f"variants has {len(variants)} rows but n_variants={n_variants}")
        n_variants = len(variants)
    table = _as_gene_table(genes, None)
    has_index = all(c in table.columns for c in INDEX_COLUMNS)
    has_pos = "START" in table.columns and "END" in table.columns
    if by == "auto":
        by = "index" if has_index else "positions"
    if by == "index":
        if not has_index:
            raise InputError(f"genes: index mapping needs the columns {list(INDEX_COLUMNS)}")
        return _by_index(table, variants, n_variants, index_base)
    if not has_pos:
        raise InputError("genes: positions mapping needs START and END columns")
    if variants is None or not {"CHR", "POS"} <= set(variants.columns):
        raise InputError("variants: positions mapping needs a variant table with CHR and POS columns (data order)")
    return _by_positions(table, variants)


def _by_index(table: pd.DataFrame, variants: pd.DataFrame | None, n: int | None, base: str) -> GeneMap:
    if n is None:
        raise InputError("n_variants: index mapping needs the number of variants (or a variant table)")
    start = table["start_idx_chr"].to_numpy(np.int64)
    end = table["end_idx_chr"].to_numpy(np.int64)
    if base == "genome":
        off = table["chr_start_idx_gw"].to_numpy(np.int64)
        first, last = off + start, off + end
    elif variants is None or "CHR" not in variants.columns:
        first, last = start, end
    else:
        # Chromosome-local index -> data row: the k-th row of that chromosome (in data order).
        vchr = chromosome_names(variants["CHR"])
        rows_of = {c: np.flatnonzero(vchr == c) for c in pd.unique(vchr)}
        first = np.empty_like(start)
        last = np.empty_like(end)
        for i, c in enumerate(table["CHR"].astype(str)):
            rows = rows_of.get(c)
            if rows is None:
                raise InputError(f"genes: gene {table['GENE'].iloc[i]!r} is on chromosome {c}, absent from the data")
            if end[i] >= rows.size:
                raise InputError(
                    f"genes: gene {table['GENE'].iloc[i]!r} (row {i + 1}) ends at index {end[i]} but chromosome {c} "
                    f"has {rows.size} variants in the data"
                )
            if not np.all(np.diff(rows[start[i] : end[i] + 1]) == 1):
                raise InputError(f"genes: gene {table['GENE'].iloc[i]!r}: its variants are not contiguous in the data")
            first[i], last[i] = rows[start[i]], rows[end[i]]
    bad = np.flatnonzero((last >= n) | (first < 0) | (last < first))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"genes: gene {table['GENE'].iloc[i]!r} (row {i + 1}) has index range [{first[i]}, {last[i]}] "
            f"outside the data's {n} variants (expected 0 <= start <= end <= {n - 1})"
        )
    indices = [np.arange(a, b + 1, dtype=np.int64) for a, b in zip(first, last)]
    out = pd.DataFrame({"GENE": table["GENE"].to_numpy(), "CHR": table["CHR"].to_numpy(),
                        "n_variants": [ix.size for ix in indices]})
    return GeneMap(out, indices, [], "index")


def _by_positions(table: pd.DataFrame, variants: pd.DataFrame) -> GeneMap:
    vchr = chromosome_names(variants["CHR"])
    pos = pd.to_numeric(variants["POS"], errors="coerce").to_numpy(np.float64)
    if np.isnan(pos).any():
        row = int(np.flatnonzero(np.isnan(pos))[0])
        raise InputError(f"variants: column POS must be numeric, row {row + 1}")
    by_chr: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for c in pd.unique(vchr):
        rows = np.flatnonzero(vchr == c)
        order = np.argsort(pos[rows], kind="stable")
        by_chr[c] = (rows[order], pos[rows][order])
    keep: list[int] = []
    indices: list[np.ndarray] = []
    unmapped: list[str] = []
    for i, (g, c, s, e) in enumerate(zip(table["GENE"], table["CHR"].astype(str), table["START"], table["END"])):
        rows, p = by_chr.get(c, (np.empty(0, np.int64), np.empty(0)))
        lo, hi = np.searchsorted(p, s, side="left"), np.searchsorted(p, e, side="right")
        if hi <= lo:
            unmapped.append(f"{c}:{g}")
            continue
        keep.append(i)
        indices.append(np.sort(rows[lo:hi]))
    out = table.iloc[keep][["GENE", "CHR"]].reset_index(drop=True)
    out["n_variants"] = [ix.size for ix in indices]
    return GeneMap(out, indices, unmapped, "positions")


def block_layout(sizes: Sequence[int]) -> np.ndarray:
    """Start row of each LD block laid one after another (plus the total at the end).

    Examples
    --------
    >>> block_layout([3, 2]).tolist()
    [0, 3, 5]
    """
    return np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
