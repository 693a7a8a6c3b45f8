"""Which real images belong together: groups of one acquisition setting in mixed data.

Data pooled from several instruments or magnifications (DSB 2018: 256x256 to 520x696 images,
nuclei from 8 to 40 px across) must not paste one setting's cells onto another's background,
and a synthetic image's cell count must come from images of its own setting. Two images share a
group (``group_by="auto"``) when

* they have the same size ``(H, W)``, and
* their median cell diameters (``sqrt(4 * area / pi)`` of each cell, median per image) fall in
  one cluster: within a size, images are sorted by median diameter and a new cluster starts
  wherever the next image's median is more than ``ratio`` (default
  :data:`MAGNIFICATION_RATIO`, 1.6) times the previous one's (single-linkage in log diameter, so
  no bin edge splits a run of similar images). Objective magnifications come in steps of about
  2x; within one setting the median cell size of a field varies less (1.54x between the sparsest
  and densest usiigaci_phase_dev fields).

The key of a group is ``(H, W, d)`` with ``d`` the cluster's smallest median diameter rounded to
a pixel, readable in ``iaaa stats``. The same ratio over all images, whatever their size
(:func:`varied_cell_sizes`), is what ``object_scale="auto"`` turns scale jitter on by.

:func:`survey` is what ``CellCompositor.fit`` asks before cutting anything: every image's group
key and every group's halo width (the median of its images' widths,
:mod:`iaaa.synthesis.halo`, at most half the group's median cell diameter: a "halo" wider than
the cell's radius is out-of-focus glow or illumination, not the cell's rim, and removing it would
rebuild most of a crowded image), so that objects, backgrounds and rims of one setting share one
halo.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage, instance_areas
from iaaa.synthesis.halo import NearestCells, halo_profile, nearest_cells

__all__ = ["MAGNIFICATION_RATIO", "median_diameter", "image_diameters", "diameter_spread", "varied_cell_sizes", "auto_group_keys", "nearest_plan", "halo_width", "survey"]

MAGNIFICATION_RATIO = 1.6
"""Ratio of two images' median cell diameters beyond which they are taken for different
magnifications (objectives come in steps of about 2x; within one setting a field's median varies
less: 1.54x between the sparsest and densest usiigaci_phase_dev fields). Auto grouping splits
there, and ``object_scale="auto"`` turns scale jitter on there."""

# What survey may keep of the images' distance transforms for the caller (3 bytes a pixel with
# up to 65535 labels: about 85 1024x1024 images); images beyond it are transformed again.
_NEAREST_BUDGET = 256 * 2**20


def median_diameter(areas: Sequence[float] | np.ndarray) -> float:
    """Median equivalent-circle diameter of cells with the given pixel ``areas`` (0 for none)."""
    a = np.asarray(areas, dtype=np.float64)
    return float(np.median(np.sqrt(4.0 * a / np.pi))) if a.size else 0.0


def image_diameters(samples: Sequence[AnnotatedImage], min_area: int = 10) -> list[float]:
    """Median cell diameter of every sample (:func:`median_diameter` of its cells of at least
    ``min_area`` pixels; 0 for an image without such cells)."""
    out = []
    for s in samples:
        areas = instance_areas(s.labels)[1].cpu().numpy()
        out.append(median_diameter(areas[areas >= min_area]))
    return out


def diameter_spread(diameters: Sequence[float]) -> float | None:
    """Largest over smallest median cell diameter among the images with cells (``None`` with
    fewer than two such images): how far the data's magnifications, or its cell sizes, range."""
    d = np.asarray(diameters, dtype=np.float64)
    d = d[d > 0]
    return float(d.max() / d.min()) if d.size >= 2 else None


def varied_cell_sizes(diameters: Sequence[float], ratio: float = MAGNIFICATION_RATIO) -> bool:
    """Whether images of these median cell diameters vary in cell size beyond one acquisition
    setting (what ``object_scale="auto"`` decides by): their :func:`diameter_spread` exceeds
    ``ratio``. Unlike the groups, which split only at a gap of ``ratio`` between neighbours, this
    looks at the whole range: images of 10 to 18 px nuclei form one group, yet a model trained on
    them meets 40 px nuclei of the same stain (DSB 2018)."""
    spread = diameter_spread(diameters)
    return spread is not None and spread > ratio


def auto_group_keys(sizes: Sequence[tuple[int, int]], diameters: Sequence[float], ratio: float = MAGNIFICATION_RATIO) -> list[tuple[int, int, int]]:
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
        # cell-less images (diameter 0, sorted first) take the key of the smallest diameter
        start = d[order[np.argmax(d[order] > 0)]] if (d > 0).any() else 0.0
        for n, i in enumerate(order):
            if n > 0 and d[order[n - 1]] > 0 and d[i] > ratio * d[order[n - 1]]:
                start = d[i]
            keys[idx[i]] = (h, w, int(round(start)))
    return keys  # type: ignore[return-value]


def nearest_plan(samples: Sequence[AnnotatedImage]) -> list[bool]:
    """Which samples' distance tables (:class:`~iaaa.synthesis.halo.NearestCells`) a fit keeps
    for growing their masks: those with cells and background, in order, while the kept tables
    stay within 256 MiB."""
    kept, out = 0, []
    for s in samples:
        need = NearestCells.nbytes_for(s.labels)
        keep = kept + need <= _NEAREST_BUDGET and bool((s.labels > 0).any()) and bool((s.labels == 0).any())
        kept += need if keep else 0
        out.append(keep)
    return out


def halo_width(sample: AnnotatedImage, keep_nearest: bool = False) -> tuple[int | None, NearestCells | None]:
    """The halo width of one image (:meth:`iaaa.synthesis.halo.HaloProfile.width`; ``None`` when
    its label map has no cell or no background pixel: nothing to measure) and, with
    ``keep_nearest``, the distance table it was measured from (else ``None``)."""
    lab = sample.labels
    if not (bool((lab > 0).any()) and bool((lab == 0).any())):
        return None, None
    if not keep_nearest:  # nobody grows from it: the plain distance transform is enough
        return halo_profile(sample.image, lab).width(), None
    d, table = nearest_cells(lab)
    return halo_profile(sample.image, lab, distance=d).width(), table


def survey(
    samples: Sequence[AnnotatedImage],
    group_by: str | Callable[[AnnotatedImage], Any] | None,
    halo: int | str,
    min_area: int = 10,
    nearest: list | None = None,
    diameters: Sequence[float] | None = None,
    measured: Sequence[tuple[int | None, NearestCells | None]] | None = None,
) -> tuple[list[Any], dict[Any, int]]:
    """Group key of every sample and halo width of every group.

    Args:
        samples: named annotated images.
        group_by: ``None`` (one group, key ``None``), ``"size"``, ``"auto"`` (module docs) or a
            callable ``sample -> key``.
        halo: an int (every group's halo) or ``"auto"``: each group's median of its images'
            widths (:meth:`iaaa.synthesis.halo.HaloProfile.width`), at most half the group's
            median cell diameter; a group without an image that has both cells and background
            takes the median over all images, or 0.
        min_area: cells below this area do not count towards the median diameter.
        nearest: a list to fill, for a caller that grows the masks by the measured halos next,
            with one :class:`~iaaa.synthesis.halo.NearestCells` per sample (``None`` where no
            halo was measured, or once the tables would hold more than 256 MiB), so the distance
            transform of each image is not computed twice.
        diameters: the samples' :func:`image_diameters` at ``min_area``, where the caller has
            them already (otherwise computed here when grouping or the halo needs them).
        measured: every sample's :func:`halo_width` with ``keep_nearest`` as
            :func:`nearest_plan` says, where the caller measured them already (in worker
            processes); their tables go to ``nearest``.
    """
    if diameters is None and (group_by == "auto" or halo == "auto"):
        diameters = image_diameters(samples, min_area)
    if group_by is None:
        keys: list[Any] = [None] * len(samples)
    elif group_by == "size":
        keys = [s.size for s in samples]
    elif group_by == "auto":
        keys = auto_group_keys([s.size for s in samples], diameters)
    elif callable(group_by):
        keys = [group_by(s) for s in samples]
    else:
        raise IaaaError(f"group_by: expected None, 'size', 'auto' or a callable sample -> key, got {group_by!r}")
    if nearest is not None:
        nearest[:] = [None] * len(samples)
    if halo != "auto":
        return keys, {k: int(halo) for k in keys}
    if measured is None:
        plan = nearest_plan(samples) if nearest is not None else [False] * len(samples)
        measured = [halo_width(s, keep) for s, keep in zip(samples, plan)]
    elif len(measured) != len(samples):
        raise IaaaError(f"measured: {len(measured)} values for {len(samples)} samples")
    by_group: dict[Any, list[int]] = {}
    for i, ((width, table), k) in enumerate(zip(measured, keys)):
        if nearest is not None:
            nearest[i] = table
        if width is not None:
            by_group.setdefault(k, []).append(width)
    radius: dict[Any, list[float]] = {}
    for d, k in zip(diameters, keys):
        if d > 0:  # the image has cells of at least min_area
            radius.setdefault(k, []).append(0.5 * d)
    every = [w for ws in by_group.values() for w in ws]
    default = int(round(float(np.median(every)))) if every else 0
    out = {}
    for k in keys:
        h = int(round(float(np.median(by_group[k])))) if k in by_group else default
        out[k] = min(h, int(round(float(np.median(radius[k]))))) if k in radius else h
    return keys, out
