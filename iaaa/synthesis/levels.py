"""Background levels in placement (paper section 2.3): the smoothed level map the corner scores
read (:func:`level_map`), the four corners an object must meet (:func:`corner_descriptor`), the
score of a position (:func:`corner_scores`), whether a destination's level belongs to the
group's background (:func:`level_ok`), a pasted ring shifted to the destination's level
(:func:`match_ring`), and an object's intensities mapped from its source image's levels to the
destination's (:func:`intensity_anchors`, :func:`match_intensity`).

The "corner" of an object is the mean of its own surroundings (the feather ring: pixels with
``alpha > 0`` outside the mask) in that quadrant of its box, and the background side is the
Gaussian-smoothed background (``match_sigma``) at the box corner. Single raw pixels are mostly
shot noise in fluorescence images, and after a rotation the literal corner of the box can be
the rotation's fill value rather than image. ``match_sigma=0`` compares raw background pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from iaaa.dtypes import to_float
from iaaa.filters import gaussian_blur

__all__ = ["level_map", "corner_descriptor", "corner_scores", "level_ok", "match_ring", "intensity_anchors", "match_intensity"]


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
    ring = alpha * (lab == 0)
    c = img.shape[0]
    if h >= 2 and w >= 2 and ring.any():
        cy = min(max((y0 + y1 + 1) // 2, 1), h - 1)
        cx = min(max((x0 + x1 + 1) // 2, 1), w - 1)
        wi = img * ring
        num = np.add.reduceat(np.add.reduceat(wi, [0, cy], axis=1), [0, cx], axis=2).reshape(c, 4)
        den = np.add.reduceat(np.add.reduceat(ring, [0, cy], axis=0), [0, cx], axis=1).reshape(4)
        mean = num.sum(1) / den.sum()
        ok = den > 1e-6
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


_ANCHOR_PIXELS = 65536
"""Pixels a median of :func:`intensity_anchors` reads at most (a regular subsample beyond)."""
GAIN_RANGE = (0.125, 8.0)
"""Gains :func:`match_intensity` applies; outside it (or for opposite contrast) it only shifts."""


def intensity_anchors(image: torch.Tensor, labels: torch.Tensor) -> np.ndarray | None:
    """``(2, C)`` float32: per channel the median of the background pixels (label 0) and of the
    cell pixels of one image (float scale ``[0, 1]``); ``None`` without either. The two levels
    that say how an image was exposed: a nucleus cut from a bright, high-gain field and pasted
    into a dim one keeps its own levels unless they are mapped (:func:`match_intensity`)."""
    x = to_float(image if image.ndim == 3 else image.unsqueeze(0))
    c = x.shape[0]
    flat = x.reshape(c, -1)
    lab = labels.reshape(-1).to(flat.device)
    out = []
    for sel in (lab == 0, lab > 0):
        v = flat[:, sel]
        if v.shape[1] == 0:
            return None
        if v.shape[1] > _ANCHOR_PIXELS:
            v = v[:, :: v.shape[1] // _ANCHOR_PIXELS]
        out.append(v.median(dim=1).values.cpu().numpy())
    return np.stack(out).astype(np.float32)


def match_intensity(image: torch.Tensor, source: np.ndarray | None, destination: np.ndarray | None) -> torch.Tensor:
    """Float ``image`` ``(C, h, w)`` in ``[0, 1]`` mapped linearly per channel so that the
    ``source`` anchors (background, cells: :func:`intensity_anchors` of the image it was cut
    from) land on the ``destination``'s: ``y = dst_bg + g (x - src_bg)``, ``g = (dst_cells -
    dst_bg) / (src_cells - src_bg)``, clamped to ``[0, 1]``. A gain outside :data:`GAIN_RANGE`
    (flat or opposite contrast) becomes 1: the background level still moves, the contrast is
    kept. Either anchor ``None``: ``image`` unchanged."""
    if source is None or destination is None:
        return image
    s_bg, s_fg = (torch.as_tensor(v, dtype=image.dtype, device=image.device) for v in source)
    d_bg, d_fg = (torch.as_tensor(v, dtype=image.dtype, device=image.device) for v in destination)
    span = s_fg - s_bg
    gain = torch.where(span.abs() > 1e-4, (d_fg - d_bg) / torch.where(span.abs() > 1e-4, span, torch.ones_like(span)), torch.ones_like(span))
    gain = torch.where((gain >= GAIN_RANGE[0]) & (gain <= GAIN_RANGE[1]), gain, torch.ones_like(gain))
    shape = (-1,) + (1,) * (image.ndim - 1)
    return ((image - s_bg.view(shape)) * gain.view(shape) + d_bg.view(shape)).clamp_(0.0, 1.0)
