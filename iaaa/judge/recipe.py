"""The judge's training recipe: every option of a run in one frozen, validated, JSON-round-tripping
object, recorded in the report.

Bounds are the library's, so every entry point (``judge()``, ``iaaa judge``, the benchmark) gets
them before any training starts. A :class:`RecipeError` names the field (``.field``) so a
command line can name its own flag instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

import torch

from iaaa.errors import IaaaError

__all__ = ["Recipe", "RecipeError", "PROTOCOLS", "PASTE_SCALES", "ADDED_FIELDS", "WHOLE_IMAGE", "check_device", "parse_paste_context"]

PROTOCOLS = ("add", "mix", "online")
# Recipe fields added after reports were first written, with the value every run made before
# the field existed had (JSON form): what a part without the field is merged as, whatever the
# field's default is now.
ADDED_FIELDS = {"aug_scale": [0.5, 2.0], "aug_photometric": 1.0, "paste_context": 1.0, "paste_scale": "working"}
Protocol = Literal["add", "mix", "online"]
PASTE_SCALES = ("native", "working")
WHOLE_IMAGE = "image"
"""``Recipe.paste_context`` value for pasting into the whole real image around a crop."""


class RecipeError(IaaaError):
    """A recipe field out of bounds; ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def _bad_paste_context(value: Any) -> RecipeError:
    return RecipeError("paste_context", f"must be {WHOLE_IMAGE!r} or a number of crop sides in [1, 16], got {value!r}")


def parse_paste_context(text: str) -> float | str:
    """A command line's ``paste_context``: ``"image"`` or a number (bounds are checked by
    :class:`Recipe`)."""
    if text.strip().lower() == WHOLE_IMAGE:
        return WHOLE_IMAGE
    try:
        return float(text)
    except ValueError:
        raise _bad_paste_context(text) from None


def check_device(device: str | torch.device, field: str = "device") -> torch.device:
    """``torch.device(device)`` if it names a device this machine has, else a :class:`RecipeError`."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise RecipeError(field, f"{device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RecipeError(field, f"{device!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RecipeError(field, f"{device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise RecipeError(field, f"{device!r}: the judge runs on cpu or cuda")
    return dev


def _int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecipeError(name, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise RecipeError(name, f"must be in [{lo}, {hi}], got {value}")


def _float(name: str, value: Any, lo: float, hi: float, lo_open: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecipeError(name, f"must be a finite number, got {value!r}")
    if (value <= lo if lo_open else value < lo) or value > hi:
        raise RecipeError(name, f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {value:g}")


@dataclass(frozen=True)
class Recipe:
    """How every run of a judgement trains and scores (defaults: benchmarks/downstream.md).

    Attributes:
        protocol: how synthetic data enters a step. ``"add"``: every step holds the
            ``batch_size`` real crops real-only holds plus ``round(ratio * batch_size)``
            synthetic crops; ``"mix"``: ``round(batch_size * ratio / (1 + ratio))`` of the real
            crops are replaced by synthetic ones; ``"online"``: each real crop is replaced, with
            probability ``p``, by itself with cells of a synthetic (or, for ``naive``, another
            real) crop pasted in.
        ratio: synthetic:real crops per step (``add`` / ``mix``).
        p: probability of the online paste per real crop (``online``).
        steps, batch_size, crop, lr: Adam steps (cosine decay to 0), real crops per step, crop
            side in working-scale pixels, learning rate.
        width, depth: the U-Net's first-level channels and number of poolings.
        scale: working resolution relative to the images; scores stay at native resolution.
        boundary: boundary class width in working-scale pixels.
        pool_size: synthetic images per (fold, seed) drawn from a sampler.
        min_area: predicted instances under this many native pixels are dropped; ``"auto"``: a
            quarter of the 1st percentile of the training cells' areas.
        seeds: one run per seed, fold and arm, paired across arms.
        train_limit: train on ``train_limit`` of the training images (``None``: all of them).
        folds: how many different subsets of ``train_limit`` images (rotating through the
            training images; disjoint where there are enough, never the same twice:
            :func:`~iaaa.judge.regimes.fold_subsets`).
        only_folds: train only these folds of the regime (``None``: all). A regime split over
            processes this way is put back together with :meth:`JudgeReport.merge`; the fold
            subsets are the same in every part, since they depend on ``train_limit`` and
            ``folds`` only.
        curve: evaluation points of the learning curve, as fractions of ``steps`` (measured on
            the test images for the record only: the model of the last step is always the one
            scored, no checkpoint is selected).
        device: ``"cpu"`` or ``"cuda[:i]"``.
        aug_scale: ``(low, high)`` zoom range of the standard augmentation of the ``aug`` and
            ``+aug`` arms (drawn log-uniformly per crop). The default 0.5-2x is what a user of
            mixed-magnification data sets up; a user of one magnification may choose a milder
            range such as 0.8-1.25x (on usiigaci it scored the same: benchmarks/downstream.md).
        aug_photometric: strength of the standard augmentation's photometric part (brightness,
            contrast, gamma, blur, noise) relative to its default ranges: ``0`` turns it off
            (geometry only), ``1`` is the default, up to ``4`` widens it
            (:meth:`~iaaa.judge.AugmentConfig.with_photometric_strength`).
        paste_context: where an ``iaaa-online`` arm's ``PasteCells`` pastes, under ``add`` and
            ``mix``, before the crop (and its augmentation) is cut from the pasted image, as a
            pipeline that pastes into the images it loads before its random crop does:
            ``"image"`` (default) into the whole real image the crop comes from; a number ``F``
            (1-16) into a window of it ``F`` times the crop's side around the crop, ``1`` into
            the crop itself (the judge until 2026-12-05: records without the field ran so; the
            default was 2 until the whole image was judged better for the default
            ``PasteConfig``, benchmarks/downstream.md). A count taken from the data
            (``paste_count="data"``) scales with the window. No other arm reads it.
        paste_scale: the resolution an ``iaaa-online`` arm pastes at, under ``add`` and ``mix``
            with a working ``scale`` other than 1: ``"native"`` (default) fits its compositor on
            the normalised training images at their own resolution, pastes into the window there
            and resizes the pasted region into the working-scale image as :func:`prepare
            <iaaa.judge.train_data.prepare>` resizes whole images, as a user's pipeline pastes
            into the images it loads before any resize (and as ``iaaa synth`` output is made);
            ``"working"`` fits and pastes at the working scale (the judge until 2026-12-05:
            records without the field ran so). Under ``online``, at scale 1 and for every other
            arm the two are the same.
    """

    protocol: Protocol = "add"
    ratio: float = 1.0
    p: float = 0.5
    steps: int = 1500
    batch_size: int = 8
    crop: int = 96
    lr: float = 2e-3
    width: int = 8
    depth: int = 3
    scale: float = 1.0
    boundary: int = 1
    pool_size: int = 32
    min_area: int | str = "auto"
    seeds: tuple[int, ...] = (0, 1, 2)
    train_limit: int | None = None
    folds: int = 1
    only_folds: tuple[int, ...] | None = None
    curve: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    device: str = "cpu"
    aug_scale: tuple[float, float] = (0.5, 2.0)
    aug_photometric: float = 1.0
    paste_context: float | Literal["image"] = WHOLE_IMAGE
    paste_scale: Literal["native", "working"] = "native"

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "aug_scale", tuple(self.aug_scale))
        object.__setattr__(self, "curve", tuple(self.curve))
        if self.only_folds is not None:
            object.__setattr__(self, "only_folds", tuple(self.only_folds))
        object.__setattr__(self, "device", str(self.device))
        if self.protocol not in PROTOCOLS:
            raise RecipeError("protocol", f"must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        _float("ratio", self.ratio, 0.0, 16.0)
        _float("p", self.p, 0.0, 1.0)
        _int("steps", self.steps, 1, 10_000_000)
        _int("batch_size", self.batch_size, 2 if self.protocol == "mix" else 1, 1024)
        _int("crop", self.crop, 8, 2048)
        _float("lr", self.lr, 0.0, 1.0)
        _int("width", self.width, 1, 256)
        _int("depth", self.depth, 1, 8)
        _float("scale", self.scale, 0.05, 4.0)
        _int("boundary", self.boundary, 1, 64)
        _int("pool_size", self.pool_size, 1, 4096)
        if self.min_area != "auto":
            _int("min_area", self.min_area, 0, 100_000_000)
        if not self.seeds:
            raise RecipeError("seeds", "give at least one seed")
        for s in self.seeds:
            _int("seeds", s, 0, 2**63 - 1)
        if len(set(self.seeds)) != len(self.seeds):
            raise RecipeError("seeds", f"repeated seed in {list(self.seeds)}")
        if self.train_limit is not None:
            _int("train_limit", self.train_limit, 1, 1_000_000)
        _int("folds", self.folds, 1, 1000)
        if self.folds > 1 and self.train_limit is None:
            raise RecipeError("folds", f"{self.folds} folds need a train_limit (with all images every fold is the same)")
        if self.only_folds is not None:
            if not self.only_folds:
                raise RecipeError("only_folds", "give at least one fold (or None for all)")
            for k in self.only_folds:
                _int("only_folds", k, 0, self.folds - 1)
            if len(set(self.only_folds)) != len(self.only_folds):
                raise RecipeError("only_folds", f"repeated fold in {list(self.only_folds)}")
        if not self.curve or any(not (isinstance(c, (int, float)) and 0 < c <= 1) for c in self.curve) or list(self.curve) != sorted(set(self.curve)):
            raise RecipeError("curve", f"must be increasing fractions in (0, 1], got {list(self.curve)}")
        if self.curve[-1] != 1.0:
            raise RecipeError("curve", f"must end at 1.0 (the scored model), got {list(self.curve)}")
        check_device(self.device)
        lo_hi = self.aug_scale
        if len(lo_hi) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in lo_hi) \
                or not 0.05 <= lo_hi[0] <= lo_hi[1] <= 20.0:
            raise RecipeError("aug_scale", f"must be (low, high) with 0.05 <= low <= high <= 20, got {list(lo_hi)}")
        _float("aug_photometric", self.aug_photometric, 0.0, 4.0, lo_open=False)
        if self.paste_context != WHOLE_IMAGE:
            if isinstance(self.paste_context, str):
                raise _bad_paste_context(self.paste_context)
            _float("paste_context", self.paste_context, 1.0, 16.0, lo_open=False)
        if self.paste_scale not in PASTE_SCALES:
            raise RecipeError("paste_scale", f"must be one of {', '.join(PASTE_SCALES)}, got {self.paste_scale!r}")

    @property
    def pastes_around_crops(self) -> bool:
        """Whether online arms paste into more of the real image than the crop
        (``paste_context``)."""
        return self.paste_context == WHOLE_IMAGE or self.paste_context > 1

    @property
    def pastes_native(self) -> bool:
        """Whether online arms fit and paste at the images' own resolution (``paste_scale``)."""
        return self.paste_scale == "native" and self.scale != 1.0 and self.protocol != "online"

    @property
    def n_synthetic(self) -> int:
        """Synthetic crops per step under ``add`` / ``mix`` (0 under ``online``)."""
        if self.protocol == "add":
            return max(1, round(self.ratio * self.batch_size))
        if self.protocol == "mix":
            return min(self.batch_size - 1, max(1, round(self.batch_size * self.ratio / (1 + self.ratio))))
        return 0

    def curve_steps(self) -> list[int]:
        """The steps after which the learning curve is measured (the last one is ``steps``)."""
        return sorted({max(1, round(c * self.steps)) for c in self.curve})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"], d["curve"], d["aug_scale"] = list(self.seeds), list(self.curve), list(self.aug_scale)
        d["only_folds"] = None if self.only_folds is None else list(self.only_folds)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        """The recipe of :meth:`to_dict` (unknown fields refused, so a typo is not ignored)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RecipeError(unknown[0], f"not a recipe field (fields: {', '.join(sorted(names))})")
        return cls(**dict(data))
