"""What belongs to a cell beyond its mask: the halo (phase contrast) or blurred rim (fluorescence).

An annotated mask stops where the annotator drew the outline, but the cell's optical signature
reaches further: phase-contrast cells sit in a bright halo, fluorescent nuclei fade into the
background over a blurred rim. Removing a cell by its mask alone leaves that ring behind as a
cell-shaped ghost, and pasting a cell by its mask alone cuts its halo off. This module measures
how far the signature reaches and grows masks by that much.

The measurement rule (:func:`halo_profile`, :func:`measure_halo`):

1. ``d`` = Euclidean distance of every background pixel (label 0) to the nearest mask pixel.
   Ring ``k`` holds the background pixels with ``k - 1 < d <= k``.
2. The *profile* ``p_k`` is the mean intensity (channel mean, float in ``[0, 1]``) of ring ``k``
   for ``k = 1 .. max_distance``; the *far background* ``b`` is the median of the background
   pixels with ``d > far`` (``far`` shrinks to the 75th percentile of ``d`` in crowded images).
3. The deviation ``|p_k - b|`` starts at the halo's peak contrast and decays. The image's
   tolerance is ``max(rel * max_k |p_k - b|, noise * s)`` where ``s`` is the robust standard
   deviation (1.4826 MAD, at least the quantisation noise of one grey level) of the far
   background pixels: within 10 % of the peak contrast
   (``rel=0.1``) or within half a background noise level (``noise=0.5``), whichever is larger.
4. The image's halo width is ``k - 1`` for the first ring ``k`` whose deviation is within
   tolerance (rings ``1 .. k-1`` are the halo): ``0`` when ring 1 already is, ``max_distance``
   when no ring is.
5. A dataset's width is the median of its images' widths (robust to a few images whose
   profile is disturbed by unannotated debris or illumination gradients).

:func:`grow_masks` then grows every instance into free pixels by that width: each free pixel
within the radius takes the label of its nearest cell, so grown masks never overlap.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import scipy.ndimage as ndi
import torch

from iaaa.dtypes import dtype_range, to_float
from iaaa.errors import IaaaError

__all__ = [
    "HaloProfile", "halo_profile", "measure_halo", "grow_masks", "grow_to_any", "dilate_disk", "dilate_disk_array", "NearestCells", "nearest_cells",
]

_METRICS = ("euclidean", "chessboard")


def _label_array(labels: torch.Tensor, what: str = "labels") -> np.ndarray:
    if not isinstance(labels, torch.Tensor) or labels.ndim != 2:
        raise IaaaError(f"{what}: expected an (H, W) tensor, got {getattr(labels, 'shape', type(labels))}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise IaaaError(f"{what}: expected an integer label map, got dtype {labels.dtype}")
    a = labels.detach().cpu().numpy()
    if a.size and a.min() < 0:
        raise IaaaError(f"{what}: label values must be >= 0, found {int(a.min())}")
    return a


def grow_masks(labels: torch.Tensor, radius: float, metric: str = "euclidean") -> torch.Tensor:
    """Grow every instance of ``labels`` ``(H, W)`` into free (label 0) pixels by ``radius``.

    A free pixel whose distance to the nearest mask pixel is at most ``radius`` takes that
    nearest pixel's label (one distance transform, so grown masks never overlap and existing
    labels never change). ``metric="euclidean"`` grows by a disk, ``"chessboard"`` by a square
    (what :func:`iaaa.synthesis.objects.group_cells` uses, because its chains of grown pixels
    stay inside the growth). Computed with scipy on the CPU; returned on ``labels``' device.
    """
    a = _label_array(labels)
    if metric not in _METRICS:
        raise IaaaError(f"metric must be one of {_METRICS}, got {metric!r}")
    if not np.isfinite(radius) or radius < 0:
        raise IaaaError(f"radius must be a finite number >= 0, got {radius}")
    free = a == 0
    if radius == 0 or free.all() or not free.any():
        return labels.clone()
    if metric == "euclidean":
        dist, (iy, ix) = ndi.distance_transform_edt(free, return_indices=True)
    else:
        dist, (iy, ix) = ndi.distance_transform_cdt(free, metric="chessboard", return_indices=True)
    grown = np.where(free & (dist <= radius), a[iy, ix], a)
    return torch.from_numpy(grown.astype(np.int64, copy=False)).to(labels.device)


def grow_to_any(labels: np.ndarray, radius: int) -> np.ndarray:
    """``labels`` (non-negative integer host array ``(H, W)``) with every free pixel within
    Chebyshev distance ``radius`` of a cell set to the *largest* such cell's label: a square
    maximum filter as ``4 radius`` whole-array maxima of shifted views. Not the nearest cell
    (:func:`grow_masks` with ``metric="chessboard"``, a distance transform at 3-4x the cost): for
    rules that need only *some* cell within reach, such as contact groups."""
    if int(radius) != radius or radius < 0:
        raise IaaaError(f"radius must be an integer >= 0, got {radius}")
    rows = labels.copy()
    for k in range(1, min(int(radius), labels.shape[1] - 1) + 1):
        np.maximum(rows[:, k:], labels[:, :-k], out=rows[:, k:])
        np.maximum(rows[:, :-k], labels[:, k:], out=rows[:, :-k])
    grown = rows.copy()
    for k in range(1, min(int(radius), labels.shape[0] - 1) + 1):
        np.maximum(grown[k:], rows[:-k], out=grown[k:])
        np.maximum(grown[:-k], rows[k:], out=grown[:-k])
    return np.where(labels > 0, labels, grown)


# Radii the CPU path dilates with max filters (1.4-15x faster than the distance transform at
# radius 1-3 on 48-1024 px masks, slower from radius 4 on small crops: benchmarks/fit.md).
def _dilate_by_rows(a: np.ndarray, radius: int) -> np.ndarray:
    """``a`` (bool ``(h, w)``) dilated by the disk ``dy^2 + dx^2 <= radius^2``: each pixel's
    distance to the nearest set pixel *in its own row* (two running max/min passes), then row
    ``y`` is set where some row ``y + dy`` holds a set pixel within ``isqrt(radius^2 - dy^2)``.
    Integer arithmetic only, so exactly the Euclidean disk; 2r + 1 whole-array comparisons
    instead of a 2-D distance transform (6x faster on a 1024x1024 field, level on a cell crop)."""
    h, w = a.shape
    # "far" (no set pixel in the row) must stay farther than the radius from every column.
    dt = np.int16 if w + radius < 1 << 14 else np.int64
    x = np.arange(w, dtype=dt)
    far = dt(1 << 14) if dt is np.int16 else dt(1 << 40)
    left = np.maximum.accumulate(np.where(a, x, -far), axis=1)
    right = np.minimum.accumulate(np.where(a, x, far)[:, ::-1], axis=1)[:, ::-1]
    row_dist = np.minimum(x - left, right - x)
    out = row_dist <= radius
    half, within = -1, out
    for dy in range(1, min(radius, h - 1) + 1):
        if math.isqrt(radius * radius - dy * dy) != half:
            half = math.isqrt(radius * radius - dy * dy)
            within = row_dist <= half
        out[dy:] |= within[:-dy]
        out[:-dy] |= within[dy:]
    return out


def _dilate_by_shifts(a: np.ndarray, radius: int) -> np.ndarray:
    """``a`` (bool ``(h, w)``) dilated by the disk ``dy^2 + dx^2 <= radius^2`` as ORs of shifted
    copies: row ``y + dy`` contributes its mask grown sideways by ``isqrt(radius^2 - dy^2)``, and
    the sideways growth is built up one column at a time while ``dy`` falls from ``radius`` to 0.
    ``4 radius + 1`` in-place ORs of the bool array: for small radii several times cheaper than
    :func:`_dilate_by_rows`' running max/min passes (3x on a 60 px cell crop at radius 1, 26x on a
    1024 px field), slower from radius ~5 on cell crops and ~20 on fields."""
    h, w = a.shape
    out = np.zeros_like(a)
    side = a.copy()  # ``a`` grown sideways by ``k`` columns
    k = 0
    for dy in range(radius, -1, -1):
        half = math.isqrt(radius * radius - dy * dy)
        while k < half:
            k += 1
            if k < w:
                side[:, k:] |= a[:, :-k]
                side[:, :-k] |= a[:, k:]
        if dy == 0:
            out |= side
        elif dy < h:
            out[dy:] |= side[:-dy]
            out[:-dy] |= side[dy:]
    return out


def _shifts_cheaper(shape: tuple[int, int], radius: int) -> bool:
    """Whether :func:`_dilate_by_shifts` beats :func:`_dilate_by_rows` (measured crossovers:
    radius 4-6 on 24-60 px crops, 12 at 120 px, 20-22 at 200-1024 px; benchmarks/synthesis.md)."""
    return radius <= max(4, min(20, min(shape) // 10))


@dataclass(frozen=True)
class NearestCells:
    """Every pixel's nearest cell, kept to grow one image's masks later by any integer radius
    without another distance transform (fit measures the halo on every image first and grows by
    the group's width afterwards: one transform per image instead of two).

    Attributes:
        ring: ``(H, W)`` uint8, ``ceil`` of the Euclidean distance to the nearest mask pixel
            (0 on masks), saturating at 255.
        label: ``(H, W)`` the nearest mask pixel's label (uint16 where the labels fit, else int64).
    """

    ring: np.ndarray
    label: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.ring.nbytes + self.label.nbytes)

    @staticmethod
    def label_dtype(labels: torch.Tensor) -> np.dtype:
        """The type :func:`nearest_cells` stores ``labels``' nearest labels in."""
        return np.dtype(np.uint16 if int(labels.max()) <= np.iinfo(np.uint16).max else np.int64)

    @staticmethod
    def nbytes_for(labels: torch.Tensor) -> int:
        """What the table of ``labels`` will hold, before computing it."""
        return int(labels.numel()) * (1 + NearestCells.label_dtype(labels).itemsize)

    def grow(self, radius: int) -> torch.Tensor:
        """``grow_masks(labels, radius)`` (Euclidean) for an integer ``radius`` in ``[0, 254]``:
        a distance ``d`` is within the radius exactly when ``ceil(d)`` is."""
        if isinstance(radius, bool) or int(radius) != radius or not 0 <= radius <= 254:
            raise IaaaError(f"radius must be an integer in [0, 254], got {radius}")
        grown = np.where(self.ring <= int(radius), self.label, 0)
        return torch.from_numpy(grown.astype(np.int64, copy=False))


def nearest_cells(labels: torch.Tensor) -> tuple[np.ndarray, NearestCells]:
    """One Euclidean distance transform of the free pixels of ``labels`` ``(H, W)`` (which needs
    a cell and a free pixel): the distance map (float64, what :func:`halo_profile` reads) and
    the :class:`NearestCells` table that grows the masks (:meth:`NearestCells.grow`)."""
    a = _label_array(labels)
    free = a == 0
    if free.all() or not free.any():
        raise IaaaError("labels: need at least one cell and one free pixel to measure distances to cells")
    d, (iy, ix) = ndi.distance_transform_edt(free, return_indices=True)
    nearest = a[iy, ix].astype(NearestCells.label_dtype(labels), copy=False)
    ring = np.minimum(np.ceil(d), 255).astype(np.uint8)
    return d, NearestCells(ring, nearest)


@functools.lru_cache(maxsize=64)
def _disk(radius: int, device: torch.device) -> torch.Tensor:
    r = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    return ((r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius + 1e-6).to(torch.float32)[None, None]


def dilate_disk(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of an ``(h, w)`` mask by a Euclidean disk of integer ``radius`` (the
    pixels within ``radius`` of the mask), on the mask's own device. On the CPU shifted ORs for
    small radii (:func:`_dilate_by_shifts`) and row distances for large ones
    (:func:`_dilate_by_rows`), each exact and faster than a 2-D distance transform, max filters
    or the disk convolution where it is used; elsewhere one convolution with the disk. All give
    the same pixels (tests/synthesis/test_synthesis_masklevel.py)."""
    if int(radius) != radius or radius < 0:
        raise IaaaError(f"radius must be an integer >= 0, got {radius}")
    m = mask > 0
    if radius == 0:
        return m
    if m.device.type == "cpu":
        return torch.from_numpy(dilate_disk_array(m.numpy(), int(radius)))
    k = _disk(int(radius), m.device)
    y = torch.nn.functional.conv2d(m.to(torch.float32)[None, None], k, padding=int(radius))[0, 0]
    return y > 0.5


def dilate_disk_array(mask: np.ndarray, radius: int) -> np.ndarray:
    """:func:`dilate_disk` of a bool host array (what placement's bookkeeping holds anyway:
    no tensor round trip for a cell crop). Returns ``mask`` itself when there is nothing to
    grow."""
    if radius == 0 or not mask.any():
        return mask
    dilate = _dilate_by_shifts if _shifts_cheaper(mask.shape, int(radius)) else _dilate_by_rows
    return dilate(mask, int(radius))


@dataclass
class HaloProfile:
    """Mean intensity around the masks of one image, by distance (see the module docs).

    Attributes:
        distance: ``(K,)`` ring distances ``1 .. K`` in pixels.
        mean: ``(K,)`` mean intensity of each ring (float scale ``[0, 1]``; NaN for an empty ring).
        count: ``(K,)`` pixels per ring.
        far: median intensity of the far background.
        noise: robust standard deviation of the far background.
        far_distance: the distance beyond which pixels counted as far background.
    """

    distance: np.ndarray
    mean: np.ndarray
    count: np.ndarray
    far: float
    noise: float
    far_distance: float

    @property
    def deviation(self) -> np.ndarray:
        """``|mean - far|`` per ring."""
        return np.abs(self.mean - self.far)

    def width(self, rel: float = 0.1, noise: float = 0.5) -> int:
        """Halo width in pixels: ``k - 1`` for the first ring ``k`` whose deviation is within
        ``max(rel * peak, noise * sd)`` (rings ``1 .. k-1`` are the halo)."""
        dev = self.deviation
        ok = np.isfinite(dev)
        if not ok.any():
            return 0
        tol = max(rel * float(np.nanmax(dev)), noise * self.noise)
        within = np.nonzero(ok & (dev <= tol))[0]
        return int(self.distance[within[0]]) - 1 if within.size else int(self.distance[-1])


def halo_profile(image: torch.Tensor, labels: torch.Tensor, max_distance: int = 32, far: float = 32.0, distance: np.ndarray | None = None) -> HaloProfile:
    """Intensity profile outside the masks of one image (rules 1-2 of the module docs).

    Args:
        image: ``(C, H, W)`` or ``(H, W)`` image of any supported dtype.
        labels: ``(H, W)`` instance label map.
        max_distance: rings ``1 .. max_distance`` are measured.
        far: background pixels farther than this from every mask are the far background.
        distance: the free pixels' distance map of ``labels`` when the caller already has it
            (:func:`nearest_cells`); ``None`` computes it.

    Raises:
        IaaaError: shapes disagree, or the image has no cell or no background pixel.
    """
    lab = _label_array(labels)
    img = image if image.ndim == 3 else image.unsqueeze(0)
    if img.ndim != 3 or tuple(img.shape[-2:]) != lab.shape:
        raise IaaaError(f"image: shape {tuple(image.shape)} does not match labels {lab.shape}")
    if max_distance < 1:
        raise IaaaError(f"max_distance must be >= 1, got {max_distance}")
    free = lab == 0
    if free.all():
        raise IaaaError("labels: no cell in the image, so there is no halo to measure")
    if not free.any():
        raise IaaaError("labels: every pixel belongs to a cell, so there is no background to measure")
    x = to_float(img).mean(0).detach().cpu().numpy().astype(np.float64)
    if distance is not None and distance.shape != lab.shape:
        raise IaaaError(f"distance: shape {distance.shape} does not match labels {lab.shape}")
    d = ndi.distance_transform_edt(free) if distance is None else distance
    ring = np.ceil(d).astype(np.int64)  # 0 on masks, k for k-1 < d <= k
    sel = free & (ring <= max_distance)
    count = np.bincount(ring[sel], minlength=max_distance + 1)[1:]
    total = np.bincount(ring[sel], weights=x[sel], minlength=max_distance + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    far_d = float(far)
    dfree = d[free]
    if (dfree > far_d).sum() < max(64, 0.01 * dfree.size):
        far_d = float(np.percentile(dfree, 75))
    ref = x[free & (d > far_d)]
    if ref.size == 0:
        ref = x[free]
    med = float(np.median(ref))
    sd = 1.4826 * float(np.median(np.abs(ref - med)))
    if not image.dtype.is_floating_point:
        # An 8-bit background is often one grey level everywhere (MAD 0); the quantisation
        # noise of one level is the smallest deviation that can exist.
        lo, hi = dtype_range(image.dtype)
        sd = max(sd, 1.0 / ((hi - lo) * np.sqrt(12.0)))
    return HaloProfile(np.arange(1, max_distance + 1), mean, count, med, sd, far_d)


def measure_halo(
    samples: Iterable[tuple[torch.Tensor, torch.Tensor]] | Sequence,
    *,
    max_distance: int = 32,
    far: float = 32.0,
    rel: float = 0.1,
    noise: float = 0.5,
) -> tuple[int, list[int]]:
    """Halo width of a dataset: the median of the per-image widths (module docs, rules 3-5).

    Args:
        samples: ``(image, labels)`` pairs or objects unpacking to them (e.g.
            :class:`~iaaa.structures.AnnotatedImage`). Images without cells or background
            are skipped.
        rel, noise: the tolerance of rule 3.

    Returns:
        ``(width, per_image_widths)``.

    Raises:
        IaaaError: no image has both cells and background.
    """
    widths = []
    for s in samples:
        image, labels = tuple(s)[:2]
        lab = labels.detach().cpu()
        if not bool((lab > 0).any()) or not bool((lab == 0).any()):
            continue
        widths.append(halo_profile(image, labels, max_distance, far).width(rel, noise))
    if not widths:
        raise IaaaError("samples: no image has both cells and background pixels; cannot measure a halo")
    return int(round(float(np.median(widths)))), widths
