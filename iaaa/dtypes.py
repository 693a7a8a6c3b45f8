"""Image dtype helpers: the value range of a pixel type, and exact conversion to and from float.

Microscopy images come as uint8, uint16 (often 12 bits stored in 16) or float. Two working
scales, one convention (output dtype = input dtype, integers rounded half to even):

* :func:`to_float` / :func:`from_float`: float in ``[0, 1]`` (synthesis, metrics, datasets);
* :func:`to_work` / :func:`from_work`: float at the dtype's *raw* scale (0..255, 0..65535), what
  the op kernels use so no precision is lost to a rescale.

Both round-trip uint8 and uint16 exactly.
"""

from __future__ import annotations

import math

import torch

from iaaa.errors import IaaaError

__all__ = ["dtype_range", "to_float", "from_float", "to_work", "from_work", "check_unit_range"]


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


# 2**23: float32 numbers in [2**23, 2**24) are the integers, so adding it to a float32 value in
# [0, 255] rounds that value half to even in the addition itself, and the sum's bits are
# _ROUND_BIAS plus the rounded value. torch's float -> uint8 cast measured 2x slower than this
# add, a subtraction and an int32 -> uint8 narrowing together (AVX2 and plain-C kernels alike);
# float -> uint16 casts are fast and keep the plain route.
_ROUND_MAGIC = 8388608.0
_ROUND_BIAS = 0x4B000000


def _round_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float32 ``x`` already clamped to ``[0, 255]``, in place: rounded half to even, as uint8
    (the same values as ``x.round_().to(torch.uint8)``)."""
    return x.add_(_ROUND_MAGIC).view(torch.int32).sub_(_ROUND_BIAS).to(torch.uint8)


def _cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # Not every torch op supports uint16; int32 holds its range exactly. Floats (rounded, in
    # range) convert directly (torch >= 2.3), one pass instead of two.
    return x.to(torch.int32).to(torch.uint16) if dtype == torch.uint16 and not x.is_floating_point() else x.to(dtype)


def check_unit_range(image: torch.Tensor, where: str, error: type[IaaaError] = IaaaError) -> None:
    """Refuse a float image whose values leave [0, 1] (or are NaN / infinite): iaaa reads float
    pixels as intensities in [0, 1] (0 = black, 1 = white), so raw units (e.g. 0..4095 stored as
    float) would be clipped to white wherever a pixel is written. ``where`` names the file or
    sample in the message, which says how to convert; ``error``: the class raised."""
    if not image.is_floating_point() or image.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(image.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(image)).sum())
        raise error(f"{where}: {bad} pixels are NaN or infinite; fix or mask them before use")
    if lo < 0.0 or hi > 1.0:
        raise error(
            f"{where}: float image values span {lo:.6g}..{hi:.6g}, but iaaa reads float images as intensities in [0, 1]; "
            f"divide by the sensor maximum (e.g. 4095 for 12-bit) or save the image as uint16"
        )


def to_float(image: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Scale an image to floating point in ``[0, 1]`` (float inputs are returned as ``dtype``).

    uint8 and uint16 round-trip exactly through :func:`from_float`."""
    if image.dtype.is_floating_point:
        return image.to(dtype)
    lo, hi = dtype_range(image.dtype)
    # float32 holds every uint16 value exactly and x / 65535 * 65535 rounds back to x. In place
    # on the fresh float copy, and unsigned types (lo = 0) skip the subtraction: the same values
    # with one full-size temporary instead of three (page faults dominated on 1024 px images).
    x = image.to(dtype)
    return (x.sub_(lo) if lo else x).div_(hi - lo)


def from_float(image: torch.Tensor, dtype: torch.dtype, *, inplace: bool = False) -> torch.Tensor:
    """Inverse of :func:`to_float`: clamp to ``[0, 1]``, scale to ``dtype``'s range and round.

    ``inplace``: scale ``image`` itself, for a caller's own float temporary that it does not
    read again (a composite about to be returned as integers): the same values without a
    full-size float temporary, whose fresh pages cost more than the arithmetic on a 1024 px
    image. ``image`` is left scaled; float ``dtype`` ignores it."""
    if dtype.is_floating_point:
        return image.to(dtype)
    lo, hi = dtype_range(dtype)
    # Scaled first, then from_work rounds and clamps to the dtype's range (its fast uint8 route
    # included): the same values as clamping to [0, 1] first (the scaled value lies in the range
    # exactly when x lies in [0, 1]), with one full-size pass fewer.
    x = image.mul_(hi - lo) if inplace else image.mul(hi - lo)
    return from_work(x.add_(lo) if lo else x, dtype)


def to_work(image: torch.Tensor) -> torch.Tensor:
    """Float copy at raw scale (uint8 0..255, uint16 0..65535); float32/64 pass through, halves go to float32."""
    if image.dtype in (torch.float32, torch.float64):
        return image
    if image.dtype == torch.uint16:
        # One cast (torch >= 2.3 converts uint16 directly); float32 holds every value exactly.
        return image.to(torch.float32)
    return image.to(torch.float32)


def from_work(x: torch.Tensor, dtype: torch.dtype, clamp: bool = True, saturate: bool = True) -> torch.Tensor:
    """Back from :func:`to_work`, *in place* on ``x`` (always a kernel's own temporary):
    integers are rounded half-to-even and (``saturate``) clamped to their range; floats are
    clamped to ``[0, 1]`` when ``clamp`` (blending ops), else only cast."""
    if dtype.is_floating_point:
        if clamp:
            x = x.clamp_(0.0, 1.0)
        return x.to(dtype)
    if dtype == torch.uint8 and x.dtype == torch.float32:
        # Clamped whether or not asked: the rounding add is exact only inside the range (a
        # "saturate=False" caller's values are in range up to float error, where clamping is a no-op).
        return _round_to_uint8(x.clamp_(0.0, 255.0))
    x = x.round_()
    if saturate:
        x = x.clamp_(*dtype_range(dtype))
    return _cast(x, dtype)
