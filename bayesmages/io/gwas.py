"""GWAS summary statistics."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.tables import chromosome_names, find_column, numeric_column, read_table

__all__ = ["GWAS_ALIASES", "read_gwas", "validate_gwas"]

#: canonical column -> accepted header names (case-insensitive), DESIGN §5
GWAS_ALIASES: dict[str, tuple[str, ...]] = {
    "CHR": ("CHR", "CHROM", "CHROMOSOME", "#CHROM"),
    "SNP": ("SNP", "ID", "RSID", "VARIANT_ID", "MARKERNAME"),
    "POS": ("POS", "BP", "POSITION"),
    "A1": ("A1", "ALT", "EFFECT_ALLELE"),
    "A2": ("A2", "REF", "OTHER_ALLELE"),
    "BETA": ("BETA", "EFFECT", "B", "LOG_ODDS"),
    "OR": ("OR", "ODDS_RATIO"),
    "SE": ("SE", "STDERR", "STD_ERR", "STANDARD_ERROR"),
    "N": ("N", "NMISS", "OBS_CT"),
}


def read_gwas(
    path: str | os.PathLike[str], *, format: str | None = None, n: float | None = None
) -> pd.DataFrame:
    """Read GWAS summary statistics into canonical columns.

    The format is detected from the header (or forced with ``format=``): PLINK 2 ``--glm``
    output (``.glm.linear``, ``.glm.logistic[.hybrid]``), REGENIE step 2 (``.regenie``), SAIGE
    single-variant output, GWAS-SSF ``.tsv``, or a generic table whose header names are matched
    case-insensitively against :data:`GWAS_ALIASES` (e.g.
    ``#CHROM, RSID, BP, Effect_Allele, Other_Allele, LOG_ODDS, StdErr``). An ``OR`` column is
    log-transformed into ``BETA`` when no ``BETA`` is present. Delimiter is sniffed; ``.gz`` ok.
    See ``docs/formats.md`` for each format's effect allele and the rows left out.

    Parameters
    ----------
    path : str or path-like
        CSV/TSV/whitespace file.
    format : str, optional
        Force a format instead of detecting it from the header: ``"generic"``, ``"plink2"``,
        ``"regenie"``, ``"saige"`` or ``"ssf"``.
    n : float, optional
        Sample size of every variant; replaces the file's N column (required by the program
        formats when the file has none).

    Returns
    -------
    pandas.DataFrame
        Generic tables: columns ``BETA``, ``SE`` and, when present, ``CHR``, ``SNP``, ``POS``,
        ``A1``, ``A2``, ``N`` in that order (then ``EAF`` when the file has a frequency column);
        the row order of the file. Program formats: always ``SNP, CHR, POS, A1, A2, BETA, SE,
        N`` (+ ``EAF``), ``A1`` the effect allele. ``attrs["dropped"]`` lists the rows left out
        (PLINK 2 ``ERRCODE``, REGENIE ``TEST_FAIL``, multi-allelic PLINK 2 rows) with a reason;
        ``attrs["format"]`` names the format read.

    Raises
    ------
    InputError
        Missing BETA/OR or SE, a non-numeric value, NaN/inf BETA, SE <= 0, OR <= 0,
        duplicate SNP identifiers; the message names file, column and row.

    Examples
    --------
    >>> df = read_gwas("trait1.tsv.gz")  # doctest: +SKIP
    >>> df[["BETA", "SE"]].head()  # doctest: +SKIP
    >>> df = read_gwas("height.PHENO1.glm.linear")  # doctest: +SKIP
    >>> df.attrs["format"], df.attrs["dropped"][:1]  # doctest: +SKIP
    ('plink2', [{'SNP': 'rs7', ..., 'reason': 'errcode', 'detail': 'CONST_ALLELE', 'row': 7}])
    """
    from bayesmages.io.gwas_formats import standardise_gwas

    p = Path(path)
    raw = read_table(p, what="GWAS")
    return standardise_gwas(raw, source=p, format=format, n=n, validate_generic=validate_gwas)


def validate_gwas(raw: pd.DataFrame, source: str | Path = "GWAS table") -> pd.DataFrame:
    """Map aliases to canonical columns and validate (see :func:`read_gwas`)."""
    cols = list(raw.columns)
    found = {canon: find_column(cols, aliases) for canon, aliases in GWAS_ALIASES.items()}
    if found["BETA"] is None and found["OR"] is None:
        raise InputError(
            f"{source}: no effect column; expected one of {list(GWAS_ALIASES['BETA'])} or OR; found {cols}"
        )
    if found["SE"] is None:
        raise InputError(f"{source}: no standard-error column; expected one of {list(GWAS_ALIASES['SE'])}")
    out = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    if found["BETA"] is not None:
        out["BETA"] = numeric_column(raw, found["BETA"], source)
    else:
        or_column = found["OR"]
        assert or_column is not None  # no BETA column without an OR column was rejected above
        odds = numeric_column(raw, or_column, source)
        if (odds <= 0).any():
            row = int(np.flatnonzero(odds <= 0)[0])
            raise InputError(f"{source}: column {found['OR']} must be > 0 (odds ratio), row {row + 1}")
        out["BETA"] = np.log(odds)
    se = numeric_column(raw, found["SE"], source)
    if (se <= 0).any():
        row = int(np.flatnonzero(se <= 0)[0])
        raise InputError(f"{source}: column {found['SE']} must be > 0, got {se[row]} at row {row + 1}")
    out["SE"] = se
    for canon in ("CHR", "SNP", "POS", "A1", "A2", "N"):
        col = found[canon]
        if col is None:
            continue
        if canon in ("POS", "N"):
            vals = numeric_column(raw, col, source)
            if canon == "POS" and ((vals < 0) | (vals != np.round(vals))).any():
                row = int(np.flatnonzero((vals < 0) | (vals != np.round(vals)))[0])
                raise InputError(f"{source}: column {col} must hold non-negative integer positions, row {row + 1}")
            if canon == "N" and (vals <= 0).any():
                row = int(np.flatnonzero(vals <= 0)[0])
                raise InputError(f"{source}: column {col} (sample size) must be > 0, row {row + 1}")
            out[canon] = vals.astype(np.int64) if canon == "POS" else vals
        elif canon == "CHR":
            out[canon] = pd.Series(chromosome_names(raw[col]), index=raw.index).astype(str)
        else:
            out[canon] = raw[col].astype(str)
    if "SNP" in out:
        dup = out["SNP"].duplicated()
        if dup.any():
            row = int(np.flatnonzero(dup.to_numpy())[0])
            raise InputError(f"{source}: duplicate SNP identifier {out['SNP'].iloc[row]!r} at row {row + 1}")
    order = [c for c in ("CHR", "SNP", "POS", "A1", "A2", "BETA", "SE", "N") if c in out]
    return out[order]
