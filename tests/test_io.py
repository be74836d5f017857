import gzip

import numpy as np
import pandas as pd
import pytest

import bayesmages as bm
from bayesmages.errors import InputError
from bayesmages.io import (
    atomic_dir,
    read_genes,
    read_genotypes,
    read_gwas,
    read_ld,
    read_table,
    write_json,
    write_npz,
    write_table,
)


def _write(path, text):
    path.write_text(text)
    return path


def test_read_gwas_maps_aliases_and_log_odds(tmp_path):
    f = _write(
        tmp_path / "g.tsv",
        "#CHROM\tRSID\tBP\tEffect_Allele\tOther_Allele\tLOG_ODDS\tStdErr\n"
        "22\trs1\t100\tA\tG\t0.1\t0.05\n22\trs2\t200\tC\tT\t-0.2\t0.04\n",
    )
    df = read_gwas(f)
    assert list(df.columns) == ["CHR", "SNP", "POS", "A1", "A2", "BETA", "SE"]
    assert df["BETA"].tolist() == [0.1, -0.2]
    assert df["POS"].dtype == np.int64 and df["SNP"].tolist() == ["rs1", "rs2"]


def test_read_gwas_odds_ratio_gz_and_comma(tmp_path):
    f = tmp_path / "g.csv.gz"
    with gzip.open(f, "wt") as fh:
        fh.write("snp,or,se,n\nrs1,2.0,0.1,1000\nrs2,0.5,0.2,1000\n")
    df = read_gwas(f)
    np.testing.assert_allclose(df["BETA"], np.log([2.0, 0.5]))
    assert "N" in df


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("SNP,SE\nrs1,0.1\n", "no effect column"),
        ("SNP,BETA\nrs1,0.1\n", "standard-error"),
        ("SNP,BETA,SE\nrs1,abc,0.1\n", "column BETA has a non-numeric value 'abc' at row 1"),
        ("SNP,BETA,SE\nrs1,0.1,0.1\nrs2,inf,0.1\n", "BETA has a missing or infinite value at row 2"),
        ("SNP,BETA,SE\nrs1,0.1,0.1\nrs2,,0.1\n", "BETA has a missing or infinite value at row 2"),
        ("SNP,BETA,SE\nrs1,0.1,0\n", "SE must be > 0"),
        ("SNP,BETA,SE\nrs1,0.1,-1\n", "SE must be > 0"),
        ("SNP,BETA,SE\nrs1,0.1,0.1\nrs1,0.2,0.1\n", "duplicate SNP identifier 'rs1' at row 2"),
        ("SNP,OR,SE\nrs1,-1,0.1\n", "odds ratio"),
    ],
)
def test_read_gwas_bad_inputs(tmp_path, body, fragment):
    f = _write(tmp_path / "bad.csv", body)
    with pytest.raises(InputError) as info:
        read_gwas(f)
    assert fragment in str(info.value) and "bad.csv" in str(info.value)


def test_read_gwas_missing_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="no such GWAS file"):
        read_gwas(tmp_path / "absent.csv")
    with pytest.raises(InputError, match="empty"):
        read_gwas(_write(tmp_path / "e.csv", ""))


def _corr(m, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m + 5, m))
    return np.corrcoef(A, rowvar=False)


@pytest.mark.parametrize("fmt", ["ld", "npy", "npz", "csv"])
def test_read_ld_formats_roundtrip(tmp_path, fmt):
    R = _corr(6)
    path = tmp_path / f"b.{fmt}"
    if fmt == "ld":
        np.savetxt(path, R, fmt="%.6f")
    elif fmt == "csv":
        np.savetxt(path, R, fmt="%.6f", delimiter=",")
    elif fmt == "npy":
        np.save(path, R)
    else:
        write_npz(path, R=R, ids=np.array([f"v{i}" for i in range(6)]))
    block = read_ld(path, n_variants=6)
    assert block.R.dtype == np.float64 and block.m == 6
    np.testing.assert_allclose(block.R, R, atol=1e-6)
    np.testing.assert_array_equal(block.R, block.R.T)
    assert np.all(np.diag(block.R) == 1.0)


def test_read_ld_reorders_by_ids(tmp_path):
    R = _corr(4)
    ids = np.array(["a", "b", "c", "d"])
    write_npz(tmp_path / "b.npz", R=R, ids=ids)
    block = read_ld(tmp_path / "b.npz", ids=["c", "a", "d", "b"])
    order = [2, 0, 3, 1]
    np.testing.assert_allclose(block.R, R[np.ix_(order, order)])
    with pytest.raises(InputError, match="'zz'"):
        read_ld(tmp_path / "b.npz", ids=["a", "b", "c", "zz"])


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda R: R[:, :-1], "square"),
        (lambda R: R + np.triu(np.full_like(R, 0.01), 1), "not symmetric"),
        (lambda R: R + np.eye(len(R)) * 0.1, "diagonal must be 1"),
        (lambda R: np.where(np.eye(len(R)) == 1, 1.0, 1.5), "[-1, 1]"),
        (lambda R: np.where(np.eye(len(R)) == 1, 1.0, np.nan), "non-finite"),
    ],
)
def test_read_ld_bad_matrices(tmp_path, mutate, fragment):
    path = tmp_path / "bad.npy"
    np.save(path, mutate(_corr(5)))
    with pytest.raises(InputError) as info:
        read_ld(path)
    assert fragment in str(info.value) and "bad.npy" in str(info.value)


def test_read_ld_size_mismatch(tmp_path):
    np.save(tmp_path / "b.npy", _corr(5))
    with pytest.raises(InputError, match="5 variants but 7 were expected"):
        read_ld(tmp_path / "b.npy", n_variants=7)


def test_read_real_ld_block(real_ld_path):
    block = read_ld(real_ld_path)
    assert block.R.shape == (603, 603)
    # real blocks carry many negative correlations (METHODS §A: about 55% of off-diagonal entries)
    off = block.R[~np.eye(603, dtype=bool)]
    assert 0.4 < (off < 0).mean() < 0.7


def test_read_msprime_ld_block_in_mlmages_text_format(msprime_ld):
    # the ML-MAGES .ld text format as the package's msprime blocks are written (tests/conftest.py)
    block = read_ld(msprime_ld.path)
    m = msprime_ld.R.shape[0]
    assert block.R.shape == (m, m)
    np.testing.assert_array_equal(block.R, block.R.T)
    np.testing.assert_array_equal(np.diag(block.R), 1.0)
    np.testing.assert_allclose(block.R, msprime_ld.R, atol=5e-7)  # written with 6 decimals


def test_read_genes_index_format(msprime_ld):
    m = msprime_ld.R.shape[0]
    genes = read_genes(msprime_ld.genes_path, n_variants=m)
    assert genes.attrs["format"] == "index"
    assert (genes["end_idx_chr"] - genes["start_idx_chr"] + 1 == genes["N_SNPS"]).all()
    with pytest.raises(InputError):
        read_genes(msprime_ld.genes_path, n_variants=int(genes["end_idx_chr"].max()))  # last gene past the end


def test_read_genes_index_format_real(shared_dir):
    genes = read_genes(shared_dir / "data" / "ld" / "chr22_block0_genes.csv", n_variants=603)
    assert genes.attrs["format"] == "index"
    assert {"GENE", "CHR", "START", "END", "N_SNPS", "start_idx_chr", "end_idx_chr"} <= set(genes.columns)
    assert (genes["end_idx_chr"] - genes["start_idx_chr"] + 1 == genes["N_SNPS"]).all()


def test_read_genes_positions_and_errors(tmp_path):
    ok = _write(tmp_path / "g.csv", "GENE,CHR,START,END\nA,chr1,100,200\nB,1,300,400\n")
    df = read_genes(ok)
    assert df.attrs["format"] == "positions" and df["CHR"].tolist() == ["1", "1"]
    bad = _write(tmp_path / "b.csv", "GENE,CHR,START,END\nA,1,300,200\n")
    with pytest.raises(InputError, match=r"'A'.*START=300, END=200"):
        read_genes(bad)
    dup = _write(tmp_path / "d.csv", "GENE,CHR,START,END\nA,1,1,2\nA,1,5,9\n")
    with pytest.raises(InputError, match="duplicate gene 'A'"):
        read_genes(dup)
    none = _write(tmp_path / "n.csv", "GENE,CHR\nA,1\n")
    with pytest.raises(InputError, match="START and END"):
        read_genes(none)


def test_read_genes_index_range_outside_data(tmp_path):
    body = "GENE,CHR,N_SNPS,start_idx_chr,end_idx_chr,chr_start_idx_gw\nA,22,3,0,2,0\nB,22,5,8,12,0\n"
    f = _write(tmp_path / "g.csv", body)
    read_genes(f, n_variants=13)
    with pytest.raises(InputError, match=r"'B'.*outside the data's 10 variants"):
        read_genes(f, n_variants=10)
    wrong_len = _write(tmp_path / "w.csv", body.replace("B,22,5", "B,22,4"))
    with pytest.raises(InputError, match="N_SNPS=4"):
        read_genes(wrong_len)


def test_read_genotypes_csv(tmp_path):
    f = _write(tmp_path / "z.csv", "IID,V1,V2\ns1,0,2\ns2,NA,1\ns3,9,0\n")
    g = read_genotypes(f)
    assert g.G.shape == (3, 2) and np.isnan(g.G[1, 0]) and np.isnan(g.G[2, 0])
    assert g.samples.tolist() == ["s1", "s2", "s3"] and g.variants.tolist() == ["V1", "V2"]
    bad = _write(tmp_path / "b.csv", "V1,V2\n0,3\n")
    with pytest.raises(InputError, match="genotype 3 at row 1, column V2"):
        read_genotypes(bad)


def test_read_genotypes_plink_roundtrip(tmp_path):
    bed_reader = pytest.importorskip("bed_reader")
    rng = np.random.default_rng(0)
    G = rng.integers(0, 3, size=(20, 5)).astype(float)
    G[3, 1] = np.nan
    path = tmp_path / "toy.bed"
    bed_reader.to_bed(path, G, properties={"sid": [f"v{i}" for i in range(5)]})
    g = read_genotypes(path)
    np.testing.assert_array_equal(np.isnan(g.G), np.isnan(G))
    np.testing.assert_array_equal(g.G[~np.isnan(G)], G[~np.isnan(G)])
    # the counts are of A1 (written with bed-reader's count_A1=True): counting A2 gives 2 - G
    with bed_reader.open_bed(path, count_A1=False) as b:
        np.testing.assert_array_equal(b.read(dtype="float64")[~np.isnan(G)], 2 - g.G[~np.isnan(G)])
    with pytest.raises(InputError, match=r"\.bim"):
        (tmp_path / "toy.bim").unlink()
        read_genotypes(path)


def test_writers_are_atomic(tmp_path):
    target = tmp_path / "t.csv"
    write_table(pd.DataFrame({"a": [1, 2]}), target)
    before = target.read_text()
    with pytest.raises(RuntimeError):
        with bm.io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temp file left


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError):
        with atomic_dir(out) as tmp:
            write_json({"a": 1}, tmp / "run.json")
            raise ValueError("failed step")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        write_json({"a": np.float64(1.5)}, tmp / "run.json")
    assert (out / "run.json").read_text().strip().startswith("{")


@pytest.mark.parametrize("name", ["t.csv", "t.tsv", "t.csv.gz"])
def test_written_tables_read_back_exactly(tmp_path, name):
    # Floats are written in their shortest round-trip form, so what a resumed run reads is what was written;
    # text needing quotes is quoted, booleans and missing values keep pandas' spelling.
    from bayesmages.pipeline.steps import _read

    rng = np.random.default_rng(7)
    x = rng.normal(size=2000) * 10.0 ** rng.integers(-300, 300, size=2000)
    df = pd.DataFrame({"SNP": [f"rs{i}" for i in range(2000)], "x": x, "tiny": x * 1e-10,
                       "flag": rng.random(2000) < 0.5, "gap": np.where(rng.random(2000) < 0.1, np.nan, x),
                       "label": np.where(rng.random(2000) < 0.3, "a,b\t\"c\"", "none")})
    write_table(df, tmp_path / name)
    back = _read(tmp_path / name) if name.endswith(".csv") else read_table(tmp_path / name)
    for col in ("x", "tiny", "gap"):
        assert np.array_equal(back[col].to_numpy(), df[col].to_numpy(), equal_nan=True), col
    assert back["flag"].tolist() == df["flag"].tolist()
    assert back["label"].tolist() == df["label"].tolist() and back["SNP"].tolist() == df["SNP"].tolist()


def test_table_arrow_cannot_take_is_written_by_pandas(tmp_path):
    df = pd.DataFrame({"mixed": [1, "x", 2.5]})  # an object column of numbers and text
    write_table(df, tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_text().splitlines() == ["mixed", "1", "x", "2.5"]
