"""The ops as ``torchvision.transforms.v2`` transforms.

Every op shares one constructor, ``Op(p=1.0, magnitude=0.5, generator=None, **op_specific)``:
``magnitude`` in ``[0, 1]`` maps linearly onto the op's range in :data:`iaaa.ops.SPACE`
(0 = identity), signed ops pick a random direction, and an op-specific keyword (``degrees``,
``factor``, ``scale``, ...) sets the op's own parameter instead: a number is used as is, a
``(lo, hi)`` pair is sampled uniformly. Parameters are drawn once per call and applied to every
input of the sample: images (``tv_tensors.Image``, plain tensors, PIL), label maps and masks
(``tv_tensors.Mask``, moved with nearest sampling), ``BoundingBoxes`` and ``KeyPoints``.

Randomness comes from ``generator``; with ``None`` torch's global generator is used, as in
torchvision, so ``DataLoader`` worker seeding applies. The library itself always passes one.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from . import functional as F
from ._base import GEOM_OPTS, Op, raw_fill
from ._common import bit_depth
from iaaa.errors import IaaaError

__all__ = [
    "Op", "FlipLR", "FlipUD", "AutoContrast", "Equalize", "Rotate", "Posterize", "Contrast",
    "Brightness", "Sharpness", "Smooth", "Resize", "ShearX", "ShearY", "TranslateX", "TranslateY",
    "Solarize", "Invert", "Color", "Cutout", "CropBilinear",
]

# ----------------------------------------------------------------------------- geometric


class FlipLR(Op):
    """Mirror left-right (Table S1). No magnitude. Targets: image, mask, boxes, keypoints."""

    geometric, has_magnitude = True, False

    @classmethod
    def prepare_params(cls, param, size, rand, expand, opts):
        return {"warp": F.flip_warp(size, True)}


class FlipUD(Op):
    """Mirror top-bottom (Table S1). No magnitude. Targets: image, mask, boxes, keypoints."""

    geometric, has_magnitude = True, False

    @classmethod
    def prepare_params(cls, param, size, rand, expand, opts):
        return {"warp": F.flip_warp(size, False)}


class Rotate(Op):
    """Rotate counter-clockwise about the centre by up to 180 degrees, either way (Table S1).

    Keywords: ``degrees`` (angle or range), ``expand`` (grow the canvas so nothing is cut),
    ``interpolation`` (``"bilinear"``/``"nearest"``, images only), ``fill`` (fraction of the
    range). Targets: image, mask, boxes, keypoints."""

    magnitude_range, geometric, signed, param_name = (0.0, 180.0), True, True, "degrees"
    default_options = GEOM_OPTS

    @classmethod
    def prepare_params(cls, param, size, rand, expand, opts):
        return {"warp": F.rotate_warp(size, param, expand)}


class _Shear(Op):
    magnitude_range, geometric, signed, param_name = (0.0, 0.3), True, True, "shear"
    default_options = GEOM_OPTS
    axis: ClassVar[str] = "x"

    @classmethod
    def prepare_params(cls, param, size, rand, expand, opts):
        return {"warp": F.shear_warp(size, param, cls.axis, expand)}


class ShearX(_Shear):
    """Shear horizontally, ``x' = x + s * y`` about the centre, ``|s| <= 0.3`` (Figure S11).
    Keywords: ``shear``, ``expand``, ``interpolation``, ``fill``. Targets: image, mask, boxes, keypoints."""

    axis = "x"


class ShearY(_Shear):
    """Shear vertically, ``y' = y + s * x`` about the centre, ``|s| <= 0.3`` (Figure S11).
    Keywords: ``shear``, ``expand``, ``interpolation``, ``fill``. Targets: image, mask, boxes, keypoints."""

    axis = "y"


class _Translate(Op):
    magnitude_range, geometric, signed, param_name = (0.0, 0.3), True, True, "translate"
    default_options = GEOM_OPTS
    axis: ClassVar[str] = "x"

    @classmethod
    def prepare_params(cls, param, size, rand, expand, opts):
        pixels = param * (size[1] if cls.axis == "x" else size[0])
        return {"warp": F.translate_warp(size, pixels, cls.axis, expand)}


class TranslateX(_Translate):
    """Shift horizontally by up to 30% of the width, whole pixels (Figure S11). ``expand``
    grows the canvas by the shift instead of cutting. Keywords: ``translate`` (fraction of the
    width), ``expand``, ``fill``. Targets: image, mask, boxes, keypoints."""

    axis = "x"


class TranslateY(_Translate):
    """Shift vertically by up to 30% of the height, whole pixels (Figure S11). Keywords:
    ``translate`` (fraction of the height), ``expand``, ``fill``. Targets: image, mask, boxes, keypoints."""

    axis = "y"


class Resize(Op):
    """Change the resolution by a factor ``2 ** v``, ``|v| <= 0.5`` (0.71x to 1.41x, Table S1).

    With ``expand=True`` the canvas becomes the scaled size (a true resize, what cell objects
    use); otherwise the image zooms about its centre in its own canvas. Downscaling is
    antialiased with a Gaussian pre-filter (``antialias=True``), images only. Keywords:
    ``scale`` (factor or range), ``expand``, ``interpolation``, ``fill``, ``antialias``.
    Targets: image, mask, boxes, keypoints."""

    magnitude_range, geometric, signed, param_name = (0.0, 0.5), True, True, "scale"
    default_options = {**GEOM_OPTS, "antialias": True}

    @classmethod
    def value_to_param(cls, value):
        return np.power(2.0, value)

    @classmethod
    def prepare_params(cls, param, size, rand, expand, opts):
        return {"warp": F.scale_warp(size, param, expand), "scale": param}

    @classmethod
    def apply_image(cls, image, params, opts):
        interpolation = opts.get("interpolation", "bilinear")
        fill = raw_fill(opts.get("fill", 0.0), image.dtype)
        source = None
        if opts.get("antialias", True) and interpolation == "bilinear":
            source = F.antialias_source(image, params["scale"])
        return F.warp_image(image, params["warp"], interpolation, fill, source)


class CropBilinear(Op):
    """Zoom into a random window that is up to 30% smaller than the image and resample it
    bilinearly to full size (Figure S11; AutoAugment's CropBilinear). Border cells may be cut
    by design; ``expand`` has no effect. Keywords: ``crop`` (fraction removed from each side
    length), ``interpolation``. Targets: image, mask, boxes, keypoints."""

    magnitude_range, geometric, param_name, n_random = (0.0, 0.3), True, "crop", 2
    default_options = {"interpolation": "bilinear"}

    @classmethod
    def prepare_params(cls, param, size, rand, expand, opts):
        if ((param < 0) | (param >= 1)).any():
            raise IaaaError(f"CropBilinear: crop must be in [0, 1), got {param.tolist()}")
        h, w = size
        u = rand
        ww, hh = (1 - param) * w, (1 - param) * h
        x0, y0 = u[:, 0] * (w - ww), u[:, 1] * (h - hh)
        return {"warp": F.crop_warp(size, np.stack([x0, y0, x0 + ww, y0 + hh], -1))}


# ----------------------------------------------------------------------------- photometric


class _NoMagnitude(Op):
    has_magnitude = False
    kernel: ClassVar[Any] = None

    @classmethod
    def apply_image(cls, image, params, opts):
        return cls.kernel(image)


class AutoContrast(_NoMagnitude):
    """Stretch each channel to the full range of its dtype (65535 for uint16) (Table S1). Targets: image."""

    kernel = staticmethod(F.autocontrast)


class Equalize(_NoMagnitude):
    """Histogram-equalise each channel over all levels of its dtype (Table S1). Targets: image."""

    kernel = staticmethod(F.equalize)


class Invert(_NoMagnitude):
    """``max - x`` (Figure S11). Targets: image."""

    kernel = staticmethod(F.invert)


class _Factor(Op):
    """Blend-style ops: factor ``1 + v`` with ``v`` signed."""

    signed, param_name = True, "factor"
    kernel: ClassVar[Any] = None

    @classmethod
    def value_to_param(cls, value):
        return 1.0 + value

    @classmethod
    def apply_image(cls, image, params, opts):
        return cls.kernel(image, params["param"])


class Contrast(_Factor):
    """Contrast factor ``1 +- 0.5 * magnitude`` around the mean gray (Table S1). Keyword:
    ``factor``. Targets: image."""

    magnitude_range = (0.0, 0.5)
    kernel = staticmethod(F.adjust_contrast)


class Brightness(_Factor):
    """Brightness factor ``1 +- 0.5 * magnitude`` (Table S1). Keyword: ``factor``. Targets: image."""

    magnitude_range = (0.0, 0.5)
    kernel = staticmethod(F.adjust_brightness)


class Sharpness(_Factor):
    """PIL sharpness factor ``1 +- 0.9 * magnitude`` (< 1 softens, > 1 sharpens; Table S1).
    Keyword: ``factor``. Targets: image."""

    magnitude_range = (0.0, 0.9)
    kernel = staticmethod(F.adjust_sharpness)


class Color(_Factor):
    """Saturation factor ``1 +- 0.9 * magnitude``; identity unless the image has 3 channels
    (Figure S11). Keyword: ``factor``. Targets: image."""

    magnitude_range = (0.0, 0.9)
    kernel = staticmethod(F.adjust_saturation)


class Smooth(Op):
    """Gaussian low-pass, sigma up to 2 px (Table S1). Keyword: ``sigma``. Targets: image."""

    magnitude_range, param_name = (0.0, 2.0), "sigma"

    @classmethod
    def apply_image(cls, image, params, opts):
        return F.gaussian_blur(image, params["param"])


class Posterize(Op):
    """Drop up to 4 of 8 bits, i.e. half the bit depth: uint16 drops twice as many of its 16
    bits, so the same magnitude removes the same fraction of levels (Table S1). Keyword:
    ``bits`` (bits kept on the 8-bit scale). Targets: image."""

    magnitude_range, param_name = (0.0, 4.0), "bits"

    @classmethod
    def prepare_params(cls, param, size, rand, expand, opts):
        return {"removed": param}  # bits removed on the 8-bit scale

    @classmethod
    def keyword_to_param(cls, value):
        return 8.0 - value  # the keyword gives bits kept

    @classmethod
    def apply_image(cls, image, params, opts):
        depth = bit_depth(image.dtype)
        r = params["removed"]
        if isinstance(r, np.ndarray) and r.size == 1:
            # The same float64 steps on a Python float (numpy costs more than the work here).
            x = float(r[0]) * (depth / 8.0) + 0.5
            x = min(max(float(math.floor(x)) if math.isfinite(x) else x, 0.0), float(depth))
            return F.posterize(image, depth - x)
        removed = np.clip(np.floor(r * (depth / 8.0) + 0.5), 0, depth)
        return F.posterize(image, depth - removed)


class Solarize(Op):
    """Invert pixels above a threshold ``1 - magnitude`` (fraction of the range; Figure S11).
    Keyword: ``threshold``. Targets: image."""

    magnitude_range, param_name = (0.0, 1.0), "threshold"

    @classmethod
    def value_to_param(cls, value):
        return 1.0 - value

    @classmethod
    def apply_image(cls, image, params, opts):
        return F.solarize(image, params["param"])


class Cutout(Op):
    """Paint a random square, side up to half the shorter image side, with the channel mean
    (Figure S11). The cell is occluded, not removed: labels are unchanged unless
    ``erase_labels=True``. Keywords: ``size`` (side as a fraction of the shorter side),
    ``fill`` (``"mean"`` or a fraction of the range), ``erase_labels``. Targets: image
    (and mask with ``erase_labels``)."""

    magnitude_range, param_name, n_random = (0.0, 0.5), "size", 2
    default_options = {"fill": "mean", "erase_labels": False}
    needs_size = True

    @classmethod
    def prepare_params(cls, param, size, rand, expand, opts):
        h, w = size
        side = np.floor(param * min(h, w) + 0.5)
        u = rand
        cx, cy = np.floor(u[:, 0] * w), np.floor(u[:, 1] * h)
        x0, y0 = cx - side // 2, cy - side // 2
        return {"box": np.stack([x0, y0, x0 + side, y0 + side], -1)}

    @classmethod
    def apply_image(cls, image, params, opts):
        return F.cutout(image, params["box"], opts.get("fill", "mean"))

    @classmethod
    def apply_labels(cls, labels, params, opts):
        return F.cutout_labels(labels, params["box"]) if opts.get("erase_labels", False) else labels
