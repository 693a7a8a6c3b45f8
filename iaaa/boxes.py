"""Box geometry on XYXY boxes with inclusive maxima (the convention of :mod:`iaaa.structures`):
merging connected boxes into objects, the union of grown boxes as a mask, the tight box of a mask.

Conversions between label maps, masks and boxes live in :mod:`iaaa.structures`; this module is
what synthesis computes *with* boxes once it has them.
"""

from __future__ import annotations

import numpy as np
import torch

from iaaa.errors import IaaaError

__all__ = ["merge_boxes", "boxes_to_mask", "tight_box"]


def _connected_pairs(b: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    # Row blocks keep the pairwise test at O(block * n) memory for images with thousands of cells.
    rows, cols = [], []
    x0, y0, x1, y1 = b.T
    for s in range(0, len(b), 1024):
        e = min(len(b), s + 1024)
        adj = (
            (x0[s:e, None] - margin <= x1[None, :])
            & (x0[None, :] - margin <= x1[s:e, None])
            & (y0[s:e, None] - margin <= y1[None, :])
            & (y0[None, :] - margin <= y1[s:e, None])
        )
        i, j = np.nonzero(adj)
        rows.append(i + s)
        cols.append(j)
    return np.concatenate(rows), np.concatenate(cols)


def merge_boxes(boxes: torch.Tensor, margin: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge connected boxes repeatedly until no two merged boxes are connected.

    Args:
        boxes: ``(N, 4)`` integer XYXY boxes with inclusive maxima.
        margin: boxes whose pixel gap is smaller than ``margin`` along both axes are connected
            (0: intersecting only; 1: touching too).

    Returns:
        ``(merged, group)``: ``merged`` ``(M, 4)`` int64 boxes, ordered by their lowest member;
        ``group`` ``(N,)`` int64, the merged box each input box ended up in.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise IaaaError(f"boxes: expected (N, 4) XYXY, got shape {tuple(boxes.shape)}")
    if margin < 0:
        raise IaaaError(f"margin must be >= 0, got {margin}")
    device = boxes.device
    cur = boxes.detach().cpu().numpy().astype(np.int64)
    group = np.arange(len(cur), dtype=np.int64)
    while len(cur) > 1:
        i, j = _connected_pairs(cur, margin)
        n = len(cur)
        ncomp, comp = connected_components(coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n)), directed=False)
        if ncomp == n:
            break
        new = np.empty((ncomp, 4), dtype=np.int64)
        new[:, :2] = np.iinfo(np.int64).max
        new[:, 2:] = np.iinfo(np.int64).min
        np.minimum.at(new[:, 0], comp, cur[:, 0])
        np.minimum.at(new[:, 1], comp, cur[:, 1])
        np.maximum.at(new[:, 2], comp, cur[:, 2])
        np.maximum.at(new[:, 3], comp, cur[:, 3])
        group = comp[group]
        cur = new
    return torch.from_numpy(cur).to(device), torch.from_numpy(group).to(device)


def boxes_to_mask(boxes: torch.Tensor, size: tuple[int, int], grow: int = 0) -> torch.Tensor:
    """Boolean ``(H, W)`` union of XYXY (inclusive) boxes grown by ``grow`` pixels, via a 2-D
    difference array so the cost does not depend on the number of boxes."""
    h, w = size
    d = torch.zeros(h + 1, w + 1, dtype=torch.int32, device=boxes.device)
    if boxes.numel():
        b = boxes.to(torch.int64)
        x0 = (b[:, 0] - grow).clamp(0, w)
        y0 = (b[:, 1] - grow).clamp(0, h)
        x1 = (b[:, 2] + grow + 1).clamp(0, w)
        y1 = (b[:, 3] + grow + 1).clamp(0, h)
        one = torch.ones_like(x0, dtype=torch.int32)
        d.index_put_((y0, x0), one, accumulate=True)
        d.index_put_((y0, x1), -one, accumulate=True)
        d.index_put_((y1, x0), -one, accumulate=True)
        d.index_put_((y1, x1), one, accumulate=True)
    return d.cumsum(0).cumsum(1)[:h, :w] > 0


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` (inclusive) of the set pixels of a small NumPy mask, or ``None`` when
    it is empty. Row-major order, for slicing; on the host because placement keeps its
    bookkeeping there."""
    rows, cols = mask.any(1), mask.any(0)
    if not rows.any():
        return None
    y0 = int(rows.argmax())
    y1 = len(rows) - 1 - int(rows[::-1].argmax())
    x0 = int(cols.argmax())
    x1 = len(cols) - 1 - int(cols[::-1].argmax())
    return y0, y1, x0, x1
