"""``iaaa evaluate``: input forms, the printed table, JSON output and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch



pytestmark = pytest.mark.usefixtures("one_thread")


def _main(argv: list[str]) -> int:
    from iaaa.cli import main

    return main(argv)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two simulated label-map folders (real and 'synthetic') in the images/ + masks/ layout."""
    from iaaa.data import write_label_folder
    from iaaa.datasets import simulate_cells

    root = tmp_path_factory.mktemp("eval")
    write_label_folder(simulate_cells(4, seed=1, size=(128, 160)), root / "real" / "images", root / "real" / "masks")
    write_label_folder(simulate_cells(4, seed=2, size=(128, 160)), root / "synth" / "images", root / "synth" / "masks")
    return root


def test_evaluate_prints_table_and_writes_json(folders, tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = ["evaluate", "--real", str(folders / "real"), "--synthetic", str(folders / "synth"), "--tile", "64", "--subsets", "20", "--json", str(out)]
    assert _main(argv) == 0
    text = capsys.readouterr().out
    assert "| level" in text and "KID (mean ± std)" in text and "SWD" in text and "FID" in text
    assert f"wrote {out}" in text
    doc = json.loads(out.read_text())
    levels = {row["level"]: row for row in doc["levels"]}
    assert set(levels) == {"sco", "mco", "image"}
    img = levels["image"]
    assert img["n_real"] == 4 * 2 * 2 and img["kid"]["num_subsets"] == 20 and img["swd"]["mean"] > 0
    assert doc["settings"]["tile"] == 64 and doc["settings"]["extractor"] == "PyramidStatsFeatures (offline)"
    assert doc["inputs"]["real"]["real"].endswith("real")
    # Same inputs, same seed: the same numbers.
    assert _main(argv) == 0
    assert json.loads(out.read_text())["levels"] == doc["levels"]


def test_evaluate_separate_folders_and_images_only(folders, capsys):
    argv = ["evaluate", "--real-images", str(folders / "real" / "images"), "--real-masks", str(folders / "real" / "masks"),
            "--synthetic-images", str(folders / "synth" / "images"), "--levels", "image", "--metrics", "swd", "--tile", "0", "--image-size", "64"]
    assert _main(argv) == 0
    out = capsys.readouterr().out
    assert "| image | 4" in out and "KID" not in out
    # Images without masks cannot give object crops: one clear line, exit 2.
    no_masks = ["evaluate", "--real", str(folders / "real"), "--synthetic-images", str(folders / "synth" / "images"), "--levels", "sco"]
    assert _main(no_masks) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "need instance masks" in err[0] and "--levels image" in err[0]


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--levels", "cells"], "--levels: unknown ['cells']"),
        (["--metrics", "kid,psnr"], "--metrics: unknown ['psnr']"),
        (["--features", "inception"], "needs --inception-weights"),
        (["--features", "inception", "--inception-weights", "/nonexistent/w.pth"], "nothing is downloaded"),
        (["--features", "wae"], "needs --wae FILE"),
        (["--value-range", "0"], "--value-range: expected LO HI"),
        (["--value-range", "5", "1"], "LO must be below HI"),
        (["--tile", "8"], "--tile"),
        (["--subset-size", "1"], "--subset-size: must be >= 2"),
        (["--device", "potato"], "--device"),
    ],
)
def test_evaluate_bad_options_are_one_line(folders, capsys, extra, needle):
    argv = ["evaluate", "--real", str(folders / "real"), "--synthetic", str(folders / "synth"), "--levels", "image"]
    if extra[0] == "--levels":
        argv = argv[:-2]
    assert _main(argv + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_evaluate_bad_inputs_are_one_line(folders, tmp_path, capsys):
    cases = [
        (["--real", str(tmp_path / "missing"), "--synthetic", str(folders / "synth")], "folder not found"),
        (["--real", str(tmp_path), "--synthetic", str(folders / "synth")], "no images/ and masks/ subfolders"),
        (["--synthetic", str(folders / "synth")], "no real data"),
        (["--real", str(folders / "real"), "--real-dsb", str(tmp_path), "--synthetic", str(folders / "synth")], "do not combine"),
        (["--real", str(folders / "real"), "--synthetic-images", str(tmp_path)], "no image files"),
    ]
    for argv, needle in cases:
        assert _main(["evaluate", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (argv, err)


def test_evaluate_gray_vs_rgb_follows_the_channel_rule(tmp_path, capsys):
    from iaaa.data import write_image

    for i in range(2):
        write_image(tmp_path / "gray" / f"g{i}.png", torch.full((1, 32, 32), 40 * i, dtype=torch.uint8))
        write_image(tmp_path / "rgb" / f"c{i}.png", torch.full((3, 40, 32), 60 * i, dtype=torch.uint8))
    # Gray vs RGB: the documented rule averages/replicates, so this works rather than failing.
    argv = ["evaluate", "--real-images", str(tmp_path / "gray"), "--synthetic-images", str(tmp_path / "rgb"), "--levels", "image", "--tile", "0", "--image-size", "32", "--metrics", "swd,kid"]
    assert _main(argv) == 0
    assert "| image | 2" in capsys.readouterr().out


def test_evaluate_with_a_saved_wae_encoder(folders, tmp_path, capsys):
    import iaaa.policy.wae as wae_mod
    model = wae_mod.WAE(wae_mod.WAEConfig(in_channels=1, size=(32, 32), latent_dim=4))
    model.save(tmp_path / "wae.pt")
    out = tmp_path / "r.json"
    argv = ["evaluate", "--real", str(folders / "real"), "--synthetic", str(folders / "synth"), "--levels", "image", "--tile", "64",
            "--metrics", "kid,fid", "--features", "wae", "--wae", str(tmp_path / "wae.pt"), "--subsets", "10", "--json", str(out)]
    assert _main(argv) == 0
    assert "features: WAE encoder (4-d latent, 32x32 input)" in capsys.readouterr().out
    assert json.loads(out.read_text())["levels"][0]["kid"]["num_subsets"] == 10
