"""Artificial backgrounds: remove every cell from a real image (paper section 2.2).

Every merged cell box is filled with pixels drawn from outside all boxes, chosen to match the
box's corners, and the filled box is pasted back through a Gaussian-filtered rectangle so no seam
shows. Two ways to choose the fill pixels:

``background_method="paper"``
    For each inside pixel, ``n`` random outside pixels are scored by the mean Euclidean distance
    (over channels) between their value and the box's four corner pixels; the closest wins. The
    criterion is the same for every pixel of a box, so a large ``n`` flattens the box to one value.

``background_method="bilinear"``
    The target of an inside pixel is the bilinear blend, at that pixel's position, of the local
    background level at the four corners of the box, so illumination gradients continue through
    the box. Candidates are compared by their *local background level* (a Gaussian mean over
    outside pixels only) and the winner's *raw* value is copied, so the fill keeps the image's
    noise and texture instead of averaging it away. With ``patch > 1`` (default 8) the fill is
    copied in ``patch x patch`` blocks: each block takes a whole all-outside window chosen by the
    same criterion (block-mean target vs window-mean level), so the background's spatially
    correlated noise stays correlated instead of becoming white noise (``patch=1``: per pixel).

In both methods every filled value is a real outside pixel value, and pixels farther than the
feather from every box are left bit-identical. The Gaussian filters are :mod:`iaaa.filters`.

``background_method="mask"`` (the default)
    Not boxes but each cell's mask grown by its ``halo`` is removed (the halo or blurred rim that
    belongs to the cell in the image, measured per dataset by
    :func:`iaaa.synthesis.halo.measure_halo`; ``halo=None`` measures it on the image itself),
    every other pixel is kept bit-identical, and the holes are inpainted with a membrane level
    plus real background texture (:mod:`iaaa.synthesis.inpaint`). On dense phase-contrast fields
    the box rule rebuilds 65-100 % of the image; this keeps every real pixel beyond the halos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from iaaa.boxes import boxes_to_mask, merge_boxes
from iaaa.errors import IaaaError
from iaaa.filters import feather_mask, feather_radius
from iaaa.structures import check_labels, from_float, instance_boxes, to_float
from iaaa.synthesis.checks import bounded, check, validate
from iaaa.synthesis.texture import box_mean, local_level, usable_windows

__all__ = ["METHODS", "BackgroundConfig", "BackgroundFill", "remove_cells"]

METHODS: tuple[str, ...] = ("bilinear", "paper", "mask")

# Candidate gathers are (pixels x n x C); chunking keeps a 1024x1024 image under ~100 MB.
_CHUNK_ELEMS = 1 << 22
_CORNER_OUT = 2
# Below this share of the image, box-free pixels are too few and too clustered to sample from.
_MIN_OUTSIDE_FRACTION = 0.02


@dataclass(frozen=True)
class BackgroundConfig:
    """How cells are removed from an image (validated once, here); see :func:`remove_cells`.

    The fields carry the ``background_`` prefix so every option of a
    :class:`~iaaa.synthesis.config.CompositorConfig` has one unique flat name.

    Attributes:
        background_method: ``"mask"`` (default: each cell and its halo removed, every other pixel
            kept, holes inpainted), ``"bilinear"`` or ``"paper"`` (both fill merged boxes); see
            module docs.
        background_candidates: random outside pixels (or windows) scored per fill pixel (block).
        background_sigma: Gaussian sigma of the rectangle feather of the box methods. The filled
            region is each merged box grown by ``2 * feather_radius(sigma)``; the white
            rectangle is the box grown by one radius, so every pixel of the box is replaced.
        background_truncate: the feather's kernel reaches ``truncate * sigma`` pixels.
        background_margin: boxes closer than this many pixels are merged before filling (see
            :func:`iaaa.boxes.merge_boxes`).
        background_level_sigma: scale of the local background level (``"bilinear"`` and
            ``"mask"``).
        background_patch: side of the square blocks the fill is copied in (``"bilinear"``; with
            ``"mask"`` the starting stride of the texture blocks). ``1`` draws every inside pixel
            on its own, which turns a real background's spatially correlated noise into white
            noise; ``patch > 1`` tiles the fill region with ``patch x patch`` blocks (grid at a
            random phase) and copies, for each block, a whole outside window chosen the same way,
            falling back to smaller blocks where too few all-outside windows exist.
    """

    background_method: Literal["bilinear", "paper", "mask"] = "mask"
    background_candidates: int = bounded(32, 1, 1024)
    background_sigma: float = bounded(2.0, 0.0, 50.0)
    background_truncate: float = bounded(3.0, 0.5, 10.0)
    background_margin: int = bounded(1, 0, 256)
    background_level_sigma: float = bounded(4.0, 0.1, 256.0)
    background_patch: int = bounded(8, 1, 256)

    def __post_init__(self) -> None:
        validate(self)


# ----------------------------------------------------------------------------- cell removal


@dataclass
class BackgroundFill:
    """Everything :func:`remove_cells` computed, for inspection and tests.

    Attributes:
        image: the background, same dtype and shape as the input image.
        filled: float ``(C, H, W)``: the input with every fill pixel replaced, *before* feathering.
        alpha: float ``(H, W)``: the Gaussian-filtered rectangle mask used to paste ``filled``.
        fill_mask: bool ``(H, W)``: pixels that were filled (``alpha > 0``).
        outside_mask: bool ``(H, W)``: pixels the fill values were drawn from.
        boxes: int64 ``(M, 4)`` merged XYXY boxes (inclusive) that were removed.
    """

    image: torch.Tensor
    filled: torch.Tensor
    alpha: torch.Tensor
    fill_mask: torch.Tensor
    outside_mask: torch.Tensor
    boxes: torch.Tensor


def _outside(labels: torch.Tensor, boxes: torch.Tensor, grow: int, min_pixels: int) -> torch.Tensor:
    # Prefer pixels clear of every box by the feather radius (no cell halo). In crowded images
    # the merged boxes cover almost everything; then take label-0 pixels at least `grow` pixels
    # from any cell (the real gaps between cells), and as a last resort any label-0 pixel.
    h, w = labels.shape
    out = ~boxes_to_mask(boxes, (h, w), grow)
    if int(out.sum()) >= max(min_pixels, _MIN_OUTSIDE_FRACTION * h * w):
        return out
    fg = (labels > 0).to(torch.float32)[None, None]
    near = F.max_pool2d(fg, 2 * grow + 1, 1, grow)[0, 0] > 0 if grow > 0 else fg[0, 0] > 0
    out = ~near
    if int(out.sum()) >= min_pixels:
        return out
    out = labels == 0
    if not bool(out.any()):
        raise IaaaError(f"labels: every pixel of the {h}x{w} image belongs to a cell; there is no background to sample")
    return out


def _patch_units(
    outside: torch.Tensor,
    level: torch.Tensor,
    target: torch.Tensor,
    fy: torch.Tensor,
    fx: torch.Tensor,
    patch: int,
    min_windows: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, ...] | None:
    """Group the fill pixels into ``k x k`` blocks and list the all-outside ``k x k`` windows.

    Per-pixel draws replace a background whose noise is spatially correlated (neighbour
    correlation up to ~0.6 on DSB 2018 fluorescence images, from optics and camera binning) by
    white noise, which image-level metrics see as excess fine-scale energy. Copying whole windows
    keeps that correlation inside every block. ``k`` starts at ``patch`` and is halved while fewer
    than ``min_windows`` windows lie entirely in ``outside``; ``None`` when even ``k = 2`` has too
    few (the caller then fills pixel by pixel).

    Returns ``(block_target (U, C), window_key (S, C), unit (P,), dy (P,), dx (P,), ay (S,),
    ax (S,))``: the mean bilinear target of each block, the mean local level of each window, the
    block of each fill pixel, the pixel's offset inside its block, and each window's top-left
    corner. The block grid's phase is drawn from ``generator`` so block edges do not sit at the
    same positions in every background."""
    h, w = outside.shape
    k, ok = usable_windows(outside, patch, min_windows, lowest=2)
    if ok is None:
        return None
    phase = torch.randint(k, (2,), generator=generator, device=generator.device).to(fy.device)
    gy, gx = fy + phase[0], fx + phase[1]
    by, bx = gy.div(k, rounding_mode="floor"), gx.div(k, rounding_mode="floor")
    ubid, unit = torch.unique(by * (w // k + 2) + bx, return_inverse=True)
    # Block means in float64: index_add_ accumulates in an arbitrary order on CUDA, and float64
    # keeps that order's rounding far below float32 resolution, so the result is reproducible.
    acc = torch.zeros(ubid.numel(), target.shape[1] + 1, device=fy.device, dtype=torch.float64)
    acc.index_add_(0, unit, torch.cat([target.to(torch.float64), torch.ones_like(target[:, :1], dtype=torch.float64)], 1))
    block_target = (acc[:, :-1] / acc[:, -1:]).to(target.dtype)
    ay, ax = torch.nonzero(ok, as_tuple=True)
    window_key = box_mean(level, k)[:, ay, ax].T.contiguous()
    return block_target, window_key, unit, gy - by * k, gx - bx * k, ay, ax


def remove_cells(
    image: torch.Tensor,
    labels: torch.Tensor,
    config: BackgroundConfig | None = None,
    *,
    halo: int | None = None,
    grown: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> BackgroundFill:
    """Remove every instance of ``labels`` from ``image``; ``.image`` of the result is the
    background (same dtype and shape as ``image``), the other fields show how it was made.

    Args:
        image: ``(C, H, W)`` (or ``(H, W)``) uint8, uint16 or float image.
        labels: ``(H, W)`` instance label map; every instance is removed.
        config: how (:class:`BackgroundConfig`; ``None``: its defaults, ``"mask"``).
        halo: ``background_method="mask"`` only: pixels removed around every mask, a value
            measured from the data (``None``: measured on this image,
            :func:`iaaa.synthesis.halo.measure_halo`).
        grown: ``background_method="mask"`` only: ``labels`` already grown by ``halo``
            (:func:`iaaa.synthesis.halo.grow_masks`), when the caller has it (``fit`` shares it
            with object extraction); needs ``halo``.
        generator: the only source of randomness (``None`` means a fresh generator seeded 0,
            so the result is still reproducible; the global RNG is never read).
    """
    config = BackgroundConfig() if config is None else config
    if not isinstance(config, BackgroundConfig):
        raise IaaaError(f"config: expected a BackgroundConfig, got {type(config).__name__}")
    check(halo is None or (isinstance(halo, int) and not isinstance(halo, bool) and 0 <= halo <= 256), "halo", "must be None or an integer in [0, 256]", halo)
    check(grown is None or (halo is not None and config.background_method == "mask"), "grown", "needs background_method='mask' and the halo it was grown by", type(grown).__name__)
    if config.background_method == "mask":
        return _fill_by_mask(image, labels, config, halo, grown, generator)
    img = image if image.ndim == 3 else image.unsqueeze(0)
    if img.ndim != 3:
        raise IaaaError(f"image: expected (C, H, W) or (H, W), got shape {tuple(image.shape)}")
    labels = check_labels(labels).to(img.device)
    if tuple(labels.shape) != tuple(img.shape[-2:]):
        raise IaaaError(f"labels: shape {tuple(labels.shape)} does not match image size {tuple(img.shape[-2:])}")
    _, h, w = img.shape
    x = to_float(img)
    boxes, _ = merge_boxes(instance_boxes(labels), config.background_margin)
    boxes = boxes.to(img.device)
    empty = torch.zeros(h, w, dtype=torch.bool, device=img.device)
    if boxes.shape[0] == 0:
        return BackgroundFill(img.clone(), x.clone(), torch.zeros(h, w, device=img.device), empty, ~empty, boxes)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    region = _describe(labels, boxes, config)
    target = _targets(x, region, boxes, config)
    chosen, blocks = _choose(x, region, target, config, generator)
    filled = x.clone()
    fy, fx = region.fy, region.fx
    if blocks is not None:
        # Every pixel of a block copies the pixel at the same offset in its block's window.
        unit, dy, dx, ay, ax = blocks
        src = chosen[unit]
        filled[:, fy, fx] = x[:, ay[src] + dy, ax[src] + dx]
    else:
        filled[:, fy, fx] = target.raw_out[chosen].T
    out = torch.where(region.mask, torch.lerp(x, filled, region.alpha), x)
    return BackgroundFill(from_float(out, img.dtype), filled, region.alpha, region.mask, region.outside, boxes)


@dataclass
class _Region:
    """Where a box fill writes and reads (phase 1)."""

    alpha: torch.Tensor
    """``(H, W)`` Gaussian-filtered rectangle mask the fill is pasted through."""
    mask: torch.Tensor
    """``(H, W)`` bool, ``alpha > 0``: the pixels filled."""
    outside: torch.Tensor
    """``(H, W)`` bool: the pixels fill values are drawn from."""
    fy: torch.Tensor
    fx: torch.Tensor
    """Coordinates of the fill pixels."""
    fj: torch.Tensor
    """Merged box each fill pixel belongs to."""
    r: int
    """The feather radius."""


def _describe(labels: torch.Tensor, boxes: torch.Tensor, config: BackgroundConfig) -> _Region:
    """Phase 1: the feathered fill region of the merged ``boxes``, the outside pixels and which
    box every fill pixel belongs to."""
    h, w = labels.shape
    sigma, truncate = config.background_sigma, config.background_truncate
    r = feather_radius(sigma, truncate)
    core = boxes_to_mask(boxes, (h, w), r)
    # Replicate padding: a box cut by the frame must be fully replaced up to the frame.
    alpha = feather_mask(core, sigma, truncate, "replicate")
    region = alpha > 0
    outside = _outside(labels, boxes, r, max(16, config.background_candidates))
    # Which box a fill pixel belongs to: rings may overlap, box interiors never do, so paint the
    # grown regions first and the boxes last. One slice per box, not per pixel.
    owner = torch.full((h, w), -1, dtype=torch.int64, device=labels.device)
    bl = boxes.tolist()
    for j, (x0, y0, x1, y1) in enumerate(bl):
        owner[max(0, y0 - 2 * r) : y1 + 2 * r + 1, max(0, x0 - 2 * r) : x1 + 2 * r + 1] = j
    for j, (x0, y0, x1, y1) in enumerate(bl):
        owner[y0 : y1 + 1, x0 : x1 + 1] = j
    fy, fx = torch.nonzero(region, as_tuple=True)
    return _Region(alpha, region, outside, fy, fx, owner[fy, fx], r)


@dataclass
class _Targets:
    """What each fill pixel should look like and how the outside pixels compare (phase 2)."""

    raw_out: torch.Tensor
    """``(O, C)`` raw values of the outside pixels (what gets copied)."""
    key_out: torch.Tensor
    """``(O, C)`` what candidates are compared by (raw values, or their local level)."""
    corners: torch.Tensor
    """``(M, 4, C)`` the corners of every merged box."""
    target: torch.Tensor | None
    """``(P, C)`` bilinear target of every fill pixel (``"bilinear"``), else ``None``."""
    level: torch.Tensor | None
    """``(C, H, W)`` local background level (``"bilinear"``), else ``None``."""


def _targets(x: torch.Tensor, region: _Region, boxes: torch.Tensor, config: BackgroundConfig) -> _Targets:
    """Phase 2: the corners of every box and, for ``"bilinear"``, every fill pixel's target."""
    c, h, w = x.shape
    oy, ox = torch.nonzero(region.outside, as_tuple=True)
    raw_out = x[:, oy, ox].T.contiguous()  # (O, C)
    if config.background_method == "paper":
        # Literal corner pixels of the merged box.
        cy = torch.stack([boxes[:, 1], boxes[:, 1], boxes[:, 3], boxes[:, 3]], 1)
        cx = torch.stack([boxes[:, 0], boxes[:, 2], boxes[:, 0], boxes[:, 2]], 1)
        return _Targets(raw_out, raw_out, x[:, cy, cx].permute(1, 2, 0), None, None)
    level_sigma = config.background_level_sigma
    level, support = local_level(x, region.outside, level_sigma, 2)
    coarse, coarse_support = local_level(x, region.outside, 4 * level_sigma, 4)
    # Corners are sampled at the edge of the filled region (two feather radii out): that is
    # the background the fill must meet, and the cell's own halo has faded there.
    co = _CORNER_OUT * region.r
    bx0 = (boxes[:, 0] - co).clamp(0, w - 1)
    by0 = (boxes[:, 1] - co).clamp(0, h - 1)
    bx1 = (boxes[:, 2] + co).clamp(0, w - 1)
    by1 = (boxes[:, 3] + co).clamp(0, h - 1)
    cy = torch.stack([by0, by0, by1, by1], 1)
    cx = torch.stack([bx0, bx1, bx0, bx1], 1)
    lv = torch.where(support[cy, cx] > 1e-3, level[:, cy, cx], coarse[:, cy, cx])
    lost = coarse_support[cy, cx] <= 1e-3
    if bool(lost.any()):  # no outside pixel even at the coarse scale: the image's median
        lv = torch.where(lost, raw_out.median(0).values.view(c, 1, 1), lv)
    corners = lv.permute(1, 2, 0)  # (M, 4, C)
    # Bilinear target per fill pixel, position clamped to the corner rectangle.
    fy, fx, fj = region.fy, region.fx, region.fj
    u = ((fx - bx0[fj]).float() / (bx1[fj] - bx0[fj]).clamp_min(1).float()).clamp(0, 1).unsqueeze(1)
    v = ((fy - by0[fj]).float() / (by1[fj] - by0[fj]).clamp_min(1).float()).clamp(0, 1).unsqueeze(1)
    cj = corners[fj]  # (P, 4, C)
    target = (1 - u) * (1 - v) * cj[:, 0] + u * (1 - v) * cj[:, 1] + (1 - u) * v * cj[:, 2] + u * v * cj[:, 3]
    return _Targets(raw_out, level[:, oy, ox].T.contiguous(), corners, target, level)


def _choose(
    x: torch.Tensor, region: _Region, t: _Targets, config: BackgroundConfig, generator: torch.Generator,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """Phase 3: for every fill pixel (or block) the best of ``background_candidates`` random
    outside pixels (or windows). Returns ``(chosen, blocks)``: indices into the outside pixels
    (or windows), and ``(unit, dy, dx, ay, ax)`` when the fill is copied in blocks."""
    method, n = config.background_method, config.background_candidates
    patch = int(config.background_patch) if method == "bilinear" else 1
    c = x.shape[0]
    key_out, target = t.key_out, t.target
    blocks = None
    if patch > 1:
        blocks = _patch_units(region.outside, t.level, target, region.fy, region.fx, patch, max(16, n), generator)
    if blocks is not None:
        # Units are blocks and sources are the anchors of all-outside windows (see _patch_units).
        target, key_out, unit, dy, dx, ay, ax = blocks
        p = target.shape[0]
        blocks = (unit, dy, dx, ay, ax)
    else:
        p = region.fy.numel()
    n_out = key_out.shape[0]
    # Each inside pixel (or block) reads n consecutive entries, from a random offset, of a pool of
    # random outside pixels (or windows): every pixel's candidates are still independent uniform draws, at a cost
    # of one random number per pixel instead of n (the RNG dominated large images), and the
    # candidate windows are strided views of the pool, so no (pixels x n) index array is built.
    n_pool = max(4096, min(1 << 16, n_out))
    pool = torch.randint(n_out, (n_pool,), generator=generator, device=generator.device).to(x.device)
    offset = torch.randint(n_pool, (p,), generator=generator, device=generator.device).to(x.device)
    key_pool = key_out[pool]
    windows = torch.cat([key_pool, key_pool[: n - 1]]).unfold(0, n, 1)  # (n_pool, C, n) view
    best = torch.empty(p, dtype=torch.int64, device=x.device)
    step = max(1, _CHUNK_ELEMS // (n * max(c, 1) * (4 if method == "paper" else 1)))
    fj = region.fj
    for s in range(0, p, step):
        cand = windows[offset[s : s + step]]  # (q, C, n)
        if method == "paper":
            # Mean over the four corners of the Euclidean distance over channels.
            diff = cand.unsqueeze(1) - t.corners[fj[s : s + step]].unsqueeze(-1)  # (q, 4, C, n)
            d = diff.square_().sum(2).sqrt_().mean(1)
        else:
            # Squared distance ranks candidates exactly as the distance does.
            d = (cand - target[s : s + step].unsqueeze(-1)).square_().sum(1)
        best[s : s + step] = d.argmin(1)
    return pool[(offset + best).remainder_(n_pool)], blocks


def _fill_by_mask(
    image: torch.Tensor, labels: torch.Tensor, config: BackgroundConfig, halo: int | None, grown: torch.Tensor | None, generator: torch.Generator | None,
) -> BackgroundFill:
    from iaaa.synthesis.halo import measure_halo
    from iaaa.synthesis.inpaint import remove_cells_by_mask

    img = image if image.ndim == 3 else image.unsqueeze(0)
    labels = check_labels(labels).to(img.device)
    if tuple(labels.shape) != tuple(img.shape[-2:]):
        raise IaaaError(f"labels: shape {tuple(labels.shape)} does not match image size {tuple(img.shape[-2:])}")
    if halo is None:
        halo = measure_halo([(img, labels)])[0] if bool((labels > 0).any()) and bool((labels == 0).any()) else 0
    r = remove_cells_by_mask(img, labels, halo, sigma=config.background_level_sigma, block=config.background_patch, n_candidates=config.background_candidates, grown=grown, generator=generator)
    boxes = instance_boxes(labels).to(img.device)
    return BackgroundFill(r.image, to_float(r.image), r.hole.to(torch.float32), r.hole, r.reference, boxes)
