"""The paper's evaluation protocol: real vs synthetic at three levels, one table.

Levels (sections 3.4-3.6 of the paper):

* ``"sco"``: crops of single-cell objects, fitted into ``crop_size`` squares (aspect kept);
* ``"mco"``: crops of multi-cell objects (touching cells), the same way;
* ``"image"``: whole images cut into non-overlapping ``tile`` x ``tile`` tiles (128 px as the
  paper's figures; remainders at the right/bottom edge are dropped, images smaller than a tile
  become one tile fitted to it), or with ``tile=None`` whole images fitted into ``image_size``.

Objects come from :func:`iaaa.synthesis.objects.extract_objects` unless lists of
:class:`~iaaa.structures.CellObject` are given. Every metric of every level is seeded from
``seed`` afresh, so a level's numbers do not depend on which other levels or metrics ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from iaaa.metrics.features import PyramidStatsFeatures, compute_features, fit_to_size, standardize
from iaaa.metrics.fid import FIDInfinityResult, fid, fid_infinity
from iaaa.metrics.kid import KIDResult, kid
from iaaa.metrics.swd import SWDResult, swd
from iaaa.structures import CellObject, as_annotated, dtype_range
from iaaa.errors import IaaaError

__all__ = ["LEVELS", "METRICS", "LevelReport", "FidelityReport", "evaluate_fidelity", "SIZE_BOUNDS", "level_images", "image_tiles", "resolve_value_range"]

LEVELS = ("sco", "mco", "image")
METRICS = ("kid", "swd", "fid", "fid_inf")


@dataclass
class LevelReport:
    """Numbers for one level; a metric that was not asked for (or could not run) is ``None``
    and ``note`` says why a level or metric was skipped."""

    level: str
    n_real: int
    n_synthetic: int
    kid: KIDResult | None = None
    swd: SWDResult | None = None
    fid: float | None = None
    fid_inf: FIDInfinityResult | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "n_real": self.n_real,
            "n_synthetic": self.n_synthetic,
            "kid": None if self.kid is None else self.kid.to_dict(),
            "swd": None if self.swd is None else self.swd.to_dict(),
            "fid": self.fid,
            "fid_inf": None if self.fid_inf is None else self.fid_inf.to_dict(),
            "note": self.note,
        }


@dataclass
class FidelityReport:
    """The result table of :func:`evaluate_fidelity` plus the settings that produced it."""

    levels: list[LevelReport]
    settings: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, level: str) -> LevelReport:
        for row in self.levels:
            if row.level == level:
                return row
        raise KeyError(f"level {level!r} not in report (have {[r.level for r in self.levels]})")

    def to_dict(self) -> dict[str, Any]:
        return {"levels": [r.to_dict() for r in self.levels], "settings": dict(self.settings)}

    def table(self) -> str:
        """A plain-text table (also valid Markdown)."""
        metrics = [m for m in METRICS if m in self.settings.get("metrics", METRICS)]
        head = ["level", "n real", "n synth"] + [{"kid": "KID (mean ± std)", "swd": "SWD", "fid": "FID", "fid_inf": "FID∞"}[m] for m in metrics]
        rows = [head]
        for r in self.levels:
            cells = [r.level, str(r.n_real), str(r.n_synthetic)]
            for m in metrics:
                v = getattr(r, m)
                if v is None:
                    cells.append("-")
                elif m == "kid":
                    cells.append(f"{v.mean:.4f} ± {v.std:.4f}")
                elif m == "swd":
                    cells.append(f"{v.mean:.4f}")
                elif m == "fid_inf":
                    cells.append(f"{v.value:.3f}")
                else:
                    cells.append(f"{v:.3f}")
            rows.append(cells)
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        fmt = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
        lines = [fmt(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(r) for r in rows[1:]]
        notes = [f"{r.level}: {r.note}" for r in self.levels if r.note]
        return "\n".join(lines + notes)

    __str__ = table


def image_tiles(image: torch.Tensor, tile: int) -> list[torch.Tensor]:
    """Non-overlapping ``tile`` x ``tile`` tiles of a ``(C, H, W)`` image in row-major order
    (the right/bottom remainder is dropped); an image smaller than one tile becomes a single
    tile fitted to the tile size (aspect kept, padded with its border mean)."""
    c, h, w = image.shape
    if h < tile or w < tile:
        # Resize in the image's own units and dtype, so the value-range mapping applied later
        # treats this tile exactly like the others.
        src = image.to(torch.int32) if image.dtype == torch.uint16 else image
        out = fit_to_size(src.to(torch.float32), (tile, tile))
        if image.dtype.is_floating_point:
            return [out.to(image.dtype)]
        lo, hi = dtype_range(image.dtype)
        out = out.round().clamp(lo, hi)
        return [out.to(torch.int32).to(image.dtype) if image.dtype == torch.uint16 else out.to(image.dtype)]
    t = image[:, : h // tile * tile, : w // tile * tile].unfold(1, tile, tile).unfold(2, tile, tile)
    return list(t.permute(1, 2, 0, 3, 4).reshape(-1, c, tile, tile))


def _image_of(sample: Any) -> torch.Tensor:
    if isinstance(sample, torch.Tensor):
        return sample.unsqueeze(0) if sample.ndim == 2 else sample
    return as_annotated(sample).image


def _objects(samples: Sequence[Any], given: Sequence[CellObject] | None, which: str) -> list[CellObject]:
    if given is not None:
        return list(given)
    from iaaa.synthesis.objects import ObjectConfig, extract_objects

    annotated = []
    for i, s in enumerate(samples):
        if isinstance(s, torch.Tensor):
            raise IaaaError(f"{which}[{i}]: a bare image has no instance labels; the sco/mco levels need annotated images")
        annotated.append(as_annotated(s))
    return list(extract_objects(annotated, ObjectConfig(grouping="box")))  # the paper's merged-box objects


def level_images(
    samples: Sequence[Any],
    level: str,
    *,
    tile: int | None = 128,
    objects: Sequence[CellObject] | None = None,
    which: str = "real",
) -> list[torch.Tensor]:
    """The images compared at ``level``: object crops (``"sco"``/``"mco"``) or tiles/whole images
    (``"image"``). ``samples`` are annotated images (or bare ``(C, H, W)`` tensors for ``"image"``)."""
    if level in ("sco", "mco"):
        return [o.image for o in _objects(samples, objects, which) if o.kind == level]
    if level == "image":
        images = [_image_of(s) for s in samples]
        if tile is None:
            return images
        return [t for im in images for t in image_tiles(im, int(tile))]
    raise IaaaError(f"level: expected one of {LEVELS}, got {level!r}")


def resolve_value_range(real_images: Sequence[torch.Tensor], value_range: Any) -> tuple[Any, Any] | None:
    """``None`` (dtype range), an explicit ``(lo, hi)``, or ``"real"``: the 0.1 and 99.9
    percentiles of the real images' pixels per channel, applied to both sets alike (for 12-bit
    data stored as uint16, or float images not in ``[0, 1]``)."""
    if value_range is None or isinstance(value_range, (tuple, list)):
        return None if value_range is None else (value_range[0], value_range[1])
    if value_range != "real":
        raise IaaaError(f"value_range: expected None, (lo, hi) or 'real', got {value_range!r}")
    chans = {int(im.shape[0]) if im.ndim == 3 else 1 for im in real_images}
    if len(chans) != 1:
        raise IaaaError(f"value_range='real': real images have differing channel counts {sorted(chans)}")
    c = chans.pop()
    flat = torch.cat([(im.to(torch.int32) if im.dtype == torch.uint16 else im).reshape(c, -1).float() for im in real_images], 1)
    step = max(1, flat.shape[1] // 2_000_000)  # a strided sample keeps memory bounded, deterministically
    arr = flat[:, ::step].numpy()
    lo, hi = np.percentile(arr, 0.1, axis=1), np.percentile(arr, 99.9, axis=1)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return (lo.tolist(), hi.tolist())


def _subsample(items: list, limit: int | None, seed: int) -> list:
    if limit is None or len(items) <= limit:
        return items
    idx = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return [items[i] for i in idx.tolist()]


#: ``argument -> (lo, hi)``: bounds of :func:`evaluate_fidelity`'s size-like arguments (the
#: command line checks its flags against the same numbers).
SIZE_BOUNDS = {"tile": (16, 4096), "crop_size": (16, 1024), "image_size": (16, 2048), "batch_size": (1, 4096), "num_subsets": (1, 100_000)}


def evaluate_fidelity(
    real: Sequence[Any],
    synthetic: Sequence[Any],
    *,
    levels: Sequence[str] = LEVELS,
    metrics: Sequence[str] = ("kid", "swd", "fid"),
    extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
    tile: int | None = 128,
    crop_size: int = 64,
    image_size: int = 256,
    value_range: Any = None,
    subset_size: int | None = None,
    num_subsets: int = 100,
    max_samples: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    real_objects: Sequence[CellObject] | None = None,
    synthetic_objects: Sequence[CellObject] | None = None,
) -> FidelityReport:
    """Compare ``real`` and ``synthetic`` annotated images at each of ``levels`` with each of
    ``metrics`` (``"kid"``, ``"swd"``, ``"fid"``, ``"fid_inf"``) and return the table.

    ``extractor`` maps float batches to feature vectors for KID/FID (default: the offline
    :class:`~iaaa.metrics.features.PyramidStatsFeatures`; :class:`InceptionFeatures` or a WAE
    encoder plug in the same way); SWD works on pixels and ignores it. ``max_samples`` caps
    each set per level by a seeded random subset. A level where a set has fewer than 2 samples
    is reported with a note instead of numbers."""
    levels = list(levels)
    metrics = list(metrics)
    # Sizes bounded before any image is resized: a typo such as image_size=100000 would fill
    # tens of GB per image.
    given = {"tile": tile or 16, "crop_size": crop_size, "image_size": image_size, "batch_size": batch_size, "num_subsets": num_subsets}
    for name, (lo, hi) in SIZE_BOUNDS.items():
        v = given[name]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise IaaaError(f"{name}: must be an integer in [{lo}, {hi}], got {v!r}")
    for lv in levels:
        if lv not in LEVELS:
            raise IaaaError(f"levels: unknown level {lv!r}; choose from {LEVELS}")
    for m in metrics:
        if m not in METRICS:
            raise IaaaError(f"metrics: unknown metric {m!r}; choose from {METRICS}")
    if len(real) == 0 or len(synthetic) == 0:
        raise IaaaError(f"need images in both sets, got {len(real)} real and {len(synthetic)} synthetic")
    extractor = extractor if extractor is not None else PyramidStatsFeatures(device=device)
    vr = resolve_value_range([_image_of(s) for s in real], value_range)
    if any(lv in ("sco", "mco") for lv in levels):
        # Extract once per set, not once per level.
        real_objects = _objects(real, real_objects, "real")
        synthetic_objects = _objects(synthetic, synthetic_objects, "synthetic")
    rows = []
    for lv in levels:
        size = crop_size if lv in ("sco", "mco") else (tile or image_size)
        r_imgs = _subsample(level_images(real, lv, tile=tile, objects=real_objects, which="real"), max_samples, seed)
        s_imgs = _subsample(level_images(synthetic, lv, tile=tile, objects=synthetic_objects, which="synthetic"), max_samples, seed + 1)
        row = LevelReport(lv, len(r_imgs), len(s_imgs))
        rows.append(row)
        if min(len(r_imgs), len(s_imgs)) < 2:
            row.note = f"skipped: {len(r_imgs)} real and {len(s_imgs)} synthetic samples (need at least 2 each)"
            continue
        chans = {1 if im.ndim == 2 else int(im.shape[0]) for im in r_imgs + s_imgs}
        channels = max(chans) if len(chans) > 1 else None
        if "swd" in metrics:
            row.swd = swd(r_imgs, s_imgs, size=size, value_range=vr, channels=channels, seed=seed, batch_size=batch_size, device=device or "cpu")
        if any(m in metrics for m in ("kid", "fid", "fid_inf")):
            kw = dict(input_size=size, channels=channels, value_range=vr, batch_size=batch_size, device=device)
            fr, fs = compute_features(r_imgs, extractor, **kw), compute_features(s_imgs, extractor, **kw)
            if getattr(extractor, "standardize", False):
                fr, fs = standardize(fr, fs)
            if "kid" in metrics:
                row.kid = kid(fr, fs, subset_size=subset_size, num_subsets=num_subsets, seed=seed)
            notes = []
            if "fid" in metrics:
                row.fid = fid(fr, fs)
                if min(fr.shape[0], fs.shape[0]) <= fr.shape[1]:
                    notes.append(f"FID from {min(fr.shape[0], fs.shape[0])} samples in {fr.shape[1]} dims: rank-deficient covariance, mostly bias; trust KID")
            if "fid_inf" in metrics:
                try:
                    row.fid_inf = fid_infinity(fr, fs, seed=seed)
                except ValueError as exc:  # too few samples for the extrapolation: say so in the table
                    notes.append(f"FID∞ skipped: {exc}")
            row.note = "; ".join(notes)
    settings = {
        "levels": levels,
        "metrics": metrics,
        "extractor": str(getattr(extractor, "name", None) or type(extractor).__name__),
        "tile": tile,
        "crop_size": crop_size,
        "image_size": image_size,
        "value_range": vr,
        "subset_size": subset_size,
        "num_subsets": num_subsets,
        "max_samples": max_samples,
        "seed": seed,
    }
    return FidelityReport(rows, settings)
