"""CellCompositor: new annotated images from the cells and backgrounds of real ones (IAAA, paper
sections 2.2-2.4), composed from the public stages of :mod:`iaaa.synthesis`.

``fit`` cuts single- and multi-cell objects (SCOs / MCOs) out of the data
(:mod:`~iaaa.synthesis.objects`), removes the cells of every image to build a pool of backgrounds
(:mod:`~iaaa.synthesis.background`), and records how many cells an image holds and how often an
object is an MCO (:mod:`~iaaa.synthesis.pools`). ``sample`` draws a background, a cell count from
the recorded distribution (or its mode, as the paper does), SCOs from the SCO pool and MCOs from
the MCO pool in the recorded ratio, applies a per-object policy to each
(:mod:`~iaaa.synthesis.object_policy`), and places them with corner-matched location search and
Gaussian-feathered blending (:mod:`~iaaa.synthesis.placement`, candidates from
:mod:`~iaaa.synthesis.layout`), writing the unfeathered masks with fresh ids.

``sample(generator)`` reads nothing but the generator (and the fitted state, which it never
changes), so ``sample(torch.Generator().manual_seed(s))`` is a pure function of ``s``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Iterable

import numpy as np
import torch

from iaaa.errors import IaaaError
from iaaa.synthesis.checks import check, one_of
from iaaa.synthesis.image_groups import survey
from iaaa.structures import AnnotatedImage, as_annotated, from_float, to_float
from iaaa.synthesis.background import BackgroundConfig, fill, tile
from iaaa.synthesis.layout import LayoutConfig, layout_density, layout_grid
from iaaa.synthesis.object_policy import ObjectAugment, RandomScale, as_object_policy
from iaaa.synthesis.objects import ObjectConfig, extract
from iaaa.synthesis.canvas import Canvas
from iaaa.synthesis.placement import PastedWindows, PlacementConfig, PlacementResult, level_map, place
from iaaa.synthesis.pools import (
    CompositorStats, CountConfig, PooledBackground, PooledObject, PoolBuilder, Pools, choose_objects, count_cap, crop_real_cells, draw_count, real_cells,
)

__all__ = ["CellCompositor", "CompositorStats", "PooledObject", "STAGES", "GROUP_BY", "ONTO"]

GROUP_BY = ("size", "auto")
ONTO = ("background", "image")

STAGES: dict[type, tuple[str, dict[str, str | None]]] = {
    ObjectConfig: ("", {"context": None, "halo": None}),
    BackgroundConfig: ("background_", {"n_candidates": "background_candidates", "margin": None, "halo": None}),
    LayoutConfig: ("layout_", {"method": "layout"}),
    PlacementConfig: ("", {"rim": None}),
    CountConfig: ("", {}),
}
"""Each stage config and how its fields are spelled as ``CellCompositor`` keywords: the prefix,
and the exceptions (``None``: not a keyword; ``context`` follows the policy, the feather and the
rim, the background's ``margin`` is the objects' one, ``halo`` and ``rim`` come from the
compositor's ``halo`` and ``rim``)."""


def _keyword_table() -> dict[str, tuple[type, str]]:
    table = {}
    for cls, (prefix, aliases) in STAGES.items():
        for f in dataclasses.fields(cls):
            name = aliases.get(f.name, prefix + f.name)
            if name is not None:
                table[name] = (cls, f.name)
    return table


_KEYWORDS = _keyword_table()
_FIELD_KEYWORD = {v: k for k, v in _KEYWORDS.items()}


def _build(cls: type, base: Any, fields: dict[str, Any]) -> Any:
    """``cls(**fields)`` (or ``base`` with ``fields`` replaced); an error names the compositor
    keyword of the field at fault (``background_patch``, not ``patch``)."""
    try:
        return dataclasses.replace(base, **fields) if base is not None else cls(**fields)
    except IaaaError as e:
        field, _, rest = str(e).partition(":")
        keyword = _FIELD_KEYWORD.get((cls, field)) if field in fields else None
        if keyword is None or keyword == field:
            raise
        raise IaaaError(f"{keyword}:{rest}") from None


def _pair(v: Any, what: str) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, int):
        v = (v, v)
    if len(v) != 2 or min(int(x) for x in v) < 1:
        raise IaaaError(f"{what}: expected (H, W) of positive ints, got {v!r}")
    return int(v[0]), int(v[1])


class CellCompositor:
    """Synthesise annotated cell images (see module docs). Every knob is a keyword argument;
    stage configs (:class:`~iaaa.synthesis.objects.ObjectConfig`,
    :class:`~iaaa.synthesis.background.BackgroundConfig`,
    :class:`~iaaa.synthesis.layout.LayoutConfig`,
    :class:`~iaaa.synthesis.placement.PlacementConfig`,
    :class:`~iaaa.synthesis.pools.CountConfig`) may be passed positionally instead, and keywords
    then override their fields.

    Args:
        policy: per-object policy: ``None`` (default: :class:`~iaaa.synthesis.object_policy.ObjectAugment`,
            random flips, any rotation, mild brightness/contrast), ``"identity"``, a list of
            ``(op, probability, magnitude)`` triples, any callable
            ``(image, labels, generator) -> (image, labels)`` such as a searched
            :class:`iaaa.policy.PolicySet`, or a ``kornia.augmentation.AugmentationSequential``.
            See :func:`~iaaa.synthesis.object_policy.as_object_policy`.
        size: output ``(H, W)``; ``None`` uses the drawn background's own size. Larger
            backgrounds are cropped at a random offset, smaller ones mirror-tiled.
        count: cells per image: ``"sample"`` (default: the count of a random image of the
            group, scaled by output area / source area), ``"background"`` (as many as the drawn
            background's own image held, scaled the same way, so dense and sparse images keep
            their own backgrounds), ``"mode"`` (the paper: the mode of the counts), an int, an
            inclusive ``(lo, hi)`` range, or a callable ``generator -> int``.
        layout: where candidate positions are drawn: ``"uniform"`` (default, the paper:
            anywhere in the frame) or ``"source"`` (preferring where the background's own image
            had cells: its cell mask blurred by ``layout_sigma`` pixels, mixed with
            ``layout_mix`` of uniform; see :mod:`iaaa.synthesis.layout`). With ``group_by="size"``,
            ``layout="source", count="background", collision="mask"`` brought pooled multi-lab
            data closer to real at the MCO and tile levels; with one pool it did not
            (benchmarks/fidelity.md), hence opt-in.
        layout_sigma, layout_mix: see ``layout``.
        collision: ``"box"`` (default: grown boxes may not overlap) or ``"mask"`` (grown masks
            may not touch, so round cells pack as densely as real ones; see :mod:`iaaa.synthesis.placement`).
        mco_fraction: share of MCOs among the objects drawn: ``"data"`` (default) or a float.
        object_scale: ``None``, a factor, or ``(lo, hi)`` (drawn log-uniformly): objects are
            resized before their policy (:class:`~iaaa.synthesis.object_policy.RandomScale`).
        n_candidates: random positions scored per object (and per round).
        rounds: fresh rounds of candidates tried when all of a round collide (1: the paper).
        gap: minimum free pixels between an object's box and placed cells (default: the feather
            radius, so feathers never touch another cell).
        border: minimum distance between an object's box and the frame.
        sigma, truncate: Gaussian feather of pasted objects (``sigma=0``: hard paste).
        feather: ``"mask"`` (paper) or ``"outside"`` (see :mod:`iaaa.synthesis.placement`).
        match_sigma: smoothing of the background for corner scores (0: raw pixels, the paper).
        margin, min_area, keep_border: object extraction (see :mod:`iaaa.synthesis.objects`);
            ``margin`` also merges boxes for cell removal.
        background_method, background_candidates, background_sigma, background_patch,
            background_truncate, background_level_sigma: cell removal (see
            :mod:`iaaa.synthesis.background`): ``"mask"`` (default: each cell and its halo
            removed, every other pixel kept, holes inpainted), ``"bilinear"`` (the previous
            default) or ``"paper"`` (both fill merged boxes); ``background_patch`` is the block
            side of the copied texture.
        group_by: ``None`` (one pool), ``"size"`` (group images by their size), ``"auto"`` (by
            size and median cell diameter, see :mod:`iaaa.synthesis.image_groups`) or a callable
            ``sample -> key``. With groups, a synthetic image takes its cell count, MCO share,
            objects and halo from the group of its background, so data pooled from several
            instruments or magnifications does not paste one experiment's cells onto another's
            background.
        grouping, touch: which cells form one object: ``"mask"`` (default: masks grown by
            ``touch`` pixels meet) or ``"box"`` (the paper: merged boxes); see
            :mod:`iaaa.synthesis.objects`.

    The defaults (mask grouping, mask background, ``rim=True``, ``onto="image"``,
    ``group_by="auto"``, ``count_cap=True``) are what the downstream judge measured best among the
    IAAA options (docs/synthesis.md, section 5); the paper's generator is
    ``CellCompositor(grouping="box", background_method="paper", rim=False, onto="background",
    group_by=None, count_cap=False)``.
        halo: pixels around every mask that belong to the cell in the image (phase-contrast halo,
            blurred rim): ``"auto"`` measures it per group (:func:`iaaa.synthesis.halo.measure_halo`),
            or an int. Used by ``grouping="mask"`` (what a crop keeps), ``background_method="mask"``
            (what is removed) and ``rim``.
        rim: objects carry their halo: the paste's alpha covers the mask grown by ``halo``,
            feathered at its outer edge; labels get the exact mask (see :mod:`iaaa.synthesis.placement`).
        onto: ``"background"`` (the paper: cells pasted on cleaned backgrounds) or ``"image"``
            (pasted into the free space of the real image itself, its cells and labels kept,
            as InstaBoost / Simple Copy-Paste do; an image smaller than ``size`` gives its cleaned
            background instead, since a real image cannot be mirror-tiled). With ``"image"`` the
            drawn count is *added* to the real cells, and ``count_cap`` bounds the total.
        dtype: output dtype; ``None`` keeps the data's (an error if the data mixes dtypes).
        seed: seeds ``fit`` (background fills) and ``sample`` calls without a generator.
        device: where pixels live and blends run (``"cpu"``, ``"cuda"``); see :meth:`to`.

    Attributes (after :meth:`fit`):
        pools: :class:`~iaaa.synthesis.pools.Pools`, everything ``fit`` recorded.
        stats: :class:`~iaaa.synthesis.pools.CompositorStats` of the data.
        objects: the object pool, a list of :class:`PooledObject` (``meta["objects"][i]["object"]``
            and ``meta["instance_object"]`` index it).
        sco_index, mco_index: pool indices of the SCOs and of the MCOs.
        backgrounds: the background images (source dtype, mirror-tiled up to ``size``);
            ``meta["background"]`` indexes them and ``meta["offset"]`` is the crop's corner.
        radius: the placement feather radius (pixels farther than this from every pasted cell
            are the background's).
    """

    def __init__(
        self,
        *configs: Any,
        policy: Any = None,
        size: tuple[int, int] | int | None = None,
        object_scale: float | tuple[float, float] | None = None,
        group_by: str | Callable[[AnnotatedImage], Any] | None = "auto",
        halo: int | str = "auto",
        rim: bool = True,
        onto: str = "image",
        dtype: torch.dtype | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        **options: Any,
    ) -> None:
        given = {}
        for c in configs:
            if type(c) not in STAGES:
                raise TypeError(f"CellCompositor: positional arguments are stage configs ({', '.join(k.__name__ for k in STAGES)}), got {type(c).__name__}")
            if type(c) in given:
                raise TypeError(f"CellCompositor: two {type(c).__name__}s given")
            given[type(c)] = c
        fields: dict[type, dict[str, Any]] = {cls: {} for cls in STAGES}
        for name, value in options.items():
            if name not in _KEYWORDS:
                raise TypeError(f"CellCompositor: unexpected keyword argument {name!r}")
            cls, field = _KEYWORDS[name]
            fields[cls][field] = value
        if "margin" in fields[ObjectConfig]:
            fields[BackgroundConfig]["margin"] = fields[ObjectConfig]["margin"]
        built = {cls: _build(cls, given.get(cls), fields[cls]) for cls in STAGES}
        self.placement_config: PlacementConfig = built[PlacementConfig]
        self.background_config: BackgroundConfig = built[BackgroundConfig]
        self.layout_config: LayoutConfig = built[LayoutConfig]
        self.count_config: CountConfig = built[CountConfig]
        self.policy = as_object_policy(policy)
        self.size = _pair(size, "size")
        self.object_scale = None if object_scale is None else RandomScale(object_scale)
        if not (group_by is None or group_by in GROUP_BY or callable(group_by)):
            raise IaaaError(f"group_by: expected None, 'size', 'auto' or a callable sample -> key, got {group_by!r}")
        self.group_by = group_by
        check(halo == "auto" or (isinstance(halo, int) and not isinstance(halo, bool) and halo >= 0), "halo", "expected 'auto' or an integer >= 0", halo)
        check(isinstance(rim, bool), "rim", "expected True or False", rim)
        one_of(onto, "onto", ONTO)
        self.halo, self.rim, self.onto = halo, rim, onto
        self.dtype = dtype
        self.seed = int(seed)
        self.device = torch.device(device)
        self.object_config: ObjectConfig = dataclasses.replace(built[ObjectConfig], context=self.context)
        self._own_generator = torch.Generator().manual_seed(self.seed)
        self.pools: Pools | None = None

    @property
    def radius(self) -> int:
        """How far a paste reaches beyond a cell's mask: the feather radius, plus (with ``rim``)
        the largest group halo once fitted. Pixels farther than this from every pasted cell are
        the background's."""
        rim = max((p.rim for p in self.pools.groups.values()), default=0) if self.pools is not None else 0
        return self.placement_config.radius + rim

    @property
    def context(self) -> int:
        """Pixels of surroundings kept around every object: enough for the feather ring to stay
        inside real image after any rotation (x sqrt 2) and the largest shrink."""
        return self._context(0)

    def _context(self, rim: int) -> int:
        shrink = 1.0
        if self.object_scale is not None:
            shrink = min(shrink, self.object_scale.lo)
        if isinstance(self.policy, ObjectAugment):
            shrink *= self.policy.max_shrink
        return int(math.ceil((1.5 * (self.placement_config.radius + rim) + 2) / shrink))

    # ------------------------------------------------------------------ fit

    def fit(self, samples: Iterable[Any]) -> "CellCompositor":
        """Extract the object pools, build the background pool and record the statistics from
        ``samples`` (any iterable of annotated images, read once). Returns ``self``."""
        t0 = time.perf_counter()
        builder = PoolBuilder(self.device)
        source_layout = self.layout_config.method == "source"
        samples = [as_annotated(raw, name=f"sample{i}") for i, raw in enumerate(samples)]
        samples = [s if s.name else AnnotatedImage(s.image, s.labels, s.class_ids, f"sample{i}", s.categories, s.meta) for i, s in enumerate(samples)]
        pending = []
        need_halo = self.object_config.grouping == "mask" or self.background_config.method == "mask" or self.rim
        keys, halos = survey(samples, self.group_by, self.halo if need_halo else 0, self.object_config.min_area)
        for i, s in enumerate(samples):
            builder.check(s)
            key, halo = keys[i], halos[keys[i]]
            rim = halo if self.rim else 0
            objects = dataclasses.replace(self.object_config, halo=halo, context=self._context(rim))
            background = dataclasses.replace(self.background_config, halo=halo)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            try:
                bg = fill(s.image, s.labels, background, g).image
            except IaaaError:  # no background pixel at all: the image still gives objects
                bg = None
            objs, groups = extract(s, objects, bg if bg is not None else s.image)
            pending.append((s, key, objects, bg if bg is not None else s.image))
            cells = int(groups.ids.numel())
            border = 0 if objects.keep_border else int(groups.border.sum())
            builder.add(s, key, objs, cells, border, int(groups.fragments.numel()), halo=halo, rim=rim)
            pooled = None
            if bg is not None:
                real = None
                if self.onto == "image" and (self.size is None or (self.size[0] <= s.size[0] and self.size[1] <= s.size[1])):
                    # A real image cannot be mirror-tiled (its cells would repeat): one smaller
                    # than the output keeps its cleaned background instead.
                    bg, real = s.image, real_cells(s, self.size)
                bg = tile(bg, self.size)
                # Corner scores read a smoothed background; float16 halves the pool's memory and
                # is ample to rank candidates.
                level = level_map(bg, self.placement_config.match_sigma).astype(np.float16)
                grid = layout_grid(tile((s.labels > 0).to(torch.float32)[None], self.size)[0], self.layout_config.sigma) if source_layout else None
                pooled = PooledBackground(bg, level, s.name, key, cells, float(s.size[0] * s.size[1]), grid, real)
            builder.add_background(pooled, s.name)
        if not builder.objects and not self.object_config.keep_border:
            # Small images whose every object touches the frame: pool the border objects rather
            # than fail (the summary says so).
            for s, key, objects, bg in pending:
                builder.add_objects(key, extract(s, dataclasses.replace(objects, keep_border=True), bg)[0])
            builder.stats.border_fallback = bool(builder.objects)
        self.pools = builder.finish(self.dtype)
        self.pools.stats.fit_seconds = time.perf_counter() - t0
        return self

    def _fitted(self) -> Pools:
        if self.pools is None:
            raise RuntimeError("CellCompositor: call fit(samples) before sampling")
        return self.pools

    @property
    def stats(self) -> CompositorStats:
        return self._fitted().stats

    @property
    def objects(self) -> list[PooledObject]:
        return self._fitted().objects

    @property
    def sco_index(self) -> np.ndarray:
        return self._fitted().sco_index

    @property
    def mco_index(self) -> np.ndarray:
        return self._fitted().mco_index

    @property
    def object_cells(self) -> np.ndarray:
        return self._fitted().object_cells

    @property
    def backgrounds(self) -> list[torch.Tensor]:
        return [b.image for b in self._fitted().backgrounds]

    @property
    def background_names(self) -> list[str]:
        return [b.name for b in self._fitted().backgrounds]

    def to(self, device: str | torch.device) -> "CellCompositor":
        """Move the pools to ``device``; blurs, warps and blends then run there. Returns ``self``."""
        self.device = torch.device(device)
        if self.pools is not None:
            self.pools.to(self.device)
        return self

    # ------------------------------------------------------------------ sampling

    def _sample_into(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        pools = self._fitted()
        bi = min(int(torch.rand((), generator=g, device=g.device, dtype=torch.float64) * len(pools.backgrounds)), len(pools.backgrounds) - 1)
        background = pools.backgrounds[bi]
        bg, level = background.image, background.level
        h, w = bg.shape[-2:]
        oy = ox = 0
        H, W = (h, w) if self.size is None else self.size
        uo = torch.rand(2, generator=g, device=g.device, dtype=torch.float64).tolist()
        if (H, W) != (h, w):
            oy, ox = min(int(uo[0] * (h - H + 1)), h - H), min(int(uo[1] * (w - W + 1)), w - W)
            bg = bg[:, oy : oy + H, ox : ox + W]
            level = level[:, oy : oy + H, ox : ox + W]
        pool = pools.groups[background.group]
        n_cells = draw_count(pool, self.count_config, g, float(H * W), background)
        lab0, cls0, table, boxes0 = crop_real_cells(background.real, (oy, ox), (H, W)) if background.real is not None else (None, None, None, None)
        cap = count_cap(pool, float(H * W)) if self.count_config.count_cap else None
        if cap is not None and cls0 is not None:
            # onto="image": the drawn count is added to the real cells, up to the group's maximum.
            cap = max(0, cap - len(cls0))
        chosen = choose_objects(pool, self.count_config, pools.object_cells, n_cells, g, cap)
        imgs, labs, clss = [], [], []
        for j in chosen:
            img, lab, cls = pools.objects[j][:3]  # image, labels, class_ids
            if self.object_scale is not None:
                img, lab = self.object_scale(img, lab, g)
            img, lab = self.policy(img, lab, g)
            imgs.append(img if img.dtype == torch.float32 else to_float(img))
            labs.append(lab if lab.dtype == torch.int64 else lab.to(torch.int64))
            clss.append(cls)
        out = to_float(bg)
        out = out.clone() if out.data_ptr() == bg.data_ptr() else out
        next_id = None if cls0 is None else len(cls0) + 1
        canvas = Canvas(out, level, lab0, self.placement_config.min_gap, self.placement_config.border, table, next_id)
        density = layout_density(background.layout, (oy, ox), (H, W), self.layout_config.mix) if background.layout is not None else None
        config = self.placement_config if pool.rim == self.placement_config.rim else dataclasses.replace(self.placement_config, rim=pool.rim)
        result = place(canvas, imgs, labs, clss, config, g, density)
        meta = self._meta(result, chosen, bi, (oy, ox), n_cells)
        class_ids = result.class_ids
        if cls0 is not None:
            # onto="image": ids 1..M are the real image's own cells (kind "real", object -1),
            # the pasted ones follow.
            m = len(cls0)
            meta["real_cells"] = m
            meta["instance_kind"] = ["real"] * m + meta["instance_kind"]
            meta["instance_object"] = torch.cat([torch.full((m,), -1, dtype=torch.int64), meta["instance_object"]])
            win = meta["windows"]
            meta["windows"] = PastedWindows(torch.cat([torch.arange(1, m + 1), win.ids]), torch.cat([torch.from_numpy(boxes0), win.boxes]))
            class_ids = torch.cat([torch.from_numpy(cls0), class_ids])
        return result.image, result.labels, {"meta": meta, "class_ids": class_ids}

    def _meta(self, result: PlacementResult, chosen: list[int], background: int, offset: tuple[int, int], n_cells: int) -> dict[str, Any]:
        """What ``sample`` records: plain JSON-ready values (what an export writes), plus the
        instance tensors and the typed :class:`~iaaa.synthesis.placement.PastedWindows`."""
        objects = self._fitted().objects
        placed = result.placed.tolist()
        where = result.instance_object.numpy()
        inst_obj = where.tolist()
        ids = result.new_ids.numpy()
        return {
            "background": background,
            "background_source": self._fitted().backgrounds[background].name,
            "offset": offset,
            "requested_cells": n_cells,
            "objects": [
                {"object": chosen[j], "kind": objects[chosen[j]].kind, "source": objects[chosen[j]].source, "box": tuple(box), "score": sc, "ids": ids[where == j].tolist()}
                for j, box, sc in zip(placed, result.boxes.tolist(), result.scores.tolist())
            ],
            "skipped": [chosen[j] for j in result.skipped.tolist()],
            "instance_kind": [objects[chosen[j]].kind for j in inst_obj],
            "instance_object": torch.tensor([chosen[j] for j in inst_obj], dtype=torch.int64),
            "windows": result.windows(),
        }

    def _generator(self, generator: torch.Generator | None) -> torch.Generator:
        if generator is None:
            return self._own_generator
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
        return generator

    def sample(self, generator: torch.Generator | None = None) -> AnnotatedImage:
        """One synthetic :class:`~iaaa.structures.AnnotatedImage` (image in the data's dtype and
        channels on the compositor's device, int64 labels ``1..N``, class ids carried from the
        source cells, ``meta`` recording the background, every placed object's pool index,
        kind, source image and box, and the kind and source object of each instance).

        With a ``generator`` the result depends on nothing else; without one the compositor's
        own generator (seeded by ``seed``) is used and advanced."""
        pools = self._fitted()
        g = self._generator(generator)
        out, labels, extra = self._sample_into(g)
        return AnnotatedImage.trusted(
            image=from_float(out, pools.dtype), labels=labels.to(self.device), class_ids=extra["class_ids"].to(self.device),
            name="synthetic", categories=dict(pools.categories), meta=extra["meta"],
        )

    def sample_batch(self, n: int, generator: torch.Generator | None = None, stack: bool = False) -> list[AnnotatedImage] | tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
        """``n`` synthetic images, identical to ``n`` successive :meth:`sample` calls with the
        same generator. With ``stack=True`` returns ``(images (n, C, H, W), labels (n, H, W),
        metas)`` written straight into preallocated batch tensors (needs ``size`` or equal-sized
        backgrounds); each meta also holds its ``class_ids``."""
        pools = self._fitted()
        g = self._generator(generator)
        if not stack:
            return [self.sample(g) for _ in range(n)]
        images = labels = None
        metas = []
        for i in range(n):
            out, lab, extra = self._sample_into(g)
            if images is None:
                images = torch.empty((n, *out.shape), dtype=pools.dtype, device=self.device)
                labels = torch.empty((n, *lab.shape), dtype=torch.int64, device=self.device)
            if tuple(out.shape) != tuple(images.shape[1:]):
                raise IaaaError(f"sample_batch(stack=True): image {i} is {tuple(out.shape[-2:])}, image 0 {tuple(images.shape[-2:])}; pass CellCompositor(size=...) to stack")
            images[i] = from_float(out, pools.dtype)
            labels[i] = lab
            extra["meta"]["class_ids"] = extra["class_ids"]
            metas.append(extra["meta"])
        if images is None:
            return torch.empty(0), torch.empty(0, dtype=torch.int64), []
        return images, labels, metas

    def __repr__(self) -> str:
        fitted = self.pools.stats.summary() if self.pools is not None else "not fitted"
        return f"CellCompositor(policy={self.policy!r}, size={self.size}, count={self.count_config.count!r}, device={self.device}; {fitted})"
