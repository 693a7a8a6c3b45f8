"""Geometric kernels: one warp description, applied identically to images, label maps, boxes
and keypoints so masks can never drift from their image.

A :class:`Warp` says, for every output pixel centre ``(x, y)``, which input position it reads
(an affine map per sample, output -> input, in pixel-index coordinates where pixel ``i`` has its
centre at ``i``). Builders (:func:`rotate_warp`, :func:`shear_warp`, ...) make warps from op
parameters; :func:`warp_image`, :func:`warp_labels`, :func:`warp_boxes` and :func:`warp_points`
apply them. Images use bilinear (or nearest) sampling; label maps always use nearest, done as
an integer gather so label values of any size move exactly and nothing is ever invented.

Warps whose source positions are whole pixels (flips, 90-degree turns, integer shifts,
identity) take an exact separable-gather path: no float round trip, bit-identical output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from ._common import as_param, check_image, check_labels, from_work, to_work, ParamLike

__all__ = [
    "Warp",
    "flip_warp",
    "rotate_warp",
    "shear_warp",
    "scale_warp",
    "translate_warp",
    "crop_warp",
    "warp_image",
    "warp_labels",
    "warp_boxes",
    "warp_points",
]

_EPS = 1e-9


@dataclass(frozen=True)
class Warp:
    """An affine resampling of ``n`` samples (``n == 1`` broadcasts over any batch).

    Attributes:
        matrix: ``(n, 2, 3)`` float64 CPU tensor mapping output pixel centres ``(x, y, 1)`` to
            input pixel positions.
        in_size: ``(H, W)`` of the input.
        out_size: ``(H', W')`` of the output canvas.
    """

    matrix: torch.Tensor
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    _plan: list = field(default_factory=list, repr=False, compare=False)

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])

    def inverse_matrix(self) -> torch.Tensor:
        """``(n, 2, 3)`` map from input pixel positions to output positions."""
        m = self.matrix
        a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
        det = a * d - b * c
        inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det.view(-1, 1, 1)
        t = -(inv @ m[:, :, 2:]).squeeze(-1)
        return torch.cat([inv, t.unsqueeze(-1)], -1)

    def separable(self) -> tuple[bool, torch.Tensor, torch.Tensor] | None:
        """``(transposed, rows, cols)`` when every output pixel reads a whole input pixel through
        a flip / transpose / integer shift, else ``None``. Computed once and cached."""
        if not self._plan:
            self._plan.append(_separable_plan(self))
        return self._plan[0]


def _separable_plan(w: Warp) -> tuple[bool, torch.Tensor, torch.Tensor] | None:
    m = w.matrix
    r = m.round()
    if float((m - r).abs().max()) > _EPS:
        return None
    a, b, c, d = r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1]
    ho, wo = w.out_size
    xs = torch.arange(wo, dtype=torch.float64)
    ys = torch.arange(ho, dtype=torch.float64)
    if bool(((b == 0) & (c == 0) & (a.abs() == 1) & (d.abs() == 1)).all()):
        rows = d.view(-1, 1) * ys + r[:, 1, 2].view(-1, 1)  # input row of each output row
        cols = a.view(-1, 1) * xs + r[:, 0, 2].view(-1, 1)
        return False, rows.long(), cols.long()
    if bool(((a == 0) & (d == 0) & (b.abs() == 1) & (c.abs() == 1)).all()):
        # x_in depends only on y_out and y_in only on x_out: gather the transposed input.
        rows = b.view(-1, 1) * ys + r[:, 0, 2].view(-1, 1)  # column of the input = row of its transpose
        cols = c.view(-1, 1) * xs + r[:, 1, 2].view(-1, 1)
        return True, rows.long(), cols.long()
    return None


# ----------------------------------------------------------------------------- builders


def _vec(value: ParamLike, what: str) -> torch.Tensor:
    t = value.detach().to("cpu", torch.float64).reshape(-1) if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if t.numel() == 0:
        raise ValueError(f"{what}: needs at least one value")
    return as_param(t, t.numel(), what)


def _lin(rows: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    return torch.stack([torch.stack(list(r), -1) for r in rows], -2)


def _centered(linear: torch.Tensor, in_size: tuple[int, int], expand: bool) -> Warp:
    """Warp for a forward linear map ``linear (n, 2, 2)`` about the image centre.

    ``expand`` grows (or shrinks) each sample's canvas to the transformed image rectangle; in a
    batch every sample gets the largest canvas and sits at a whole-pixel offset in it, so its
    content is exactly what a single-sample call would give, padded."""
    h, w = in_size
    n = linear.shape[0]
    if expand:
        half = torch.tensor([[w / 2, h / 2], [w / 2, -h / 2]], dtype=torch.float64)  # two corner vectors
        ext = (linear.unsqueeze(1) @ half.view(1, 2, 2, 1)).squeeze(-1).abs().amax(1) * 2  # (n, 2) = (W', H')
        sizes = torch.ceil(ext - 1e-6).clamp_(min=1)
        wo, ho = int(sizes[:, 0].max()), int(sizes[:, 1].max())
        offset = torch.stack([(wo - sizes[:, 0]) // 2, (ho - sizes[:, 1]) // 2], -1)
        c_out = (sizes - 1) / 2 + offset
    else:
        ho, wo = h, w
        c_out = torch.tensor([[(w - 1) / 2, (h - 1) / 2]], dtype=torch.float64).expand(n, 2)
    c_in = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64)
    a, b, c, d = linear[:, 0, 0], linear[:, 0, 1], linear[:, 1, 0], linear[:, 1, 1]
    inv = _lin([[d, -b], [-c, a]]) / (a * d - b * c).view(-1, 1, 1)
    t = c_in - (inv @ c_out.unsqueeze(-1)).squeeze(-1)
    return Warp(torch.cat([inv, t.unsqueeze(-1)], -1), (h, w), (ho, wo))


def flip_warp(size: tuple[int, int], horizontal: bool) -> Warp:
    """Mirror left-right (``horizontal``) or top-bottom."""
    h, w = size
    m = [[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]] if horizontal else [[1.0, 0.0, 0.0], [0.0, -1.0, h - 1.0]]
    return Warp(torch.tensor([m], dtype=torch.float64), (h, w), (h, w))


def rotate_warp(size: tuple[int, int], angle: ParamLike, expand: bool = False) -> Warp:
    """Rotate counter-clockwise by ``angle`` degrees (per sample) about the image centre, as
    torchvision does. Multiples of 90 degrees are exact."""
    ang = _vec(angle, "angle")
    rad = torch.deg2rad(ang)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # cos(90 deg) is 6e-17 in floating point; snap so quarter turns hit whole pixels exactly.
    cos = torch.where((cos - cos.round()).abs() < 1e-12, cos.round(), cos)
    sin = torch.where((sin - sin.round()).abs() < 1e-12, sin.round(), sin)
    # Image y points down, so a counter-clockwise turn on screen is (x, y) -> (x cos + y sin, -x sin + y cos).
    return _centered(_lin([[cos, sin], [-sin, cos]]), size, expand)


def shear_warp(size: tuple[int, int], shear: ParamLike, axis: str = "x", expand: bool = False) -> Warp:
    """Shear about the centre: ``x' = x + s * y`` (``axis="x"``) or ``y' = y + s * x``."""
    s = _vec(shear, "shear")
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    if axis == "x":
        lin = _lin([[one, s], [zero, one]])
    elif axis == "y":
        lin = _lin([[one, zero], [s, one]])
    else:
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    return _centered(lin, size, expand)


def scale_warp(size: tuple[int, int], scale: ParamLike, expand: bool = False) -> Warp:
    """Zoom by ``scale`` about the centre. With ``expand`` the canvas becomes the scaled size
    (``round(scale * H)``, ``round(scale * W)``), i.e. a true resize; the exact size ratio is used
    so the content fills the new canvas edge to edge, as ``F.interpolate`` does."""
    s = _vec(scale, "scale")
    if bool((s <= 0).any()):
        raise ValueError(f"scale: must be > 0, got {s.tolist()}")
    h, w = size
    if not expand:
        z = torch.zeros_like(s)
        return _centered(_lin([[s, z], [z, s]]), size, False)
    wo_i = (s * w).round().clamp(min=1)
    ho_i = (s * h).round().clamp(min=1)
    wo, ho = int(wo_i.max()), int(ho_i.max())
    sx, sy = wo_i / w, ho_i / h
    # out -> in: x_in = (x_out - off + 0.5) / sx - 0.5, the align_corners=False convention.
    off_x, off_y = (wo - wo_i) // 2, (ho - ho_i) // 2
    z = torch.zeros_like(s)
    m = _lin([[1 / sx, z, (0.5 - off_x) / sx - 0.5], [z, 1 / sy, (0.5 - off_y) / sy - 0.5]])
    return Warp(m, (h, w), (ho, wo))


def translate_warp(size: tuple[int, int], pixels: ParamLike, axis: str = "x", expand: bool = False) -> Warp:
    """Shift by whole pixels (rounded) along ``axis``. With ``expand`` the canvas grows by the
    shift so nothing leaves it: the content moves away from the new empty margin."""
    t = _vec(pixels, "pixels").round()
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    h, w = size
    one, z = torch.ones_like(t), torch.zeros_like(t)
    if expand:
        grow = int(t.abs().max())
        ho, wo = (h, w + grow) if axis == "x" else (h + grow, w)
        # Each sample's own canvas is size + |t|; centre it in the common one at a whole pixel.
        off = (grow - t.abs()) // 2
        shift = -(t.clamp(min=0) + off)
    else:
        ho, wo = h, w
        shift = -t
    if axis == "x":
        m = _lin([[one, z, shift], [z, one, z]])
    else:
        m = _lin([[one, z, z], [z, one, shift]])
    return Warp(m, (h, w), (ho, wo))


def crop_warp(size: tuple[int, int], box: ParamLike) -> Warp:
    """Resample the window ``box = (x0, y0, x1, y1)`` (edge coordinates, one row per sample)
    onto the full canvas: a zoom-in to a random region (CropBilinear)."""
    b = torch.as_tensor(box, dtype=torch.float64).reshape(-1, 4)
    h, w = size
    x0, y0, x1, y1 = b.unbind(-1)
    if bool(((x1 <= x0) | (y1 <= y0)).any()):
        raise ValueError(f"box: windows must have positive size, got {b.tolist()}")
    sx, sy = (x1 - x0) / w, (y1 - y0) / h
    z = torch.zeros_like(sx)
    m = _lin([[sx, z, x0 + 0.5 * sx - 0.5], [z, sy, y0 + 0.5 * sy - 0.5]])
    return Warp(m, (h, w), (h, w))


# ----------------------------------------------------------------------------- application


def _check_batch(n_in: int, warp: Warp, what: str) -> None:
    if warp.n not in (1, n_in):
        raise ValueError(f"{what}: batch of {n_in} but the warp has {warp.n} samples")


def _gather_separable(x: torch.Tensor, plan: tuple[bool, torch.Tensor, torch.Tensor], fill: float) -> torch.Tensor:
    transposed, rows, cols = plan
    if transposed:
        x = x.transpose(-1, -2)
    n, c, hs, ws = x.shape
    dev = x.device
    ok_r, ok_c = (rows >= 0) & (rows < hs), (cols >= 0) & (cols < ws)
    r, cc = rows.clamp(0, hs - 1).to(dev), cols.clamp(0, ws - 1).to(dev)
    if rows.shape[0] == 1:
        out = x.index_select(-2, r[0]).index_select(-1, cc[0])
    else:
        ho, wo = r.shape[1], cc.shape[1]
        out = x.gather(-2, r.view(-1, 1, ho, 1).expand(n, c, ho, ws))
        out = out.gather(-1, cc.view(-1, 1, 1, wo).expand(n, c, ho, wo))
    if not (bool(ok_r.all()) and bool(ok_c.all())):
        bad = ~(ok_r.unsqueeze(-1) & ok_c.unsqueeze(-2))
        out = out.masked_fill(bad.unsqueeze(1).to(dev), fill)
    return out


def _source_coords(warp: Warp, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Input x and y positions ``(n, H', W')`` float32 read by each output pixel."""
    ho, wo = warp.out_size
    m = warp.matrix.to(device=device, dtype=torch.float32)
    xs = torch.arange(wo, device=device, dtype=torch.float32).view(1, 1, wo)
    ys = torch.arange(ho, device=device, dtype=torch.float32).view(1, ho, 1)
    p = m.view(-1, 2, 3, 1, 1)
    sx = p[:, 0, 0] * xs + p[:, 0, 1] * ys + p[:, 0, 2]
    sy = p[:, 1, 0] * xs + p[:, 1, 1] * ys + p[:, 1, 2]
    return sx, sy


def _inside(sx: torch.Tensor, sy: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest source pixel of each output pixel and whether it lies in the input.

    The same test decides image and label support, so an image pixel is filled exactly where
    its label is 0 because it came from outside."""
    ix, iy = sx.round().long(), sy.round().long()  # round half to even, as grid_sample does
    ok = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    return ix, iy, ok


def _nearest(x: torch.Tensor, warp: Warp, fill: float) -> torch.Tensor:
    if x.dtype == torch.uint16:
        # Few kernels support uint16; int16 has the same bits and gathering only moves bits.
        f = int(round(fill))
        return _nearest(x.view(torch.int16), warp, f - 65536 if f >= 32768 else f).view(torch.uint16)
    plan = warp.separable()
    if plan is not None:
        return _gather_separable(x, plan, fill)
    n, c, h, w = x.shape
    ho, wo = warp.out_size
    ix, iy, ok = _inside(*_source_coords(warp, x.device), h, w)
    flat = (iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)).view(-1, 1, ho * wo)
    out = x.reshape(n, c, h * w).gather(-1, flat.expand(n, c, ho * wo)).view(n, c, ho, wo)
    return out.masked_fill(~ok.unsqueeze(1), fill)


def warp_image(image: torch.Tensor, warp: Warp, interpolation: str = "bilinear", fill: float = 0.0) -> torch.Tensor:
    """Resample images ``(B, C, H, W)`` through ``warp``. Output dtype = input dtype.

    A pixel inside the input's extent (within half a pixel of an edge pixel centre) reads the
    image, clamped at the border rather than blended with zeros, so upscaling keeps edge
    intensities; a pixel outside gets ``fill`` (raw pixel value), exactly where the label map
    gets background."""
    check_image(image)
    _check_batch(image.shape[0], warp, "image")
    if tuple(image.shape[-2:]) != warp.in_size:
        raise ValueError(f"image: size {tuple(image.shape[-2:])} does not match the warp's input size {warp.in_size}")
    if interpolation == "nearest" or warp.separable() is not None:
        return _nearest(image, warp, fill)
    if interpolation != "bilinear":
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    n = image.shape[0]
    h, w = warp.in_size
    sx, sy = _source_coords(warp, image.device)
    grid = torch.stack([sx * (2.0 / w) + (1.0 / w - 1.0), sy * (2.0 / h) + (1.0 / h - 1.0)], -1)
    if grid.shape[0] != n:
        grid = grid.expand(n, -1, -1, -1)
    out = F.grid_sample(to_work(image), grid, mode="bilinear", padding_mode="border", align_corners=False)
    out.masked_fill_(~_inside(sx, sy, h, w)[2].unsqueeze(1), fill)
    return from_work(out, image.dtype, clamp=False)


def warp_labels(labels: torch.Tensor, warp: Warp) -> torch.Tensor:
    """Move label maps ``(B, H, W)`` (any integer dtype, kept) through ``warp`` with nearest
    sampling; pixels from outside the input become 0 (background)."""
    check_labels(labels, warp.in_size)
    _check_batch(labels.shape[0], warp, "labels")
    return _nearest(labels.unsqueeze(1), warp, 0).squeeze(1)


def warp_points(points: torch.Tensor, warp: Warp) -> torch.Tensor:
    """Move points ``(..., 2)`` given as ``(x, y)`` pixel-centre positions (torchvision's
    KeyPoints convention) through a single-sample ``warp``."""
    if warp.n != 1:
        raise ValueError(f"points: need a single-sample warp, got {warp.n} samples")
    fwd = warp.inverse_matrix()[0].to(points.device, torch.float64)
    p = points.to(torch.float64)
    out = p @ fwd[:, :2].T + fwd[:, 2]
    return out.to(points.dtype if points.dtype.is_floating_point else torch.float32)


def warp_boxes(boxes: torch.Tensor, warp: Warp) -> torch.Tensor:
    """Move XYXY boxes ``(N, 4)`` (edge coordinates, torchvision's convention) through a
    single-sample ``warp``: the box of the four moved corners, clamped to the new canvas. A box
    that leaves the canvas collapses to zero area (drop it with ``v2.SanitizeBoundingBoxes``)."""
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes: expected (N, 4) XYXY, got shape {tuple(boxes.shape)}")
    b = boxes.to(torch.float64)
    # Edge coordinates are pixel-centre coordinates shifted by half a pixel.
    corners = torch.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1) - 0.5
    moved = warp_points(corners, warp) + 0.5
    ho, wo = warp.out_size
    lo, hi = moved.amin(1), moved.amax(1)
    out = torch.cat([lo, hi], -1)
    out[:, 0::2] = out[:, 0::2].clamp(0, wo)
    out[:, 1::2] = out[:, 1::2].clamp(0, ho)
    return out.to(boxes.dtype if boxes.dtype.is_floating_point else torch.float32)
