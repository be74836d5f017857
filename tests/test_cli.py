import subprocess
import sys

import pytest

import bayesmages as bm
from bayesmages.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert bm.__version__ in capsys.readouterr().out


def test_models_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in bm.list_models():
        assert name in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_input_error_is_one_line_exit_2():
    """Through a real subprocess: one stderr line, exit 2, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "bayesmages", "demo", "--seed", "-3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayesmages demo: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--seed", "-1"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed must be a non-negative integer" in err[0]


def test_runtime_input_error_is_one_line(monkeypatch, capsys):
    import bayesmages.cli.demo as demo

    def boom(args):
        raise bm.errors.InputError("trait.csv: column BETA has a non-numeric value 'x' at row 3\nsecond line")

    monkeypatch.setattr(demo, "run", boom)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bayesmages demo: error: trait.csv: column BETA has a non-numeric value 'x' at row 3 second line"]
