"""The canvas an image is built on: its label map, the composite, and the occupancy
bookkeeping that tells placement where an object may go.

Occupancy is a table of *row prefix counts* of the labelled pixels (see :class:`Canvas`): a
row segment is counted in O(1), a box in one read per row, an exact query of an object's grown
mask in one read per run of the mask (:func:`grown_runs`), and marking a pasted object updates
only its own rows, to the right of it. It runs in NumPy on the host: a few small arrays per
object.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from iaaa.errors import IaaaError

__all__ = ["Canvas", "occupancy_table", "empty_table", "surviving_ids", "grown_runs", "host_arrays"]


def occupancy_table(labels: np.ndarray) -> np.ndarray:
    """The occupancy table of ``labels > 0`` that :class:`Canvas` keeps: ``(H + 1, W + 1)``
    int32, ``t[y, x]`` = labelled pixels of row ``y`` left of column ``x``; row ``H`` stays 0
    (box queries send the rows a box does not reach there)."""
    h, w = labels.shape
    t = np.zeros((h + 1, w + 1), dtype=np.int32)
    inner = t[:h, 1:]
    np.greater(labels, 0, out=inner, casting="unsafe")
    np.cumsum(inner, axis=1, out=inner)
    return t


def empty_table(h: int, w: int) -> np.ndarray:
    """An occupancy table with nothing marked: a canvas built on it lets objects go on top of
    the labels it starts from (occlusion), but never on each other."""
    return np.zeros((h + 1, w + 1), dtype=np.int32)


def surviving_ids(labels: np.ndarray, next_id: int) -> tuple[np.ndarray, np.ndarray | None]:
    """After pasting on top of cells: ``alive[k]``, whether id ``k`` (of ``0 .. next_id - 1``;
    ``alive[0]`` is false) is still present in ``labels``, and the table renumbering the
    survivors ``1..K`` (``None`` when every id survives)."""
    alive = np.bincount(labels.ravel(), minlength=next_id)[:next_id] > 0
    alive[0] = False
    keep = np.flatnonzero(alive)
    if len(keep) == next_id - 1:
        return alive, None
    lut = np.zeros(next_id, dtype=np.int64)
    lut[keep] = np.arange(1, len(keep) + 1)
    return alive, lut


class Canvas:
    """The label map, occupancy table and composite of one image being built.

    Args:
        image: float ``(C, H, W)`` composite, blended into in place.
        level: ``(C, H, W)`` host array, the background as corner scores see it (:func:`level_map`).
        labels: existing ``(H, W)`` int64 host label map, kept and avoided (``None``: empty).
        gap: minimum free pixels between a new object and any labelled pixel.
        border: minimum distance between an object's box and the frame.
        table, next_id: optional precomputed :func:`occupancy_table` of ``labels`` (any integer
            dtype that holds the width; copied as int32) and its ``max + 1``.

    Occupancy is a table of row prefix counts (:func:`occupancy_table`): a box query reads
    two entries per row of the box, and marking an object adds its own rows' prefix counts and
    carries each row's total along the rest of that row: ``O(rows x width)`` for the rows the
    object covers. (A summed-area table answers a box in four reads but must be carried down
    every row below an object too: kept per band of 64 rows it cost 3-4x more per mark, and
    its two cumulative sums twice as much to build per real image.)"""

    def __init__(
        self, image: torch.Tensor, level: np.ndarray, labels: np.ndarray | None = None, gap: int = 0, border: int = 0,
        table: np.ndarray | None = None, next_id: int | None = None,
    ) -> None:
        self.out = image
        self.level = level
        c, h, w = image.shape
        self.h, self.w = h, w
        if labels is None:
            self.table = empty_table(h, w)
            self.labels = np.zeros((h, w), dtype=np.int64)
            self.next_id = 1
        else:
            self.labels = labels
            # `table`: occupancy_table(labels) computed once for a label map that many canvases
            # start from (a copy costs less than the two cumulative sums; a stored table may be
            # narrower, and marks need int32).
            self.table = occupancy_table(labels) if table is None else table.astype(np.int32)
            self.next_id = (int(labels.max()) + 1 if labels.size else 1) if next_id is None else int(next_id)
        self.gap, self.border = int(gap), int(border)

    def overlaps(self, x: np.ndarray, y: np.ndarray, runs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Whether the object's mask grown by ``gap`` hits a labelled pixel, per candidate. The
        grown mask is given as horizontal runs ``(dy, dx0, dx1)`` (inclusive, relative to the
        box corner); each run is one row segment of the table, so the cost is ``candidates x
        runs`` rather than ``candidates x pixels``. Parts of runs off the frame are ignored: rows
        above or below it read the zero row H, columns are clipped to it."""
        dy, dx0, dx1 = runs
        yy = y[:, None] + dy[None, :]
        yy = np.where((yy >= 0) & (yy < self.h), yy, self.h)
        x0 = np.clip(x[:, None] + dx0[None, :], 0, self.w)
        x1 = np.clip(x[:, None] + dx1[None, :] + 1, 0, self.w)
        t = self.table
        return (t[yy, x1] > t[yy, x0]).any(1)

    def occupied(self, x: np.ndarray, y: np.ndarray, th: int, tw: int) -> np.ndarray:
        """Labelled pixels inside each candidate box grown by ``gap`` (candidates lie in the frame)."""
        g = self.gap
        x0 = np.maximum(x - g, 0)[:, None]
        x1 = np.minimum(x + (tw + g), self.w)[:, None]
        y0 = np.maximum(y - g, 0)
        y1 = np.minimum(y + (th + g), self.h)
        # Every row a grown box of this height can span, all candidates at once: (n, rows); rows
        # below a clipped box read the zero row H. Flat takes: 1.4x a 2-D fancy index.
        rows = y0[:, None] + np.arange(th + 2 * g)
        rows = np.where(rows < y1[:, None], rows, self.h) * (self.w + 1)
        flat = self.table.reshape(-1)
        return (flat.take(rows + x1) - flat.take(rows + x0)).sum(1)

    def write_labels(self, lab: np.ndarray, y: int, x: int, max_id: int | None = None) -> tuple[int, np.ndarray]:
        """Write an object's label crop ``lab`` (cells ``1..k``, 0 elsewhere) at ``(y, x)`` with
        fresh ids, mark it occupied and advance :attr:`next_id`. The ids present in ``lab`` (a
        transform can make a tiny cell vanish) are renumbered densely from ``next_id`` in their
        order. Returns ``(first new id, the ids of lab that were present)``. ``max_id``: the
        largest id ``lab`` may hold (:class:`IaaaError` beyond it, before anything is written)."""
        count = np.bincount(lab.ravel())
        if max_id is not None and len(count) - 1 > max_id:
            raise IaaaError(f"label value {len(count) - 1} but only {max_id} class ids")
        m = lab > 0
        first = self.next_id
        region = self.labels[y : y + lab.shape[0], x : x + lab.shape[1]]
        # One cell (the usual object): its id is 1, no search of the counts needed.
        present = _ONE_ID if len(count) == 2 else np.flatnonzero(count[1:]) + 1
        if len(present) == 1:
            region[m] = first
        else:
            lut = np.zeros(len(count), dtype=np.int64)
            lut[present] = first + np.arange(len(present))
            region[m] = lut[lab[m]]
        self.mark(m, y, x)
        self.next_id = first + len(present)
        return first, present

    def mark(self, mask: np.ndarray, y: int, x: int) -> None:
        """Add ``mask`` (bool ``(h, w)``, inside the frame at ``(y, x)``, on free pixels) to
        the occupancy table: its rows' prefix counts, then each row's total carried along the
        rest of the row."""
        th, tw = mask.shape
        p = np.cumsum(mask, axis=1, dtype=np.int32)
        t = self.table
        t[y : y + th, x + 1 : x + tw + 1] += p
        t[y : y + th, x + tw + 1 :] += p[:, -1:]


_ONE_ID = np.ones(1, dtype=np.int64)
_ONE_ID.flags.writeable = False


def _dilate_rows(a: np.ndarray, g: int) -> np.ndarray:
    """Counts of ``a`` in a window of ``2g + 1`` rows (> 0 where the max filter is set), by one
    cumulative sum: cheaper than a filter call on the small crops placement sees."""
    n = a.shape[0]
    c = np.zeros((n + 1, *a.shape[1:]), dtype=np.int32)
    np.cumsum(a, axis=0, out=c[1:])
    r = np.arange(n)
    return c[np.minimum(r + g + 1, n)] - c[np.maximum(r - g, 0)]


def grown_runs(lab: np.ndarray, tight: tuple[int, int, int, int], gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The object's mask grown by ``gap`` (a square, the support of the separable feather) as
    horizontal runs ``(dy, dx0, dx1)``, inclusive, relative to the top-left of its tight box."""
    y0, y1, x0, x1 = tight
    m = lab[y0 : y1 + 1, x0 : x1 + 1] > 0
    h, w = m.shape
    # One zero column each side so every run has a rising and a falling edge.
    grown = np.zeros((h + 2 * gap, w + 2 * gap + 2), dtype=np.int32)
    grown[gap : gap + h, gap + 1 : gap + 1 + w] = m
    if gap > 0:
        grown = _dilate_rows(_dilate_rows(grown, gap).T, gap).T
        grown[:, 0] = grown[:, -1] = 0
    e = np.diff((grown > 0).astype(np.int8), axis=1)
    ry, start = np.nonzero(e == 1)
    _, stop = np.nonzero(e == -1)  # row-major order pairs every start with its stop
    return ry - gap, start - gap, stop - 1 - gap


def host_arrays(tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """NumPy views/copies of same-dtype tensors with one device transfer for all of them (the
    canvas bookkeeping runs on the host; the pixels may live on a GPU)."""
    if not tensors:
        return []
    if tensors[0].device.type == "cpu":
        return [t.detach().contiguous().numpy() for t in tensors]
    flat = torch.cat([t.detach().reshape(-1) for t in tensors]).cpu().numpy()
    out, s = [], 0
    for t in tensors:
        out.append(flat[s : s + t.numel()].reshape(tuple(t.shape)))
        s += t.numel()
    return out
