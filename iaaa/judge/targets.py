"""Three-class segmentation targets from instance label maps, and instances back from them.

A small U-Net cannot output instance ids, so it learns three classes per pixel:
``0`` background, ``1`` cell interior, ``2`` cell boundary (a pixel of a cell with a pixel of
another label, background included, among its 4 neighbours). Boundaries separate touching
cells; instances are recovered by seeded growth: each connected component of the interior is
a seed, and every foreground pixel (interior or boundary) joins the seed it is connected to through the foreground, growing from every seed
at the same speed.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from iaaa.errors import IaaaError
from iaaa.structures import relabel_sequential

__all__ = ["BACKGROUND", "INTERIOR", "BOUNDARY", "class_targets", "instances_from_classes"]

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def class_targets(labels: torch.Tensor, width: int = 1) -> torch.Tensor:
    """``(H, W)`` or ``(B, H, W)`` int64 class map from a label map: 0 background, 1 interior,
    2 boundary.

    A cell pixel is boundary when a pixel within ``width`` steps (4-connected, repeated) has
    another label. The frame is not a boundary (replicate padding): a cell cut by a crop edge
    keeps its interior there, as it would in the full image."""
    if labels.ndim not in (2, 3):
        raise IaaaError(f"labels: expected (H, W) or (B, H, W), got shape {tuple(labels.shape)}")
    if width < 1:
        raise IaaaError(f"width: must be >= 1, got {width}")
    lab = labels.to(torch.int64)
    batched = lab if lab.ndim == 3 else lab[None]
    edge = torch.zeros_like(batched, dtype=torch.bool)
    cur = batched
    for _ in range(width):
        # Min and max over the 4-neighbourhood differ from the centre exactly where a neighbour
        # has another label; repeating the step widens the band by one pixel each time.
        # Replicate padding by index, not through float: label ids above 2**24 must stay exact.
        p = torch.cat([cur[:, :1], cur, cur[:, -1:]], 1)
        p = torch.cat([p[:, :, :1], p, p[:, :, -1:]], 2)
        neigh = torch.stack([p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]])
        edge |= (neigh != batched[None]).any(0)
        if width > 1:
            # Spread the mismatch: a pixel next to an edge pixel is one step farther in.
            cur = torch.where(edge, -1, batched)
    out = torch.where(batched > 0, torch.where(edge, BOUNDARY, INTERIOR), BACKGROUND)
    return out if labels.ndim == 3 else out[0]


def instances_from_classes(classes: torch.Tensor, min_area: int = 0) -> torch.Tensor:
    """Instance label map ``(H, W)`` int64 (ids ``1..N``) from a 3-class map.

    Seeds are the 4-connected components of the interior; they grow into the foreground
    (interior or boundary) one 4-connected step at a time (a cross-shaped maximum filter over the
    whole map per step, so the cost is the band's thickness, not the number of cells) until no
    foreground pixel next to a grown one is left. Foreground components that hold no seed
    become instances of their own. Instances smaller than ``min_area`` pixels are dropped."""
    if classes.ndim != 2:
        raise IaaaError(f"classes: expected (H, W), got shape {tuple(classes.shape)}")
    cls = classes.detach().cpu().numpy()
    fg = cls != BACKGROUND
    out, n_seeds = ndimage.label(cls == INTERIOR)
    out = out.astype(np.int64)
    cross = ndimage.generate_binary_structure(2, 1)
    todo = fg & (out == 0)
    while n_seeds and todo.any():
        grown = ndimage.grey_dilation(out, footprint=cross)
        new = todo & (grown > 0)
        if not new.any():
            break
        out[new] = grown[new]
        todo &= ~new
    orphans, n_orphans = ndimage.label(todo)
    if n_orphans:
        out = np.where(orphans > 0, orphans + n_seeds, out)
    labels = torch.from_numpy(out)
    if min_area > 0 and labels.any():
        areas = torch.bincount(labels.reshape(-1))
        labels = torch.where(areas[labels] < min_area, 0, labels)
    return relabel_sequential(labels)[0].to(classes.device)
