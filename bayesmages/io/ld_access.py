"""LD blocks by reference: work units name a block, a worker opens it memory-mapped.

A :class:`BlockSource` lists where each LD block's float64 matrix lies on disk (a file, a byte offset
and its size). It is small to pickle (three numbers per block), so a unit of work sent to a worker
process carries the source and the ids of the blocks it needs, never the matrices; the worker opens
the file memory-mapped (once per process, kept in a small cache) and touches only the pages it reads.

Two ways to get one:

* :func:`spill_blocks` writes in-memory blocks once into one file (a block object that appears several
  times, such as a repeated reference block, is written once) — for arrays that exist only in memory;
* :func:`source_from_npy` references ``.npy`` files that already hold the blocks (a user's LD folder, the
  blocks of an :mod:`LD store <bayesmages.io.ldstore>`), with nothing written.

Reading a block by reference gives the same numbers as the array it came from, bit for bit, so results
do not depend on whether a unit received an array or a reference.

Examples
--------
>>> import tempfile
>>> blocks = [np.eye(2), np.array([[1.0, 0.5], [0.5, 1.0]])]
>>> with tempfile.TemporaryDirectory() as tmp:
...     src = spill_blocks(blocks, tmp)
...     bool(np.array_equal(src.block(1), blocks[1])), len(src)
(True, 2)
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesmages.errors import InputError

__all__ = ["BlockSource", "source_from_npy", "spill_blocks"]

#: Memory maps kept open per process, by (path, file size, modification time): a worker of a kept pool
#: serves many calls, and a file rewritten under the same name must not be served from an old map.
_MAPS: OrderedDict[tuple[str, int, int], np.memmap] = OrderedDict()
_MAX_MAPS = 64


def _open(path: str) -> np.memmap:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    mm = _MAPS.get(key)
    if mm is None:
        # a kept worker outlives the temporary files of earlier calls: let go of the maps of deleted
        # files, so that their disk space is freed
        for old in [k for k in _MAPS if not os.path.exists(k[0])]:
            del _MAPS[old]
        mm = np.memmap(path, dtype=np.uint8, mode="r")
        _MAPS[key] = mm
        while len(_MAPS) > _MAX_MAPS:
            _MAPS.popitem(last=False)
    else:
        _MAPS.move_to_end(key)
    return mm


@dataclass(frozen=True)
class BlockSource:
    """Where each LD block lies on disk.

    Block ``k`` is the ``sizes[k] x sizes[k]`` float64 matrix (C order) starting at byte ``offsets[k]`` of
    ``paths[files[k]]``.

    Attributes
    ----------
    paths : tuple of str
        Files holding the blocks.
    files : tuple of int
        Per block, its file (index into ``paths``).
    offsets : tuple of int
        Per block, its first byte in that file.
    sizes : tuple of int
        Per block, its number of variants.
    """

    paths: tuple[str, ...]
    files: tuple[int, ...]
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.sizes)

    def block(self, k: int) -> np.ndarray:
        """Block ``k``, read-only and memory-mapped (pages are read when touched)."""
        n = self.sizes[k]
        raw = _open(self.paths[self.files[k]])
        start = self.offsets[k]
        stop = start + 8 * n * n
        if stop > raw.size:
            raise InputError(f"{self.paths[self.files[k]]}: LD block {k} ends at byte {stop} but the file has "
                             f"{raw.size} (was it changed while the run was going?)")
        # a plain ndarray over the map, not an np.memmap: indexing a memmap subclass builds a memmap
        # object per result, which made the many small gene-level reads 1.5x slower
        return np.frombuffer(raw, dtype=np.float64, count=n * n, offset=start).reshape(n, n)

    def blocks(self, ids: Sequence[int] | None = None) -> list[np.ndarray]:
        """The blocks ``ids`` (default: all), in that order."""
        return [self.block(int(k)) for k in (range(len(self)) if ids is None else ids)]


def spill_blocks(blocks: Sequence[np.ndarray], folder: str | os.PathLike[str], name: str = "ld_blocks.bin"
                 ) -> BlockSource:
    """Write float64 blocks into ``folder/name`` once and return their :class:`BlockSource`.

    A block object passed several times (the same array, as when a reference block is repeated) is
    written once and referenced by every position that holds it.

    Parameters
    ----------
    blocks : sequence of numpy.ndarray
        Square float64 matrices.
    folder : path
        An existing folder that outlives the units reading the source (for example a temporary folder
        of the caller, removed after the map).
    name : str
        File name.

    Returns
    -------
    BlockSource
    """
    path = Path(folder) / name
    seen: dict[int, int] = {}
    offsets: list[int] = []
    sizes: list[int] = []
    pos = 0
    with open(path, "wb") as fh:
        for R in blocks:
            key = id(R)
            if key not in seen:
                arr = np.ascontiguousarray(R, dtype=np.float64)
                if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
                    raise InputError(f"LD block {len(offsets)}: expected a square matrix, got shape {arr.shape}")
                fh.write(arr.tobytes())
                seen[key] = pos
                pos += arr.nbytes
            offsets.append(seen[key])
            sizes.append(int(np.shape(R)[0]))
    return BlockSource((str(path),), (0,) * len(sizes), tuple(offsets), tuple(sizes))


def source_from_npy(paths: Sequence[str | os.PathLike[str]]) -> BlockSource:
    """Reference existing ``.npy`` files, one square float64 block each, without reading their data.

    Raises
    ------
    InputError
        A file that is not a square, C-ordered float64 ``.npy`` matrix (read such blocks and use
        :func:`spill_blocks` instead).
    """
    names: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    for p in paths:
        arr = np.load(p, mmap_mode="r")
        if not (isinstance(arr, np.memmap) and arr.dtype == np.float64 and arr.ndim == 2
                and arr.shape[0] == arr.shape[1] and arr.flags.c_contiguous):
            raise InputError(f"{p}: expected a square C-ordered float64 matrix to reference, got "
                             f"{getattr(arr, 'dtype', '?')} {getattr(arr, 'shape', '?')}")
        names.append(str(Path(p).resolve()))
        offsets.append(int(arr.offset))
        sizes.append(int(arr.shape[0]))
    return BlockSource(tuple(names), tuple(range(len(names))), tuple(offsets), tuple(sizes))
