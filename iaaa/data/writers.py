"""Writers for label-map folders and COCO instance JSON with RLE masks.

Every file is written atomically (temporary file + rename). Images keep their dtype: 8-bit and
16-bit single-channel images go to PNG, anything PNG cannot hold exactly goes to TIFF.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable


from iaaa.data.coco import coco_masks
from iaaa.data.imageio import atomic_write_text, image_suffix_for, write_image, write_label_map
from iaaa.data.readers import CLASSES_FILE
from iaaa.errors import IaaaError
from iaaa.label_maps import instance_ids
from iaaa.structures import DEFAULT_CATEGORIES, AnnotatedImage, as_annotated

__all__ = ["write_label_folder", "write_coco", "coco_annotations"]


def _named(samples: Iterable[Any]) -> list[AnnotatedImage]:
    out = []
    seen: set[str] = set()
    for i, s in enumerate(samples):
        s = as_annotated(s, name=f"{i:06d}")
        name = s.name or f"{i:06d}"
        if name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise IaaaError(f"sample {i}: name {name!r} is not a plain file name; names become file stems inside the output folder")
        if name in seen:
            raise IaaaError(f"sample {i}: name {name!r} is used by an earlier sample; names become file stems and must be unique")
        seen.add(name)
        if name != s.name:
            s = AnnotatedImage(s.image, s.labels, s.class_ids, name, s.categories, s.meta)
        out.append(s)
    return out


def write_label_folder(samples: Iterable[Any], images_dir: str | os.PathLike, masks_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Write each sample's image to ``images_dir/<name>.png|.tif`` and its label map to
    ``masks_dir/<name>.png`` (16-bit; ``.tif`` past 65535 instances). When any instance has a
    class other than 1, or categories differ from ``{1: "cell"}``, a ``classes.json`` beside
    the masks keeps them, so :func:`~iaaa.data.read_label_folder` reads back the same classes.
    Returns the ``(image_path, mask_path)`` pairs written."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    items = _named(samples)
    written = []
    categories: dict[int, str] = {}
    instances: dict[str, dict[str, int]] = {}
    need_classes = False
    for s in items:
        img_path = write_image(images_dir / f"{s.name}{image_suffix_for(s.image)}", s.image)
        top = int(s.labels.max()) if s.labels.numel() else 0
        mask_path = write_label_map(masks_dir / f"{s.name}{'.png' if top <= 65535 else '.tif'}", s.labels)
        written.append((img_path, mask_path))
        categories.update(s.categories)
        ids = instance_ids(s.labels).tolist()
        instances[s.name] = {str(i): int(c) for i, c in zip(ids, s.class_ids.tolist())}
        need_classes = need_classes or bool((s.class_ids != 1).any()) or s.categories != DEFAULT_CATEGORIES
    if need_classes:
        doc = {"categories": {str(k): v for k, v in sorted(categories.items())}, "instances": instances}
        atomic_write_text(masks_dir / CLASSES_FILE, json.dumps(doc, indent=1))
    return written


def coco_annotations(sample: AnnotatedImage, image_id: int, first_annotation_id: int) -> list[dict[str, Any]]:
    """COCO annotation dicts (RLE segmentation, XYWH bbox, area) for one sample's instances,
    numbered from ``first_annotation_id``. O(image) memory for any number of instances
    (:func:`iaaa.data.coco.coco_masks`)."""
    rles, boxes, areas = coco_masks(sample.labels)
    anns = []
    # Float boxes, as the writer has always recorded them, so exports stay byte-identical.
    for k, (rle, box, area, cls) in enumerate(zip(rles, boxes.float().tolist(), areas.tolist(), sample.class_ids.tolist(), strict=True)):
        x0, y0, x1, y1 = box
        anns.append(
            {
                "id": first_annotation_id + k,
                "image_id": image_id,
                "category_id": int(cls),
                "segmentation": rle,
                "area": int(area),
                # COCO boxes are [x, y, width, height] over pixel extents, so an inclusive max adds one.
                "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1],
                "iscrowd": 0,
            }
        )
    return anns


def write_coco(samples: Iterable[Any], json_path: str | os.PathLike, images_dir: str | os.PathLike) -> Path:
    """Write images into ``images_dir`` and one COCO instance JSON with compressed-RLE masks to
    ``json_path``. ``pycocotools.coco.COCO`` loads it and ``annToMask`` gives back each label
    map's instances exactly. ``file_name`` entries are relative to ``images_dir``."""
    json_path, images_dir = Path(json_path), Path(images_dir)
    items = _named(samples)
    images, annotations = [], []
    categories: dict[int, str] = {}
    next_ann = 1
    for image_id, s in enumerate(items, start=1):
        img_path = write_image(images_dir / f"{s.name}{image_suffix_for(s.image)}", s.image)
        h, w = s.size
        images.append({"id": image_id, "file_name": img_path.name, "height": h, "width": w})
        anns = coco_annotations(s, image_id, next_ann)
        next_ann += len(anns)
        annotations.extend(anns)
        categories.update(s.categories)
    used = {a["category_id"] for a in annotations}
    for c in used - set(categories):
        categories[c] = f"class_{c}"
    doc = {
        "info": {"description": "written by iaaa"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": v, "supercategory": "cell"} for k, v in sorted(categories.items())],
    }
    atomic_write_text(json_path, json.dumps(doc))
    return json_path
