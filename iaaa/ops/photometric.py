"""Photometric kernels: pixel values change, geometry and label maps never do.

All kernels take images ``(B, C, H, W)`` (uint8, uint16 or float in ``[0, 1]``) and per-sample
parameters (a number, or a tensor of ``B`` values) and return the same dtype. Integer images
are computed at their raw scale, so uint16 keeps all 16 bits. Thresholds are given as fractions
of the dtype's range, so one parameter means the same thing for every dtype.

Channel semantics: an image with exactly 3 channels is treated as RGB (grayscale = ITU-R 601
luma, as torchvision and PIL do); any other channel count is a stack of independent channels
(fluorescence, multiplexed stains), so "grayscale" statistics are taken per channel and
saturation (:func:`adjust_saturation`) is the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import numpy as np

from iaaa.filters import gaussian_blur_batch
from iaaa.threads import serial_kernel

from ._common import ParamLike, as_param, bit_depth, bound, check_image, device_param, from_work, to_work
from iaaa.errors import IaaaError

__all__ = [
    "invert",
    "solarize",
    "posterize",
    "autocontrast",
    "equalize",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_sharpness",
    "gaussian_blur",
    "cutout",
    "cutout_labels",
]

_LUMA = (0.2989, 0.587, 0.114)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma ``(B, 1, H, W)`` for RGB, the image itself (per channel) otherwise."""
    if x.shape[1] != 3:
        return x
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


# Batches of large integer planes run sample by sample into one output: each
# sample's float temporaries (1 MB at 512x512) stay in cache, where the batched formula streams
# B times that through memory for every pass.
_PER_SAMPLE_MIN_PIXELS = 1 << 16


def _pointwise(image: torch.Tensor, fn, *params: float | torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
    """``fn(image, *params)`` for an elementwise map whose ``params`` broadcast as ``(B or 1,
    C or 1, 1, 1)``: sample by sample for large integer planes, else directly. Both routes compute
    the same float formula on the same values, so the results are bit-identical. ``work``: the
    kernel's float copy of ``image`` (:func:`to_work`) when it already made one for a reduction;
    ``fn`` then reads that instead of converting the image again. (A uint8 look-up
    table of the formula was the fast route until the float -> uint8 rounding got cheaper
    (:func:`iaaa.dtypes.from_work`); then the formula measured 1.3-1.9x faster than the table
    at 512x512: benchmarks/ops.md.)"""
    b, c, h, w = image.shape
    src = image if work is None else work
    if b > 1 and not image.dtype.is_floating_point and c * h * w >= _PER_SAMPLE_MIN_PIXELS:
        out = torch.empty_like(image)
        for i in range(b):
            ps = [p[i:i + 1] if isinstance(p, torch.Tensor) and p.shape[0] > 1 else p for p in params]
            out[i:i + 1] = fn(src[i:i + 1], *ps)
        return out
    return fn(src, *params)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    # factor * x + (1 - factor) * other, written so factor == 1 returns x bit-exactly. (1 - factor)
    # is formed on the host in float64 and rounded once, so one sample alone and the same sample
    # in a batch see the same weight.
    return from_work(x + device_param(1.0 - factor, x) * (other - x), dtype)


@serial_kernel
def invert(image: torch.Tensor) -> torch.Tensor:
    """``max - x``: 255 - x, 65535 - x, or 1 - x."""
    check_image(image)
    if image.dtype == torch.uint8:
        return 255 - image
    if image.dtype == torch.uint16:
        return (65535 - image.to(torch.int32)).to(torch.uint16)
    return 1.0 - image


@serial_kernel
def solarize(image: torch.Tensor, threshold: ParamLike) -> torch.Tensor:
    """Invert pixels strictly above ``threshold`` (a fraction of the dtype's range, per sample);
    ``threshold = 1`` is the identity."""
    check_image(image)
    hi = bound(image.dtype)
    thr = device_param(as_param(threshold, image.shape[0], "threshold") * hi, image)
    x = image.to(torch.int32) if image.dtype == torch.uint16 else image
    out = torch.where(x > thr, hi - x if image.dtype.is_floating_point else int(hi) - x, x)
    return out.to(image.dtype)


@serial_kernel
def posterize(image: torch.Tensor, bits: ParamLike) -> torch.Tensor:
    """Keep the top ``bits`` bits of each pixel (per sample) out of the dtype's depth: 8 for
    uint8, 16 for uint16 (no cast to 8 bits), and 8 for floats, which are quantised to
    ``2 ** bits`` levels as torchvision does. ``bits >= depth`` is the identity."""
    check_image(image)
    depth = bit_depth(image.dtype)
    b = as_param(bits, image.shape[0], "bits")
    # Python numbers: for the usual single value numpy's per-call cost would dominate the
    # kernel. round() and np.round both round half to even.
    ks = [round(float(b[0]))] if b.size == 1 else [int(k) for k in np.round(b).tolist()]
    if any(k < 0 or k > depth for k in ks):
        raise IaaaError(f"bits: must be in [0, {depth}] for {image.dtype}, got {[float(k) for k in ks]}")
    if all(k >= depth for k in ks):
        return image
    if image.dtype.is_floating_point:
        levels = device_param(np.power(2.0, np.array(ks, dtype=np.float64)), image)
        q = (image * levels).floor_().clamp_(min=0)
        q = (q.clamp_(max=levels - 1) if isinstance(levels, float) else q.minimum(levels - 1)) / levels
        return q if all(k < depth for k in ks) else torch.where(levels >= 2**depth, image, q)
    full = (1 << depth) - 1
    masks = [full ^ ((1 << (depth - k)) - 1) for k in ks]
    if image.dtype == torch.uint8:
        mask = masks[0] if len(masks) == 1 else torch.tensor(masks, dtype=torch.uint8, device=image.device).view(-1, 1, 1, 1)
        return image & mask
    # The same bits as int16 (every kernel has it): one pass, no widening.
    masks = [m - 65536 if m >= 32768 else m for m in masks]
    mask = masks[0] if len(masks) == 1 else torch.tensor(masks, dtype=torch.int16, device=image.device).view(-1, 1, 1, 1)
    return (image.view(torch.int16) & mask).view(torch.uint16)


@serial_kernel
def autocontrast(image: torch.Tensor) -> torch.Tensor:
    """Stretch each channel linearly so its min becomes 0 and its max the dtype's maximum
    (65535 for uint16). Constant channels are left as they are."""
    check_image(image)
    x = to_work(image) if image.dtype == torch.uint16 else image  # uint8 reduces as it is
    lo = x.amin((-2, -1), keepdim=True)
    span = (x.amax((-2, -1), keepdim=True) - lo).to(torch.float32 if not image.dtype.is_floating_point else x.dtype)
    scale = torch.where(span > 0, bound(image.dtype) / span.clamp(min=1e-12), torch.ones_like(span))
    lo = torch.where(span > 0, lo, torch.zeros_like(lo))
    # (x - lo) * max / span never leaves the range, so only rounding is needed on the way back.
    if image.dtype == torch.uint16:
        return _pointwise(image, lambda v, lo, scale: from_work((v - lo).mul_(scale), image.dtype, saturate=False), lo, scale, work=x)
    return _pointwise(image, lambda v, lo, scale: from_work((v - lo) * scale, image.dtype, saturate=False), lo, scale)


def _lut_equalize(x: torch.Tensor, r: int, n: int, levels: int, lut_fn) -> torch.Tensor:
    """Equalise integer levels ``x (r, n)`` in ``[0, levels)`` through a per-row look-up table.

    One bincount over each row's own value span (offsets keep rows apart) gives, for every
    level, the pixels strictly below it; ``lut_fn(below, non_max (r, 1), value)`` turns that into
    output values (``value`` holds the input level of each entry of ``below``), applied by one
    index_select. Up to 4096 levels the span is simply all levels (no min/max passes); when
    spans are so wide that the table would dwarf the image (full-range 16-bit noise), a sort
    counts per pixel instead."""
    q = x.reshape(r, n).to(torch.int32, memory_format=torch.contiguous_format)
    rows = torch.arange(r, device=q.device, dtype=torch.int32).view(-1, 1)
    if levels <= 4096:
        span, lo = levels, None
        top = q.amax(1, keepdim=True)  # highest level present
        idx = q.add_(rows * span).reshape(-1)
    else:
        lo = q.amin(1, keepdim=True)
        top = q.amax(1, keepdim=True) - lo
        span = int(top.max()) + 1
        if span > 8 * n:
            srt = q.sort(1).values
            below = torch.searchsorted(srt, q)
            return lut_fn(below, torch.searchsorted(srt, srt[:, -1:].contiguous()), q)
        idx = (q - lo).add_(rows * span).reshape(-1)
    hist = torch.bincount(idx, minlength=r * span).view(r, span)
    below = hist.cumsum(1).sub_(hist)  # pixels strictly below each level
    non_max = below.gather(1, top.long())  # pixels below the row's maximum
    value = torch.arange(span, device=q.device, dtype=torch.int32).expand(r, span)
    value = value if lo is None else value + lo
    return lut_fn(below, non_max, value).reshape(-1).index_select(0, idx).view(r, n)


@serial_kernel
def equalize(image: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise each channel.

    uint8 reproduces PIL / torchvision exactly. uint16 equalises over all 65536 levels (no 8-bit
    cast) and floats over 4096 levels, both with a real-valued PIL step: PIL's integer step is 0
    (no effect) whenever an image has fewer pixels than levels, which is every 16-bit cell crop.
    A float pixel maps to the fraction of its channel's pixels below it. Constant channels are
    left as they are."""
    check_image(image)
    b, c, h, w = image.shape
    r, n = b * c, h * w
    if n == 0:
        return image
    if image.dtype == torch.uint8:

        def lut_fn(below, non_max, value):
            # PIL: n_max counts the pixels at the maximum; its integer step rounds down.
            step = non_max // 255
            lut = ((below + step // 2) // step.clamp(min=1)).clamp_(0, 255)
            return torch.where(step > 0, lut, value).to(torch.uint8)

        return _lut_equalize(image, r, n, 256, lut_fn).view(b, c, h, w)
    if image.dtype == torch.uint16:

        def lut_fn(below, non_max, value):
            # float64: the 0.5 rounding of level * 65535 / count must not depend on float32 noise.
            lut = torch.floor(below.double() * (65535.0 / non_max.clamp(min=1).double()) + 0.5)
            return torch.where(non_max > 0, lut.to(torch.int32), value)

        return _lut_equalize(image.view(torch.int16).to(torch.int32) & 0xFFFF, r, n, 65536, lut_fn).to(torch.uint16).view(b, c, h, w)
    x = to_work(image)
    q = x.mul(4095.0).round_().clamp_(0.0, 4095.0)
    flat_rows = []

    def lut_fn(below, non_max, value):
        flat_rows.append(non_max == 0)  # one level only: leave the channel as it is
        return below.to(x.dtype) / non_max.clamp(min=1).to(x.dtype)

    out = _lut_equalize(q, r, n, 4096, lut_fn).view(b, c, h, w)
    if bool(flat_rows[0].any()):
        out = torch.where(flat_rows[0].view(b, c, 1, 1), x, out)
    return from_work(out, image.dtype, clamp=False)


@serial_kernel
def adjust_brightness(image: torch.Tensor, factor: ParamLike) -> torch.Tensor:
    """Multiply by ``factor`` (per sample; 1 = identity) and clip to the dtype's range."""
    check_image(image)
    a = as_param(factor, image.shape[0], "factor")
    if (a[0] < 0) if a.size == 1 else (a < 0).any():
        raise IaaaError(f"factor: brightness factors must be >= 0, got {a.tolist()}")
    f = device_param(a, image)
    # uint8 * float promotes by itself; uint16 needs the float copy, which is then the kernel's own
    # temporary (multiplied in place).
    return _pointwise(image, lambda v, f: from_work(to_work(v).mul_(f) if v.dtype == torch.uint16 else v * f, image.dtype), f)


@serial_kernel
def adjust_contrast(image: torch.Tensor, factor: ParamLike) -> torch.Tensor:
    """Blend with the mean gray level (per sample; per channel unless RGB): 0 gives flat gray,
    1 the identity, > 1 more contrast."""
    check_image(image)
    f = as_param(factor, image.shape[0], "factor")
    dt = torch.float64 if image.dtype == torch.float64 else torch.float32
    # uint16: the float copy serves the mean and the blend (one conversion, not two).
    work = to_work(image) if image.dtype == torch.uint16 else None
    if image.shape[1] == 3:
        mean = _gray(to_work(image) if work is None else work).mean((-3, -2, -1), keepdim=True)
    else:
        # uint16: the float copy's mean (the same sum as an integer mean in float32, measured
        # bit-identical) -- torch's integer-to-float reduction is several times slower.
        mean = (image if work is None else work).mean((-2, -1), keepdim=True, dtype=dt)
    fd, shift = device_param(f, image), device_param(1.0 - f, image) * mean
    # f * x + (1 - f) * mean: the mean is one value per sample and channel, so this is two passes
    # over the image; f == 1 gives x exactly. Weights are formed on the host in
    # float64 and rounded once, so a sample alone and in a batch see the same numbers.

    def fn(v: torch.Tensor, fd: float | torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        # In place on the product, the kernel's own temporary.
        return from_work((v * fd).add_(shift), image.dtype)

    return _pointwise(image, fn, fd, shift, work=work)


@serial_kernel
def adjust_saturation(image: torch.Tensor, factor: ParamLike) -> torch.Tensor:
    """Blend RGB images with their grayscale version (0 = gray, 1 = identity); other channel
    counts have no hue to saturate and are returned unchanged."""
    check_image(image)
    f = as_param(factor, image.shape[0], "factor")
    if image.shape[1] != 3:
        return image
    x = to_work(image)
    return _blend(x, _gray(x), f, image.dtype)


@serial_kernel
def adjust_sharpness(image: torch.Tensor, factor: ParamLike) -> torch.Tensor:
    """PIL's sharpness: blend with a copy smoothed by ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13``
    (border pixels kept); 0 = smoothed, 1 = identity, 2 = twice as sharp. Images under 3x3 are
    returned unchanged."""
    check_image(image)
    f = as_param(factor, image.shape[0], "factor")
    h, w = image.shape[-2:]
    if h < 3 or w < 3:
        return image
    x = to_work(image)
    # Shifted sums rather than conv2d: elementwise adds round the same way for any batch size
    # and on any device, so a batch equals its samples one by one, bit for bit.
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    smooth = (box + 4.0 * x[..., 1:-1, 1:-1]) / 13.0
    if not image.dtype.is_floating_point:
        smooth = smooth.round()  # PIL builds the degenerate image in the image's own dtype
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = smooth
    return _blend(x, degenerate, f, image.dtype)


@serial_kernel
def gaussian_blur(image: torch.Tensor, sigma: ParamLike) -> torch.Tensor:
    """Separable Gaussian low-pass with a per-sample ``sigma`` in pixels (0 = identity), kernel
    radius ``ceil(3 * sigma)``, edges replicated.

    One grouped convolution per axis for the whole batch (each sample and channel its own
    group; :func:`iaaa.filters.gaussian_blur_batch`), so per-sample sigmas cost no more than a
    shared one. Convolution backends may pick
    a different algorithm for a different group count, so a sample blurred inside a batch can
    differ from the same sample alone by float rounding (~1e-7; one grey level at most)."""
    check_image(image)
    s = as_param(sigma, image.shape[0], "sigma")
    top = s[0] if s.size == 1 else s.max()
    if (s[0] < 0) if s.size == 1 else (s < 0).any():
        raise IaaaError(f"sigma: must be >= 0, got {s.tolist()}")
    if float(top) <= 0:
        return image
    return from_work(gaussian_blur_batch(to_work(image), s), image.dtype)


def _box_mask(box: ParamLike, b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    bx = torch.as_tensor(np.asarray(box.detach().cpu() if isinstance(box, torch.Tensor) else box, dtype=np.float32)).reshape(-1, 4)
    if bx.shape[0] not in (1, b):
        raise IaaaError(f"box: expected 1 or {b} boxes (x0, y0, x1, y1), got {bx.shape[0]}")
    bx = bx.to(device).view(-1, 4, 1, 1)
    ys = torch.arange(h, device=device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
    return (xs >= bx[:, 0]) & (xs < bx[:, 2]) & (ys >= bx[:, 1]) & (ys < bx[:, 3])


@serial_kernel
def cutout(image: torch.Tensor, box: ParamLike, fill: float | str = "mean") -> torch.Tensor:
    """Paint the rectangle ``box = (x0, y0, x1, y1)`` (pixels ``x0 <= x < x1``, one row per
    sample) with ``fill``: ``"mean"`` (each channel's mean, which keeps the overall intensity
    of the object) or a fraction of the dtype's range."""
    check_image(image)
    b, c, h, w = image.shape
    inside = _box_mask(box, b, h, w, image.device).unsqueeze(1)
    x = to_work(image)
    if isinstance(fill, str):
        if fill != "mean":
            raise IaaaError(f"fill: expected 'mean' or a number, got {fill!r}")
        value = x.mean((-2, -1), keepdim=True)
    else:
        value = torch.full((1, 1, 1, 1), float(fill) * bound(image.dtype), device=x.device, dtype=x.dtype)
    return from_work(torch.where(inside, value, x), image.dtype, clamp=False)


@serial_kernel
def cutout_labels(labels: torch.Tensor, box: ParamLike) -> torch.Tensor:
    """Set label pixels inside ``box`` to background, for cutouts that should erase the cell
    part they cover (``(B, H, W)`` label maps, dtype kept)."""
    b, h, w = labels.shape
    return labels.masked_fill(_box_mask(box, b, h, w, labels.device), 0)
