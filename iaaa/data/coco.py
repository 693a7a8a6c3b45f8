"""COCO segmentations and RLE: the one validated codec.

Every COCO mask iaaa reads or writes passes through here. Masks are handled as *runs*: COCO RLE
walks the image column by column (Fortran order), and an instance is the list of runs of pixels
it covers there. Working on runs instead of one full-size mask per instance keeps encoding and
decoding at O(image) memory for any number of instances (a 2048x2048 image with thousands of
cells would otherwise need a 4 MB mask per cell).

Validation comes first, because pycocotools trusts its input: a polygon coordinate of NaN or
1e7 makes it rasterise an edge millions of pixels long (tens of GB), and RLE counts that do not
add up to ``height x width`` decode into whatever memory follows the buffer. Each failure is a
``ValueError`` saying what is wrong; the readers add the file and the annotation.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from iaaa.errors import IaaaError
from iaaa.label_maps import check_labels, instance_ids

__all__ = [
    "labels_to_rle",
    "rle_to_labels",
    "coco_masks",
    "rle_string_counts",
    "rle_counts",
    "segmentation_runs",
    "mask_runs",
    "paint_runs",
    "POLYGON_MARGIN",
    "OVERLAPS",
]

# Polygon vertices may lie outside the image (pycocotools clips them), but only this many image
# sizes away: the rasteriser's cost grows with the polygon's extent, not with the image.
POLYGON_MARGIN = 1.0
OVERLAPS = ("error", "first", "last")
# pycocotools writes a run of up to 2**32 pixels, as a delta of up to +-2**32, in 7 characters.
_MAX_NUMBER_CHARS = 7


# ----------------------------------------------------------------------------- RLE counts


def _string_counts(raw: bytes) -> np.ndarray:
    """Run lengths of a compressed COCO RLE string (the inverse of pycocotools' ``rleToString``:
    5 bits per character, a continuation bit, a sign bit on the last character, deltas from the
    run two back from the fourth run on), vectorised over the characters."""
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    bad = (c < 0) | (c >= 64)
    if bad.any():
        raise ValueError(f"compressed RLE counts hold the character {chr(raw[int(np.argmax(bad))])!r}, outside the RLE alphabet")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("compressed RLE counts end in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    nchar = ends - starts + 1
    if int(nchar.max()) > _MAX_NUMBER_CHARS:
        raise ValueError(f"compressed RLE counts hold a number of {int(nchar.max())} characters; runs of 2**32 pixels need at most {_MAX_NUMBER_CHARS}")
    k = np.arange(c.size) - np.repeat(starts, nchar)
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    negative = (c[ends] & 0x10) != 0
    x = np.where(negative, x | np.left_shift(-1, 5 * nchar), x)
    out = x.copy()
    out[1::2] = np.cumsum(x[1::2])
    out[2::2] = np.cumsum(x[2::2])
    return out


def rle_string_counts(counts: bytes | str) -> list[int]:
    """The run lengths of a compressed COCO RLE string, as pycocotools reads them (no check that
    they cover an image: see :func:`rle_counts`)."""
    raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    return _string_counts(raw).tolist()


def rle_counts(rle: Any, h: int, w: int) -> np.ndarray:
    """The checked run lengths (int64) of one COCO RLE dict, compressed or not: its ``size`` is
    ``[h, w]``, no run is negative, the runs cover exactly ``h * w`` pixels. Raises ``ValueError``
    saying what is wrong."""
    if not isinstance(rle, dict) or "counts" not in rle:
        raise ValueError(f"RLE must be a dict with 'size' and 'counts', got {type(rle).__name__}")
    size = rle.get("size")
    try:
        same = isinstance(size, (list, tuple)) and len(size) == 2 and [int(v) for v in size] == [h, w]
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(f"RLE size {size} differs from the image size [{h}, {w}]")
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in counts):
            raise ValueError("uncompressed RLE counts must be integers")
        if any(int(c) < 0 for c in counts):
            raise ValueError("RLE counts hold a negative run length")
        if any(int(c) > h * w for c in counts):
            raise ValueError(f"RLE counts hold a run longer than the {h}x{w} image")
        arr = np.asarray([int(c) for c in counts], dtype=np.int64)
    elif isinstance(counts, (str, bytes)):
        try:
            raw = counts.encode("ascii") if isinstance(counts, str) else counts
        except UnicodeEncodeError:
            raise ValueError("compressed RLE counts hold a non-ASCII character, outside the RLE alphabet") from None
        arr = _string_counts(raw)
    else:
        raise ValueError(f"RLE counts must be a list or a string, got {type(counts).__name__}")
    if arr.size and int(arr.min()) < 0:
        raise ValueError("RLE counts hold a negative run length")
    total = int(arr.sum())
    if total != h * w:
        raise ValueError(f"RLE counts cover {total} pixels, but the image has {h}x{w} = {h * w}")
    return arr


def _counts_runs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` in Fortran-order pixel indices of the foreground runs (the odd-indexed
    counts), empty runs dropped."""
    edges = np.concatenate([[0], np.cumsum(counts)])
    starts, ends = edges[1:-1:2], edges[2::2]
    keep = ends > starts
    return starts[keep], ends[keep]


# ----------------------------------------------------------------------------- segmentation fields


def _polygons(seg: list, h: int, w: int) -> list[list[float]]:
    polys = []
    for poly in seg:
        if not isinstance(poly, (list, tuple)):
            raise ValueError(f"polygon must be a list of numbers, got {type(poly).__name__}")
        xy = np.asarray(poly, dtype=np.float64)
        if xy.ndim != 1 or xy.size % 2:
            raise ValueError(f"polygon needs an even number of coordinates (x, y pairs), got {xy.size}")
        if not np.isfinite(xy).all():
            raise ValueError("polygon has a NaN or infinite coordinate")
        mx, my = POLYGON_MARGIN * w, POLYGON_MARGIN * h
        x, y = xy[0::2], xy[1::2]
        if x.size and (x.min() < -mx or x.max() > w + mx or y.min() < -my or y.max() > h + my):
            raise ValueError(
                f"polygon spans x {x.min():.6g}..{x.max():.6g}, y {y.min():.6g}..{y.max():.6g}, far outside the {h}x{w} image"
            )
        if xy.size >= 6:
            polys.append(xy.tolist())
    if not polys:
        raise ValueError("polygon with fewer than 3 points")
    return polys


def segmentation_runs(seg: Any, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Check one COCO ``segmentation`` field (polygons, uncompressed or compressed RLE) of an
    ``h x w`` image and return its foreground runs ``(starts, ends)``: int64 pixel indices in
    COCO's column-major order, ``ends`` exclusive. Raises ``ValueError`` saying what is wrong."""
    if isinstance(seg, list):
        from pycocotools import mask as mask_utils

        rle = mask_utils.merge(mask_utils.frPyObjects(_polygons(seg, h, w), h, w))
        return _counts_runs(_string_counts(rle["counts"]))
    if isinstance(seg, dict) and "counts" in seg:
        return _counts_runs(rle_counts(seg, h, w))
    raise ValueError(f"unsupported segmentation type {type(seg).__name__} (expected polygons or RLE)")


# ----------------------------------------------------------------------------- runs <-> label maps


def mask_runs(mask: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Foreground runs ``(starts, ends)`` of a binary ``(H, W)`` mask in COCO's column-major
    pixel order, as :func:`segmentation_runs` returns them."""
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    flat = np.concatenate([[0], (m.T.reshape(-1) != 0).view(np.int8), [0]])
    step = np.diff(flat)
    return np.flatnonzero(step == 1).astype(np.int64), np.flatnonzero(step == -1).astype(np.int64)


def paint_runs(runs: Sequence[tuple[np.ndarray, np.ndarray]], size: tuple[int, int], overlap: str = "last") -> tuple[torch.Tensor, int]:
    """Paint instances given as runs into an ``(H, W)`` int64 map of *positions*: pixel value
    ``k + 1`` where instance ``runs[k]`` owns it, 0 where none does. Returns ``(map, overlap
    pixels)``, the number of pixels covered by more than one instance.

    ``overlap`` says who owns a pixel several instances cover: ``"last"`` the later one,
    ``"first"`` the earlier one, ``"error"`` raises :class:`~iaaa.errors.IaaaError`. Memory is
    O(image) however many instances there are or however much they overlap: runs are painted
    in batches of at most one image's worth of pixels."""
    if overlap not in OVERLAPS:
        raise IaaaError(f"overlap must be one of {OVERLAPS}, got {overlap!r}")
    h, w = size
    n = h * w
    starts = np.concatenate([s for s, _ in runs]) if runs else np.zeros(0, np.int64)
    ends = np.concatenate([e for _, e in runs]) if runs else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(runs), dtype=np.int64), [len(s) for s, _ in runs]) if runs else np.zeros(0, np.int64)
    # Coverage from +1/-1 at run edges: overlaps counted without expanding any run.
    delta = np.bincount(starts, minlength=n + 1)[: n + 1] - np.bincount(ends, minlength=n + 1)[: n + 1]
    overlap_px = int((np.cumsum(delta[:n]) > 1).sum()) if n else 0
    if overlap == "error" and overlap_px:
        raise IaaaError(f"masks overlap at {overlap_px} pixels; pass overlap='first' or 'last' to resolve")
    sentinel = -1 if overlap != "first" else len(runs)
    rank = torch.full((n,), sentinel, dtype=torch.int64)
    reduce = "amin" if overlap == "first" else "amax"
    run_len = ends - starts
    # Batches of runs whose pixels together fit in one image (a single run never exceeds it).
    batch_of = np.cumsum(run_len) // max(n, 1 << 20) if run_len.size else run_len
    for b in np.unique(batch_of):
        sel = np.flatnonzero(batch_of == b)
        s, ln, o = starts[sel], run_len[sel], owner[sel]
        offsets = np.arange(int(ln.sum()), dtype=np.int64) - np.repeat(np.cumsum(ln) - ln, ln)
        idx = torch.from_numpy(np.repeat(s, ln) + offsets)
        rank.scatter_reduce_(0, idx, torch.from_numpy(np.repeat(o, ln)), reduce=reduce)
    painted = torch.where((rank >= 0) & (rank < len(runs)), rank + 1, torch.zeros_like(rank))
    return painted.view(w, h).T.contiguous(), overlap_px


def rle_to_labels(rles: Sequence[dict[str, Any]], size: tuple[int, int], ids: Sequence[int] | None = None, overlap: str = "error") -> torch.Tensor:
    """Decode COCO RLEs (compressed or uncompressed, each checked by :func:`rle_counts`) into one
    int64 label map of ``size = (H, W)``; RLE ``i`` gets label ``ids[i]`` (default ``i + 1``).
    ``overlap`` as in :func:`paint_runs`. Raises :class:`~iaaa.errors.IaaaError` naming the RLE
    at fault."""
    h, w = size
    ids_t = torch.arange(1, len(rles) + 1, dtype=torch.int64) if ids is None else torch.as_tensor(list(ids), dtype=torch.int64).reshape(-1)
    if ids_t.numel() != len(rles):
        raise IaaaError(f"ids: {ids_t.numel()} ids for {len(rles)} RLEs")
    if ids_t.numel() and int(ids_t.min()) < 1:
        raise IaaaError(f"ids: label values must be >= 1 (0 is background), got {int(ids_t.min())}")
    runs = []
    for i, r in enumerate(rles):
        try:
            runs.append(_counts_runs(rle_counts(r, h, w)))
        except ValueError as exc:
            raise IaaaError(f"rle {i}: {exc}") from None
    painted, _ = paint_runs(runs, (h, w), overlap)
    return torch.cat([ids_t.new_zeros(1), ids_t])[painted]


def _instance_runs(labels: torch.Tensor, ids: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, first, last)``: the foreground runs of a label map in column-major order,
    grouped by instance in ``ids`` order (each instance's runs in image order); instance ``k`` owns
    runs ``first[k]:last[k]`` (empty for an id absent from the map). One pass over the map."""
    h, w = labels.shape
    flat = labels.T.reshape(-1).cpu().numpy()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [h * w]])
    values = flat[starts]
    fg = values != 0
    # Stable sort by value keeps each instance's runs in image order.
    order = np.argsort(values[fg], kind="stable")
    starts, ends, values = starts[fg][order], ends[fg][order], values[fg][order]
    want = (instance_ids(labels) if ids is None else torch.as_tensor(ids, dtype=torch.int64).reshape(-1)).cpu().numpy()
    return starts, ends, np.searchsorted(values, want, side="left"), np.searchsorted(values, want, side="right")


def _rles(starts: np.ndarray, ends: np.ndarray, first: np.ndarray, last: np.ndarray, h: int, w: int) -> list[dict[str, Any]]:
    from pycocotools import mask as mask_utils

    n = h * w
    # Each run becomes (background before it, its length); the gap is measured from the previous
    # run of the same instance, or from pixel 0 for its first run.
    prev_end = np.concatenate([[0], ends[:-1]])
    prev_end[first[last > first]] = 0
    pairs = np.empty(2 * starts.size, dtype=np.int64)
    pairs[0::2] = starts - prev_end
    pairs[1::2] = ends - starts
    objs = []
    for a, b in zip(first.tolist(), last.tolist()):
        if b == a:
            counts = [n]
        else:
            counts = pairs[2 * a : 2 * b].tolist()
            tail = n - int(ends[b - 1])
            if tail:  # pycocotools ends on the last run: no trailing zero-length run
                counts.append(tail)
        objs.append({"size": [h, w], "counts": counts})
    if not objs:
        return []
    rles = mask_utils.frPyObjects(objs, h, w)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return list(rles)


def _checked_map(labels: torch.Tensor) -> torch.Tensor:
    labels = check_labels(labels)
    if labels.ndim != 2:
        raise IaaaError(f"labels: expected a (H, W) label map, got shape {tuple(labels.shape)}")
    return labels


def labels_to_rle(labels: torch.Tensor, ids: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """COCO RLE (compressed, ``counts`` a str so it is JSON-ready) of every instance of an
    ``(H, W)`` label map, in ``ids`` order (default: the instances present, sorted); an id
    absent from the map gets an empty mask.

    Identical to ``pycocotools.mask.encode`` of each instance's full-size mask, but built from
    the label map's own runs in column-major order: one pass over the map, whatever the number
    of instances, so memory stays O(image)."""
    labels = _checked_map(labels)
    h, w = labels.shape
    return _rles(*_instance_runs(labels, ids), h, w)


def coco_masks(labels: torch.Tensor, ids: torch.Tensor | None = None) -> tuple[list[dict[str, Any]], torch.Tensor, torch.Tensor]:
    """``(rles, boxes, areas)`` of every instance of a label map in ``ids`` order, all from one
    pass over its runs (O(image) memory): :func:`labels_to_rle`'s RLEs, int64 XYXY boxes with
    inclusive maxima (as :func:`iaaa.label_maps.labels_to_boxes`; zeros for absent ids) and
    int64 pixel counts."""
    labels = _checked_map(labels)
    h, w = labels.shape
    starts, ends, first, last = _instance_runs(labels, ids)
    boxes = np.zeros((first.size, 4), dtype=np.int64)
    areas = np.zeros(first.size, dtype=np.int64)
    present = last > first
    if starts.size:
        # A run crossing a column boundary covers the bottom of one column and the top of the
        # next, so its rows reach both edges.
        one_column = starts // h == (ends - 1) // h
        y_lo = np.where(one_column, starts % h, 0)
        y_hi = np.where(one_column, (ends - 1) % h, h - 1)
        f, l = first[present], last[present]
        boxes[present, 0] = starts[f] // h
        boxes[present, 2] = (ends[l - 1] - 1) // h
        boxes[present, 1] = np.minimum.reduceat(y_lo, f)
        boxes[present, 3] = np.maximum.reduceat(y_hi, f)
        areas[present] = np.add.reduceat(ends - starts, f)
    return _rles(starts, ends, first, last, h, w), torch.from_numpy(boxes), torch.from_numpy(areas)
