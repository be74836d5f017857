"""LD from a PLINK 1 reference panel (.bed/.bim/.fam): block boundaries and per-block correlation matrices.

Genotypes are read with bed-reader a chunk of variants at a time (never the whole panel), as counts of
the ``.bim``'s ``A1`` allele; a missing genotype is replaced by its variant's mean (mean imputation, which
pulls correlations involving that variant slightly toward zero); correlations are computed in float64.
A variant with no variation in the panel has no correlation and belongs to no block.

Blocks never cross chromosomes. Within a chromosome they come from

* the panel itself (default): the minimum cross-block LD partition of
  :class:`bayesmages.stats.blocks.BlockCutter` on the squared correlations of each variant with the
  ``max_size - 1`` variants before it (computed in float32: only the cut points depend on them);
* or a boundary file (e.g. the LDetect blocks of Berisa & Pickrell 2016): columns ``CHR, START, END``
  (aliases ``chr``/``chrom``, ``start``, ``stop``/``end``); a variant belongs to the region with
  ``START <= POS < END``; variants in no region belong to no block.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError

__all__ = ["PanelFiles", "block_ranges", "iter_block_correlations", "panel_files", "read_boundaries",
           "region_correlation"]

#: variants read from the .bed at a time when cutting blocks from LD
CHUNK = 512


@dataclass(frozen=True)
class PanelFiles:
    """The three files of a PLINK 1 fileset and its dimensions.

    Attributes
    ----------
    bed, bim, fam : pathlib.Path
        The files.
    n_samples, n_variants : int
        Lines of the ``.fam`` and the ``.bim``.
    """

    bed: Path
    bim: Path
    fam: Path
    n_samples: int
    n_variants: int


def _count_lines(path: Path) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def panel_files(path: str | os.PathLike[str]) -> PanelFiles:
    """Locate and check a PLINK 1 fileset given as ``prefix.bed``, ``prefix.bim`` or ``prefix``.

    Parameters
    ----------
    path : str or path-like
        Any of the three files, or their common prefix.

    Returns
    -------
    PanelFiles

    Raises
    ------
    InputError
        A missing file, a ``.bed`` without PLINK's SNP-major magic bytes, or a ``.bed`` whose size is
        not what the ``.bim`` and ``.fam`` line counts require (files of different filesets).
    """
    p = Path(path)
    prefix = p.with_suffix("") if p.suffix in (".bed", ".bim", ".fam") else p
    bed, bim, fam = (prefix.with_name(prefix.name + ext) for ext in (".bed", ".bim", ".fam"))
    for f in (bed, bim, fam):
        if not f.is_file():
            raise InputError(f"{p}: PLINK reference panel incomplete, {f} is missing (need .bed, .bim and .fam)")
    n, m = _count_lines(fam), _count_lines(bim)
    if n < 2 or m < 1:
        raise InputError(f"{p}: the panel has {n} samples ({fam}) and {m} variants ({bim}); LD needs at least "
                         "2 samples and 1 variant")
    with open(bed, "rb") as fh:
        magic = fh.read(3)
    if magic != b"\x6c\x1b\x01":
        raise InputError(f"{bed}: not a variant-major PLINK 1 .bed file (its first bytes are {magic.hex()}, "
                         "expected 6c1b01)")
    expected = 3 + m * ((n + 3) // 4)
    size = bed.stat().st_size
    if size != expected:
        raise InputError(f"{bed}: {size} bytes, but {m} variants ({bim}) x {n} samples ({fam}) need {expected}; "
                         "the .bed, .bim and .fam are not one fileset")
    return PanelFiles(bed=bed, bim=bim, fam=fam, n_samples=n, n_variants=m)


def read_boundaries(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an LD block boundary file: one region per row, ``CHR, START, END`` (``START <= POS < END``).

    Parameters
    ----------
    path : str or path-like
        A delimited table with a header; ``chr``/``chrom``, ``start``, ``stop``/``end`` are accepted.

    Returns
    -------
    pandas.DataFrame
        ``CHR`` (normalised like :func:`~bayesmages.io.harmonise` does), ``START``, ``END`` (int64).

    Raises
    ------
    InputError
        A missing column, a non-integer bound, ``END <= START``, or overlapping regions.
    """
    from bayesmages.io.harmonisation import normalise_chromosomes
    from bayesmages.io.tables import find_column, read_table

    p = Path(path)
    df = read_table(p, what="LD block boundary")
    cols = {}
    for key, aliases in (("CHR", ("CHR", "CHROM", "CHROMOSOME", "#CHROM")), ("START", ("START",)),
                         ("END", ("END", "STOP"))):
        col = find_column(list(df.columns), aliases)
        if col is None:
            raise InputError(f"{p}: LD block boundary file needs a {key} column ({'/'.join(aliases)}); "
                             f"found {list(df.columns)}")
        cols[key] = df[col]
    out = pd.DataFrame({"CHR": normalise_chromosomes(cols["CHR"])})
    for key in ("START", "END"):
        v = pd.to_numeric(cols[key], errors="coerce")
        bad = v.isna() | (v != v.round()) | (v < 0)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{p}: {key} at row {i + 1} is {cols[key].iloc[i]!r}; expected a non-negative integer")
        out[key] = v.astype(np.int64)
    empty = np.flatnonzero((out["END"] <= out["START"]).to_numpy())
    if empty.size:
        raise InputError(f"{p}: row {empty[0] + 1} has END <= START")
    out = out.sort_values(["CHR", "START"], kind="stable").reset_index(drop=True)
    same = out["CHR"].to_numpy()[1:] == out["CHR"].to_numpy()[:-1]
    overlap = np.flatnonzero(same & (out["START"].to_numpy()[1:] < out["END"].to_numpy()[:-1]))
    if overlap.size:
        r = out.iloc[overlap[0] + 1]
        raise InputError(f"{p}: regions overlap on chromosome {r['CHR']} at {r['START']}")
    return out


class _Reader:
    """A .bed opened once; standardised genotype chunks."""

    def __init__(self, files: PanelFiles) -> None:
        try:
            from bed_reader import open_bed
        except ImportError:
            raise InputError(f"{files.bed}: LD from a PLINK panel needs bed-reader (pip install "
                             "'bayesmages[plink]')") from None
        self.files = files
        # the dimensions are given so that bed-reader does not parse the .bim and .fam again
        self.bed = open_bed(files.bed, iid_count=files.n_samples, sid_count=files.n_variants, count_A1=True)

    def close(self) -> None:
        self.bed.__exit__(None, None, None)

    def standardised(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Columns ``lo..hi-1``: (n, k) mean-imputed, centred, unit-norm genotypes; A1 frequencies; usable mask."""
        try:
            X = self.bed.read(index=np.s_[:, lo:hi], dtype="float64", order="F")
        except Exception as exc:
            raise InputError(f"{self.files.bed}: cannot read variants {lo + 1}..{hi} ({exc})") from None
        missing = np.isnan(X)
        observed = (~missing).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(observed > 0, np.nansum(X, axis=0) / np.maximum(observed, 1), np.nan)
        if missing.any():
            X = np.where(missing, mean, X)  # mean imputation (all-missing columns stay nan and are unusable)
        X -= mean
        norm = np.sqrt(np.einsum("ij,ij->j", X, X))
        usable = np.isfinite(norm) & (norm > 1e-8)  # exactly 0 for a monomorphic variant
        X[:, usable] /= norm[usable]
        return X, mean / 2.0, usable


def region_correlation(reader: _Reader, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlation (float64) of the usable variants of panel rows ``lo..hi-1``; A1 frequencies; usable mask."""
    X, freq, usable = reader.standardised(lo, hi)
    Xs = np.asfortranarray(X[:, usable])
    R = Xs.T @ Xs
    R = 0.5 * (R + R.T)
    np.clip(R, -1.0, 1.0, out=R)
    np.fill_diagonal(R, 1.0)
    return R, freq, usable


def _chromosome_runs(chrom: np.ndarray, pos: np.ndarray, source: Path) -> list[tuple[str, int, int]]:
    """(chromosome, first row, end row) of each chromosome; the .bim must be sorted within chromosomes."""
    change = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(chrom)]])
    runs = [(str(chrom[a]), int(a), int(b)) for a, b in zip(starts, ends)]
    seen: set[str] = set()
    for c, a, b in runs:
        if c in seen:
            raise InputError(f"{source}: chromosome {c} appears again at row {a + 1} after other chromosomes; "
                             "the panel must list each chromosome's variants together, sorted by position")
        seen.add(c)
        down = np.flatnonzero(np.diff(pos[a:b]) < 0)
        if down.size:
            raise InputError(f"{source}: position decreases at row {a + down[0] + 2} (chromosome {c}); the panel "
                             "must be sorted by position within each chromosome")
    return runs


def _ld_cuts(reader: _Reader, lo: int, hi: int, min_size: int, max_size: int) -> list[tuple[int, int]]:
    """Row ranges of the blocks of rows ``lo..hi-1`` (one chromosome) cut from the panel's LD."""
    from bayesmages.stats.blocks import BlockCutter

    cutter = BlockCutter(hi - lo, min_size=min_size, max_size=max_size)
    n = reader.files.n_samples
    window = np.empty((0, n), dtype=np.float32)  # the last max_size - 1 usable variants, variant-major
    rows = []
    for a in range(lo, hi, CHUNK):
        b = min(a + CHUNK, hi)
        X, _, usable = reader.standardised(a, b)
        Xt = np.ascontiguousarray(X[:, usable].T, dtype=np.float32)
        rows.append(np.arange(a, b)[usable])
        Y = np.concatenate([window, Xt])
        # squared correlations of each new variant with the window and the chunk (float64 for the sums)
        G = np.square(Y @ Xt.T, dtype=np.float64)
        w0 = len(window)
        # band[j, t]: new variant j with the variant t places before it (rows of G: window, then chunk)
        j = np.arange(len(Xt))[:, None]
        src = w0 + j - np.arange(max_size)[None, :]
        cutter.push(G[np.maximum(src, 0), j])  # src < 0: before the chromosome, ignored by the cutter
        window = Y[len(Y) - min(len(Y), max_size - 1) :]
    kept = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    cuts = cutter.cuts()
    return [(int(kept[c0]), int(kept[c1 - 1]) + 1) for c0, c1 in itertools.pairwise(cuts) if c1 > c0]


def block_ranges(
    files: PanelFiles,
    chrom: np.ndarray,
    pos: np.ndarray,
    *,
    boundaries: pd.DataFrame | None = None,
    min_size: int = 100,
    max_size: int = 600,
) -> list[tuple[str, int, int]]:
    """The panel's LD blocks as ``(chromosome, first row, end row)`` of consecutive .bim rows.

    Parameters
    ----------
    files : PanelFiles
        The panel.
    chrom, pos : numpy.ndarray
        Normalised chromosome and position of every panel variant (.bim order).
    boundaries : pandas.DataFrame, optional
        From :func:`read_boundaries`; default: cut blocks from the panel's LD.
    min_size, max_size : int
        Block sizes (usable variants) of the LD-based partition.

    Returns
    -------
    list of tuple
        Non-overlapping row ranges in .bim order; rows in no range belong to no block.
    """
    runs = _chromosome_runs(chrom, pos, files.bim)
    out: list[tuple[str, int, int]] = []
    if boundaries is not None:
        for c, a, b in runs:
            reg = boundaries[boundaries["CHR"] == c]
            p = pos[a:b]
            lo = np.searchsorted(p, reg["START"].to_numpy(), side="left")
            hi = np.searchsorted(p, reg["END"].to_numpy(), side="left")
            out.extend((c, a + int(x), a + int(y)) for x, y in zip(lo, hi) if y > x)
        return out
    reader = _Reader(files)
    try:
        for c, a, b in runs:
            out.extend((c, x, y) for x, y in _ld_cuts(reader, a, b, min_size, max_size))
    finally:
        reader.close()
    return out


def iter_block_correlations(files: PanelFiles, ranges: list[tuple[str, int, int]]) -> Iterator[tuple[Any, ...]]:
    """Yield ``(range, R, A1 frequencies, usable mask)`` per block range, reading the .bed once per block."""
    reader = _Reader(files)
    try:
        for rng in ranges:
            R, freq, usable = region_correlation(reader, rng[1], rng[2])
            yield rng, R, freq, usable
    finally:
        reader.close()
