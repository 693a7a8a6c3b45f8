"""How one pooled object is resampled: the affine warp the default per-object policy
(:class:`~iaaa.synthesis.object_policy.ObjectAugment`) applies, and the compositor's two paths
that apply a resize and that policy only over the window placement reads.

* :func:`affine_warp`: flip / stretch, scale and rotate about the centre onto the canvas fitted
  to the result, labels through the image's own grid; :func:`brightness_contrast`, the policy's
  photometric step; :func:`resize_image`, what
  :class:`~iaaa.synthesis.object_policy.RandomScale` does to the image.
* :func:`separate_within_reach` (``object_warp="separate"``, the default): the resize, then the
  policy, exactly as the two steps make them, with labels, brightness / contrast and box search
  computed over the window only.
* :func:`warp_within_reach` (``object_warp="fused"``): both as one resampling over the window.

The sampling grids are one product of a cached base grid of normalised pixel centres (NumPy on
the CPU, bounded by bytes: :data:`_GRID_CACHE_BYTES`).
"""

from __future__ import annotations

import collections
import functools
import math
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from iaaa.boxes import tight_box
from iaaa.filters import antialias_sigma, feather_radius, gaussian_blur

__all__ = ["affine_warp", "brightness_contrast", "resize_image", "separate_within_reach", "warp_within_reach", "AffineDraw", "ScaleDraw"]


# What the within-reach paths need of the policies, as protocols: the policies import this
# module, so naming their classes here would make an import cycle.
class AffineDraw(Protocol):
    """What :class:`~iaaa.synthesis.object_policy.ObjectAugment` offers the within-reach paths:
    its six draws ``(fx, fy, angle, scale, brightness, contrast)`` and the whole step."""

    def draw(self, generator: torch.Generator) -> tuple[float, float, float, float, float, float]: ...

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...


class ScaleDraw(Protocol):
    """What :class:`~iaaa.synthesis.object_policy.RandomScale` offers them: its scale draw and
    the whole step."""

    def draw(self, generator: torch.Generator) -> float: ...

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...


def resize_image(image: torch.Tensor, s: float) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(image (C, H, W) resized by s, its (H, W))``: bilinear, antialiased when shrinking."""
    size = (max(1, round(image.shape[-2] * s)), max(1, round(image.shape[-1] * s)))
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=s < 1)[0], size


def brightness_contrast(image: torch.Tensor, bf: float, cf: float) -> torch.Tensor:
    """Contrast ``cf`` about the image's mean, then brightness ``bf``, folded into one
    multiply-add, clamped to ``[0, 1]``."""
    if bf == 1.0 and cf == 1.0:
        return image
    mu = float(image.mean()) if cf != 1.0 else 0.0
    return (image * (cf * bf)).add_(mu * (1 - cf) * bf).clamp_(0.0, 1.0)


def _flip_only(angle: float, s: float, fx: float, fy: float) -> bool:
    """Whether the map is a flip (or none): then no resampling is needed."""
    return angle == 0.0 and s == 1.0 and abs(fx) == 1.0 and abs(fy) == 1.0


def _linear_map(angle: float, s: float, fx: float, fy: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The forward map about the centre (pixel units: rotation @ scale @ the axis factors
    ``fx``, ``fy``: flips and stretch) as
    ``(a00, a01, a10, a11)`` and its inverse."""
    cos, sin = math.cos(angle), math.sin(angle)
    a00, a01, a10, a11 = s * cos * fx, -s * sin * fy, s * sin * fx, s * cos * fy
    det = a00 * a11 - a01 * a10
    return (a00, a01, a10, a11), (a11 / det, -a01 / det, -a10 / det, a00 / det)


def _box_through(m: tuple[float, float, float, float], x0: float, x1: float, y0: float, y1: float) -> tuple[float, float, float, float]:
    """``(x min, x max, y min, y max)`` of the box ``[x0, x1] x [y0, y1]``'s four corners through
    the linear map ``m = (m00, m01, m10, m11)`` (``x' = m00 x + m01 y``)."""
    m00, m01, m10, m11 = m
    xs = (m00 * x0 + m01 * y0, m00 * x1 + m01 * y0, m00 * x0 + m01 * y1, m00 * x1 + m01 * y1)
    ys = (m10 * x0 + m11 * y0, m10 * x1 + m11 * y0, m10 * x0 + m11 * y1, m10 * x1 + m11 * y1)
    return min(xs), max(xs), min(ys), max(ys)


def _expanded_warp(image: torch.Tensor, angle: float, s: float, fx: float, fy: float) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float, float, float]]:
    """``image`` flipped, scaled and rotated about its centre onto the canvas fitted to the
    result (bilinear, zeros outside): ``(image, its sampling grid (1, H', W', 2), the forward
    map (a00, a01, a10, a11))``."""
    c, h, w = image.shape
    (a00, a01, a10, a11), (i00, i01, i10, i11) = _linear_map(angle, s, fx, fy)
    wo = max(1, math.ceil(abs(a00) * w + abs(a01) * h - 1e-6))
    ho = max(1, math.ceil(abs(a10) * w + abs(a11) * h - 1e-6))
    # Normalised coordinates (affine_grid's): in_n = diag(2/w, 2/h) A^-1 diag(wo/2, ho/2) out_n.
    grid = _sampling_grid([[i00 * wo / w, i10 * wo / h], [i01 * ho / w, i11 * ho / h]], ho, wo, image)
    img = F.grid_sample(image.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    return img, grid, (a00, a01, a10, a11)


def affine_warp(image: torch.Tensor, labels: torch.Tensor, angle: float, s: float, fx: float, fy: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip (and stretch: ``|fx|``, ``|fy|``), scale and rotate about the centre, canvas fitted
    to the result."""
    if _flip_only(angle, s, fx, fy):
        dims = [d for d, f in ((-1, fx), (-2, fy)) if f < 0]
        return (image.flip(dims), labels.flip(dims)) if dims else (image, labels)
    img, grid, _ = _expanded_warp(image, angle, s, fx, fy)
    # Labels through the image's own grid by nearest: the same sampling positions as the image,
    # and one kernel call. The op stack's general gather (iaaa.ops.functional.warp_labels) gives
    # the same labels but measured 3x slower here (~250 vs ~80 us per object), on the hot path.
    # Object label values are 1..k, exact in float32.
    lab = F.grid_sample(labels.to(image.dtype)[None, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    return img, lab.to(torch.int64)


# Pixels of the rotated canvas a cut to the reach must spare before separate_within_reach
# samples the labels over the window only: below it the window's own bookkeeping (~50 us)
# costs more than the ~10 ns per pixel it saves (measured on simulated and DSB objects).
_WINDOW_SAVES = 2000


def separate_within_reach(
    image: torch.Tensor, labels: torch.Tensor, policy: AffineDraw, pre_scale: ScaleDraw | None, reach: int, generator: torch.Generator,
    box: tuple[int, int, int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pre_scale`` then ``policy`` on one pooled object, exactly as the two steps make it
    (``object_warp="separate"``: the same draws, the same bits), cut to the window placement
    reads: the labels' tight box grown by ``reach`` (rim plus feather radius) and clipped to the
    rotated canvas, what :func:`~iaaa.synthesis.footprints.footprints` cuts from the whole
    canvas (it cuts the same window again, a no-op, or for a smaller reach a part of it).

    The image is still resampled over the whole canvas (the contrast pivot is its mean), but the
    labels are sampled only over the window their source box maps to, and the
    brightness / contrast, the label conversions and the footprint's box search run on the
    window: on DSB nuclei scaled up to 2x, a ~200 px canvas around a ~40 px footprint. Where
    the window would save fewer than :data:`_WINDOW_SAVES` pixels (small objects kept at their
    size), the whole canvas is returned, as the two steps make it. ``box``: the tight
    ``(y0, y1, x0, x1)`` box of the cells in ``labels``, if known. ``pre_scale`` is a
    :class:`~iaaa.synthesis.object_policy.RandomScale` (its draw and :func:`resize_image` are
    used; the labels are resized only over their box, by
    :func:`~iaaa.ops.geometric.resize_label_axes`). ``labels`` in any integer dtype (a pooled
    object's are narrow); the labels returned are int64."""
    host = image.device.type == "cpu" and image.dtype == torch.float32
    if not host:
        # Another device or dtype: the two steps on the whole canvas (footprints cuts).
        labels = labels.to(torch.int64)
        if pre_scale is not None:
            image, labels = pre_scale(image, labels, generator)
        image, labels = policy(image, labels, generator)
        return image, labels
    t = box if box is not None else tight_box((labels > 0).numpy())
    lab_f = None  # the resized labels as float32 (what the nearest sampling reads), if made
    s0 = pre_scale.draw(generator) if pre_scale is not None else 1.0
    if s0 != 1.0:
        from iaaa.ops.functional import resize_labels  # the op stack loads only when used
        from iaaa.ops.geometric import resize_label_axes

        image, size = resize_image(image, s0)
        axes = resize_label_axes(tuple(labels.shape), size) if t is not None else None
        if axes is None:
            labels = resize_labels(labels, size).to(torch.int64)
            t = tight_box((labels > 0).numpy())
        else:
            # resize_labels' map is labels[rows][:, cols] with non-decreasing tables, zero
            # wherever a row or column reads outside the cells' box: only the box's rows and
            # columns are gathered, and the box they span bounds the cells of the resized map.
            rows, cols = axes
            i0, i1 = int(np.searchsorted(rows, t[0], "left")), int(np.searchsorted(rows, t[1], "right"))
            j0, j1 = int(np.searchsorted(cols, t[2], "left")), int(np.searchsorted(cols, t[3], "right"))
            lab_f = torch.zeros(size, dtype=torch.float32)
            t = None
            if i1 > i0 and j1 > j0:
                lab_f[i0:i1, j0:j1] = torch.from_numpy(labels.numpy()[rows[i0:i1]][:, cols[j0:j1]])
                t = (i0, i1 - 1, j0, j1 - 1)
            labels = None
    fx, fy, angle, s, bf, cf = policy.draw(generator)
    if _flip_only(angle, s, fx, fy):
        # A flip only: the whole canvas (footprints cuts).
        image, labels = affine_warp(image, labels if labels is not None else lab_f, angle, s, fx, fy)
        return brightness_contrast(image, bf, cf), labels.to(torch.int64)
    c, h, w = image.shape
    img, grid, forward = _expanded_warp(image, angle, s, fx, fy)
    ho, wo = img.shape[-2:]
    lab_f = (lab_f if lab_f is not None else labels.to(image.dtype))[None, None]
    wy0, wy1, wx0, wx1 = 0, ho, 0, wo
    if t is not None:
        # The output pixels whose nearest source pixel can lie in the labels' tight box: its
        # pixel edges (about the canvas centre) forward through the map, their box in output
        # pixel indices, two pixels wider for rounding.
        ux0, ux1, uy0, uy1 = _box_through(forward, t[2] - w / 2, t[3] + 1 - w / 2, t[0] - h / 2, t[1] + 1 - h / 2)
        wy0, wy1 = max(math.floor(uy0 + ho / 2 - 0.5) - 2, 0), min(math.ceil(uy1 + ho / 2 - 0.5) + 3, ho)
        wx0, wx1 = max(math.floor(ux0 + wo / 2 - 0.5) - 2, 0), min(math.ceil(ux1 + wo / 2 - 0.5) + 3, wo)
    if t is None or ho * wo - (wy1 - wy0 + 2 * reach) * (wx1 - wx0 + 2 * reach) < _WINDOW_SAVES:
        lab = F.grid_sample(lab_f, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
        return brightness_contrast(img, bf, cf), lab.to(torch.int64)
    part = F.grid_sample(lab_f, grid[:, wy0:wy1, wx0:wx1], mode="nearest", padding_mode="zeros", align_corners=False)[0, 0].to(torch.int64)
    tt = tight_box(part.numpy() > 0) if part.numel() else None
    if tt is None:  # every cell vanished (a shrink can do it): all of the canvas is background
        return brightness_contrast(img, bf, cf), torch.zeros((ho, wo), dtype=torch.int64)
    y0, y1 = max(wy0 + tt[0] - reach, 0), min(wy0 + tt[1] + reach + 1, ho)
    x0, x1 = max(wx0 + tt[2] - reach, 0), min(wx0 + tt[3] + reach + 1, wo)
    lab = torch.zeros((y1 - y0, x1 - x0), dtype=torch.int64)
    # The sampled part and the cut overlap; outside the part every label is 0.
    oy0, oy1, ox0, ox1 = max(y0, wy0), min(y1, wy1), max(x0, wx0), min(x1, wx1)
    lab[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0] = part[oy0 - wy0 : oy1 - wy0, ox0 - wx0 : ox1 - wx0]
    if bf == 1.0 and cf == 1.0:
        return img[:, y0:y1, x0:x1], lab
    # brightness_contrast with the whole canvas's mean as its pivot, on the window only
    # (elementwise: the same values as over the canvas, then cut).
    mu = float(img.mean()) if cf != 1.0 else 0.0
    return (img[:, y0:y1, x0:x1] * (cf * bf)).add_(mu * (1 - cf) * bf).clamp_(0.0, 1.0), lab


def warp_within_reach(
    image: torch.Tensor, labels: torch.Tensor, policy: AffineDraw, pre_scale: ScaleDraw | None, reach: int, generator: torch.Generator,
    box: tuple[int, int, int, int] | None = None, pixel_map: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pre_scale`` then ``policy`` on one pooled object as a single resampling, computed only
    over the window placement can use: the transformed mask's box grown by ``reach`` pixels
    (rim plus feather radius) plus one.

    Draws what the two steps draw, in their order (``pre_scale``'s uniform, then the policy's
    six), so the generator's stream after it is the same as after the separate steps. It
    differs from them in what it makes: the image is resampled once instead of twice (a shrink
    below 2/3 is Gaussian pre-filtered by ``(1/s - 1) / 2`` px, the op stack's rule, instead of
    ``interpolate``'s antialiasing), the window is cut before sampling instead of after, and the
    contrast pivot is the mean of that window (the object and its ring) instead of the whole
    rotated canvas with its zero fill. ``CompositorConfig(object_warp=...)`` chooses. ``box``:
    the tight ``(y0, y1, x0, x1)`` box of the cells in the crop, if known (else measured).
    ``labels`` in any integer dtype; the labels returned are int64. ``pixel_map``: an
    elementwise map to float32 in ``[0, 1]`` (a dtype conversion, a level mapping) applied only
    to the part of ``image`` the window reads, the same values there as mapping the whole crop
    first (``image`` may then be in any dtype).
    """
    s0 = pre_scale.draw(generator) if pre_scale is not None else 1.0
    fx, fy, angle, s1, bf, cf = policy.draw(generator)
    s = s0 * s1
    h, w = image.shape[-2:]
    t = box if box is not None else tight_box((labels > 0).cpu().numpy())
    if t is None:  # no cell: the whole crop is the object
        t = (0, h - 1, 0, w - 1)
    forward, (i00, i01, i10, i11) = _linear_map(angle, s, fx, fy)
    # The mask box's corners (pixel edges, about the crop centre) forward to the output frame;
    # the window is their box grown by the reach and one pixel.
    ux0, ux1, uy0, uy1 = _box_through(forward, t[2] - w / 2, t[3] + 1 - w / 2, t[0] - h / 2, t[1] + 1 - h / 2)
    m = reach + 1
    ox0, oy0 = math.floor(ux0) - m, math.floor(uy0) - m
    wo, ho = math.ceil(ux1) + m - ox0, math.ceil(uy1) + m - oy0
    # The source box (pixel edges) the window's outer pixel centres read, grown by one pixel
    # for bilinear and by the pre-filter's radius: only that part of the crop is sampled.
    px0, px1, py0, py1 = _box_through((i00, i01, i10, i11), ox0 + 0.5, ox0 + wo - 0.5, oy0 + 0.5, oy0 + ho - 0.5)
    # The low-pass follows the most shrunk axis (a stretch shrinks one of them).
    sigma = antialias_sigma(s * min(abs(fx), abs(fy)))
    pad = 2 + (feather_radius(sigma) if sigma else 0)
    sx0, sy0 = max(math.floor(px0 + w / 2) - pad, 0), max(math.floor(py0 + h / 2) - pad, 0)
    sx1, sy1 = min(math.ceil(px1 + w / 2) + pad, w), min(math.ceil(py1 + h / 2) + pad, h)
    if sx1 <= sx0 or sy1 <= sy0:
        sx0, sy0, sx1, sy1 = 0, 0, w, h
    src = image[:, sy0:sy1, sx0:sx1]
    if pixel_map is not None:
        src = pixel_map(src)
    lab = labels[sy0:sy1, sx0:sx1]
    hs, ws = sy1 - sy0, sx1 - sx0
    if sigma:
        src = gaussian_blur(src.contiguous(), sigma, 3.0, "replicate")
    # grid_sample's [-1, 1] coordinates of the cut source as an affine map of the window's own
    # normalised pixel centres (the cached base grid): output centre u = ox0 + (xn + 1) wo / 2,
    # source edge position p = A^-1 u + centre - cut corner, source xn' = 2 p / ws - 1.
    kx, ky = 2.0 / ws, 2.0 / hs
    hx, hy = wo / 2, ho / 2
    cx, cy = ox0 + hx, oy0 + hy  # the window centre in the output frame
    grid = _sampling_grid(
        [[kx * i00 * hx, ky * i10 * hx], [kx * i01 * hy, ky * i11 * hy], [kx * (i00 * cx + i01 * cy + w / 2 - sx0) - 1.0, ky * (i10 * cx + i11 * cy + h / 2 - sy0) - 1.0]],
        ho, wo, src,
    )
    img = F.grid_sample(src.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    out_lab = F.grid_sample(lab.to(src.dtype)[None, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    return brightness_contrast(img, bf, cf), out_lab.to(torch.int64)


def _sampling_grid(theta: list[list[float]], ho: int, wo: int, image: torch.Tensor) -> torch.Tensor:
    """``grid_sample``'s ``(1, ho, wo, 2)`` grid: the normalised output pixel centres (with a
    third coordinate 1 when ``theta`` has three rows: one product then applies a whole affine
    map, where a broadcast add of the offset cost 2-3x the product) times ``theta``. On the CPU
    in float32 the product runs in NumPy: the same BLAS product (the same bits: checked in
    tests/synthesis/test_object_warp_grid.py) without torch's per-call cost on these small
    grids, and ``theta`` needs no tensor."""
    k = len(theta)
    if image.device.type == "cpu" and image.dtype == torch.float32:
        base = _base_grid(ho, wo, k).reshape(ho * wo, k)
        return torch.from_numpy((base @ np.array(theta, dtype=np.float32)).reshape(1, ho, wo, 2))
    base = _device_base_grid(ho, wo, k, str(image.device), image.dtype)
    return (base @ torch.tensor(theta, dtype=image.dtype, device=image.device)).unsqueeze(0)


@functools.lru_cache(maxsize=64)
def _device_base_grid(ho: int, wo: int, k: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(_base_grid(ho, wo, k), dtype=dtype, device=device)


# Base grids kept, most recently used first out last, up to this many bytes: small objects
# come in a limited set of sizes and hit; whole fibroblasts scaled 2x and rotated need ~1 MB
# grids of ever new sizes, which a count-bounded cache would hoard by the gigabyte.
_GRID_CACHE_BYTES = 64 << 20
_grid_cache: "collections.OrderedDict[tuple[int, int, int], np.ndarray]" = collections.OrderedDict()
_grid_cache_bytes = 0


def _base_grid(ho: int, wo: int, k: int = 2) -> np.ndarray:
    """Normalised output pixel centres ``(ho, wo, k)`` float32, ``(x, y)`` and for ``k = 3`` a
    1 (what ``affine_grid`` builds on every call; cached within :data:`_GRID_CACHE_BYTES`;
    read-only)."""
    global _grid_cache_bytes
    key = (ho, wo, k)
    out = _grid_cache.get(key)
    if out is not None:
        _grid_cache.move_to_end(key)
        return out
    out = np.empty((ho, wo, k), dtype=np.float32)
    out[..., 0] = (np.arange(wo, dtype=np.float32) * 2 + 1) / wo - 1
    out[..., 1] = ((np.arange(ho, dtype=np.float32) * 2 + 1) / ho - 1)[:, None]
    out[..., 2:] = 1.0
    out.flags.writeable = False
    _grid_cache[key] = out
    _grid_cache_bytes += out.nbytes
    while _grid_cache_bytes > _GRID_CACHE_BYTES and len(_grid_cache) > 1:
        _grid_cache_bytes -= _grid_cache.popitem(last=False)[1].nbytes
    return out
