"""What placement knows of each object before it looks at the canvas: its footprint.

An object's footprint is the part of it that can touch the destination (the mask's tight box
grown by the rim and the feather radius), its paste alpha (the mask grown by the rim, feathered),
its label crop on the host and its corner descriptor (:func:`~iaaa.synthesis.levels.corner_descriptor`).

Pooled objects carry the context that the largest shrink and any rotation need
(``CellCompositor.context``: 44 px around an 18 px nucleus with ``object_scale=(0.5, 2)`` and a
rim), and nothing beyond the footprint enters the alpha, the descriptor or the blend, so each
object is cut to it first: every later step works on the pixels that matter instead of up to
30x as many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from iaaa.boxes import tight_box
from iaaa.filters import blur_small, feather_radius
from iaaa.synthesis.canvas import host_arrays
from iaaa.synthesis.halo import dilate_disk_array
from iaaa.synthesis.levels import corner_descriptor

__all__ = ["Footprints", "footprints"]


@dataclass
class Footprints:
    """The footprints of ``k`` objects (see the module docs)."""

    images: list[torch.Tensor]
    """Each object's float image cut to its footprint."""
    alphas: list[torch.Tensor]
    """Paste alpha of each object (its mask, grown by the rim, feathered), same crop."""
    host_alphas: list[np.ndarray]
    """The same alphas on the host (views of them on the CPU)."""
    labs: list[np.ndarray]
    """Label crops on the host, same crop."""
    tights: list[tuple[int, int, int, int] | None]
    """Tight ``(y0, y1, x0, x1)`` box of each mask in its crop (``None``: empty)."""
    th: np.ndarray
    tw: np.ndarray
    desc: np.ndarray
    """``(k, 4, C)`` corner descriptors."""
    reach: int
    """How far the alpha reaches beyond the tight box: rim plus feather radius."""


def footprints(
    images: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], sigma: float, truncate: float, feather: str, rim: int, channels: int,
) -> Footprints:
    """The footprints of float objects ``images[k]`` ``(C, h, w)`` with label crops ``labels[k]``,
    feathered by ``sigma`` / ``truncate`` (``feather="outside"``: mask pixels fully opaque) at
    the edge of the mask grown by ``rim``."""
    reach = feather_radius(sigma, truncate) + rim
    cut_i, labs, covers, tights, alphas = [], [], [], [], []
    for img, lab_np in zip(images, host_arrays(labels)):
        fg = lab_np > 0
        t = tight_box(fg)
        h, w = lab_np.shape
        if t is not None and (t[0] > reach or t[2] > reach or t[1] + reach < h - 1 or t[3] + reach < w - 1):
            y0, x0 = max(t[0] - reach, 0), max(t[2] - reach, 0)
            y1, x1 = min(t[1] + reach + 1, h), min(t[3] + reach + 1, w)
            img, lab_np, fg = img[:, y0:y1, x0:x1], lab_np[y0:y1, x0:x1], fg[y0:y1, x0:x1]
            t = (t[0] - y0, t[1] - y0, t[2] - x0, t[3] - x0)
        # The grown mask on the host (the bookkeeping's side; the corners read it there too),
        # then feathered on the pixels' device.
        cover = dilate_disk_array(fg, rim) if rim else fg
        m = torch.from_numpy(cover).to(device=img.device, dtype=torch.float32)
        a = blur_small(m, sigma, truncate)
        alphas.append(torch.maximum(a, m) if feather == "outside" else a)
        cut_i.append(img)
        labs.append(lab_np)
        covers.append(cover)
        tights.append(t)
    imgs_np = host_arrays(cut_i)
    alph_np = host_arrays(alphas)
    k = len(cut_i)
    desc = np.zeros((k, 4, channels), dtype=np.float32)
    th = np.zeros(k, dtype=np.int64)
    tw = np.zeros(k, dtype=np.int64)
    for j, t in enumerate(tights):
        if t is not None:
            th[j], tw[j] = t[1] - t[0] + 1, t[3] - t[2] + 1
            desc[j] = corner_descriptor(imgs_np[j], covers[j], alph_np[j], t)
    return Footprints(cut_i, alphas, alph_np, labs, tights, th, tw, desc, reach)
