"""Writing a synthetic dataset to disk: images (dtype kept), label maps, one COCO JSON with RLE
masks, and a manifest that lets the same dataset be regenerated exactly.

Exports are resumable: every file is written atomically, and each sample's annotations go to
a small part file written *last*, so a sample counts as done only when all its files are
complete. A rerun with the same options skips finished samples; the final COCO JSON is
assembled from the parts in index order, so an interrupted-and-resumed export is byte-identical
to an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import DataLoader, Dataset

from iaaa import __version__
from iaaa.data.dataset import SynthesisDataset
from iaaa.data.imageio import atomic_write_text, image_suffix_for, write_image, write_label_map
from iaaa.data.writers import coco_annotations
from iaaa.errors import IaaaError

__all__ = ["export_synthetic", "MANIFEST", "ANNOTATIONS"]

MANIFEST = "manifest.json"
ANNOTATIONS = "annotations.json"
_PARTS = ".parts"


def _identity(x: Any) -> Any:
    return x


class _WriteSamples(Dataset):
    """Synthesises *and writes* sample ``todo[k]`` inside the loader's worker, so PNG and RLE
    encoding run in parallel too instead of queueing in the main process."""

    def __init__(self, dataset: SynthesisDataset, out: Path, todo: list[int]) -> None:
        self.dataset, self.out, self.todo = dataset, out, todo

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, k: int) -> int:
        index = self.todo[k]
        _write_sample(self.out, index, self.dataset[index])
        return index


def _write_sample(out: Path, index: int, sample: Any) -> None:
    name = sample.name
    img_path = write_image(out / "images" / f"{name}{image_suffix_for(sample.image)}", sample.image)
    top = int(sample.labels.max()) if sample.labels.numel() else 0
    write_label_map(out / "masks" / f"{name}{'.png' if top <= 65535 else '.tif'}", sample.labels)
    h, w = sample.size
    part = {
        "image": {"id": index + 1, "file_name": img_path.name, "height": h, "width": w},
        "annotations": coco_annotations(sample, index + 1, 1),
        "categories": {str(k): v for k, v in sample.categories.items()},
        "meta": {k: v for k, v in sample.meta.items() if _jsonable(v)},
    }
    atomic_write_text(out / _PARTS / f"{index:08d}.json", json.dumps(part))


def _remove_stale_temporaries(out: Path) -> None:
    """Delete temporary files a killed run left (a rename never happened, so they are partial)."""
    for folder in (out, out / "images", out / "masks", out / _PARTS):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp*"):
                tmp.unlink(missing_ok=True)


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _assemble(out: Path, n: int) -> Path:
    images, annotations, categories = [], [], {}
    next_id = 1
    for i in range(n):
        part = json.loads((out / _PARTS / f"{i:08d}.json").read_text(encoding="utf-8"))
        images.append(part["image"])
        for ann in part["annotations"]:
            ann["id"] = next_id
            next_id += 1
            annotations.append(ann)
        categories.update({int(k): v for k, v in part["categories"].items()})
    doc = {
        "info": {"description": "synthetic images written by iaaa", "version": __version__},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": v, "supercategory": "cell"} for k, v in sorted(categories.items())],
    }
    path = out / ANNOTATIONS
    atomic_write_text(path, json.dumps(doc))
    return path


def export_synthetic(
    compositor: Any,
    n: int,
    out: str | os.PathLike,
    seed: int = 0,
    workers: int = 0,
    manifest: dict[str, Any] | None = None,
    progress: bool | Callable[[int, int], None] = True,
) -> dict[str, Any]:
    """Generate ``n`` synthetic samples with ``compositor`` and write them under ``out``:
    ``images/``, ``masks/``, ``annotations.json`` (COCO, RLE) and ``manifest.json``.

    Sample ``i`` is ``SynthesisDataset(compositor, n, seed)[i]``, so the export equals what a
    training loader would see. ``manifest`` (source data, compositor options, policies) is
    recorded with the seed, count and library version; rerunning into the same ``out`` with the
    same manifest resumes, with a different one it refuses.

    Returns a summary dict (``written``, ``skipped``, paths).
    """
    if n < 1:
        raise IaaaError(f"n must be >= 1, got {n}")
    out = Path(out)
    record = {"iaaa_version": __version__, "seed": int(seed), "n": int(n), **(manifest or {})}
    man_path = out / MANIFEST
    if man_path.is_file():
        try:
            old = json.loads(man_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise IaaaError(f"{man_path}: unreadable manifest ({exc}); remove it or choose another --out") from exc
        if old != record:
            diff = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
            raise IaaaError(f"{out} holds an export made with other settings (differs in {diff}); choose another --out to start a new one")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(man_path, json.dumps(record, indent=1, sort_keys=True))

    _remove_stale_temporaries(out)
    done = {int(p.stem) for p in (out / _PARTS).glob("*.json")} if (out / _PARTS).is_dir() else set()
    todo = [i for i in range(n) if i not in done]
    ds = SynthesisDataset(compositor, n, seed=seed, target_format="sample")
    loader = DataLoader(_WriteSamples(ds, out, todo), batch_size=None, num_workers=workers, collate_fn=_identity)
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=n, initial=n - len(todo), desc="synthesising", unit="img")
    for k, _ in enumerate(loader):
        if bar is not None:
            bar.update(1)
        elif callable(progress):
            progress(n - len(todo) + k + 1, n)
    if bar is not None:
        bar.close()
    ann = _assemble(out, n)
    return {"written": len(todo), "skipped": n - len(todo), "annotations": str(ann), "manifest": str(man_path), "out": str(out)}
