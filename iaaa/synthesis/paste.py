"""PasteCells: the online transform. Cells from a fitted compositor's pools pasted into a real
training sample, inside the user's own pipeline (torchvision v2 style).

:func:`paste_cells` is the kernel: it draws whether to paste (probability ``p``), how many
objects (``n``), which ones (:func:`~iaaa.synthesis.draws.pick_objects` on the group pool that
matches the sample, without repeats), applies the compositor's object scale and per-object
policy to each, and places them with the compositor's placement (corner-matched candidates,
feathered blend, the group's rim; :func:`~iaaa.synthesis.placement.place`).
:class:`PasteCells` is the thin transform on top: it accepts an
:class:`~iaaa.structures.AnnotatedImage`, an ``(Image, Mask)`` pair (a label-map mask) or
the Mask R-CNN ``(image, target)`` pair of :func:`iaaa.data.dataset.make_target`, and returns the same
kind.

Choices made here:

* How many objects, and where: :class:`PasteConfig` (the compositor config's ``paste`` stage).
  ``paste_count`` is ``"data"`` (default): the cells the compositor's own count rule gives an
  image of the sample's area (``CountConfig``: ``count``, ``count_factor``, ``count_cap``
  against the sample's own cells, MCO share; a count from the data is never 0), as
  :meth:`~iaaa.synthesis.compositor.CellCompositor.sample` draws them onto a real image; or a
  fixed count or ``(lo, hi)`` range of objects.
* With ``over_cells=False`` (default) pasted cells go into the sample's free space as the
  compositor's ``onto="image"`` puts them (``gap`` from every real cell, the placement's
  contacts and level checks), and only a call none of whose objects finds room pastes on top.
  With ``over_cells=True`` they go **on top** of the sample's cells, as Simple Copy-Paste does:
  the pixels they cover change owner, a cell hidden entirely is dropped with its class id.
  Either way ids are renumbered ``1..N`` in the order (surviving real cells, pasted cells) and
  pasted objects never overlap each other, so every pasted instance is exactly its object's
  mask at its box. Corner matching steers objects to places whose surroundings look like the
  object's own (mostly background). The defaults are what ``iaaa synth`` does to a field;
  applied to whole images before the random crop they were judged above 1-3 objects over the
  cells in a window around the crop (benchmarks/downstream.md, 2026-12-05). The count decides
  the cost: the data's count on a whole 1022 x 1024 field is tens of objects per call
  (benchmarks/paste.md).
* The feather and the rim reach ``compositor.radius`` pixels beyond a pasted mask, but never
  over a real cell: their alpha is zero on other cells' pixels, so a real cell's uncovered
  pixels keep their values (and match their labels). Every pixel farther than that from every
  pasted mask is bit-identical to the input.
* The group pool: with ``group_by=None`` the one pool; ``"size"`` the group of the sample's size;
  ``"auto"`` the group whose cell diameter is nearest the sample's median cell diameter (same
  image size preferred) when within the grouping's ratio 1.6; a callable ``group_by`` is
  called on the sample. A sample that matches no group draws from all objects (with the smallest
  rim of the groups, so no object carries more surroundings than it was cut with).
* With ``match_intensity`` each object is mapped from its source image's levels to the
  sample's own (its background and cell medians, measured per call).
* Images: the pools' dtype, or any float image in ``[0, 1]`` (the scale the pools hold their
  objects in, and what :func:`iaaa.data.dataset.make_target` gives); the channel count must be the
  pools'. Output dtype = input dtype.
* Randomness: only the ``generator`` passed to a call; without one, the transform's own
  generator (seeded by the compositor's seed) advances. For results independent of DataLoader
  workers, pass a generator per sample (e.g. :func:`iaaa.data.dataset.sample_generator`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torchvision.transforms import v2

from iaaa.dtypes import check_unit_range, from_float, to_float
from iaaa.errors import IaaaError
from iaaa.sampler import OwnGenerator
from iaaa.structures import AnnotatedImage, from_tv_tensors, labels_to_masks_and_boxes
from iaaa.synthesis.canvas import surviving_ids
from iaaa.synthesis.checks import bounded, check, validate
from iaaa.synthesis.image_groups import median_diameter
from iaaa.synthesis.levels import intensity_anchors, level_map
from iaaa.synthesis.into_image import place_into_image
from iaaa.synthesis.draws import CountBasis, draw_objects, pick_objects
from iaaa.synthesis.pools import GroupPool, Pools

__all__ = ["PasteCells", "PasteConfig", "PasteResult", "paste_cells", "match_group"]

GROUP_RATIO = 1.6
"""Largest ratio of median cell diameters for a sample to join a group (as ``group_by="auto"``)."""


@dataclass(frozen=True)
class PasteConfig:
    """What :class:`PasteCells` pastes into a sample (validated once, here; the ``paste`` stage
    of :class:`~iaaa.synthesis.config.CompositorConfig`).

    Attributes:
        paste_count: objects per call: ``"data"`` (default): the compositor's count rule for an
            image of the sample's area (see module docs); an int; or an inclusive ``(lo, hi)``
            range drawn uniformly. :class:`PasteCells`'s ``n`` overrides it.
        over_cells: pasted cells go into the sample's free space only (``False``, default, as
            ``onto="image"``; on top only when no object finds room) or may cover the sample's
            own cells (``True``, Simple Copy-Paste).
    """

    paste_count: int | tuple[int, int] | Literal["data"] = bounded("data", 0, 1000)
    over_cells: bool = False

    def __post_init__(self) -> None:
        validate(self)
        c = self.paste_count
        check(not isinstance(c, tuple) or c[0] <= c[1], "paste_count", "range must satisfy lo <= hi", c)


@dataclasses.dataclass
class PasteResult:
    """What :func:`paste_cells` returns.

    Attributes:
        image: ``(C, H, W)`` in the input's dtype and device.
        labels: int64 ``(H, W)``, ids ``1..N``: surviving real cells first (in their id order),
            then the pasted ones.
        class_ids: int64 ``(N,)``.
        meta: ``pasted`` (bool), ``objects`` (pool index of each placed object), ``boxes``
            (``(P, 4)`` XYXY inclusive box of each placed mask), ``pasted_ids`` (new ids of the
            pasted cells), ``dropped`` (input ids hidden entirely), ``skipped`` (pool indices that
            found no place), ``group`` (the group key drawn from, or ``"all"``), ``over_cells``
            (whether the objects were placed over the sample's cells: ``PasteConfig.over_cells``,
            or a free-space paste where no object found room).
    """

    image: torch.Tensor
    labels: torch.Tensor
    class_ids: torch.Tensor
    meta: dict[str, Any]


def _check_count(n: Any) -> tuple[int, int] | str:
    if n == "data":
        return "data"
    if isinstance(n, bool):
        raise IaaaError(f"n: expected an int, an inclusive (lo, hi) range of objects or 'data', got {n!r}")
    if isinstance(n, int):
        n = (n, n)
    if not (isinstance(n, (tuple, list)) and len(n) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in n)):
        raise IaaaError(f"n: expected an int, an inclusive (lo, hi) range of objects or 'data', got {n!r}")
    lo, hi = int(n[0]), int(n[1])
    if not 0 <= lo <= hi <= 1000:
        raise IaaaError(f"n: need 0 <= lo <= hi <= 1000, got {n!r}")
    return lo, hi


def _check_p(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise IaaaError(f"p: expected a probability in [0, 1], got {p!r}")
    return float(p)


def _pools(compositor: Any) -> Pools:
    pools = getattr(compositor, "pools", None)
    if not isinstance(pools, Pools):
        raise IaaaError("compositor: not fitted; call compositor.fit(samples) before PasteCells uses its pools")
    return pools


def match_group(compositor: Any, sample: AnnotatedImage, areas: np.ndarray | None = None) -> tuple[Any, GroupPool]:
    """``(key, pool)`` of the compositor's group that ``sample`` belongs to, or ``("all", pool of
    every object)`` (see the module docs). ``areas``: the sample's cell areas, if known."""
    pools = _pools(compositor)
    cfg = compositor.config
    groups = pools.groups
    key: Any = "all"
    if cfg.group_by is None or len(groups) == 1 and None in groups:
        key = next(iter(groups))
    elif cfg.group_by == "size":
        key = sample.size if sample.size in groups else "all"
    elif cfg.group_by == "auto":
        if areas is None:
            areas = np.bincount(sample.labels.reshape(-1).cpu().numpy())[1:]
            areas = areas[areas > 0]
        d = median_diameter(areas[areas >= cfg.objects.min_area])
        keys = [k for k in groups if isinstance(k, tuple) and len(k) == 3]
        same = [k for k in keys if (k[0], k[1]) == sample.size]
        keys = same or keys
        if d > 0 and keys:
            best = min(keys, key=lambda k: abs(math.log(d / max(k[2], 1))))
            if max(d, best[2]) / max(min(d, best[2]), 1e-9) <= GROUP_RATIO:
                key = best
        elif d == 0 and same:
            key = same[0]
    elif callable(cfg.group_by):
        k = cfg.group_by(sample)
        key = k if k in groups else "all"
    if key != "all":
        return key, groups[key]
    first = next(iter(groups.values()))
    rim = min(g.rim for g in groups.values())
    share = pools.stats.mco_fraction
    return "all", dataclasses.replace(first, sco=pools.sco_index, mco=pools.mco_index, mco_fraction=share, rim=rim)


def paste_cells(
    compositor: Any,
    image: torch.Tensor,
    labels: torch.Tensor,
    class_ids: torch.Tensor | None = None,
    *,
    p: float = 0.5,
    n: int | tuple[int, int] | Literal["data"] | None = None,
    generator: torch.Generator,
    sample: AnnotatedImage | None = None,
) -> PasteResult:
    """Paste objects of the fitted ``compositor`` into ``(image, labels)`` (see module docs).

    Args:
        compositor: a fitted :class:`~iaaa.synthesis.compositor.CellCompositor`; its config gives
            the placement, the MCO share and the grouping, its ``policy`` and ``object_scale``
            transform each object.
        image: ``(C, H, W)``, the pools' dtype or float in ``[0, 1]``.
        labels: integer ``(H, W)`` instance label map, 0 = background.
        class_ids: one class id per instance in sorted id order (``None``: all 1).
        p: probability of pasting at all; a call that does not paste returns the input
            as it is (its ids not renumbered).
        n: objects pasted, an int or an inclusive ``(lo, hi)`` range drawn uniformly, or
            ``"data"`` (see module docs); ``None``: the compositor's ``paste_count``.
        generator: the only source of randomness.
        sample: the sample as an AnnotatedImage, for a callable ``group_by``.
    """
    pools = _pools(compositor)
    cfg = compositor.config
    count = _check_count(cfg.paste.paste_count if n is None else n)
    p = _check_p(p)
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise IaaaError(f"image: expected a (C, H, W) tensor, got {type(image).__name__} of shape {tuple(getattr(image, 'shape', ()))}")
    c, h, w = image.shape
    want_c = int(pools.objects[0].image.shape[0])
    if c != want_c:
        raise IaaaError(f"image: {c} channels, but the compositor's pools hold {want_c}-channel objects")
    if image.dtype != pools.dtype and not image.dtype.is_floating_point:
        raise IaaaError(f"image: dtype {image.dtype}, but the compositor was fitted on {pools.dtype} images (give {pools.dtype} or float in [0, 1])")
    check_unit_range(image, "image")
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (h, w):
        raise IaaaError(f"labels: shape {tuple(getattr(labels, 'shape', ()))} does not match the image size {(h, w)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise IaaaError(f"labels: expected an integer label map, got dtype {labels.dtype}")
    g = generator
    u = torch.rand(2, generator=g, device=g.device, dtype=torch.float64).tolist()
    lab = labels.detach().to(torch.int64).cpu().numpy().reshape(h, w)
    try:
        # bincount refuses negative values itself: no separate pass for the minimum.
        counts = np.bincount(lab.ravel()) if lab.size else np.zeros(1, np.int64)
    except ValueError:
        raise IaaaError(f"labels: negative value {int(lab.min())}; 0 is background, k > 0 instance k") from None
    ids = np.flatnonzero(counts[1:]) + 1
    m_real = len(ids)
    if class_ids is None:
        cls_real = np.ones(m_real, dtype=np.int64)
    else:
        cls_real = torch.as_tensor(class_ids).detach().to(torch.int64).reshape(-1).cpu().numpy()
        if len(cls_real) != m_real:
            raise IaaaError(f"class_ids: {len(cls_real)} class ids for {m_real} instances in labels")
    m = 1 if count == "data" else count[0] + min(int(u[1] * (count[1] - count[0] + 1)), count[1] - count[0])
    if not u[0] < p or m == 0:
        return PasteResult(image, labels.to(torch.int64), torch.as_tensor(cls_real, device=labels.device), {"pasted": False})
    if sample is None:
        sample = AnnotatedImage.trusted(image=image, labels=labels, class_ids=class_ids, name="sample")
    key, pool = match_group(compositor, sample, counts[ids])
    if count == "data":
        # The count rule of sample() onto a real image of this size (never none from the data).
        area = float(h * w)
        _, chosen = draw_objects(pool, cfg.count, pools.object_cells, g, area, CountBasis(m_real, area), m_real)
        if not chosen:  # an explicit count of 0 cells
            return PasteResult(image, labels.to(torch.int64), torch.as_tensor(cls_real, device=labels.device), {"pasted": False})
    else:
        chosen = pick_objects(pool, cfg.count, m, g)
    dev = image.device
    work = to_float(image)
    anchors = intensity_anchors(work, labels) if compositor.matches_intensity else None
    imgs, labs, clss = compositor.augmented_objects(chosen, g, dev, anchors, reach=cfg.placement.radius + pool.rim)
    work = work.clone() if work.data_ptr() == image.data_ptr() else work
    if m_real and ids[-1] != m_real:
        # Ids renumbered 1..M so the pasted ones follow densely.
        lut = np.zeros(len(counts), dtype=np.int64)
        lut[ids] = np.arange(1, m_real + 1)
        lab = lut[lab]
    else:
        lab = lab.copy()
    pc = cfg.placement
    touch = pool.contacts.touching_share if pc.contacts == "data" else None
    canvas, res, on_top = place_into_image(work, level_map(work, pc.match_sigma), lab, imgs, labs, clss, pc, g, next_id=m_real + 1, rim=pool.rim,
                                           touch_share=touch, level_range=pool.level_range, on_top=cfg.paste.over_cells)
    out_lab = canvas.labels
    new_cls = res.class_ids.numpy()
    all_cls = np.concatenate([cls_real, new_cls])
    if on_top:
        alive, lut = surviving_ids(out_lab, canvas.next_id)
    else:
        # Into free space nothing is covered (as in the compositor's samples): every id lives,
        # and the label map need not be counted.
        alive, lut = np.ones(canvas.next_id, dtype=bool), None
        alive[0] = False
    keep = np.flatnonzero(alive)
    dropped = ids[~alive[1 : m_real + 1]].tolist()
    if lut is not None:
        out_lab = lut[out_lab]
        pasted_ids = lut[res.new_ids.numpy()]
    else:
        pasted_ids = res.new_ids.numpy()
    out_img = image.clone()
    if len(res.placed):
        # Write back only the window the pastes reached, so every other pixel keeps its bits.
        r = compositor.config.placement.radius + pool.rim
        b = res.boxes.numpy()
        x0, y0 = max(int(b[:, 0].min()) - r, 0), max(int(b[:, 1].min()) - r, 0)
        x1, y1 = min(int(b[:, 2].max()) + r + 1, w), min(int(b[:, 3].max()) + r + 1, h)
        out_img[:, y0:y1, x0:x1] = from_float(canvas.out[:, y0:y1, x0:x1], image.dtype, inplace=True)
    meta = {
        "pasted": bool(len(res.placed)),
        "group": key,
        "objects": [chosen[j] for j in res.placed.tolist()],
        "boxes": res.boxes,
        "pasted_ids": torch.from_numpy(pasted_ids.astype(np.int64)),
        "dropped": dropped,
        "skipped": [chosen[j] for j in res.skipped.tolist()],
        "over_cells": on_top,
    }
    return PasteResult(
        out_img,
        torch.from_numpy(out_lab).to(labels.device),
        torch.from_numpy(all_cls[keep - 1]).to(labels.device),
        meta,
    )


class PasteCells(v2.Transform):
    """Paste cells of a fitted compositor into a real training sample (see module docs).

    Args:
        compositor: a fitted :class:`~iaaa.synthesis.compositor.CellCompositor` (placement,
            MCO share, grouping, object policy and scale all come from it and its
            :class:`~iaaa.synthesis.config.CompositorConfig`).
        p: probability that a call pastes anything.
        n: objects per paste: an int, an inclusive ``(lo, hi)`` range or ``"data"`` (the
            compositor's count rule for the sample's area); ``None`` (default): the compositor
            config's ``paste_count`` (:class:`PasteConfig`, which also says whether pasted cells
            may cover the sample's own).

    Call it as ``paste(sample, generator=None) -> AnnotatedImage``, or as a v2 transform on
    ``(tv_tensors.Image, tv_tensors.Mask)`` (an ``(H, W)`` label map) or on ``(image, target)``
    with the target dict of :func:`iaaa.data.dataset.make_target` (``boxes``, ``labels``, ``masks``,
    optional ``label_map``; other keys are passed through). Returns the same kind of input.
    Without a ``generator`` it draws from its own, seeded by the compositor's seed and reseeded
    in each DataLoader worker from the worker's seed (:class:`~iaaa.sampler.OwnGenerator`), so
    workers and epochs do not replay one stream of pastes.
    """

    def __init__(self, compositor: Any, p: float = 0.5, n: int | tuple[int, int] | Literal["data"] | None = None) -> None:
        super().__init__()
        _pools(compositor)
        self.compositor = compositor
        self.p = _check_p(p)
        self.n = None if n is None else _check_count(n)
        # Without a generator per call: the compositor's seed, reseeded in each DataLoader
        # worker (OwnGenerator), so workers and epochs do not replay one stream of pastes.
        self._own = OwnGenerator(int(compositor.seed))

    def _g(self, generator: torch.Generator | None) -> torch.Generator:
        if generator is None:
            return self._own.get()
        if not isinstance(generator, torch.Generator):
            raise IaaaError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
        return generator

    def forward(self, *inputs: Any, generator: torch.Generator | None = None) -> Any:
        g = self._g(generator)
        if len(inputs) == 1 and isinstance(inputs[0], tuple):
            inputs = inputs[0]
        if len(inputs) == 1 and isinstance(inputs[0], AnnotatedImage):
            return self.apply(inputs[0], g)
        if len(inputs) == 2 and isinstance(inputs[0], torch.Tensor) and isinstance(inputs[1], dict):
            return self._target(inputs[0], inputs[1], g)
        if len(inputs) == 2 and isinstance(inputs[0], torch.Tensor) and isinstance(inputs[1], torch.Tensor):
            image, mask = inputs
            if mask.ndim != 2:
                raise IaaaError(f"mask: expected an (H, W) label map, got shape {tuple(mask.shape)}; pass stacked masks in a target dict")
            r = paste_cells(self.compositor, image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor), p=self.p, n=self.n, generator=g)
            return _wrap_like(image, r.image), _wrap_like(mask, r.labels)
        kinds = ", ".join(type(x).__name__ for x in inputs)
        raise IaaaError(f"PasteCells: expected an AnnotatedImage, (Image, Mask) or (image, target dict), got ({kinds})")

    def apply(self, sample: AnnotatedImage, generator: torch.Generator | None = None) -> AnnotatedImage:
        """``sample`` with cells pasted (a new AnnotatedImage; ``meta["paste"]`` records what)."""
        g = self._g(generator)
        r = paste_cells(self.compositor, sample.image, sample.labels, sample.class_ids, p=self.p, n=self.n, generator=g, sample=sample)
        return AnnotatedImage.trusted(
            image=r.image, labels=r.labels, class_ids=r.class_ids, name=sample.name, categories=dict(sample.categories),
            meta={**sample.meta, "paste": r.meta},
        )

    def _target(self, image: torch.Tensor, target: dict[str, Any], g: torch.Generator) -> tuple[Any, dict[str, Any]]:
        from torchvision import tv_tensors

        s = from_tv_tensors(image, target, "target")
        r = paste_cells(self.compositor, s.image, s.labels, s.class_ids, p=self.p, n=self.n, generator=g, sample=s)
        if not r.meta["pasted"]:
            return image, target
        h, w = r.labels.shape
        mdtype = target["masks"].dtype if "masks" in target else torch.uint8
        masks, _, boxes = labels_to_masks_and_boxes(r.labels, dtype=mdtype)
        out = dict(target)
        out["masks"] = tv_tensors.Mask(masks)
        out["boxes"] = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w))
        out["labels"] = r.class_ids.to(torch.int64)
        if "label_map" in target:
            out["label_map"] = _wrap_like(target["label_map"], r.labels)
        return _wrap_like(image, r.image), out

    def extra_repr(self) -> str:
        n = self.compositor.config.paste.paste_count if self.n is None else self.n
        return f"p={self.p}, n={n!r}, over_cells={self.compositor.config.paste.over_cells}"


def _wrap_like(like: Any, x: torch.Tensor) -> torch.Tensor:
    """``x`` as the tv_tensor type of ``like`` (a plain tensor stays plain)."""
    from torchvision import tv_tensors

    if isinstance(like, tv_tensors.TVTensor):
        return tv_tensors.wrap(x, like=like)
    return x
