"""LD blocks by reference (bayesmages.io.ldrefs): what a worker reads is the array it stands for, bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bayesmages.errors import InputError
from bayesmages.io import ldrefs
from bayesmages.io.ldrefs import LDRefs, spill_blocks


def _corr(rng, m):
    C = np.corrcoef(rng.normal(size=(3 * m, m)), rowvar=False)
    return 0.5 * (C + C.T)


def test_spilled_blocks_read_back_exactly_and_repeats_are_written_once(tmp_path):
    rng = np.random.default_rng(1)
    a, b = _corr(rng, 7), _corr(rng, 4)
    refs = spill_blocks([a, b, a, a], tmp_path)
    assert len(refs) == 4 and refs.sizes() == [7, 4, 7, 7]
    for k, R in enumerate([a, b, a, a]):
        got = refs.matrix(k)
        # a plain read-only ndarray over the map (an np.memmap subclass made small reads slower)
        assert type(got) is np.ndarray and got.dtype == np.float64 and not got.flags.writeable
        np.testing.assert_array_equal(got, R)
    # the repeated object is written once: two files, a's and b's
    assert len(set(refs.files)) == 2 and len(list(tmp_path.iterdir())) == 2
    # an equal matrix in another object shares the content-named file
    assert spill_blocks([a.copy()], tmp_path).files[0] == refs.files[0]
    # small to ship to a worker: the references, not the matrices
    assert len(pickle.dumps(refs)) < 1000
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(refs)).blocks([1])[0], b)


def test_user_npy_files_are_read_in_place(tmp_path):
    rng = np.random.default_rng(2)
    blocks = [_corr(rng, 5), _corr(rng, 9)]
    paths = []
    for i, R in enumerate(blocks):
        paths.append(tmp_path / f"b{i}.npy")
        np.save(paths[-1], R)
    refs = LDRefs(tuple(str(p) for p in paths))
    assert refs.sizes() == [5, 9]
    for R, got in zip(blocks, refs.blocks()):
        np.testing.assert_array_equal(got, R)


def test_a_non_square_block_is_refused_when_spilled(tmp_path):
    with pytest.raises(InputError, match="LD block 2: expected a square matrix"):
        spill_blocks([np.eye(2), np.zeros((2, 3))], tmp_path)


def test_maps_of_deleted_files_are_let_go(tmp_path):
    first = spill_blocks([np.eye(3)], tmp_path / "one")
    first.matrix(0)
    assert any(k[0] == first.files[0] for k in ldrefs._MAPS)
    (tmp_path / "one").joinpath(first.files[0].rsplit("/", 1)[1]).unlink()
    spill_blocks([np.eye(2)], tmp_path / "two").matrix(0)
    assert not any(k[0] == first.files[0] for k in ldrefs._MAPS)


def test_a_rewritten_file_is_not_served_from_an_old_map(tmp_path):
    path = tmp_path / "b.npy"
    np.save(path, np.eye(3))
    refs = LDRefs((str(path),))
    np.testing.assert_array_equal(refs.matrix(0), np.eye(3))
    R = np.full((3, 3), 0.5) + 0.5 * np.eye(3)
    np.save(path, R)
    np.testing.assert_array_equal(refs.matrix(0), R)
