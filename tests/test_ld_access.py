"""LD blocks by reference (bayesmages.io.ld_access): what a worker reads is the array it stands for, bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bayesmages.errors import InputError
from bayesmages.io import ld_access
from bayesmages.io.ld_access import BlockSource, source_from_npy, spill_blocks


def _corr(rng, m):
    C = np.corrcoef(rng.normal(size=(3 * m, m)), rowvar=False)
    return 0.5 * (C + C.T)


def test_spilled_blocks_read_back_exactly_and_repeats_are_written_once(tmp_path):
    rng = np.random.default_rng(1)
    a, b = _corr(rng, 7), _corr(rng, 4)
    src = spill_blocks([a, b, a, a], tmp_path)
    assert len(src) == 4 and src.sizes == (7, 4, 7, 7)
    for k, R in enumerate([a, b, a, a]):
        got = src.block(k)
        assert got.dtype == np.float64 and not got.flags.writeable
        np.testing.assert_array_equal(got, R)
    # the repeated object is written once: the file holds a and b only
    assert (tmp_path / "ld_blocks.bin").stat().st_size == 8 * (7 * 7 + 4 * 4)
    # small to ship to a worker: the source, not the matrices
    assert len(pickle.dumps(src)) < 1000
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(src)).blocks([1])[0], b)


def test_npy_files_are_referenced_without_copying(tmp_path):
    rng = np.random.default_rng(2)
    blocks = [_corr(rng, 5), _corr(rng, 9)]
    paths = []
    for i, R in enumerate(blocks):
        paths.append(tmp_path / f"b{i}.npy")
        np.save(paths[-1], R)
    src = source_from_npy(paths)
    assert src.files == (0, 1) and src.sizes == (5, 9)
    for R, got in zip(blocks, src.blocks()):
        np.testing.assert_array_equal(got, R)


def test_npy_that_cannot_be_referenced_is_an_input_error(tmp_path):
    np.save(tmp_path / "f32.npy", np.eye(3, dtype=np.float32))
    with pytest.raises(InputError, match=r"f32\.npy"):
        source_from_npy([tmp_path / "f32.npy"])
    np.save(tmp_path / "rect.npy", np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"rect\.npy"):
        source_from_npy([tmp_path / "rect.npy"])


def test_truncated_file_is_named(tmp_path):
    src = spill_blocks([np.eye(4)], tmp_path)
    bad = BlockSource(src.paths, (0,), (0,), (5,))  # claims more bytes than the file has
    with pytest.raises(InputError, match="block 0 ends at byte"):
        bad.block(0)


def test_maps_of_deleted_files_are_let_go(tmp_path):
    first = spill_blocks([np.eye(3)], tmp_path, name="one.bin")
    first.block(0)
    assert any(k[0] == first.paths[0] for k in ld_access._MAPS)
    (tmp_path / "one.bin").unlink()
    spill_blocks([np.eye(2)], tmp_path, name="two.bin").block(0)
    assert not any(k[0] == first.paths[0] for k in ld_access._MAPS)
