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

Every choice is one :class:`~iaaa.synthesis.config.CompositorConfig`; what ``fit`` measures (each
group's halo, rim and context) goes to the pools, never into the config.

``sample(generator)`` reads nothing but the generator (and the fitted state, which it never
changes), so ``sample(torch.Generator().manual_seed(s))`` is a pure function of ``s``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Iterable

import numpy as np
import torch

from iaaa.device import resolve_device
from iaaa.errors import IaaaError
from iaaa.label_maps import check_instance_maps
from iaaa.sampler import OwnGenerator
from iaaa.structures import AnnotatedImage, as_annotated, from_float, to_float
from iaaa.synthesis.canvas import Canvas, surviving_ids
from iaaa.synthesis.config import CompositorConfig
from iaaa.synthesis.fitting import fit_image, map_images
from iaaa.synthesis.image_groups import diameter_spread, halo_width, image_diameters, nearest_plan, varied_cell_sizes, survey
from iaaa.synthesis.layout import layout_density
from iaaa.synthesis.object_policy import AUTO_OBJECT_SCALE, ObjectAugment, RandomScale, as_object_policy
from iaaa.synthesis.object_warp import separate_within_reach, warp_within_reach
from iaaa.synthesis.objects import extract
from iaaa.synthesis.levels import match_intensity
from iaaa.synthesis.into_image import place_into_image
from iaaa.synthesis.placement import PastedWindows, PlacementResult, place
from iaaa.synthesis.draws import draw_objects
from iaaa.synthesis.pools import CompositorStats, PooledObject, PoolBuilder, Pools, crop_real_cells
from iaaa.threads import torch_threads

__all__ = ["CellCompositor", "CompositorConfig", "CompositorStats", "PooledObject"]


class CellCompositor:
    """Synthesise annotated cell images (see module docs).

    Every choice lives in one :class:`~iaaa.synthesis.config.CompositorConfig` (its stage
    configs and the choices that span stages, each documented there); the keywords here are the
    things a config does not hold: the policy (any callable), the seed, the device and the output
    dtype. ``CellCompositor()`` is the library default, ``CellCompositor(CompositorConfig.paper())``
    the paper's generator, and ``CompositorConfig().replace(grouping="box", sigma=2.0)`` changes a
    few options by their flat names.

    Args:
        config: a :class:`~iaaa.synthesis.config.CompositorConfig` (``None``: the default).
        policy: per-object policy: ``None`` (default: :class:`~iaaa.synthesis.object_policy.ObjectAugment`,
            random flips, any rotation, mild brightness/contrast), ``"identity"``, a list of
            ``(op, probability, magnitude)`` triples, any callable
            ``(image, labels, generator) -> (image, labels)`` such as a searched
            :class:`iaaa.policy.PolicySet`, or a ``kornia.augmentation.AugmentationSequential``.
            See :func:`~iaaa.synthesis.object_policy.as_object_policy`.
        seed: seeds ``fit`` (background fills) and ``sample`` calls without a generator.
        device: where pixels live and blends run (``"cpu"``, ``"cuda"``); see :meth:`to`.
        dtype: output dtype; ``None`` keeps the data's (an error if the data mixes dtypes).

    Attributes (after :meth:`fit`):
        pools: :class:`~iaaa.synthesis.pools.Pools`, everything ``fit`` recorded, including the
            measured values of each group (:class:`~iaaa.synthesis.pools.GroupPool` ``halo``,
            ``rim``, ``context``); :attr:`config` stays what was given.
        stats: :class:`~iaaa.synthesis.pools.CompositorStats` of the data.
        objects: the object pool, a list of :class:`PooledObject` (``meta["objects"][i]["object"]``
            and ``meta["instance_object"]`` index it).
        sco_index, mco_index: pool indices of the SCOs and of the MCOs.
        backgrounds: the background images (source dtype, mirror-tiled up to ``size``);
            ``meta["background"]`` indexes them, ``meta["background_source"]`` names the real
            image it came from and ``meta["offset"]`` is the crop's corner.
        radius: the placement feather radius (pixels farther than this from every pasted cell
            are the background's).
    """

    def __init__(
        self,
        config: CompositorConfig | None = None,
        *,
        policy: Any = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:
        if config is None:
            config = CompositorConfig()
        if not isinstance(config, CompositorConfig):
            raise IaaaError(
                f"config: expected a CompositorConfig, got {type(config).__name__} "
                "(CompositorConfig().replace(key=value) sets options by name, CompositorConfig.from_dict reads a dict)"
            )
        check_seed = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 1 << 63
        if not check_seed:
            raise IaaaError(f"seed: expected an integer in [0, 2**63), got {seed!r}")
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise IaaaError(f"dtype: expected a torch.dtype or None, got {dtype!r}")
        self.config = config
        if config.object_stretch is not None and policy is not None:
            raise IaaaError("object_stretch: stretches the default per-object policy's objects, but policy=... was given (add the stretch to that policy instead)")
        self.policy = ObjectAugment(stretch=config.object_stretch) if policy is None else as_object_policy(policy)
        # "auto" is resolved by fit, on the fitted images' cell sizes.
        self.object_scale = None if config.object_scale in (None, "auto") else RandomScale(config.object_scale)
        self.dtype = dtype
        self.seed = int(seed)
        self.device = resolve_device(device)
        self._own_generator = OwnGenerator(self.seed)
        self.pools: Pools | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        """The output ``(H, W)`` (``config.size``)."""
        return self.config.size

    @property
    def radius(self) -> int:
        """How far a paste reaches beyond a cell's mask: the feather radius, plus (with ``rim``)
        the largest group halo once fitted. Pixels farther than this from every pasted cell are
        the background's."""
        rim = max((p.rim for p in self.pools.groups.values()), default=0) if self.pools is not None else 0
        return self.config.placement.radius + rim

    @property
    def context(self) -> int:
        """Pixels of surroundings kept around every object without a rim: enough for the feather
        ring to stay inside real image after any rotation (x sqrt 2) and the largest shrink (a
        group with a rim gets more; its value is in the group pool)."""
        return self._context(0)

    def _context(self, rim: int) -> int:
        shrink = 1.0
        if self.object_scale is not None:
            shrink = min(shrink, self.object_scale.lo)
        if isinstance(self.policy, ObjectAugment):
            shrink *= self.policy.max_shrink
        return int(math.ceil((1.5 * (self.config.placement.radius + rim) + 2) / shrink))

    # ------------------------------------------------------------------ fit

    def fit(self, samples: Iterable[Any], progress: bool = True, workers: int = 0) -> "CellCompositor":
        """Extract the object pools, build the background pool and record the statistics from
        ``samples`` (any iterable of annotated images, read once). ``progress``: a per-image tqdm
        bar on stderr (``False``: silent). ``workers``: processes that fit images in parallel
        (DataLoader workers, :func:`~iaaa.synthesis.fitting.map_images`; ``0``: this process),
        with the same pools as a serial fit. Images are uint8, uint16 or float intensities in
        ``[0, 1]`` (a float image in raw units is refused: :func:`~iaaa.dtypes.check_unit_range`).
        Returns ``self``; :attr:`config` is left as given, the measured halo, rim and context of
        each group go to the pools."""
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise IaaaError(f"workers: expected an integer >= 0, got {workers!r}")
        cfg = self.config
        builder = PoolBuilder(self.device)
        samples = [as_annotated(raw, name=f"sample{i}") for i, raw in enumerate(samples)]
        samples = [s if s.name else AnnotatedImage(s.image, s.labels, s.class_ids, f"sample{i}", s.categories, s.meta) for i, s in enumerate(samples)]
        for s in samples:
            builder.check(s)
        check_instance_maps([(str(s.meta.get("mask_path", s.name)), s.labels) for s in samples])
        if workers and any(s.image.device.type != "cpu" for s in samples):
            raise IaaaError("fit: workers > 0 needs the samples on the CPU (the pools may still go to another device)")
        pending: list[tuple[AnnotatedImage, Any, int, int, torch.Tensor, np.ndarray | None]] = []
        need_halo = cfg.objects.grouping == "mask" or cfg.background.background_method == "mask" or cfg.rim
        halo_rule = cfg.halo if need_halo else 0
        # Fitting is a chain of memory-bound full-image passes (halo profiles, the membrane
        # relaxation and texture search of mask removal) and many small per-cell ops: a second
        # intra-op thread speeds none of them up much and, on a busy machine, makes every op wait
        # for a descheduled core (benchmarks/fit.md). So the whole fit runs under one thread;
        # more cores serve whole images (`workers`).
        with torch_threads(1):
            # The survey's distance transforms are kept only where fit grows the masks from them.
            grows = cfg.background.background_method == "mask" and cfg.objects.grouping == "mask"
            nearest: list = []
            diameters = image_diameters(samples, cfg.objects.min_area)
            measured = None
            if halo_rule == "auto":
                plan = nearest_plan(samples) if grows else [False] * len(samples)
                measured = map_images(halo_width, list(zip(samples, plan)), workers)
            keys, halos = survey(samples, cfg.group_by, halo_rule, cfg.objects.min_area,
                                 nearest=nearest if grows else None, diameters=diameters, measured=measured)
            # The scale is needed before cutting: the context kept around objects depends on it.
            self._resolve_object_scale(diameters, builder.stats)
            nearest = nearest or [None] * len(samples)
            tasks = []
            for i, s in enumerate(samples):
                halo = halos[keys[i]]
                rim = halo if cfg.rim else 0
                tasks.append((s, i, self.seed, cfg, keys[i], halo, rim, self._context(rim), nearest[i]))
            nearest = []  # each table goes with its task, released as the image is done
            bar = tqdm(total=len(samples), desc="fit", unit="image", disable=not progress, leave=False)
            try:
                fitted = map_images(fit_image, tasks, workers, progress=lambda _r: bar.update())
            finally:
                bar.close()
            for (s, _i, _seed, _cfg, key, halo, rim, context, _table), f in zip(tasks, fitted):
                builder.add(s, key, f.objects, f.cells, f.border, f.fragments, halo=halo, rim=rim, context=context, contacts=f.contacts, anchors=f.anchors)
                pending.append((s, key, halo, context, f.cleaned, f.anchors))
                if f.background is not None:
                    builder.add_level(key, f.level_summary)
                builder.add_background(f.background, s.name)
            if not builder.objects and not cfg.objects.keep_border:
                # Small images whose every object touches the frame: pool the border objects
                # rather than fail (the summary says so).
                border_rule = dataclasses.replace(cfg.objects, keep_border=True)
                for s, key, halo, context, bg, anchors in pending:
                    builder.add_objects(key, extract(s, border_rule, bg, halo=halo, context=context)[0], anchors)
                builder.stats.border_fallback = bool(builder.objects)
        self.pools = builder.finish(self.dtype, cfg.match_intensity)
        self.pools.stats.fit_seconds = time.perf_counter() - t0
        return self

    def _resolve_object_scale(self, diameters: list[float], stats: CompositorStats) -> None:
        """Record the fitted images' cell-size spread (``diameters``: their median cell
        diameters) and the object scale in force (``"auto"``:
        :data:`~iaaa.synthesis.object_policy.AUTO_OBJECT_SCALE` where cell sizes vary)."""
        stats.diameter_spread = diameter_spread(diameters)
        if self.config.object_scale == "auto":
            self.object_scale = RandomScale(AUTO_OBJECT_SCALE) if varied_cell_sizes(diameters) else None
        stats.object_scale = None if self.object_scale is None else (self.object_scale.lo, self.object_scale.hi)

    def _fitted(self) -> Pools:
        if self.pools is None:
            raise RuntimeError("CellCompositor: call fit(samples) before sampling")
        return self.pools

    @property
    def stats(self) -> CompositorStats:
        return self._fitted().stats

    @property
    def matches_intensity(self) -> bool:
        """Whether pasted objects are mapped to their destination's levels
        (``config.match_intensity``, ``"auto"`` resolved by :meth:`fit`)."""
        return self._fitted().stats.match_intensity

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
        self.device = resolve_device(device)
        if self.pools is not None:
            self.pools.to(self.device)
        return self

    # ------------------------------------------------------------------ sampling

    def augmented_objects(
        self, chosen: Iterable[int], generator: torch.Generator, device: torch.device | None = None, anchors: np.ndarray | None = None,
        reach: int | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[Any]]:
        """Pool objects ``chosen`` (indices), each moved to ``device`` (default: where it is),
        mapped to the destination's levels ``anchors`` (with ``match_intensity``; ``None``:
        unchanged), resized by ``object_scale`` and augmented by the per-object policy, drawing
        from ``generator`` in order: ``(float32 images, int64 label maps, class ids)``, what
        :func:`~iaaa.synthesis.placement.place` takes (the compositor's samples and
        :class:`~iaaa.synthesis.paste.PasteCells` both use it). ``reach``: how far placement
        reads beyond a mask (rim plus feather radius); with ``object_warp="fused"`` and the
        default policy only that window is computed."""
        pools = self._fitted()
        imgs, labs, clss = [], [], []
        match = pools.stats.match_intensity and anchors is not None
        default_policy = reach is not None and type(self.policy) is ObjectAugment and (self.object_scale is None or type(self.object_scale) is RandomScale)
        fused = default_policy and self.config.object_warp == "fused"
        for j in chosen:
            # The pool keeps source pixels and narrow labels (PooledObject): float32 and int64
            # from here on, the values fit stored before (to_float is the same map either way).
            img, lab, cls = pools.objects[j][:3]  # image, labels, class_ids
            if device is not None:
                img, lab = img.to(device), lab.to(device)
            source = pools.objects[j].anchors if match else None
            if fused:
                # Both maps are elementwise: the fused warp applies them only to the part of the
                # crop its window reads (the same values there; the crop carries the context of
                # any scale and rotation, several times the window).
                levels = functools.partial(_float_at_levels, source=source, destination=anchors)
                img, lab = warp_within_reach(img, lab, self.policy, self.object_scale, reach, generator, tuple(pools.mask_boxes[j].tolist()), levels)
            elif default_policy:
                # The same object as the two steps below, computed and cut to the reach (both
                # read the labels in any integer dtype).
                img = _float_at_levels(img, source, anchors)
                img, lab = separate_within_reach(img, lab, self.policy, self.object_scale, reach, generator, tuple(pools.mask_boxes[j].tolist()))
            else:
                img, lab = _float_at_levels(img, source, anchors), lab.to(torch.int64)
                if self.object_scale is not None:
                    img, lab = self.object_scale(img, lab, generator)
                img, lab = self.policy(img, lab, generator)
            imgs.append(img if img.dtype == torch.float32 else to_float(img))
            labs.append(lab if lab.dtype == torch.int64 else lab.to(torch.int64))
            clss.append(cls)
        return imgs, labs, clss

    def _sample_into(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        pools = self._fitted()
        bi = min(int(torch.rand((), generator=g, device=g.device, dtype=torch.float64) * len(pools.backgrounds)), len(pools.backgrounds) - 1)
        background = pools.backgrounds[bi]
        bg, level = background.image, background.level
        h, w = bg.shape[-2:]
        oy = ox = 0
        H, W = (h, w) if self.config.size is None else self.config.size
        uo = torch.rand(2, generator=g, device=g.device, dtype=torch.float64).tolist()
        if (H, W) != (h, w):
            oy, ox = min(int(uo[0] * (h - H + 1)), h - H), min(int(uo[1] * (w - W + 1)), w - W)
            bg = bg[:, oy : oy + H, ox : ox + W]
            level = level[:, oy : oy + H, ox : ox + W]
        pool = pools.groups[background.group]
        lab0, cls0, table, boxes0 = crop_real_cells(background.real, (oy, ox), (H, W)) if background.real is not None else (None, None, None, None)
        n_cells, chosen = draw_objects(pool, self.config.count, pools.object_cells, g, float(H * W), background, None if cls0 is None else len(cls0))
        imgs, labs, clss = self.augmented_objects(chosen, g, anchors=background.anchors, reach=self.config.placement.radius + pool.rim)
        out = to_float(bg)
        out = out.clone() if out.data_ptr() == bg.data_ptr() else out
        next_id = None if cls0 is None else len(cls0) + 1
        density = layout_density(background.layout, (oy, ox), (H, W), self.config.layout.layout_mix) if background.layout is not None else None
        touch = pool.contacts.touching_share if self.config.placement.contacts == "data" else None
        hidden = 0
        if cls0 is None:
            canvas = Canvas(out, level, lab0, self.config.placement.min_gap, self.config.placement.border, table, next_id)
            result = place(canvas, imgs, labs, clss, self.config.placement, g, density, rim=pool.rim, touch_share=touch, level_range=pool.level_range)
        else:
            # onto="image": into the free space, the feather off the real cells; a draw none of
            # whose objects finds room (a confluent field) goes on top of them, as PasteCells does.
            canvas, result, on_top = place_into_image(out, level, lab0, imgs, labs, clss, self.config.placement, g, density, table=table,
                                                      next_id=next_id, rim=pool.rim, touch_share=touch, level_range=pool.level_range)
            alive, lut = surviving_ids(canvas.labels, canvas.next_id) if on_top else (None, None)
            if lut is not None:
                real_kept = np.flatnonzero(alive[1:next_id])
                hidden = len(cls0) - len(real_kept)
                cls0, boxes0 = cls0[real_kept], boxes0[real_kept]
                result = dataclasses.replace(result, labels=torch.from_numpy(lut[canvas.labels]), new_ids=torch.from_numpy(lut[result.new_ids.numpy()]))
        meta = self._meta(result, chosen, bi, (oy, ox), n_cells)
        if cls0 is not None:
            meta["hidden_real_cells"] = hidden
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
            return self._own_generator.get()
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
        return generator

    def sample(self, generator: torch.Generator | None = None) -> AnnotatedImage:
        """One synthetic :class:`~iaaa.structures.AnnotatedImage` (image in the data's dtype and
        channels on the compositor's device, int64 labels ``1..N``, class ids carried from the
        source cells, ``meta`` recording the background, every placed object's pool index,
        kind, source image and box, and the kind and source object of each instance).

        With a ``generator`` the result depends on nothing else; without one the compositor's
        own generator (seeded by ``seed``) is used and advanced; in a DataLoader worker it is
        reseeded from the worker's seed, so workers and epochs draw fresh samples
        (:class:`~iaaa.sampler.OwnGenerator`)."""
        pools = self._fitted()
        g = self._generator(generator)
        out, labels, extra = self._sample_into(g)
        return AnnotatedImage.trusted(
            image=from_float(out, pools.dtype, inplace=True), labels=labels.to(self.device), class_ids=extra["class_ids"].to(self.device),
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
                raise IaaaError(f"sample_batch(stack=True): image {i} is {tuple(out.shape[-2:])}, image 0 {tuple(images.shape[-2:])}; pass CompositorConfig(size=...) to stack")
            images[i] = from_float(out, pools.dtype, inplace=True)
            labels[i] = lab
            extra["meta"]["class_ids"] = extra["class_ids"]
            metas.append(extra["meta"])
        if images is None:
            return torch.empty(0), torch.empty(0, dtype=torch.int64), []
        return images, labels, metas

    def __repr__(self) -> str:
        fitted = self.pools.stats.summary() if self.pools is not None else "not fitted"
        return f"CellCompositor({self.config!r}, policy={self.policy!r}, seed={self.seed}, device={self.device}; {fitted})"


def _float_at_levels(image: torch.Tensor, source: np.ndarray | None, destination: np.ndarray | None) -> torch.Tensor:
    """A pooled object's pixels as float32 in ``[0, 1]``, mapped from its source image's levels
    to the destination's (:func:`~iaaa.synthesis.levels.match_intensity`; either ``None``: not
    mapped). Elementwise, so a part of the crop maps to the same values as the whole."""
    return match_intensity(image if image.dtype == torch.float32 else to_float(image), source, destination)
