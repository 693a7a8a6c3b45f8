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


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_help_renders(name, capsys):
    # argparse %-formats help strings but not descriptions: a '%%' meant for one shows up as is.
    with pytest.raises(SystemExit) as e:
        main([name.replace("_", "-"), "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "%%" not in out and "%(" not in out


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
    assert main(["demo", "--out", str(tmp_path / "out"), "--images", str(tmp_path / "missing"), "--masks", str(tmp_path / "masks")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "Traceback" not in err[0]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--n", "3", "--synthetic", "3", "--size", "72", "72"]) == 0
    return out


def test_demo_synthesises(demo_out):
    assert len(list((demo_out / "synthetic" / "images").glob("*.png"))) == 3
    assert (demo_out / "synthetic" / "annotations.json").is_file() and (demo_out / "synthetic" / "manifest.json").is_file()


def test_preview_real_and_synthetic(demo_out, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "sheet.png"
    real = ["--images", str(demo_out / "real" / "images"), "--masks", str(demo_out / "real" / "masks")]
    assert main(["preview", *real, "--synthetic", str(demo_out / "synthetic"), "--out", str(out), "--n", "2"]) == 0
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size[1] > 2 * 72
    assert main(["preview", "--out", str(out)]) == 2
    assert "nothing to draw" in capsys.readouterr().err
    assert main(["preview", "--synthetic", str(tmp_path), "--out", str(out)]) == 2
    assert "images/ and masks/" in capsys.readouterr().err


def test_stats_real_and_synthetic(demo_out, tmp_path, capsys):
    import json

    real = ["--images", str(demo_out / "real" / "images"), "--masks", str(demo_out / "real" / "masks")]
    assert main(["stats", *real, "--synthetic", str(demo_out / "synthetic"), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "SCO fraction" in out and "synthetic" in out
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["real"]["images"] == 3 and doc["real"]["cells"] > 0 and doc["synthetic"]["images"] == 3
    assert main(["stats", "--coco", str(tmp_path / "none.json")]) == 2
    assert "--coco needs --images" in capsys.readouterr().err


def test_train_maskrcnn_example_smoke(tmp_path):
    import json
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    res = subprocess.run([sys.executable, str(root / "examples" / "train_maskrcnn.py"), "--smoke", "--out", str(tmp_path / "r.json")], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["iterations"] == 2 and doc["train_synthetic"] > 0
    assert 0.0 <= doc["bbox_AP"] <= 1.0 and 0.0 <= doc["segm_AP"] <= 1.0


# ----------------------------------------------------------------------------- synth = the library


def _synth_args(*argv: str):
    import argparse

    from iaaa.commands import synth

    parser = argparse.ArgumentParser()
    synth.register(parser.add_subparsers())
    return parser.parse_args(["synth", "--out", "o", *argv])


def test_synth_without_options_resolves_to_the_library_default():
    from iaaa import CompositorConfig
    from iaaa.commands.synth import compositor_config

    assert compositor_config(_synth_args()) == CompositorConfig()
    assert compositor_config(_synth_args("--paper")) == CompositorConfig.paper()
    got = compositor_config(_synth_args("--background", "mask", "--sigma", "2", "--group-by", "none", "--count", "4-9", "--compositor", "grouping=box", "placement.rounds=2"))
    assert got == CompositorConfig().replace(background_method="mask", sigma=2.0, group_by=None, count=(4, 9), grouping="box", rounds=2)


def test_synth_compositor_option_end_to_end_records_config_and_sources(demo_out, tmp_path, capsys):
    import json

    from iaaa import CompositorConfig

    real = demo_out / "real"
    out = tmp_path / "boxed"
    argv = ["synth", "--images", str(real / "images"), "--masks", str(real / "masks"), "--n", "2", "--out", str(out), "--no-progress", "--compositor", "grouping=box"]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    config = CompositorConfig.from_dict(manifest["compositor"]["config"])
    assert config == CompositorConfig().replace(grouping="box")
    # onto="image": every output image names the real field it was built on, one of the inputs.
    inputs = {p.stem for p in (real / "images").iterdir()}
    sources = manifest["background_sources"]
    assert sorted(sources) == sorted(p.name for p in (out / "images").iterdir()) and set(sources.values()) <= inputs
    capsys.readouterr()
    assert main(argv) == 0  # the run resumes over its own finished manifest
    assert "wrote 0 images (2 already done)" in capsys.readouterr().out


def test_synth_bad_compositor_value_is_one_line(demo_out, tmp_path, capsys):
    real = demo_out / "real"
    argv = ["synth", "--images", str(real / "images"), "--masks", str(real / "masks"), "--n", "1", "--out", str(tmp_path / "o")]
    for bad, line in (("sigma=big", "--compositor sigma: expected a number, got 'big'"), ("colour=3", "--compositor colour: unknown compositor option")):
        assert main([*argv, "--compositor", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and line in err[0]
    assert not (tmp_path / "o").exists()
