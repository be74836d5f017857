"""Readers of PLINK 2, REGENIE, SAIGE and GWAS-SSF output (bm.io.read_gwas with format detection)."""

import gzip

import numpy as np
import pytest

from bayesmages.errors import InputError
from bayesmages.io import DroppedRowsWarning, read_gwas
from bayesmages.io.gwas_formats import detect_gwas_format

CANONICAL = ["SNP", "CHR", "POS", "A1", "A2", "BETA", "SE", "N"]

# A PLINK 2 --glm linear file as plink2 writes it (tab separated, '#CHROM' header, '.' = missing):
# rs1 counts ALT, rs2 counts REF (A1 == REF), rs3 failed (ERRCODE), rs4 is multi-allelic, and
# rs1 also has a covariate row (no hide-covar) that must not become a variant.
PLINK2_LINEAR = (
    "#CHROM\tPOS\tID\tREF\tALT\tPROVISIONAL_REF?\tA1\tOMITTED\tA1_FREQ\tTEST\tOBS_CT\tBETA\tSE\tT_STAT\tP\tERRCODE\n"
    "1\t100\trs1\tA\tG\tN\tG\tA\t0.3\tADD\t1000\t0.5\t0.1\t5\t1e-6\t.\n"
    "1\t100\trs1\tA\tG\tN\tG\tA\t0.3\tAGE\t1000\t0.01\t0.002\t5\t1e-6\t.\n"
    "1\t200\trs2\tC\tT\tN\tC\tT\t0.6\tADD\t990\t-0.2\t0.05\t-4\t1e-4\t.\n"
    "1\t300\trs3\tG\tA\tN\tA\tG\t0\tADD\t1000\t.\t.\t.\t.\tCONST_ALLELE\n"
    "2\t400\trs4\tT\tC,G\tN\tC\tT,G\t0.1\tADD\t1000\t0.3\t0.2\t1.5\t0.1\t.\n"
    "chr2\t500\t.\tT\tC\tN\tC\tT\t0.2\tADD\t1000\t0.1\t0.2\t0.5\t0.6\t.\n"
)


def _write(path, text):
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_plink2_linear_effect_allele_errcode_multiallelic_and_covariate_rows(tmp_path):
    with pytest.warns(DroppedRowsWarning, match=r"2 of 6 rows left out \(errcode 1, multiallelic 1\)"):
        df = read_gwas(_write(tmp_path / "t.PHENO1.glm.linear", PLINK2_LINEAR))
    assert df.attrs["format"] == "plink2"
    assert list(df.columns) == [*CANONICAL, "EAF"]
    assert df["SNP"].tolist() == ["rs1", "rs2", "2:500:T:C"]  # a '.' id gets CHR:POS:OTHER:EFFECT
    # A1 is the effect allele; the other allele is whichever of REF/ALT is not A1
    assert df[["A1", "A2"]].values.tolist() == [["G", "A"], ["C", "T"], ["C", "T"]]
    assert df["BETA"].tolist() == [0.5, -0.2, 0.1] and df["N"].tolist() == [1000, 990, 1000]
    assert df["EAF"].tolist() == [0.3, 0.6, 0.2] and df["CHR"].tolist() == ["1", "1", "2"]
    dropped = {d["SNP"]: (d["reason"], d["detail"], d["row"]) for d in df.attrs["dropped"]}
    assert dropped == {"rs3": ("errcode", "CONST_ALLELE", 4), "rs4": ("multiallelic", "ALT=C,G", 5)}
    assert df.attrs["n_rows"] == 6 and df.attrs["non_additive_rows"] == 1


def test_plink2_logistic_odds_ratio_to_log_scale_gz(tmp_path):
    text = (
        "#CHROM\tPOS\tID\tREF\tALT\tA1\tFIRTH?\tTEST\tOBS_CT\tOR\tLOG(OR)_SE\tZ_STAT\tP\tERRCODE\n"
        "3\t10\trs10\tA\tC\tC\tN\tADD\t500\t2.0\t0.3\t2.3\t0.02\t.\n"
        "3\t20\trs11\tG\tT\tG\tY\tADD\t480\t0.5\t0.4\t-1.7\t0.09\t.\n"
        "3\t30\trs12\tG\tT\tT\tN\tADD\t480\t.\t.\t.\t.\tSEPARATION\n"
    )
    with pytest.warns(DroppedRowsWarning, match="errcode 1"):
        df = read_gwas(_write(tmp_path / "t.PHENO1.glm.logistic.hybrid.gz", text))
    np.testing.assert_allclose(df["BETA"], np.log([2.0, 0.5]), rtol=0, atol=0)
    assert df["SE"].tolist() == [0.3, 0.4]  # LOG(OR)_SE is already on the log scale
    assert df[["A1", "A2"]].values.tolist() == [["C", "A"], ["G", "T"]]
    assert [d["reason"] for d in df.attrs["dropped"]] == ["errcode"]


def test_regenie_effect_allele_is_allele1_and_test_fail_dropped(tmp_path):
    text = (
        "CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ INFO N TEST BETA SE CHISQ LOG10P EXTRA\n"
        "1 100 rs1 A G 0.25 0.99 5000 ADD 0.12 0.03 16 4.2 NA\n"
        "1 100 rs1 A G 0.25 0.99 5000 DOM 0.2 0.05 16 4.2 NA\n"
        "1 200 rs2 C T 0.4 1 5000 ADD NA NA NA NA TEST_FAIL\n"
        "1 300 rs3 c t 0.4 1 4990 ADD -0.05 0.02 6 1.9 NA\n"
    )
    with pytest.warns(DroppedRowsWarning, match="test_failed 1"):
        df = read_gwas(_write(tmp_path / "out_Y1.regenie", text))
    assert df.attrs["format"] == "regenie"
    assert df["SNP"].tolist() == ["rs1", "rs3"]
    assert df[["A1", "A2"]].values.tolist() == [["G", "A"], ["T", "C"]]  # alleles upper-cased
    assert df["BETA"].tolist() == [0.12, -0.05] and df["EAF"].tolist() == [0.25, 0.4]
    assert [(d["SNP"], d["reason"]) for d in df.attrs["dropped"]] == [("rs2", "test_failed")]
    assert df.attrs["non_additive_rows"] == 1


def test_saige_effect_allele_is_allele2_and_n_from_cases_and_controls(tmp_path):
    text = (
        "CHR\tPOS\tMarkerID\tAllele1\tAllele2\tAC_Allele2\tAF_Allele2\tMissingRate\tBETA\tSE\tTstat\tvar\tp.value"
        "\tN_case\tN_ctrl\n"
        "chr4\t1000\t4:1000:A:G\tA\tG\t300\t0.15\t0\t0.2\t0.05\t80\t400\t1e-4\t400\t600\n"
    )
    df = read_gwas(_write(tmp_path / "saige.txt", text))
    assert df.attrs["format"] == "saige"
    row = df.iloc[0]
    assert (row["A1"], row["A2"], row["CHR"], row["N"], row["EAF"]) == ("G", "A", "4", 1000.0, 0.15)


def test_ssf_odds_ratio_hash_na_and_n_argument(tmp_path):
    text = (
        "chromosome\tbase_pair_location\teffect_allele\tother_allele\todds_ratio\tstandard_error"
        "\teffect_allele_frequency\tp_value\trsid\n"
        "5\t123\tA\tC\t1.5\t0.1\t#NA\t0.01\trs5\n"
        "5\t456\tT\tG\t0.8\t0.2\t0.7\t0.3\t#NA\n"
    )
    f = _write(tmp_path / "GCST1.tsv", text)
    with pytest.raises(InputError, match=r"no sample-size column .* n="):
        read_gwas(f)
    df = read_gwas(f, n=12000)
    assert df.attrs["format"] == "ssf" and list(df.columns) == [*CANONICAL, "EAF"]
    np.testing.assert_allclose(df["BETA"], np.log([1.5, 0.8]), rtol=0, atol=0)
    assert df["SNP"].tolist() == ["rs5", "5:456:G:T"] and df["N"].tolist() == [12000, 12000]
    assert np.isnan(df["EAF"].iloc[0]) and df["EAF"].iloc[1] == 0.7


def test_generic_tables_unchanged_and_format_can_be_forced(tmp_path):
    f = _write(tmp_path / "g.tsv", "SNP\tA1\tA2\tBETA\tSE\nrs1\tA\tG\t0.1\t0.05\n")
    df = read_gwas(f)
    assert list(df.columns) == ["SNP", "A1", "A2", "BETA", "SE"] and df.attrs["format"] == "generic"
    assert read_gwas(f, n=100)["N"].tolist() == [100]
    # a REGENIE file whose optional columns were trimmed is not recognised; format= forces it
    g = _write(tmp_path / "r.txt", "CHROM POS ID ALLELE0 ALLELE1 N BETA SE\n1 5 rs1 A G 10 0.1 0.2\n")
    with pytest.raises(InputError, match="GENPOS"):
        read_gwas(g, format="regenie")
    with pytest.raises(InputError, match="unknown GWAS format 'plink'"):
        read_gwas(f, format="plink")


@pytest.mark.parametrize(("header", "expected"), [
    (["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TEST", "OBS_CT", "BETA", "SE", "P", "ERRCODE"], "plink2"),
    (["CHR", "POS", "MarkerID", "Allele1", "Allele2", "AC_Allele2", "AF_Allele2", "BETA", "SE"], "saige"),
    (["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta", "standard_error"], "ssf"),
    (["#CHROM", "RSID", "BP", "Effect_Allele", "Other_Allele", "LOG_ODDS", "StdErr"], "generic"),
])
def test_detect_format(header, expected):
    assert detect_gwas_format(header) == expected


@pytest.mark.parametrize(("body", "fragment"), [
    (PLINK2_LINEAR.replace("0.5\t0.1", "abc\t0.1"), "column BETA has a non-numeric value 'abc' at row 1"),
    (PLINK2_LINEAR.replace("-0.2\t0.05", "-0.2\t0"), "column SE at row 3 is 0.0; expected a standard error > 0"),
    (PLINK2_LINEAR.replace("\tC\tT\t0.6", "\tG\tT\t0.6"), "column A1 at row 3 is 'G', expected REF ('C') or ALT ('T')"),
    (PLINK2_LINEAR.replace("\t990\t", "\t-3\t"), "column OBS_CT at row 3 is -3; expected a sample size > 0"),
    (PLINK2_LINEAR.replace("\t0.6\tADD", "\t1.6\tADD"), "column A1_FREQ at row 3 is 1.6; expected an allele frequency"),
    (PLINK2_LINEAR.replace("\tADD\t", "\tDOM\t"), "no row with TEST == ADD"),
    (PLINK2_LINEAR.replace("\tSE\t", "\tSTDERR\t"), "needs a standard-error column (SE or LOG(OR)_SE)"),
], ids=["beta", "se", "a1", "obs_ct", "a1_freq", "test", "se_column"])
def test_bad_plink2_input_names_file_column_row(tmp_path, body, fragment):
    with pytest.raises(InputError) as info:
        read_gwas(_write(tmp_path / "bad.glm.linear", body))
    assert fragment in str(info.value) and "bad.glm.linear" in str(info.value)


def test_bad_values_in_failed_rows_are_not_errors(tmp_path):
    # rs3's BETA/SE are '.' because plink2 could not fit it; that is reported as errcode, not an error
    with pytest.warns(DroppedRowsWarning):
        df = read_gwas(_write(tmp_path / "ok.glm.linear", PLINK2_LINEAR))
    assert "rs3" not in set(df["SNP"])


def test_n_argument_replaces_the_file_column_and_generic_eaf(tmp_path):
    f = _write(tmp_path / "r.regenie", "CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ N TEST BETA SE CHISQ LOG10P\n"
                                       "1 100 rs1 A G 0.25 5000 ADD 0.12 0.03 16 4.2\n")
    assert read_gwas(f)["N"].tolist() == [5000] and read_gwas(f, n=4000)["N"].tolist() == [4000]
    with pytest.raises(InputError, match="sample size n must be a positive number"):
        read_gwas(f, n=0)
    g = _write(tmp_path / "g.csv", "SNP,A1,A2,BETA,SE,FRQ\nrs1,A,G,0.1,0.05,0.3\n")
    df = read_gwas(g)
    assert list(df.columns) == ["SNP", "A1", "A2", "BETA", "SE", "EAF"] and df["EAF"].tolist() == [0.3]


def test_read_pgen_dosages_ids_and_missing(tmp_path):
    """A PLINK 2 fileset written with pgenlib: dosages (stored to 1/16384), sample and variant ids from
    .psam/.pvar, a missing dosage as NaN; the prefix works like the .pgen path; a missing .psam is named."""
    import pgenlib

    from bayesmages.io import read_genotypes

    rng = np.random.default_rng(0)
    n, p = 40, 3
    D = np.round(rng.uniform(0, 2, size=(p, n)) * 16384) / 16384
    D[1, 5] = -9  # missing
    with pgenlib.PgenWriter(str(tmp_path / "d.pgen").encode(), n, variant_ct=p, nonref_flags=False,
                            dosage_present=True) as w:
        for row in D:
            w.append_dosages(row.astype(np.float32))
    (tmp_path / "d.psam").write_text("#IID\tSEX\n" + "".join(f"s{i}\tNA\n" for i in range(n)))
    (tmp_path / "d.pvar").write_text("##fileformat=PVARv1.0\n#CHROM\tPOS\tID\tREF\tALT\n"
                                     + "".join(f"1\t{100 + j}\tv{j}\tA\tG\n" for j in range(p)))
    g = read_genotypes(tmp_path / "d.pgen")
    assert list(g.samples[:2]) == ["s0", "s1"] and list(g.variants) == ["v0", "v1", "v2"]
    assert np.isnan(g.G[5, 1]) and np.isnan(g.G).sum() == 1
    ok = ~np.isnan(g.G)
    np.testing.assert_allclose(g.G[ok], D.T[ok], atol=1e-4)  # float32 in, 1/16384 grid in the file
    np.testing.assert_array_equal(read_genotypes(tmp_path / "d").G[ok], g.G[ok])
    with pytest.raises(InputError, match=r"d2\.psam: PLINK 2 fileset incomplete"):
        (tmp_path / "d2.pgen").write_bytes((tmp_path / "d.pgen").read_bytes())
        read_genotypes(tmp_path / "d2.pgen")
