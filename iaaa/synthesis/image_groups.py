"""Which real images belong together: groups of one acquisition setting in mixed data.

Data pooled from several instruments or magnifications (DSB 2018: 256x256 to 520x696 images,
nuclei from 8 to 40 px across) must not paste one setting's cells onto another's background,
and a synthetic image's cell count must come from images of its own setting. Two images share a
group (``group_by="auto"``) when

* they have the same size ``(H, W)``, and
* their median cell diameters (``sqrt(4 * area / pi)`` of each cell, median per image) fall in
  one cluster: within a size, images are sorted by median diameter and a new cluster starts
  wherever the next image's median is more than ``ratio`` (default 1.4) times the previous one's
  (single-linkage in log diameter, so no bin edge splits a run of similar images).

The key of a group is ``(H, W, d)`` with ``d`` the cluster's smallest median diameter rounded to
a pixel, readable in ``iaaa stats``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from iaaa.errors import IaaaError

__all__ = ["median_diameter", "auto_group_keys"]


def median_diameter(areas: Sequence[float] | np.ndarray) -> float:
    """Median equivalent-circle diameter of cells with the given pixel ``areas`` (0 for none)."""
    a = np.asarray(areas, dtype=np.float64)
    return float(np.median(np.sqrt(4.0 * a / np.pi))) if a.size else 0.0


def auto_group_keys(sizes: Sequence[tuple[int, int]], diameters: Sequence[float], ratio: float = 1.4) -> list[tuple[int, int, int]]:
    """Group key of every image from its size and median cell diameter (see the module docs).

    Images without cells (diameter 0) join the cluster of the smallest diameter of their size.
    """
    if len(sizes) != len(diameters):
        raise IaaaError(f"sizes and diameters: {len(sizes)} vs {len(diameters)} entries")
    if not ratio > 1:
        raise IaaaError(f"ratio must be > 1, got {ratio}")
    keys: list[tuple[int, int, int] | None] = [None] * len(sizes)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(sizes):
        by_size.setdefault((int(s[0]), int(s[1])), []).append(i)
    for (h, w), idx in by_size.items():
        d = np.array([diameters[i] for i in idx], dtype=np.float64)
        order = np.argsort(d, kind="stable")
        start = d[order[0]]
        for n, i in enumerate(order):
            if n > 0 and d[order[n - 1]] > 0 and d[i] > ratio * d[order[n - 1]]:
                start = d[i]
            keys[idx[i]] = (h, w, int(round(start)))
    return keys  # type: ignore[return-value]
