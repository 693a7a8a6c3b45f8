"""Placing cell objects on a background (paper section 2.3).

For each object, ``n`` candidate positions are drawn at random; each is scored by the mean
Euclidean distance (over channels) between the object's four corners and the background at the
corners of the object's box at that position; candidates that leave the frame or come closer than
``gap`` pixels to an already placed cell are rejected; the best remaining one wins. The object is
blended through its Gaussian-filtered mask and its *unfiltered* mask is written into the label
map with fresh ids (one per cell of an MCO). An object with no acceptable candidate is skipped
and reported, so labels never overlap.

Choices made here where the paper is loose:

* Corners: see :mod:`iaaa.synthesis.levels` (the object's surroundings per quadrant against
  the smoothed background at the box corner).
* Overlap is checked on an occupancy table of row prefix counts (see
  :class:`~iaaa.synthesis.canvas.Canvas`):
  a candidate whose box grown by ``gap`` holds no labelled pixel is free (one read per row). With
  ``collision="mask"`` a candidate whose box does hold one is then tested exactly: its
  mask grown by ``gap`` must touch no labelled pixel, so round cells can sit as close as real
  ones do (a box test keeps every pair of boxes apart, which leaves dense images short of cells).
  The default ``gap`` is the feather radius, so no feather ever reaches another cell's pixels.
* Candidates are uniform over the frame (the paper), or drawn from a ``density`` (the compositor's
  ``layout="source"``: where the background's own image had cells).
* ``feather="mask"`` is the paper's alpha (the blurred mask: the cell's own rim is half blended);
  ``feather="outside"`` keeps every mask pixel fully opaque and feathers only the surroundings.
* ``rim > 0``: objects carry their rim. The alpha covers the mask grown by a ``rim``-pixel disk
  (the cell's halo travels with it) and is feathered at that outer edge; the label map still gets
  the exact unfeathered mask. A rim never paints over another cell's pixels (its alpha is zero
  on every labelled pixel that is not its own), so image and labels stay consistent.

* ``contacts="data"``: objects are placed against existing cells, masks adjacent with no pixel
  shared, as often as the data's touching share needs (:mod:`iaaa.synthesis.contacts`);
  ``level_match`` shifts an object's ring to the destination's level, ``level_reject`` refuses
  destinations far outside the group's background level (walls, debris bands).

Placement bookkeeping (boxes, occupancy table, label map) runs in NumPy on the host: it is a few
small arrays per object; the pixel work (feathering, blending) runs in torch on the background's
device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import torch

from iaaa.errors import IaaaError
from iaaa.filters import feather_radius
from iaaa.structures import CellObject, PastedWindows, check_labels, from_float, to_float
from iaaa.synthesis.canvas import Canvas, grown_runs
from iaaa.synthesis.checks import bounded, check, validate
from iaaa.synthesis.contacts import ContactAnchors, TouchingShare
from iaaa.synthesis.footprints import Footprints, footprints
from iaaa.synthesis.levels import corner_scores, level_map, level_ok, match_ring
from iaaa.synthesis.layout import candidate_positions

__all__ = [
    "FEATHERS", "COLLISIONS", "CONTACTS", "PlacementConfig", "PlacementResult", "PastedWindows", "place", "place_objects",
]

FEATHERS: tuple[str, ...] = ("mask", "outside")
COLLISIONS: tuple[str, ...] = ("box", "mask")
CONTACTS: tuple[str, ...] = ("off", "data")


@dataclass(frozen=True)
class PlacementConfig:
    """How objects are placed and blended (validated once, here); see :func:`place_objects`.

    Attributes:
        n_candidates: random positions scored per object and round.
        rounds: if every candidate of a round collides with placed cells or the frame, a fresh
            round of ``n_candidates`` is tried, up to ``rounds`` (1 is the paper).
        gap: minimum free pixels between an object's box and any placed cell (``None``: the
            feather radius, so feathers never touch another cell).
        border: minimum distance (pixels) between an object's box and the frame.
        sigma: Gaussian sigma of the feather of pasted objects (``0``: hard paste).
        truncate: the feather's kernel reaches ``truncate * sigma`` pixels.
        feather: ``"mask"`` (paper) or ``"outside"`` (see module docs).
        match_sigma: smoothing of the background for corner scores (0: raw pixels, the paper).
        collision: ``"box"`` (default): a position is free when the object's box grown by
            ``gap`` holds no labelled pixel; ``"mask"``: when its mask grown by ``gap`` touches
            none, so round cells pack as closely as real ones (slower for large objects).
        contacts: ``"off"`` (default: every object keeps ``gap`` from every cell) or ``"data"``:
            objects are placed against an existing or already pasted cell (masks adjacent, no
            pixel shared) with the probability that brings the image's share of touching cells
            to the share ``fit`` measured in the group (:mod:`iaaa.synthesis.contacts`).
        contact_reach: pixels within which two masks count as touching, when ``fit`` measures
            the data and when placement tracks the image being built (1: 8-adjacent).
        level_match: shift the context ring an object carries (its pixels outside the mask) by
            the difference between the destination's smoothed level there and the ring's own
            mean level, so the rim meets the local background (labels unchanged).
        level_reject: ``None`` (default: off) or a robust z-score: candidates whose corner
            levels lie farther than this many robust standard deviations (1.4826 MAD) from the
            median background level of the group (measured by ``fit``) are refused, so objects
            are not pasted onto channel walls or debris bands.

    The rim an object carries is not a choice here but the halo measured from the data (the
    compositor's ``rim`` switch, its value kept in the fitted group pool); :func:`place_objects`
    takes it as an argument.
    """

    n_candidates: int = bounded(32, 1, 4096)
    rounds: int = bounded(4, 1, 64)
    gap: int | None = bounded(None, 0, 1024)
    border: int = bounded(0, 0, 4096)
    sigma: float = bounded(1.0, 0.0, 50.0)
    truncate: float = bounded(3.0, 0.5, 10.0)
    feather: Literal["mask", "outside"] = "mask"
    match_sigma: float = bounded(2.0, 0.0, 50.0)
    collision: Literal["box", "mask"] = "box"
    contacts: Literal["off", "data"] = "off"
    contact_reach: int = bounded(1, 1, 8)
    level_match: bool = False
    level_reject: float | None = bounded(None, 0.5, 100.0)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def radius(self) -> int:
        """The feather radius: pixels farther than this from every pasted cell's mask grown by
        its rim are untouched."""
        return feather_radius(self.sigma, self.truncate)

    @property
    def min_gap(self) -> int:
        """``gap``, or the feather radius when it is ``None``."""
        return self.radius if self.gap is None else int(self.gap)


@dataclass
class PlacementResult:
    """What :func:`place_objects` did.

    Attributes:
        image: ``(C, H, W)`` composite, dtype of the background.
        labels: ``(H, W)`` int64 label map (existing ids kept, new ids after them).
        boxes: ``(P, 4)`` int64 XYXY (inclusive) of each placed object's mask in the output.
        placed: ``(P,)`` index into ``objects`` of each placed object, in placement order.
        skipped: ``(S,)`` indices of objects that found no free position (or had an empty mask).
        scores: ``(P,)`` corner distance of each chosen position (lower = better match).
        new_ids: ``(N,)`` label values written, in order.
        instance_object: ``(N,)`` index into ``objects`` of each new instance.
        class_ids: ``(N,)`` class id of each new instance (from the object; 1 if it had none).
    """

    image: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    placed: torch.Tensor
    skipped: torch.Tensor
    scores: torch.Tensor
    new_ids: torch.Tensor
    instance_object: torch.Tensor
    class_ids: torch.Tensor

    def windows(self) -> "PastedWindows":
        """Each new instance's id and the box of the object that holds it."""
        # On the host in NumPy: a handful of tiny arrays, where each torch call would cost more.
        placed = self.placed.cpu().numpy()
        pos = np.zeros(int(placed.max()) + 1 if placed.size else 0, dtype=np.int64)
        pos[placed] = np.arange(placed.size)
        boxes = self.boxes.cpu().numpy()[pos[self.instance_object.cpu().numpy()]].reshape(-1, 4)
        return PastedWindows(self.new_ids, torch.from_numpy(boxes))


def place(
    canvas: Canvas,
    images: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    class_ids: Sequence[np.ndarray | None],
    config: PlacementConfig,
    generator: torch.Generator,
    density: tuple[np.ndarray, int] | None = None,
    *,
    rim: int = 0,
    touch_share: float | None = None,
    level_range: tuple[np.ndarray, np.ndarray] | None = None,
    guard: bool = False,
) -> PlacementResult:
    """Place float objects ``images[k]`` ``(C, h, w)`` with int64 label crops ``labels[k]`` on
    the canvas, in order (``config.gap`` and ``config.border`` are the canvas's): the kernel of
    :func:`place_objects`, which the compositor calls on its own canvas. ``density``:
    ``(grid, step)``, the weight of each ``step`` x ``step`` block for an object's centre
    (``None``: uniform over the frame); ``rim``: see :func:`place_objects`. ``touch_share``:
    the share of touching cells to reach with ``config.contacts="data"`` (``None``: contacts
    off); ``level_range``: ``(median, scale)`` per channel of the background level, what
    ``config.level_reject`` measures against (``None``: no rejection); ``guard``: keep the
    feather off every other cell's pixels even without a rim (objects pasted on top of cells,
    whose neighbours keep their labels). The result's ``image`` is the canvas's float composite."""
    k = len(images)
    # All randomness of this call is drawn first, before any data-dependent branch, so the
    # stream consumed is always (k, rounds * n, 2) uniforms: results depend only on the generator.
    n = config.n_candidates
    u = torch.rand((k, config.rounds * n, 2), generator=generator, device=generator.device, dtype=torch.float64).cpu().numpy()
    contacts = touch_share is not None and config.contacts == "data"
    # Contacts draw their own uniforms after the others (one decision + n anchors per object),
    # so with contacts off the stream is exactly the one above.
    uc = torch.rand((k, 1 + n), generator=generator, device=generator.device, dtype=torch.float64).cpu().numpy() if contacts else None
    d = footprints(images, labels, config.sigma, config.truncate, config.feather, rim, canvas.level.shape[0])
    reject = (level_range, float(config.level_reject)) if level_range is not None and config.level_reject is not None else None
    xs, ys, scores, fits, allowed = _score(canvas, d, u, density, reject)
    result = _Placed()
    tracker = TouchingShare(canvas, d.labs, d.th, d.tw, float(touch_share), config.contact_reach) if contacts else None
    for j in range(k):
        pos = None
        if tracker is not None and fits[j] and uc[j, 0] < tracker.probability(j):
            pos = _choose_contact(canvas, tracker.anchors, d, j, uc[j, 1:], reject)
        if pos is None:
            best = _choose(canvas, d, j, xs, ys, scores, fits, config, allowed) if fits[j] else -1
            if best >= 0:
                pos = (int(xs[j, best]), int(ys[j, best]), float(scores[j, best]))
        if pos is None:
            result.skipped.append(j)
            if tracker is not None:
                tracker.skip(j)
            continue
        _write_labels(canvas, d, j, pos[0], pos[1], class_ids[j], pos[2], result)
        if tracker is not None:
            tracker.placed(j, pos[0], pos[1])
    _blend(canvas, d, result.pastes, rim, config.level_match, contacts or guard)
    return PlacementResult(
        image=canvas.out,
        labels=torch.from_numpy(canvas.labels),
        boxes=torch.tensor(result.boxes, dtype=torch.int64).reshape(-1, 4),
        placed=torch.tensor(result.placed, dtype=torch.int64),
        skipped=torch.tensor(result.skipped, dtype=torch.int64),
        scores=torch.tensor(result.scores, dtype=torch.float32),
        new_ids=torch.tensor(result.new_ids, dtype=torch.int64),
        instance_object=torch.tensor(result.inst_obj, dtype=torch.int64),
        class_ids=torch.tensor(result.inst_cls, dtype=torch.int64),
    )


def _score(
    canvas: Canvas, d: Footprints, u: np.ndarray, density: tuple[np.ndarray, int] | None, reject: tuple | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Phase 2: every candidate position of every object and its corner score, in one gather.
    Returns ``(xs, ys, scores, fits, allowed)``; ``fits[j]`` is false for an object larger than
    the frame; ``allowed`` (``None`` without ``reject``) is false where the destination's level
    lies outside the group's background distribution (:func:`_level_ok`)."""
    H, W, b = canvas.h, canvas.w, canvas.border
    th, tw = d.th, d.tw
    span_x = W - tw - 2 * b + 1
    span_y = H - th - 2 * b + 1
    fits = (th > 0) & (span_x >= 1) & (span_y >= 1)
    xs, ys = candidate_positions(u, th, tw, span_y, span_x, b, density)
    x1s = np.minimum(xs + (tw[:, None] - 1), W - 1)
    y1s = np.minimum(ys + (th[:, None] - 1), H - 1)
    x0s, y0s = np.minimum(xs, W - 1), np.minimum(ys, H - 1)
    cx = np.stack([x0s, x1s, x0s, x1s], -1)
    cy = np.stack([y0s, y0s, y1s, y1s], -1)
    at = canvas.level[:, cy, cx]  # (C, k, n, 4)
    diff = at - d.desc.transpose(2, 0, 1)[:, :, None, :]
    scores = np.sqrt((diff * diff).sum(0)).mean(-1)  # (k, n)
    return xs, ys, scores, fits, (level_ok(at, reject) if reject is not None else None)


def _choose_contact(
    canvas: Canvas, anchors: ContactAnchors, d: Footprints, j: int, u: np.ndarray, reject: tuple | None,
) -> tuple[int, int, float] | None:
    """Object ``j`` against a cell (:func:`~iaaa.synthesis.contacts.contact_candidates`, from the
    canvas's kept ``anchors``): the best-scoring touching position, or ``None`` when no
    candidate touches in the frame."""
    runs = grown_runs(d.labs[j], d.tights[j], 0)
    xs, ys, ok = anchors.candidates(u, int(d.th[j]), int(d.tw[j]), canvas.border, lambda x, y: canvas.overlaps(x, y, runs))
    if not ok.any():
        return None
    xs, ys = xs[ok], ys[ok]
    scores, allowed = corner_scores(canvas.level, d.desc[j], int(d.th[j]), int(d.tw[j]), xs, ys, reject)
    if not allowed.any():
        return None
    best = int(np.where(allowed, scores, np.inf).argmin())
    return int(xs[best]), int(ys[best]), float(scores[best])


def _choose(
    canvas: Canvas, d: Footprints, j: int, xs: np.ndarray, ys: np.ndarray, scores: np.ndarray, fits: np.ndarray, config: PlacementConfig,
    allowed: np.ndarray | None = None,
) -> int:
    """Phase 3: the best free candidate of object ``j`` (index into its candidates), or -1.

    The best free candidate of the first round that has one: a fresh round only when every
    candidate so far collides, so matching is never traded for a free spot."""
    n = config.n_candidates
    h_j, w_j = int(d.th[j]), int(d.tw[j])
    runs = None  # the grown mask, built on first need
    for r0 in range(0, config.rounds * n, n):
        cx, cy = xs[j, r0 : r0 + n], ys[j, r0 : r0 + n]
        busy = canvas.occupied(cx, cy, h_j, w_j) > 0
        if config.collision == "mask" and busy.any():
            # The box test is exact for "free"; boxes that hit something get the exact test of
            # the grown mask, so round cells can pack as closely as real ones.
            if runs is None:
                runs = grown_runs(d.labs[j], d.tights[j], canvas.gap)
            idx = np.flatnonzero(busy)
            busy[idx] = canvas.overlaps(cx[idx], cy[idx], runs)
        free = ~busy
        if allowed is not None:
            free &= allowed[j, r0 : r0 + n]
        if free.any():
            return r0 + int(np.where(free, scores[j, r0 : r0 + n], np.inf).argmin())
    return -1


@dataclass
class _Placed:
    """What the label phase recorded, in placement order."""

    placed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    new_ids: list[int] = field(default_factory=list)
    inst_obj: list[int] = field(default_factory=list)
    inst_cls: list[int] = field(default_factory=list)
    pastes: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    """``(object, x offset, y offset, first id, ids)`` of each paste, for the blend."""


def _write_labels(canvas: Canvas, d: Footprints, j: int, x: int, y: int, cls: np.ndarray | None, score: float, out: _Placed) -> None:
    """Phase 4: write object ``j``'s unfeathered mask at ``(x, y)`` with fresh ids and book it."""
    h_j, w_j = int(d.th[j]), int(d.tw[j])
    y0t, y1t, x0t, x1t = d.tights[j]
    lab_t = d.labs[j][y0t : y1t + 1, x0t : x1t + 1]
    try:
        first, present = canvas.write_labels(lab_t, y, x, None if cls is None else len(cls))
    except IaaaError as e:
        raise IaaaError(f"objects[{j}]: {e}; a per-object policy must keep the object's cell ids 1..k") from None
    out.new_ids.extend(range(first, first + len(present)))
    out.inst_obj.extend([j] * len(present))
    out.inst_cls.extend(cls[present - 1].tolist() if cls is not None else [1] * len(present))
    out.placed.append(j)
    out.boxes.append((x, y, x + w_j - 1, y + h_j - 1))
    out.scores.append(score)
    out.pastes.append((j, x - x0t, y - y0t, first, len(present)))


def _blend(
    canvas: Canvas, d: Footprints, pastes: list[tuple[int, int, int, int, int]], rim: int, level_match: bool = False, guard: bool = False,
) -> None:
    """Phase 5: blend every placed object into ``canvas.out`` through its alpha (it reaches
    ``d.reach`` beyond the mask's tight box). ``level_match``: shift the object's ring
    (its pixels outside the mask) to the destination's level; ``guard``: keep the alpha off
    other cells' pixels even without a rim (objects placed against a cell)."""
    H, W, r = canvas.h, canvas.w, d.reach
    out = canvas.out
    # On the CPU the alpha is cut and guarded on its host view: the same float32 products, without
    # torch's per-call cost on these small crops (a few us each, a dozen objects per image).
    host = out.device.type == "cpu"
    for j, ox, oy, first, n_new in pastes:
        # Only the mask's box grown by the rim and the feather radius can have alpha > 0.
        y0t, y1t, x0t, x1t = d.tights[j]
        h_c, w_c = d.labs[j].shape
        sy0, sy1 = max(y0t - r, 0, -oy), min(y1t + r + 1, h_c, H - oy)
        sx0, sx1 = max(x0t - r, 0, -ox), min(x1t + r + 1, w_c, W - ox)
        alpha = d.host_alphas[j][sy0:sy1, sx0:sx1] if host else d.alphas[j][sy0:sy1, sx0:sx1]
        src = d.images[j][:, sy0:sy1, sx0:sx1]
        if level_match:
            src = match_ring(src, torch.from_numpy(alpha) if host else alpha, d.labs[j][sy0:sy1, sx0:sx1], canvas.level[:, oy + sy0 : oy + sy1, ox + sx0 : ox + sx1])
        if rim or guard:
            # The rim never covers another cell: alpha 0 on labelled pixels that are not its own.
            lw = canvas.labels[oy + sy0 : oy + sy1, ox + sx0 : ox + sx1]
            mine = (lw == 0) | ((lw >= first) & (lw < first + n_new))
            alpha = alpha * mine if host else alpha * torch.from_numpy(mine).to(alpha.device)
        out[:, oy + sy0 : oy + sy1, ox + sx0 : ox + sx1].lerp_(src, torch.from_numpy(alpha) if host else alpha)


def _as_object(obj: Any, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    if isinstance(obj, CellObject):
        return obj.image, obj.labels, obj.class_ids
    if isinstance(obj, (tuple, list)) and len(obj) in (2, 3):
        return obj[0], obj[1], (torch.as_tensor(obj[2]) if len(obj) == 3 and obj[2] is not None else None)
    raise TypeError(f"objects[{i}]: expected a CellObject or an (image, labels) pair, got {type(obj).__name__}")


def place_objects(
    background: torch.Tensor,
    objects: Sequence[Any],
    config: PlacementConfig | None = None,
    *,
    labels: torch.Tensor | None = None,
    rim: int = 0,
    density: torch.Tensor | np.ndarray | None = None,
    generator: torch.Generator | None = None,
    touch_share: float | None = None,
    level_range: tuple[np.ndarray, np.ndarray] | None = None,
) -> PlacementResult:
    """Place ``objects`` one after another on ``background`` (see module docs).

    Args:
        background: ``(C, H, W)`` uint8, uint16 or float image; the output keeps its dtype.
        objects: :class:`~iaaa.structures.CellObject` s or ``(image, labels[, class_ids])``
            tuples; ``labels`` ``(h, w)`` with cells ``1..k`` (0 = surroundings); images in any
            dtype with the background's channel count. Placed in the given order.
        config: how (:class:`PlacementConfig`; ``None``: its defaults).
        labels: optional existing label map of the background; its cells are kept and avoided.
        rim: objects carry this many pixels of their surroundings around the mask (their halo;
            see module docs); 0: the mask alone.
        density: optional ``(H, W)`` non-negative weights: candidate positions for an object's
            centre are drawn in proportion to them (``None``: uniform over the frame).
        generator: the only source of randomness (``None``: a generator seeded 0).
        touch_share: with ``config.contacts="data"``, the share of touching cells to reach
            (measured data, e.g. :attr:`~iaaa.synthesis.contacts.ContactStats.touching_share`);
            ``None``: contacts off.
        level_range: ``(median, scale)``, each ``(C,)``, of the background level that
            ``config.level_reject`` measures candidates against (``None``: no rejection).
    """
    config = PlacementConfig() if config is None else config
    if not isinstance(config, PlacementConfig):
        raise IaaaError(f"config: expected a PlacementConfig, got {type(config).__name__}")
    check(isinstance(rim, int) and not isinstance(rim, bool) and 0 <= rim <= 256, "rim", "must be an integer in [0, 256]", rim)
    bg = background if background.ndim == 3 else background.unsqueeze(0)
    if bg.ndim != 3:
        raise IaaaError(f"background: expected (C, H, W) or (H, W), got shape {tuple(background.shape)}")
    c, h, w = bg.shape
    lab0 = None
    if labels is not None:
        lab0t = check_labels(labels)
        if tuple(lab0t.shape) != (h, w):
            raise IaaaError(f"labels: shape {tuple(lab0t.shape)} does not match background size {(h, w)}")
        lab0 = lab0t.cpu().numpy().copy()
    imgs, labs, clss = [], [], []
    for i, o in enumerate(objects):
        im, lb, cl = _as_object(o, i)
        im = im if im.ndim == 3 else im.unsqueeze(0)
        lb = check_labels(lb, f"objects[{i}].labels")
        if im.ndim != 3 or tuple(im.shape[-2:]) != tuple(lb.shape):
            raise IaaaError(f"objects[{i}]: image {tuple(im.shape)} and labels {tuple(lb.shape)} must be (C, h, w) and (h, w)")
        if im.shape[0] != c:
            raise IaaaError(f"objects[{i}]: {im.shape[0]} channels, background has {c}")
        imgs.append(to_float(im).to(bg.device))
        labs.append(lb.to(bg.device))
        clss.append(None if cl is None else cl.reshape(-1).cpu().numpy())
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    grid = None
    if density is not None:
        d = torch.as_tensor(density, dtype=torch.float64).cpu()
        if tuple(d.shape) != (h, w):
            raise IaaaError(f"density: shape {tuple(d.shape)} does not match background size {(h, w)}")
        if not bool(torch.isfinite(d).all()) or bool((d < 0).any()) or float(d.sum()) <= 0:
            raise IaaaError("density: weights must be finite, >= 0 and not all 0")
        grid = (d.numpy(), 1)
    canvas = Canvas(to_float(bg).clone(), level_map(bg, config.match_sigma), lab0, config.min_gap, config.border)
    if touch_share is not None:
        check(isinstance(touch_share, (int, float)) and 0.0 <= float(touch_share) <= 1.0, "touch_share", "must be a number in [0, 1]", touch_share)
    if level_range is not None:
        lr = tuple(np.asarray(v, dtype=np.float32).reshape(-1) for v in level_range)
        check(len(lr) == 2 and lr[0].size == c and lr[1].size == c and bool(np.isfinite(np.concatenate(lr)).all()), "level_range", f"must be (median, scale) of {c} finite values each", level_range)
        level_range = lr
    result = place(canvas, imgs, labs, clss, config, generator, grid, rim=rim, touch_share=touch_share, level_range=level_range)
    result.image = from_float(result.image, bg.dtype, inplace=True)  # the canvas's own copy
    result.labels = result.labels.to(bg.device)
    return result
