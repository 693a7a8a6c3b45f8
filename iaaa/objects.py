"""Cell objects: single-cell (SCO) and multi-cell (MCO) objects cut from annotated images.

Paper section 2.4 with the box rule of sections 2.2-2.3: take every instance's bounding box;
boxes that intersect or touch are merged into one larger box, repeatedly, until no two boxes
are connected. A merged box holding one instance is an SCO, one holding several an MCO.

Choices the paper leaves open, made here on purpose:

* ``margin``: two boxes are *connected* when they come closer than ``margin`` pixels (Chebyshev
  gap between the boxes' pixels). ``margin=0`` merges only intersecting boxes, ``margin=1``
  (default) also boxes that touch edge to edge or corner to corner.
* Objects whose merged box touches the image border hold cells cut by the frame; they are
  excluded (paper) unless ``keep_border=True``.
* Instances smaller than ``min_area`` pixels are annotation debris, not cells: they never form an
  object, never join a merge, and where one falls inside another object's crop its pixels are
  treated like any foreign cell (label 0, image pixels replaced by the removed-cell background).
  They are still removed from backgrounds, because they are visible in the image.
* ``context`` pixels of real surroundings are kept around each box so a Gaussian feather at
  placement has real pixels to blend; foreign cells inside that ring are replaced by background
  and pixels beyond the image border by the mirrored background, so no other cell is copied along.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from iaaa.structures import AnnotatedImage, CellObject, _check_labels, as_annotated, instance_areas, labels_to_boxes

__all__ = ["instance_areas", "instance_boxes", "merge_boxes", "ObjectGroups", "group_instances", "extract_objects"]


def instance_boxes(labels: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
    """int64 XYXY boxes (inclusive maxima) of the instances of a label map, in ``ids`` order
    (default: every instance, sorted)."""
    if ids is None:
        ids = instance_areas(labels)[0]
    return labels_to_boxes(labels, ids).to(torch.int64)


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
        raise ValueError(f"boxes: expected (N, 4) XYXY, got shape {tuple(boxes.shape)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
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


@dataclass
class ObjectGroups:
    """How the instances of one label map group into objects.

    Attributes:
        ids: ``(N,)`` instance ids with area >= ``min_area`` (the cells).
        areas: ``(N,)`` their pixel areas.
        boxes: ``(M, 4)`` merged XYXY boxes (inclusive).
        group: ``(N,)`` merged box of each cell.
        sizes: ``(M,)`` number of cells per merged box (1 = SCO, >1 = MCO).
        border: ``(M,)`` bool, the merged box touches the image border.
        fragments: ids of instances below ``min_area``.
        instances: every instance id (cells and fragments), sorted.
    """

    ids: torch.Tensor
    areas: torch.Tensor
    boxes: torch.Tensor
    group: torch.Tensor
    sizes: torch.Tensor
    border: torch.Tensor
    fragments: torch.Tensor
    instances: torch.Tensor

    @property
    def kinds(self) -> list[str]:
        return ["sco" if int(k) == 1 else "mco" for k in self.sizes]


def group_instances(labels: torch.Tensor, *, margin: int = 1, min_area: int = 10) -> ObjectGroups:
    """Group the instances of ``labels`` ``(H, W)`` into SCO/MCO boxes (see module docs)."""
    labels = _check_labels(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels: expected (H, W), got shape {tuple(labels.shape)}")
    h, w = labels.shape
    ids, areas = instance_areas(labels)
    big = areas >= min_area
    cells, frags = ids[big], ids[~big]
    merged, group = merge_boxes(instance_boxes(labels, cells), margin) if cells.numel() else (torch.zeros((0, 4), dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    merged, group = merged.to(labels.device), group.to(labels.device)
    sizes = torch.bincount(group, minlength=merged.shape[0])
    border = (merged[:, 0] <= 0) | (merged[:, 1] <= 0) | (merged[:, 2] >= w - 1) | (merged[:, 3] >= h - 1)
    return ObjectGroups(cells, areas[big], merged, group, sizes, border, frags, ids)


def _reflect_index(n: int, lo: int, hi: int, device: torch.device) -> torch.Tensor:
    """Indices ``lo..hi-1`` folded into ``0..n-1`` by mirror reflection (edge not repeated)."""
    idx = torch.arange(lo, hi, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    m = idx.remainder(period)
    return torch.where(m >= n, period - m, m)


def _extract_one(
    s: AnnotatedImage, *, margin: int, keep_border: bool, min_area: int, context: int, background: Any,
) -> tuple[list[CellObject], ObjectGroups]:
    g = group_instances(s.labels, margin=margin, min_area=min_area)
    img, labels = s.image, s.labels
    h, w = labels.shape
    keep = [j for j in range(g.boxes.shape[0]) if keep_border or not bool(g.border[j])]
    if not keep:
        return [], g
    c = int(context)
    group_l = g.group.tolist()
    members: dict[int, list[int]] = {}
    for pos, j in enumerate(group_l):
        members.setdefault(j, []).append(pos)
    cls_all = s.class_ids.to(labels.device)
    # Class ids of cells: class_ids follow sorted instance order; cells are a sorted subset.
    cell_cls = cls_all[torch.searchsorted(g.instances, g.ids)]
    bg = None
    objs: list[CellObject] = []
    for j in keep:
        x0, y0, x1, y1 = (int(v) for v in g.boxes[j])
        X0, Y0, X1, Y1 = x0 - c, y0 - c, x1 + c, y1 + c
        inside = X0 >= 0 and Y0 >= 0 and X1 < w and Y1 < h
        if inside:
            lab = labels[Y0 : Y1 + 1, X0 : X1 + 1]
            crop = img[:, Y0 : Y1 + 1, X0 : X1 + 1]
        else:
            iy = _reflect_index(h, Y0, Y1 + 1, labels.device)
            ix = _reflect_index(w, X0, X1 + 1, labels.device)
            yy = torch.arange(Y0, Y1 + 1, device=labels.device)
            xx = torch.arange(X0, X1 + 1, device=labels.device)
            valid = ((yy >= 0) & (yy < h)).view(-1, 1) & ((xx >= 0) & (xx < w)).view(1, -1)
            # Pixels beyond the frame count as foreign (-1) so they get mirrored background.
            lab = torch.where(valid, labels[iy][:, ix], torch.full_like(valid, -1, dtype=labels.dtype))
            crop = img[:, iy][:, :, ix]
        pos = members[j]
        own_ids = g.ids[pos]
        own = torch.isin(lab, own_ids)
        new = torch.where(own, torch.searchsorted(own_ids, lab.clamp_min(0)) + 1, torch.zeros_like(lab))
        foreign = (lab != 0) & ~own
        if bool(foreign.any()):
            if bg is None:
                bg = _background_for(s, background)
            bgc = bg[:, Y0 : Y1 + 1, X0 : X1 + 1] if inside else bg[:, iy][:, :, ix]
            crop = torch.where(foreign.unsqueeze(0), bgc, crop)
        else:
            crop = crop.clone()
        objs.append(
            CellObject(
                image=crop,
                labels=new,
                class_ids=cell_cls[pos].clone(),
                kind="sco" if len(pos) == 1 else "mco",
                source=s.name,
                box=(X0, Y0, X1, Y1),
                source_ids=tuple(int(v) for v in own_ids),
            )
        )
    return objs, g


def _background_for(s: AnnotatedImage, background: Any) -> torch.Tensor:
    if background is not None:
        bg = torch.as_tensor(background)
        bg = bg if bg.ndim == 3 else bg.unsqueeze(0)
        if tuple(bg.shape) != tuple(s.image.shape) or bg.dtype != s.image.dtype:
            raise ValueError(f"{s.name or 'sample'}: background {tuple(bg.shape)} {bg.dtype} does not match image {tuple(s.image.shape)} {s.image.dtype}")
        return bg.to(s.image.device)
    from iaaa.background import remove_cells

    return remove_cells(s.image, s.labels, generator=torch.Generator().manual_seed(0))


def extract_objects(
    samples: Iterable[Any],
    *,
    margin: int = 1,
    keep_border: bool = False,
    min_area: int = 10,
    context: int = 0,
    backgrounds: Sequence[torch.Tensor] | None = None,
) -> list[CellObject]:
    """Cut SCOs and MCOs out of annotated images.

    Args:
        samples: annotated images (:class:`~iaaa.structures.AnnotatedImage`, ``(image, labels)``
            pairs or dicts; see :func:`~iaaa.structures.as_annotated`).
        margin: box merge distance (see :func:`merge_boxes`).
        keep_border: also keep objects touching the image border (the paper drops them).
        min_area: instances smaller than this (pixels) are treated as debris (see module docs).
        context: pixels of surroundings kept on every side of the merged box.
        backgrounds: optional cell-free version of each sample (same shape and dtype), used
            where a crop's context holds a foreign cell or leaves the frame; computed with
            :func:`iaaa.background.remove_cells` when needed and not given.

    Returns:
        One :class:`~iaaa.structures.CellObject` per kept merged box: ``image`` is the crop in the
        source dtype, ``labels`` the cells renumbered ``1..k`` in source order, ``class_ids`` the
        cells' classes, ``box`` the crop's XYXY in source coordinates (it extends past the image
        by up to ``context`` where the crop was mirrored), ``source`` the sample's name (or
        ``"sample<i>"``), ``source_ids`` the cells' original label values.
    """
    if min_area < 1:
        raise ValueError(f"min_area must be >= 1, got {min_area}")
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    out: list[CellObject] = []
    for i, raw in enumerate(samples):
        s = as_annotated(raw, name=f"sample{i}")
        if not s.name:
            s = AnnotatedImage(s.image, s.labels, s.class_ids, f"sample{i}", s.categories, s.meta)
        bg = None if backgrounds is None else backgrounds[i]
        objs, _ = _extract_one(s, margin=margin, keep_border=keep_border, min_area=min_area, context=context, background=bg)
        out.extend(objs)
    return out
