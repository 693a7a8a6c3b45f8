"""Where new cells go: candidate positions for placement, uniform or drawn from a cell density.

The paper draws candidate positions uniformly over the frame. Real cells are not uniform: they
cluster, follow the illumination and leave empty regions, and a background whose cells were
removed carries filled-in patches exactly where they sat. ``layout="source"`` in
:class:`~iaaa.CellCompositor` draws candidates from the background's own image's cell density
(its cell mask block-averaged on a grid of ``STEP`` px and blurred), mixed with a share of
uniform so cells still land anywhere; corner matching then picks the best candidate as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from iaaa.errors import IaaaError
from iaaa.filters import gaussian_blur
from iaaa.synthesis.checks import bounded, validate

__all__ = ["LAYOUTS", "STEP", "LayoutConfig", "layout_grid", "layout_density", "candidate_positions"]

LAYOUTS: tuple[str, ...] = ("uniform", "source")
STEP = 4
"""Pixels per side of a block of the density grid: the density is smooth at the scale of a cell,
so blocks keep the grid (and its CDF) 16x smaller than the image at no visible cost."""


@dataclass(frozen=True)
class LayoutConfig:
    """Where candidate positions come from (validated once, here). The fields carry the
    ``layout`` prefix so every option of a :class:`~iaaa.synthesis.config.CompositorConfig` has
    one unique flat name.

    Attributes:
        layout: ``"uniform"`` (the paper: anywhere in the frame) or ``"source"`` (where the
            background's own image had cells, see module docs).
        layout_sigma: blur of the cell mask, pixels (``"source"`` only).
        layout_mix: share of uniform mixed into the density (``"source"`` only).
    """

    layout: Literal["uniform", "source"] = "uniform"
    layout_sigma: float = bounded(16.0, 0.5, 1024.0)
    layout_mix: float = bounded(0.25, 0.0, 1.0)

    def __post_init__(self) -> None:
        validate(self)


def layout_grid(mask: torch.Tensor, sigma: float, step: int = STEP) -> np.ndarray:
    """Cell density of a ``(H, W)`` cell mask on a grid of ``step`` px blocks (float64
    ``(ceil(H / step), ceil(W / step))``): each block's share of cell pixels, blurred by ``sigma``
    pixels."""
    if mask.ndim != 2:
        raise IaaaError(f"mask: expected (H, W), got shape {tuple(mask.shape)}")
    grid = F.avg_pool2d(mask.to(torch.float32)[None, None], step, ceil_mode=True)[0]
    return gaussian_blur(grid, sigma / step, 3.0, "reflect")[0].cpu().numpy().astype(np.float64)


def layout_density(grid: np.ndarray, offset: tuple[int, int], size: tuple[int, int], mix: float, step: int = STEP) -> tuple[np.ndarray, int] | None:
    """The part of ``grid`` under an output of ``size`` at pixel ``offset``, normalised and mixed
    with ``mix`` of uniform: ``(probabilities, step)`` for :func:`candidate_positions`, or
    ``None`` (uniform) when the crop holds no cell at all."""
    (oy, ox), (h, w) = offset, size
    d = grid[oy // step : oy // step + -(-h // step), ox // step : ox // step + -(-w // step)]
    total = float(d.sum())
    if total <= 0:
        return None
    return (1 - mix) * d / total + mix / d.size, step


def candidate_positions(
    u: np.ndarray, th: np.ndarray, tw: np.ndarray, span_y: np.ndarray, span_x: np.ndarray, b: int, density: tuple[np.ndarray, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of the candidate boxes from uniforms ``u`` ``(k, n, 2)``.

    Uniform: each coordinate uniform over the positions that keep the box in the frame. With a
    density grid, ``u[..., 0]`` picks a block by inverse-CDF sampling and its position inside the
    block's CDF interval (itself uniform) places the centre across the block, ``u[..., 1]`` down
    it; the box is then shifted into the frame. Either way two uniforms per candidate, so the
    random stream consumed does not depend on the layout."""
    sx, sy = np.maximum(span_x, 1)[:, None], np.maximum(span_y, 1)[:, None]
    if density is None:
        return b + (u[..., 0] * sx).astype(np.int64), b + (u[..., 1] * sy).astype(np.int64)
    grid, step = density
    cdf = np.cumsum(grid, axis=None, dtype=np.float64)
    cdf /= cdf[-1]
    u0 = u[..., 0]
    # side="right": a block of zero weight (equal to its predecessor's CDF) is never chosen.
    idx = np.minimum(np.searchsorted(cdf, u0, side="right"), cdf.size - 1)
    lo = np.where(idx > 0, cdf[np.maximum(idx - 1, 0)], 0.0)
    fx = np.clip((u0 - lo) / np.maximum(cdf[idx] - lo, 1e-300), 0.0, 1.0 - 1e-9)
    row, col = np.divmod(idx, grid.shape[1])
    cx = (col + fx) * step
    cy = (row + u[..., 1]) * step
    # The box's centre pixel is the pixel holding the drawn point.
    xs = np.clip(np.floor(cx).astype(np.int64) - (tw[:, None] - 1) // 2, b, b + sx - 1)
    ys = np.clip(np.floor(cy).astype(np.int64) - (th[:, None] - 1) // 2, b, b + sy - 1)
    return xs, ys


