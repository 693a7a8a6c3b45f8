"""One COCO ``segmentation`` field, checked and then decoded to a binary mask.

pycocotools trusts its input: a polygon coordinate of NaN or 1e7 makes it rasterise an edge
millions of pixels long (tens of GB), and RLE counts that do not add up to ``height x width``
decode into whatever memory follows the buffer. So every field is validated here *before*
pycocotools sees it, and each failure is a ``ValueError`` with the reason; the reader adds the
file and annotation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["decode_segmentation", "rle_string_counts", "POLYGON_MARGIN"]

# Polygon vertices may lie outside the image (pycocotools clips them), but only this many image
# sizes away: the rasteriser's cost grows with the polygon's extent, not with the image.
POLYGON_MARGIN = 1.0


def rle_string_counts(counts: bytes) -> list[int]:
    """The run lengths of a compressed COCO RLE string (the inverse of pycocotools'
    ``rleToString``: 5 bits per character, a continuation bit, deltas from the run two back)."""
    out: list[int] = []
    p = 0
    n = len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("compressed RLE counts end in the middle of a number")
            c = counts[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"compressed RLE counts hold the character {chr(counts[p])!r}, outside the RLE alphabet")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _check_counts(counts: list[int], h: int, w: int) -> None:
    if any(c < 0 for c in counts):
        raise ValueError("RLE counts hold a negative run length")
    total = sum(counts)
    if total != h * w:
        raise ValueError(f"RLE counts cover {total} pixels, but the image has {h}x{w} = {h * w}")


def _check_size(seg: dict, h: int, w: int) -> None:
    size = seg.get("size")
    if not isinstance(size, (list, tuple)) or len(size) != 2 or [int(v) for v in size] != [h, w]:
        raise ValueError(f"RLE size {size} differs from the image size [{h}, {w}]")


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


def decode_segmentation(seg: Any, h: int, w: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` (polygons, uncompressed RLE or compressed RLE) to an
    ``(h, w)`` uint8 mask after checking it; raises ``ValueError`` saying what is wrong."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(_polygons(seg, h, w), h, w))
    elif isinstance(seg, dict) and "counts" in seg:
        _check_size(seg, h, w)
        counts = seg["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in counts):
                raise ValueError("uncompressed RLE counts must be integers")
            _check_counts([int(c) for c in counts], h, w)
            rle = mask_utils.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)
        elif isinstance(counts, (str, bytes)):
            raw = counts.encode("ascii") if isinstance(counts, str) else counts
            _check_counts(rle_string_counts(raw), h, w)
            rle = {"size": [h, w], "counts": raw}
        else:
            raise ValueError(f"RLE counts must be a list or a string, got {type(counts).__name__}")
    else:
        raise ValueError(f"unsupported segmentation type {type(seg).__name__} (expected polygons or RLE)")
    return np.asarray(mask_utils.decode(rle), dtype=np.uint8)
