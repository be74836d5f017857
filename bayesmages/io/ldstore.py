"""An on-disk LD store: the LD blocks of a PLINK reference panel, computed once and read by block id.

Layout of a store folder::

    manifest.json      format, version, the panel's files (paths, sizes, sha256), the block parameters,
                       the key (a hash of all of these), and one entry per block (id, CHR, START, END,
                       n_variants, file)
    variants.npz       one entry per panel variant (.bim order): SNP, CHR (as in the .bim), POS, A1, A2, FREQ (of A1),
                       BLOCK (-1: in no block), INDEX (its row in its block), EXCLUDED (why in no block)
    blocks/000000.npy  one float64 correlation matrix per block (rows: the block's variants in .bim
                       order), read memory-mapped: opening a block costs no more than what is touched

The store is built under a temporary name beside its folder and renamed into place when complete, so a
killed build leaves no half store. :func:`ld_store` opens the store when its key matches the panel
files (their sha256) and the parameters, and rebuilds it otherwise; a folder that is not an LD store
is never replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmages.errors import InputError
from bayesmages.io.ld import LDBlock

__all__ = ["EXCLUDED_REASONS", "LDStore", "build_ld_store", "default_store_path", "ld_store", "shrink_ld"]

STORE_FORMAT = "bayesmages-ld-store"
STORE_VERSION = 1
MANIFEST = "manifest.json"
VARIANTS = "variants.npz"
BLOCKS = "blocks"

#: why a panel variant belongs to no block (``EXCLUDED`` code -> reason); code 0: it is in a block
EXCLUDED_REASONS: dict[int, str] = {
    1: "no variation in the reference panel (its LD is undefined)",
    2: "outside every region of the LD block boundary file",
}


def shrink_ld(R: np.ndarray, shrinkage: float) -> np.ndarray:
    """``(1 - s) R + s I``: an LD estimate shrunk toward the identity (for small reference panels).

    Parameters
    ----------
    R : numpy.ndarray
        Correlation matrix.
    shrinkage : float
        ``s`` in [0, 1); 0 returns ``R`` as a float64 array.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> shrink_ld(np.array([[1.0, 0.5], [0.5, 1.0]]), 0.2).tolist()
    [[1.0, 0.4], [0.4, 1.0]]
    """
    if not 0 <= shrinkage < 1:
        raise InputError(f"LD shrinkage must be in [0, 1), got {shrinkage!r}")
    R = np.array(R, dtype=np.float64)
    if shrinkage:
        R *= 1.0 - shrinkage
        R[np.diag_indices_from(R)] += shrinkage
    return R


def default_store_path(panel: str | os.PathLike[str]) -> Path:
    """Where :func:`ld_store` keeps a panel's store by default: ``<prefix>.ldstore`` beside the ``.bed``."""
    p = Path(panel)
    prefix = p.with_suffix("") if p.suffix in (".bed", ".bim", ".fam") else p
    return prefix.with_name(prefix.name + ".ldstore")


class LDStore:
    """A finished LD store (see the module docstring for its layout).

    Parameters
    ----------
    path : str or path-like
        The store folder.

    Raises
    ------
    InputError
        The folder is not a complete LD store of this version.

    Examples
    --------
    >>> store = LDStore("ref.ldstore")  # doctest: +SKIP
    >>> store.block(12).R.shape  # doctest: +SKIP
    (873, 873)
    >>> store.variants.query("BLOCK == 12")[["SNP", "A1", "A2"]].head()  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        manifest = _read_manifest(self.path)
        if manifest is None:
            raise InputError(f"{self.path}: not a bayesmages LD store of version {STORE_VERSION} (no readable "
                             f"{MANIFEST}); build one with bayesmages.io.ld_store")
        self.manifest: dict[str, Any] = manifest
        self._entries = {int(b["id"]): b for b in manifest["blocks"]}

    @property
    def key(self) -> str:
        """Hash of the panel files' contents and the block parameters."""
        return str(self.manifest["key"])

    @property
    def n_samples(self) -> int:
        """Samples of the reference panel."""
        return int(self.manifest["panel"]["n_samples"])

    @property
    def block_ids(self) -> list[int]:
        """Block ids in genome order."""
        return [int(b["id"]) for b in self.manifest["blocks"]]

    @property
    def blocks(self) -> pd.DataFrame:
        """One row per block: ``id, CHR, START, END`` (first and last position), ``n_variants``, ``file``."""
        return pd.DataFrame(self.manifest["blocks"], columns=["id", "CHR", "START", "END", "n_variants", "file"])

    @cached_property
    def variants(self) -> pd.DataFrame:
        """Every panel variant in .bim order: ``SNP, CHR, POS, A1, A2, FREQ, BLOCK, INDEX, EXCLUDED``."""
        with np.load(self.path / VARIANTS, allow_pickle=False) as z:
            return pd.DataFrame({k: z[k] for k in ("SNP", "CHR", "POS", "A1", "A2", "FREQ", "BLOCK", "INDEX",
                                                   "EXCLUDED")})

    def matrix(self, block_id: int) -> np.ndarray:
        """The correlation matrix of block ``block_id``, memory-mapped read-only (float64)."""
        entry = self._entries.get(int(block_id))
        if entry is None:
            raise InputError(f"{self.path}: no LD block with id {block_id!r} (ids 0..{len(self._entries) - 1})")
        return np.load(self.path / entry["file"], mmap_mode="r", allow_pickle=False)

    def block(self, block_id: int, *, rows: np.ndarray | None = None, shrinkage: float = 0.0) -> LDBlock:
        """Block ``block_id`` as an :class:`~bayesmages.io.LDBlock` (in memory), optionally a subset and shrunk.

        Parameters
        ----------
        block_id : int
            The block's id (:attr:`block_ids`).
        rows : numpy.ndarray, optional
            Rows of the block to keep (its ``INDEX`` values), in the order wanted.
        shrinkage : float
            Shrink toward the identity (:func:`shrink_ld`).

        Returns
        -------
        LDBlock
            ``R`` and the variant ids of its rows.
        """
        R = self.matrix(block_id)
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            R = R[np.ix_(rows, rows)]
        ids = self._block_ids_of(int(block_id))
        return LDBlock(R=shrink_ld(R, shrinkage), ids=ids if rows is None else ids[rows],
                       source=f"{self.path}#{block_id}")

    def rows_of(self, block_id: int) -> np.ndarray:
        """Panel rows (0-based, .bim order) of block ``block_id``'s variants, in block order."""
        order, offsets = self._by_block
        b = int(block_id)
        if b not in self._entries:
            raise InputError(f"{self.path}: no LD block with id {block_id!r} (ids 0..{len(self._entries) - 1})")
        return order[offsets[b] : offsets[b + 1]]

    @cached_property
    def _by_block(self) -> tuple[np.ndarray, np.ndarray]:
        """Panel rows sorted by block (stable: .bim order within a block) and each block's offset in them."""
        blk = self.variants["BLOCK"].to_numpy()
        inside = np.flatnonzero(blk >= 0)
        order = inside[np.argsort(blk[inside], kind="stable")]
        offsets = np.searchsorted(blk[order], np.arange(len(self._entries) + 1))
        return order, offsets

    def _block_ids_of(self, block_id: int) -> np.ndarray:
        return self.variants["SNP"].to_numpy()[self.rows_of(block_id)]

    def __repr__(self) -> str:
        return (f"LDStore({str(self.path)!r}: {len(self._entries)} blocks, "
                f"{self.manifest['n_variants_in_blocks']} variants, {self.n_samples} samples)")


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and data.get("format") == STORE_FORMAT and data.get("version") == STORE_VERSION
            and isinstance(data.get("blocks"), list) and (path / VARIANTS).is_file()):
        return None
    return data


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _identity(files: Any, boundaries: str | os.PathLike[str] | None, min_size: int, max_size: int
              ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(key, panel description, parameters) of a store."""
    panel = {"n_samples": files.n_samples, "n_variants": files.n_variants,
             "files": {ext: {"path": str(Path(f).resolve()), "size": Path(f).stat().st_size, "sha256": _sha256(f)}
                       for ext, f in (("bed", files.bed), ("bim", files.bim), ("fam", files.fam))}}
    if boundaries is not None:
        params: dict[str, Any] = {"blocks": "boundary_file", "boundaries": str(Path(boundaries).resolve()),
                                  "boundaries_sha256": _sha256(Path(boundaries))}
    else:
        params = {"blocks": "ld_partition", "min_size": int(min_size), "max_size": int(max_size)}
    ident = {"format": STORE_FORMAT, "version": STORE_VERSION, "params": {k: v for k, v in params.items()
                                                                            if k != "boundaries"},
             "panel": {ext: f["sha256"] for ext, f in panel["files"].items()}}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
    return key, panel, params


def ld_store(
    panel: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    boundaries: str | os.PathLike[str] | None = None,
    min_size: int = 100,
    max_size: int = 600,
    rebuild: bool = False,
    progress: bool = False,
) -> LDStore:
    """The LD store of a PLINK reference panel: opened when up to date, (re)built otherwise.

    Parameters
    ----------
    panel : str or path-like
        ``prefix.bed`` (with ``.bim`` and ``.fam``) or the prefix.
    path : str or path-like, optional
        The store folder (default :func:`default_store_path`: ``<prefix>.ldstore`` beside the panel).
    boundaries : str or path-like, optional
        An LD block boundary file (:func:`bayesmages.io.ld_panel.read_boundaries`); default: blocks cut
        from the panel's own LD (:class:`bayesmages.stats.blocks.BlockCutter`).
    min_size, max_size : int
        Block sizes of the LD-based partition (variants with variation in the panel).
    rebuild : bool
        Rebuild even when the store is up to date.
    progress : bool
        One line on stderr per chromosome and every 100 blocks.

    Returns
    -------
    LDStore

    Raises
    ------
    InputError
        An incomplete or inconsistent fileset, an unsorted .bim, a bad boundary file, or a ``path``
        that exists and is not an LD store (it is never replaced).

    Examples
    --------
    >>> store = ld_store("1kg_eur.bed")  # doctest: +SKIP
    >>> store.block_ids[:3], store.block(0).R.shape  # doctest: +SKIP
    ([0, 1, 2], (912, 912))
    """
    from bayesmages.io.ld_panel import panel_files

    files = panel_files(panel)
    target = Path(path) if path is not None else default_store_path(files.bed)
    key, _, _ = _identity(files, boundaries, min_size, max_size)
    manifest = _read_manifest(target) if target.is_dir() else None
    if manifest is not None and manifest.get("key") == key and not rebuild:
        return LDStore(target)
    return build_ld_store(panel, target, boundaries=boundaries, min_size=min_size, max_size=max_size,
                          progress=progress)


def build_ld_store(
    panel: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    boundaries: str | os.PathLike[str] | None = None,
    min_size: int = 100,
    max_size: int = 600,
    progress: bool = False,
) -> LDStore:
    """Compute a panel's LD blocks into a new store at ``path`` (replacing an LD store there, nothing else).

    Parameters are those of :func:`ld_store`.

    Returns
    -------
    LDStore
    """
    from bayesmages.io.harmonisation import normalise_chromosomes, read_bim
    from bayesmages.io.ld_panel import block_ranges, iter_block_correlations, panel_files, read_boundaries
    from bayesmages.io.outdir import make_tmp_dir, remove_leftovers

    target = Path(path)
    if target.exists() and not (target.is_dir() and (_read_manifest(target) is not None or
                                                      not any(target.iterdir()))):
        raise InputError(f"{target}: exists and is not a bayesmages LD store; refusing to replace it (give another "
                         "LD store folder)")
    if not target.parent.is_dir():
        raise InputError(f"{target}: its folder {target.parent} does not exist")
    if min_size < 1 or max_size < min_size:
        raise InputError(f"LD blocks: need 1 <= min_size <= max_size, got {min_size} and {max_size}")
    files = panel_files(panel)
    key, panel_info, params = _identity(files, boundaries, min_size, max_size)
    bim = read_bim(files.bim)
    if len(bim) != files.n_variants:  # pragma: no cover - _count_lines and read_bim agree on well-formed files
        raise InputError(f"{files.bim}: {len(bim)} variants read but {files.n_variants} lines")
    chrom = normalise_chromosomes(bim["CHR"])  # for cutting blocks and matching boundary files
    bim_chrom = bim["CHR"].to_numpy(dtype=str)  # as the .bim names them, for the tables
    pos = bim["POS"].to_numpy(dtype=np.int64)
    bounds = read_boundaries(boundaries) if boundaries is not None else None
    started = time.perf_counter()
    say = (lambda msg: print(f"bayesmages LD store: {msg}", file=sys.stderr, flush=True)) if progress else None
    ranges = block_ranges(files, chrom, pos, boundaries=bounds, min_size=min_size, max_size=max_size)
    if say:
        say(f"{len(ranges)} blocks over {files.n_variants} variants ({time.perf_counter() - started:.1f} s)")

    m = files.n_variants
    block = np.full(m, -1, dtype=np.int32)
    index = np.full(m, -1, dtype=np.int32)
    freq = np.full(m, np.nan)
    excluded = np.full(m, 2 if bounds is not None else 1, dtype=np.int8)
    entries = []
    remove_leftovers(target.parent, target.name)
    tmp = make_tmp_dir(target)
    try:
        (tmp / BLOCKS).mkdir()
        b = 0
        for (_, lo, hi), R, f, usable in iter_block_correlations(files, ranges):
            freq[lo:hi] = f
            excluded[lo:hi] = np.where(usable, 0, 1)
            rows = lo + np.flatnonzero(usable)
            if not rows.size:
                continue
            block[rows], index[rows] = b, np.arange(rows.size)
            name = f"{BLOCKS}/{b:06d}.npy"
            np.save(tmp / name, R)
            entries.append({"id": b, "CHR": str(bim_chrom[rows[0]]), "START": int(pos[rows[0]]),
                            "END": int(pos[rows[-1]]), "n_variants": int(rows.size), "file": name})
            b += 1
            if say and b % 100 == 0:
                say(f"{b} of about {len(ranges)} blocks ({time.perf_counter() - started:.1f} s)")
        if not entries:
            raise InputError(f"{files.bed}: no LD block has a variant with variation in the panel"
                             + (" inside the boundary file's regions" if bounds is not None else ""))
        with open(tmp / VARIANTS, "wb") as fh:
            np.savez(fh, SNP=bim["SNP"].to_numpy(dtype=str), CHR=bim_chrom, POS=pos,
                     A1=bim["A1"].to_numpy(dtype=str), A2=bim["A2"].to_numpy(dtype=str), FREQ=freq, BLOCK=block,
                     INDEX=index, EXCLUDED=excluded)
        manifest = {"format": STORE_FORMAT, "version": STORE_VERSION, "key": key, "panel": panel_info,
                    "params": params, "n_blocks": len(entries), "n_variants_in_blocks": int((block >= 0).sum()),
                    "excluded": {EXCLUDED_REASONS[k]: int((excluded == k).sum()) for k in EXCLUDED_REASONS},
                    "seconds": round(time.perf_counter() - started, 3), "blocks": entries}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if say:
        say(f"{len(entries)} blocks written to {target} ({time.perf_counter() - started:.1f} s)")
    return LDStore(target)


def _replace(new: Path, target: Path) -> None:
    """Put the finished store ``new`` at ``target``; an old store there is moved aside, then removed."""
    from bayesmages.io.outdir import make_tmp_dir

    if not target.exists():
        os.rename(new, target)
        return
    if _read_manifest(target) is None:  # an empty folder (checked by the caller)
        target.rmdir()
        os.rename(new, target)
        return
    old = make_tmp_dir(target)
    old.rmdir()
    os.rename(target, old)
    os.rename(new, target)
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
