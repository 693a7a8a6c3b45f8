"""The README's Python examples run as printed (on simulated data in a temporary folder): the
five-minute path of a new user must not drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from iaaa.data import write_label_folder
from iaaa.datasets import simulate_cells

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = _python_blocks()
    assert len(blocks) >= 2, "README lost its Python examples"
    sims = simulate_cells(4, seed=3, size=(272, 272), cells=(12, 20), radius=(6.0, 10.0))  # RandomCrop(256) in the README
    write_label_folder(sims, tmp_path / "data" / "images", tmp_path / "data" / "masks")
    monkeypatch.chdir(tmp_path)
    # The training script as printed; only the number of epochs and the workers are the test's.
    script = blocks[0].replace("num_workers=2", "num_workers=0")
    seen: list = []
    ns: dict = {"epochs": 1, "seen": seen}
    exec(compile(script.replace("        ...", "        seen.append((images, targets))"), "README.md[0]", "exec"), ns)
    assert seen, "the README's loader yielded no batch"
    images, targets = seen[0]
    assert len(images) == len(targets) and {"boxes", "labels", "masks"} <= set(targets[0])
    assert sum(len(t["boxes"]) for _, ts in seen for t in ts) > 0
    # The online pipeline, on one of the user's images.
    s = ns["samples"][0]
    ns.update(x=s.image, label_map=s.labels)
    exec(compile(blocks[1], "README.md[1]", "exec"), ns)
    image, mask = ns["image"], ns["mask"]
    assert tuple(image.shape) == (1, 256, 256) and tuple(mask.shape) == (256, 256) and mask.dtype == torch.int64
