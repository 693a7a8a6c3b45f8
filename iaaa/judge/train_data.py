"""Images ready for the judge's U-Net: normalised, at the working scale, padded to the crop.

Determinism: every random stream of a run is ``derived_generator(seed, stream)`` (0: weights,
1: real crops, 2: synthetic crops and pastes, 3 and 4: augmentation of the real and the synthetic
crops), so streams never share draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from iaaa.dtypes import to_float
from iaaa.judge.targets import class_targets
from iaaa.ops.functional import resize_labels
from iaaa.structures import as_annotated

__all__ = ["Prepared", "normalize_image", "to_working", "prepare", "dihedral", "derived_generator"]


@dataclass
class Prepared:
    """One image at the working scale: ``image`` float32 ``(C, h, w)`` normalised to ``[0, 1]``,
    ``labels`` int64 ``(h, w)`` its instance map and ``classes`` its 3-class targets, all centred
    in a reflect padding up to at least the crop size; ``size`` is the working size before
    padding; ``native`` the label map at its own resolution (for scoring; ``None`` for images
    that are only trained on, such as a synthetic pool)."""

    image: torch.Tensor
    labels: torch.Tensor
    classes: torch.Tensor
    native: torch.Tensor | None
    size: tuple[int, int]
    name: str = ""

    def unpadded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image, labels)`` without the reflect padding (views): the image's own pixels. A
        padded label map repeats its border cells mirrored under the same ids, so whatever
        learns cells from it (an online arm's compositor fit) must read this instead."""
        (h, w), (ph, pw) = self.size, self.labels.shape[-2:]
        top, left = (ph - h) // 2, (pw - w) // 2
        return self.image[:, top : top + h, left : left + w], self.labels[top : top + h, left : left + w]


def derived_generator(seed: int, stream: int) -> torch.Generator:
    """Generator of stream ``stream`` of seed ``seed`` (see module docs)."""
    from iaaa.data.dataset import sample_generator

    return sample_generator(seed, stream, epoch=7919)


def normalize_image(image: torch.Tensor, low: float = 1.0, high: float = 99.5) -> torch.Tensor:
    """Float32 ``(C, H, W)`` in ``[0, 1]``: each channel mapped so its ``low`` / ``high``
    percentiles go to 0 / 1 and clipped there (uint8 and uint16 through
    :func:`iaaa.dtypes.to_float` first), so 8-bit fluorescence and 16-bit phase contrast reach the
    network on the same footing and the intensity augmentation works on the range it expects."""
    x = to_float(image).float()
    flat = x.flatten(1)
    sub = flat[:, :: max(1, flat.shape[1] // 1_000_000)]  # quantiles of a subsample suffice
    q = torch.quantile(sub, torch.tensor([low / 100, high / 100], device=x.device), dim=1)
    lo, hi = q[0].view(-1, 1, 1), q[1].view(-1, 1, 1)
    return ((x - lo) / (hi - lo).clamp_min(1e-6)).clamp_(0.0, 1.0)


def _pad_to(x: np.ndarray, size: int) -> np.ndarray:
    ph, pw = max(0, size - x.shape[-2]), max(0, size - x.shape[-1])
    if not (ph or pw):
        return x
    pad = [(0, 0)] * (x.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
    # numpy reflects repeatedly, so images far smaller than the crop still fill it.
    return np.pad(x, pad, mode="reflect" if min(x.shape[-2:]) > 1 else "edge")


def to_working(image: torch.Tensor, labels: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised float ``(C, H, W)`` image and its ``(H, W)`` label map resized to ``size``
    (area-averaged bilinear image clamped to ``[0, 1]``, nearest labels): the one way the judge
    brings native pixels to its working scale."""
    img = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp_(0.0, 1.0)
    return img, resize_labels(labels, size)


def prepare(sample: Any, scale: float = 1.0, crop: int = 0, boundary: int = 1, native: bool = True) -> Prepared:
    """Normalise an annotated image, resize it by ``scale`` (area-averaged image, labels by
    :func:`iaaa.ops.functional.resize_labels`), build its 3-class targets (boundary ``boundary``
    px at the working scale) and reflect-pad all of it to at least ``crop`` pixels per side.
    ``native=False`` keeps no reference to the sample's own label map (an image that is only
    trained on: a 1024 px synthetic field's int64 labels are 8 MB)."""
    s = as_annotated(sample)
    img = normalize_image(s.image)
    lab = s.labels.to(torch.int64)
    if scale != 1.0:
        h, w = s.size
        img, lab = to_working(img, lab, (max(1, round(h * scale)), max(1, round(w * scale))))
    cls = class_targets(lab, boundary)
    size = (int(cls.shape[0]), int(cls.shape[1]))
    if crop:
        img, lab, cls = (torch.from_numpy(_pad_to(t.cpu().numpy(), crop)) for t in (img, lab, cls))
    return Prepared(img.contiguous(), lab.contiguous(), cls.contiguous(), s.labels if native else None, size, s.name)


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips/right-angle rotations of the last two dims (``k`` in 0..7)."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x
