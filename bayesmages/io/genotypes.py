"""Individual-level genotypes: CSV (n x p of 0/1/2, NA missing), PLINK 1 .bed/.bim/.fam or PLINK 2 .pgen.

:func:`read_genotypes` loads a whole matrix; :func:`open_genotypes` opens a PLINK fileset without
reading genotypes and returns a :class:`GenotypeFile` whose :class:`GenotypeRef` (path, format and
dimensions, a few bytes) lets any process that can see the path read chosen variant columns:
the unit of work of :func:`bayesmages.skat.run_sets` on workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.tables import find_column, read_table

__all__ = [
    "SAMPLE_ID_ALIASES",
    "GenotypeFile",
    "GenotypeRef",
    "Genotypes",
    "is_plink_fileset",
    "open_genotypes",
    "read_genotypes",
]

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


@dataclass(frozen=True)
class GenotypeRef:
    """Where a PLINK genotype matrix lives: enough for a worker process to read any of its columns.

    Attributes
    ----------
    path : str
        Absolute path of the ``.bed`` or ``.pgen`` file (workers need read access to it).
    format : {"bed", "pgen"}
        PLINK 1 (A1 counts, hard calls) or PLINK 2 (ALT dosages in [0, 2]).
    n_samples, n_variants : int
        Dimensions, from the ``.fam``/``.psam`` and ``.bim``/``.pvar`` read when the file was opened
        (a worker then needs only the genotype file itself).
    """

    path: str
    format: str
    n_samples: int
    n_variants: int

    @contextmanager
    def reader(self, num_threads: int | None = 1) -> Iterator[Callable[[Sequence[int] | None], np.ndarray]]:
        """Open the file once and yield ``read(cols)`` for reading variant columns.

        ``read(cols)`` is an (n_samples, len(cols)) float64 C-ordered matrix of those columns, in the
        order given (``None``: all), ``nan`` for missing. ``num_threads`` is bed-reader's decoding
        threads (1 on a worker that owns one core).
        Errors opening or reading are :class:`~bayesmages.errors.InputError` naming the file and host.
        """
        if self.format not in ("bed", "pgen"):
            raise InputError(f"{self.path}: unknown genotype format {self.format!r} (expected bed or pgen)")
        handle = self._guard(lambda: self._open(num_threads))
        try:
            yield lambda cols: self._guard(lambda: self._read(handle, cols, num_threads))
        finally:
            handle.__exit__(None, None, None) if self.format == "bed" else handle.close()

    def _guard(self, fn: Callable[[], Any]) -> Any:
        where = os.uname().nodename
        try:
            return fn()
        except InputError:
            raise
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read genotypes on host {where} ({exc}); every worker needs "
                             "read access to this path (a shared file system)") from None
        except Exception as exc:
            raise InputError(f"{self.path}: cannot read the PLINK {self.format} fileset on host {where} "
                             f"({type(exc).__name__}: {exc})") from None

    def _open(self, num_threads: int | None) -> Any:
        if self.format == "bed":
            return _bed_reader(self.path)(self.path, count_A1=True, iid_count=self.n_samples,
                                          sid_count=self.n_variants, num_threads=num_threads)
        return _pgenlib(self.path).PgenReader(self.path.encode(), raw_sample_ct=self.n_samples)

    def _read(self, handle: Any, cols: Sequence[int] | None, num_threads: int | None) -> np.ndarray:
        if self.format == "bed":
            # A1 counts, as PLINK counts them (SKAT flips any MAF > 0.5 column anyway).
            index = None if cols is None else np.s_[:, np.asarray(cols, dtype=np.intp)]
            return np.ascontiguousarray(handle.read(index=index, dtype="float64", num_threads=num_threads))
        if cols is None:
            buf = np.empty((self.n_variants, self.n_samples), dtype=np.float64)
            if self.n_variants:
                handle.read_dosages_range(0, self.n_variants, buf)
        else:
            idx = np.asarray(cols, dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= self.n_variants):
                raise InputError(f"{self.path}: variant index out of range 0..{self.n_variants - 1}")
            # pgenlib allows unsorted or repeated indices only "for now": read each once, increasing
            uniq, inverse = np.unique(idx, return_inverse=True)
            buf = np.empty((uniq.size, self.n_samples), dtype=np.float64)
            if uniq.size:
                handle.read_dosages_list(uniq.astype(np.uint32), buf)
            buf = buf[inverse]
        G = np.ascontiguousarray(buf.T)
        G[G < 0] = np.nan  # pgenlib marks missing dosages with -9
        return G

    def read(self, cols: Sequence[int] | None = None, num_threads: int | None = 1) -> np.ndarray:
        """The (n_samples, len(cols)) float64 matrix of variant columns ``cols`` (``None``: all)."""
        with self.reader(num_threads) as read:
            return read(cols)


@dataclass(frozen=True)
class GenotypeFile:
    """An opened PLINK fileset: its sample and variant ids and a :class:`GenotypeRef` to read columns.

    Attributes
    ----------
    ref : GenotypeRef
        Path, format and dimensions: what work units carry instead of genotypes.
    samples, variants : numpy.ndarray
        Sample ids (``.fam`` IID / ``.psam`` IID) and variant ids (``.bim`` / ``.pvar`` ID).
    """

    ref: GenotypeRef
    samples: np.ndarray
    variants: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(n_samples, n_variants)."""
        return self.ref.n_samples, self.ref.n_variants

    def read(self, cols: Sequence[int] | None = None) -> np.ndarray:
        """Columns ``cols`` (``None``: all) as an (n, len(cols)) float64 matrix, ``nan`` missing."""
        return self.ref.read(cols)


def _plink_path(path: str | os.PathLike[str]) -> tuple[str, Path] | None:
    """``("bed" | "pgen", file)`` when ``path`` names a PLINK fileset (file or prefix), else None."""
    p = Path(path)
    bed = p if p.suffix == ".bed" else p.with_name(p.name + ".bed")
    if p.suffix == ".bed" or (not p.exists() and bed.exists()):
        return "bed", bed
    pgen = p if p.suffix == ".pgen" else p.with_name(p.name + ".pgen")
    if p.suffix == ".pgen" or (not p.exists() and pgen.exists()):
        return "pgen", pgen
    return None


def is_plink_fileset(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a PLINK ``.bed`` or ``.pgen`` fileset (the file or its prefix), not a table."""
    return _plink_path(path) is not None


def open_genotypes(path: str | os.PathLike[str]) -> GenotypeFile:
    """Open a PLINK 1 ``.bed`` or PLINK 2 ``.pgen`` fileset without reading its genotypes.

    Parameters
    ----------
    path : str or path-like
        ``prefix.bed`` / ``prefix.pgen`` or the prefix (as :func:`read_genotypes`).

    Returns
    -------
    GenotypeFile
        Ids from the ``.fam``/``.bim`` (``.psam``/``.pvar``) and a reference for reading columns.

    Raises
    ------
    InputError
        Not a PLINK fileset (CSV genotypes: use :func:`read_genotypes`), or a file is missing or malformed.

    Examples
    --------
    >>> import pathlib, tempfile, numpy as np
    >>> from bed_reader import to_bed
    >>> bed = pathlib.Path(tempfile.mkdtemp()) / "g.bed"
    >>> to_bed(bed, np.array([[0, 1, 2], [2, 1, 0]], dtype=np.float32))
    >>> f = open_genotypes(bed)
    >>> f.shape, f.read([2, 0]).tolist()
    ((2, 3), [[2.0, 0.0], [0.0, 2.0]])
    """
    found = _plink_path(path)
    if found is None:
        raise InputError(f"{path}: not a PLINK .bed or .pgen fileset (CSV genotypes are read whole with "
                         "read_genotypes)")
    kind, file = found
    return _open_bed(file) if kind == "bed" else _open_pgen(file)


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
    plink = _plink_path(p)
    if plink is not None:
        f = open_genotypes(p)
        return Genotypes(G=f.ref.read(None, num_threads=None), samples=f.samples, variants=f.variants,
                         source=str(plink[1]))
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


def _open_bed(bed: Path) -> GenotypeFile:
    for ext in (".bim", ".fam"):
        if not bed.with_suffix(ext).exists():
            raise InputError(f"{bed}: PLINK fileset incomplete, {bed.with_suffix(ext)} is missing")
    open_bed = _bed_reader(bed)
    try:
        with open_bed(bed, count_A1=True) as b:
            samples = np.asarray(b.iid, dtype=str)
            variants = np.asarray(b.sid, dtype=str)
    except Exception as exc:
        raise InputError(f"{bed}: cannot read the PLINK .bed fileset ({exc})") from None
    return GenotypeFile(GenotypeRef(str(bed.resolve()), "bed", samples.size, variants.size), samples, variants)


def _bed_reader(bed: Path | str) -> Any:
    try:
        from bed_reader import open_bed
    except ImportError:
        raise InputError(
            f"{bed}: reading PLINK .bed files needs bed-reader (pip install 'bayesmages[plink]')"
        ) from None
    return open_bed


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


def _open_pgen(pgen: Path) -> GenotypeFile:
    psam = _plink2_table(pgen.with_suffix(".psam"), ".psam")
    pvar = _plink2_table(pgen.with_suffix(".pvar"), ".pvar")
    if "IID" not in psam.columns or "ID" not in pvar.columns:
        raise InputError(f"{pgen}: the .psam needs an IID column and the .pvar an ID column")
    pgenlib = _pgenlib(pgen)
    try:
        reader = pgenlib.PgenReader(str(pgen).encode())
        n, p = reader.get_raw_sample_ct(), reader.get_variant_ct()
        reader.close()
    except Exception as exc:
        raise InputError(f"{pgen}: cannot read the PLINK 2 fileset ({exc})") from None
    if n != len(psam) or p != len(pvar):
        raise InputError(f"{pgen}: {n} samples x {p} variants, but the .psam has {len(psam)} samples and the "
                         f".pvar {len(pvar)} variants")
    return GenotypeFile(GenotypeRef(str(pgen.resolve()), "pgen", n, p), psam["IID"].to_numpy(dtype=str),
                        pvar["ID"].to_numpy(dtype=str))


def _pgenlib(pgen: Path | str) -> Any:
    try:
        import pgenlib
    except ImportError:
        raise InputError(f"{pgen}: reading PLINK 2 .pgen files needs pgenlib (pip install 'bayesmages[plink]')"
                         ) from None
    return pgenlib
