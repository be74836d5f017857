"""Individual-level genotypes: CSV (n x p of 0/1/2, NA missing) or PLINK 1 .bed/.bim/.fam."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.tables import find_column, read_table

__all__ = ["SAMPLE_ID_ALIASES", "Genotypes", "read_genotypes"]

#: column names (case-insensitive) recognised as sample identifiers in genotype and phenotype tables
SAMPLE_ID_ALIASES: tuple[str, ...] = ("IID", "SAMPLE", "SAMPLE_ID", "ID")


@dataclass(frozen=True)
class Genotypes:
    """A genotype matrix with its identifiers.

    Attributes
    ----------
    G : numpy.ndarray
        (n, p) float64 minor/alt-allele counts in {0, 1, 2} or dosages in [0, 2]; ``nan`` = missing.
    samples : numpy.ndarray
        n sample ids.
    variants : numpy.ndarray
        p variant ids.
    source : str
        The file read.
    """

    G: np.ndarray
    samples: np.ndarray
    variants: np.ndarray
    source: str = ""


def read_genotypes(path: str | os.PathLike[str], *, sample_column: str | None = None) -> Genotypes:
    """Read genotypes from a PLINK 1 ``.bed`` (with ``.bim``/``.fam``), a PLINK 2 ``.pgen`` or a CSV.

    Parameters
    ----------
    path : str or path-like
        ``prefix.bed`` (or the prefix) for PLINK 1; ``prefix.pgen`` (with ``.pvar``/``.psam``)
        for PLINK 2, read as ALT-allele dosages in [0, 2] (hard calls where no dosage is
        stored; needs ``pgenlib``, in the ``plink`` extra); otherwise a delimited table with one column
        per variant (header = variant ids), values 0/1/2 or dosages in [0, 2], ``NA`` or ``9`` for
        missing.
    sample_column : str, optional
        CSV column holding sample ids (default: ``IID`` or ``sample`` when present, else row numbers).

    Returns
    -------
    Genotypes

    Raises
    ------
    InputError
        Missing files, values outside [0, 2] (other than NA/9), duplicate variant ids.
    """
    p = Path(path)
    bed = p if p.suffix == ".bed" else p.with_name(p.name + ".bed")
    if p.suffix == ".bed" or (not p.exists() and bed.exists()):
        return _read_bed(bed)
    pgen = p if p.suffix == ".pgen" else p.with_name(p.name + ".pgen")
    if p.suffix == ".pgen" or (not p.exists() and pgen.exists()):
        return _read_pgen(pgen)
    df = read_table(p, what="genotype")
    cols = list(df.columns)
    id_col = sample_column or find_column(cols, SAMPLE_ID_ALIASES)
    if sample_column is not None and sample_column not in cols:
        raise InputError(f"{p}: sample column {sample_column!r} not found")
    samples = df[id_col].astype(str).to_numpy() if id_col else np.arange(len(df)).astype(str)
    geno = df.drop(columns=[id_col]) if id_col else df
    variants = np.asarray(geno.columns, dtype=str)
    if len(set(variants)) != len(variants):
        raise InputError(f"{p}: duplicate variant ids in the header")
    numeric = geno.apply(pd.to_numeric, errors="coerce")
    nonnum = (numeric.isna() & geno.notna()).to_numpy()
    if nonnum.any():
        i, j = np.argwhere(nonnum)[0]
        raise InputError(f"{p}: non-numeric genotype {geno.iat[i, j]!r} at row {i + 1}, column {variants[j]}")
    G = np.array(numeric.to_numpy(dtype=np.float64), copy=True)  # pandas may hand out a read-only view
    G[G == 9] = np.nan
    bad = ~np.isnan(G) & ((G < 0) | (G > 2))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{p}: genotype {G[i, j]:g} at row {i + 1}, column {variants[j]} is not an allele count "
                         "or dosage in [0, 2] or missing (NA/9)")
    return Genotypes(G=G, samples=samples, variants=variants, source=str(p))


def _read_bed(bed: Path) -> Genotypes:
    for ext in (".bim", ".fam"):
        if not bed.with_suffix(ext).exists():
            raise InputError(f"{bed}: PLINK fileset incomplete, {bed.with_suffix(ext)} is missing")
    try:
        from bed_reader import open_bed
    except ImportError:
        raise InputError(
            f"{bed}: reading PLINK .bed files needs bed-reader (pip install 'bayesmages[plink]')"
        ) from None
    try:
        with open_bed(bed, count_A1=True) as b:
            # Counts of the A1 allele (the .bim's fifth column; PLINK's convention, bed-reader's
            # default): PLINK 1.9 makes A1 the minor allele unless --keep-allele-order. SKAT
            # flips any column with MAF > 0.5 anyway, so either allele gives the same tests.
            G = b.read(dtype="float64")
            samples = np.asarray(b.iid, dtype=str)
            variants = np.asarray(b.sid, dtype=str)
    except Exception as exc:
        raise InputError(f"{bed}: cannot read the PLINK .bed fileset ({exc})") from None
    return Genotypes(G=G, samples=samples, variants=variants, source=str(bed))


def _plink2_table(path: Path, what: str) -> pd.DataFrame:
    """A .psam/.pvar table: ``##`` meta lines skipped, the ``#``-prefixed header line kept."""
    if not path.exists():
        raise InputError(f"{path}: PLINK 2 fileset incomplete, this {what} file is missing")
    with path.open() as fh:
        lines = [ln for ln in fh if not ln.startswith("##")]
    if not lines or not lines[0].startswith("#"):
        raise InputError(f"{path}: expected a header line starting with '#' (PLINK 2 {what})")
    header = lines[0][1:].split()
    rows = [ln.split() for ln in lines[1:] if ln.strip()]
    if any(len(r) != len(header) for r in rows):
        raise InputError(f"{path}: rows do not all have the {len(header)} columns of the header")
    return pd.DataFrame(rows, columns=header)


def _read_pgen(pgen: Path) -> Genotypes:
    psam = _plink2_table(pgen.with_suffix(".psam"), ".psam")
    pvar = _plink2_table(pgen.with_suffix(".pvar"), ".pvar")
    if "IID" not in psam.columns or "ID" not in pvar.columns:
        raise InputError(f"{pgen}: the .psam needs an IID column and the .pvar an ID column")
    try:
        import pgenlib
    except ImportError:
        raise InputError(f"{pgen}: reading PLINK 2 .pgen files needs pgenlib (pip install 'bayesmages[plink]')"
                         ) from None
    try:
        reader = pgenlib.PgenReader(str(pgen).encode())
        n, p = reader.get_raw_sample_ct(), reader.get_variant_ct()
        if n != len(psam) or p != len(pvar):
            raise InputError(f"{pgen}: {n} samples x {p} variants, but the .psam has {len(psam)} samples and the "
                             f".pvar {len(pvar)} variants")
        buf = np.empty((p, n), dtype=np.float64)
        if p:
            reader.read_dosages_range(0, p, buf)
        reader.close()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{pgen}: cannot read the PLINK 2 fileset ({exc})") from None
    G = np.ascontiguousarray(buf.T)
    G[G < 0] = np.nan  # pgenlib marks missing dosages with -9
    return Genotypes(G=G, samples=psam["IID"].to_numpy(dtype=str), variants=pvar["ID"].to_numpy(dtype=str),
                     source=str(pgen))
