"""The warp: where each output pixel reads from, and the sampling tables derived from it.

A :class:`Warp` holds one affine map per sample (output pixel centre -> input position, in
pixel-index coordinates where pixel ``i`` has its centre at ``i``). Everything heavy that
follows from it -- whole-pixel plans, nearest-source indices, validity, grid_sample's grid --
is computed lazily once per device and cached on the warp, so warping an image and its label
map shares the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["Warp", "all_inside", "sampling_grid", "nearest_tables", "nearest_axes", "whole_pixel"]

_EPS = 1e-9


@dataclass(frozen=True)
class Warp:
    """An affine resampling of ``n`` samples (``n == 1`` broadcasts over any batch).

    Attributes:
        matrix: ``(n, 2, 3)`` float64 numpy array mapping output pixel centres ``(x, y, 1)``,
            relative to the sample's ``offset``, to input pixel positions.
        in_size: ``(H, W)`` of the input.
        out_size: ``(H', W')`` of the output canvas.
        offset: ``(n, 2)`` whole-pixel ``(x, y)`` position of each sample's own canvas in a
            shared batch canvas (``expand`` with differing sizes), or ``None`` for zeros. Kept
            apart from ``matrix`` so a sample's positions are computed exactly as in a
            single-sample call.

    Sampling tables derived from it (source indices, validity, the normalised grid) are cached
    on the warp per device, so warping an image and its label map computes them once.
    """

    matrix: np.ndarray
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    offset: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])

    def full_matrix(self) -> np.ndarray:
        """``matrix`` with ``offset`` folded in: output canvas position -> input position."""
        if self.offset is None:
            return self.matrix
        m = self.matrix.copy()
        m[:, :, 2] -= (m[:, :, :2] @ self.offset[:, :, None])[..., 0]
        return m

    def inverse_matrix(self) -> np.ndarray:
        """``(n, 2, 3)`` map from input pixel positions to output canvas positions."""
        m = self.full_matrix()
        lin = np.linalg.inv(m[:, :, :2])
        t = -(lin @ m[:, :, 2:])
        return np.concatenate([lin, t], -1)

    def inside(self) -> bool:
        """:func:`all_inside`, computed once per warp (images and label maps both ask)."""
        v = self._cache.get("inside")
        if v is None:
            v = self._cache["inside"] = all_inside(self)
        return v

    def separable(self) -> tuple | None:
        """A sampling plan when every output pixel reads a whole input pixel through a flip /
        transpose / integer shift (then sampling is an exact slice or gather), else ``None``."""
        if "sep" not in self._cache:
            self._cache["sep"] = _separable_plan(self)
        return self._cache["sep"]

    def known_plan(self, plan: tuple) -> "Warp":
        """Record the :meth:`separable` plan a constructor already knows (a flip), so it is not
        derived from the matrix again; returns the warp."""
        self._cache["sep"] = plan
        return self


def _separable_plan(w: Warp) -> tuple | None:
    m = w.full_matrix()  # whole-pixel offsets keep whole-pixel maps exact
    ho, wo = w.out_size
    if m.shape[0] == 1:
        # The common single-object case in plain Python: numpy would cost more than the work.
        vals = m[0].ravel().tolist()
        whole = [round(v) for v in vals]  # ints, half to even
        for v, q in zip(vals, whole):
            if abs(v - q) > _EPS:
                return None
        a, b, e, c, d, f = whole
        if b == 0 and c == 0 and abs(a) == 1 and abs(d) == 1:
            return ("slice", False, (d, f), (a, e))  # input row = d * y + f, column = a * x + e
        if a == 0 and d == 0 and abs(b) == 1 and abs(c) == 1:
            return ("slice", True, (b, e), (c, f))  # rows / columns of the transposed input
        return None
    r = np.round(m)
    if np.abs(m - r).max() > _EPS:
        return None
    a, b, c, d = r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1]
    xs, ys = np.arange(wo, dtype=np.float64), np.arange(ho, dtype=np.float64)
    if ((b == 0) & (c == 0) & (np.abs(a) == 1) & (np.abs(d) == 1)).all():
        rows = d[:, None] * ys + r[:, 1, 2, None]  # input row of each output row
        cols = a[:, None] * xs + r[:, 0, 2, None]
        return ("gather", False, rows.astype(np.int64), cols.astype(np.int64))
    if ((a == 0) & (d == 0) & (np.abs(b) == 1) & (np.abs(c) == 1)).all():
        # x_in depends only on y_out and y_in only on x_out: gather from the transposed input.
        rows = b[:, None] * ys + r[:, 0, 2, None]
        cols = c[:, None] * xs + r[:, 1, 2, None]
        return ("gather", True, rows.astype(np.int64), cols.astype(np.int64))
    return None


_AXES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

# float32 holds every integer up to 2**24 exactly (flat indices up to there are exact).
_F32_EXACT = 2**24
# Positions are float32 up to this side length (resolution under 1/128 px); beyond, float64.
_F32_SIDE = 2**16


def _pos_dtype(w: Warp) -> torch.dtype:
    return torch.float32 if max(*w.out_size, *w.in_size) <= _F32_SIDE else torch.float64


def _axes(ho: int, wo: int, device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Output pixel centres: ``xs (1, 1, W', 1)`` and ``ys (1, H', 1, 1)``, cached."""
    key = (ho, wo, str(device), dtype)
    a = _AXES.get(key)
    if a is None:
        if len(_AXES) > 512:
            _AXES.clear()
        a = _AXES[key] = (
            torch.arange(wo, dtype=dtype, device=device).view(1, 1, wo, 1),
            torch.arange(ho, dtype=dtype, device=device).view(1, ho, 1, 1),
        )
    return a


# Output pixels per sample from which positions are computed plane by plane (below it the
# extra kernel calls cost more than the interleaved add: measured crossover 128x128).
_PLANES_FROM = 128 * 128


def _terms(m: np.ndarray, w: Warp, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(p (n, 3, 2), xs (., 1, W'), ys (., H', 1))``: the coefficients of ``m`` and the output
    pixel centres, shifted by the samples' offsets (exact: whole pixels)."""
    dt = _pos_dtype(w)
    ho, wo = w.out_size
    xs, ys = _axes(ho, wo, device, dt)
    xs, ys = xs.view(1, 1, wo), ys.view(1, ho, 1)
    p = torch.from_numpy(np.ascontiguousarray(m.transpose(0, 2, 1))).to(device, dt)
    if w.offset is not None:
        off = torch.from_numpy(w.offset).to(device, dt)
        xs, ys = xs - off[:, 0].view(-1, 1, 1), ys - off[:, 1].view(-1, 1, 1)
    return p, xs, ys


def _affine_planes(m: np.ndarray, w: Warp, device: torch.device) -> list[torch.Tensor]:
    """The two rows of ``m (n, 2, 3)`` applied to every output pixel centre (shifted by the
    sample's offset): ``[x, y]``, two contiguous ``(n, H', W')`` planes.

    Separate elementwise multiplies and adds (no matmul, no fused multiply-add) give bit-identical
    positions whatever the batch layout or device, so nearest-sampling ties always break the
    same way: a batch equals its samples run one by one, and CUDA equals CPU. Only the last add
    touches every pixel."""
    if w.out_size[0] * w.out_size[1] < _PLANES_FROM:
        xy = _affine_map(m, w, device)
        return [xy[..., 0], xy[..., 1]]
    p, xs, ys = _terms(m, w, device)
    return [(p[:, 0, k].view(-1, 1, 1) * xs) + (p[:, 1, k].view(-1, 1, 1) * ys + p[:, 2, k].view(-1, 1, 1)) for k in range(2)]


def _affine_map(m: np.ndarray, w: Warp, device: torch.device) -> torch.Tensor:
    """``(n, H', W', 2)``: :func:`_affine_planes` written interleaved as grid_sample wants them,
    each plane's last add writing straight into its strided half (2x faster than one add over
    the interleaved layout; the same operations, so the same bits)."""
    p, xs, ys = _terms(m, w, device)
    if w.out_size[0] * w.out_size[1] < _PLANES_FROM:
        # One add over the interleaved layout: fewer kernel calls where the planes are small.
        p = p.view(-1, 3, 1, 1, 2)
        return (p[:, 0] * xs[..., None]) + (p[:, 1] * ys[..., None] + p[:, 2])
    out = torch.empty((p.shape[0], *w.out_size, 2), dtype=xs.dtype, device=device)
    for k in range(2):
        torch.add(p[:, 0, k].view(-1, 1, 1) * xs, p[:, 1, k].view(-1, 1, 1) * ys + p[:, 2, k].view(-1, 1, 1), out=out[..., k])
    return out


def all_inside(w: Warp) -> bool:
    """Does every output pixel read from inside the input, with a margin no rounding of the
    positions can cross? An affine map takes its extremes at the corners, so four points decide.

    The margin follows the size of the numbers: positions are computed in float32 (float64 on
    huge canvases) from rounded coefficients, each step off by at most one rounding relative to
    the magnitudes involved, so a fixed margin would be crossed on large or strongly sheared
    canvases (an out-of-bounds gather)."""
    ho, wo = w.out_size
    h, wi = w.in_size
    corners = np.array([[0.0, 0.0, 1.0], [wo - 1.0, 0.0, 1.0], [0.0, ho - 1.0, 1.0], [wo - 1.0, ho - 1.0, 1.0]])
    src = w.full_matrix() @ corners.T  # (n, 2, 4)
    local = np.broadcast_to(corners[None, :, :2], (w.n, 4, 2))
    if w.offset is not None:
        local = local - w.offset[:, None, :]
    size = np.abs(w.matrix[:, :, :2]) @ np.abs(local).transpose(0, 2, 1) + np.abs(w.matrix[:, :, 2:])
    eps = np.finfo(np.float32 if _pos_dtype(w) == torch.float32 else np.float64).eps
    m = 1e-3 + 8 * eps * float(size.max())
    return bool((src[:, 0] > -0.5 + m).all() and (src[:, 0] < wi - 0.5 - m).all() and (src[:, 1] > -0.5 + m).all() and (src[:, 1] < h - 0.5 - m).all())


def sampling_grid(w: Warp, device: torch.device) -> torch.Tensor:
    """grid_sample's ``(n, H', W', 2)`` grid, cached on the warp."""
    key = ("grid", str(device))
    if key not in w._cache:
        h, wi = w.in_size
        # Normalised coordinates folded into the matrix: g = (2 x + 1) / W - 1.
        norm = np.array([[2.0 / wi, 0.0, 1.0 / wi - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0]])
        mg = norm[:, :2] @ w.matrix
        mg[:, :, 2] += norm[:, 2]
        w._cache[key] = _affine_map(mg, w, device)
    return w._cache[key]


def nearest_tables(w: Warp, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flat index of each output pixel's nearest source pixel ``(n, H'W')`` and whether it lies
    in the input ``(n, H', W')`` (``None``: all do), cached on the warp."""
    key = ("nearest", str(device))
    if key not in w._cache:
        ho, wo = w.out_size
        h, wi = w.in_size
        # x and y as separate contiguous planes: scalar clamps and compares on planes are several
        # times faster than broadcasting bounds over an interleaved last dimension.
        x, y = _affine_planes(w.matrix, w, device)
        # Round half to even, like grid_sample's nearest mode; the same test decides image and
        # label support, so an image pixel gets the fill exactly where its label became 0.
        ix, iy = x.round(), y.round()
        if w.inside():
            ok = None
        else:
            cx, cy = ix.clamp(0, wi - 1), iy.clamp(0, h - 1)
            ok = (cx == ix).logical_and_(cy == iy)
            ix, iy = cx, cy
        if h * wi <= _F32_EXACT and ix.dtype == torch.float32:
            flat = iy.mul_(wi).add_(ix).long()  # exact: float32 holds these indices
        else:
            # Beyond 2**24 pixels float32 cannot hold every flat index: integer arithmetic.
            flat = iy.long().mul_(wi).add_(ix.long())
        w._cache[key] = (flat.view(-1, ho * wo), ok)
    return w._cache[key]


def nearest_axes(w: Warp) -> tuple[np.ndarray, np.ndarray] | None:
    """For an axis-aligned warp (scale and shift only, each output row reading one input row and
    each column one input column): the nearest source row of each output row ``(n, H')`` and
    column of each output column ``(n, W')``, int64, out-of-range where the pixel lies outside the
    input; ``None`` for any other warp. Cached on the warp.

    The positions are computed with the very float operations of :func:`nearest_tables` (the
    cross term is an exact zero there), so a gather by these rows and columns gives the same
    pixels as the full table at the cost of one row and one column."""
    if "axes" not in w._cache:
        m = w.matrix
        if (m[:, 0, 1] != 0).any() or (m[:, 1, 0] != 0).any():
            w._cache["axes"] = None
        else:
            ho, wo = w.out_size
            # NumPy on the host, in the same float type: IEEE products and sums round alike.
            dt = np.float32 if _pos_dtype(w) == torch.float32 else np.float64
            p = m.transpose(0, 2, 1).astype(dt)  # (n, 3, 2)
            xs = np.arange(wo, dtype=dt).reshape(1, wo)
            ys = np.arange(ho, dtype=dt).reshape(1, ho)
            if w.offset is not None:
                off = w.offset.astype(dt)
                xs, ys = xs - off[:, 0:1], ys - off[:, 1:2]
            # x = (a * x_out) + (0 * y_out + e) and y = (0 * x_out) + (d * y_out + f), as
            # _affine_map computes them; the zero products add nothing (exact).
            cols = (p[:, 0, 0:1] * xs) + (p[:, 1, 0:1] * dt(0) + p[:, 2, 0:1])
            rows = p[:, 0, 1:2] * dt(0) + (p[:, 1, 1:2] * ys + p[:, 2, 1:2])
            w._cache["axes"] = (np.rint(rows).astype(np.int64), np.rint(cols).astype(np.int64))
    return w._cache["axes"]


def whole_pixel(m: np.ndarray) -> np.ndarray:
    """Per sample: does every output pixel read a whole input pixel (flip, quarter turn, shift)?"""
    r = np.round(m)
    lin = r[:, :, :2]
    diag = (lin[:, 0, 1] == 0) & (lin[:, 1, 0] == 0) & (np.abs(lin[:, 0, 0]) == 1) & (np.abs(lin[:, 1, 1]) == 1)
    anti = (lin[:, 0, 0] == 0) & (lin[:, 1, 1] == 0) & (np.abs(lin[:, 0, 1]) == 1) & (np.abs(lin[:, 1, 0]) == 1)
    return (np.abs(m - r).reshape(len(m), -1).max(1) <= _EPS) & (diag | anti)
