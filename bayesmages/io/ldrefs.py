"""References to LD blocks on disk that a worker process opens itself (work units never carry matrices).

An :class:`LDRefs` names one ``.npy`` file per block (optionally the rows of it to keep and a shrinkage
toward the identity); it pickles to a few hundred bytes per block, and :meth:`LDRefs.matrix` opens a
block memory-mapped, so a worker touches only the block it works on. Three sources make one:

* an LD store (:func:`bayesmages.io.ld_store`): :meth:`LDRefs.from_store` with the store's block ids
  and the rows the run uses;
* the user's own ``.npy`` files, when validation left them unchanged (:func:`bayesmages.io.validate_ld`
  symmetrises and clips; a file it would change is not referenced, its validated copy is spilled);
* blocks in memory (or read from text): :func:`spill_blocks` writes each validated block once to a
  content-addressed cache folder (``<sha256 of the matrix>.npy``, written under a temporary name and
  renamed), so equal blocks share one file, a later run reuses it, and a changed block gets a new name:
  a stale file is never read.

Examples
--------
>>> import tempfile
>>> refs = spill_blocks([np.eye(2), np.eye(3)], tempfile.mkdtemp())
>>> len(refs), refs.sizes(), refs.matrix(1).shape
(2, [2, 3], (3, 3))
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayesmages.errors import InputError

__all__ = ["LDRefs", "content_name", "spill_blocks", "unchanged_npy"]

#: Memory maps kept open per process, by (path, size, modification time): a worker of a kept pool serves
#: many calls and opens each block file once, and a file rewritten under the same name is opened afresh.
_MAPS: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
_MAX_MAPS = 256


def _open_npy(path: str) -> np.ndarray:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    R = _MAPS.get(key)
    if R is None:
        # a kept worker outlives the temporary files of earlier calls: let go of the maps of deleted
        # files, so that their disk space is freed
        for old in [k for k in _MAPS if not os.path.exists(k[0])]:
            del _MAPS[old]
        # a plain ndarray over the map, not an np.memmap: indexing a memmap subclass builds a memmap
        # object per result, which made the many small gene-level reads 1.5x slower
        R = np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
        _MAPS[key] = R
        while len(_MAPS) > _MAX_MAPS:
            _MAPS.popitem(last=False)
    else:
        _MAPS.move_to_end(key)
    return R


@dataclass(frozen=True, eq=False)
class LDRefs:
    """LD blocks by reference: one ``.npy`` file per block, with optional row subsets and a shrinkage.

    Attributes
    ----------
    files : tuple of str
        Absolute path of each block's ``.npy`` file (float64, a correlation matrix), in block order.
    rows : tuple of (numpy.ndarray or None)
        Per block, the rows (and columns) of the file's matrix to keep, in order; empty: all rows.
    shrinkage : float
        Each block is returned as ``(1 - s) R + s I`` (:func:`bayesmages.io.shrink_ld`); 0: as stored.
    """

    files: tuple[str, ...]
    rows: tuple[np.ndarray | None, ...] = field(default=())
    shrinkage: float = 0.0

    def __post_init__(self) -> None:
        if self.rows and len(self.rows) != len(self.files):
            raise InputError(f"LDRefs: {len(self.rows)} row subsets for {len(self.files)} block files")

    def __len__(self) -> int:
        return len(self.files)

    @classmethod
    def from_store(cls, store: str | os.PathLike[str], block_ids: Sequence[int],
                   block_rows: Sequence[np.ndarray] | None = None, shrinkage: float = 0.0) -> LDRefs:
        """The blocks ``block_ids`` of an LD store (restricted to ``block_rows`` and shrunk as a run uses them).

        Examples
        --------
        >>> refs = LDRefs.from_store("ref.ldstore", [0, 1])  # doctest: +SKIP
        """
        from bayesmages.io.ldstore import LDStore

        st = LDStore(store)
        entries = {int(b["id"]): b for b in st.manifest["blocks"]}
        missing = [b for b in block_ids if int(b) not in entries]
        if missing:
            raise InputError(f"{st.path}: no LD block with id {missing[0]!r}")
        files = tuple(str((st.path / entries[int(b)]["file"]).resolve()) for b in block_ids)
        rows = tuple(np.asarray(r, dtype=np.int64) for r in block_rows) if block_rows is not None else ()
        return cls(files, rows, float(shrinkage))

    def sizes(self) -> list[int]:
        """Variants per block (read from the files' headers, or the row subsets)."""
        if self.rows:
            return [int(np.load(f, mmap_mode="r").shape[0]) if r is None else int(r.size)
                    for f, r in zip(self.files, self.rows)]
        return [int(np.load(f, mmap_mode="r").shape[0]) for f in self.files]

    def matrix(self, b: int) -> np.ndarray:
        """Block ``b``'s correlation matrix: memory-mapped read-only, or a float64 copy when subset or shrunk."""
        from bayesmages.io.ldstore import shrink_ld

        path = self.files[b]
        try:
            R = _open_npy(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot open LD block {b + 1} on this machine ({exc}); the LD files "
                             "must be readable at the same path by every worker") from None
        rows = self.rows[b] if self.rows else None
        if rows is not None:
            R = R[np.ix_(rows, rows)]
        if self.shrinkage or R.dtype != np.float64:
            return shrink_ld(R, self.shrinkage)
        return R

    def blocks(self, ids: Sequence[int] | None = None) -> list[np.ndarray]:
        """The blocks ``ids`` (default: all), in that order (see :meth:`matrix`)."""
        return [self.matrix(int(b)) for b in (range(len(self)) if ids is None else ids)]


def content_name(R: np.ndarray) -> str:
    """The cache file name of a block: ``<sha256 of its shape, dtype and bytes>.npy`` (float64).

    Examples
    --------
    >>> content_name(np.eye(2)) == content_name(np.eye(2)) != content_name(np.eye(3))
    True
    """
    R = np.ascontiguousarray(R, dtype=np.float64)
    h = hashlib.sha256()
    h.update(f"{R.shape}|{R.dtype.str}".encode())
    h.update(np.ascontiguousarray(R).tobytes())
    return h.hexdigest()[:32] + ".npy"


def spill_blocks(blocks: Sequence[np.ndarray], folder: str | os.PathLike[str],
                 names: Sequence[str] | None = None) -> LDRefs:
    """Write each block once to ``folder`` as ``<content hash>.npy`` (atomically) and reference the files.

    A file already there under the same content name is reused (it holds the same matrix); nothing
    else in ``folder`` is touched.

    Parameters
    ----------
    blocks : sequence of numpy.ndarray
        Validated LD matrices (float64), in block order.
    folder : str or path-like
        The cache folder (created when missing).
    names : sequence of str, optional
        The blocks' :func:`content_name` when already computed.

    Returns
    -------
    LDRefs
    """
    from bayesmages.io.outdir import make_tmp_file

    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    files = []
    known: dict[int, str] = {}  # a block object repeated in ``blocks`` is hashed and written once
    for i, R in enumerate(blocks):
        if names is None and id(R) in known:
            files.append(known[id(R)])
            continue
        arr = np.ascontiguousarray(R, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise InputError(f"LD block {i + 1}: expected a square matrix, got shape {arr.shape}")
        target = root / (names[i] if names is not None else content_name(arr))
        if not target.is_file():
            tmp = make_tmp_file(target)
            try:
                with open(tmp, "wb") as fh:
                    np.save(fh, arr, allow_pickle=False)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        files.append(str(target))
        known[id(R)] = str(target)
    return LDRefs(tuple(files))


def unchanged_npy(path: str | os.PathLike[str], R: np.ndarray) -> bool:
    """True when ``path`` is a float64 ``.npy`` file holding exactly ``R`` (so it can be referenced as is)."""
    p = Path(path)
    if p.suffix.lower() != ".npy":
        return False
    try:
        raw = np.load(p, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return raw.dtype == np.float64 and raw.shape == R.shape and bool(np.array_equal(raw, R))
