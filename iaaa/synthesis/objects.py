"""Cell objects: single-cell (SCO) and multi-cell (MCO) objects cut from annotated images.

Two ways to decide which cells form one object (``grouping``):

``"box"`` (the paper, section 2.4 with the box rule of sections 2.2-2.3)
    Take every instance's bounding box; boxes that intersect or touch are merged into one larger
    box, repeatedly, until no two boxes are connected. A merged box holding one instance is an
    SCO, one holding several an MCO. On dense fields the merged boxes chain most cells of an
    image into a few huge objects that touch the frame: 17 objects from 557 cells on 8 dense
    phase-contrast fields.

``"mask"`` (:func:`group_cells`)
    Two cells are connected when their *masks*, each grown by ``touch`` pixels (a square), meet:
    the Chebyshev gap between them is at most ``2 * touch + 1`` pixels. Groups are the connected
    components; a group of one is an SCO. An object's crop then holds only its own cells and the
    pixels nearer to them than to any other cell within ``halo`` pixels (their halo or rim, see
    :mod:`iaaa.synthesis.halo`); every other pixel of the crop, foreign cells *and their halos*,
    comes from the cleaned background.

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
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import torch

from iaaa.boxes import merge_boxes
from iaaa.errors import IaaaError
from iaaa.label_maps import neighbour_pairs
from iaaa.structures import AnnotatedImage, CellObject, as_annotated, check_labels, instance_areas, instance_boxes
from iaaa.synthesis.background import BackgroundConfig, remove_cells
from iaaa.synthesis.checks import bounded, check, validate
from iaaa.synthesis.halo import grow_masks, grow_to_any
from iaaa.synthesis.mirror import reflect_index

__all__ = [
    "GROUPINGS", "ObjectConfig", "ObjectGroups", "group_cells", "label_adjacency", "group_instances", "extract_objects",
    "instance_areas", "instance_boxes", "merge_boxes",
]

GROUPINGS: tuple[str, ...] = ("box", "mask")


@dataclass(frozen=True)
class ObjectConfig:
    """How objects are cut out of an annotated image (validated once, here).

    The halo a crop keeps and the context around it are not choices but values the compositor
    derives from the data and the placement (they live in its fitted group pools); the functions
    here take them as arguments.

    Attributes:
        margin: boxes closer than this many pixels are merged (see :func:`iaaa.boxes.merge_boxes`).
        min_area: instances smaller than this (pixels) are debris (see module docs).
        keep_border: also keep objects touching the image border (the paper drops them).
        grouping: ``"mask"`` (default) or ``"box"`` (the paper); see module docs.
        touch: growth before testing mask contact (``grouping="mask"``).
        sheet_cells: with ``grouping="mask"``, a group of more than this many cells that holds
            at least half of its image's cells is a *sheet* (a confluent layer or a tissue,
            not an object one could paste): it is split into connected parts of at most this
            many cells (see :func:`group_cells`). ``None``: never split (a confluent field is
            then one object per image, too large to place anywhere).
    """

    margin: int = bounded(1, 0, 256)
    min_area: int = bounded(10, 1, 1 << 20)
    keep_border: bool = False
    grouping: Literal["box", "mask"] = "mask"
    touch: int = bounded(1, 0, 64)
    sheet_cells: int | None = bounded(8, 1, 1 << 20)

    def __post_init__(self) -> None:
        validate(self)


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


def label_adjacency(labels: torch.Tensor) -> np.ndarray:
    """Distinct pairs ``(a, b)``, ``a < b``, of non-zero labels that are 8-neighbours somewhere in
    ``labels`` ``(H, W)``: an ``(E, 2)`` int64 array, sorted."""
    p, q = neighbour_pairs(labels.detach().cpu().numpy())
    if not p.size:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.stack([np.minimum(p, q), np.maximum(p, q)], 1).astype(np.int64), axis=0)


def group_cells(
    labels: torch.Tensor, touch: int = 1, ids: torch.Tensor | None = None, sheet_cells: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group the cells of ``labels`` ``(H, W)`` by mask contact (``grouping="mask"``).

    Every free pixel within Chebyshev distance ``touch`` of a cell takes the label of one such
    cell (:func:`~iaaa.synthesis.halo.grow_to_any`); label pairs that are 8-neighbours in that
    grown map (four shifted views) are the edges of a graph whose connected components are the
    groups. They are exactly the components of the pairwise rule (Chebyshev gap <= ``2 * touch
    + 1``), whichever cell within reach a pixel took: every pixel within ``touch`` of a cell is
    labelled, so a chessboard-straight chain of labelled pixels joins two cells that close, and
    8-neighbouring labels in the grown map belong to cells within ``2 * touch + 1`` of each other.

    Args:
        labels: instance label map, 0 background.
        touch: growth in pixels before testing contact (``>= 0``).
        ids: the cells to group (default every non-zero label). Other labels neither join nor
            link groups (e.g. debris below a minimum area).
        sheet_cells: a group of more than this many cells holding at least half of the cells
            is a sheet (a confluent layer): it is cut into connected parts of at most
            ``sheet_cells`` cells, each grown breadth first from its lowest free cell id
            through the contact graph (neighbours in id order). ``None``: no cut. Of the 46
            shipped images one qualifies (DSB ``028_9ebcfaf23229``: 43 of 58 nuclei in one
            cluster); every other group holds at most a fifth of its image's cells.

    Returns:
        ``(ids, group)``: the sorted cell ids ``(N,)`` and each cell's group index ``(N,)`` int64
        in ``0 .. M-1``, groups numbered in order of their lowest cell id.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    labels = check_labels(labels)
    check(int(touch) == touch and touch >= 0, "touch", "must be an integer >= 0", touch)
    lab = labels.detach().cpu()
    # A bincount and a table gather: torch.unique and torch.isin sort every pixel (10x slower).
    all_ids = instance_areas(lab)[0]
    if ids is None:
        cells = all_ids
    else:
        cells = torch.unique(torch.as_tensor(ids).detach().cpu().to(torch.int64))
        missing = cells[~torch.isin(cells, all_ids)]
        if missing.numel():
            raise IaaaError(f"ids: {missing.tolist()[:10]} are not labels of the map")
        if cells.numel() < all_ids.numel():
            wanted = torch.zeros(all_ids.numel() + 1, dtype=torch.bool)
            wanted[torch.searchsorted(all_ids, cells) + 1] = True
            at = torch.where(lab > 0, torch.searchsorted(all_ids, lab.to(torch.int64)) + 1, 0)
            lab = torch.where(wanted[at], lab, torch.zeros_like(lab))
    n = cells.numel()
    if n == 0:
        return cells.to(labels.device), torch.zeros(0, dtype=torch.int64, device=labels.device)
    cells_np = cells.numpy()

    def contact_edges(grown: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        edges = label_adjacency(torch.as_tensor(grown))
        return np.searchsorted(cells_np, edges[:, 0]), np.searchsorted(cells_np, edges[:, 1])

    # Groups are the same whichever cell within reach a grown pixel takes (see above), so the
    # growth is a square maximum filter rather than a nearest-cell distance transform.
    i, j = contact_edges(grow_to_any(lab.numpy(), int(touch)))
    _, comp = connected_components(coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n)), directed=False)
    sizes = np.bincount(comp)
    sheets = np.flatnonzero((sizes > sheet_cells) & (2 * sizes >= n)) if sheet_cells is not None else []
    if len(sheets):
        # The sheet cut walks the contact graph, whose edges (not its components) depend on
        # which cell a grown pixel took: these use the nearest cell's.
        i, j = contact_edges(grow_masks(lab.to(torch.int64), int(touch), metric="chessboard"))
        b = instance_boxes(lab, cells).numpy()
        h, w = lab.shape
        frame = (b[:, 0] <= 0) | (b[:, 1] <= 0) | (b[:, 2] >= w - 1) | (b[:, 3] >= h - 1)
        comp = _cut_sheets(comp, sheets, i, j, int(sheet_cells), frame)
    # Renumber groups by their lowest member (cells are sorted, so by first appearance).
    _, first, comp = np.unique(comp, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    return cells.to(labels.device), torch.from_numpy(rank[comp.reshape(-1)]).to(labels.device)


def _cut_sheets(comp: np.ndarray, sheets: np.ndarray, i: np.ndarray, j: np.ndarray, k: int, frame: np.ndarray) -> np.ndarray:
    """``comp`` (component of each of ``n`` cells, edges ``i``-``j``) with every component of
    ``sheets`` cut into connected parts of at most ``k`` cells. Cells cut by the frame
    (``frame``) and inner cells never share a part: a part that holds one frame cell would be a
    border object, dropped with all its inner cells. A loop over cells, not pixels: a sheet has
    tens to thousands of cells."""
    from collections import deque

    n = comp.size
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(i.tolist(), j.tolist()):
        if a != b and frame[a] == frame[b]:
            nbrs[a].append(b)
            nbrs[b].append(a)
    out = comp.copy()
    fresh = int(comp.max()) + 1
    for sheet in sheets.tolist():
        free = set(np.flatnonzero(comp == sheet).tolist())
        for seed in sorted(free):  # cells are sorted by id, so the lowest free id comes first
            if seed not in free:
                continue
            part, queue = [], deque([seed])
            free.discard(seed)
            while queue and len(part) < k:
                c = queue.popleft()
                part.append(c)
                for nb in sorted(nbrs[c]):
                    if nb in free and len(part) + len(queue) < k:
                        free.discard(nb)
                        queue.append(nb)
            free.update(queue)  # reached but not taken: they seed later parts
            out[part] = fresh
            fresh += 1
    return out


def group_instances(labels: torch.Tensor, config: ObjectConfig | None = None) -> ObjectGroups:
    """Group the instances of ``labels`` ``(H, W)`` into SCOs/MCOs by ``config`` (``None``: the
    :class:`ObjectConfig` defaults; see module docs); with ``grouping="mask"`` the ``boxes`` are
    the union boxes of each group's cells."""
    config = ObjectConfig() if config is None else config
    if not isinstance(config, ObjectConfig):
        raise IaaaError(f"config: expected an ObjectConfig, got {type(config).__name__}")
    margin, min_area, grouping, touch = config.margin, config.min_area, config.grouping, config.touch
    labels = check_labels(labels)
    if labels.ndim != 2:
        raise IaaaError(f"labels: expected (H, W), got shape {tuple(labels.shape)}")
    h, w = labels.shape
    ids, areas = instance_areas(labels)
    big = areas >= min_area
    cells, frags = ids[big], ids[~big]
    if not cells.numel():
        merged, group = torch.zeros((0, 4), dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    elif grouping == "box":
        merged, group = merge_boxes(instance_boxes(labels, cells), margin)
    else:
        _, group = group_cells(labels, touch, cells, config.sheet_cells)
        group = group.cpu()
        b = instance_boxes(labels, cells).cpu()
        m = int(group.max()) + 1
        merged = torch.stack([
            torch.full((m,), 1 << 62, dtype=torch.int64).scatter_reduce(0, group, b[:, 0], "amin"),
            torch.full((m,), 1 << 62, dtype=torch.int64).scatter_reduce(0, group, b[:, 1], "amin"),
            torch.full((m,), -1, dtype=torch.int64).scatter_reduce(0, group, b[:, 2], "amax"),
            torch.full((m,), -1, dtype=torch.int64).scatter_reduce(0, group, b[:, 3], "amax"),
        ], 1)
    merged, group = merged.to(labels.device), group.to(labels.device)
    sizes = torch.bincount(group, minlength=merged.shape[0])
    border = (merged[:, 0] <= 0) | (merged[:, 1] <= 0) | (merged[:, 2] >= w - 1) | (merged[:, 3] >= h - 1)
    return ObjectGroups(cells, areas[big], merged, group, sizes, border, frags, ids)


def extract(
    s: AnnotatedImage, config: ObjectConfig, background: torch.Tensor | None = None, *, halo: int = 0, context: int = 0,
    grown: torch.Tensor | None = None,
) -> tuple[list[CellObject], ObjectGroups]:
    """The objects of one named annotated image and how its instances grouped (the kernel of
    :func:`extract_objects`, which the compositor calls per image).

    ``background``: a cell-free version of the image (same shape and dtype), read where a crop's
    context holds a foreign cell or leaves the frame; computed with
    :func:`~iaaa.synthesis.background.remove_cells` when needed and not given. ``halo`` and
    ``context``: see :func:`extract_objects`. ``grown``: ``labels`` grown by ``halo``
    (:func:`~iaaa.synthesis.halo.grow_masks`) when the caller already has it (``fit`` shares it
    with the mask-level cell removal); computed here otherwise."""
    _check_measured(halo, context)
    g = group_instances(s.labels, config)
    img, labels = s.image, s.labels
    h, w = labels.shape
    keep = [j for j in range(g.boxes.shape[0]) if config.keep_border or not bool(g.border[j])]
    if not keep:
        return [], g
    c = int(context)
    group_l = g.group.tolist()
    members: dict[int, list[int]] = {}
    for pos, j in enumerate(group_l):
        members.setdefault(j, []).append(pos)
    # Per-crop membership tests (which pixels are this object's cells, which are foreign) read
    # two small tables indexed by a compact label (0 background, 1..n the instances, -1 beyond
    # the frame shifted to index 0): one gather per crop instead of sorting in torch.isin.
    n_inst = g.instances.numel()
    cell_at = torch.searchsorted(g.instances, g.ids) + 2
    group_of = torch.full((n_inst + 2,), -1, dtype=torch.int64, device=labels.device)
    group_of[cell_at] = g.group.to(torch.int64)
    rank_of = torch.zeros(n_inst + 2, dtype=torch.int64, device=labels.device)
    for pos_list in members.values():
        rank_of[cell_at[pos_list]] = torch.arange(1, len(pos_list) + 1, device=labels.device)
    cls_all = s.class_ids.to(labels.device)
    # Class ids of cells: class_ids follow sorted instance order; cells are a sorted subset.
    cell_cls = cls_all[torch.searchsorted(g.instances, g.ids)]
    bg = None
    # grouping="mask": every pixel within `halo` of a cell belongs to its nearest cell; a crop
    # keeps the real pixels of its own cells' grown region and takes the rest from the background.
    if grown is None:
        grown = grow_masks(labels, halo) if config.grouping == "mask" else labels
    elif tuple(grown.shape) != tuple(labels.shape):
        raise IaaaError(f"grown: shape {tuple(grown.shape)} does not match labels {tuple(labels.shape)}")
    compact = _compact(labels, g.instances)
    compact_grown = _compact(grown.to(labels.device), g.instances) if config.grouping == "mask" else compact
    objs: list[CellObject] = []
    for j in keep:
        x0, y0, x1, y1 = (int(v) for v in g.boxes[j])
        X0, Y0, X1, Y1 = x0 - c, y0 - c, x1 + c, y1 + c
        inside = X0 >= 0 and Y0 >= 0 and X1 < w and Y1 < h
        if inside:
            lab = compact[Y0 : Y1 + 1, X0 : X1 + 1]
            reg = compact_grown[Y0 : Y1 + 1, X0 : X1 + 1]
            crop = img[:, Y0 : Y1 + 1, X0 : X1 + 1]
        else:
            iy = reflect_index(h, Y0, Y1 + 1, labels.device)
            ix = reflect_index(w, X0, X1 + 1, labels.device)
            yy = torch.arange(Y0, Y1 + 1, device=labels.device)
            xx = torch.arange(X0, X1 + 1, device=labels.device)
            valid = ((yy >= 0) & (yy < h)).view(-1, 1) & ((xx >= 0) & (xx < w)).view(1, -1)
            # Pixels beyond the frame count as foreign (-1) so they get mirrored background.
            lab = torch.where(valid, compact[iy][:, ix], 0)
            reg = torch.where(valid, compact_grown[iy][:, ix], 0)
            crop = img[:, iy][:, :, ix]
        pos = members[j]
        own_ids = g.ids[pos]
        own = group_of[lab] == j
        new = torch.where(own, rank_of[lab], 0)
        foreign = (lab != 1) & ~own if config.grouping == "box" else group_of[reg] != j
        if bool(foreign.any()):
            if bg is None:
                bg = _background_for(s, background, config, halo)
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


def _compact(labels: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
    """``labels`` as table indices: 1 for background, ``2 + i`` for ``instances[i]`` (sorted, every
    non-zero label among them), so that 0 is free for pixels beyond the frame."""
    idx = torch.searchsorted(instances, labels.to(instances.dtype).contiguous()) + 2  # a crop view is strided
    return torch.where(labels > 0, idx, 1)


def _check_measured(halo: Any, context: Any) -> None:
    check(isinstance(halo, int) and not isinstance(halo, bool) and 0 <= halo <= 256, "halo", "must be an integer in [0, 256]", halo)
    check(isinstance(context, int) and not isinstance(context, bool) and 0 <= context <= 4096, "context", "must be an integer in [0, 4096]", context)


def _background_for(s: AnnotatedImage, background: Any, config: ObjectConfig, halo: int) -> torch.Tensor:
    if background is not None:
        bg = torch.as_tensor(background)
        bg = bg if bg.ndim == 3 else bg.unsqueeze(0)
        if tuple(bg.shape) != tuple(s.image.shape) or bg.dtype != s.image.dtype:
            raise IaaaError(f"{s.name or 'sample'}: background {tuple(bg.shape)} {bg.dtype} does not match image {tuple(s.image.shape)} {s.image.dtype}")
        return bg.to(s.image.device)
    # Mask grouping keeps every real pixel beyond the halos, so the background it falls back on
    # removes cells the same way; box grouping keeps the paper's box fill.
    method = "mask" if config.grouping == "mask" else "bilinear"
    return remove_cells(s.image, s.labels, BackgroundConfig(background_method=method), halo=halo if method == "mask" else None, generator=torch.Generator().manual_seed(0)).image


def extract_objects(
    samples: Iterable[Any],
    config: ObjectConfig | None = None,
    *,
    halo: int = 0,
    context: int = 0,
    backgrounds: Sequence[torch.Tensor] | None = None,
) -> list[CellObject]:
    """Cut SCOs and MCOs out of annotated images.

    Args:
        samples: annotated images (:class:`~iaaa.structures.AnnotatedImage`, ``(image, labels)``
            pairs or dicts; see :func:`~iaaa.structures.as_annotated`).
        config: which cells form one object and which are kept (:class:`ObjectConfig`; ``None``:
            its defaults, mask grouping; ``ObjectConfig(grouping="box")`` is the paper's rule).
        halo: with ``grouping="mask"``, the crop keeps the real pixels within this many pixels
            of its own cells (nearer to them than to any other cell): the cells' halo or rim.
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
    config = ObjectConfig() if config is None else config
    if not isinstance(config, ObjectConfig):
        raise IaaaError(f"config: expected an ObjectConfig, got {type(config).__name__}")
    _check_measured(halo, context)
    out: list[CellObject] = []
    for i, raw in enumerate(samples):
        s = as_annotated(raw, name=f"sample{i}")
        if not s.name:
            s = AnnotatedImage(s.image, s.labels, s.class_ids, f"sample{i}", s.categories, s.meta)
        bg = None if backgrounds is None else backgrounds[i]
        objs, _ = extract(s, config, bg, halo=halo, context=context)
        out.extend(objs)
    return out
