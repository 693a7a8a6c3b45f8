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

import functools

import numpy as np
import torch
import torch.nn.functional as F

from ._common import ParamLike, as_param, bound, check_image, check_labels, from_work, to_work
from ._warp import Warp, sampling_grid, nearest_axes, nearest_tables, whole_pixel
from iaaa.errors import IaaaError
from iaaa.filters import antialias_sigma, gaussian_blur_batch
from iaaa.threads import serial_kernel

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
    "resize_warp",
    "resized_labels_on_host",
    "resize_label_axes",
    "antialias_source",
]

# ----------------------------------------------------------------------------- builders


def _vec(value: ParamLike, what: str) -> np.ndarray:
    return as_param(value, None, what)


def _lin(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Stack per-sample 2x2 matrices ``[[a, b], [c, d]]`` -> ``(n, 2, 2)``."""
    return np.stack([np.stack([a, b], -1), np.stack([c, d], -1)], -2)


def _centered(linear: np.ndarray, in_size: tuple[int, int], expand: bool) -> Warp:
    """Warp for a forward linear map ``linear (n, 2, 2)`` about the image centre.

    ``expand`` grows (or shrinks) each sample's canvas to the transformed image rectangle; in a
    batch every sample gets the largest canvas and sits at a whole-pixel offset in it, so its
    content is exactly what a single-sample call would give, padded."""
    h, w = in_size
    n = linear.shape[0]
    if expand:
        # Extent of the moved image rectangle (pixel edges), from two of its corner vectors.
        corners = np.array([[w / 2, h / 2], [w / 2, -h / 2]])
        ext = np.abs(linear @ corners.T).max(-1) * 2  # (n, 2) = (W', H')
        sizes = np.maximum(np.ceil(ext - 1e-6), 1)
        wo, ho = int(sizes[:, 0].max()), int(sizes[:, 1].max())
        c_out = (sizes - 1) / 2
        offset = (np.array([wo, ho]) - sizes) // 2
    else:
        ho, wo = h, w
        c_out = np.broadcast_to(np.array([(w - 1) / 2, (h - 1) / 2]), (n, 2))
        offset = None
    inv = np.linalg.inv(linear)
    t = np.array([(w - 1) / 2, (h - 1) / 2]) - (inv @ c_out[..., None])[..., 0]
    return Warp(np.concatenate([inv, t[..., None]], -1), (h, w), (ho, wo), _offset(offset))


def _offset(offset: np.ndarray | None) -> np.ndarray | None:
    return None if offset is None or not offset.any() else offset.astype(np.float64)


def flip_warp(size: tuple[int, int], horizontal: bool) -> Warp:
    """Mirror left-right (``horizontal``) or top-bottom."""
    h, w = size
    m = [[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]] if horizontal else [[1.0, 0.0, 0.0], [0.0, -1.0, h - 1.0]]
    warp = Warp(np.array([m]), (h, w), (h, w))
    if type(h) is int and type(w) is int:
        # The sampling plan Warp.separable() would derive from this matrix, known up front.
        warp.known_plan(("slice", False, (1, 0), (-1, w - 1)) if horizontal else ("slice", False, (-1, h - 1), (1, 0)))
    return warp


def rotate_warp(size: tuple[int, int], angle: ParamLike, expand: bool = False) -> Warp:
    """Rotate counter-clockwise by ``angle`` degrees (per sample) about the image centre, as
    torchvision does. Multiples of 90 degrees are exact."""
    rad = np.deg2rad(_vec(angle, "angle"))
    cos, sin = np.cos(rad), np.sin(rad)
    # cos(90 deg) is 6e-17 in floating point; snap so quarter turns hit whole pixels exactly.
    cos = np.where(np.abs(cos - np.round(cos)) < 1e-12, np.round(cos), cos)
    sin = np.where(np.abs(sin - np.round(sin)) < 1e-12, np.round(sin), sin)
    # Image y points down, so a counter-clockwise turn on screen is (x, y) -> (x cos + y sin, -x sin + y cos).
    return _centered(_lin(cos, sin, -sin, cos), size, expand)


def shear_warp(size: tuple[int, int], shear: ParamLike, axis: str = "x", expand: bool = False) -> Warp:
    """Shear about the centre: ``x' = x + s * y`` (``axis="x"``) or ``y' = y + s * x``."""
    s = _vec(shear, "shear")
    one, zero = np.ones_like(s), np.zeros_like(s)
    if axis == "x":
        lin = _lin(one, s, zero, one)
    elif axis == "y":
        lin = _lin(one, zero, s, one)
    else:
        raise IaaaError(f"axis must be 'x' or 'y', got {axis!r}")
    return _centered(lin, size, expand)


def scale_warp(size: tuple[int, int], scale: ParamLike, expand: bool = False) -> Warp:
    """Zoom by ``scale`` about the centre. With ``expand`` the canvas becomes the scaled size
    (``round(scale * H)``, ``round(scale * W)``), i.e. a true resize; the exact size ratio is used
    so the content fills the new canvas edge to edge, as ``F.interpolate`` does."""
    s = _vec(scale, "scale")
    if (s <= 0).any():
        raise IaaaError(f"scale: must be > 0, got {s.tolist()}")
    h, w = size
    z = np.zeros_like(s)
    if not expand:
        return _centered(_lin(s, z, z, s), size, False)
    wo_i = np.maximum(np.round(s * w), 1)
    ho_i = np.maximum(np.round(s * h), 1)
    wo, ho = int(wo_i.max()), int(ho_i.max())
    sx, sy = wo_i / w, ho_i / h
    # out -> in: x_in = (x_out + 0.5) / sx - 0.5, the align_corners=False convention.
    m = np.stack([np.stack([1 / sx, z, 0.5 / sx - 0.5], -1), np.stack([z, 1 / sy, 0.5 / sy - 0.5], -1)], -2)
    return Warp(m, (h, w), (ho, wo), _offset(np.stack([(wo - wo_i) // 2, (ho - ho_i) // 2], -1)))


def translate_warp(size: tuple[int, int], pixels: ParamLike, axis: str = "x", expand: bool = False) -> Warp:
    """Shift by whole pixels (rounded half to even) along ``axis``. With ``expand`` the canvas
    grows by the shift so nothing leaves it: the content moves away from the new empty margin."""
    t = np.round(_vec(pixels, "pixels"))
    if axis not in ("x", "y"):
        raise IaaaError(f"axis must be 'x' or 'y', got {axis!r}")
    h, w = size
    one, z = np.ones_like(t), np.zeros_like(t)
    if expand:
        grow = int(np.abs(t).max())
        ho, wo = (h, w + grow) if axis == "x" else (h + grow, w)
        # Each sample's own canvas is size + |t|; centre it in the common one at a whole pixel.
        shift, off = -np.maximum(t, 0), (grow - np.abs(t)) // 2
        offset = np.stack([off, z] if axis == "x" else [z, off], -1)
    else:
        ho, wo = h, w
        shift, offset = -t, None
    rows = [[one, z, shift], [z, one, z]] if axis == "x" else [[one, z, z], [z, one, shift]]
    return Warp(np.stack([np.stack(r, -1) for r in rows], -2), (h, w), (ho, wo), _offset(offset))


def resize_warp(size: tuple[int, int], out_size: tuple[int, int]) -> Warp:
    """Resample an ``(H, W)`` input onto an ``out_size`` canvas edge to edge (pixel centres
    aligned as ``F.interpolate(align_corners=False)`` aligns them)."""
    (h, w), (ho, wo) = size, out_size
    if min(h, w, ho, wo) < 1:
        raise IaaaError(f"out_size: expected positive sizes, got {size} -> {out_size}")
    sx, sy = w / wo, h / ho
    return Warp(np.array([[[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]]]), (h, w), (ho, wo))


def crop_warp(size: tuple[int, int], box: ParamLike) -> Warp:
    """Resample the window ``box = (x0, y0, x1, y1)`` (edge coordinates, one row per sample)
    onto the full canvas: a zoom-in to a random region (CropBilinear)."""
    b = (box.detach().cpu().double().numpy() if isinstance(box, torch.Tensor) else np.asarray(box, dtype=np.float64)).reshape(-1, 4)
    h, w = size
    x0, y0, x1, y1 = b.T
    if ((x1 <= x0) | (y1 <= y0)).any():
        raise IaaaError(f"box: windows must have positive size, got {b.tolist()}")
    sx, sy = (x1 - x0) / w, (y1 - y0) / h
    z = np.zeros_like(sx)
    m = np.stack([np.stack([sx, z, x0 + 0.5 * sx - 0.5], -1), np.stack([z, sy, y0 + 0.5 * sy - 0.5], -1)], -2)
    return Warp(m, (h, w), (h, w))


# ----------------------------------------------------------------------------- application


@serial_kernel
def antialias_source(image: torch.Tensor, scale: np.ndarray) -> torch.Tensor | None:
    """Float working copy of ``image`` with each downscaled sample Gaussian-smoothed by
    :func:`iaaa.filters.antialias_sigma` before resampling, or ``None`` if none needs it."""
    sigma = antialias_sigma(np.asarray(scale, dtype=np.float64))
    shrink = sigma > 0
    if not shrink.any():
        return None
    x = to_work(image)
    if shrink.all() or scale.size == 1:
        return gaussian_blur_batch(x, np.broadcast_to(sigma, (image.shape[0],)).copy() if scale.size == 1 else sigma)
    # Only the shrinking samples pay for the blur.
    sel = torch.from_numpy(np.flatnonzero(shrink)).to(image.device)
    return x.index_copy(0, sel, gaussian_blur_batch(x.index_select(0, sel), sigma[shrink]))



def _check_batch(n_in: int, warp: Warp, what: str) -> None:
    if warp.n not in (1, n_in):
        raise IaaaError(f"{what}: batch of {n_in} but the warp has {warp.n} samples")


def _axis(step: int, start: int, n_out: int, n_in: int) -> tuple[int, int, int, int] | None:
    """Output range ``[lo, hi)`` whose source ``step * i + start`` lies in ``[0, n_in)``, and
    that source range ``[s0, s1)`` (ascending)."""
    if step == 1:
        lo, hi = max(0, -start), min(n_out, n_in - start)
    else:
        lo, hi = max(0, start - n_in + 1), min(n_out, start + 1)
    if hi <= lo:
        return None
    a, b = step * lo + start, step * (hi - 1) + start
    return lo, hi, min(a, b), max(a, b) + 1


def _slice_warp(x: torch.Tensor, plan: tuple, out_size: tuple[int, int], fill: float) -> torch.Tensor:
    """A single-sample whole-pixel warp as a slice (+ flip) of the input: no index tensors."""
    _, transposed, (dr, fr), (dc, fc) = plan
    if transposed:
        x = x.transpose(-1, -2)
    lead, (hs, ws) = x.shape[:-2], x.shape[-2:]
    ho, wo = out_size
    ra, ca = _axis(dr, fr, ho, hs), _axis(dc, fc, wo, ws)
    if ra is None or ca is None:
        return x.new_full((*lead, ho, wo), fill)
    # The whole input (flips, quarter turns): no slice to take.
    piece = x if (ra[2], ra[3], ca[2], ca[3]) == (0, hs, 0, ws) else x[..., ra[2]:ra[3], ca[2]:ca[3]]
    dims = (-2, -1) if dr == -1 and dc == -1 else (-2,) if dr == -1 else (-1,) if dc == -1 else ()
    if dims:
        piece = piece.flip(dims)
    if (ra[0], ra[1], ca[0], ca[1]) == (0, ho, 0, wo):
        return piece.contiguous() if dims or transposed else piece.clone()
    out = x.new_full((*lead, ho, wo), fill)
    out[..., ra[0]:ra[1], ca[0]:ca[1]] = piece
    return out


def _gather_separable(x: torch.Tensor, warp: Warp, fill: float) -> torch.Tensor:
    plan = warp.separable()
    if plan[0] == "slice":
        return _slice_warp(x, plan, warp.out_size, fill)
    return _gather_rows_cols(x, _line_tables(warp, "sep", plan[1], plan[2], plan[3], x.device), fill)


def _line_tables(warp: Warp, name: str, transposed: bool, rows: np.ndarray, cols: np.ndarray, device: torch.device) -> tuple:
    """``(transposed, rows, cols, outside)`` on ``device`` for a gather by source rows ``rows``
    ``(n, H')`` and columns ``cols`` ``(n, W')`` of the (transposed) input: indices clipped into
    it, ``outside`` ``(n, 1, H', W')`` where a row or column leaves it (``None``: nowhere).
    Cached on the warp under ``name``."""
    key = (name, str(device))
    if key not in warp._cache:
        hs, ws = warp.in_size[::-1] if transposed else warp.in_size
        ok_r, ok_c = (rows >= 0) & (rows < hs), (cols >= 0) & (cols < ws)
        bad = None if (ok_r.all() and ok_c.all()) else torch.from_numpy(~(ok_r[:, :, None] & ok_c[:, None, :])).unsqueeze(1).to(device)
        r = torch.from_numpy(np.clip(rows, 0, hs - 1)).to(device)
        c = torch.from_numpy(np.clip(cols, 0, ws - 1)).to(device)
        warp._cache[key] = (transposed, r, c, bad)
    return warp._cache[key]


# Output elements up to which a gather by rows and columns runs in NumPy on the CPU (measured:
# 30 vs 83 us for a 247x239 int64 label map; beyond a few 1e5 elements torch's gathers win).
_HOST_GATHER_MAX = 1 << 16


def _gather_rows_cols(x: torch.Tensor, tables: tuple, fill: float) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` read through :func:`_line_tables` by two gathers; out-of-range rows
    or columns give ``fill``."""
    transposed, r, cc, bad = tables
    if transposed:
        x = x.transpose(-1, -2)
    n, c, hs, ws = x.shape
    ho, wo = r.shape[1], cc.shape[1]
    if r.shape[0] == 1 and n * c * ho * wo <= _HOST_GATHER_MAX and x.device.type == "cpu" and not x.requires_grad and x.dtype != torch.uint16:
        # One table for the batch and a small output (a cell object's labels): NumPy's fancy
        # indexing costs a third of two expanded torch gathers here; same elements.
        out = torch.from_numpy(x.numpy()[:, :, r[0].numpy()][:, :, :, cc[0].numpy()])
    else:
        out = x.gather(-2, r.view(-1, 1, ho, 1).expand(n, c, ho, ws))
        out = out.gather(-1, cc.view(-1, 1, 1, wo).expand(n, c, ho, wo))
    if bad is not None:
        out.masked_fill_(bad, fill)
    return out


@functools.lru_cache(maxsize=1024)
def resize_label_axes(size: tuple[int, int], out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The nearest source row of each output row ``(H',)`` and column of each output column
    ``(W',)`` (int64, non-decreasing) of :func:`resize_warp`: :func:`nearest_axes` of that warp,
    so ``labels[rows][:, cols]`` is :func:`resize_labels`'s map. ``None`` where a row or column
    would read outside the input (never, for pixel-centre-aligned resizes, but the general path
    handles it). Cached for callers that resize to the same sizes again (a scaled object's sizes
    rarely repeat: a miss costs ~25 us); do not modify the arrays."""
    rows, cols = nearest_axes(resize_warp(size, out_size))
    h, w = size
    if rows.min() < 0 or rows.max() >= h or cols.min() < 0 or cols.max() >= w:
        return None
    rows, cols = rows[0], cols[0]
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def resized_labels_on_host(labels: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor | None:
    """``warp_labels(labels, resize_warp(...))`` of a small CPU label batch ``(B, H, W)`` by NumPy
    fancy indexing with cached row / column tables: the same elements without a warp, its
    tables and checks per call (a cell object's labels in the compositor's ``RandomScale``:
    ~20 vs ~90 us). ``None`` where the general path applies (outputs beyond
    ``_HOST_GATHER_MAX`` elements, other devices, uint16)."""
    n = labels.shape[0]
    ho, wo = out_size
    if labels.device.type != "cpu" or labels.dtype == torch.uint16 or n * ho * wo > _HOST_GATHER_MAX:
        return None
    check_labels(labels)
    axes = resize_label_axes(tuple(labels.shape[-2:]), (ho, wo))
    if axes is None:
        return None
    rows, cols = axes
    return torch.from_numpy(labels.numpy()[:, rows][:, :, cols])


def _outside(warp: Warp, device: torch.device) -> torch.Tensor | None:
    """``(n, 1, H', W')`` bool: the output pixels whose nearest source lies outside the input
    (where :func:`_nearest` gives the fill); ``None`` where there are none."""
    axes = nearest_axes(warp)
    if axes is not None:
        return _line_tables(warp, "axes", False, axes[0], axes[1], device)[3]
    ok = nearest_tables(warp, device)[1]
    return None if ok is None else ~ok.unsqueeze(1)


def _nearest(x: torch.Tensor, warp: Warp, fill: float) -> torch.Tensor:
    if x.dtype == torch.uint16:
        # Few kernels support uint16; int16 has the same bits and gathering only moves bits.
        f = int(round(fill))
        return _nearest(x.view(torch.int16), warp, f - 65536 if f >= 32768 else f).view(torch.uint16)
    if warp.separable() is not None:
        return _gather_separable(x, warp, fill)
    axes = nearest_axes(warp)
    if axes is not None:
        # Scale and shift only (Resize, RandomScale's labels): one source row per output row
        # and one column per output column, so two 1-D gathers replace the per-pixel table.
        return _gather_rows_cols(x, _line_tables(warp, "axes", False, axes[0], axes[1], x.device), fill)
    n, c, h, w = x.shape
    ho, wo = warp.out_size
    flat, ok = nearest_tables(warp, x.device)
    out = x.reshape(n, c, h * w).gather(-1, flat.view(-1, 1, ho * wo).expand(n, c, ho * wo)).view(n, c, ho, wo)
    return out if ok is None else out.masked_fill_(~ok.unsqueeze(1), fill)


@serial_kernel
def warp_image(image: torch.Tensor, warp: Warp, interpolation: str = "bilinear", fill: float = 0.0, source: torch.Tensor | None = None) -> torch.Tensor:
    """Resample images ``(B, C, H, W)`` through ``warp``. Output dtype = input dtype.

    A pixel inside the input's extent (within half a pixel of an edge pixel centre) reads the
    image, clamped at the border rather than blended with zeros, so upscaling keeps edge
    intensities; a pixel outside gets ``fill`` (raw pixel value), exactly where the label map
    gets background. Warps onto whole pixels (flips, quarter turns, integer shifts) are exact
    gathers whatever the interpolation. ``source``: a float, raw-scale version of ``image`` to
    sample bilinearly instead (e.g. pre-filtered), so it is rounded only once."""
    check_image(image)
    _check_batch(image.shape[0], warp, "image")
    if tuple(image.shape[-2:]) != warp.in_size:
        raise IaaaError(f"image: size {tuple(image.shape[-2:])} does not match the warp's input size {warp.in_size}")
    if interpolation == "nearest" or warp.separable() is not None:
        return _nearest(image, warp, fill)
    if interpolation != "bilinear":
        raise IaaaError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    n = image.shape[0]
    grid = sampling_grid(warp, image.device)
    if grid.shape[0] != n:
        grid = grid.expand(n, -1, -1, -1)
    x = to_work(image) if source is None else source
    out = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    outside = None if warp.inside() else _outside(warp, image.device)
    if outside is not None:
        out.masked_fill_(outside, fill)
    # Bilinear weights are convex: only a fill outside the range can leave it.
    out = from_work(out, image.dtype, clamp=False, saturate=not 0.0 <= fill <= bound(image.dtype))
    whole = whole_pixel(warp.matrix) if warp.n > 1 else None
    if whole is not None and whole.any():
        # grid_sample is off by float rounding even at whole-pixel positions; give those samples
        # the exact path a single-sample call takes, so a batch equals its samples one by one.
        sel = torch.from_numpy(np.flatnonzero(whole)).to(image.device)
        sub = Warp(warp.matrix[whole], warp.in_size, warp.out_size, None if warp.offset is None else warp.offset[whole])
        exact = _nearest(image.index_select(0, sel), sub, fill)
        if out.dtype == torch.uint16:  # no uint16 index_copy; int16 has the same bits
            out.view(torch.int16).index_copy_(0, sel, exact.view(torch.int16))
        else:
            out.index_copy_(0, sel, exact)
    return out


@serial_kernel
def warp_labels(labels: torch.Tensor, warp: Warp) -> torch.Tensor:
    """Move label maps ``(B, H, W)`` (any integer dtype, kept) through ``warp`` with nearest
    sampling; pixels from outside the input become 0 (background)."""
    check_labels(labels, warp.in_size)
    _check_batch(labels.shape[0], warp, "labels")
    plan = warp.separable()
    if plan is not None and plan[0] == "slice" and labels.dtype != torch.uint16:
        # A flip or shift of the whole batch: the slice works on (B, H, W) as it is.
        return _slice_warp(labels, plan, warp.out_size, 0)
    return _nearest(labels.unsqueeze(1), warp, 0).squeeze(1)


def warp_points(points: torch.Tensor, warp: Warp) -> torch.Tensor:
    """Move points ``(..., 2)`` given as ``(x, y)`` pixel-centre positions (torchvision's
    KeyPoints convention) through a single-sample ``warp``."""
    if warp.n != 1:
        raise IaaaError(f"points: need a single-sample warp, got {warp.n} samples")
    fwd = torch.from_numpy(warp.inverse_matrix()[0]).to(points.device)
    p = points.to(torch.float64)
    out = p @ fwd[:, :2].T + fwd[:, 2]
    return out.to(points.dtype if points.dtype.is_floating_point else torch.float32)


def warp_boxes(boxes: torch.Tensor, warp: Warp) -> torch.Tensor:
    """Move XYXY boxes ``(N, 4)`` (edge coordinates, torchvision's convention) through a
    single-sample ``warp``: the box of the four moved corners, clamped to the new canvas. A box
    that leaves the canvas collapses to zero area (drop it with ``v2.SanitizeBoundingBoxes``)."""
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise IaaaError(f"boxes: expected (N, 4) XYXY, got shape {tuple(boxes.shape)}")
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
