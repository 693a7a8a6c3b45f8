"""Label maps: validation, and every conversion between a label map, stacked binary masks and
boxes.

A label map is an integer tensor ``(H, W)`` where 0 is background and ``k > 0`` is instance ``k``.

Conventions (the whole library keeps them):

* Instance order is always the sorted order of the non-zero label values present in the map;
  ``class_ids[i]`` belongs to the ``i``-th instance in that order.
* Boxes are XYXY with inclusive maxima, exactly as :func:`torchvision.ops.masks_to_boxes`
  returns them (a one-pixel instance at ``(x, y)`` has box ``(x, y, x, y)``).
* Label maps are ``torch.int64`` once inside the library (16-bit PNG label maps are read as
  such), because ``bincount``/``scatter`` indexing wants int64. What a fitted compositor keeps
  for the whole run (its pooled objects and real cells) is stored narrower, by
  :func:`compact_labels`, and widened where it is used.

COCO RLE lives in :mod:`iaaa.data.coco`; the data model built on these (``AnnotatedImage``,
``CellObject``) in :mod:`iaaa.structures`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from iaaa.errors import DataError, IaaaError

__all__ = [
    "check_labels",
    "compact_labels",
    "neighbour_pairs",
    "instance_ids",
    "instance_areas",
    "labels_to_masks",
    "labels_to_masks_and_boxes",
    "masks_to_labels",
    "labels_to_boxes",
    "masks_to_boxes",
    "instance_boxes",
    "relabel_sequential",
    "split_instances",
    "check_instance_maps",
]


# ----------------------------------------------------------------------------- validation


def check_labels(labels: Any, what: str = "labels", *, strict: bool = False) -> torch.Tensor:
    """Validate a label map (any shape) and return it as int64: integer or bool values, none
    negative; a float map is accepted when it holds whole numbers.

    ``strict=True`` is the op kernels' check: only integer or bool tensors, kept in their dtype
    (gathering moves any integer dtype exactly) and not scanned for negative values."""
    if strict:
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"{what}: expected a torch.Tensor or None, got {type(labels).__name__}")
        if labels.dtype.is_floating_point or labels.dtype.is_complex:
            raise TypeError(f"{what}: label maps must be integer, got dtype {labels.dtype}")
        return labels
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(np.asarray(labels))
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.dtype.is_complex:
        if labels.dtype == torch.bool:
            return labels.to(torch.int64)
        if labels.dtype.is_floating_point and torch.equal(labels, labels.round()):
            labels = labels.to(torch.int64)
        else:
            raise IaaaError(f"{what}: label map must hold integers, got dtype {labels.dtype}")
    if labels.dtype == torch.uint16:
        labels = labels.to(torch.int32)
    labels = labels.to(torch.int64)
    if labels.numel() and int(labels.min()) < 0:
        raise IaaaError(f"{what}: label map has negative values (min {int(labels.min())}); 0 is background, k>0 instance k")
    return labels


def neighbour_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of 8-neighbouring pixels of a host label map ``(H, W)`` whose labels differ and
    are both non-zero, as the two labels ``(p, q)`` (each pixel pair once, not deduplicated, in
    the map's dtype): the right, down, down-right and down-left neighbours cover every
    8-neighbour pair once. What touching and adjacency of labels are read from."""
    ps, qs = [], []
    for p, q in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :]), (labels[:-1, :-1], labels[1:, 1:]), (labels[:-1, 1:], labels[1:, :-1])):
        m = (p != q) & (p > 0) & (q > 0)
        ps.append(p[m])
        qs.append(q[m])
    return np.concatenate(ps), np.concatenate(qs)


_COMPACT = ((255, np.uint8, torch.uint8), (32767, np.int16, torch.int16), (2**31 - 1, np.int32, torch.int32))


def compact_labels(labels: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """``labels`` (non-negative ids; a tensor or a NumPy array, returned as the same kind) in
    the narrowest of uint8, int16, int32 and int64 that holds its largest id: the same values in
    1-8x less memory. For label maps held for a long time (a fitted compositor keeps one per
    pooled object and per real image: 8 bytes a pixel as int64, more than the image itself);
    widen with ``.to(torch.int64)`` / ``.astype(np.int64)`` where int64 is needed. (Not
    uint16: torch has few kernels for it.)"""
    n = labels.numel() if isinstance(labels, torch.Tensor) else labels.size
    top = int(labels.max()) if n else 0
    if n and int(labels.min()) < 0:
        raise IaaaError(f"labels: label map has negative values (min {int(labels.min())}); 0 is background, k>0 instance k")
    for limit, np_dtype, torch_dtype in _COMPACT:
        if top <= limit:
            if isinstance(labels, torch.Tensor):
                return labels if labels.dtype == torch_dtype else labels.to(torch_dtype)
            return labels if labels.dtype == np_dtype else labels.astype(np_dtype)
    return labels.to(torch.int64) if isinstance(labels, torch.Tensor) else labels.astype(np.int64)


def instance_areas(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, areas)``: sorted non-zero label values present in ``labels`` and their pixel
    counts (int64, on the labels' device).

    A bincount (one pass) rather than ``torch.unique``: unique sorts every pixel, and its
    multi-threaded CPU sort was measured 10-30x slower than this on a busy 2-core machine. Sparse
    huge ids, where a bincount would be large, fall back to ``unique``."""
    flat = labels.reshape(-1).to(torch.int64)
    if flat.numel() == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=labels.device)
        return empty, empty
    top = int(flat.max())
    if top <= 4 * flat.numel() + 4096:
        counts = torch.bincount(flat, minlength=top + 1)
        ids = torch.nonzero(counts[1:]).flatten() + 1
        return ids, counts[ids]
    ids, counts = torch.unique(flat, return_counts=True)
    keep = ids != 0
    return ids[keep], counts[keep]


def instance_ids(labels: torch.Tensor) -> torch.Tensor:
    """Sorted non-zero label values present in ``labels`` (int64, on the labels' device)."""
    return instance_areas(labels)[0]


# ----------------------------------------------------------------------------- label map <-> masks / boxes


def labels_to_masks(
    labels: torch.Tensor, ids: torch.Tensor | None = None, dtype: torch.dtype = torch.bool, windows: torch.Tensor | None = None,
    *, shared: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a label map ``(H, W)`` into stacked masks ``(N, H, W)`` of ``dtype`` (bool, or
    uint8 as torchvision's ``Mask`` targets use).

    Returns ``(masks, ids)`` with ``masks[i] = labels == ids[i]``; ``ids`` defaults to
    :func:`instance_ids`. Each mask is compared only inside its instance's box: comparing every
    pixel against every id costs N full passes, which dominated building detection targets.
    ``windows`` (``(N, 4)`` inclusive XYXY, with ``ids``) are boxes already known to contain
    each instance, e.g. where a compositor pasted it; they save computing the boxes.

    ``shared``: allocate CPU masks in shared memory; ``None`` (default): when called in a
    DataLoader worker, the rule ``default_collate`` follows for its batches, since the worker
    then sends them without copying them there first. (N full-size masks are the largest part of
    a detection target: 161 MB for 161 cells at 1024 px, whose zeroing and copy cost several
    times the synthesis of the image.) A fresh shared-memory file reads as zeros, so only the
    instances' boxes are written."""
    if labels.ndim != 2:
        raise IaaaError(f"labels: expected a (H, W) label map, got shape {tuple(labels.shape)}")
    labels = check_labels(labels)
    if windows is not None and labels.numel() and (ids is None or ids.numel()):
        if ids is None or len(windows) != ids.numel():
            raise IaaaError(f"windows: need one window per id, got {len(windows)} windows for {None if ids is None else ids.numel()} ids")
        ids, boxes = ids.to(labels.device, torch.int64), torch.as_tensor(windows, dtype=torch.int64)
    else:
        ids, boxes = _ids_and_boxes_of(labels, ids)
    return _split(labels, ids, boxes, dtype, shared), ids


def labels_to_masks_and_boxes(
    labels: torch.Tensor, ids: torch.Tensor | None = None, dtype: torch.dtype = torch.bool, *, shared: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(masks, ids, boxes)``: :func:`labels_to_masks` and :func:`labels_to_boxes` (float32
    XYXY) together, from one search of the label map for every instance's box: what a detection
    target needs (the search costs as much as writing the masks at 512 px)."""
    if labels.ndim != 2:
        raise IaaaError(f"labels: expected a (H, W) label map, got shape {tuple(labels.shape)}")
    labels = check_labels(labels)
    ids, boxes = _ids_and_boxes_of(labels, ids)
    return _split(labels, ids, boxes, dtype, shared), ids, boxes.float()


def _ids_and_boxes_of(labels: torch.Tensor, ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_ids_and_boxes` of a checked label map, an empty map or empty ``ids`` included
    (every asked id then gets a zero box)."""
    if labels.numel() == 0 or (ids is not None and ids.numel() == 0):
        ids = torch.zeros(0, dtype=torch.int64, device=labels.device) if ids is None else ids.to(labels.device, torch.int64)
        return ids, torch.zeros((ids.numel(), 4), dtype=torch.int64, device=labels.device)
    return _ids_and_boxes(labels, ids)


def _split(labels: torch.Tensor, ids: torch.Tensor, boxes: torch.Tensor, dtype: torch.dtype, shared: bool | None) -> torch.Tensor:
    """The stacked masks of ``ids``, each compared only inside its box (``boxes``: int64 XYXY
    containing the instance; a zero box for an absent id)."""
    masks = _zero_masks((ids.numel(), *labels.shape), dtype, labels.device, shared)
    if labels.numel() == 0:
        return masks
    for i, (value, (x0, y0, x1, y1)) in enumerate(zip(ids.tolist(), boxes.tolist())):
        if x1 >= x0:  # absent ids keep an all-zero mask (their box is all zeros, x1 == x0 == 0)
            window = labels[y0 : y1 + 1, x0 : x1 + 1]
            masks[i, y0 : y1 + 1, x0 : x1 + 1] = window == value
    return masks


def _zero_masks(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, shared: bool | None) -> torch.Tensor:
    if shared is None:
        shared = torch.utils.data.get_worker_info() is not None
    if not shared or device.type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    numel = int(np.prod(shape))
    # torch's own way (default_collate): a new storage in shared memory, a fresh file whose
    # pages read as zero until written.
    storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def masks_to_labels(masks: torch.Tensor, ids: torch.Tensor | Sequence[int] | None = None, overlap: str = "error") -> torch.Tensor:
    """Merge stacked masks ``(N, H, W)`` into an int64 label map; mask ``i`` gets ``ids[i]``
    (default ``i + 1``).

    ``overlap``: ``"error"`` raises when a pixel belongs to two masks; ``"last"`` lets the later
    mask win; ``"first"`` the earlier one. The choice is explicit because silently resolving
    overlaps changes instance shapes."""
    if masks.ndim != 3:
        raise IaaaError(f"masks: expected (N, H, W), got shape {tuple(masks.shape)}")
    n = masks.shape[0]
    masks = masks.bool()
    ids_t = torch.arange(1, n + 1, dtype=torch.int64, device=masks.device) if ids is None else torch.as_tensor(ids, dtype=torch.int64, device=masks.device)
    if ids_t.numel() != n:
        raise IaaaError(f"ids: {ids_t.numel()} ids for {n} masks")
    if n == 0:
        return torch.zeros(masks.shape[1:], dtype=torch.int64, device=masks.device)
    count = masks.sum(0)
    if overlap == "error" and bool((count > 1).any()):
        raise IaaaError(f"masks overlap at {int((count > 1).sum())} pixels; pass overlap='first' or 'last' to resolve")
    order = torch.arange(n, device=masks.device).view(-1, 1, 1)
    if overlap == "first":
        idx = torch.where(masks, order, n).amin(0)
    elif overlap in ("last", "error"):
        idx = torch.where(masks, order, -1).amax(0)
    else:
        raise IaaaError(f"overlap must be 'error', 'first' or 'last', got {overlap!r}")
    lut = torch.cat([ids_t, ids_t.new_zeros(1)])  # index n (first) and -1 (last) -> background
    return lut[idx]


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """XYXY float boxes of stacked masks, identical to :func:`torchvision.ops.masks_to_boxes`
    (empty masks give all-zero boxes instead of an error)."""
    if masks.ndim != 3:
        raise IaaaError(f"masks: expected (N, H, W), got shape {tuple(masks.shape)}")
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros((0, 4), dtype=torch.float32, device=masks.device)
    # amax over a uint8 view reads the masks ~10x faster than any() over bool on CPU.
    m = masks.view(torch.uint8) if masks.dtype == torch.bool else (masks != 0).view(torch.uint8) if masks.dtype != torch.uint8 else masks
    rows, cols = m.amax(2) > 0, m.amax(1) > 0
    ar_h = torch.arange(h, device=m.device)
    ar_w = torch.arange(w, device=m.device)
    y0 = torch.where(rows, ar_h, h).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1)
    x0 = torch.where(cols, ar_w, w).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return torch.where(rows.any(1, keepdim=True), boxes, torch.zeros_like(boxes))


def _ids_and_boxes(labels: torch.Tensor, ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, int64 XYXY boxes)``; ids default to those present. Absent ids get zero boxes.

    One bincount of ``(label, row)`` pairs and one of ``(label, column)`` pairs say which rows
    and columns each label touches; the ids fall out of the same tables for free."""
    h, w = labels.shape
    dev = labels.device
    top = int(labels.max()) if labels.numel() else 0
    if dev.type == "cpu" and 0 < top <= min(_FIND_OBJECTS_MAX, h * w):
        return _ids_and_boxes_by_slices(labels, ids, top)
    if ids is not None and ids.numel():
        top = max(top, int(ids.max()))
    if (top + 1) * (h + w) > 64 * (h * w + 4096):
        # Huge sparse ids, or more instances than the tables can hold for this size: renumber,
        # then one scatter of every pixel's row and column (O(pixels) whatever the count).
        dense, old = relabel_sequential(labels)
        want = old if ids is None else ids.to(dev, torch.int64)
        pos = torch.searchsorted(old, want).clamp_max(max(old.numel() - 1, 0))
        found = (old[pos] == want) if old.numel() else torch.zeros_like(want, dtype=torch.bool)
        boxes = _boxes_by_scatter(dense, old.numel())[(pos + 1).clamp_max(old.numel())]  # absent ids: masked below
        return want, torch.where(found.view(-1, 1), boxes, torch.zeros_like(boxes))
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = torch.bincount((labels * h + ar_h.view(-1, 1)).reshape(-1), minlength=(top + 1) * h).view(top + 1, h) > 0
    cols = torch.bincount((labels * w + ar_w.view(1, -1)).reshape(-1), minlength=(top + 1) * w).view(top + 1, w) > 0
    present = rows.any(1)
    sel = torch.nonzero(present[1:]).flatten() + 1 if ids is None else ids.to(dev, torch.int64)
    rows, cols, present = rows[sel], cols[sel], present[sel]
    y0 = torch.where(rows, ar_h, h).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1)
    x0 = torch.where(cols, ar_w, w).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1)
    return sel, torch.where(present.view(-1, 1), boxes, torch.zeros_like(boxes))


# Largest label value boxed by scipy's find_objects on the CPU: one C pass over the pixels
# (2.6 ms on a 1024 px field against 10 ms for the two (label, row / column) bincounts), then a
# Python step per label value up to the largest, which stays small below this (and below the
# pixel count: sparse huge ids go to the renumbering path).
_FIND_OBJECTS_MAX = 1 << 16


def _ids_and_boxes_by_slices(labels: torch.Tensor, ids: torch.Tensor | None, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_ids_and_boxes` of a CPU label map whose largest value is ``top`` (>= 1), from
    :func:`scipy.ndimage.find_objects` (a slice pair per label value, ``None`` when absent)."""
    import scipy.ndimage as ndi

    a = labels.detach().numpy()  # int64 from check_labels; find_objects takes any integer type
    table = np.zeros((top + 1, 4), dtype=np.int64)
    present = np.zeros(top + 1, dtype=bool)
    for k, sl in enumerate(ndi.find_objects(a, max_label=top), start=1):
        if sl is not None:
            table[k] = (sl[1].start, sl[0].start, sl[1].stop - 1, sl[0].stop - 1)
            present[k] = True
    if ids is None:
        sel = np.flatnonzero(present)
        return torch.from_numpy(sel.astype(np.int64)), torch.from_numpy(table[sel])
    want = ids.detach().cpu().to(torch.int64).numpy()
    if (want == 0).any():  # the background's own box, as the bincount tables give it
        bg = a == 0
        rows, cols = np.flatnonzero(bg.any(1)), np.flatnonzero(bg.any(0))
        if rows.size:
            table[0] = (cols[0], rows[0], cols[-1], rows[-1])
            present[0] = True
    inside = (want >= 0) & (want <= top)
    at = np.where(inside, want, 0)
    boxes = np.where((inside & present[at])[:, None], table[at], 0)
    return ids.to(torch.int64), torch.from_numpy(boxes)


def _boxes_by_scatter(dense: torch.Tensor, n: int) -> torch.Tensor:
    """``(n + 1, 4)`` int64 XYXY boxes of the labels ``0..n`` of ``dense`` (each present)."""
    h, w = dense.shape
    dev = dense.device
    flat = dense.reshape(-1)
    ys = torch.arange(h, device=dev).repeat_interleave(w)
    xs = torch.arange(w, device=dev).repeat(h)

    def reduce(v: torch.Tensor, start: int, how: str) -> torch.Tensor:
        return torch.full((n + 1,), start, dtype=torch.int64, device=dev).scatter_reduce(0, flat, v, how)

    return torch.stack([reduce(xs, w, "amin"), reduce(ys, h, "amin"), reduce(xs, -1, "amax"), reduce(ys, -1, "amax")], 1)


def labels_to_boxes(labels: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
    """XYXY boxes ``(N, 4)`` float32 of each instance of a label map, in ``ids`` order (ids absent
    from the map get all-zero boxes, as :func:`masks_to_boxes` gives empty masks). Never
    materialises N full masks."""
    labels = check_labels(labels)
    if labels.numel() == 0 or (ids is not None and ids.numel() == 0):
        return torch.zeros((0, 4), dtype=torch.float32, device=labels.device)
    return _ids_and_boxes(labels, ids)[1].float()


def instance_boxes(labels: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
    """int64 XYXY boxes (inclusive maxima) of the instances of a label map, in ``ids`` order
    (default: every instance, sorted)."""
    if ids is None:
        labels = check_labels(labels)
        if labels.numel() == 0:
            return torch.zeros((0, 4), dtype=torch.int64, device=labels.device)
        return _ids_and_boxes(labels, None)[1]
    return labels_to_boxes(labels, ids).to(torch.int64)


def relabel_sequential(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Renumber instances to ``1..N`` keeping their order. Returns ``(new_labels, old_ids)``
    where ``old_ids[k - 1]`` is the original value of new instance ``k``."""
    labels = check_labels(labels)
    old_ids = instance_ids(labels)
    if old_ids.numel() == 0:
        return torch.zeros_like(labels), old_ids
    top = int(old_ids[-1])
    if top <= 4 * labels.numel() + 4096:
        lut = torch.zeros(top + 1, dtype=torch.int64, device=labels.device)
        lut[old_ids] = torch.arange(1, old_ids.numel() + 1, device=labels.device)
        return lut[labels], old_ids
    # Huge sparse ids: map through a sorted search instead of a table.
    pos = torch.searchsorted(old_ids, labels.reshape(-1)).reshape(labels.shape)
    return torch.where(labels > 0, pos + 1, torch.zeros_like(labels)), old_ids


def split_instances(labels: torch.Tensor, share: float = 0.2, min_pixels: int = 16) -> dict[int, list[int]]:
    """Instances whose pixels lie in two or more separate regions of comparable size: ``{id:
    sizes of its regions, largest first}`` (8-connected regions; a region counts when it holds
    at least ``share`` of the largest one's pixels and ``min_pixels``). Hand-drawn label maps
    leave specks of a few pixels beside a cell, which do not count; a binary (semantic) mask
    read as a label map is one "instance" spread over every cell of the image, which does."""
    import scipy.ndimage as ndi

    a = labels.detach().cpu().numpy()
    fg = a > 0
    if not fg.any():
        return {}
    regions, n = ndi.label(fg, structure=np.ones((3, 3), dtype=bool))
    # One (instance, region) pair per key: an instance in two regions has two keys.
    pairs, sizes = np.unique(a[fg].astype(np.int64) * (n + 1) + regions[fg], return_counts=True)
    ids = pairs // (n + 1)
    uniq, first, count = np.unique(ids, return_index=True, return_counts=True)
    out: dict[int, list[int]] = {}
    for i, f, k in zip(uniq[count > 1], first[count > 1], count[count > 1]):
        parts = np.sort(sizes[f : f + k])[::-1]
        if ((parts >= share * parts[0]) & (parts >= min_pixels)).sum() >= 2:
            out[int(i)] = parts.tolist()
    return out


def check_instance_maps(maps: Sequence[tuple[str, torch.Tensor]]) -> None:
    """Refuse maps that are not instance label maps, with a :class:`~iaaa.errors.DataError`
    naming the first ``(name, labels)`` at fault:

    * binary (semantic) masks: every map with cells holds a single value and at least half of
      them spread it over separate regions (:func:`split_instances`), so each "instance" would
      be every cell of its image (one such map among real label maps is only warned about: it
      may be one cell in pieces; the region count runs on single-valued maps alone);
    * an image read as a label map (swapped folders): most neighbouring labelled pixels
      differ in label (:data:`IMAGE_LIKE_CHANGES`);
    * a numbered background: no map holds a 0, and in each one label, beside others, covers a
      quarter or more and all four edges (some tools number the background 1).
    """
    import warnings

    single, multi, split, no_zero, any_zero = 0, False, [], [], False
    for name, labels in maps:
        top = int(labels.max()) if labels.numel() else 0
        if top == 0:
            any_zero = any_zero or labels.numel() > 0
            continue
        several = _holds_several(labels, top)
        if several:
            _refuse_image_as_labels(name, labels)
        if int(labels.min()) == 0:
            any_zero = True
        else:
            no_zero.append((name, labels))
        if several:
            multi = True  # a map with several instances: these are label maps
            continue
        single += 1
        parts = split_instances(labels)
        if parts:
            split.append((name, top, parts[top]))
    if no_zero and not any_zero:
        _refuse_labelled_background(no_zero)
    if not split:
        return
    name, value, parts = split[0]
    what = f"{name}: label value {value} covers {len(parts)} separate regions ({', '.join(map(str, parts[:4]))}{', ...' if len(parts) > 4 else ''} px)"
    if not multi and 2 * len(split) >= single:
        raise DataError(f"{what}, and every labelled map holds one value: these look like binary (semantic) masks, not instance label maps; give each cell its own value (e.g. scipy.ndimage.label(mask > 0)[0], which merges touching cells, or a segmentation tool's instance output)")
    for name, value, parts in split:
        warnings.warn(f"{name}: label value {value} covers {len(parts)} separate regions ({', '.join(map(str, parts[:4]))} px) and is the map's only instance: a binary (semantic) mask? Each cell needs its own label value", stacklevel=3)


IMAGE_LIKE_CHANGES = 0.7
"""Share of horizontally neighbouring labelled pixels with different labels above which a
"label map" is an image (intensities change at almost every pixel: 0.94-1.0 in the images of
the shipped and simulated data, against at most 0.02 in DSB 2018's label maps, 0.002 in
usiigaci's and 0.03 in dense simulated fields; 2 px wide touching instances would give 0.5)."""


def _holds_several(labels: torch.Tensor, top: int) -> bool:
    """Whether ``labels`` (largest value ``top`` > 0) holds more than one instance value. A sparse
    subsample settles most real maps (two values seen) at 1/17 the cost of the full pass."""
    sub = labels.reshape(-1)[::17]
    sub = sub[sub > 0]
    if sub.numel() and int(sub.min()) != int(sub.max()):
        return True
    return int(torch.where(labels > 0, labels, top).min()) != top


def _refuse_image_as_labels(name: str, labels: torch.Tensor) -> None:
    """Raise when most horizontally neighbouring labelled pixels (every 8th row) differ in
    label (:data:`IMAGE_LIKE_CHANGES`)."""
    rows = labels[::8]
    a, b = rows[:, 1:], rows[:, :-1]
    both = (a > 0) & (b > 0)
    pairs = int(both.sum())
    if pairs < 64:
        return
    share = int((both & (a != b)).sum()) / pairs
    if share > IMAGE_LIKE_CHANGES:
        raise DataError(f"{name}: {share:.0%} of neighbouring labelled pixels differ in label (a label map changes label only where cells meet: a few %): this is an image, not an instance label map; are the image and mask folders swapped?")


def _refuse_labelled_background(maps: Sequence[tuple[str, torch.Tensor]]) -> None:
    """Raise when every map of ``maps`` (none holding a 0) has, besides other labels, one label
    on a quarter or more of its pixels that also runs along all four edges: that label is the
    background. (One label alone filling a map may be one cell filling the frame.)"""
    first = None
    for name, labels in maps:
        ids, areas = instance_areas(labels)
        big = int(ids[int(areas.argmax())])
        edges = (labels[0], labels[-1], labels[:, 0], labels[:, -1])
        if len(ids) < 2 or int(areas.max()) * 4 < labels.numel() or not all(bool((e == big).any()) for e in edges):
            return
        first = first or (name, big, float(areas.max()) / labels.numel())
    name, big, share = first
    raise DataError(f"{name}: no pixel is 0 (background), and label {big} covers {share:.0%} of the map and all four edges, as in every map: is the background labelled {big}? 0 must be background (e.g. labels[labels == {big}] = 0)")
