"""Input checking and dtype plumbing shared by the op kernels.

Every kernel works on a batch: images ``(B, C, H, W)``, label maps ``(B, H, W)`` and per-sample
parameters of shape ``(B,)`` (or ``(1,)``, broadcast to the batch). Integer images are processed
in float32 at their *raw* scale (0..255, 0..65535) so no precision is lost to a ``[0, 1]``
rescale and uint16 keeps its full 16-bit range; results are rounded and clamped back.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np
import torch

from iaaa import structures
from iaaa.dtypes import dtype_range, from_work, to_work
from iaaa.errors import IaaaError

Number = Union[int, float]
ParamLike = Union[Number, Sequence[Number], torch.Tensor, np.ndarray]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_image(image: torch.Tensor, what: str = "image") -> torch.Tensor:
    """Validate a batched image ``(B, C, H, W)`` of a supported dtype; return it unchanged."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 4:
        raise IaaaError(f"{what}: expected shape (B, C, H, W), got {tuple(image.shape)}")
    if image.dtype not in (torch.uint8, torch.uint16) and image.dtype not in _FLOATS:
        raise TypeError(f"{what}: unsupported dtype {image.dtype}; use uint8, uint16 or a float dtype")
    return image


def check_labels(labels: torch.Tensor | None, size: tuple[int, int] | None = None, batch: int | None = None, what: str = "labels") -> torch.Tensor | None:
    """Validate a batched label map ``(B, H, W)`` of an integer (or bool) dtype
    (:func:`iaaa.structures.check_labels` with ``strict=True``: the dtype is kept, because the
    geometric kernels only gather, so any integer dtype moves exactly)."""
    if labels is None:
        return None
    structures.check_labels(labels, what, strict=True)
    if labels.ndim != 3:
        raise IaaaError(f"{what}: expected shape (B, H, W), got {tuple(labels.shape)}")
    if size is not None and tuple(labels.shape[-2:]) != tuple(size):
        raise IaaaError(f"{what}: size {tuple(labels.shape[-2:])} does not match the image size {tuple(size)}")
    if batch is not None and labels.shape[0] not in (batch,):
        raise IaaaError(f"{what}: batch {labels.shape[0]} does not match the image batch {batch}")
    return labels


def as_param(value: ParamLike, batch: int | None, what: str) -> np.ndarray:
    """A per-sample parameter as a float64 numpy array of shape ``(batch,)`` or ``(1,)``
    (``batch=None``: any length >= 1).

    Parameters are tiny, so they live on the host as numpy: a dozen numpy operations cost what
    one torch operation does, which is what keeps single-object calls fast. Kernels move the
    few values they need to the image's device (or use a Python scalar when there is one)."""
    if isinstance(value, (int, float)):
        # The common single-value case checks a Python float: numpy's per-call cost would
        # dominate (this runs several times per single-object call).
        v = float(value)
        if not math.isfinite(v):
            raise IaaaError(f"{what}: values must be finite, got {[v]}")
        return np.array([v])
    if isinstance(value, torch.Tensor):
        if value.dtype.is_floating_point and value.numel() == 1:
            # item() is exact for every float dtype (as the float64 copy below is).
            a = np.array([value.item()])
        else:
            a = value.detach().to("cpu", torch.float64).numpy().reshape(-1)
    else:
        a = np.asarray(value, dtype=np.float64).reshape(-1)
    n = a.size
    if n == 1:
        if not math.isfinite(a[0]):
            raise IaaaError(f"{what}: values must be finite, got {a.tolist()}")
        return a
    if n == 0 or (batch is not None and n != batch):
        raise IaaaError(f"{what}: expected 1{'' if batch is None else f' or {batch}'} values (one per sample), got {n}")
    if not np.isfinite(a).all():
        raise IaaaError(f"{what}: values must be finite, got {a.tolist()}")
    return a


def device_param(a: np.ndarray, like: torch.Tensor) -> float | torch.Tensor:
    """A Python float when all samples share one value, else ``(B, 1, 1, 1)`` on ``like``'s
    device, in ``like``'s working float dtype."""
    if a.size == 1:
        return float(a[0])
    dt = torch.float64 if like.dtype == torch.float64 else torch.float32
    return torch.from_numpy(a).to(like.device, dt).view(-1, 1, 1, 1)


def bound(dtype: torch.dtype) -> float:
    """Largest pixel value of ``dtype``: 255, 65535, or 1.0 for floats."""
    return dtype_range(dtype)[1]


def bit_depth(dtype: torch.dtype) -> int:
    """Bits per pixel used by Posterize: 8, 16, and 8 for floats (as torchvision does)."""
    return 16 if dtype == torch.uint16 else 8


def unbatch_image(image: torch.Tensor, what: str = "image") -> tuple[torch.Tensor, bool]:
    """Accept ``(C, H, W)`` or ``(B, C, H, W)``; return the batched view and whether it was batched."""
    if isinstance(image, torch.Tensor) and image.ndim == 3:
        return image.unsqueeze(0), False
    return check_image(image, what), True
