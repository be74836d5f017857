"""bm.io.harmonise: allele harmonisation against a reference panel, every variant accounted for."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import bayesmages as bm
from bayesmages.errors import InputError
from bayesmages.io import DROP_REASONS, DroppedRowsWarning, harmonise, read_bim, read_gwas

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def _gwas(rows, eaf=False):
    df = pd.DataFrame(rows, columns=["SNP", "CHR", "POS", "A1", "A2", "BETA", *(["EAF"] if eaf else [])])
    df["SE"] = 0.1
    df["N"] = 1000.0
    return df


def _panel(rows, freq=None):
    df = pd.DataFrame(rows, columns=["SNP", "CHR", "POS", "A1", "A2"])
    if freq is not None:
        df["FREQ"] = freq
    return df


PANEL = _panel([
    ("rs1", "1", 100, "A", "G"),
    ("rs2", "1", 200, "C", "T"),
    ("rs3", "1", 300, "A", "T"),      # strand-ambiguous
    ("rs4", "1", 400, "A", "C"),      # multi-allelic in the panel:
    ("rs4b", "1", 400, "A", "G"),     #   two allele pairs at one position
    ("rs5", "1", 500, "G", "T"),      # duplicated in the panel
    ("rs5dup", "1", 500, "T", "G"),
    ("rs6", "chr2", 600, "C", "A"),
    ("rs7", "2", 700, "G", "A"),
    ("rs8", "2", 800, "A", "C"),
])


def test_every_reason_and_every_orientation_by_hand():
    gwas = _gwas([
        ("g1", "1", 100, "A", "G", 0.5),    # same alleles
        ("g2", "1", 200, "T", "C", 0.4),    # swapped: BETA negated
        ("g3", "1", 300, "A", "T", 0.3),    # ambiguous_strand
        ("g4", "1", 400, "A", "C", 0.2),    # multiallelic (panel)
        ("g5", "1", 500, "G", "T", 0.1),    # duplicate (panel)
        ("g6", "2", 600, "G", "T", 0.6),    # strand flip of C/A: kept, same sign
        ("g7", "2", 700, "T", "C", 0.7),    # strand flip + swap of G/A: negated
        ("g8", "3", 800, "A", "G", 0.8),    # not_in_panel
        ("g9", "1", 100, "A", "G", 0.9),    # duplicate in the GWAS (with g1) ...
        ("g10", "2", 650, "A", "C", 1.0),   # not_in_panel
        ("g11", "2", 800, "A", "G", 1.1),   # allele_mismatch (panel A/C; complement T/C is not A/C)
        ("g12", "3", 900, "A", "A", 1.2),   # invalid_alleles
        ("g13", "4", 10, "A", "G", 1.3),    # multiallelic in the GWAS (with g14)
        ("g14", "4", 10, "A", "C", 1.4),
    ])
    table, dropped, report = harmonise(gwas, PANEL)
    assert table["GWAS_SNP"].tolist() == ["g2", "g6", "g7"]  # g1 is now a duplicate of g9
    assert table["SNP"].tolist() == ["rs2", "rs6", "rs7"] and table["PANEL_INDEX"].tolist() == [1, 7, 8]
    assert table["BETA"].tolist() == [-0.4, 0.6, -0.7]
    assert table["SWAPPED"].tolist() == [True, False, True]
    assert table["STRAND_FLIPPED"].tolist() == [False, True, True]
    assert table[["A1", "A2"]].values.tolist() == [["C", "T"], ["C", "A"], ["G", "A"]]
    assert table["CHR"].tolist() == ["1", "chr2", "2"]  # the panel's own names
    reasons = dict(zip(dropped["SNP"], dropped["reason"]))
    assert reasons == {
        "g1": "duplicate", "g9": "duplicate", "g3": "ambiguous_strand", "g4": "multiallelic",
        "g5": "duplicate", "g8": "not_in_panel", "g10": "not_in_panel", "g11": "allele_mismatch",
        "g12": "invalid_alleles", "g13": "multiallelic", "g14": "multiallelic",
    }
    assert report["n_input"] == 14 == report["n_harmonised"] + report["n_dropped"]
    assert report["dropped"] == {"errcode": 0, "test_failed": 0, "multiallelic": 3, "invalid_alleles": 1,
                                 "duplicate": 3, "not_in_panel": 2, "allele_mismatch": 1, "ambiguous_strand": 1}
    assert (report["n_swapped"], report["n_strand_flipped"], report["n_same"]) == (2, 2, 0)
    assert set(report["dropped"]) == set(DROP_REASONS)


def test_eaf_follows_the_panel_allele():
    gwas = _gwas([("g", "1", 200, "T", "C", 0.4, 0.2)], eaf=True)
    table, _, _ = harmonise(gwas, PANEL)
    assert table["EAF"].tolist() == [0.8] and table["BETA"].tolist() == [-0.4]


def test_ambiguous_kept_by_frequency():
    panel = _panel([("p1", "1", 1, "A", "T"), ("p2", "1", 2, "C", "G"), ("p3", "1", 3, "A", "T"),
                    ("p4", "1", 4, "G", "C")], freq=[0.2, 0.2, 0.45, np.nan])
    gwas = _gwas([
        ("same", "1", 1, "A", "T", 0.5, 0.15),   # A freq 0.15 in GWAS, 0.2 in the panel: same strand
        ("other", "1", 2, "C", "G", 0.5, 0.85),  # C 0.85 vs 0.2: the GWAS reports the other strand
        ("near", "1", 3, "A", "T", 0.5, 0.1),    # panel 0.45 is within 0.5 ± 0.1
        ("nofreq", "1", 4, "C", "G", 0.5, 0.8),  # panel frequency missing
    ], eaf=True)
    table, dropped, _ = harmonise(gwas, panel, ambiguous="frequency")
    assert table["GWAS_SNP"].tolist() == ["same", "other"]
    assert table["BETA"].tolist() == [0.5, -0.5]
    assert table["STRAND_FLIPPED"].tolist() == [False, True]
    np.testing.assert_allclose(table["EAF"], [0.15, 0.15], atol=1e-15)  # 1 - 0.85, float rounding only
    assert dropped["reason"].tolist() == ["ambiguous_strand", "ambiguous_strand"]
    # default: dropped whatever the frequencies
    assert harmonise(gwas, panel)[2]["dropped"]["ambiguous_strand"] == 4
    # without a panel FREQ column the GWAS EAF alone decides (assumed on the panel's strand)
    kept = harmonise(gwas, panel.drop(columns="FREQ"), ambiguous="frequency")[0]
    assert kept["GWAS_SNP"].tolist() == ["same", "other", "near", "nofreq"]
    assert kept["BETA"].tolist() == [0.5, 0.5, 0.5, -0.5]
    close = _gwas([("mid", "1", 1, "A", "T", 0.5, 0.55)], eaf=True)
    assert harmonise(close, panel, ambiguous="frequency")[1]["reason"].tolist() == ["ambiguous_strand"]


def test_match_by_id_and_panel_order():
    gwas = _gwas([("rs7", "9", 1, "A", "G", 0.7), ("rs1", "9", 2, "G", "A", 0.1), ("zz", "9", 3, "A", "G", 0.0)])
    table, dropped, report = harmonise(gwas, PANEL, by="id")
    assert table["SNP"].tolist() == ["rs1", "rs7"] and table["BETA"].tolist() == [-0.1, -0.7]
    assert table["POS"].tolist() == [100, 700]  # positions come from the panel
    assert dropped["reason"].tolist() == ["not_in_panel"] and report["n_input"] == 3
    # an id twice in the GWAS, or twice in the panel, cannot be matched
    twice = pd.concat([gwas, gwas.iloc[[1]]], ignore_index=True)
    assert harmonise(twice, PANEL, by="id")[1]["reason"].tolist() == ["duplicate", "not_in_panel", "duplicate"]
    panel2 = pd.concat([PANEL, PANEL.iloc[[8]]], ignore_index=True)
    assert dict(zip(*harmonise(gwas, panel2, by="id")[1][["SNP", "reason"]].T.values)) == {
        "rs7": "duplicate", "zz": "not_in_panel"}


def test_reader_drops_are_carried_into_the_report(tmp_path):
    f = tmp_path / "t.glm.linear"
    f.write_text(
        "#CHROM\tPOS\tID\tREF\tALT\tA1\tTEST\tOBS_CT\tBETA\tSE\tP\tERRCODE\n"
        "1\t100\trs1\tA\tG\tA\tADD\t100\t0.5\t0.1\t0.1\t.\n"
        "1\t200\trs2\tC\tT\tT\tADD\t100\t.\t.\t.\tCONST_ALLELE\n"
        "1\t300\trs3\tA\tC,G\tC\tADD\t100\t0.1\t0.1\t0.1\t.\n"
    )
    with pytest.warns(DroppedRowsWarning, match="2 of 3 rows left out"):
        gwas = read_gwas(f)
    table, dropped, report = harmonise(gwas, PANEL)
    assert table["BETA"].tolist() == [0.5] and not table["SWAPPED"].iloc[0]
    assert dropped[["SNP", "reason", "FILE_ROW"]].values.tolist() == [["rs2", "errcode", 2],
                                                                      ["rs3", "multiallelic", 3]]
    assert report["n_input"] == 3 and report["dropped"]["errcode"] == 1


def test_read_bim_and_errors(tmp_path):
    bim = tmp_path / "ref.bim"
    bim.write_text("1 rs1 0 100 a g\n1 rs2 0.5 200 C T\n")
    panel = read_bim(tmp_path / "ref.bed")
    assert panel.values.tolist() == [["rs1", "1", 100, "A", "G"], ["rs2", "1", 200, "C", "T"]]
    bim.write_text("1 rs1 0 100 A\n")
    with pytest.raises(InputError, match="5 fields per line"):
        read_bim(bim)
    bim.write_text("1 rs1 0 x A G\n")
    with pytest.raises(InputError, match=r"ref.bim: position \(field 4\) at row 1 is 'x'"):
        read_bim(bim)
    with pytest.raises(InputError, match=r"no such \.bim"):
        read_bim(tmp_path / "absent")
    gwas = _gwas([("g", "1", 100, "A", "G", 0.5)])
    with pytest.raises(InputError, match=r"GWAS table has no column\(s\) \['POS'\]"):
        harmonise(gwas.drop(columns="POS"), PANEL)
    with pytest.raises(InputError, match="needs an EAF column"):
        harmonise(gwas, PANEL, ambiguous="frequency")
    with pytest.raises(InputError, match="by must be"):
        harmonise(gwas, PANEL, by="rsid")  # type: ignore[arg-type]
    assert bm.io.harmonise is harmonise


# --- property: the orientation of the GWAS input does not change the result --------------------
BASES = "ACGT"
_pairs = st.tuples(st.sampled_from(BASES), st.sampled_from(BASES))  # A/A etc. = invalid alleles
_distinct = st.sampled_from([(a, b) for a in BASES for b in BASES if a != b])


@st.composite
def _case(draw):
    # few positions so that duplicates, multi-allelic sites and misses all occur
    n_panel = draw(st.integers(1, 12))
    panel = [(f"p{i}", "1", draw(st.integers(1, 10)), *draw(_distinct)) for i in range(n_panel)]
    n_gwas = draw(st.integers(1, 15))
    gwas = []
    for i in range(n_gwas):
        source = draw(st.integers(-2, n_panel - 1))  # mostly copies of panel variants, some random
        if source >= 0:
            pos, (a1, a2) = panel[source][2], draw(st.sampled_from([panel[source][3:], panel[source][4:2:-1]]))
        else:
            pos, (a1, a2) = draw(st.integers(1, 12)), draw(_pairs)
        gwas.append((f"g{i}", "1", pos, a1, a2, draw(st.floats(-1, 1, allow_nan=False)),
                     draw(st.sampled_from([0.05, 0.2, 0.5, 0.8, 0.95]))))
    freq = [draw(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9])) for _ in range(n_panel)]
    swap = [draw(st.booleans()) for _ in range(n_gwas)]
    strand = [draw(st.booleans()) for _ in range(n_gwas)]
    return panel, freq, gwas, swap, strand


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case(), st.sampled_from(["drop", "frequency"]))
def test_allele_swaps_and_strand_flips_of_the_input_do_not_change_the_result(case, ambiguous):
    panel_rows, freq, gwas_rows, swap, strand = case
    panel = _panel(panel_rows, freq=freq)
    gwas = _gwas(gwas_rows, eaf=True)
    moved = gwas.copy()
    for i in range(len(moved)):
        a1, a2, beta, eaf = moved.loc[i, ["A1", "A2", "BETA", "EAF"]]
        if swap[i]:  # report the other allele's effect: same data
            a1, a2, beta, eaf = a2, a1, -beta, 1 - eaf
        # report the other strand; for A/T and C/G only when the strand is not read from frequencies
        # (there the complement is a different claim about the data, not the same data)
        if strand[i] and (ambiguous == "drop" or COMPLEMENT[a1] != a2):
            a1, a2 = COMPLEMENT[a1], COMPLEMENT[a2]
        moved.loc[i, ["A1", "A2", "BETA", "EAF"]] = [a1, a2, beta, eaf]
    t0, d0, r0 = harmonise(gwas, panel, ambiguous=ambiguous)
    t1, d1, r1 = harmonise(moved, panel, ambiguous=ambiguous)
    same_cols = ["SNP", "CHR", "POS", "A1", "A2", "SE", "N", "PANEL_INDEX", "GWAS_ROW"]
    pd.testing.assert_frame_equal(t0[same_cols], t1[same_cols])
    # BETA is negated exactly (no arithmetic besides the sign); EAF goes through 1 - (1 - f)
    np.testing.assert_array_equal(t0["BETA"].to_numpy(), t1["BETA"].to_numpy())
    np.testing.assert_allclose(t0["EAF"], t1["EAF"], rtol=0, atol=1e-12)
    assert d0[["GWAS_ROW", "reason"]].equals(d1[["GWAS_ROW", "reason"]])
    assert r0["n_input"] == r0["n_harmonised"] + r0["n_dropped"] == len(gwas)
    assert r0["dropped"] == r1["dropped"]
    event(f"harmonised: {min(len(t0), 3)}+, swapped: {r0['n_swapped'] > 0}, flipped: {r1['n_strand_flipped'] > 0}")
