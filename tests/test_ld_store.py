"""The LD store of a PLINK reference panel: blocks, correlations, caching, staleness, bad inputs.

References are computed independently with numpy on the genotypes written to the .bed: correlations by
``ld_from_genotypes`` on mean-imputed columns, blocks by ``partition_blocks`` on the dense matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmages.errors import InputError
from bayesmages.io import LDStore, ld_store
from bayesmages.io import ld_panel as ld_panel_module
from bayesmages.simulate import ld_from_genotypes, partition_blocks

bed_reader = pytest.importorskip("bed_reader", reason="bed-reader is needed to write .bed files")


def _genotypes(n, m, seed):
    """0/1/2 genotypes with LD decaying along the variants (two AR(1) haplotype liabilities per person)."""
    rng = np.random.default_rng(seed)
    rho = rng.uniform(0.3, 0.97, m)
    rho[rng.random(m) < 0.1] = 0.0  # occasional recombination hot spots
    freq = rng.uniform(0.05, 0.5, m)
    from scipy.stats import norm

    G = np.zeros((n, m))
    for _ in range(2):
        z = np.empty((n, m))
        z[:, 0] = rng.standard_normal(n)
        for j in range(1, m):
            z[:, j] = rho[j] * z[:, j - 1] + np.sqrt(1 - rho[j] ** 2) * rng.standard_normal(n)
        G += z < norm.ppf(freq)
    return G


def _write(path, G, chrom, pos, sid=None):
    m = G.shape[1]
    bed_reader.to_bed(path, G.astype(np.float32), properties={
        "chromosome": chrom, "sid": sid if sid is not None else [f"v{j}" for j in range(m)], "bp_position": pos,
        "allele_1": np.where(np.arange(m) % 2, "A", "C"), "allele_2": np.where(np.arange(m) % 2, "G", "T"),
    }, count_A1=True)


def _imputed(G):
    observed = ~np.isnan(G)
    mean = np.where(observed, G, 0).sum(axis=0) / np.maximum(observed.sum(axis=0), 1)
    return np.where(observed, G, mean)


@pytest.fixture
def panel(tmp_path):
    G = _genotypes(150, 130, seed=1)
    G[3, 10] = G[7, 40] = G[0, 100] = np.nan  # missing genotypes: mean-imputed
    G[:, 20] = 1.0  # no variation: no LD
    G[:, 21] = np.nan  # nothing observed: no LD
    chrom = np.where(np.arange(130) < 90, "1", "2")
    pos = np.concatenate([np.arange(90) * 100 + 1000, np.arange(40) * 100 + 500])
    _write(tmp_path / "ref.bed", G, chrom, pos)
    return tmp_path / "ref.bed", G, chrom, pos


def test_ld_blocks_and_correlations_equal_dense_references(panel, tmp_path, monkeypatch):
    bed, G, chrom, _pos = panel
    monkeypatch.setattr(ld_panel_module, "CHUNK", 7)  # the window crosses many chunks
    store = ld_store(bed, tmp_path / "s", min_size=5, max_size=12)
    v = store.variants
    assert v["EXCLUDED"].tolist() == [1 if j in (20, 21) else 0 for j in range(130)]
    X = _imputed(G)
    np.testing.assert_allclose(v["FREQ"].to_numpy()[:20], X[:, :20].mean(axis=0) / 2, rtol=1e-12)
    got = [store.rows_of(b) for b in store.block_ids]
    expected = []
    for c in ("1", "2"):
        cols = np.flatnonzero((chrom == c) & (v["EXCLUDED"].to_numpy() == 0))
        expected += [cols[s] for s in partition_blocks(ld_from_genotypes(X[:, cols]), min_size=5, max_size=12)]
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))
    for b, rows in zip(store.block_ids, expected):
        # the same correlations up to the rounding of two float64 computations
        np.testing.assert_allclose(store.matrix(b), ld_from_genotypes(X[:, rows]), atol=1e-12)
        assert store.blocks.set_index("id").loc[b, "CHR"] == chrom[rows[0]]
    # lookup by id, a subset, shrinkage toward the identity
    b = store.block_ids[3]
    rows = store.rows_of(b)
    sub = store.block(b, rows=np.array([2, 0]), shrinkage=0.1)
    R = ld_from_genotypes(X[:, rows[[2, 0]]])
    np.testing.assert_allclose(sub.R, 0.9 * R + 0.1 * np.eye(2), atol=1e-12)
    assert sub.ids.tolist() == [f"v{rows[2]}", f"v{rows[0]}"]
    with pytest.raises(InputError, match="no LD block with id 999"):
        store.matrix(999)


def test_store_is_reused_then_rebuilt_when_the_panel_or_parameters_change(panel, tmp_path):
    bed, _G, _chrom, _pos = panel
    first = ld_store(bed, min_size=5, max_size=12)
    assert first.path == tmp_path / "ref.ldstore"
    manifest = first.path / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    again = ld_store(bed, min_size=5, max_size=12)
    assert again.key == first.key and manifest.stat().st_mtime_ns == stamp  # read, not rebuilt
    assert isinstance(again.matrix(0), np.memmap)

    other = ld_store(bed, min_size=5, max_size=20)  # other parameters: rebuilt in place
    assert other.key != first.key and other.manifest["params"]["max_size"] == 20

    fam = tmp_path / "ref.fam"
    fam.write_text(fam.read_text().replace("iid1", "iid1x", 1))  # same genotypes, another sample name
    changed = ld_store(bed, min_size=5, max_size=20)
    assert changed.key != other.key
    np.testing.assert_array_equal(changed.matrix(0), other.matrix(0))
    # nothing but the panel and its store in the folder: no temporaries left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.bed", "ref.bim", "ref.fam", "ref.ldstore"]


def test_boundary_file_blocks(panel, tmp_path):
    bed, G, chrom, pos = panel
    (tmp_path / "b.tsv").write_text("chr\tstart\tstop\nchr1\t1000\t3000\nchr1\t3000\t5000\n2\t600\t2000\n")
    store = ld_store(bed, tmp_path / "s", boundaries=tmp_path / "b.tsv")
    assert store.manifest["params"]["blocks"] == "boundary_file"
    X = _imputed(G)
    regions = [(chrom == "1") & (pos >= 1000) & (pos < 3000), (chrom == "1") & (pos >= 3000) & (pos < 5000),
               (chrom == "2") & (pos >= 600) & (pos < 2000)]
    excluded = store.variants["EXCLUDED"].to_numpy()
    for b, region in zip(store.block_ids, regions):
        rows = np.flatnonzero(region & (excluded == 0))
        assert np.array_equal(store.rows_of(b), rows)
        np.testing.assert_allclose(store.matrix(b), ld_from_genotypes(X[:, rows]), atol=1e-12)
    outside = ~np.any(regions, axis=0)
    assert outside.any() and (excluded[outside & ~np.isin(np.arange(130), [20, 21])] == 2).all()


@pytest.mark.parametrize("text, message", [
    ("chr\tstart\tstop\n1\t10\t5\n", "END <= START"),
    ("chr\tstart\tstop\n1\t10\t50\n1\t40\t90\n", "overlap"),
    ("chr\tbegin\tstop\n1\t10\t50\n", "START column"),
    ("chr\tstart\tstop\n1\tten\t50\n", "START at row 1"),
])
def test_bad_boundary_files(panel, tmp_path, text, message):
    (tmp_path / "b.tsv").write_text(text)
    with pytest.raises(InputError, match=message):
        ld_store(panel[0], tmp_path / "s", boundaries=tmp_path / "b.tsv")
    assert not (tmp_path / "s").exists()


def test_bad_panels_and_foreign_folders(panel, tmp_path):
    bed, G, _chrom, _pos = panel
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a bayesmages LD store; refusing"):
        ld_store(bed, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(InputError, match="not a bayesmages LD store"):
        LDStore(foreign)

    _write(tmp_path / "unsorted.bed", G[:, :5], np.full(5, "1"), np.array([5, 4, 3, 2, 1]))
    with pytest.raises(InputError, match="position decreases at row 2"):
        ld_store(tmp_path / "unsorted.bed")
    _write(tmp_path / "split.bed", G[:, :5], np.array(["1", "2", "1", "1", "1"]), np.arange(5) + 1)
    with pytest.raises(InputError, match="chromosome 1 appears again at row 3"):
        ld_store(tmp_path / "split.bed")
    (tmp_path / "ref.bim").unlink()
    with pytest.raises(InputError, match=r"ref.bim is missing"):
        ld_store(bed)


def test_pipeline_inputs_from_a_panel_account_for_every_variant(panel, tmp_path):
    import bayesmages as bm

    bed, G, chrom, pos = panel
    store = ld_store(bed, tmp_path / "s", min_size=5, max_size=12)
    a1 = np.where(np.arange(130) % 2, "A", "C")
    a2 = np.where(np.arange(130) % 2, "G", "T")
    rng = np.random.default_rng(0)

    def gwas(rows, swap=()):
        swap_mask = np.isin(rows, swap)
        return pd.DataFrame({"SNP": [f"g{j}" for j in rows], "CHR": chrom[rows], "POS": pos[rows],
                             "A1": np.where(swap_mask, a2[rows], a1[rows]),
                             "A2": np.where(swap_mask, a1[rows], a2[rows]),
                             "BETA": rng.normal(size=len(rows)), "SE": 0.1, "N": 1000.0})

    t1 = gwas(np.delete(np.arange(130), [5, 60]))
    t2 = gwas(np.delete(np.arange(130), [61]), swap=(7, 8))
    genes = pd.DataFrame({"GENE": ["A", "B"], "CHR": ["1", "2"], "START": [1000, 500], "END": [5000, 4500]})
    panel_spec = bm.pipeline.LDPanel(bed, store=tmp_path / "s", min_size=5, max_size=12, shrinkage=0.2)
    inputs = bm.pipeline.load_inputs({"T1": t1, "T2": t2}, None, genes, ld_panel=panel_spec)

    used = np.setdiff1d(np.arange(130), [5, 20, 21, 60, 61])  # 20, 21: no variation in the panel
    assert inputs.variants["SNP"].tolist() == [f"v{j}" for j in used]
    for t, table, missing in (("T1", t1, [5, 60]), ("T2", t2, [61])):
        rep = inputs.harmonisation.reports[t]
        dropped = inputs.harmonisation.dropped[t]
        assert rep["n_input"] == len(table) == rep["n_used"] + rep["n_dropped"]
        other = {"T1": [61], "T2": [5, 60]}[t]  # harmonised here, absent from the other trait
        assert {r: n for r, n in rep["dropped"].items() if n} == {"no_panel_ld": 2, "not_in_every_trait": len(other)}
        assert set(dropped.loc[dropped["reason"] == "no_panel_ld", "detail"]) == {
            "no variation in the reference panel (its LD is undefined)"}
        assert sorted(dropped.loc[dropped["reason"] == "not_in_every_trait", "SNP"]) == sorted(f"g{j}" for j in other)
        assert not set(missing) & set(dropped["GWAS_ROW"].dropna())  # absent rows are simply not input rows
    swapped = inputs.gwas["T2"].set_index("SNP").loc[["v7", "v8"], "BETA"].to_numpy()
    original = t2.set_index("SNP").loc[["g7", "g8"], "BETA"].to_numpy()
    np.testing.assert_array_equal(swapped, -original)
    # LD: the store's blocks restricted to the used variants, shrunk toward the identity
    X = _imputed(G)
    start = 0
    for b, R in zip(inputs.harmonisation.block_ids, inputs.blocks):
        cols = used[start:start + len(R)]
        assert set(cols) <= set(store.rows_of(b))
        np.testing.assert_allclose(R, 0.8 * ld_from_genotypes(X[:, cols]) + 0.2 * np.eye(len(R)), atol=1e-12)
        start += len(R)
    # what a worker would read by block id gives the same matrices
    h = inputs.harmonisation
    for b, rows, R in zip(h.block_ids, h.block_rows, inputs.blocks):
        np.testing.assert_array_equal(LDStore(h.store).block(b, rows=rows, shrinkage=h.shrinkage).R, R)
    assert start == len(used)
    # and so do the references that shrink work units carry (file paths, rows, shrinkage; no matrices)
    from bayesmages.io.ldrefs import LDRefs
    from bayesmages.pipeline.steps import unit_ld

    refs = unit_ld(inputs, tmp_path / "unused", parallel=True)
    assert isinstance(refs, LDRefs) and refs.sizes() == [len(R) for R in inputs.blocks]
    for b, R in enumerate(inputs.blocks):
        np.testing.assert_array_equal(refs.matrix(b), R)
    assert not (tmp_path / "unused").exists()  # nothing spilled: the store's files are read in place


def test_chromosome_names_are_kept_as_the_bim_gives_them(tmp_path):
    G = _genotypes(60, 30, seed=4)
    _write(tmp_path / "p.bed", G, np.array(["chrX"] * 30), np.arange(30) * 10 + 5)
    (tmp_path / "b.tsv").write_text("CHR\tSTART\tEND\n23\t0\t1000\n")  # X is PLINK's 23
    store = ld_store(tmp_path / "p.bed", boundaries=tmp_path / "b.tsv")
    assert set(store.variants["CHR"]) == {"chrX"} and store.blocks["CHR"].tolist() == ["chrX"]
    assert store.blocks["n_variants"].tolist() == [30]
