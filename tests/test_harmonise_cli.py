"""``bayesmages harmonise``: a PLINK 2 file and a .bim in, three tables and a report out."""

import json

import pandas as pd

from bayesmages.cli import main

GLM = (
    "#CHROM\tPOS\tID\tREF\tALT\tA1\tTEST\tOBS_CT\tBETA\tSE\tT_STAT\tP\tERRCODE\n"
    "1\t100\trs1\tA\tG\tG\tADD\t500\t0.5\t0.1\t5\t1e-6\t.\n"
    "1\t200\trs2\tC\tT\tT\tADD\t500\t0.2\t0.1\t2\t0.05\t.\n"
    "1\t300\trs3\tA\tT\tT\tADD\t500\t0.3\t0.1\t3\t0.01\t.\n"
    "1\t400\trs4\tG\tC\tC\tADD\t500\t.\t.\t.\t.\tCONST_ALLELE\n"
    "1\t500\trs5\tG\tA\tA\tADD\t500\t0.1\t0.1\t1\t0.3\t.\n"
)
# the panel counts rs1's REF (swap), has rs2 on the other strand, lacks rs5
BIM = "1\tv1\t0\t100\tA\tG\n1\tv2\t0\t200\tA\tG\n1\tv3\t0\t300\tT\tA\n1\tv4\t0\t400\tC\tG\n"


def test_harmonise_command_writes_tables_and_report(tmp_path, capsys):
    (tmp_path / "t.glm.linear").write_text(GLM)
    (tmp_path / "ref.bim").write_text(BIM)
    out = tmp_path / "h"
    assert main(["harmonise", "--gwas", str(tmp_path / "t.glm.linear"), "--panel", str(tmp_path / "ref.bim"),
                 "--out", str(out)]) == 0
    table = pd.read_csv(out / "harmonised.csv")
    assert table[["SNP", "A1", "A2", "BETA", "SWAPPED", "STRAND_FLIPPED"]].values.tolist() == [
        ["v1", "A", "G", -0.5, True, False],
        ["v2", "A", "G", 0.2, False, True],  # GWAS T (vs C) is A (vs G) on the panel's strand
    ]
    dropped = pd.read_csv(out / "dropped.csv")
    assert dict(zip(dropped["SNP"], dropped["reason"])) == {
        "rs4": "errcode", "rs3": "ambiguous_strand", "rs5": "not_in_panel"}
    report = json.loads((out / "report.json").read_text())
    assert report["n_input"] == 5 and report["n_harmonised"] == 2 and report["gwas_format"] == "plink2"
    assert (out / "run.json").is_file()
    assert "5 GWAS variants: 2 harmonised" in capsys.readouterr().out


def test_harmonise_command_errors_are_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "t.glm.linear").write_text(GLM.replace("\t0.2\t0.1\t", "\t0.2\tx\t"))
    (tmp_path / "ref.bim").write_text(BIM)
    out = tmp_path / "h"
    code = main(["harmonise", "--gwas", str(tmp_path / "t.glm.linear"), "--panel", str(tmp_path / "ref"),
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and not out.exists()
    assert err[0].startswith("bayesmages harmonise: error: ") and "column SE" in err[0] and "row 2" in err[0]
    (tmp_path / "t.glm.linear").write_text(GLM)
    assert main(["harmonise", "--gwas", str(tmp_path / "t.glm.linear"), "--panel", str(tmp_path / "nope.bim"),
                 "--out", str(out)]) == 2
    assert "no such .bim file" in capsys.readouterr().err


def test_harmonise_refuses_a_folder_it_did_not_write_and_keeps_foreign_files(tmp_path, capsys):
    (tmp_path / "t.glm.linear").write_text(GLM)
    (tmp_path / "ref.bim").write_text(BIM)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    args = ["harmonise", "--gwas", str(tmp_path / "t.glm.linear"), "--panel", str(tmp_path / "ref.bim"),
            "--out", str(out), "--quiet"]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["thesis.docx"]
    assert main([*args, "--overwrite"]) == 0
    assert (out / "thesis.docx").read_text() == "precious" and (out / "harmonised.csv").is_file()
