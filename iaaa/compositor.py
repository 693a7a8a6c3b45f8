"""CellCompositor: new annotated images from the cells and backgrounds of real ones (IAAA, paper
sections 2.2-2.4).

``fit`` cuts single- and multi-cell objects (SCOs / MCOs) out of the data, removes the cells of
every image to build a pool of backgrounds, and records how many cells an image holds and how
often an object is an MCO. ``sample`` draws a background, a cell count from the recorded
distribution (or its mode, as the paper does), SCOs from the SCO pool and MCOs from the MCO pool
in the recorded ratio, applies a per-object policy to each, and places them with corner-matched
location search and Gaussian-feathered blending, writing the unfeathered masks with fresh ids.

``sample(generator)`` reads nothing but the generator (and the fitted state, which it never
changes), so ``sample(torch.Generator().manual_seed(s))`` is a pure function of ``s``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from iaaa.background import METHODS, feather_radius, fill_background, gaussian_blur
from iaaa.object_policy import ObjectAugment, as_object_policy
from iaaa.layout import LAYOUTS, layout_density, layout_grid
from iaaa.objects import _extract_one, _reflect_index
from iaaa.placement import COLLISIONS, FEATHERS, _Canvas, _place
from iaaa.compositor_stats import CompositorStats, PooledObject, _mode, _Pool
from iaaa.structures import AnnotatedImage, _trusted_annotated, as_annotated, from_float, to_float

__all__ = ["CellCompositor", "CompositorStats", "PooledObject"]

COUNTS = ("sample", "mode", "background")


def _pair(v: Any, what: str) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, int):
        v = (v, v)
    if len(v) != 2 or min(int(x) for x in v) < 1:
        raise ValueError(f"{what}: expected (H, W) of positive ints, got {v!r}")
    return int(v[0]), int(v[1])


class CellCompositor:
    """Synthesise annotated cell images (see module docs). Every knob is a keyword argument.

    Args:
        policy: per-object policy: ``None`` (default: :class:`~iaaa.object_policy.ObjectAugment`,
            random flips, any rotation, mild brightness/contrast), ``"identity"``, a list of
            ``(op, probability, magnitude)`` triples, or any callable
            ``(image, labels, generator) -> (image, labels)`` such as a searched
            :class:`iaaa.policy.PolicySet`. See :func:`~iaaa.object_policy.as_object_policy`.
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
            ``layout_mix`` of uniform; see :mod:`iaaa.layout`). With ``group_by="size"``,
            ``layout="source", count="background", collision="mask"`` brought pooled multi-lab
            data closer to real at the MCO and tile levels; with one pool it did not
            (benchmarks/fidelity.md), hence opt-in.
        layout_sigma, layout_mix: see ``layout``.
        collision: ``"box"`` (default: grown boxes may not overlap) or ``"mask"`` (grown masks
            may not touch, so round cells pack as densely as real ones; see :mod:`iaaa.placement`).
        mco_fraction: share of MCOs among the objects drawn: ``"data"`` (default) or a float.
        object_scale: ``None``, a factor, or ``(lo, hi)`` (drawn log-uniformly): objects are
            resized before their policy.
        n_candidates: random positions scored per object (and per round).
        rounds: fresh rounds of candidates tried when all of a round collide (1: the paper).
        gap: minimum free pixels between an object's box and placed cells (default: the feather
            radius, so feathers never touch another cell).
        border: minimum distance between an object's box and the frame.
        sigma, truncate: Gaussian feather of pasted objects (``sigma=0``: hard paste).
        feather: ``"mask"`` (paper) or ``"outside"`` (see :mod:`iaaa.placement`).
        match_sigma: smoothing of the background for corner scores (0: raw pixels, the paper).
        margin, min_area, keep_border: object extraction (see :mod:`iaaa.objects`).
        background_method, background_candidates, background_sigma, background_patch: cell
            removal (see :mod:`iaaa.background`; ``background_patch`` is its ``patch``: the fill
            is copied in 8x8 blocks by default, which keeps the background's noise correlation
            and brings whole-image tiles closer to real, benchmarks/fidelity.md).
        group_by: ``None`` (one pool), ``"size"`` (group images by their size) or a callable
            ``sample -> key``. With groups, a synthetic image takes its cell count, MCO share and
            objects from the group of its background, so data pooled from several instruments or
            magnifications does not paste one experiment's cells onto another's background.
        dtype: output dtype; ``None`` keeps the data's (an error if the data mixes dtypes).
        seed: seeds ``fit`` (background fills) and ``sample`` calls without a generator.
        device: where pixels live and blends run (``"cpu"``, ``"cuda"``); see :meth:`to`.

    Attributes (after :meth:`fit`):
        stats: :class:`~iaaa.compositor_stats.CompositorStats` of the data.
        objects: the object pool, a list of :class:`PooledObject` (``meta["objects"][i]["object"]``
            and ``meta["instance_object"]`` index it).
        sco_index, mco_index: pool indices of the SCOs and of the MCOs.
        backgrounds: the background pool (source dtype, mirror-tiled up to ``size``);
            ``meta["background"]`` indexes it and ``meta["offset"]`` is the crop's corner.
        radius: the placement feather radius (pixels farther than this from every pasted cell
            are the background's).
    """

    def __init__(
        self,
        *,
        policy: Any = None,
        size: tuple[int, int] | int | None = None,
        count: Any = "sample",
        mco_fraction: float | str = "data",
        object_scale: float | tuple[float, float] | None = None,
        layout: str = "uniform",
        layout_sigma: float = 16.0,
        layout_mix: float = 0.25,
        collision: str = "box",
        n_candidates: int = 32,
        rounds: int = 4,
        gap: int | None = None,
        border: int = 0,
        sigma: float = 1.0,
        truncate: float = 3.0,
        feather: str = "mask",
        match_sigma: float = 2.0,
        margin: int = 1,
        min_area: int = 10,
        keep_border: bool = False,
        background_method: str = "bilinear",
        background_candidates: int = 32,
        background_sigma: float = 2.0,
        background_patch: int = 8,
        group_by: str | Callable[[AnnotatedImage], Any] | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        if not (count in COUNTS or isinstance(count, int) or callable(count) or (isinstance(count, (tuple, list)) and len(count) == 2)):
            raise ValueError(f"count: expected 'sample', 'mode', 'background', an int, a (lo, hi) range or a callable, got {count!r}")
        if isinstance(count, (tuple, list)) and not 0 <= int(count[0]) <= int(count[1]):
            raise ValueError(f"count: range must satisfy 0 <= lo <= hi, got {count!r}")
        if isinstance(count, int) and count < 0:
            raise ValueError(f"count: must be >= 0, got {count}")
        if mco_fraction != "data" and not (isinstance(mco_fraction, (int, float)) and 0 <= mco_fraction <= 1):
            raise ValueError(f"mco_fraction: expected 'data' or a share in [0, 1], got {mco_fraction!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout: must be one of {LAYOUTS}, got {layout!r}")
        if not layout_sigma > 0 or not 0 <= layout_mix <= 1:
            raise ValueError(f"layout_sigma must be > 0 and layout_mix in [0, 1], got {layout_sigma!r}, {layout_mix!r}")
        if collision not in COLLISIONS:
            raise ValueError(f"collision: must be one of {COLLISIONS}, got {collision!r}")
        if feather not in FEATHERS:
            raise ValueError(f"feather: must be one of {FEATHERS}, got {feather!r}")
        if background_method not in METHODS:
            raise ValueError(f"background_method: must be one of {METHODS}, got {background_method!r}")
        if n_candidates < 1 or rounds < 1:
            raise ValueError(f"n_candidates and rounds: must be >= 1, got {n_candidates}, {rounds}")
        if border < 0 or (gap is not None and gap < 0):
            raise ValueError(f"border and gap must be >= 0, got border={border}, gap={gap}")
        if object_scale is not None:
            lo, hi = (object_scale, object_scale) if isinstance(object_scale, (int, float)) else object_scale
            if not 0 < float(lo) <= float(hi):
                raise ValueError(f"object_scale: expected a factor > 0 or (lo, hi) with 0 < lo <= hi, got {object_scale!r}")
            object_scale = (float(lo), float(hi))
        self.policy = as_object_policy(policy)
        self.size = _pair(size, "size")
        self.count = tuple(int(v) for v in count) if isinstance(count, (tuple, list)) else count
        self.mco_fraction = mco_fraction
        self.object_scale = object_scale
        self.layout, self.layout_sigma, self.layout_mix = layout, float(layout_sigma), float(layout_mix)
        self.collision = collision
        self.n_candidates, self.rounds = int(n_candidates), int(rounds)
        self.radius = feather_radius(sigma, truncate)
        self.gap = self.radius if gap is None else int(gap)
        self.border = int(border)
        self.sigma, self.truncate, self.feather, self.match_sigma = float(sigma), float(truncate), feather, float(match_sigma)
        self.margin, self.min_area, self.keep_border = int(margin), int(min_area), bool(keep_border)
        self.background_method = background_method
        self.background_candidates = int(background_candidates)
        self.background_sigma = float(background_sigma)
        if int(background_patch) != background_patch or background_patch < 1:
            raise ValueError(f"background_patch: must be a positive integer, got {background_patch!r}")
        self.background_patch = int(background_patch)
        if not (group_by is None or group_by == "size" or callable(group_by)):
            raise ValueError(f"group_by: expected None, 'size' or a callable sample -> key, got {group_by!r}")
        self.group_by = group_by
        self.dtype = dtype
        self.seed = int(seed)
        self.device = torch.device(device)
        self._own_generator = torch.Generator().manual_seed(self.seed)
        self._fitted = False

    # ------------------------------------------------------------------ fit

    @property
    def context(self) -> int:
        """Pixels of surroundings kept around every object: enough for the feather ring to stay
        inside real image after any rotation (x sqrt 2) and the largest shrink."""
        shrink = 1.0
        if self.object_scale is not None:
            shrink = min(shrink, self.object_scale[0])
        if isinstance(self.policy, ObjectAugment):
            shrink *= self.policy.max_shrink
        return int(math.ceil((1.5 * self.radius + 2) / shrink))

    def fit(self, samples: Iterable[Any]) -> "CellCompositor":
        """Extract the object pools, build the background pool and record the statistics from
        ``samples`` (any iterable of annotated images, read once). Returns ``self``."""
        t0 = time.perf_counter()
        stats = CompositorStats()
        objects, backgrounds, levels, bg_names, layouts, bg_counts = [], [], [], [], [], []
        dtypes, channels, categories = set(), None, {}
        image_groups, object_groups, bg_groups = [], [], []
        for i, raw in enumerate(samples):
            s = as_annotated(raw, name=f"sample{i}")
            name = s.name or f"sample{i}"
            if not s.name:
                s = AnnotatedImage(s.image, s.labels, s.class_ids, name, s.categories, s.meta)
            c = int(s.image.shape[0])
            if channels is None:
                channels = c
            elif c != channels:
                raise ValueError(f"{name}: {c} channels, but the first sample has {channels}; the compositor mixes objects and backgrounds of one channel layout")
            dtypes.add(s.image.dtype)
            categories.update(s.categories)
            key = None if self.group_by is None else (s.size if self.group_by == "size" else self.group_by(s))
            image_groups.append(key)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            try:
                bg = fill_background(
                    s.image, s.labels, method=self.background_method, n_candidates=self.background_candidates,
                    sigma=self.background_sigma, margin=self.margin, patch=self.background_patch, generator=g,
                ).image
            except ValueError:
                bg = None
                stats.no_background.append(name)
            objs, groups = _extract_one(
                s, margin=self.margin, keep_border=self.keep_border, min_area=self.min_area, context=self.context,
                background=bg if bg is not None else s.image,
            )
            object_groups.extend([key] * len(objs))
            for o in objs:
                objects.append(PooledObject(to_float(o.image).to(self.device), o.labels.to(self.device), o.class_ids.cpu().numpy(), o.kind, o.source, o.box, o.num_cells))
            stats.n_images += 1
            stats.cells_per_image.append(int(groups.ids.numel()))
            stats.image_sizes.append(s.size)
            stats.n_border_objects += int(groups.border.sum()) if not self.keep_border else 0
            stats.n_fragments += int(groups.fragments.numel())
            if bg is not None:
                bg = self._tile(bg)
                backgrounds.append(bg.to(self.device))
                # Corner scores read a smoothed background; float16 halves the pool's memory and
                # is ample to rank candidates.
                lv = gaussian_blur(to_float(bg), self.match_sigma, 3.0, "reflect") if self.match_sigma > 0 else to_float(bg)
                levels.append(lv.cpu().numpy().astype(np.float16))
                bg_names.append(name)
                bg_groups.append(key)
                bg_counts.append((stats.cells_per_image[-1], float(s.size[0] * s.size[1])))
                if self.layout == "source":
                    layouts.append(layout_grid(self._tile((s.labels > 0).to(torch.float32)[None])[0], self.layout_sigma))
        if stats.n_images == 0:
            raise ValueError("fit: no samples given")
        if not backgrounds:
            raise ValueError(f"fit: no image has background pixels to build a background from ({', '.join(stats.no_background[:5])})")
        if self.dtype is None and len(dtypes) > 1:
            raise ValueError(f"fit: the samples mix image dtypes {sorted(str(d) for d in dtypes)}; pass CellCompositor(dtype=...) to choose the output dtype")
        self.out_dtype = self.dtype or dtypes.pop()
        self.categories = categories or {1: "cell"}
        self.objects = objects
        self.sco_index = np.array([j for j, o in enumerate(objects) if o.kind == "sco"], dtype=np.int64)
        self.mco_index = np.array([j for j, o in enumerate(objects) if o.kind == "mco"], dtype=np.int64)
        self.object_cells = np.array([o.num_cells for o in objects], dtype=np.int64)
        if len(objects) == 0:
            raise ValueError("fit: no cell objects found (every object touches the border or is below min_area); try keep_border=True or a smaller min_area")
        self.backgrounds, self.levels, self.background_names = backgrounds, levels, bg_names
        self.layouts, self.background_counts = layouts, bg_counts
        stats.n_sco, stats.n_mco = len(self.sco_index), len(self.mco_index)
        stats.cells_in_mcos = int(self.object_cells[self.mco_index].sum()) if len(self.mco_index) else 0
        stats.n_backgrounds = len(backgrounds)
        self.stats = stats
        self._pools = self._make_pools(image_groups, object_groups)
        self.background_groups = bg_groups
        stats.fit_seconds = time.perf_counter() - t0
        self.stats = stats
        self._fitted = True
        return self

    def _make_pools(self, image_groups: list[Any], object_groups: list[Any]) -> dict[Any, _Pool]:
        st = self.stats
        counts = np.array(st.cells_per_image, dtype=np.float64)
        areas = np.array([h * w for h, w in st.image_sizes], dtype=np.float64)
        index = {k: i for i, k in enumerate(dict.fromkeys(image_groups))}
        img_g = np.array([index[k] for k in image_groups], dtype=np.int64)
        obj_g = np.array([index[k] for k in object_groups], dtype=np.int64)
        pools: dict[Any, _Pool] = {}
        for key, gi in index.items():
            im = img_g == gi
            ob = obj_g == gi
            sco = self.sco_index[ob[self.sco_index]] if len(self.sco_index) else self.sco_index
            mco = self.mco_index[ob[self.mco_index]] if len(self.mco_index) else self.mco_index
            if len(sco) + len(mco) == 0:
                # A group without pasteable objects borrows from the whole pool.
                sco, mco = self.sco_index, self.mco_index
            c = counts[im]
            mode = _mode([int(v) for v in c])
            pools[key] = _Pool(sco, mco, c, areas[im], len(mco) / max(1, len(sco) + len(mco)), mode, float(areas[im][c == mode].mean()))
        return pools

    def _tile(self, bg: torch.Tensor) -> torch.Tensor:
        """Mirror-tile a background up to the output size (once, at fit)."""
        if self.size is None:
            return bg
        h, w = bg.shape[-2:]
        H, W = max(h, self.size[0]), max(w, self.size[1])
        if (H, W) == (h, w):
            return bg
        iy = _reflect_index(h, 0, H, bg.device)
        ix = _reflect_index(w, 0, W, bg.device)
        return bg[:, iy][:, :, ix]

    def to(self, device: str | torch.device) -> "CellCompositor":
        """Move the pools to ``device``; blurs, warps and blends then run there. Returns ``self``."""
        self.device = torch.device(device)
        if self._fitted:
            self.backgrounds = [b.to(self.device) for b in self.backgrounds]
            self.objects = [o._replace(image=o.image.to(self.device), labels=o.labels.to(self.device)) for o in self.objects]
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("CellCompositor: call fit(samples) before sampling")

    # ------------------------------------------------------------------ sampling

    def _draw_count(self, pool: _Pool, g: torch.Generator, area: float, background: int) -> int:
        u = torch.rand(2, generator=g, device=g.device, dtype=torch.float64).tolist()
        c = self.count
        if c == "background":
            n, a = self.background_counts[background]
            x = n * area / a
        elif c == "sample":
            i = min(int(u[0] * len(pool.counts)), len(pool.counts) - 1)
            x = pool.counts[i] * area / pool.areas[i]
        elif c == "mode":
            x = pool.mode * area / pool.mode_area
        elif isinstance(c, int):
            return c
        elif isinstance(c, tuple):
            return c[0] + min(int(u[0] * (c[1] - c[0] + 1)), c[1] - c[0])
        else:
            return int(c(g))
        # Stochastic rounding keeps the expected count exact when areas differ.
        return int(math.floor(x) + (u[1] < x - math.floor(x)))

    def _choose(self, pool: _Pool, n_cells: int, g: torch.Generator) -> list[int]:
        """Pool indices of objects holding ``n_cells`` cells on average, MCOs in the recorded share.

        The number of objects is ``n_cells / (mean cells per object)`` (stochastically rounded)
        and each object's kind is an independent draw, so both the expected cell count and the
        MCO share are exact; stopping at the count instead biases one of them (an MCO near the
        end overshoots, or gets swapped for an SCO and lowers the share)."""
        q = pool.mco_fraction if self.mco_fraction == "data" else float(self.mco_fraction)
        n_sco, n_mco = len(pool.sco), len(pool.mco)
        if n_mco == 0:
            q = 0.0
        if n_sco == 0:
            q = 1.0
        mean_mco = float(self.object_cells[pool.mco].mean()) if n_mco else 2.0
        per_object = (1 - q) + q * mean_mco
        x = max(n_cells, 0) / per_object
        r = float(torch.rand((), generator=g, device=g.device, dtype=torch.float64))
        m = int(math.floor(x) + (r < x - math.floor(x)))
        u = torch.rand((m, 2), generator=g, device=g.device, dtype=torch.float64).cpu().numpy()
        is_mco = u[:, 0] < q
        pick_m = pool.mco[np.minimum((u[:, 1] * n_mco).astype(np.int64), max(n_mco - 1, 0))] if n_mco else None
        pick_s = pool.sco[np.minimum((u[:, 1] * n_sco).astype(np.int64), max(n_sco - 1, 0))] if n_sco else None
        if pick_m is None:
            return pick_s.tolist()
        if pick_s is None:
            return pick_m.tolist()
        return np.where(is_mco, pick_m, pick_s).tolist()

    def _rescale(self, img: torch.Tensor, lab: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = self.object_scale
        u = float(torch.rand((), generator=g, device=g.device, dtype=torch.float64))
        s = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        if s == 1.0:
            return img, lab
        size = (max(1, round(img.shape[-2] * s)), max(1, round(img.shape[-1] * s)))
        img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False, antialias=s < 1)[0]
        lab = F.interpolate(lab[None, None].to(img.dtype), size=size, mode="nearest-exact")[0, 0].to(torch.int64)
        return img, lab

    def _sample_into(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        bi = min(int(torch.rand((), generator=g, device=g.device, dtype=torch.float64) * len(self.backgrounds)), len(self.backgrounds) - 1)
        bg, level = self.backgrounds[bi], self.levels[bi]
        h, w = bg.shape[-2:]
        oy = ox = 0
        H, W = (h, w) if self.size is None else self.size
        uo = torch.rand(2, generator=g, device=g.device, dtype=torch.float64).tolist()
        if (H, W) != (h, w):
            oy, ox = min(int(uo[0] * (h - H + 1)), h - H), min(int(uo[1] * (w - W + 1)), w - W)
            bg = bg[:, oy : oy + H, ox : ox + W]
            level = level[:, oy : oy + H, ox : ox + W]
        pool = self._pools[self.background_groups[bi]]
        n_cells = self._draw_count(pool, g, float(H * W), bi)
        chosen = self._choose(pool, n_cells, g)
        imgs, labs, clss = [], [], []
        for j in chosen:
            img, lab, cls = self.objects[j][:3]  # image, labels, class_ids
            if self.object_scale is not None:
                img, lab = self._rescale(img, lab, g)
            img, lab = self.policy(img, lab, g)
            imgs.append(img if img.dtype == torch.float32 else to_float(img))
            labs.append(lab if lab.dtype == torch.int64 else lab.to(torch.int64))
            clss.append(cls)
        out = to_float(bg)
        out = out.clone() if out.data_ptr() == bg.data_ptr() else out
        canvas = _Canvas(out, level, None, self.gap, self.border)
        density = layout_density(self.layouts[bi], (oy, ox), (H, W), self.layout_mix) if self.layout == "source" else None
        rec = _place(canvas, imgs, labs, clss, n_candidates=self.n_candidates, sigma=self.sigma, truncate=self.truncate, feather=self.feather, generator=g, rounds=self.rounds,
                     density=density, collision=self.collision)
        kinds = [self.objects[chosen[j]].kind for j in rec["instance_object"]]
        meta = {
            "background": bi,
            "background_source": self.background_names[bi],
            "offset": (oy, ox),
            "requested_cells": n_cells,
            "objects": [
                {"object": chosen[j], "kind": self.objects[chosen[j]].kind, "source": self.objects[chosen[j]].source, "box": box, "score": sc}
                for j, box, sc in zip(rec["placed"], rec["boxes"], rec["scores"])
            ],
            "skipped": [chosen[j] for j in rec["skipped"]],
            "instance_kind": kinds,
            "instance_object": torch.tensor([chosen[j] for j in rec["instance_object"]], dtype=torch.int64),
        }
        ids = np.asarray(rec["new_ids"], dtype=np.int64)
        for o, j in zip(meta["objects"], rec["placed"]):
            o["ids"] = ids[np.asarray(rec["instance_object"]) == j].tolist()
        cls = torch.tensor(rec["class_ids"], dtype=torch.int64)
        return canvas.out, torch.from_numpy(canvas.labels), {"meta": meta, "class_ids": cls}

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
        self._check_fitted()
        g = self._generator(generator)
        out, labels, extra = self._sample_into(g)
        return _trusted_annotated(
            image=from_float(out, self.out_dtype), labels=labels.to(self.device), class_ids=extra["class_ids"].to(self.device),
            name="synthetic", categories=dict(self.categories), meta=extra["meta"],
        )

    def sample_batch(self, n: int, generator: torch.Generator | None = None, stack: bool = False) -> list[AnnotatedImage] | tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
        """``n`` synthetic images, identical to ``n`` successive :meth:`sample` calls with the
        same generator. With ``stack=True`` returns ``(images (n, C, H, W), labels (n, H, W),
        metas)`` written straight into preallocated batch tensors (needs ``size`` or equal-sized
        backgrounds); each meta also holds its ``class_ids``."""
        self._check_fitted()
        g = self._generator(generator)
        if not stack:
            return [self.sample(g) for _ in range(n)]
        images = labels = None
        metas = []
        for i in range(n):
            out, lab, extra = self._sample_into(g)
            if images is None:
                images = torch.empty((n, *out.shape), dtype=self.out_dtype, device=self.device)
                labels = torch.empty((n, *lab.shape), dtype=torch.int64, device=self.device)
            if tuple(out.shape) != tuple(images.shape[1:]):
                raise ValueError(f"sample_batch(stack=True): image {i} is {tuple(out.shape[-2:])}, image 0 {tuple(images.shape[-2:])}; pass CellCompositor(size=...) to stack")
            images[i] = from_float(out, self.out_dtype)
            labels[i] = lab
            extra["meta"]["class_ids"] = extra["class_ids"]
            metas.append(extra["meta"])
        if images is None:
            return torch.empty(0), torch.empty(0, dtype=torch.int64), []
        return images, labels, metas

    def __repr__(self) -> str:
        fitted = self.stats.summary() if self._fitted else "not fitted"
        return f"CellCompositor(policy={self.policy!r}, size={self.size}, count={self.count!r}, device={self.device}; {fitted})"
