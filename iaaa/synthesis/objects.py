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

from iaaa.boxes import merge_boxes
from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage, CellObject, as_annotated, check_labels, instance_areas, instance_boxes
from iaaa.synthesis.checks import check
from iaaa.synthesis.background import reflect_index, remove_cells

__all__ = ["ObjectConfig", "ObjectGroups", "group_instances", "extract", "extract_objects", "instance_areas", "instance_boxes", "merge_boxes"]


@dataclass(frozen=True)
class ObjectConfig:
    """How objects are cut out of an annotated image (validated once, here).

    Attributes:
        margin: boxes closer than this many pixels are merged (see :func:`iaaa.boxes.merge_boxes`).
        min_area: instances smaller than this (pixels) are debris (see module docs).
        keep_border: also keep objects touching the image border (the paper drops them).
        context: pixels of surroundings kept on every side of the merged box.
    """

    margin: int = 1
    min_area: int = 10
    keep_border: bool = False
    context: int = 0

    def __post_init__(self) -> None:
        check(self.margin >= 0, "margin", "must be >= 0", self.margin)
        check(self.min_area >= 1, "min_area", "must be >= 1", self.min_area)
        check(self.context >= 0, "context", "must be >= 0", self.context)


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
    labels = check_labels(labels)
    if labels.ndim != 2:
        raise IaaaError(f"labels: expected (H, W), got shape {tuple(labels.shape)}")
    h, w = labels.shape
    ids, areas = instance_areas(labels)
    big = areas >= min_area
    cells, frags = ids[big], ids[~big]
    merged, group = merge_boxes(instance_boxes(labels, cells), margin) if cells.numel() else (torch.zeros((0, 4), dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    merged, group = merged.to(labels.device), group.to(labels.device)
    sizes = torch.bincount(group, minlength=merged.shape[0])
    border = (merged[:, 0] <= 0) | (merged[:, 1] <= 0) | (merged[:, 2] >= w - 1) | (merged[:, 3] >= h - 1)
    return ObjectGroups(cells, areas[big], merged, group, sizes, border, frags, ids)


def extract(s: AnnotatedImage, config: ObjectConfig, background: torch.Tensor | None = None) -> tuple[list[CellObject], ObjectGroups]:
    """The objects of one named annotated image and how its instances grouped.

    ``background``: a cell-free version of the image (same shape and dtype), read where a crop's
    context holds a foreign cell or leaves the frame; computed with
    :func:`~iaaa.synthesis.background.remove_cells` when needed and not given."""
    g = group_instances(s.labels, margin=config.margin, min_area=config.min_area)
    img, labels = s.image, s.labels
    h, w = labels.shape
    keep = [j for j in range(g.boxes.shape[0]) if config.keep_border or not bool(g.border[j])]
    if not keep:
        return [], g
    c = int(config.context)
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
            iy = reflect_index(h, Y0, Y1 + 1, labels.device)
            ix = reflect_index(w, X0, X1 + 1, labels.device)
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
            raise IaaaError(f"{s.name or 'sample'}: background {tuple(bg.shape)} {bg.dtype} does not match image {tuple(s.image.shape)} {s.image.dtype}")
        return bg.to(s.image.device)
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
        margin: box merge distance (see :func:`iaaa.boxes.merge_boxes`).
        keep_border: also keep objects touching the image border (the paper drops them).
        min_area: instances smaller than this (pixels) are treated as debris (see module docs).
        context: pixels of surroundings kept on every side of the merged box.
        backgrounds: optional cell-free version of each sample (same shape and dtype), used
            where a crop's context holds a foreign cell or leaves the frame; computed with
            :func:`iaaa.synthesis.background.remove_cells` when needed and not given.

    Returns:
        One :class:`~iaaa.structures.CellObject` per kept merged box: ``image`` is the crop in the
        source dtype, ``labels`` the cells renumbered ``1..k`` in source order, ``class_ids`` the
        cells' classes, ``box`` the crop's XYXY in source coordinates (it extends past the image
        by up to ``context`` where the crop was mirrored), ``source`` the sample's name (or
        ``"sample<i>"``), ``source_ids`` the cells' original label values.
    """
    config = ObjectConfig(margin=margin, min_area=min_area, keep_border=keep_border, context=context)
    out: list[CellObject] = []
    for i, raw in enumerate(samples):
        s = as_annotated(raw, name=f"sample{i}")
        if not s.name:
            s = AnnotatedImage(s.image, s.labels, s.class_ids, f"sample{i}", s.categories, s.meta)
        bg = None if backgrounds is None else backgrounds[i]
        objs, _ = extract(s, config, bg)
        out.extend(objs)
    return out
