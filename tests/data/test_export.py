"""Export: COCO round trip, self-evaluation AP = 1, 16-bit kept, interrupt + resume identical."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from iaaa.cli import main
from iaaa.data import read_label_folder, write_label_folder
from iaaa.datasets import simulate_cells
from iaaa.errors import IaaaError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real16(tmp_path_factory):
    d = tmp_path_factory.mktemp("real16")
    sims = simulate_cells(3, seed=5, size=(72, 80), dtype=torch.uint16, cells=(6, 10), radius=(5.0, 8.0))
    write_label_folder(sims, d / "images", d / "masks")
    return d


def _synth(real, out, n, *extra):
    return main(["synth", "--images", str(real / "images"), "--masks", str(real / "masks"), "--n", str(n), "--out", str(out), "--no-progress", *extra])


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_roundtrip_and_self_eval(real16, tmp_path, capsys):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = tmp_path / "syn"
    assert _synth(real16, out, 4, "--seed", "3") == 0
    samples = read_label_folder(out / "images", out / "masks")
    assert len(samples) == 4 and all(s.image.dtype == torch.uint16 for s in samples)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(out / "annotations.json"))
    by_name = {s.name: s for s in samples}
    n_ann = 0
    for img in gt.imgs.values():
        s = by_name[Path(img["file_name"]).stem]
        anns = sorted(gt.loadAnns(gt.getAnnIds(imgIds=[img["id"]])), key=lambda a: a["id"])
        back = np.zeros(s.size, np.int64)
        for k, a in enumerate(anns, start=1):
            back[gt.annToMask(a) > 0] = k
        assert np.array_equal(back, s.labels.numpy())
        n_ann += len(anns)
    assert n_ann > 0
    dets = [{**{k: a[k] for k in ("image_id", "category_id", "segmentation", "bbox")}, "score": 1.0} for a in gt.anns.values()]
    for iou in ("bbox", "segm"):
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, gt.loadRes(dets), iou)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["n"] == 4 and "iaaa_version" in manifest and manifest["source"]["images"].endswith("images")
    # a rerun with the same options does nothing and leaves identical files
    before = _tree(out)
    assert _synth(real16, out, 4, "--seed", "3") == 0
    assert _tree(out) == before
    assert "0 images (4 already done)" in capsys.readouterr().out
    # other options into the same folder are refused with one line
    assert _synth(real16, out, 4, "--seed", "4") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed" in err[0]


def test_interrupted_export_resumes_identically(real16, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _synth(real16, full, 10) == 0
    cmd = [sys.executable, "-m", "iaaa", "synth", "--images", str(real16 / "images"), "--masks", str(real16 / "masks"), "--n", "10", "--out", str(cut), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 240
    parts = cut / ".parts"
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("*.json"))) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("*.json"))) if parts.is_dir() else 0
    assert done < 10, "the export finished before it could be interrupted"
    assert not (cut / "annotations.json").exists()
    # A kill can land between writing a temporary file and renaming it; make sure one is there.
    (cut / "masks").mkdir(exist_ok=True)
    (cut / "masks" / ".synth_000009.png.x1y2z3ab.iaaa-tmp.png").write_bytes(b"half a png")
    assert _synth(real16, cut, 10) == 0
    cut_tree, full_tree = _tree(cut), _tree(full)
    assert cut_tree.keys() == full_tree.keys()
    assert cut_tree == full_tree
    assert not [k for k in cut_tree if ".iaaa-tmp" in k or k.endswith(".lock")]


def test_synth_bad_inputs(tmp_path, real16, capsys):
    assert main(["synth", "--images", str(tmp_path / "nope"), "--masks", str(real16 / "masks"), "--n", "2", "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    assert _synth(real16, tmp_path / "o", 0) == 2
    assert "--n" in capsys.readouterr().err
    assert _synth(real16, tmp_path / "o", 2, "--count", "many") == 2
    assert "--count" in capsys.readouterr().err
    assert _synth(real16, tmp_path / "o", 2, "--policies", str(tmp_path / "missing.json")) == 2
    assert "missing.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--n", "2"])  # --out is required: argparse usage error


def test_export_api_refuses_n0(tmp_path):
    from iaaa.export import export_synthetic

    with pytest.raises(IaaaError):
        export_synthetic(object(), 0, tmp_path)


def test_export_api_refuses_a_non_sampler_before_creating_anything(tmp_path):
    from iaaa.export import export_synthetic

    out = tmp_path / "new"
    with pytest.raises(IaaaError, match=r"^compositor: expected a sampler .* got str$"):
        export_synthetic("not a compositor", 2, out, progress=False)
    assert not out.exists()
