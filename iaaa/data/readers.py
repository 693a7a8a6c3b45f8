"""Readers for annotated microscopy datasets: label-map folders, COCO instance JSON, and the
2018 Data Science Bowl layout. Each returns a list of :class:`~iaaa.structures.AnnotatedImage`.

Overlapping instance masks (possible in COCO and DSB, impossible in a label map) are resolved
the same way everywhere: larger instances are painted first, so where two overlap the smaller
one keeps the pixels (a small cell is never swallowed by a big neighbour); ties go to the
earlier annotation. Every resolution is reported with :mod:`warnings` and recorded in
``sample.meta["overlap"]``; nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Sequence

import numpy as np
import torch

from iaaa.data.imageio import IMAGE_SUFFIXES, read_image, read_label_map
from iaaa.data.coco import mask_runs, paint_runs, segmentation_runs
from iaaa.dtypes import check_unit_range
from iaaa.errors import DataError
from iaaa.label_maps import check_instance_maps, instance_ids
from iaaa.structures import DEFAULT_CATEGORIES, AnnotatedImage

__all__ = ["read_label_folder", "read_coco", "read_dsb", "load_samples", "list_image_files", "CLASSES_FILE", "MASK_SUFFIXES", "MIN_IMAGE_SIDE"]

CLASSES_FILE = "classes.json"
# Common naming schemes for mask files (cellpose writes <stem>_masks, many tools <stem>_mask / _label).
MASK_SUFFIXES = ("", "_masks", "_mask", "_labels", "_label", "_seg")
# cellpose writes <stem>_flows.tif beside images and masks: derived flow fields, not images.
_DERIVED_SUFFIXES = ("_flows",)
# Smaller images hold no cell object to cut out and no room to paste one; one of them among
# normal images would make every synthetic image drawn on it a few pixels wide.
MIN_IMAGE_SIDE = 8


def _read_checked_image(path: Path) -> torch.Tensor:
    """An image the synthesis can use: at least MIN_IMAGE_SIDE px a side, floats in [0, 1]."""
    image = read_image(path)
    h, w = image.shape[-2:]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise DataError(f"{path}: image is {h}x{w} px, below the {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} px minimum to cut cells from or paste onto; remove it from the data")
    check_unit_range(image, str(path), DataError)
    return image


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc.strerror})") from exc


def list_image_files(folder: str | os.PathLike, what: str, allow_empty: bool = False) -> list[Path]:
    """The image files in ``folder`` (sorted; hidden files skipped). ``what`` names the folder in
    errors; an empty folder is an error unless ``allow_empty``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder not found")
    files = [p for p in _entries(folder) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if not files and not allow_empty:
        raise DataError(f"{folder}: {what} folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _mask_key(stem: str) -> str:
    for suf in MASK_SUFFIXES[1:]:
        if stem.endswith(suf):
            return stem[: -len(suf)]
    return stem


def _split_shared_folder(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """cellpose's layout: ``x.png`` and ``x_masks.png`` in one folder. A file is a mask when its
    stem is another file's stem plus a mask suffix; ``x_flows.tif`` (cellpose's flow fields) is
    skipped with a warning; everything else is an image."""
    stems = {p.stem for p in files}
    images, masks, skipped = [], [], []
    for p in files:
        key = _mask_key(p.stem)
        if key != p.stem and key in stems:
            masks.append(p)
        elif any(p.stem.endswith(suf) and p.stem[: -len(suf)] in stems for suf in _DERIVED_SUFFIXES):
            skipped.append(p.name)
        else:
            images.append(p)
    if skipped:
        warnings.warn(f"{files[0].parent}: skipped {len(skipped)} derived files that are neither images nor masks: {skipped[:5]}", stacklevel=3)
    return images, masks


def _load_classes(masks_dir: Path) -> tuple[dict[int, str], dict[str, dict[str, int]]]:
    path = masks_dir / CLASSES_FILE
    if not path.is_file():
        return dict(DEFAULT_CATEGORIES), {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: malformed classes file ({exc})") from exc
    try:
        cats = {int(k): str(v) for k, v in doc.get("categories", DEFAULT_CATEGORIES).items()}
        inst = {str(k): {str(i): int(c) for i, c in v.items()} for k, v in doc.get("instances", {}).items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise DataError(f"{path}: malformed classes file ({exc}); expected {{'categories': {{id: name}}, 'instances': {{stem: {{label: class_id}}}}}}") from exc
    return cats, inst


def read_label_folder(images_dir: str | os.PathLike, masks_dir: str | os.PathLike) -> list[AnnotatedImage]:
    """Read a folder of images and a folder of instance label maps, matched by file stem.

    Mask files may carry one of the suffixes ``_masks``, ``_mask``, ``_labels``, ``_label``,
    ``_seg`` after the image stem. Images: PNG (8/16-bit), TIFF (incl. multi-channel stacks),
    JPEG, BMP. Label maps: 8/16-bit PNG or integer TIFF. An optional ``classes.json`` in
    ``masks_dir`` (written by :func:`~iaaa.data.write_label_folder`) gives per-instance classes.

    Raises:
        DataError: empty or missing folders, unmatched stems (all listed), shape mismatches,
            unreadable files, non-integer or negative labels, binary (semantic) masks in place
            of label maps (:func:`~iaaa.label_maps.check_instance_maps`).
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    images = list_image_files(images_dir, "images")
    if images_dir.resolve() == masks_dir.resolve():
        images, masks = _split_shared_folder(images)
        if not images:
            raise DataError(f"{images_dir}: every file looks like a mask (<stem>_masks etc.); no images left to annotate")
    else:
        masks = list_image_files(masks_dir, "masks")
    by_stem: dict[str, Path] = {}
    image_stems = {p.stem for p in images}
    for m in masks:
        key = m.stem if m.stem in image_stems else _mask_key(m.stem)
        if key in by_stem:
            raise DataError(f"{masks_dir}: two mask files for image stem {key!r}: {by_stem[key].name}, {m.name}")
        by_stem[key] = m
    img_stems = [p.stem for p in images]
    if len(set(img_stems)) != len(img_stems):
        dup = sorted({s for s in img_stems if img_stems.count(s) > 1})
        raise DataError(f"{images_dir}: several image files share the stems {dup}")
    missing = [s for s in img_stems if s not in by_stem]
    extra = sorted(set(by_stem) - set(img_stems))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"images without a mask: {missing}")
        if extra:
            parts.append(f"masks without an image: {[by_stem[s].name for s in extra]}")
        raise DataError(f"{images_dir} vs {masks_dir}: file stems do not match; " + "; ".join(parts))
    categories, instance_classes = _load_classes(masks_dir)
    out = []
    for img_path in images:
        mask_path = by_stem[img_path.stem]
        image = _read_checked_image(img_path)
        labels = read_label_map(mask_path)
        if tuple(image.shape[-2:]) != tuple(labels.shape):
            raise DataError(f"{img_path} / {mask_path}: image size {tuple(image.shape[-2:])} does not match mask size {tuple(labels.shape)}")
        class_ids = None
        if img_path.stem in instance_classes:
            ids = instance_ids(labels).tolist()
            table = instance_classes[img_path.stem]
            unknown = [i for i in ids if str(i) not in table]
            if unknown:
                raise DataError(f"{masks_dir / CLASSES_FILE}: no class for labels {unknown} of {mask_path.name}")
            class_ids = torch.tensor([table[str(i)] for i in ids], dtype=torch.int64)
        out.append(AnnotatedImage(image, labels, class_ids, name=img_path.stem, categories=dict(categories), meta={"image_path": str(img_path), "mask_path": str(mask_path)}))
    check_instance_maps([(s.meta["mask_path"], s.labels) for s in out])
    return out


def _paint(runs: Sequence[tuple[np.ndarray, np.ndarray]], order_ids: Sequence[Any], size: tuple[int, int], where: str) -> tuple[torch.Tensor, list[int], dict[str, Any]]:
    """Paint instances given as runs (:mod:`iaaa.data.coco`) into a label map, larger first;
    return (labels 1..N in input order of the surviving instances, indices of survivors,
    overlap report). O(image) memory however many instances there are."""
    n = len(runs)
    h, w = size
    if n == 0:
        return torch.zeros((h, w), dtype=torch.int64), [], {}
    area = [int((e - s).sum()) for s, e in runs]
    # Painted in this order, later over earlier: larger first, and of equal areas the earlier
    # annotation last, so it keeps the contested pixels.
    order = sorted(range(n), key=lambda i: (-area[i], -i))
    by_rank, overlap_px = paint_runs([runs[i] for i in order], (h, w), overlap="last")
    painted = torch.tensor([0] + [i + 1 for i in order], dtype=torch.int64)[by_rank]
    present = [int(v) - 1 for v in instance_ids(painted).tolist()]
    empty = [order_ids[i] for i in range(n) if area[i] == 0]
    present_set = set(present)
    hidden = [order_ids[i] for i in range(n) if area[i] > 0 and i not in present_set]
    # Renumber survivors 1..N in their input order.
    lut = torch.zeros(n + 1, dtype=torch.int64)
    lut[torch.tensor(present, dtype=torch.int64) + 1] = torch.arange(1, len(present) + 1)
    labels = lut[painted]
    report: dict[str, Any] = {}
    if overlap_px or hidden or empty:
        report = {"pixels": overlap_px, "hidden": hidden, "empty": empty}
        msg = f"{where}: {overlap_px} pixels covered by several instances were given to the smaller instance"
        if hidden:
            msg += f"; instances {hidden} were completely covered and are absent from the label map"
        if empty:
            msg += f"; instances {empty} have empty masks and are absent"
        warnings.warn(msg, stacklevel=3)
    return labels, present, report


def _coco_file_name(json_path: Path, entry: dict, images_dir: Path) -> str:
    name = entry["file_name"]
    if not isinstance(name, str) or not name:
        raise DataError(f"{json_path}: image {entry['id']}: file_name must be a non-empty string, got {name!r}")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts or ".." in windows.parts:
        raise DataError(f"{json_path}: image {entry['id']}: file_name {name!r} points outside {images_dir}; file names must be relative to the images folder, without '..'")
    return name


def _coco_index(json_path: Path, doc: dict, images_dir: Path) -> tuple[dict[int, dict], dict[int, list[dict]], dict[int, str]]:
    """Check the JSON's structure (ids, references, file names) before any image is decoded."""
    for key in ("images", "annotations"):
        if not isinstance(doc.get(key), list):
            raise DataError(f"{json_path}: field {key!r} missing or not a list")
    if not doc["images"]:
        raise DataError(f"{json_path}: 'images' is empty")
    try:
        categories = {int(c["id"]): str(c.get("name", c["id"])) for c in doc.get("categories") or []} or dict(DEFAULT_CATEGORIES)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{json_path}: malformed 'categories' entry ({type(exc).__name__}: {exc}); each needs an integer 'id'") from exc
    images: dict[int, dict] = {}
    names: dict[str, int] = {}
    for k, entry in enumerate(doc["images"]):
        try:
            image_id = int(entry["id"])
            for dim in ("height", "width"):
                if dim in entry:
                    int(entry[dim])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{json_path}: images[{k}] lacks a field or has a non-integer one ({type(exc).__name__}: {exc})") from exc
        if "file_name" not in entry:
            raise DataError(f"{json_path}: images[{k}] (id {image_id}) lacks field 'file_name'")
        if image_id in images:
            raise DataError(f"{json_path}: image id {image_id} is listed twice in 'images'")
        name = _coco_file_name(json_path, entry, images_dir)
        if name in names:
            raise DataError(f"{json_path}: file_name {name!r} is listed twice in 'images' (ids {names[name]} and {image_id})")
        names[name] = image_id
        images[image_id] = entry
    per_image: dict[int, list[dict]] = {i: [] for i in images}
    for k, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or "segmentation" not in ann:
            raise DataError(f"{json_path}: annotations[{k}] lacks 'image_id' or 'segmentation'")
        aid = ann.get("id")
        if aid is not None and (not isinstance(aid, int) or isinstance(aid, bool)):
            raise DataError(f"{json_path}: annotations[{k}] has a non-integer id {aid!r}")
        try:
            image_id = int(ann["image_id"])
            category = int(ann["category_id"]) if "category_id" in ann else None
        except (TypeError, ValueError) as exc:
            raise DataError(f"{json_path}: annotation {aid}: non-integer image_id or category_id ({exc})") from exc
        if image_id not in images:
            raise DataError(f"{json_path}: annotation {aid} points at image_id {ann['image_id']}, which is not in 'images'")
        if category is not None and doc.get("categories") and category not in categories:
            raise DataError(f"{json_path}: annotation {aid} has category_id {ann['category_id']}, not in 'categories'")
        per_image[image_id].append(ann)
    return images, per_image, categories


def read_coco(json_path: str | os.PathLike, images_dir: str | os.PathLike) -> list[AnnotatedImage]:
    """Read a COCO instance-segmentation JSON (polygon, uncompressed or compressed RLE
    segmentations) and its image folder. Instances are numbered ``1..N`` per image in
    annotation-id order; ``class_ids`` are the COCO ``category_id`` values and ``categories``
    the file's category names. Images without annotations are kept (empty label maps).

    Refused with a :class:`~iaaa.errors.DataError` before anything is decoded: an image listed
    twice (id or file name), a ``file_name`` that is absolute or climbs out of ``images_dir``
    with ``..``, polygon coordinates that are not finite or lie far outside the image, RLE whose
    size or counts do not match the image."""
    json_path, images_dir = Path(json_path), Path(images_dir)
    if not json_path.is_file():
        raise DataError(f"{json_path}: COCO file not found")
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: images folder not found")
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{json_path}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{json_path}: cannot read ({exc.strerror})") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{json_path}: expected a JSON object with 'images' and 'annotations', got {type(doc).__name__}")
    images, per_image, categories = _coco_index(json_path, doc, images_dir)
    out = []
    for image_id, entry in images.items():
        path = images_dir / entry["file_name"]
        image = _read_checked_image(path)
        h, w = image.shape[-2:]
        if ("height" in entry and int(entry["height"]) != h) or ("width" in entry and int(entry["width"]) != w):
            raise DataError(f"{json_path}: image {entry['file_name']} is {h}x{w} on disk but {entry.get('height')}x{entry.get('width')} in the JSON")
        anns = sorted(per_image[image_id], key=lambda a: a.get("id", 0))
        runs = []
        for ann in anns:
            try:
                runs.append(segmentation_runs(ann["segmentation"], h, w))
            except (ValueError, TypeError, KeyError, OverflowError) as exc:
                raise DataError(f"{json_path}: annotation {ann.get('id')} (image {entry['file_name']}): bad segmentation: {exc}") from exc
        ann_ids = [a.get("id") for a in anns]
        labels, kept, report = _paint(runs, ann_ids, (h, w), f"{json_path}: image {entry['file_name']}")
        class_ids = torch.tensor([int(anns[i].get("category_id", 1)) for i in kept], dtype=torch.int64)
        meta = {"image_path": str(path), "coco_image_id": image_id, "annotation_ids": [ann_ids[i] for i in kept]}
        if report:
            meta["overlap"] = report
        out.append(AnnotatedImage(image, labels, class_ids, name=Path(entry["file_name"]).stem, categories=dict(categories), meta=meta))
    return out


def read_dsb(root: str | os.PathLike) -> list[AnnotatedImage]:
    """Read the 2018 Data Science Bowl layout: ``root/<id>/images/<id>.png`` and
    ``root/<id>/masks/*.png`` (one binary mask per instance). Instances are numbered in sorted
    mask-file order.

    A case without ``masks/`` is refused (its cells would otherwise count as background), and so
    is a mask file with more than two values (a label map of several cells, which binarising
    would merge into one)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: DSB root folder not found")
    cases = [p for p in _entries(root) if p.is_dir() and not p.name.startswith(".")]
    if not cases:
        raise DataError(f"{root}: no <id>/images/ sub-folders found (expected the DSB 2018 layout)")
    out = []
    for case in cases:
        img_dir, mask_dir = case / "images", case / "masks"
        candidates = [img_dir / f"{case.name}.png"] if (img_dir / f"{case.name}.png").is_file() else list_image_files(img_dir, "images")
        if len(candidates) != 1:
            raise DataError(f"{img_dir}: expected one image, found {len(candidates)}")
        if not mask_dir.is_dir():
            raise DataError(f"{case}: DSB case has no masks/ folder (one binary mask file per cell; an empty masks/ folder for an image without cells)")
        image = _read_checked_image(candidates[0])
        h, w = image.shape[-2:]
        # An empty masks/ folder is an explicit "no cells here"; a missing one is not.
        mask_files = list_image_files(mask_dir, "masks", allow_empty=True)
        runs = []
        for mf in mask_files:
            m = read_label_map(mf)
            if tuple(m.shape) != (h, w):
                raise DataError(f"{mf}: mask size {tuple(m.shape)} does not match image size {(h, w)}")
            if bool(((m != 0) & (m != m.max())).any()):
                n = int(torch.unique(m).numel())
                raise DataError(f"{mf}: holds {n} distinct values, but a DSB masks/ file is one binary cell mask; read a label map of all cells with --images/--masks instead")
            runs.append(mask_runs(m > 0))
        labels, kept, report = _paint(runs, [f.name for f in mask_files], (h, w), f"{case}")
        meta = {"image_path": str(candidates[0]), "mask_files": [mask_files[i].name for i in kept]}
        if report:
            meta["overlap"] = report
        out.append(AnnotatedImage(image, labels, None, name=case.name, meta=meta))
    return out


def load_samples(images: str | None = None, masks: str | None = None, coco: str | None = None, dsb: str | None = None) -> list[AnnotatedImage]:
    """Read one dataset from whichever source is given: ``images`` + ``masks`` folders,
    ``coco`` JSON + ``images`` folder, or a ``dsb`` root. Used by the command line."""
    if dsb:
        if coco or masks:
            raise DataError("give either --dsb, or --coco with --images, or --images with --masks")
        return read_dsb(dsb)
    if coco:
        if not images:
            raise DataError("--coco needs --images (the folder its file_name entries are relative to)")
        return read_coco(coco, images)
    if images and masks:
        return read_label_folder(images, masks)
    raise DataError("no input data: give --images DIR --masks DIR, or --coco JSON --images DIR, or --dsb DIR")
