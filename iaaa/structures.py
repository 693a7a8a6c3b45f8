"""The data model: annotated images, cell objects and where a compositor pasted them.

An annotated image is an image tensor ``(C, H, W)`` (uint8, uint16 or float32, any C) plus an
integer label map ``(H, W)`` where 0 is background and ``k > 0`` is instance ``k``, plus one class
id per instance. The label-map conversions they rest on (masks, boxes, relabelling, validation)
live in :mod:`iaaa.label_maps` and are importable from here too, so the data model and its
conversions come from one place; COCO RLE lives in :mod:`iaaa.data.coco`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from iaaa.dtypes import dtype_range, from_float, to_float
from iaaa.errors import IaaaError
from iaaa.label_maps import (
    check_labels,
    instance_areas,
    instance_boxes,
    instance_ids,
    labels_to_boxes,
    labels_to_masks,
    labels_to_masks_and_boxes,
    masks_to_boxes,
    masks_to_labels,
    relabel_sequential,
)

__all__ = [
    "AnnotatedImage",
    "CellObject",
    "PastedWindows",
    "as_annotated",
    "check_labels",
    "instance_ids",
    "instance_areas",
    "labels_to_masks",
    "labels_to_masks_and_boxes",
    "masks_to_labels",
    "labels_to_boxes",
    "masks_to_boxes",
    "instance_boxes",
    "relabel_sequential",
    "to_tv_tensors",
    "from_tv_tensors",
    "dtype_range",
    "to_float",
    "from_float",
    "DEFAULT_CATEGORIES",
]

DEFAULT_CATEGORIES: dict[int, str] = {1: "cell"}


# ----------------------------------------------------------------------------- annotated image


@dataclass
class AnnotatedImage:
    """An image with instance annotations.

    Attributes:
        image: ``(C, H, W)`` tensor, uint8, uint16 or float.
        labels: ``(H, W)`` int64 label map, 0 = background.
        class_ids: ``(N,)`` int64, one class id per instance in sorted label order (default all 1).
        name: an identifier (file stem for data read from disk).
        categories: class id -> class name (default ``{1: "cell"}``).
        meta: free-form per-instance or per-image metadata (synthesis records object kind and source).

    Unpacks as ``image, labels = sample`` so code written for plain tuples keeps working.
    """

    image: torch.Tensor
    labels: torch.Tensor
    class_ids: torch.Tensor | None = None
    name: str = ""
    categories: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_CATEGORIES))
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        what = self.name or "sample"
        if not isinstance(self.image, torch.Tensor):
            self.image = torch.as_tensor(np.asarray(self.image))
        if self.image.ndim == 2:
            self.image = self.image.unsqueeze(0)
        if self.image.ndim != 3:
            raise IaaaError(f"{what}: image must be (C, H, W), got shape {tuple(self.image.shape)}")
        self.labels = check_labels(self.labels, f"{what}: labels")
        if self.labels.ndim != 2:
            raise IaaaError(f"{what}: labels must be (H, W), got shape {tuple(self.labels.shape)}")
        if tuple(self.image.shape[-2:]) != tuple(self.labels.shape):
            raise IaaaError(f"{what}: image size {tuple(self.image.shape[-2:])} does not match label map size {tuple(self.labels.shape)}")
        n = self.num_instances
        if self.class_ids is None:
            self.class_ids = torch.ones(n, dtype=torch.int64, device=self.labels.device)
        else:
            self.class_ids = torch.as_tensor(self.class_ids, dtype=torch.int64).reshape(-1)
            if self.class_ids.numel() != n:
                raise IaaaError(f"{what}: {self.class_ids.numel()} class ids for {n} instances")

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield self.image
        yield self.labels

    @property
    def ids(self) -> torch.Tensor:
        """Sorted instance ids present in the label map."""
        return instance_ids(self.labels)

    @property
    def num_instances(self) -> int:
        return int(self.ids.numel())

    @property
    def masks(self) -> torch.Tensor:
        """Boolean masks ``(N, H, W)`` in instance order."""
        return labels_to_masks(self.labels)[0]

    @property
    def boxes(self) -> torch.Tensor:
        """XYXY float boxes ``(N, 4)`` in instance order."""
        return labels_to_boxes(self.labels)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def relabeled(self) -> "AnnotatedImage":
        """A copy with instances renumbered ``1..N`` (class ids keep their instances)."""
        new, _ = relabel_sequential(self.labels)
        return AnnotatedImage(self.image, new, self.class_ids, self.name, dict(self.categories), dict(self.meta))

    def to(self, device: torch.device | str) -> "AnnotatedImage":
        return AnnotatedImage(self.image.to(device), self.labels.to(device), self.class_ids.to(device), self.name, dict(self.categories), dict(self.meta))

    @classmethod
    def trusted(cls, **values: Any) -> "AnnotatedImage":
        """An AnnotatedImage built without re-validating the label map.

        For producers whose output is valid by construction (the compositor: ids ``1..N`` in
        placement order, one class id per id): the constructor's check counts every pixel, which
        costs more than synthesising a 512x512 image. Fields not given take their defaults."""
        obj = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            if f.name in values:
                v = values[f.name]
            elif f.default is not dataclasses.MISSING:
                v = f.default
            elif f.default_factory is not dataclasses.MISSING:
                v = f.default_factory()
            else:
                raise TypeError(f"AnnotatedImage.{f.name} has no default")
            object.__setattr__(obj, f.name, v)
        return obj


def as_annotated(sample: Any, name: str = "") -> AnnotatedImage:
    """Accept an :class:`AnnotatedImage`, an ``(image, labels)`` or ``(image, labels, class_ids)``
    tuple, torchvision's detection pair ``(image, target dict)`` (what a Mask R-CNN dataset and
    :class:`~iaaa.data.dataset.RealDataset` return: see :func:`from_tv_tensors`), or a
    ``{"image", "labels"}`` dict, and return an :class:`AnnotatedImage`."""
    if isinstance(sample, AnnotatedImage):
        return sample
    if isinstance(sample, dict):
        missing = [k for k in ("image", "labels") if k not in sample]
        if missing:
            raise IaaaError(f"{name or 'sample'}: a sample dict needs 'image' and 'labels' keys; it lacks {missing} (has {sorted(map(str, sample))})")
        return AnnotatedImage(sample["image"], sample["labels"], sample.get("class_ids"), sample.get("name", name))
    if isinstance(sample, (tuple, list)) and len(sample) == 2 and isinstance(sample[1], dict):
        return from_tv_tensors(sample[0], sample[1], name)
    if isinstance(sample, (tuple, list)) and len(sample) in (2, 3):
        return AnnotatedImage(sample[0], sample[1], sample[2] if len(sample) == 3 else None, name)
    raise TypeError(f"{name or 'sample'}: expected an AnnotatedImage or an (image, labels) pair, got {type(sample).__name__}")


# ----------------------------------------------------------------------------- tv_tensors


def to_tv_tensors(sample: Any) -> tuple[Any, dict[str, Any]]:
    """Convert to torchvision's detection format: ``(tv_tensors.Image, target)`` with
    ``target = {"boxes": BoundingBoxes XYXY, "masks": Mask (N, H, W) uint8, "labels": int64 class
    ids, "label_map": (H, W) int64}``. The image keeps its dtype."""
    from torchvision import tv_tensors

    s = as_annotated(sample)
    masks, _, boxes = labels_to_masks_and_boxes(s.labels, dtype=torch.uint8)
    h, w = s.size
    target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
        "masks": tv_tensors.Mask(masks),
        "labels": s.class_ids.clone(),
        "label_map": s.labels,
    }
    return tv_tensors.Image(s.image), target


def from_tv_tensors(image: torch.Tensor, target: dict[str, Any] | torch.Tensor, name: str = "") -> AnnotatedImage:
    """Inverse of :func:`to_tv_tensors`. ``target`` may be the target dict (uses ``label_map``
    if present, else ``masks`` + ``labels``), a ``Mask`` of shape ``(H, W)`` (a label map) or
    ``(N, H, W)`` (stacked masks)."""
    img = image.as_subclass(torch.Tensor) if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))
    if isinstance(target, dict) and "label_map" not in target and "masks" not in target:
        raise IaaaError(f"{name or 'target'}: a detection target needs 'masks' or 'label_map' (stacked (N, H, W) masks or an (H, W) label map); it has {sorted(map(str, target))}")
    if isinstance(target, dict):
        if "label_map" in target:
            labels = torch.as_tensor(target["label_map"]).as_subclass(torch.Tensor)
            return AnnotatedImage(img, labels, target.get("labels"), name)
        masks = torch.as_tensor(target["masks"]).as_subclass(torch.Tensor)
        labels = masks_to_labels(masks)
        keep = masks.flatten(1).bool().any(1)
        cls = target.get("labels")
        cls = None if cls is None else torch.as_tensor(cls)[keep.cpu()]
        return AnnotatedImage(img, labels, cls, name)
    t = torch.as_tensor(target).as_subclass(torch.Tensor)
    if t.ndim == 3:
        t = masks_to_labels(t)
    return AnnotatedImage(img, t, None, name)


# ----------------------------------------------------------------------------- cell objects


@dataclass
class CellObject:
    """A cell object cut from an annotated image: one cell (``kind == "sco"``) or a cluster of
    touching cells (``kind == "mco"``).

    Attributes:
        image: ``(C, h, w)`` crop of the source image (source dtype).
        labels: ``(h, w)`` int64 label crop, the object's instances renumbered ``1..k``; pixels
            of other instances inside the box are 0.
        class_ids: ``(k,)`` class id of each instance.
        kind: ``"sco"`` or ``"mco"``.
        source: name of the source image.
        box: ``(x0, y0, x1, y1)`` of the crop in the source image, inclusive maxima.
        source_ids: the instances' original label values in the source image.
    """

    image: torch.Tensor
    labels: torch.Tensor
    class_ids: torch.Tensor
    kind: str
    source: str = ""
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    source_ids: tuple[int, ...] = ()

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield self.image
        yield self.labels

    @property
    def num_cells(self) -> int:
        return int(self.class_ids.numel())

    @property
    def mask(self) -> torch.Tensor:
        """Boolean union mask ``(h, w)`` of the object's cells."""
        return self.labels > 0

    @property
    def size(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])


# ----------------------------------------------------------------------------- pasted windows


@dataclass(frozen=True)
class PastedWindows:
    """Where each pasted instance lies, so its mask can be cut from that window alone.

    A compositor records one in ``AnnotatedImage.meta["windows"]``; the datasets read it to build
    detection targets without scanning the whole label map per instance.

    Attributes:
        ids: ``(N,)`` int64 label values of the pasted instances.
        boxes: ``(N, 4)`` int64 XYXY (inclusive) box of the object holding each instance.
    """

    ids: torch.Tensor
    boxes: torch.Tensor
