"""What placement knows of each object before it looks at the canvas: its footprint.

An object's footprint is the part of it that can touch the destination (the mask's tight box
grown by the rim and the feather radius), its paste alpha (the mask grown by the rim, feathered),
its label crop on the host and its corner descriptor (:func:`~iaaa.synthesis.levels.corner_descriptors`).

Pooled objects carry the context that the largest shrink and any rotation need
(``CellCompositor.context``: 44 px around an 18 px nucleus with ``object_scale=(0.5, 2)`` and a
rim), and nothing beyond the footprint enters the alpha, the descriptor or the blend, so each
object is cut to it first: every later step works on the pixels that matter instead of up to
30x as many.

A sample's objects go through these steps together, zero-padded into stacks of similar sizes
(:func:`stack_groups`): one tight-box pass, one dilation, one blur product and one descriptor
product per stack instead of a dozen small calls per object. Padding never changes a value:
each object sits at the top left of its plane, the dilation's spill into the padding is cut
off before the blur, and the blur and descriptor products only add zeros for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from iaaa.boxes import tight_boxes
from iaaa.filters import blur_small, feather_radius
from iaaa.synthesis.canvas import host_arrays
from iaaa.synthesis.halo import dilate_disk_array
from iaaa.synthesis.levels import corner_descriptors

__all__ = ["Footprints", "footprints", "stack_groups"]


@dataclass
class Footprints:
    """The footprints of ``k`` objects (see the module docs)."""

    images: list[torch.Tensor]
    """Each object's float image cut to its footprint."""
    alphas: list[torch.Tensor]
    """Paste alpha of each object (its mask, grown by the rim, feathered), same crop: a view
    into its stack's alphas, not a contiguous tensor of its own."""
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


def stack_groups(shapes: np.ndarray, waste: float = 2.0) -> list[np.ndarray]:
    """Indices of ``(h, w)`` ``shapes`` ``(k, 2)`` to pad into one stack each: by decreasing
    area, an object joins the current stack while its padded size stays within ``waste`` times
    the pixels of its objects (one large object among small ones gets its own)."""
    order = np.argsort(-(shapes[:, 0] * shapes[:, 1]), kind="stable")
    groups: list[np.ndarray] = []
    members: list[int] = []
    hmax = wmax = area = 0
    for j in order.tolist():
        h, w = int(shapes[j, 0]), int(shapes[j, 1])
        if members and (len(members) + 1) * max(hmax, h) * max(wmax, w) > waste * (area + h * w):
            groups.append(np.array(members))
            members, hmax, wmax, area = [], 0, 0, 0
        members.append(j)
        hmax, wmax, area = max(hmax, h), max(wmax, w), area + h * w
    if members:
        groups.append(np.array(members))
    return groups


def footprints(
    images: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], sigma: float, truncate: float, feather: str, rim: int, channels: int,
) -> Footprints:
    """The footprints of float objects ``images[k]`` ``(C, h, w)`` with label crops ``labels[k]``,
    feathered by ``sigma`` / ``truncate`` (``feather="outside"``: mask pixels fully opaque) at
    the edge of the mask grown by ``rim``."""
    reach = feather_radius(sigma, truncate) + rim
    labs_np = host_arrays(labels)
    pixels_np = host_arrays(images)
    k = len(labs_np)
    d = Footprints([None] * k, [None] * k, [None] * k, [None] * k, np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64),
                   np.zeros((k, 4, channels), dtype=np.float32), reach)
    shapes = np.array([a.shape for a in labs_np], dtype=np.int64).reshape(k, 2)
    for group in stack_groups(shapes):
        _footprint_stack(group, images, pixels_np, labs_np, shapes[group], sigma, truncate, feather, rim, d)
    return d


def _footprint_stack(
    group: np.ndarray, images: Sequence[torch.Tensor], pixels_np: list[np.ndarray], labs_np: list[np.ndarray], shapes: np.ndarray,
    sigma: float, truncate: float, feather: str, rim: int, d: Footprints,
) -> None:
    """Fill ``d``'s entries of the objects ``group`` (of crop ``shapes``) from one padded stack
    (``pixels_np``, ``labs_np``: every object's image and labels on the host)."""
    n = len(group)
    fg = np.zeros((n,) + tuple(shapes.max(0)), dtype=bool)
    for i, j in enumerate(group.tolist()):
        np.greater(labs_np[j], 0, out=fg[i, : shapes[i, 0], : shapes[i, 1]])
    tight, found = tight_boxes(fg)
    # The footprint: the tight box grown by the reach, within the crop (an empty mask keeps it all).
    r = d.reach
    lo = np.where(found[:, None], np.maximum(tight[:, 0::2] - r, 0), 0)
    hi = np.where(found[:, None], np.minimum(tight[:, 1::2] + r + 1, shapes), shapes)
    sizes = hi - lo
    tight_cut = tight - np.repeat(lo, 2, axis=1)
    hc, wc = (int(v) for v in sizes.max(0))
    device = images[int(group[0])].device
    cut = np.zeros((n, hc, wc), dtype=bool)
    pixels = np.zeros((n, pixels_np[int(group[0])].shape[0], hc, wc), dtype=np.float32)
    for i, j in enumerate(group.tolist()):
        (y0, x0), (y1, x1) = lo[i].tolist(), hi[i].tolist()
        cut[i, : y1 - y0, : x1 - x0] = fg[i, y0:y1, x0:x1]
        pixels[i, :, : y1 - y0, : x1 - x0] = pixels_np[j][:, y0:y1, x0:x1]
        d.images[j], d.labs[j] = images[j][:, y0:y1, x0:x1], labs_np[j][y0:y1, x0:x1]
        d.tights[j] = tuple(tight_cut[i].tolist()) if found[i] else None
    # The grown mask on the host (the bookkeeping's side; the corners read it there too), cut
    # back to each footprint, then feathered on the pixels' device.
    if rim:
        inside = (np.arange(hc)[None, :, None] < sizes[:, 0, None, None]) & (np.arange(wc)[None, None, :] < sizes[:, 1, None, None])
        cover = dilate_disk_array(cut, rim) & inside
    else:
        cover = cut
    m = torch.from_numpy(cover).to(device=device, dtype=torch.float32)
    a = blur_small(m, sigma, truncate)
    alpha = torch.maximum(a, m) if feather == "outside" else a
    for i, j in enumerate(group.tolist()):
        d.alphas[j] = alpha[i, : sizes[i, 0], : sizes[i, 1]]
    spans = (tight_cut[:, 1::2] - tight_cut[:, 0::2] + 1) * found[:, None]
    d.th[group], d.tw[group] = spans[:, 0], spans[:, 1]
    desc = corner_descriptors(pixels, cover, alpha.cpu().numpy(), sizes, tight_cut)
    d.desc[group] = np.where(found[:, None, None], desc, 0.0)
