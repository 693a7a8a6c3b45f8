"""The iaaa command line: help, the demo, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from iaaa.cli import SUBCOMMANDS, main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name.replace("_", "-") in out


def test_version():
    out = subprocess.run([sys.executable, "-c", "import iaaa; print(iaaa.__version__)"], capture_output=True, text=True, check=True).stdout
    assert out.strip().count(".") == 2


def test_demo_writes_data_and_preview(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n", "2", "--size", "64", "64"]) == 0
    assert (tmp_path / "preview.png").is_file()
    assert (tmp_path / "real" / "annotations.json").is_file()
    assert len(list((tmp_path / "real" / "masks").glob("*.png"))) == 2
    assert "wrote" in capsys.readouterr().out


def test_demo_bad_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--images", str(tmp_path / "missing"), "--masks", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "Traceback" not in err[0]
