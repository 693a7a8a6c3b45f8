"""How cells touch in the data, and where a new cell can be placed against an existing one.

Measuring (``fit`` and ``iaaa stats``): a cell *touches* another when some pixel of its mask lies
within ``reach`` pixels (Chebyshev distance, a ``2 reach + 1`` square) of a pixel of the other's
mask. :func:`measure_contacts` finds, for every labelled pixel, the largest and the smallest
other id in that square with one max filter and one min filter over the ids (no per-pixel loop);
a pixel whose window holds another id is a *contact pixel* of its cell, and its cell's *contact
length* is the count of such pixels (a bincount). The pairs (own id, largest other id) and (own id,
smallest other id) are the contact edges; their connected components are the *clusters*
(a pixel whose window holds three or more ids records only its extreme two; every such pixel has
many neighbours that record the others, so clusters do not split in practice).

Placing (``placement.contacts="data"``): :func:`contact_candidates` proposes positions that put an
object's mask against an existing cell with no pixel shared. An anchor is drawn among the free
pixels next to a labelled pixel; the object's box is centred on it and slid, one pixel at a time,
along the direction from the neighbour cell's centroid to the anchor, until its mask covers no
labelled pixel. The first free step touches: at the step before, some mask pixel sat on a
labelled pixel, and a one-pixel (king's move) shift leaves that labelled pixel 8-adjacent to it.
The choice is exact and vectorised over candidates x steps with the canvas's row queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from iaaa.errors import IaaaError
from iaaa.label_maps import instance_ids, neighbour_pairs
from iaaa.synthesis.canvas import Canvas
from iaaa.synthesis.halo import grow_to_any

__all__ = ["ContactStats", "measure_contacts", "contact_candidates", "ContactAnchors", "touching_ids", "TouchingShare"]

CLUSTER_BINS = 8
"""Cluster sizes are histogrammed as 1, 2, ..., ``CLUSTER_BINS - 1`` and ``>= CLUSTER_BINS``."""


@dataclass
class ContactStats:
    """How the cells of some images touch (sums, so stats of images add up).

    Attributes:
        cells: cells seen.
        touching: cells within ``reach`` px of another cell.
        contact_px: summed contact length (contact pixels) of the touching cells.
        clusters: ``(CLUSTER_BINS,)`` count of clusters of 1, 2, ... and ``>= CLUSTER_BINS`` cells.
        reach: the distance (pixels) that counts as touching.
    """

    cells: int = 0
    touching: int = 0
    contact_px: int = 0
    clusters: np.ndarray = field(default_factory=lambda: np.zeros(CLUSTER_BINS, dtype=np.int64))
    reach: int = 1

    @property
    def touching_share(self) -> float:
        """Share of cells that touch another (0 without cells)."""
        return self.touching / self.cells if self.cells else 0.0

    @property
    def mean_contact_length(self) -> float:
        """Mean contact pixels per touching cell."""
        return self.contact_px / self.touching if self.touching else 0.0

    @property
    def mean_cluster_size(self) -> float:
        """Mean cells per cluster (the last bin counted at its lower bound)."""
        n = int(self.clusters.sum())
        return float((self.clusters * np.arange(1, CLUSTER_BINS + 1)).sum() / n) if n else 0.0

    def __add__(self, other: "ContactStats") -> "ContactStats":
        if self.reach != other.reach:
            raise IaaaError(f"contact stats: cannot add stats measured at reach {self.reach} and {other.reach}")
        return ContactStats(self.cells + other.cells, self.touching + other.touching, self.contact_px + other.contact_px, self.clusters + other.clusters, self.reach)

    def to_dict(self) -> dict:
        """JSON-ready figures (what ``iaaa stats`` prints)."""
        return {
            "reach_px": self.reach, "cells": self.cells, "touching": self.touching, "touching_share": self.touching_share,
            "mean_contact_px": self.mean_contact_length, "mean_cluster_size": self.mean_cluster_size,
            "clusters": self.clusters.tolist(),
        }


def _edges(lab: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(own, hi, lo)`` per labelled pixel: its id and the largest / smallest other id within
    ``reach`` (its own id where there is none)."""
    size = 2 * reach + 1
    # A value above every id (not the dtype's maximum: the filter's cval goes through float64).
    big = int(lab.max()) + 1
    # The filters are memory-bound: run them on the narrowest type that holds every id and `big`
    # (uint8 for up to 254 cells), then hand back int64 ids.
    narrow = lab.astype(np.min_scalar_type(big), copy=False)
    hi = ndimage.maximum_filter(narrow, size=size, mode="constant", cval=0)
    lo = ndimage.minimum_filter(np.where(narrow > 0, narrow, narrow.dtype.type(big)), size=size, mode="constant", cval=big)
    m = narrow > 0
    return lab[m], hi[m].astype(np.int64), lo[m].astype(np.int64)


def measure_contacts(labels, reach: int = 1) -> ContactStats:
    """Contact statistics of one ``(H, W)`` label map (tensor or array; see module docs)."""
    if not isinstance(reach, int) or isinstance(reach, bool) or not 1 <= reach <= 16:
        raise IaaaError(f"reach: must be an integer in [1, 16], got {reach!r}")
    lab = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if lab.ndim != 2:
        raise IaaaError(f"labels: expected (H, W), got shape {tuple(lab.shape)}")
    lab = lab.astype(np.int64, copy=False)
    if lab.size and int(lab.min()) < 0:
        raise IaaaError(f"labels: label map has negative values (min {int(lab.min())}); 0 is background, k>0 instance k")
    ids = instance_ids(torch.from_numpy(lab)).numpy()
    out = ContactStats(reach=reach)
    if ids.size == 0:
        return out
    # Dense 0..n ids so bincounts and the graph stay small whatever the label values are.
    lut = np.zeros(int(ids[-1]) + 1, dtype=np.int64)
    lut[ids] = np.arange(1, ids.size + 1)
    dense = lut[lab]
    n = ids.size
    own, hi, lo = _edges(dense, reach)
    contact = (hi != own) | (lo != own)
    length = np.bincount(own[contact], minlength=n + 1)[1:]
    a = np.concatenate([own[hi != own], own[lo != own]]) - 1
    b = np.concatenate([hi[hi != own], lo[lo != own]]) - 1
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    out.cells = int(n)
    out.touching = int((length > 0).sum())
    out.contact_px = int(length.sum())
    out.clusters = np.bincount(np.minimum(sizes, CLUSTER_BINS) - 1, minlength=CLUSTER_BINS).astype(np.int64)
    return out


def touching_ids(lab: np.ndarray, reach: int = 1) -> np.ndarray:
    """Boolean ``(max id + 1,)``: which ids of the label map touch another id (entry 0 unused)."""
    out = np.zeros(int(lab.max()) + 1 if lab.size else 1, dtype=bool)
    if out.size > 1 and reach == 1:
        # Reach 1 is the 8-neighbourhood: the touching pixel pairs are read directly (four
        # shifted comparisons, on the narrowest dtype) instead of two filters.
        p, q = neighbour_pairs(lab.astype(np.min_scalar_type(out.size - 1), copy=False))
        out[p] = True
        out[q] = True
    elif out.size > 1:
        own, hi, lo = _edges(lab.astype(np.int64, copy=False), reach)
        out[own[(hi != own) | (lo != own)]] = True
    return out


def contact_candidates(
    labels: np.ndarray, u: np.ndarray, th: int, tw: int, border: int, overlaps
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (top-left of the object's tight box) that put the object against a cell.

    Args:
        labels: the canvas's ``(H, W)`` label map.
        u: ``(n,)`` uniforms, one anchor each.
        th, tw: the object's tight box.
        border: minimum distance between the box and the frame.
        overlaps: ``(x, y) -> (m,) bool``: whether the object's mask at those positions covers a
            labelled pixel (the canvas's exact row query, gap 0).

    Returns ``(xs, ys, ok)``, each ``(n,)``: ``ok`` is false where the anchor's slide left the
    frame before the mask was free (or no cell is there to touch). One query on a label map;
    placement, which asks once per object while it adds cells, keeps a :class:`ContactAnchors`.
    """
    return ContactAnchors(labels).candidates(u, th, tw, border, overlaps)


class ContactAnchors:
    """The anchors of :func:`contact_candidates` (free pixels 8-adjacent to a labelled pixel,
    in raster order) and the cells' centroids, kept for a label map that only gains cells.

    Built in one pass over the map; :meth:`add` updates both for the box a new object was
    written in, so a query costs the object's slide, not a pass over the image (on a 1024 px
    field the whole-map filter and centroid pass were ~45 ms a query). The queries give exactly
    what :func:`contact_candidates` on the current map gives: the same anchors in the same order,
    the same neighbour (the largest id around the anchor) and centroids as exact sums of integer
    coordinates."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        occ = labels > 0
        self.free = grow_to_any(occ, 1) & ~occ
        self.row_counts = self.free.sum(1, dtype=np.int64)
        ly, lx = np.nonzero(occ)
        ids = labels[ly, lx]
        n = int(labels.max(initial=0)) + 1
        self.cnt = np.bincount(ids, minlength=n).astype(np.float64)
        self.sy = np.bincount(ids, ly, minlength=n)
        self.sx = np.bincount(ids, lx, minlength=n)

    def add(self, y: int, x: int, h: int, w: int) -> None:
        """Cells were written inside the box ``(y, x, h, w)`` on pixels that were free (ids above
        every id so far): the anchors around it and the new cells' centroid sums."""
        lab = self.labels
        H, W = lab.shape
        # Anchors change within 1 px of the box; their test reads 1 px further.
        a0, a1, b0, b1 = max(y - 1, 0), min(y + h + 1, H), max(x - 1, 0), min(x + w + 1, W)
        c0, c1, d0, d1 = max(a0 - 1, 0), min(a1 + 1, H), max(b0 - 1, 0), min(b1 + 1, W)
        occ = lab[c0:c1, d0:d1] > 0
        free = (grow_to_any(occ, 1) & ~occ)[a0 - c0 : a1 - c0, b0 - d0 : b1 - d0]
        self.free[a0:a1, b0:b1] = free
        self.row_counts[a0:a1] = self.free[a0:a1].sum(1, dtype=np.int64)
        win = lab[y : y + h, x : x + w]
        first = self.cnt.size
        m = win >= first
        if not m.any():
            return
        wy, wx = np.nonzero(m)
        ids = win[wy, wx] - first
        n = int(ids.max()) + 1
        self.cnt = np.concatenate([self.cnt, np.bincount(ids, minlength=n).astype(np.float64)])
        self.sy = np.concatenate([self.sy, np.bincount(ids, wy + y, minlength=n)])
        self.sx = np.concatenate([self.sx, np.bincount(ids, wx + x, minlength=n)])

    def candidates(self, u: np.ndarray, th: int, tw: int, border: int, overlaps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`contact_candidates` on the current label map."""
        labels = self.labels
        h, w = labels.shape
        n = u.shape[0]
        xs = np.zeros(n, dtype=np.int64)
        ys = np.zeros(n, dtype=np.int64)
        ok = np.zeros(n, dtype=bool)
        total = int(self.row_counts.sum())
        if n == 0 or total == 0:
            return xs, ys, ok
        pick = np.minimum((u * total).astype(np.int64), total - 1)
        cum = np.cumsum(self.row_counts)
        ay = np.searchsorted(cum, pick, side="right")
        k = pick - (cum[ay] - self.row_counts[ay])
        ax = np.empty(n, dtype=np.int64)
        for r in np.unique(ay).tolist():
            sel = ay == r
            ax[sel] = np.flatnonzero(self.free[r])[k[sel]]
        # The touched cell: the largest id in the anchor's 3 x 3 window (the map's max filter).
        oy, ox = np.meshgrid(np.arange(-1, 2), np.arange(-1, 2), indexing="ij")
        yy, xx = ay[:, None] + oy.ravel(), ax[:, None] + ox.ravel()
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        cell = np.where(inside, labels[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)], 0).max(1)
        cnt = np.maximum(self.cnt, 1)
        cy, cx = self.sy / cnt, self.sx / cnt
        dy, dx = ay - cy[cell], ax - cx[cell]
        scale = np.maximum(np.maximum(np.abs(dy), np.abs(dx)), 1e-9)
        sy, sx = np.rint(dy / scale).astype(np.int64), np.rint(dx / scale).astype(np.int64)
        stuck = (sy == 0) & (sx == 0)
        sy[stuck] = 1  # an anchor at a centroid: slide down
        steps = np.arange(max(th, tw) + 2)
        py = (ay - (th - 1) // 2)[:, None] + sy[:, None] * steps[None, :]
        px = (ax - (tw - 1) // 2)[:, None] + sx[:, None] * steps[None, :]
        inside = (px >= border) & (py >= border) & (px <= w - tw - border) & (py <= h - th - border)
        first, ok = _first_free_steps(px, py, inside, overlaps)
        r = np.arange(n)
        return px[r, first], py[r, first], ok


STEP_CHUNK = 8
"""Slide steps tested at a time: an anchor stops at its first free step (the mask query costs
anchors x steps x mask rows; a large multi-cell object slides half its size before it is free)."""


def _first_free_steps(px: np.ndarray, py: np.ndarray, inside: np.ndarray, overlaps) -> tuple[np.ndarray, np.ndarray]:
    """Per anchor (row of ``(n, steps)`` positions): the first step whose mask is free and in the
    frame (0 where none), and whether it touches: the step before it was in the frame and covered
    (a free step 0 need not cover the anchor, so it does not count; see module docs). Steps are
    queried in chunks, each anchor only until its first free step or until its slide has left
    the frame for good (the frame is a rectangle, so a straight slide that leaves it does not
    come back)."""
    n, steps = px.shape
    first = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    prev_hit = np.zeros(n, dtype=bool)  # the last step of the previous chunk: in the frame and covered
    active = np.arange(n)
    for s0 in range(0, steps, STEP_CHUNK):
        if not active.size:
            break
        s1 = min(s0 + STEP_CHUNK, steps)
        ins = inside[active, s0:s1]
        busy = np.ones(ins.shape, dtype=bool)
        if ins.any():
            busy[ins] = overlaps(px[active, s0:s1][ins], py[active, s0:s1][ins])
        free = ~busy & ins
        hit = busy & ins
        has = free.any(1)
        f = free.argmax(1)
        before = np.where(f > 0, hit[np.arange(active.size), np.maximum(f - 1, 0)], prev_hit[active] & (s0 > 0))
        done = active[has]
        first[done] = s0 + f[has]
        ok[done] = before[has]
        prev_hit[active] = hit[:, -1]
        # Still sliding: no free step yet, and the frame not left behind for good.
        gone = ~inside[active, s1 - 1] & inside[active, : s1].any(1)
        active = active[~has & ~gone]
    return first, ok


class TouchingShare:
    """Which cells of the image being built touch another, and how likely the next object must
    be placed against a cell for the image to reach the data's touching share.

    Before object ``j``: the image will hold ``N`` cells (those on the canvas plus every object
    still to come); ``share * N`` of them should touch. The cells that touch anyway (on the
    canvas, or inside a multi-cell object still to come) leave a deficit; each object placed
    against a cell gains its own cells that do not already touch plus, as often as the canvas's
    cells are isolated, its neighbour. The probability is the deficit over the gain of the
    objects still to come (clipped to [0, 1]), so the expected share is the target."""

    def __init__(self, canvas: Canvas, labs: Sequence[np.ndarray], th: np.ndarray, tw: np.ndarray, share: float, reach: int) -> None:
        """``labs``: the objects' label crops (host arrays), ``th``/``tw``: their tight heights and
        widths, in placement order."""
        self.canvas, self.share, self.reach = canvas, share, reach
        k = len(labs)
        self.cells = np.zeros(k, dtype=np.int64)
        self.inner = np.zeros(k, dtype=np.int64)  # cells of the object touching a sibling
        for j, lab in enumerate(labs):
            t = touching_ids(lab, reach)
            self.cells[j] = int(np.count_nonzero(np.bincount(lab.ravel())[1:])) if lab.size else 0
            self.inner[j] = int(t[1:].sum())
        self.th, self.tw = th, tw
        self.touch = np.zeros(canvas.next_id + int(self.cells.sum()) + 1, dtype=bool)
        if canvas.next_id > 1:
            t = touching_ids(canvas.labels, reach)
            self.touch[: t.size] = t
        self.on_canvas = int(np.count_nonzero(np.bincount(canvas.labels.ravel())[1:])) if canvas.next_id > 1 else 0
        self.done = np.zeros(k, dtype=bool)
        self._anchors: ContactAnchors | None = None

    @property
    def anchors(self) -> ContactAnchors:
        """The canvas's contact anchors, built on the first query and kept up to date by
        :meth:`placed`."""
        if self._anchors is None:
            self._anchors = ContactAnchors(self.canvas.labels)
        return self._anchors

    def probability(self, j: int) -> float:
        todo = ~self.done
        todo[:j] = False
        n = self.on_canvas + int(self.cells[todo].sum())
        touching = int(self.touch.sum()) + int(self.inner[todo].sum())
        deficit = self.share * n - touching
        isolated = 1.0 - (int(self.touch.sum()) / self.on_canvas if self.on_canvas else 0.0)
        gain = float((self.cells[todo] - self.inner[todo]).sum()) + isolated * int(todo.sum())
        return min(max(deficit / gain, 0.0), 1.0) if gain > 0 else 0.0

    def skip(self, j: int) -> None:
        self.done[j] = True

    def placed(self, j: int, x: int, y: int) -> None:
        """Object ``j`` was written at ``(x, y)``: its cells join the canvas, and every id within
        ``reach`` of its box is re-checked."""
        self.done[j] = True
        self.on_canvas += int(self.cells[j])
        if self._anchors is not None:
            self._anchors.add(y, x, int(self.th[j]), int(self.tw[j]))
        c, r = self.canvas, self.reach + 1
        win = c.labels[max(y - r, 0) : y + int(self.th[j]) + r, max(x - r, 0) : x + int(self.tw[j]) + r]
        t = touching_ids(win, self.reach)
        if t.size > self.touch.size:
            self.touch = np.concatenate([self.touch, np.zeros(t.size - self.touch.size, dtype=bool)])
        self.touch[: t.size] |= t
