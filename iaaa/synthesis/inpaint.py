"""Mask-level cell removal: cut each cell out by its halo-grown mask and inpaint the hole.

Unlike the paper's box fill (:func:`iaaa.synthesis.background.remove_cells`), which rebuilds every merged
cell *box* (65-100 % of a dense phase-contrast field), only the cells and the halo that belongs to
them (:mod:`iaaa.synthesis.halo`) are replaced; every other pixel is returned bit-identical.

A hole is filled in two parts, so that neither a cell-shaped ghost nor a smooth patch remains:

**Level** (:func:`iaaa.synthesis.texture.background_level`, shared with the box fills): the
smooth background brightness, from the *reference* pixels only (known pixels at least ``margin``
pixels from every hole, so what is left of a halo beyond the measured width does not leak in).
On the reference pixels it is a Gaussian normalised convolution (``blur(x * w) / blur(w)``),
refitted without outliers (debris, specks: more than 2.5 robust standard deviations off), which
belong to the texture; inside the holes it is the membrane (harmonic) interpolation of those
values, solved coarse-to-fine on a pyramid (cascadic multigrid: each level starts from the
coarser solution and takes a few Jacobi steps). The result is continuous, carries illumination
gradients through large holes without flattening them, and exists even when 95 % of the field
is holes.

**Texture** (:func:`texture_residual`): the background's own fine structure (camera noise,
debris, out-of-focus specks), as *residuals* ``pixel - level`` copied from real background
windows. The holes are covered by ``2k x 2k`` blocks on a grid of stride ``k`` (random phase);
each block takes the residual of a ``2k x 2k`` window that lies entirely in the reference pixels,
chosen among ``n_candidates`` random windows as the one whose mean level is closest to the
block's, and blocks are overlap-added with sine windows whose squares sum to one, so the
residual's variance is preserved and no block edge shows. ``k`` starts at ``block`` and halves
while fewer than ``min_windows`` windows fit in the background (dense fields); below ``k = 1``
single residual pixels are copied.

Filled values are ``level + residual`` clamped to the range of the known pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from iaaa.dtypes import from_float, to_float
from iaaa.errors import IaaaError
from iaaa.synthesis.halo import dilate_disk, grow_masks
from iaaa.synthesis.texture import background_level, box_mean, box_means_at, integral_image, selection_quantile, usable_windows

__all__ = ["Inpainting", "texture_residual", "inpaint", "remove_cells_by_mask"]

_CHUNK = 1 << 14  # blocks per gather chunk: keeps (blocks x candidates x C) small
_FOLD_VALUES = 1 << 22  # values of the overlap-add's column buffer per band of block rows (16 MB)


@dataclass
class Inpainting:
    """What :func:`inpaint` computed, for inspection and tests.

    Attributes:
        image: the result, same dtype and shape as the input image.
        hole: bool ``(H, W)``: the pixels that were replaced (all others are bit-identical).
        reference: bool ``(H, W)``: the pixels level and texture were taken from.
        level: float ``(C, H, W)``: the smooth background level.
        block: the texture block stride ``k`` that was used (``0``: single pixels).
    """

    image: torch.Tensor
    hole: torch.Tensor
    reference: torch.Tensor
    level: torch.Tensor
    block: int


def _sine_window(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    t = torch.arange(n, device=device, dtype=torch.float64)
    return torch.sin(math.pi * (t + 0.5) / n).to(dtype)


def texture_residual(
    residual: torch.Tensor,
    level: torch.Tensor,
    source: torch.Tensor,
    hole: torch.Tensor,
    *,
    block: int = 8,
    n_candidates: int = 16,
    min_windows: int = 64,
    max_energy: float = 0.9,
    generator: torch.Generator,
) -> tuple[torch.Tensor, int]:
    """Synthesise a residual field over ``hole`` from real residuals inside ``source``.

    Args:
        residual: ``(C, H, W)`` float, ``image - level`` (only its ``source`` pixels are read).
        level: ``(C, H, W)`` float background level (matches blocks to source windows).
        source, hole: bool ``(H, W)``.
        block: starting stride ``k`` of the ``2k x 2k`` overlap-added blocks.
        max_energy: source windows whose mean squared residual exceeds this quantile of all
            windows' are not used (``1``: all windows are).
        generator: the only source of randomness.

    Returns:
        ``(field, k)``: a ``(C, H, W)`` residual field (valid on ``hole``) and the stride used.
    """
    c, h, w = residual.shape
    dev = residual.device
    k, ok = usable_windows(source, int(block), min_windows, side=lambda k: 2 * k)
    if ok is None:
        # Not even 2x2 background windows: copy single level-matched residual pixels.
        sy, sx = torch.nonzero(source, as_tuple=True)
        hy, hx = torch.nonzero(hole, as_tuple=True)
        cand = torch.randint(sy.numel(), (hy.numel(), n_candidates), generator=generator, device=generator.device).to(dev)
        d = (level[:, sy[cand], sx[cand]] - level[:, hy, hx].unsqueeze(-1)).square().sum(0)
        pick = cand.gather(1, d.argmin(1, keepdim=True))[:, 0]
        field = torch.zeros_like(residual)
        field[:, hy, hx] = residual[:, sy[pick], sx[pick]]
        return field, 0
    b = 2 * k
    phase = torch.randint(k, (2,), generator=generator, device=generator.device).tolist()
    oy, ox = phase
    # Canvas coordinate of image pixel p is p + k + o; blocks start at multiples of k, so every
    # image pixel lies in exactly two blocks per axis (see the module docs).
    ny, nx = -(-(h + k + oy) // k), -(-(w + k + ox) // k)
    hc, wc = ny * k + k, nx * k + k
    hole_c = torch.zeros(hc, wc, dtype=torch.float32, device=dev)
    hole_c[k + oy : k + oy + h, k + ox : k + ox + w] = hole.to(torch.float32)
    need = F.max_pool2d(hole_c[None, None], b, k)[0, 0].flatten() > 0  # blocks touching the hole
    blk = torch.nonzero(need)[:, 0]
    lev_c = F.pad(level[None], (k + ox, wc - w - k - ox, k + oy, hc - h - k - oy), mode="replicate")[0]
    blk_level = F.avg_pool2d(lev_c[None], b, k)[0].flatten(1)[:, blk].T  # (nb, C)
    if max_energy < 1:
        # Windows whose residual energy is in the top share hold the background's rare bright or
        # dark structures (unannotated debris, glow); copied into many blocks they would repeat
        # as conspicuous blobs, so they are not offered as sources.
        energy = box_mean(residual.square().sum(0), b)
        cut = selection_quantile(energy[ok][: 1 << 24], max_energy).to(energy.dtype)
        calm = ok & (energy <= cut)
        if int(calm.sum()) >= min_windows:
            ok = calm
    wy, wx = torch.nonzero(ok, as_tuple=True)
    nb = blk.numel()
    cand = torch.randint(wy.numel(), (nb, n_candidates), generator=generator, device=generator.device).to(dev)
    if 2 * nb * n_candidates < wy.numel():
        # Few candidates for many windows (sparse holes): the level means of the candidate
        # windows alone, four reads each from the integral image, instead of every window's.
        integral, means = integral_image(level), None
    else:
        integral, means = None, box_mean(level, b)[:, wy, wx].T  # (nw, C)
    pick = torch.empty(nb, dtype=torch.int64, device=dev)
    for s in range(0, nb, _CHUNK):
        cc = cand[s : s + _CHUNK]
        win = means[cc] if means is not None else box_means_at(integral, b, wy[cc], wx[cc], level.dtype)
        d = (win - blk_level[s : s + _CHUNK, None]).square().sum(-1)
        pick[s : s + _CHUNK] = cc.gather(1, d.argmin(1, keepdim=True))[:, 0]
    ar = torch.arange(b, device=dev)
    win = _sine_window(b, dev, residual.dtype)
    win2 = win[:, None] * win[None, :]
    # Overlap-add by F.fold, in bands of block rows: the fold's column buffer holds C x b^2
    # values per block of the whole grid (16 C bytes a pixel at k = 8: 200 MB for a 2048 px RGB
    # field), so the canvas is folded a band of rows at a time from only the blocks that reach
    # it. Every canvas pixel still gets all its (at most four) blocks in one fold call, which
    # adds them in the same kernel-offset order, so the field is the one-call field bit for bit.
    field = torch.empty(c, h, w, dtype=residual.dtype, device=dev)
    top, end = (k + oy) // k, -(-(k + oy + h) // k)  # canvas block rows the image covers
    rows = max(1, _FOLD_VALUES // (c * b * b * nx))
    by = blk // nx
    for a in range(top, end, rows):
        e = min(a + rows, end)
        lo, hi = max(a - 1, 0), min(e - 1, ny - 1)  # the block rows that reach canvas rows [a k, e k)
        i0, i1 = int(torch.searchsorted(by, lo)), int(torch.searchsorted(by, hi, right=True))
        cols = torch.zeros(c, b, b, (hi - lo + 1) * nx, dtype=residual.dtype, device=dev)
        for s in range(i0, i1, _CHUNK):
            p = pick[s : min(s + _CHUNK, i1)]
            yy = (wy[p][:, None] + ar)[:, :, None]  # (q, b, 1)
            xx = (wx[p][:, None] + ar)[:, None, :]  # (q, 1, b)
            patches = residual[:, yy, xx] * win2  # (C, q, b, b)
            cols[..., blk[s : min(s + _CHUNK, i1)] - lo * nx] = patches.permute(0, 2, 3, 1)
        band = F.fold(cols.reshape(1, c * b * b, (hi - lo + 1) * nx), ((hi - lo + 2) * k, wc), b, stride=k)[0]
        y0, y1 = max(a * k, k + oy), min(e * k, k + oy + h)  # canvas rows of this band in the image
        field[:, y0 - k - oy : y1 - k - oy] = band[:, y0 - lo * k : y1 - lo * k, k + ox : k + ox + w]
    return field, k


def inpaint(
    image: torch.Tensor,
    hole: torch.Tensor,
    *,
    margin: int = 2,
    sigma: float = 4.0,
    block: int = 8,
    n_candidates: int = 16,
    max_energy: float = 0.9,
    generator: torch.Generator | None = None,
) -> Inpainting:
    """Replace the ``hole`` pixels of ``image`` by background level plus real texture.

    Args:
        image: ``(C, H, W)`` or ``(H, W)`` uint8, uint16 or float image.
        hole: bool ``(H, W)``, the pixels to replace. All other pixels are returned bit-identical.
        margin: known pixels closer than this to a hole do not serve as reference (level and
            texture), so that an unmeasured rest of a halo does not leak into the fill.
        sigma: scale (pixels) of the background level.
        block: starting stride of the texture blocks (``0``: single pixels).
        n_candidates: random source windows compared per block.
        max_energy: quantile of residual energy above which source windows are not used
            (see :func:`texture_residual`).
        generator: the only source of randomness (``None``: a fresh generator seeded 0).

    Raises:
        IaaaError: shapes disagree, or no pixel outside the hole remains.
    """
    img = image if image.ndim == 3 else image.unsqueeze(0)
    if img.ndim != 3:
        raise IaaaError(f"image: expected (C, H, W) or (H, W), got shape {tuple(image.shape)}")
    if hole.dtype != torch.bool or tuple(hole.shape) != tuple(img.shape[-2:]):
        raise IaaaError(f"hole: expected a bool mask of shape {tuple(img.shape[-2:])}, got {hole.dtype} {tuple(hole.shape)}")
    if margin < 0 or int(margin) != margin or sigma <= 0 or block < 0 or n_candidates < 1 or not 0 < max_energy <= 1:
        raise IaaaError(
            f"need an integer margin >= 0, sigma > 0, block >= 0, n_candidates >= 1, 0 < max_energy <= 1; "
            f"got {margin}, {sigma}, {block}, {n_candidates}, {max_energy}"
        )
    hole = hole.to(img.device)
    known = ~hole
    if not bool(known.any()):
        raise IaaaError(f"hole: covers all {hole.numel()} pixels of the image; no background pixel is left to inpaint from")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if not bool(hole.any()):
        x = to_float(img)
        return Inpainting(img.clone(), hole, known, x, block)
    reference = known
    if margin > 0:
        # Within Euclidean distance `margin` of a hole is a dilation by a disk: one small
        # convolution instead of a full-image distance transform.
        ref = known & ~dilate_disk(hole, int(margin))
        # Dense fields: keep the margin only while it leaves a usable share of the background.
        if int(ref.sum()) >= max(64, 0.25 * int(known.sum())):
            reference = ref
    x = to_float(img)
    level = background_level(x, reference, sigma)
    field, k = texture_residual(x - level, level, reference, hole, block=block, n_candidates=n_candidates, max_energy=max_energy, generator=generator)
    vals = x[:, reference]
    lo, hi = vals.min(1).values.view(-1, 1, 1), vals.max(1).values.view(-1, 1, 1)
    filled = torch.minimum(torch.maximum(level + field, lo), hi)
    out = torch.where(hole, from_float(filled, img.dtype), img)
    return Inpainting(out, hole, reference, level, k)


def remove_cells_by_mask(
    image: torch.Tensor,
    labels: torch.Tensor,
    halo: float,
    *,
    margin: int = 2,
    sigma: float = 4.0,
    block: int = 8,
    n_candidates: int = 16,
    max_energy: float = 0.9,
    grown: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Inpainting:
    """Remove every instance of ``labels`` together with its ``halo`` (pixels, see
    :func:`iaaa.synthesis.halo.measure_halo`) and inpaint the holes (:func:`inpaint`).
    Pixels farther than ``halo`` from every cell are returned bit-identical. ``grown``:
    ``grow_masks(labels, halo)`` when the caller already has it (one distance transform less)."""
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != tuple(image.shape[-2:]):
        raise IaaaError(f"labels: shape {tuple(getattr(labels, 'shape', ()))} does not match image {tuple(image.shape)}")
    if grown is not None and tuple(grown.shape) != tuple(labels.shape):
        raise IaaaError(f"grown: shape {tuple(grown.shape)} does not match labels {tuple(labels.shape)}")
    hole = (grow_masks(labels, halo) if grown is None else grown) > 0
    return inpaint(image, hole.to(image.device), margin=margin, sigma=sigma, block=block, n_candidates=n_candidates, max_energy=max_energy, generator=generator)
