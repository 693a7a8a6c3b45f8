"""How much of a removed cell is still visible in a cleaned background ("remnants").

A good cell removal leaves filled regions that no detector can tell from the real background
around them. Three scores compare the filled pixels of a cleaned image with the *true
background* of the original (its pixels outside every removed region), all on the channel mean:

``contrast``
    Per filled region (connected component of the hole): ``|mean of the cleaned region - mean of
    the original ring around it|`` (ring: true-background pixels within ``ring`` pixels, nearest
    region) in units of the background's robust standard deviation. A cell-shaped ghost, a
    dark or bright patch: high. Reported as the area-weighted mean and the 90th percentile.

``blob_<s>``
    Share of filled pixels whose local mean at Gaussian scale ``s`` deviates from the smooth
    background level (normalised convolution over the true background at scale ``level_sigma``)
    by more than the 99th percentile of the same deviation over the true background. About 0.01
    for a fill that looks like real background at that scale; ghosts raise it at the cells'
    scale, speckle at small scales.

``texture``
    Share of filled pixels whose local standard deviation (``window`` x ``window``) lies outside
    the 1st-99th percentile range of the true background's: about 0.02 for real-looking texture,
    high for a smooth or over-noisy fill.

The scores need the original image and the hole (what was removed), so they measure a removal
method, not a lone image.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import torch

from iaaa.dtypes import to_float
from iaaa.errors import IaaaError

__all__ = ["remnant_scores"]


def _norm_conv(x: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    num = ndi.gaussian_filter(x * w, sigma, mode="reflect")
    den = ndi.gaussian_filter(w.astype(np.float64), sigma, mode="reflect")
    return num / np.maximum(den, 1e-9)


def remnant_scores(
    cleaned: torch.Tensor,
    original: torch.Tensor,
    hole: torch.Tensor,
    *,
    scales: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
    ring: int = 8,
    window: int = 7,
    level_sigma: float = 32.0,
) -> dict[str, float]:
    """Remnant scores of ``cleaned`` vs ``original`` (both ``(C, H, W)`` or ``(H, W)``, same
    shape) over the bool ``hole`` ``(H, W)`` that was filled (see the module docs).

    Raises:
        IaaaError: shapes disagree, or the hole is empty or covers the whole image.
    """
    if tuple(cleaned.shape) != tuple(original.shape) or tuple(hole.shape) != tuple(original.shape[-2:]):
        raise IaaaError(f"cleaned {tuple(cleaned.shape)}, original {tuple(original.shape)} and hole {tuple(hole.shape)} must agree")
    hm = hole.detach().cpu().numpy().astype(bool)
    if not hm.any() or hm.all():
        raise IaaaError("hole: must contain some but not all pixels")
    c = to_float(cleaned if cleaned.ndim == 3 else cleaned[None], torch.float64).mean(0).cpu().numpy()
    o = to_float(original if original.ndim == 3 else original[None], torch.float64).mean(0).cpu().numpy()
    bg = ~hm
    ref = o[bg]
    sd = max(1.4826 * float(np.median(np.abs(ref - np.median(ref)))), float(ref.std()) * 0.1, 1e-9)

    comp, n = ndi.label(hm)
    d, (iy, ix) = ndi.distance_transform_edt(bg, return_indices=True)
    ring_lab = np.where(bg & (d <= ring), comp[iy, ix], 0)
    idx = np.arange(1, n + 1)
    area = ndi.sum_labels(np.ones_like(c), comp, idx)
    fill_mean = ndi.mean(c, comp, idx)
    ring_n = ndi.sum_labels(np.ones_like(o), ring_lab, idx)
    ring_mean = np.where(ring_n > 0, ndi.sum_labels(o, ring_lab, idx) / np.maximum(ring_n, 1), np.nan)
    ok = ring_n > 0
    contrast = np.abs(fill_mean - ring_mean)[ok] / sd
    wts = area[ok] / area[ok].sum()
    out = {
        "contrast_mean": float((contrast * wts).sum()),
        "contrast_p90": float(np.percentile(contrast, 90)),
        "regions": int(n),
    }

    level = _norm_conv(o, bg.astype(np.float64), level_sigma)
    # Scores on the true background use pixels whose neighbourhood is true background too.
    for s in scales:
        far = bg & (d > 3 * s)
        if not far.any():
            far = bg
        dev_bg = np.abs(ndi.gaussian_filter(o, s) - level)[far]
        thr = np.percentile(dev_bg, 99)
        dev_fill = np.abs(ndi.gaussian_filter(c, s) - level)[hm]
        out[f"blob_{s:g}"] = float((dev_fill > thr).mean())

    def local_sd(a: np.ndarray) -> np.ndarray:
        m = ndi.uniform_filter(a, window)
        return np.sqrt(np.maximum(ndi.uniform_filter(a * a, window) - m * m, 0))

    far = bg & (d > window)
    if not far.any():
        far = bg
    lo, hi = np.percentile(local_sd(o)[far], [1, 99])
    sd_fill = local_sd(c)[hm]
    out["texture"] = float(((sd_fill < lo) | (sd_fill > hi)).mean())
    return out
