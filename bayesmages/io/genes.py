"""Gene tables.

Two formats are accepted (DESIGN §5):

* positions: ``GENE, CHR, START, END`` (base pairs, inclusive) — mapped to variants by
  position later (:mod:`bayesmages.genes.mapping`);
* index ranges (the ML-MAGES format): ``GENE, CHR, N_SNPS, start_idx_chr, end_idx_chr,
  chr_start_idx_gw`` — inclusive 0-based variant indices within the chromosome, plus the
  genome-wide index of the chromosome's first variant.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.tables import find_column, numeric_column, read_table

__all__ = ["INDEX_COLUMNS", "read_genes", "validate_genes"]

INDEX_COLUMNS = ("N_SNPS", "start_idx_chr", "end_idx_chr", "chr_start_idx_gw")


def read_genes(path: str | os.PathLike[str], *, n_variants: int | None = None) -> pd.DataFrame:
    """Read a gene table in either format.

    Parameters
    ----------
    path : str or path-like
        CSV/TSV file.
    n_variants : int, optional
        Number of variants in the data; with index ranges, every range must lie inside it.

    Returns
    -------
    pandas.DataFrame
        ``GENE, CHR`` plus ``START, END`` (int) when given, and ``N_SNPS, start_idx_chr,
        end_idx_chr, chr_start_idx_gw`` (int) when given. The attribute ``df.attrs["format"]``
        is ``"index"`` when index columns are present, else ``"positions"``.

    Raises
    ------
    InputError
        Missing columns, non-numeric or negative coordinates, END < START, an index range
        whose length disagrees with N_SNPS or that falls outside ``n_variants``, duplicate
        gene names within a chromosome.
    """
    p = Path(path)
    return validate_genes(read_table(p, what="gene table"), source=p, n_variants=n_variants)


def validate_genes(
    raw: pd.DataFrame, source: str | Path = "gene table", n_variants: int | None = None
) -> pd.DataFrame:
    """Validate a gene table (see :func:`read_genes`)."""
    cols = list(raw.columns)
    gene_col = "GENE" if "GENE" in cols else find_column(cols, ("GENE", "GENE_NAME", "SYMBOL", "NAME"))
    chr_col = find_column(cols, ("CHR", "CHROM", "CHROMOSOME", "#CHROM"))
    if gene_col is None:
        raise InputError(f"{source}: gene table needs a GENE column; found {cols}")
    if chr_col is None:
        raise InputError(f"{source}: gene table needs a CHR column; found {cols}")
    out = pd.DataFrame({"GENE": raw[gene_col].astype(str), "CHR": raw[chr_col].astype(str)})
    out["CHR"] = out["CHR"].str.replace(r"^chr", "", regex=True, case=False)
    start = find_column(cols, ("START", "GENE_START", "TXSTART"))
    end = find_column(cols, ("END", "STOP", "GENE_END", "TXEND"))
    idx_cols = {c: find_column(cols, (c,)) for c in INDEX_COLUMNS}
    has_index = all(v is not None for v in idx_cols.values())
    if start is None and end is None and not has_index:
        raise InputError(
            f"{source}: gene table needs START and END columns (positions) or the index columns "
            f"{list(INDEX_COLUMNS)}; found {cols}"
        )
    if (start is None) != (end is None):
        raise InputError(f"{source}: gene table has only one of START/END")
    if start is not None and end is not None:  # both or neither (checked above)
        s = numeric_column(raw, start, source)
        e = numeric_column(raw, end, source)
        bad = (s < 0) | (e < s)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{source}: gene {out['GENE'].iloc[row]!r} (row {row + 1}) has START={s[row]:g}, END={e[row]:g}; "
                "expected 0 <= START <= END"
            )
        out["START"] = s.astype(np.int64)
        out["END"] = e.astype(np.int64)
    if has_index:
        vals = {c: numeric_column(raw, col, source) for c, col in idx_cols.items() if col is not None}
        for c, v in vals.items():
            if ((v < 0) | (v != np.round(v))).any():
                row = int(np.flatnonzero((v < 0) | (v != np.round(v)))[0])
                raise InputError(f"{source}: column {c} must hold non-negative integers, row {row + 1}")
            out[c] = v.astype(np.int64)
        length = out["end_idx_chr"] - out["start_idx_chr"] + 1
        bad_len = (length < 1) | (length != out["N_SNPS"])
        if bad_len.any():
            row = int(np.flatnonzero(bad_len.to_numpy())[0])
            raise InputError(
                f"{source}: gene {out['GENE'].iloc[row]!r} (row {row + 1}): index range "
                f"[{out['start_idx_chr'].iloc[row]}, {out['end_idx_chr'].iloc[row]}] does not hold "
                f"N_SNPS={out['N_SNPS'].iloc[row]} variants"
            )
        if n_variants is not None:
            gw_end = out["chr_start_idx_gw"] + out["end_idx_chr"]
            local_end = out["end_idx_chr"]
            # A table for one block/chromosome uses chromosome-local indices; the genome-wide
            # offset applies when the data span several chromosomes. Both must fit the data.
            outside = (local_end >= n_variants) & (gw_end >= n_variants)
            if outside.any():
                row = int(np.flatnonzero(outside.to_numpy())[0])
                raise InputError(
                    f"{source}: gene {out['GENE'].iloc[row]!r} (row {row + 1}) ends at variant index "
                    f"{int(local_end.iloc[row])}, outside the data's {n_variants} variants"
                )
    dup = out.duplicated(["GENE", "CHR"])
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"{source}: duplicate gene {out['GENE'].iloc[row]!r} on chromosome {out['CHR'].iloc[row]}")
    out.attrs["format"] = "index" if has_index else "positions"
    return out
