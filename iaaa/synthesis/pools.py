"""What :meth:`iaaa.CellCompositor.fit` records.

``fit`` adds every image's objects and background to a :class:`PoolBuilder`, which records the
statistics of the data (:class:`CompositorStats`: cells per image, SCO/MCO counts and share) and
returns :class:`Pools`: the object pool, the background pool and, per group of images, a
:class:`GroupPool` of the objects, cell counts and measured values (halo, rim, context,
contacts, background levels) a synthetic image on one of that group's backgrounds draws from
(the draws themselves: :mod:`iaaa.synthesis.draws`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from iaaa.boxes import tight_box
from iaaa.errors import IaaaError
from iaaa.label_maps import compact_labels, instance_ids
from iaaa.structures import AnnotatedImage, CellObject, labels_to_boxes
from iaaa.dtypes import check_unit_range, to_float
from iaaa.synthesis.contacts import ContactStats
from iaaa.synthesis.levels import exposure_spread, mixed_exposures

__all__ = [
    "CompositorStats", "PooledObject", "PooledBackground", "RealCells", "GroupPool", "Pools", "PoolBuilder", "mode", "real_cells", "crop_real_cells",
    "level_summary",
]


class PooledObject(NamedTuple):
    """A cell object in the compositor's pool, ready to paste."""

    image: torch.Tensor
    """``(C, h, w)`` on the compositor's device, with its context ring, in the source image's
    dtype (uint8, uint16 or float32 in ``[0, 1]``; other dtypes as float32):
    :func:`~iaaa.dtypes.to_float` gives the float32 it is pasted as. Stored as read because the
    pool lives as long as the compositor: float32 took 4x the bytes of uint8 source pixels."""
    labels: torch.Tensor
    """``(h, w)``, cells ``1..k``, in the narrowest integer dtype that holds ``k``
    (:func:`~iaaa.label_maps.compact_labels`: uint8 up to 255 cells); ``.to(torch.int64)`` for
    the library's int64 convention."""
    class_ids: np.ndarray
    """``(k,)`` class id of each cell."""
    kind: str
    """``"sco"`` or ``"mco"``."""
    source: str
    """name of the source image."""
    box: tuple[int, int, int, int]
    """XYXY of the crop in the source image."""
    num_cells: int
    anchors: np.ndarray | None = None
    """``(2, C)`` background and cell levels of the source image
    (:func:`~iaaa.synthesis.levels.intensity_anchors`), what ``match_intensity`` maps from."""


@dataclass
class CompositorStats:
    """What :meth:`CellCompositor.fit` saw.

    Attributes:
        n_images: images fitted.
        cells_per_image: cells (instances of at least ``min_area`` pixels, border cells
            included) in each image.
        image_sizes: ``(H, W)`` of each image.
        n_sco, n_mco: objects in the pools (border objects excluded unless ``keep_border``).
        cells_in_mcos: cells held by the MCO pool.
        n_border_objects: objects left out because they touch the border.
        n_fragments: instances below ``min_area`` (never pasted).
        n_backgrounds: backgrounds in the pool.
        no_background: names of images with no background pixel (left out of the pool).
        fit_seconds: wall time of ``fit``.
        cells_pooled: cells held by the pooled objects (SCOs and MCOs).
        groups: group key -> ``{"images", "cells_min", "cells_max", "halo", "touching_share"}``
            (one entry, key ``None``, without ``group_by``).
        contacts: how the cells of all fitted images touch
            (:class:`~iaaa.synthesis.contacts.ContactStats`).
        border_fallback: every object touched the frame, so border objects were pooled.
        contrasted_images, contrast_spread: images with a cell contrast beyond their noise, and
            the ratio of the largest such contrast to the smallest
            (:func:`~iaaa.synthesis.levels.exposure_spread`; ``None`` without any).
        match_intensity: whether pasted objects are mapped to their destination's levels:
            ``config.match_intensity``, with ``"auto"`` resolved on the fitted images
            (:func:`~iaaa.synthesis.levels.mixed_exposures`).
        diameter_spread: largest over smallest per-image median cell diameter
            (:func:`~iaaa.synthesis.image_groups.diameter_spread`; ``None`` with fewer than two
            images with cells).
        object_scale: the ``(lo, hi)`` range objects are resized by (``None``: not resized):
            ``config.object_scale``, with ``"auto"`` resolved on ``diameter_spread``.
    """

    n_images: int = 0
    cells_per_image: list[int] = field(default_factory=list)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    n_sco: int = 0
    n_mco: int = 0
    cells_in_mcos: int = 0
    n_border_objects: int = 0
    n_fragments: int = 0
    n_backgrounds: int = 0
    no_background: list[str] = field(default_factory=list)
    fit_seconds: float = 0.0
    cells_pooled: int = 0
    groups: dict[Any, dict[str, int]] = field(default_factory=dict)
    border_fallback: bool = False
    contacts: ContactStats = field(default_factory=ContactStats)
    contrasted_images: int = 0
    contrast_spread: float | None = None
    match_intensity: bool = False
    diameter_spread: float | None = None
    object_scale: tuple[float, float] | None = None

    @property
    def kept_share(self) -> float:
        """Share of the real cells that the object pools keep (the rest touch the border, are
        debris, or sit in objects left out)."""
        total = sum(self.cells_per_image)
        return self.cells_pooled / total if total else 0.0

    @property
    def mco_fraction(self) -> float:
        """Share of MCOs among the pooled objects (the paper's SCO/MCO ratio, as a fraction)."""
        n = self.n_sco + self.n_mco
        return self.n_mco / n if n else 0.0

    @property
    def sco_mco_ratio(self) -> float:
        """SCOs per MCO in the pool (``inf`` without MCOs)."""
        return self.n_sco / self.n_mco if self.n_mco else math.inf

    @property
    def mean_cells(self) -> float:
        return float(np.mean(self.cells_per_image)) if self.cells_per_image else 0.0

    @property
    def mode_cells(self) -> int:
        """Most common cell count (the smallest one on ties)."""
        if not self.cells_per_image:
            return 0
        return mode(self.cells_per_image)

    def summary(self) -> str:
        return (
            f"{self.n_images} images, cells/image mean {self.mean_cells:.1f} mode {self.mode_cells}; "
            f"{self.n_sco} SCOs, {self.n_mco} MCOs ({self.cells_in_mcos} cells), MCO share {self.mco_fraction:.3f}; "
            f"{self.n_border_objects} border objects and {self.n_fragments} fragments left out; "
            f"{self.n_backgrounds} backgrounds; fit {self.fit_seconds:.1f} s; "
            f"pools keep {self.cells_pooled} of {sum(self.cells_per_image)} real cells of >= min_area px ({100 * self.kept_share:.0f}%); "
            + ("every object touched the frame, border objects kept; " if self.border_fallback else "")
            + f"{self.contrasted_images} images with cell contrast"
            + ("" if self.contrast_spread is None else f" (spread {self.contrast_spread:.1f}x)")
            + f", match_intensity {'on' if self.match_intensity else 'off'}; "
            + ("" if self.diameter_spread is None else f"cell diameters spread {self.diameter_spread:.2f}x, ")
            + f"object_scale {'off' if self.object_scale is None else '(%g, %g)' % self.object_scale}; "
            + f"{len(self.groups)} group(s): "
            + ", ".join(f"{k}: {v['images']} images, {v['cells_min']}-{v['cells_max']} cells, halo {v['halo']}" for k, v in self.groups.items())
        )


def mode(values: list[int]) -> int:
    """Most common value (the smallest one on ties)."""
    c = Counter(values)
    top = max(c.values())
    return min(k for k, v in c.items() if v == top)


class PooledBackground(NamedTuple):
    """A background in the compositor's pool."""

    image: torch.Tensor
    """``(C, H, W)`` in the source dtype on the compositor's device, mirror-tiled up to the output size."""
    level: np.ndarray
    """float16 ``(C, H, W)``: the background as corner scores see it."""
    name: str
    """name of the source image."""
    group: Any
    """the source image's group key."""
    cells: int
    """cells of the source image."""
    area: float
    """pixels of the source image."""
    layout: np.ndarray | None
    """the source image's cell density grid (``layout="source"``), else ``None``."""
    real: "RealCells | None" = None
    """``onto="image"``: the real image's own cells, kept in every synthetic image, else ``None``."""
    anchors: np.ndarray | None = None
    """``(2, C)`` background and cell levels of the source image, what ``match_intensity``
    maps pasted objects to."""


class RealCells(NamedTuple):
    """The cells of a real image that a synthetic image pasted onto it keeps."""

    labels: np.ndarray
    """``(H, W)`` label map, ids ``1..M``, in the narrowest integer dtype that holds ``M``
    (:func:`~iaaa.label_maps.compact_labels`; kept for the compositor's life)."""
    class_ids: np.ndarray
    """``(M,)`` class id of each id."""
    table: np.ndarray
    """the occupancy table of ``labels`` (:func:`~iaaa.synthesis.canvas.occupancy_table`), as
    uint16 where the image is narrower than 65,535 px (its counts never exceed the width)."""
    boxes: np.ndarray
    """``(M, 4)`` int64 XYXY (inclusive) box of each id."""


def real_cells(sample: AnnotatedImage, size: tuple[int, int] | None) -> RealCells:
    """The cells of ``sample`` renumbered ``1..M`` (``onto="image"``). A real image cannot be
    mirror-tiled (its cells would repeat), so ``size`` must not exceed it."""
    h, w = sample.size
    if size is not None and (size[0] > h or size[1] > w):
        raise IaaaError(f"{sample.name}: size {size} exceeds the image ({h}, {w}); onto='image' cannot tile a real image")
    lab = sample.labels.detach().cpu().numpy()
    ids = instance_ids(sample.labels.detach().cpu()).numpy()
    lut = np.zeros(int(lab.max()) + 1 if lab.size else 1, dtype=np.int64)
    lut[ids] = np.arange(1, len(ids) + 1)
    from iaaa.synthesis.canvas import occupancy_table

    labels = lut[lab]
    boxes = labels_to_boxes(torch.from_numpy(labels)).numpy().astype(np.int64).reshape(-1, 4)
    table = occupancy_table(labels)
    if w < np.iinfo(np.uint16).max:
        table = table.astype(np.uint16)
    # class_ids follow sorted instance order.
    return RealCells(compact_labels(labels), sample.class_ids.detach().cpu().numpy().astype(np.int64).reshape(-1)[: len(ids)], table, boxes)


def crop_real_cells(real: RealCells, offset: tuple[int, int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """A fresh ``(labels, class_ids, table, boxes)`` of the window at ``offset`` of ``size``,
    cells cut by the window renumbered ``1..m``, labels int64; ``table`` is the stored
    occupancy table for the whole image (the canvas copies it), ``None`` for a window (the
    canvas computes its own); ``boxes`` hold each cell (clipped to the window)."""
    (oy, ox), (h, w) = offset, size
    lab = real.labels[oy : oy + h, ox : ox + w]
    if lab.shape == real.labels.shape:
        return lab.astype(np.int64), real.class_ids.copy(), real.table, real.boxes
    ids = instance_ids(torch.from_numpy(lab)).numpy()  # a strided view: one copy, in the bincount
    lut = np.zeros(len(real.class_ids) + 1, dtype=np.int64)
    lut[ids] = np.arange(1, len(ids) + 1)
    b = real.boxes[ids - 1] - np.array([ox, oy, ox, oy])
    b = np.clip(b, 0, np.array([w - 1, h - 1, w - 1, h - 1]))
    return lut[lab], real.class_ids[ids - 1], None, b


@dataclass
class GroupPool:
    """Objects and count statistics of one group of fitted images."""

    sco: np.ndarray
    mco: np.ndarray
    counts: np.ndarray
    areas: np.ndarray
    mco_fraction: float
    mode: int
    mode_area: float
    halo: int = 0
    """The group's halo width measured by ``fit`` (or the config's int): what mask grouping
    keeps around a crop's cells and mask background removal removes."""
    rim: int = 0
    """The rim pasted objects carry (the halo with ``rim=True``, else 0)."""
    context: int = 0
    """Pixels of surroundings kept around every object of the group."""
    contacts: ContactStats = field(default_factory=ContactStats)
    """How the group's cells touch (what ``placement.contacts="data"`` reproduces)."""
    level_range: tuple[np.ndarray, np.ndarray] | None = None
    """``(median, scale)`` per channel of the smoothed level of the group's background pixels
    (scale: 1.4826 x the median absolute deviation, spread of image medians included): what
    ``placement.level_reject`` measures candidates against; ``None`` when no image had one."""


@dataclass
class Pools:
    """Everything ``fit`` recorded.

    Attributes:
        objects: the object pool.
        backgrounds: the background pool.
        groups: group key -> :class:`GroupPool`.
        stats: the statistics of the data.
        dtype: output image dtype.
        categories: class id -> name, over all images.
        sco_index, mco_index: pool indices of the SCOs and of the MCOs.
        object_cells: cells of every pooled object.
        mask_boxes: ``(n, 4)`` tight ``(y0, y1, x0, x1)`` box (inclusive) of every pooled
            object's cells in its crop (what ``object_warp="fused"`` windows around).
    """

    objects: list[PooledObject]
    backgrounds: list[PooledBackground]
    groups: dict[Any, GroupPool]
    stats: CompositorStats
    dtype: torch.dtype
    categories: dict[int, str]
    sco_index: np.ndarray
    mco_index: np.ndarray
    object_cells: np.ndarray
    mask_boxes: np.ndarray

    def to(self, device: torch.device) -> "Pools":
        """The pools with their pixels on ``device`` (in place). Returns ``self``."""
        self.backgrounds = [b._replace(image=b.image.to(device)) for b in self.backgrounds]
        self.objects = [o._replace(image=o.image.to(device), labels=o.labels.to(device)) for o in self.objects]
        return self


def level_summary(level: np.ndarray, background: np.ndarray) -> np.ndarray | None:
    """``(2, C)``: per channel the median and the median absolute deviation of the smoothed
    ``level`` ``(C, H, W)`` at the ``background`` ``(H, W)`` bool pixels (``None``: none), what
    :meth:`PoolBuilder.add_level` pools per group. Computed where the image is fitted (a worker
    process with ``fit(workers=...)``), so only these few numbers travel."""
    v = level[:, background].astype(np.float32)
    if v.shape[1] == 0:
        return None
    if v.shape[1] > 65536:
        # A regular subsample: a median needs no more, and fit stays cheap on large images.
        v = v[:, :: v.shape[1] // 65536]
    med = np.median(v, axis=1)
    mad = np.median(np.abs(v - med[:, None]), axis=1)
    return np.stack([med, mad])


class PoolBuilder:
    """Collects the objects, backgrounds and statistics of the fitted images, one at a time."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stats = CompositorStats()
        self.objects: list[PooledObject] = []
        self.backgrounds: list[PooledBackground] = []
        self.image_groups: list[Any] = []
        self.object_groups: list[Any] = []
        self.dtypes: set[torch.dtype] = set()
        self.channels: int | None = None
        self.categories: dict[int, str] = {}
        self.halos: dict[Any, tuple[int, int, int]] = {}
        self.contacts: dict[Any, ContactStats] = {}
        self.levels: dict[Any, list[np.ndarray]] = {}
        self.image_anchors: list[np.ndarray | None] = []
        self.labelled_images = 0
        """Images whose label map holds any cell at all (whatever its size), for fit's message."""

    def check(self, sample: AnnotatedImage) -> None:
        """Refuse a sample whose channel layout differs from the first one's, or a float image
        outside [0, 1] (:func:`~iaaa.dtypes.check_unit_range`)."""
        check_unit_range(sample.image, str(sample.meta.get("image_path", sample.name)))
        self._check_channels(sample)

    def _check_channels(self, sample: AnnotatedImage) -> None:
        c = int(sample.image.shape[0])
        if self.channels is None:
            self.channels = c
        elif c != self.channels:
            raise IaaaError(f"{sample.name}: {c} channels, but the first sample has {self.channels}; the compositor mixes objects and backgrounds of one channel layout")

    def add(
        self, sample: AnnotatedImage, group: Any, objects: list[CellObject], cells: int, border_objects: int, fragments: int,
        halo: int = 0, rim: int = 0, context: int = 0, contacts: ContactStats | None = None, anchors: np.ndarray | None = None,
    ) -> None:
        """Record one image: its group key, its objects, its counts, its group's measured
        halo, the rim its objects are pasted with and the context they were cut with, and how
        its cells touch (``contacts``, :func:`~iaaa.synthesis.contacts.measure_contacts`);
        ``anchors``: the image's levels, kept with each of its objects. (``fit`` has run
        :meth:`check` on every sample before; only the cheap channel test is repeated here, not
        the pass over the pixels.)"""
        self._check_channels(sample)
        if contacts is not None:
            self.contacts[group] = self.contacts[group] + contacts if group in self.contacts else contacts
            self.stats.contacts = self.stats.contacts + contacts if self.stats.contacts.cells else contacts
        self.halos[group] = (int(halo), int(rim), int(context))
        self.dtypes.add(sample.image.dtype)
        self.categories.update(sample.categories)
        self.image_groups.append(group)
        self.image_anchors.append(anchors)
        self.add_objects(group, objects, anchors)
        st = self.stats
        st.n_images += 1
        self.labelled_images += bool(sample.labels.any())
        st.cells_per_image.append(cells)
        st.image_sizes.append(sample.size)
        st.n_border_objects += border_objects
        st.n_fragments += fragments

    def add_objects(self, group: Any, objects: list[CellObject], anchors: np.ndarray | None = None) -> None:
        """Pool ``objects`` of an image of ``group`` (:meth:`add` calls it; the compositor calls it
        again for border objects when no image gave an object otherwise); ``anchors``: their
        source image's levels."""
        self.object_groups.extend([group] * len(objects))
        for o in objects:
            image = o.image if o.image.dtype in (torch.uint8, torch.uint16, torch.float32) else to_float(o.image)
            self.objects.append(
                PooledObject(image.to(self.device), compact_labels(o.labels).to(self.device), o.class_ids.cpu().numpy(), o.kind, o.source, o.box, o.num_cells, anchors)
            )
        self.stats.cells_pooled += sum(o.num_cells for o in objects)

    def add_level(self, group: Any, summary: np.ndarray | None) -> None:
        """Record the :func:`level_summary` of an image of ``group`` (``None``: it had no
        background pixel)."""
        if summary is not None:
            self.levels.setdefault(group, []).append(summary)

    def add_background(self, background: PooledBackground | None, name: str) -> None:
        """Record the image's background (``None``: it had no background pixel)."""
        if background is None:
            self.stats.no_background.append(name)
        else:
            self.backgrounds.append(background._replace(image=background.image.to(self.device)))

    def finish(self, dtype: torch.dtype | None, match_intensity: bool | str = False) -> Pools:
        """The pools; ``dtype`` is the output dtype (``None``: the data's, which must be one);
        ``match_intensity``: the config's setting, ``"auto"`` resolved here on the images'
        anchors (:func:`~iaaa.synthesis.levels.mixed_exposures`)."""
        st = self.stats
        st.contrasted_images, st.contrast_spread = exposure_spread(self.image_anchors)
        st.match_intensity = mixed_exposures(self.image_anchors) if match_intensity == "auto" else bool(match_intensity)
        if st.n_images == 0:
            raise IaaaError("fit: no samples given")
        if not self.backgrounds:
            raise IaaaError(
                f"fit: no image has background pixels to build a background from ({', '.join(st.no_background[:5])}); "
                "onto='image' (the default) with an output size within the images' pastes onto the real images instead"
            )
        if dtype is None and len(self.dtypes) > 1:
            raise IaaaError(f"fit: the samples mix image dtypes {sorted(str(d) for d in self.dtypes)}; pass CellCompositor(dtype=...) to choose the output dtype")
        objects = self.objects
        sco = np.array([j for j, o in enumerate(objects) if o.kind == "sco"], dtype=np.int64)
        mco = np.array([j for j, o in enumerate(objects) if o.kind == "mco"], dtype=np.int64)
        cells = np.array([o.num_cells for o in objects], dtype=np.int64)
        if len(objects) == 0 and self.labelled_images == 0:
            raise IaaaError(f"fit: no labelled cell in any of the {st.n_images} label maps (every label is 0)")
        if len(objects) == 0:
            raise IaaaError("fit: no cell objects found: every cell is below min_area; pass a smaller min_area")
        st.n_sco, st.n_mco = len(sco), len(mco)
        st.cells_in_mcos = int(cells[mco].sum()) if len(mco) else 0
        st.n_backgrounds = len(self.backgrounds)
        groups = self._groups(sco, mco)
        # Every pooled object has cells (extraction keeps only crops with a cell).
        boxes = np.array([tight_box((o.labels > 0).cpu().numpy()) for o in objects], dtype=np.int64).reshape(-1, 4)
        return Pools(objects, self.backgrounds, groups, st, dtype or next(iter(self.dtypes)), self.categories or {1: "cell"}, sco, mco, cells, boxes)

    def _groups(self, sco_index: np.ndarray, mco_index: np.ndarray) -> dict[Any, GroupPool]:
        st = self.stats
        counts = np.array(st.cells_per_image, dtype=np.float64)
        areas = np.array([h * w for h, w in st.image_sizes], dtype=np.float64)
        index = {k: i for i, k in enumerate(dict.fromkeys(self.image_groups))}
        img_g = np.array([index[k] for k in self.image_groups], dtype=np.int64)
        obj_g = np.array([index[k] for k in self.object_groups], dtype=np.int64)
        pools: dict[Any, GroupPool] = {}
        for key, gi in index.items():
            im = img_g == gi
            ob = obj_g == gi
            sco = sco_index[ob[sco_index]] if len(sco_index) else sco_index
            mco = mco_index[ob[mco_index]] if len(mco_index) else mco_index
            if len(sco) + len(mco) == 0:
                # A group without pasteable objects borrows from the whole pool.
                sco, mco = sco_index, mco_index
            c = counts[im]
            m = mode([int(v) for v in c])
            halo, rim, context = self.halos.get(key, (0, 0, 0))
            contacts = self.contacts.get(key, ContactStats())
            pools[key] = GroupPool(
                sco, mco, c, areas[im], len(mco) / max(1, len(sco) + len(mco)), m, float(areas[im][c == m].mean()), halo, rim, context,
                contacts, _level_range(self.levels.get(key, [])),
            )
            st.groups[key] = {"images": int(im.sum()), "cells_min": int(c.min()), "cells_max": int(c.max()), "halo": halo, "touching_share": round(contacts.touching_share, 3)}
        return pools


def _level_range(levels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """Group ``(median, scale)`` from per-image ``[median, MAD]`` rows: the median of the image
    medians, and a scale that adds the images' typical spread and the spread between images."""
    if not levels:
        return None
    a = np.stack(levels)  # (n, 2, C)
    med = np.median(a[:, 0], axis=0)
    within = 1.4826 * np.median(a[:, 1], axis=0)
    between = 1.4826 * np.median(np.abs(a[:, 0] - med), axis=0)
    return med.astype(np.float32), np.sqrt(within**2 + between**2).astype(np.float32)
