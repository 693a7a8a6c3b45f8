"""Per-object policies for :class:`~iaaa.synthesis.compositor.CellCompositor`.

A per-object policy is any callable ``policy(image, labels, generator) -> (image, labels)`` on one
cell object: ``image`` float32 ``(C, h, w)`` in ``[0, 1]``, ``labels`` int64 ``(h, w)`` with the
object's cells ``1..k``. It may change the canvas size (a rotated object grows); it must move the
labels with the image, draw randomness only from ``generator``, and not modify its inputs in
place (they are the compositor's pooled object). :class:`iaaa.policy.Policy`
and :class:`iaaa.policy.PolicySet` are such callables, and so is :class:`ObjectAugment`, the
default. :func:`as_object_policy` turns the accepted shorthands into one.
"""

from __future__ import annotations

import collections
import functools
import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from iaaa.boxes import tight_box
from iaaa.errors import IaaaError
from iaaa.filters import antialias_sigma, feather_radius, gaussian_blur
from iaaa.synthesis.kornia_policy import KorniaPolicy, is_kornia_pipeline

__all__ = ["ObjectPolicy", "ObjectAugment", "RandomScale", "warp_within_reach", "separate_within_reach", "AUTO_OBJECT_SCALE", "Identity", "Sequential", "as_object_policy"]

ObjectPolicy = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class Identity:
    """The per-object policy that changes nothing (``policy=[]`` or ``policy="identity"``)."""

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return image, labels

    def __repr__(self) -> str:
        return "Identity()"


class ObjectAugment:
    """The default per-object policy: random FlipLR / FlipUD, rotation by any angle with the
    canvas expanded so nothing is cut, optional rescaling and stretching, and mild brightness /
    contrast.

    The geometric part is one affine resampling (bilinear image, nearest labels, both through the
    same grid) instead of one op call per transform, because the compositor runs it on every
    object of every synthetic image. Semantics match :mod:`iaaa.ops` (``FlipLR``, ``FlipUD``,
    ``Rotate(expand=True)``, ``Resize``, ``Brightness``, ``Contrast``).

    Args:
        flip: flip left-right and up-down, each with probability 1/2.
        degrees: rotation angle drawn uniformly from ``(-degrees, degrees)`` (180: any angle).
        scale: ``None`` or ``(lo, hi)``: resize factor drawn log-uniformly.
        brightness: factor drawn from ``1 +- brightness`` (multiplies the image).
        contrast: factor drawn from ``1 +- contrast`` (about the crop's mean).
        stretch: ``None`` or a factor ``a >= 1``: the object's aspect ratio is changed by a
            factor drawn log-uniformly from ``(1/a, a)``, the x axis scaled by its square root
            and the y axis by the inverse (area kept), before the rotation, so the stretch's
            direction is as random as the angle: new cell shapes, which pasting whole cells
            cannot make.

    Every call draws exactly six uniforms from the generator (seven with ``stretch``), whatever
    the other settings, so the random stream of everything after it does not depend on them.
    """

    def __init__(
        self, flip: bool = True, degrees: float = 180.0, scale: tuple[float, float] | None = None, brightness: float = 0.1, contrast: float = 0.1,
        stretch: float | None = None,
    ) -> None:
        if degrees < 0:
            raise IaaaError(f"degrees must be >= 0, got {degrees}")
        if stretch is not None and not (isinstance(stretch, (int, float, np.floating)) and not isinstance(stretch, bool) and math.isfinite(stretch) and stretch >= 1):
            raise IaaaError(f"stretch must be None or a factor >= 1, got {stretch!r}")
        if scale is not None:
            lo, hi = (float(v) for v in scale)
            if not 0 < lo <= hi:
                raise IaaaError(f"scale must be (lo, hi) with 0 < lo <= hi, got {scale}")
            scale = (lo, hi)
        if not 0 <= brightness < 1 or not 0 <= contrast < 1:
            raise IaaaError(f"brightness and contrast must be in [0, 1), got {brightness}, {contrast}")
        self.flip, self.degrees, self.scale = bool(flip), float(degrees), scale
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.stretch = None if stretch is None or stretch == 1 else float(stretch)

    def __repr__(self) -> str:
        more = f", stretch={self.stretch}" if self.stretch is not None else ""
        return f"ObjectAugment(flip={self.flip}, degrees={self.degrees}, scale={self.scale}, brightness={self.brightness}, contrast={self.contrast}{more})"

    @property
    def max_shrink(self) -> float:
        """Smallest factor this policy scales an axis by (1 without ``scale`` and ``stretch``)."""
        shrink = min(1.0, self.scale[0]) if self.scale else 1.0
        return shrink / math.sqrt(self.stretch) if self.stretch is not None else shrink

    def draw(self, generator: torch.Generator) -> tuple[float, float, float, float, float, float]:
        """One call's parameters ``(fx, fy, angle in radians, scale, brightness factor,
        contrast factor)`` from six uniforms of ``generator`` (seven with ``stretch``). ``fx``
        and ``fy`` are the x and y axis factors before the rotation: +-1 (the flips), times the
        stretch's square root and its inverse."""
        u = torch.rand(6 if self.stretch is None else 7, generator=generator, device=generator.device, dtype=torch.float64).tolist()
        fx = -1.0 if self.flip and u[0] < 0.5 else 1.0
        fy = -1.0 if self.flip and u[1] < 0.5 else 1.0
        if self.stretch is not None:
            q = math.exp((u[6] - 0.5) * math.log(self.stretch))
            fx, fy = fx * q, fy / q
        angle = math.radians(self.degrees * (2 * u[2] - 1))
        s = 1.0
        if self.scale is not None:
            lo, hi = self.scale
            s = math.exp(math.log(lo) + u[3] * (math.log(hi) - math.log(lo)))
        return fx, fy, angle, s, 1.0 + self.brightness * (2 * u[4] - 1), 1.0 + self.contrast * (2 * u[5] - 1)

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        fx, fy, angle, s, bf, cf = self.draw(g)
        image, labels = _affine(image, labels, angle, s, fx, fy)
        return _brightness_contrast(image, bf, cf), labels


def _brightness_contrast(image: torch.Tensor, bf: float, cf: float) -> torch.Tensor:
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


def _affine(image: torch.Tensor, labels: torch.Tensor, angle: float, s: float, fx: float, fy: float) -> tuple[torch.Tensor, torch.Tensor]:
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
    image: torch.Tensor, labels: torch.Tensor, policy: ObjectAugment, pre_scale: "RandomScale | None", reach: int, generator: torch.Generator,
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
    :class:`RandomScale` (its draw and its image resize are used; the labels are resized only
    over their box, by :func:`~iaaa.ops.geometric.resize_label_axes`)."""
    host = image.device.type == "cpu" and image.dtype == torch.float32
    if not host:
        # Another device or dtype: the two steps on the whole canvas (footprints cuts).
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

        image, size = RandomScale.resize_image(image, s0)
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
        image, labels = _affine(image, labels if labels is not None else lab_f.to(torch.int64), angle, s, fx, fy)
        return _brightness_contrast(image, bf, cf), labels
    c, h, w = image.shape
    img, grid, (a00, a01, a10, a11) = _expanded_warp(image, angle, s, fx, fy)
    ho, wo = img.shape[-2:]
    lab_f = (lab_f if lab_f is not None else labels.to(image.dtype))[None, None]
    wy0, wy1, wx0, wx1 = 0, ho, 0, wo
    if t is not None:
        # The output pixels whose nearest source pixel can lie in the labels' tight box: its
        # pixel edges (about the canvas centre) forward through the map, their box in output
        # pixel indices, two pixels wider for rounding.
        ys0, ys1, xs0, xs1 = t[0] - h / 2, t[1] + 1 - h / 2, t[2] - w / 2, t[3] + 1 - w / 2
        ux = (a00 * xs0 + a01 * ys0, a00 * xs1 + a01 * ys0, a00 * xs0 + a01 * ys1, a00 * xs1 + a01 * ys1)
        uy = (a10 * xs0 + a11 * ys0, a10 * xs1 + a11 * ys0, a10 * xs0 + a11 * ys1, a10 * xs1 + a11 * ys1)
        wy0, wy1 = max(math.floor(min(uy) + ho / 2 - 0.5) - 2, 0), min(math.ceil(max(uy) + ho / 2 - 0.5) + 3, ho)
        wx0, wx1 = max(math.floor(min(ux) + wo / 2 - 0.5) - 2, 0), min(math.ceil(max(ux) + wo / 2 - 0.5) + 3, wo)
    if t is None or ho * wo - (wy1 - wy0 + 2 * reach) * (wx1 - wx0 + 2 * reach) < _WINDOW_SAVES:
        lab = F.grid_sample(lab_f, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
        return _brightness_contrast(img, bf, cf), lab.to(torch.int64)
    part = F.grid_sample(lab_f, grid[:, wy0:wy1, wx0:wx1], mode="nearest", padding_mode="zeros", align_corners=False)[0, 0].to(torch.int64)
    tt = tight_box(part.numpy() > 0) if part.numel() else None
    if tt is None:  # every cell vanished (a shrink can do it): all of the canvas is background
        return _brightness_contrast(img, bf, cf), torch.zeros((ho, wo), dtype=torch.int64)
    y0, y1 = max(wy0 + tt[0] - reach, 0), min(wy0 + tt[1] + reach + 1, ho)
    x0, x1 = max(wx0 + tt[2] - reach, 0), min(wx0 + tt[3] + reach + 1, wo)
    lab = torch.zeros((y1 - y0, x1 - x0), dtype=torch.int64)
    # The sampled part and the cut overlap; outside the part every label is 0.
    oy0, oy1, ox0, ox1 = max(y0, wy0), min(y1, wy1), max(x0, wx0), min(x1, wx1)
    lab[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0] = part[oy0 - wy0 : oy1 - wy0, ox0 - wx0 : ox1 - wx0]
    if bf == 1.0 and cf == 1.0:
        return img[:, y0:y1, x0:x1], lab
    # _brightness_contrast with the whole canvas's mean as its pivot, on the window only
    # (elementwise: the same values as over the canvas, then cut).
    mu = float(img.mean()) if cf != 1.0 else 0.0
    return (img[:, y0:y1, x0:x1] * (cf * bf)).add_(mu * (1 - cf) * bf).clamp_(0.0, 1.0), lab


def warp_within_reach(
    image: torch.Tensor, labels: torch.Tensor, policy: ObjectAugment, pre_scale: "RandomScale | None", reach: int, generator: torch.Generator,
    box: tuple[int, int, int, int] | None = None,
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
    """
    s0 = pre_scale.draw(generator) if pre_scale is not None else 1.0
    fx, fy, angle, s1, bf, cf = policy.draw(generator)
    s = s0 * s1
    h, w = image.shape[-2:]
    t = box if box is not None else tight_box((labels > 0).cpu().numpy())
    if t is None:  # no cell: the whole crop is the object
        t = (0, h - 1, 0, w - 1)
    (a00, a01, a10, a11), (i00, i01, i10, i11) = _linear_map(angle, s, fx, fy)
    # The mask box's corners (pixel edges, about the crop centre) forward to the output frame;
    # the window is their box grown by the reach and one pixel.
    ys0, ys1, xs0, xs1 = t[0] - h / 2, t[1] + 1 - h / 2, t[2] - w / 2, t[3] + 1 - w / 2
    ux = (a00 * xs0 + a01 * ys0, a00 * xs1 + a01 * ys0, a00 * xs0 + a01 * ys1, a00 * xs1 + a01 * ys1)
    uy = (a10 * xs0 + a11 * ys0, a10 * xs1 + a11 * ys0, a10 * xs0 + a11 * ys1, a10 * xs1 + a11 * ys1)
    m = reach + 1
    ox0, oy0 = math.floor(min(ux)) - m, math.floor(min(uy)) - m
    wo, ho = math.ceil(max(ux)) + m - ox0, math.ceil(max(uy)) + m - oy0
    # The source box (pixel edges) the window's outer pixel centres read, grown by one pixel
    # for bilinear and by the pre-filter's radius: only that part of the crop is sampled.
    qx0, qx1, qy0, qy1 = ox0 + 0.5, ox0 + wo - 0.5, oy0 + 0.5, oy0 + ho - 0.5
    px = (i00 * qx0 + i01 * qy0, i00 * qx1 + i01 * qy0, i00 * qx0 + i01 * qy1, i00 * qx1 + i01 * qy1)
    py = (i10 * qx0 + i11 * qy0, i10 * qx1 + i11 * qy0, i10 * qx0 + i11 * qy1, i10 * qx1 + i11 * qy1)
    # The low-pass follows the most shrunk axis (a stretch shrinks one of them).
    sigma = antialias_sigma(s * min(abs(fx), abs(fy)))
    pad = 2 + (feather_radius(sigma) if sigma else 0)
    sx0, sy0 = max(math.floor(min(px) + w / 2) - pad, 0), max(math.floor(min(py) + h / 2) - pad, 0)
    sx1, sy1 = min(math.ceil(max(px) + w / 2) + pad, w), min(math.ceil(max(py) + h / 2) + pad, h)
    if sx1 <= sx0 or sy1 <= sy0:
        sx0, sy0, sx1, sy1 = 0, 0, w, h
    src = image[:, sy0:sy1, sx0:sx1]
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
        ho, wo, image,
    )
    img = F.grid_sample(src.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    out_lab = F.grid_sample(lab.to(image.dtype)[None, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    return _brightness_contrast(img, bf, cf), out_lab.to(torch.int64)


def _sampling_grid(theta: list[list[float]], ho: int, wo: int, image: torch.Tensor) -> torch.Tensor:
    """``grid_sample``'s ``(1, ho, wo, 2)`` grid: the normalised output pixel centres (with a
    third coordinate 1 when ``theta`` has three rows: one product then applies a whole affine
    map, where a broadcast add of the offset cost 2-3x the product) times ``theta``. On the CPU
    in float32 the product runs in NumPy: the same BLAS product (the same bits: checked in
    tests/synthesis/test_object_policy_grid.py) without torch's per-call cost on these small
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


AUTO_OBJECT_SCALE = (0.5, 2.0)
"""The range ``object_scale="auto"`` resolves to on data of varied cell sizes: one objective
step (about 2x) either way, so a model trained on a few fields also meets the cell sizes of the
neighbouring magnifications (judged on DSB 2018 at 4 training images, benchmarks/downstream.md
"Scale jitter without aug")."""


class RandomScale:
    """Resize an object by a factor drawn log-uniformly from ``(lo, hi)`` (one uniform per
    call): bilinear (antialiased when shrinking) for the image, nearest for the labels. What
    ``CompositorConfig(object_scale=...)`` applies before the policy.

    Args:
        scale: a factor > 0, or ``(lo, hi)`` with ``0 < lo <= hi``.
    """

    def __init__(self, scale: float | tuple[float, float]) -> None:
        lo, hi = (scale, scale) if isinstance(scale, (int, float)) else scale
        if not 0 < float(lo) <= float(hi):
            raise IaaaError(f"object_scale: expected a factor > 0 or (lo, hi) with 0 < lo <= hi, got {scale!r}")
        self.lo, self.hi = float(lo), float(hi)

    def __repr__(self) -> str:
        return f"RandomScale(({self.lo}, {self.hi}))"

    def draw(self, generator: torch.Generator) -> float:
        """One call's factor, from one uniform of ``generator``."""
        u = float(torch.rand((), generator=generator, device=generator.device, dtype=torch.float64))
        return math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        s = self.draw(g)
        if s == 1.0:
            return image, labels
        from iaaa.ops.functional import resize_labels  # the op stack loads only when used

        image, size = self.resize_image(image, s)
        return image, resize_labels(labels, size).to(torch.int64)

    @staticmethod
    def resize_image(image: torch.Tensor, s: float) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(image resized by s, its (H, W))``: bilinear, antialiased when shrinking."""
        size = (max(1, round(image.shape[-2] * s)), max(1, round(image.shape[-1] * s)))
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=s < 1)[0], size


class Sequential:
    """Apply per-object policies one after another with the same generator."""

    def __init__(self, policies: Sequence[ObjectPolicy]) -> None:
        self.policies = list(policies)

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        for p in self.policies:
            image, labels = p(image, labels, generator)
        return image, labels

    def __repr__(self) -> str:
        return f"Sequential({self.policies!r})"


class _OpCall:
    """An ``iaaa.ops`` transform instance used as a per-object step: coin with its ``p``, then
    :func:`iaaa.ops.apply_op` with its magnitude and options, canvas expanded."""

    def __init__(self, op: Any) -> None:
        if getattr(op, "value", None) is not None:
            raise IaaaError(f"policy: {type(op).__name__} was built with an explicit {op.param_name}=...; per-object policies take ops by magnitude, write it as ({type(op).__name__!r}, p, magnitude) or wrap it in a callable")
        self.name, self.p, self.magnitude, self.opts = type(op).__name__, op.p, op.magnitude, dict(op.opts)

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        from iaaa.ops import apply_op

        g = generator if generator is not None else torch.Generator().manual_seed(0)
        if float(torch.rand((), generator=g)) < self.p:
            image, labels = apply_op(self.name, image, labels, self.magnitude, generator=g, expand=True, **self.opts)
        return image, labels


def _is_triple(item: Any) -> bool:
    return isinstance(item, (tuple, list)) and len(item) == 3 and isinstance(item[0], str)


def as_object_policy(policy: Any) -> ObjectPolicy:
    """Turn what ``CellCompositor(policy=...)`` accepts into a per-object policy.

    * ``None``: :class:`ObjectAugment` with its defaults.
    * ``"identity"``, ``False`` or an empty list: no change.
    * a list of ``(op name, probability, magnitude)`` triples (or :class:`iaaa.policy.SubPolicy`):
      one :class:`iaaa.policy.Policy`, applied through :func:`iaaa.ops.apply_op` with the canvas
      expanded.
    * a list mixing such triples, ``iaaa.ops`` transform instances and callables: applied in order.
    * any callable ``(image, labels, generator) -> (image, labels)``, e.g. a
      :class:`iaaa.policy.PolicySet` from the search.
    * a ``kornia.augmentation.AugmentationSequential(..., data_keys=["input", "mask"])``:
      wrapped in :class:`~iaaa.synthesis.kornia_policy.KorniaPolicy` (exact labels, randomness
      from the generator), also as an item of a list.
    """
    if policy is None:
        return ObjectAugment()
    if is_kornia_pipeline(policy):
        return KorniaPolicy(policy)
    if policy is False or (isinstance(policy, str) and policy == "identity"):
        return Identity()
    if isinstance(policy, str):
        raise IaaaError(f"policy: unknown name {policy!r}; use None (default), 'identity', a list of (op, p, magnitude) triples or a callable")
    if isinstance(policy, (list, tuple)):
        if len(policy) == 0:
            return Identity()
        from iaaa.policy import Policy, SubPolicy

        if all(_is_triple(p) or isinstance(p, SubPolicy) for p in policy):
            return Policy(list(policy), expand=True)
        steps: list[ObjectPolicy] = []
        for i, item in enumerate(policy):
            if _is_triple(item) or isinstance(item, SubPolicy):
                steps.append(Policy([item], expand=True))
            elif _is_op(item):
                steps.append(_OpCall(item))
            elif is_kornia_pipeline(item):
                steps.append(KorniaPolicy(item))
            elif callable(item):
                steps.append(item)
            else:
                raise TypeError(f"policy[{i}]: expected an (op, probability, magnitude) triple, an iaaa.ops transform or a callable, got {type(item).__name__}")
        return Sequential(steps)
    if _is_op(policy):
        return _OpCall(policy)
    if callable(policy):
        return policy
    raise TypeError(f"policy: expected None, a list of (op, p, magnitude) triples or a callable (image, labels, generator) -> (image, labels), got {type(policy).__name__}")


def _is_op(item: Any) -> bool:
    try:
        from iaaa.ops import Op
    except ImportError:  # the op stack is optional for the default policy
        return False
    return isinstance(item, Op)
