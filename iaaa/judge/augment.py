"""The strong baseline's standard augmentation, built from :mod:`iaaa.ops` so labels stay exact.

What a user would set up for real data: per crop, a scale jitter (log-uniform in ``scale``),
a rotation by any angle and a random mirror, all as ONE affine warp that cuts the crop out of
the whole (padded) image, so rotated and shrunk crops read real pixels instead of a fill where
the image allows it; then brightness, contrast, gamma, Gaussian blur and Gaussian noise. The
geometry goes through :func:`iaaa.ops.functional.warp_image` / ``warp_labels`` (labels by
integer gather: no value invented); the photometric part never touches labels.

Parameters are drawn per crop from an explicit generator, one fixed-size row per crop, so
the real crops of a step get the same augmentation in every arm that augments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from iaaa.errors import IaaaError
from iaaa.ops import functional as OF

__all__ = ["AugmentConfig", "draw_augment", "warp_crops", "photometric"]

# columns of a drawn row
_SCALE, _ANGLE, _FLIP, _BRIGHT, _CONTRAST, _GAMMA, _BLUR, _NOISE = range(8)


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the standard augmentation (each drawn uniformly per crop; ``scale`` and
    ``gamma`` log-uniformly). ``blur`` and ``noise`` are Gaussian sigmas (blur in working-scale
    pixels, noise in the normalised ``[0, 1]`` intensity)."""

    scale: tuple[float, float] = (0.5, 2.0)
    rotate: bool = True
    flip: bool = True
    brightness: tuple[float, float] = (0.8, 1.25)
    contrast: tuple[float, float] = (0.75, 1.33)
    gamma: tuple[float, float] = (0.7, 1.4)
    blur: tuple[float, float] = (0.0, 1.2)
    noise: tuple[float, float] = (0.0, 0.04)

    def __post_init__(self) -> None:
        for name in ("scale", "brightness", "contrast", "gamma", "blur", "noise"):
            lo, hi = getattr(self, name)
            positive = name in ("scale", "gamma")
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi and (lo > 0 if positive else lo >= 0)):
                raise IaaaError(f"AugmentConfig.{name}: expected 0 {'<' if positive else '<='} low <= high, got {(lo, hi)}")

    def with_photometric_strength(self, strength: float) -> "AugmentConfig":
        """This config with every photometric range pulled towards identity by ``strength``
        (``0``: geometry only; ``1``: unchanged; above 1: wider). Multiplicative factors
        (brightness, contrast, gamma) are scaled in log space, so ``(0.8, 1.25)`` at 0.5 becomes
        ``(0.894, 1.118)``; the blur and noise sigmas linearly."""
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 4.0:
            raise IaaaError(f"AugmentConfig photometric strength: expected a number in [0, 4], got {strength!r}")
        if strength == 1.0:
            return self

        def power(r: tuple[float, float]) -> tuple[float, float]:
            return (r[0] ** strength, r[1] ** strength)

        return replace(self, brightness=power(self.brightness), contrast=power(self.contrast), gamma=power(self.gamma),
                       blur=(self.blur[0] * strength, self.blur[1] * strength),
                       noise=(self.noise[0] * strength, self.noise[1] * strength))


def _uniform(u: torch.Tensor, lo: float, hi: float, log: bool = False) -> torch.Tensor:
    if log:
        return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return lo + u * (hi - lo)


def draw_augment(n: int, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """``(n, 8)`` float64 parameters (scale, angle in degrees, mirror 0/1, brightness, contrast,
    gamma, blur sigma, noise sigma), one row per crop."""
    u = torch.rand((n, 8), generator=generator, dtype=torch.float64)
    out = torch.empty_like(u)
    out[:, _SCALE] = _uniform(u[:, _SCALE], *config.scale, log=True)
    out[:, _ANGLE] = u[:, _ANGLE] * 360.0 if config.rotate else 0.0
    out[:, _FLIP] = (u[:, _FLIP] < 0.5).double() if config.flip else 0.0
    out[:, _BRIGHT] = _uniform(u[:, _BRIGHT], *config.brightness)
    out[:, _CONTRAST] = _uniform(u[:, _CONTRAST], *config.contrast)
    out[:, _GAMMA] = _uniform(u[:, _GAMMA], *config.gamma, log=True)
    out[:, _BLUR] = _uniform(u[:, _BLUR], *config.blur)
    out[:, _NOISE] = _uniform(u[:, _NOISE], *config.noise)
    return out


def _crop_warp(in_size: tuple[int, int], centre: tuple[float, float], crop: int, row: torch.Tensor) -> OF.Warp:
    """The affine warp cutting a ``crop`` x ``crop`` window around ``centre = (y, x)``, zoomed by
    ``row[scale]``, turned by ``row[angle]`` and mirrored by ``row[flip]``.

    The centre is moved inwards as far as the image allows so the turned window stays inside
    it (then no pixel is fill)."""
    s, a, f = float(row[_SCALE]), math.radians(float(row[_ANGLE])), float(row[_FLIP])
    cos, sin = math.cos(a), math.sin(a)
    # output offset -> input offset: rotate, undo the zoom, mirror x first
    lin = np.array([[cos, -sin], [sin, cos]]) @ np.diag([-1.0 if f else 1.0, 1.0]) / s
    half = (crop - 1) / 2
    reach = half * (abs(cos) + abs(sin)) / s
    cy, cx = centre
    h, w = in_size
    if h - 1 >= 2 * reach:
        cy = min(max(cy, reach), h - 1 - reach)
    if w - 1 >= 2 * reach:
        cx = min(max(cx, reach), w - 1 - reach)
    shift = np.array([cx, cy]) - lin @ np.array([half, half])
    return OF.Warp(np.concatenate([lin, shift[:, None]], 1)[None], (int(h), int(w)), (crop, crop))


def warp_crops(images: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], centres: Sequence[tuple[float, float]], crop: int, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops ``(n, C, crop, crop)`` and their label maps ``(n, crop, crop)``: crop ``j`` cut from
    ``images[j]`` / ``labels[j]`` (``(C, H, W)`` / ``(H, W)``, sizes may differ) around
    ``centres[j]`` through the geometry of ``rows[j]`` (bilinear image, nearest labels)."""
    imgs, labs = [], []
    for img, lab, centre, row in zip(images, labels, centres, rows):
        warp = _crop_warp(tuple(img.shape[-2:]), centre, crop, row)
        imgs.append(OF.warp_image(img[None], warp, "bilinear", 0.0)[0])
        labs.append(OF.warp_labels(lab[None], warp)[0])
    return torch.stack(imgs), torch.stack(labs)


def photometric(images: torch.Tensor, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, gamma, blur and noise of ``rows`` applied to float images
    ``(n, C, H, W)`` in ``[0, 1]`` (result clamped to ``[0, 1]``); the noise is drawn from
    ``generator``."""
    if images.shape[0] != rows.shape[0]:
        raise IaaaError(f"photometric: {images.shape[0]} images for {rows.shape[0]} parameter rows")
    r = rows.cpu()
    x = OF.adjust_brightness(images, r[:, _BRIGHT])
    x = OF.adjust_contrast(x, r[:, _CONTRAST])
    x = x.clamp(0.0, 1.0) ** r[:, _GAMMA].to(x).view(-1, 1, 1, 1)
    x = OF.gaussian_blur(x, r[:, _BLUR])
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device)
    return (x + noise * r[:, _NOISE].to(x).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)
