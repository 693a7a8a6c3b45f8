"""Fixed-size batches of cell objects: what the search augments and what scorers see.

Cell objects come in every size, but scoring a policy on hundreds of objects must be one batched
pass. :func:`prepare_objects` therefore normalises every object once, before the search:

1. pixels outside the object's mask are set to the object's own background level (median of the
   crop's non-object pixels), because the compositor pastes only the masked object; whatever
   else happened to lie in the bounding box must not influence the score;
2. the crop is centred on a canvas ``margin`` times larger than its longer side (default
   ``sqrt(2)``, so a rotation about the centre never cuts the object) and the canvas is resized
   to ``size`` (bilinear with antialiasing for the image, nearest for the labels: :func:`iaaa.ops.functional.resize_labels`).

Augmented batches are finished the same way (:meth:`ObjectBatch.refill`), so an identity
augmentation reproduces its input exactly.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from iaaa.structures import AnnotatedImage, CellObject, to_float
from iaaa.errors import IaaaError
from iaaa.ops.functional import resize_labels

__all__ = ["ObjectBatch", "object_size", "prepare_objects"]


@dataclass
class ObjectBatch:
    """A batch of cell objects normalised to one size.

    Attributes:
        images: ``(N, C, H, W)`` float32, the source dtype's range mapped to ``[0, 1]``.
        labels: ``(N, H, W)`` int64 label crops, 0 outside the objects.
        background: ``(N, C, 1, 1)`` float32 per-object background level used outside the mask.
    """

    images: torch.Tensor
    labels: torch.Tensor
    background: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise IaaaError(f"ObjectBatch.images: expected (N, C, H, W), got shape {tuple(self.images.shape)}")
        n, c, h, w = self.images.shape
        if tuple(self.labels.shape) != (n, h, w):
            raise IaaaError(f"ObjectBatch.labels: expected shape {(n, h, w)} to match images {tuple(self.images.shape)}, got {tuple(self.labels.shape)}")
        if tuple(self.background.shape) != (n, c, 1, 1):
            raise IaaaError(f"ObjectBatch.background: expected shape {(n, c, 1, 1)}, got {tuple(self.background.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def refill(self, images: torch.Tensor, labels: torch.Tensor) -> "ObjectBatch":
        """A batch with these (augmented) images and labels, clamped to ``[0, 1]`` like any
        integer image would be, and with this batch's background level outside the new mask."""
        images = torch.where(labels.unsqueeze(1) > 0, images.to(torch.float32).clamp(0.0, 1.0), self.background)
        return ObjectBatch(images, labels.to(torch.int64), self.background)

    def select(self, mask: torch.Tensor, other: "ObjectBatch") -> "ObjectBatch":
        """Row-wise choice: row ``i`` from ``other`` where ``mask[i]``, else from ``self``."""
        m = mask.to(self.device)
        return ObjectBatch(
            torch.where(m.view(-1, 1, 1, 1), other.images, self.images),
            torch.where(m.view(-1, 1, 1), other.labels, self.labels),
            self.background,
        )

    def index(self, idx: torch.Tensor | slice) -> "ObjectBatch":
        """The rows ``idx`` as a new batch."""
        return ObjectBatch(self.images[idx], self.labels[idx], self.background[idx])

    def to(self, device: torch.device | str) -> "ObjectBatch":
        return ObjectBatch(self.images.to(device), self.labels.to(device), self.background.to(device))


def _unpack(obj: Any, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(obj, (CellObject, AnnotatedImage)):
        return obj.image, obj.labels
    if isinstance(obj, (tuple, list)) and len(obj) >= 2:
        return torch.as_tensor(obj[0]), torch.as_tensor(obj[1])
    raise TypeError(f"objects[{i}]: expected a CellObject or an (image, labels) pair, got {type(obj).__name__}")


def _background_level(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-channel median of the non-object pixels; the per-channel minimum when the object
    fills its whole box (a dark-ish guess beats inventing a value)."""
    outside = ~mask
    if bool(outside.any()):
        return image[:, outside].median(dim=1).values
    return image.flatten(1).amin(1)


def object_size(size: Any) -> tuple[int, int]:
    """``(H, W)`` of an object batch from an int (square) or a pair of integers (NumPy ones
    too), each >= 1; anything else (0, 2.5, a bool, one value in a tuple) is one clear line."""
    hw = (size, size) if not isinstance(size, (tuple, list)) else tuple(size)
    try:
        out = tuple(operator.index(v) for v in hw if not isinstance(v, bool))
    except TypeError:
        out = ()
    if len(hw) != 2 or len(out) != 2 or min(out) < 1:
        raise IaaaError(f"size must be a positive int or (H, W) of positive ints, got {size!r}")
    return out


def prepare_objects(
    objects: Sequence[Any] | ObjectBatch,
    size: int | tuple[int, int] = 32,
    margin: float = math.sqrt(2.0),
    device: torch.device | str | None = None,
) -> ObjectBatch:
    """Normalise cell objects (``CellObject`` or ``(image, labels)`` pairs, image ``(C, h, w)``
    of any dtype and channel count) into one :class:`ObjectBatch` of ``size``.

    Args:
        objects: the objects; an :class:`ObjectBatch` is resized if needed and returned.
        size: output ``(H, W)`` (an int means square).
        margin: canvas side over the object's longer side; ``>= 1``.
        device: where the batch lives (default: the first object's device).
    """
    out_h, out_w = object_size(size)
    if not margin >= 1.0:
        raise IaaaError(f"margin must be >= 1, got {margin}")
    if isinstance(objects, ObjectBatch):
        if objects.size == (out_h, out_w):
            return objects if device is None else objects.to(device)
        images = F.interpolate(objects.images, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)
        labels = resize_labels(objects.labels, (out_h, out_w))
        batch = objects.refill(images, labels)
        return batch if device is None else batch.to(device)
    if len(objects) == 0:
        raise IaaaError("objects: need at least one cell object, got none")

    images, labels, backgrounds = [], [], []
    channels = None
    for i, obj in enumerate(objects):
        image, lab = _unpack(obj, i)
        if image.ndim == 2:
            image = image.unsqueeze(0)
        if image.ndim != 3 or lab.ndim != 2 or tuple(image.shape[-2:]) != tuple(lab.shape):
            raise IaaaError(f"objects[{i}]: expected image (C, h, w) and labels (h, w) of the same size, got {tuple(image.shape)} and {tuple(lab.shape)}")
        if channels is None:
            channels = image.shape[0]
            device = image.device if device is None else torch.device(device)
        elif image.shape[0] != channels:
            raise IaaaError(f"objects[{i}]: {image.shape[0]} channels, but objects[0] has {channels}")
        img = to_float(image.to(device))
        lab = lab.to(device=device, dtype=torch.int64)
        mask = lab > 0
        bg = _background_level(img, mask)
        h, w = lab.shape
        # The canvas has the output's aspect ratio and fits the crop with `margin` to spare.
        scale = max(h / out_h, w / out_w) * margin
        ch, cw = max(h, math.ceil(out_h * scale)), max(w, math.ceil(out_w * scale))
        top, left = (ch - h) // 2, (cw - w) // 2
        canvas = bg.view(-1, 1, 1).expand(-1, ch, cw).clone()
        canvas[:, top : top + h, left : left + w] = torch.where(mask, img, bg.view(-1, 1, 1))
        lab_canvas = torch.zeros((ch, cw), dtype=torch.int64, device=device)
        lab_canvas[top : top + h, left : left + w] = lab
        images.append(F.interpolate(canvas[None], size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)[0])
        labels.append(resize_labels(lab_canvas, (out_h, out_w)))
        backgrounds.append(bg)
    bg_t = torch.stack(backgrounds).view(len(objects), -1, 1, 1)
    raw = ObjectBatch(torch.stack(images), torch.stack(labels), bg_t)
    return raw.refill(raw.images, raw.labels)
