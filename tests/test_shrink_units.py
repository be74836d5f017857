"""Shrink work units: groups of blocks x all traits that reference their LD (files) instead of carrying it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmages as bm
from bayesmages.errors import InputError
from bayesmages.io.ldrefs import LDRefs, content_name, spill_blocks, unchanged_npy
from bayesmages.shrink.units import MIN_UNITS, block_groups


def _corr(rng, m):
    A = rng.normal(size=(3 * m, m)) + rng.normal(size=(3 * m, 1))  # a shared factor: real LD
    C = np.corrcoef(A, rowvar=False)
    return bm.io.validate_ld(C)


@pytest.fixture
def blocks():
    rng = np.random.default_rng(3)
    return [_corr(rng, m) for m in (14, 9, 20, 11, 16)]


def test_block_groups_cover_every_block_once_in_order_whatever_the_sizes():
    rng = np.random.default_rng(0)
    for sizes in ([5], [10] * 3, list(rng.integers(1, 700, size=500)), [600] * 1700):
        groups = block_groups(sizes)
        assert [b for g in groups for b in g] == list(range(len(sizes)))
        assert len(groups) == min(len(sizes), max(MIN_UNITS, int(np.ceil(sum(sizes) / 25_000))))
    # about equal variants per unit (contiguous cuts at multiples of total / n_units)
    per_unit = [600 * len(g) for g in block_groups([600] * 1700)]
    assert max(per_unit) - min(per_unit) <= 600


def test_spilled_blocks_are_exact_shared_by_content_and_leave_other_files_alone(blocks, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mine.txt").write_text("user file")
    refs = spill_blocks([blocks[0], blocks[1], blocks[0]], cache)
    assert refs.files[0] == refs.files[2] != refs.files[1]  # equal blocks share one file
    assert sorted(p.name for p in cache.iterdir()) == sorted(["mine.txt", content_name(blocks[0]),
                                                              content_name(blocks[1])])
    for b, R in enumerate([blocks[0], blocks[1], blocks[0]]):
        np.testing.assert_array_equal(refs.matrix(b), R)
    again = spill_blocks([blocks[1]], cache)  # reused, not rewritten
    assert again.files[0] == refs.files[1]
    assert (cache / "mine.txt").read_text() == "user file"
    # references pickle small: paths, not matrices
    import pickle

    assert len(pickle.dumps(refs)) < 1000 < sum(R.nbytes for R in blocks[:2])


def test_user_npy_files_are_referenced_only_when_validation_leaves_them_unchanged(blocks, tmp_path):
    np.save(tmp_path / "ok.npy", blocks[0])
    assert unchanged_npy(tmp_path / "ok.npy", bm.io.read_ld(tmp_path / "ok.npy").R)
    R = blocks[0].copy()
    R[0, 1] += 1e-7  # within the symmetry tolerance: validation symmetrises, so the file differs
    np.save(tmp_path / "asym.npy", R)
    assert not unchanged_npy(tmp_path / "asym.npy", bm.io.read_ld(tmp_path / "asym.npy").R)
    np.savetxt(tmp_path / "text.ld", blocks[0])
    assert not unchanged_npy(tmp_path / "text.ld", blocks[0])


def test_missing_file_on_a_worker_is_one_clear_error(blocks, tmp_path):
    refs = LDRefs((str(tmp_path / "gone.npy"),))
    with pytest.raises(InputError, match=r"gone\.npy.*readable at the same path by every worker"):
        refs.matrix(0)
    with pytest.raises(InputError, match="2 row subsets for 1 block files"):
        LDRefs((str(tmp_path / "a.npy"),), rows=(None, None))


def test_shrink_by_reference_equals_shrink_in_memory_serially_and_on_two_workers(blocks, tmp_path):
    rng = np.random.default_rng(1)
    b = [rng.normal(scale=0.02, size=len(R)) for R in blocks]
    s = [np.full(len(R), 0.01) for R in blocks]
    base = bm.shrink.shrink(b, s, blocks, seed=2)
    refs = spill_blocks(blocks, tmp_path / "cache")
    for workers in (1, 2):
        out = bm.shrink.shrink(b, s, refs, seed=2, workers=workers)
        pd.testing.assert_frame_equal(out, base)
        assert out.attrs["units"]["n_units"] == len(blocks)  # 5 blocks: fewer than MIN_UNITS, one block a unit
    # in-memory blocks with 2 workers are spilled to a temporary folder (removed after) and read there
    pd.testing.assert_frame_equal(bm.shrink.shrink(b, s, blocks, seed=2, workers=2, ld_cache=tmp_path / "c2"), base)
    assert len(list((tmp_path / "c2").iterdir())) == len(blocks)
    with pytest.raises(InputError, match="block 2: LD matrix R is 9 x 9 but there are 3 variants"):
        bm.shrink.shrink([b[0], b[1][:3]], [s[0], s[1][:3]], LDRefs(refs.files[:2]))


def test_traits_batched_in_one_unit_match_shrinking_each_trait_alone(blocks):
    """One unit predicts all traits of a block in one batch; per trait, the numbers are those of a lone run.

    The network runs in float32: the batched products may sum in another order than the single-trait ones,
    so agreement is to float32 round-off (rtol 1e-5 of the float64 outputs), not bit for bit.
    """
    from bayesmages.pipeline.inputs import PipelineInputs
    from bayesmages.pipeline.steps import shrink_traits

    rng = np.random.default_rng(4)
    m = sum(len(R) for R in blocks)
    variants = pd.DataFrame({"SNP": [f"v{i}" for i in range(m)], "CHR": 1, "POS": np.arange(m) + 1})
    gwas = {f"T{t}": variants.assign(BETA=rng.normal(scale=0.02, size=m), SE=rng.uniform(0.008, 0.012, m))
            for t in range(3)}
    inputs = PipelineInputs(traits=list(gwas), gwas=gwas, variants=variants, blocks=blocks, genes=pd.DataFrame())
    together = shrink_traits(inputs, list(gwas), model="default", workers=1, scheduler=None, progress=False)
    cuts = np.cumsum([len(R) for R in blocks])[:-1]
    for t, table in gwas.items():
        alone = bm.shrink.shrink(np.split(table["BETA"].to_numpy(), cuts), np.split(table["SE"].to_numpy(), cuts),
                                 blocks, variants=variants, trait=t)
        for col in ("beta_shrunk", "sd", "lower", "upper"):
            np.testing.assert_allclose(together[t][col].to_numpy(), alone[col].to_numpy(), rtol=1e-5, atol=1e-9)
        assert together[t]["trait"].eq(t).all()
