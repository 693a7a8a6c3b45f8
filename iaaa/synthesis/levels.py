"""Background levels in placement (paper section 2.3): the smoothed level map the corner scores
read (:func:`level_map`), the four corners an object must meet (:func:`corner_descriptor`), the
score of a position (:func:`corner_scores`), whether a destination's level belongs to the
group's background (:func:`level_ok`), a pasted ring shifted to the destination's level
(:func:`match_ring`), and an object's intensities mapped from its source image's levels to the
destination's (:func:`intensity_anchors`, :func:`match_intensity`), and whether a set of images
mixes exposures enough for ``match_intensity="auto"`` to map (:func:`exposure_spread`,
:func:`mixed_exposures`).

The "corner" of an object is the mean of its own surroundings (the feather ring: pixels with
``alpha > 0`` outside the mask) in that quadrant of its box, and the background side is the
Gaussian-smoothed background (``match_sigma``) at the box corner. Single raw pixels are mostly
shot noise in fluorescence images, and after a rotation the literal corner of the box can be
the rotation's fill value rather than image. ``match_sigma=0`` compares raw background pixels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from iaaa.dtypes import to_float
from iaaa.filters import gaussian_blur

__all__ = [
    "level_map", "corner_descriptor", "corner_scores", "level_ok", "match_ring", "intensity_anchors", "match_intensity",
    "exposure_spread", "mixed_exposures", "MIXED_SPREAD",
]


def level_map(background: torch.Tensor, match_sigma: float) -> np.ndarray:
    """The background as placement scores see it: float ``(C, H, W)`` on the host, smoothed by
    ``match_sigma`` (0: raw pixels)."""
    x = to_float(background if background.ndim == 3 else background.unsqueeze(0))
    return gaussian_blur(x, match_sigma, 3.0, "reflect").cpu().numpy() if match_sigma > 0 else x.cpu().numpy()


def corner_descriptor(img: np.ndarray, lab: np.ndarray, alpha: np.ndarray, t: tuple[int, int, int, int]) -> np.ndarray:
    """``(4, C)``: mean surroundings (feather-weighted ring outside the mask) in the upper-left,
    upper-right, lower-left and lower-right quadrant of the object's box; falls back to the
    whole ring's mean for an empty quadrant and to the box's corner pixels without a ring."""
    y0, y1, x0, x1 = t
    h, w = lab.shape
    c = img.shape[0]
    if h >= 2 and w >= 2:
        ring = alpha * (lab == 0)
        cy = min(max((y0 + y1 + 1) // 2, 1), h - 1)
        cx = min(max((x0 + x1 + 1) // 2, 1), w - 1)
        # The quadrants' weights first: they are sums of non-negative weights, so all zero
        # exactly when the ring is empty (one test of 4 values instead of the whole crop).
        den = np.add.reduceat(np.add.reduceat(ring, [0, cy], axis=0), [0, cx], axis=1).reshape(4)
        if den.any():
            num = np.add.reduceat(np.add.reduceat(img * ring, [0, cy], axis=1), [0, cx], axis=2).reshape(c, 4)
            ok = den > 1e-6
            if ok.all():  # the usual case: every quadrant has ring, no fallback to build
                return num.T / den[:, None]
            mean = num.sum(1) / den.sum()
            return np.where(ok[:, None], num.T / np.where(ok, den, 1.0)[:, None], mean[None, :])
    return img[:, [y0, y0, y1, y1], [x0, x1, x0, x1]].T


def corner_scores(level: np.ndarray, desc: np.ndarray, h: int, w: int, xs: np.ndarray, ys: np.ndarray, reject: tuple | None) -> tuple[np.ndarray, np.ndarray]:
    """Corner scores of an ``h`` x ``w`` object with corner descriptor ``desc`` ``(4, C)`` at
    positions ``xs``, ``ys`` (in the frame) of the level map ``level``, and whether the level
    rejection (:func:`level_ok`) allows them."""
    cx = np.stack([xs, xs + w - 1, xs, xs + w - 1], -1)
    cy = np.stack([ys, ys, ys + h - 1, ys + h - 1], -1)
    at = level[:, cy, cx]  # (C, m, 4)
    diff = at - desc.T[:, None, :]
    scores = np.sqrt((diff * diff).sum(0)).mean(-1)
    return scores, (level_ok(at, reject) if reject is not None else np.ones(len(xs), dtype=bool))


def level_ok(at: np.ndarray, reject: tuple) -> np.ndarray:
    """Whether every corner level ``at`` ``(C, ..., 4)`` lies within ``z`` robust standard
    deviations of the group's median background level (``reject = ((median, scale), z)``)."""
    (center, scale), z = reject
    shape = (-1,) + (1,) * (at.ndim - 1)
    dev = np.abs(at.astype(np.float32) - center.reshape(shape)) / np.maximum(scale, 1e-6).reshape(shape)
    return dev.max(axis=(0, at.ndim - 1)) <= z


def match_ring(src: torch.Tensor, alpha: torch.Tensor, lab: np.ndarray, level: np.ndarray) -> torch.Tensor:
    """``src`` with its ring (alpha > 0 outside the mask) shifted by the destination's mean level
    minus the ring's own mean level, both weighted by the alpha (one offset per channel: the
    ring keeps its texture and meets the local background)."""
    ring = alpha * torch.from_numpy(lab == 0).to(alpha.device)
    wsum = float(ring.sum())
    if wsum <= 1e-6:
        return src
    dest = torch.from_numpy(level.astype(np.float32)).to(src.device)
    shift = ((dest - src) * ring).sum((-2, -1)) / wsum  # (C,)
    return (src + shift[:, None, None] * (ring > 0)).clamp_(0.0, 1.0)


_ANCHOR_PIXELS = 16384
"""Pixels :func:`intensity_anchors` reads at most (a regular subsample of the image beyond: a
median needs no more, and PasteCells measures every sample it pastes into)."""
GAIN_RANGE = (0.125, 8.0)
"""Gains :func:`match_intensity` applies; outside it (or for opposite contrast) it only shifts."""
CONTRAST_FLOOR = 3.0
"""A contrast (cells minus background) counts only beyond this many background noise sds."""
MIXED_SPREAD = 2.0
"""Ratio between the largest and the smallest measured cell contrast of a set of images from
which ``match_intensity="auto"`` maps objects: a factor of 2 in gain or exposure is a different
acquisition, not the spread of one setting (DSB 2018's training images: 9.2; any 4 of them:
2.4-4.9; phase contrast has no measured contrast at all)."""


def intensity_anchors(image: torch.Tensor, labels: torch.Tensor) -> np.ndarray | None:
    """``(3, C)`` float32: per channel the median of the background pixels (label 0), the
    median of the cell pixels, and the background's robust noise sd (1.4826 MAD) of one image
    (float scale ``[0, 1]``); ``None`` without background or cells. The levels that say how an
    image was exposed: a nucleus cut from a bright, high-gain field and pasted into a dim one
    keeps its own levels unless they are mapped (:func:`match_intensity`)."""
    x = to_float(image if image.ndim == 3 else image.unsqueeze(0))
    c = x.shape[0]
    flat = x.reshape(c, -1)
    lab = labels.reshape(-1).to(flat.device)
    if lab.numel() > _ANCHOR_PIXELS:
        step = -(-lab.numel() // _ANCHOR_PIXELS)
        flat, lab = flat[:, ::step], lab[::step]
    # On the host whatever the device (a subsample of at most _ANCHOR_PIXELS values): the lower
    # median of np.partition is torch.median's, at half its cost on the CPU.
    # The subsample made contiguous once: the comparisons and selections below then run 3-5x
    # faster than on the strided views; np.compress picks the same values in the same order as
    # boolean indexing (slow along the last axis of a 2-D array).
    flat, lab = np.ascontiguousarray(flat.detach().cpu().numpy()), np.ascontiguousarray(lab.cpu().numpy())
    out = []
    for sel in (lab == 0, lab > 0):
        v = np.compress(sel, flat, axis=1)
        if v.shape[1] == 0:
            return None
        k = (v.shape[1] - 1) // 2
        med = np.partition(v, k, axis=1)[:, k]
        out.append(med)
        if len(out) == 1:
            noise = 1.4826 * np.partition(np.abs(v - med[:, None]), k, axis=1)[:, k]
    return np.stack(out + [noise]).astype(np.float32)


def match_intensity(image: torch.Tensor, source: np.ndarray | None, destination: np.ndarray | None) -> torch.Tensor:
    """Float ``image`` ``(C, h, w)`` in ``[0, 1]`` mapped linearly per channel so that the
    ``source`` anchors (background, cells, background noise: :func:`intensity_anchors` of the
    image it was cut from) land on the ``destination``'s: ``y = dst_bg + g (x - src_bg)``, ``g =
    (dst_cells - dst_bg) / (src_cells - src_bg)``, clamped to ``[0, 1]``.

    The gain is 1 (the background level still moves, the object keeps its contrast) where it
    would not be measured: where either contrast is within :data:`CONTRAST_FLOOR` noise sds of
    zero (phase contrast: cells about as bright as the background on average, halo and interior
    cancelling), or the gain leaves :data:`GAIN_RANGE` (opposite contrast). Either anchor
    ``None``: ``image`` unchanged."""
    if source is None or destination is None:
        return image
    s_bg, s_fg, s_sd = source.astype(np.float64)
    d_bg, d_fg, d_sd = destination.astype(np.float64)
    s_span, d_span = s_fg - s_bg, d_fg - d_bg
    measured = (np.abs(s_span) > np.maximum(CONTRAST_FLOOR * s_sd, 1e-4)) & (np.abs(d_span) > np.maximum(CONTRAST_FLOOR * d_sd, 1e-4))
    gain = np.where(measured, d_span / np.where(measured, s_span, 1.0), 1.0)
    gain = np.where((gain >= GAIN_RANGE[0]) & (gain <= GAIN_RANGE[1]), gain, 1.0)
    shape = (-1,) + (1,) * (image.ndim - 1)
    g = torch.as_tensor(gain, dtype=image.dtype, device=image.device).view(shape)
    sb = torch.as_tensor(s_bg, dtype=image.dtype, device=image.device).view(shape)
    db = torch.as_tensor(d_bg, dtype=image.dtype, device=image.device).view(shape)
    return ((image - sb) * g + db).clamp_(0.0, 1.0)


def exposure_spread(anchors: Sequence[np.ndarray | None]) -> tuple[int, float | None]:
    """How a set of images was exposed, from their :func:`intensity_anchors` (``(3, C)`` or
    channel-averaged ``(3,)``; ``None`` entries are skipped): how many images have a cell
    contrast beyond :data:`CONTRAST_FLOOR` noise sds, and the ratio of the largest of those
    contrasts to the smallest (``None`` without any). Channels are averaged first."""
    rows = [np.asarray(a, dtype=np.float64).reshape(3, -1).mean(axis=1) for a in anchors if a is not None]
    if not rows:
        return 0, None
    v = np.stack(rows)
    contrast = np.abs(v[:, 1] - v[:, 0])
    c = contrast[contrast > np.maximum(CONTRAST_FLOOR * v[:, 2], 1e-4)]
    return int(len(c)), (float(c.max() / c.min()) if len(c) else None)


def mixed_exposures(anchors: Sequence[np.ndarray | None], spread: float = MIXED_SPREAD) -> bool:
    """Whether images of these anchors mix exposures (what ``match_intensity="auto"`` decides
    by): at least two of them have a measured cell contrast and those contrasts differ by a
    factor of ``spread`` or more (:func:`exposure_spread`)."""
    n, ratio = exposure_spread(anchors)
    return n >= 2 and ratio is not None and ratio >= spread
