"""Image dtype helpers: the value range of a pixel type, and exact conversion to and from float.

Microscopy images come as uint8, uint16 (often 12 bits stored in 16) or float. Everything in
the library computes in float in ``[0, 1]`` and converts back to the input dtype, so these two
conversions must round-trip exactly.
"""

from __future__ import annotations

import torch

__all__ = ["dtype_range", "to_float", "from_float"]


def dtype_range(dtype: torch.dtype) -> tuple[float, float]:
    """Value range ``(lo, hi)`` of image pixels of ``dtype``: ``(0, 255)`` for uint8,
    ``(0, 65535)`` for uint16, ``(0, 1)`` for floating point."""
    if dtype == torch.uint8:
        return 0.0, 255.0
    if dtype == torch.uint16:
        return 0.0, 65535.0
    if dtype == torch.int16:
        return -32768.0, 32767.0
    if dtype == torch.int32:
        return float(-(2**31)), float(2**31 - 1)
    if dtype.is_floating_point:
        return 0.0, 1.0
    raise TypeError(f"unsupported image dtype {dtype}; use uint8, uint16 or a float dtype")


def to_float(image: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Scale an image to floating point in ``[0, 1]`` (float inputs are returned as ``dtype``).

    uint8 and uint16 round-trip exactly through :func:`from_float`."""
    if image.dtype.is_floating_point:
        return image.to(dtype)
    lo, hi = dtype_range(image.dtype)
    # float32 holds every uint16 value exactly and x / 65535 * 65535 rounds back to x.
    return (image.to(dtype) - lo) / (hi - lo)


def from_float(image: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`to_float`: clamp to ``[0, 1]``, scale to ``dtype``'s range and round."""
    if dtype.is_floating_point:
        return image.to(dtype)
    lo, hi = dtype_range(dtype)
    out = (image.clamp(0.0, 1.0) * (hi - lo) + lo).round_()
    if dtype == torch.uint16:
        # Not every torch op supports uint16; int32 holds the range exactly.
        return out.to(torch.int32).to(torch.uint16)
    return out.to(dtype)
