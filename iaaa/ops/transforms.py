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

from typing import Any, ClassVar

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms.v2._utils import is_pure_tensor, query_size

from . import geometric as G
from . import photometric as P
from ._common import bit_depth, check_labels

__all__ = [
    "Op", "FlipLR", "FlipUD", "AutoContrast", "Equalize", "Rotate", "Posterize", "Contrast",
    "Brightness", "Sharpness", "Smooth", "Resize", "ShearX", "ShearY", "TranslateX", "TranslateY",
    "Solarize", "Invert", "Color", "Cutout", "CropBilinear",
]


def uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> np.ndarray:
    """``U[0, 1)`` float64 numpy values drawn from ``generator`` (on its own device)."""
    dev = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, device=dev, dtype=torch.float64).cpu().numpy()


class Op(Transform):
    """Base class of the ops: a constructor, parameter drawing and per-type dispatch.

    Subclasses describe themselves with class attributes (the search space reads them) and
    implement ``_prepare`` (per-sample parameters -> what the kernels need) and ``_image``
    (and, for geometric ops, nothing else: labels, boxes and points follow the warp)."""

    magnitude_range: ClassVar[tuple[float, float]] = (0.0, 0.0)
    geometric: ClassVar[bool] = False
    signed: ClassVar[bool] = False
    has_magnitude: ClassVar[bool] = True
    param_name: ClassVar[str | None] = None
    n_random: ClassVar[int] = 0  # uniforms per sample beyond the sign (positions of Cutout, CropBilinear)
    _options: ClassVar[dict[str, Any]] = {}

    def __init__(self, p: float = 1.0, magnitude: float = 0.5, generator: torch.Generator | None = None, **kwargs: Any) -> None:
        super().__init__()
        name = type(self).__name__
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{name}: p must be in [0, 1], got {p}")
        if not 0.0 <= float(magnitude) <= 1.0:
            raise ValueError(f"{name}: magnitude must be in [0, 1], got {magnitude}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{name}: generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.p = float(p)
        self.magnitude = float(magnitude)
        self.generator = generator
        self.value = None
        if self.param_name is not None and self.param_name in kwargs:
            self.value = _check_value(kwargs.pop(self.param_name), f"{name}: {self.param_name}")
        opts = dict(self._options)
        for k, v in kwargs.items():
            if k not in opts:
                allowed = sorted([*self._options, *([self.param_name] if self.param_name else [])])
                raise TypeError(f"{name}: unexpected keyword {k!r}; accepts p, magnitude, generator, {', '.join(allowed) or 'nothing else'}")
            opts[k] = v
        self.opts = opts
        for k, v in opts.items():
            setattr(self, k, v)  # shown by repr

    # -- what subclasses customise ------------------------------------------------------

    @classmethod
    def value_to_param(cls, value: np.ndarray) -> np.ndarray:
        """Op parameter from a signed value in magnitude units (``magnitude_range``)."""
        return value

    @classmethod
    def keyword_to_param(cls, value: np.ndarray) -> np.ndarray:
        """Op parameter from the value of the op-specific keyword (``param_name``)."""
        return value

    @classmethod
    def _prepare(cls, param: np.ndarray, size: tuple[int, int], rand: np.ndarray, expand: bool, opts: dict[str, Any]) -> dict[str, Any]:
        """Kernel inputs from per-sample ``param (n,)`` and ``rand (n, n_random)`` uniforms."""
        return {"param": param}

    @classmethod
    def _image(cls, image: torch.Tensor, params: dict[str, Any], opts: dict[str, Any]) -> torch.Tensor:
        if cls.geometric:
            return G.warp_image(image, params["warp"], opts.get("interpolation", "bilinear"), _raw_fill(opts.get("fill", 0.0), image.dtype))
        raise NotImplementedError

    @classmethod
    def _labels(cls, labels: torch.Tensor, params: dict[str, Any], opts: dict[str, Any]) -> torch.Tensor:
        return G.warp_labels(labels, params["warp"]) if cls.geometric else labels

    # -- the v2 protocol ----------------------------------------------------------------

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        g = self.generator
        if self.p < 1.0 and float(uniform((), g)) >= self.p:
            return {"skip": True}
        if self.value is not None:
            lo, hi = self.value
            drawn = np.array([lo]) if lo == hi else lo + (hi - lo) * uniform((1,), g)
            param = self.keyword_to_param(drawn)
            rand = uniform((1, self.n_random), g)
        else:
            param, rand = self.draw(np.array([self.magnitude]), g)
        size = query_size(flat_inputs) if (self.geometric or self._needs_size) else (0, 0)
        return self._prepare(param, size, rand, bool(self.opts.get("expand", False)), self.opts)

    @classmethod
    def draw(cls, magnitude: np.ndarray, generator: torch.Generator | None, sign: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample ``(param (n,), rand (n, n_random))`` for magnitudes ``(n,)`` in [0, 1].

        Draws run sample by sample (sign, then the op's own uniforms), so with a CPU generator
        sample ``i`` of a batch gets exactly what it would get alone after the samples before it."""
        n = magnitude.shape[0]
        lo, hi = cls.magnitude_range
        value = lo + magnitude * (hi - lo)
        k = int(cls.signed and sign is None) + cls.n_random
        if k:
            # One call: CPU generators fill float64 sequentially, so row i is what sample i
            # would draw alone after the samples before it (tested).
            u = uniform((n, k), generator)
        else:
            u = np.zeros((n, 0))
        if cls.signed:
            value = value * (np.where(u[:, 0] < 0.5, -1.0, 1.0) if sign is None else sign)
        return cls.value_to_param(value), u[:, k - cls.n_random:]

    _needs_size: ClassVar[bool] = False

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params.get("skip"):
            return inpt
        if isinstance(inpt, PIL.Image.Image):
            out = self._image_any(TF.pil_to_tensor(inpt), params)
            if out.dtype == torch.uint16:  # to_pil_image has no 16-bit path
                return PIL.Image.fromarray(out[0].cpu().numpy())
            return TF.to_pil_image(out, mode=inpt.mode)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return self._boxes(inpt, params) if self.geometric else inpt
        if hasattr(tv_tensors, "KeyPoints") and isinstance(inpt, tv_tensors.KeyPoints):
            if not self.geometric:
                return inpt
            w = params["warp"]
            return tv_tensors.wrap(G.warp_points(inpt.as_subclass(torch.Tensor), w), like=inpt, canvas_size=w.out_size)
        if isinstance(inpt, tv_tensors.Mask):
            if not (self.geometric or self.opts.get("erase_labels", False)):
                return inpt
            x = inpt.as_subclass(torch.Tensor)
            lead, (h, w) = x.shape[:-2], x.shape[-2:]
            out = self._labels(check_labels(x.reshape(-1, h, w), what="Mask"), params, self.opts)
            return tv_tensors.wrap(out.reshape(*lead, *out.shape[-2:]), like=inpt)
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)) or is_pure_tensor(inpt):
            out = self._image_any(inpt.as_subclass(torch.Tensor), params)
            return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out
        return inpt

    def _image_any(self, x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        """Images with any leading dims ``(..., C, H, W)`` (or a bare ``(H, W)``)."""
        if x.ndim == 2:
            return self._image_any(x.unsqueeze(0), params).squeeze(0)
        if x.ndim < 2:
            raise ValueError(f"{type(self).__name__}: image must be (..., C, H, W), got shape {tuple(x.shape)}")
        lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
        out = self._image(x.reshape(-1, c, h, w), params, self.opts)
        return out.reshape(*lead, *out.shape[-3:])

    def _boxes(self, boxes: tv_tensors.BoundingBoxes, params: dict[str, Any]) -> tv_tensors.BoundingBoxes:
        fmt = boxes.format
        if tv_tensors.is_rotated_bounding_format(fmt) if hasattr(tv_tensors, "is_rotated_bounding_format") else False:
            raise TypeError(f"{type(self).__name__}: rotated bounding boxes ({fmt}) are not supported")
        w = params["warp"]
        xyxy = TF.convert_bounding_box_format(boxes.as_subclass(torch.Tensor), old_format=fmt, new_format=tv_tensors.BoundingBoxFormat.XYXY)
        out = G.warp_boxes(xyxy.reshape(-1, 4), w).reshape(xyxy.shape)
        out = TF.convert_bounding_box_format(out, old_format=tv_tensors.BoundingBoxFormat.XYXY, new_format=fmt)
        return tv_tensors.wrap(out, like=boxes, canvas_size=w.out_size)


def antialias(image: torch.Tensor, scale: np.ndarray) -> torch.Tensor | None:
    """Float working copy of ``image`` with each downscaled sample Gaussian-smoothed by
    ``(1/s - 1) / 2`` px (skimage's choice) before resampling, or ``None`` if none needs it.

    Below sigma 0.25 px (scale > 2/3) the kernel's side taps weigh under 0.04% and bilinear
    sampling's own two-tap average already suppresses aliasing, so those samples are skipped."""
    sigma = (1.0 / scale - 1.0) / 2.0
    shrink = sigma >= 0.25
    if not shrink.any():
        return None
    from ._common import to_work

    x = to_work(image)
    sigma = np.where(shrink, sigma, 0.0)
    if shrink.all() or scale.size == 1:
        return P.blur_work(x, np.broadcast_to(sigma, (image.shape[0],)).copy() if scale.size == 1 else sigma)
    # Only the shrinking samples pay for the blur.
    sel = torch.from_numpy(np.flatnonzero(shrink)).to(image.device)
    return x.index_copy(0, sel, P.blur_work(x.index_select(0, sel), sigma[shrink]))


def _check_value(value: Any, what: str) -> tuple[float, float]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or float(value[0]) > float(value[1]):
            raise ValueError(f"{what}: expected a number or a (lo, hi) pair with lo <= hi, got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), float(value)


def _raw_fill(fill: float, dtype: torch.dtype) -> float:
    """Fill given as a fraction of the dtype's range -> raw pixel value."""
    from ._common import bound

    return float(fill) * bound(dtype)


_GEOM_OPTS = {"expand": False, "interpolation": "bilinear", "fill": 0.0}


# ----------------------------------------------------------------------------- geometric


class FlipLR(Op):
    """Mirror left-right (Table S1). No magnitude. Targets: image, mask, boxes, keypoints."""

    geometric, has_magnitude = True, False

    @classmethod
    def _prepare(cls, param, size, rand, expand, opts):
        return {"warp": G.flip_warp(size, True)}


class FlipUD(Op):
    """Mirror top-bottom (Table S1). No magnitude. Targets: image, mask, boxes, keypoints."""

    geometric, has_magnitude = True, False

    @classmethod
    def _prepare(cls, param, size, rand, expand, opts):
        return {"warp": G.flip_warp(size, False)}


class Rotate(Op):
    """Rotate counter-clockwise about the centre by up to 180 degrees, either way (Table S1).

    Keywords: ``degrees`` (angle or range), ``expand`` (grow the canvas so nothing is cut),
    ``interpolation`` (``"bilinear"``/``"nearest"``, images only), ``fill`` (fraction of the
    range). Targets: image, mask, boxes, keypoints."""

    magnitude_range, geometric, signed, param_name = (0.0, 180.0), True, True, "degrees"
    _options = _GEOM_OPTS

    @classmethod
    def _prepare(cls, param, size, rand, expand, opts):
        return {"warp": G.rotate_warp(size, param, expand)}


class _Shear(Op):
    magnitude_range, geometric, signed, param_name = (0.0, 0.3), True, True, "shear"
    _options = _GEOM_OPTS
    axis: ClassVar[str] = "x"

    @classmethod
    def _prepare(cls, param, size, rand, expand, opts):
        return {"warp": G.shear_warp(size, param, cls.axis, expand)}


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
    _options = _GEOM_OPTS
    axis: ClassVar[str] = "x"

    @classmethod
    def _prepare(cls, param, size, rand, expand, opts):
        pixels = param * (size[1] if cls.axis == "x" else size[0])
        return {"warp": G.translate_warp(size, pixels, cls.axis, expand)}


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
    _options = {**_GEOM_OPTS, "antialias": True}

    @classmethod
    def value_to_param(cls, value):
        return np.power(2.0, value)

    @classmethod
    def _prepare(cls, param, size, rand, expand, opts):
        return {"warp": G.scale_warp(size, param, expand), "scale": param}

    @classmethod
    def _image(cls, image, params, opts):
        interpolation = opts.get("interpolation", "bilinear")
        fill = _raw_fill(opts.get("fill", 0.0), image.dtype)
        source = None
        if opts.get("antialias", True) and interpolation == "bilinear":
            source = antialias(image, params["scale"])
        return G.warp_image(image, params["warp"], interpolation, fill, source)


class CropBilinear(Op):
    """Zoom into a random window that is up to 30% smaller than the image and resample it
    bilinearly to full size (Figure S11; AutoAugment's CropBilinear). Border cells may be cut
    by design; ``expand`` has no effect. Keywords: ``crop`` (fraction removed from each side
    length), ``interpolation``. Targets: image, mask, boxes, keypoints."""

    magnitude_range, geometric, param_name, n_random = (0.0, 0.3), True, "crop", 2
    _options = {"interpolation": "bilinear"}

    @classmethod
    def _prepare(cls, param, size, rand, expand, opts):
        if ((param < 0) | (param >= 1)).any():
            raise ValueError(f"CropBilinear: crop must be in [0, 1), got {param.tolist()}")
        h, w = size
        u = rand
        ww, hh = (1 - param) * w, (1 - param) * h
        x0, y0 = u[:, 0] * (w - ww), u[:, 1] * (h - hh)
        return {"warp": G.crop_warp(size, np.stack([x0, y0, x0 + ww, y0 + hh], -1))}


# ----------------------------------------------------------------------------- photometric


class _NoMagnitude(Op):
    has_magnitude = False
    kernel: ClassVar[Any] = None

    @classmethod
    def _image(cls, image, params, opts):
        return cls.kernel(image)


class AutoContrast(_NoMagnitude):
    """Stretch each channel to the full range of its dtype (65535 for uint16) (Table S1). Targets: image."""

    kernel = staticmethod(P.autocontrast)


class Equalize(_NoMagnitude):
    """Histogram-equalise each channel over all levels of its dtype (Table S1). Targets: image."""

    kernel = staticmethod(P.equalize)


class Invert(_NoMagnitude):
    """``max - x`` (Figure S11). Targets: image."""

    kernel = staticmethod(P.invert)


class _Factor(Op):
    """Blend-style ops: factor ``1 + v`` with ``v`` signed."""

    signed, param_name = True, "factor"
    kernel: ClassVar[Any] = None

    @classmethod
    def value_to_param(cls, value):
        return 1.0 + value

    @classmethod
    def _image(cls, image, params, opts):
        return cls.kernel(image, params["param"])


class Contrast(_Factor):
    """Contrast factor ``1 +- 0.5 * magnitude`` around the mean gray (Table S1). Keyword:
    ``factor``. Targets: image."""

    magnitude_range = (0.0, 0.5)
    kernel = staticmethod(P.adjust_contrast)


class Brightness(_Factor):
    """Brightness factor ``1 +- 0.5 * magnitude`` (Table S1). Keyword: ``factor``. Targets: image."""

    magnitude_range = (0.0, 0.5)
    kernel = staticmethod(P.adjust_brightness)


class Sharpness(_Factor):
    """PIL sharpness factor ``1 +- 0.9 * magnitude`` (< 1 softens, > 1 sharpens; Table S1).
    Keyword: ``factor``. Targets: image."""

    magnitude_range = (0.0, 0.9)
    kernel = staticmethod(P.adjust_sharpness)


class Color(_Factor):
    """Saturation factor ``1 +- 0.9 * magnitude``; identity unless the image has 3 channels
    (Figure S11). Keyword: ``factor``. Targets: image."""

    magnitude_range = (0.0, 0.9)
    kernel = staticmethod(P.adjust_saturation)


class Smooth(Op):
    """Gaussian low-pass, sigma up to 2 px (Table S1). Keyword: ``sigma``. Targets: image."""

    magnitude_range, param_name = (0.0, 2.0), "sigma"

    @classmethod
    def _image(cls, image, params, opts):
        return P.gaussian_blur(image, params["param"])


class Posterize(Op):
    """Drop up to 4 of 8 bits, i.e. half the bit depth: uint16 drops twice as many of its 16
    bits, so the same magnitude removes the same fraction of levels (Table S1). Keyword:
    ``bits`` (bits kept on the 8-bit scale). Targets: image."""

    magnitude_range, param_name = (0.0, 4.0), "bits"

    @classmethod
    def _prepare(cls, param, size, rand, expand, opts):
        return {"removed": param}  # bits removed on the 8-bit scale

    @classmethod
    def keyword_to_param(cls, value):
        return 8.0 - value  # the keyword gives bits kept

    @classmethod
    def _image(cls, image, params, opts):
        depth = bit_depth(image.dtype)
        removed = np.clip(np.floor(params["removed"] * (depth / 8.0) + 0.5), 0, depth)
        return P.posterize(image, depth - removed)


class Solarize(Op):
    """Invert pixels above a threshold ``1 - magnitude`` (fraction of the range; Figure S11).
    Keyword: ``threshold``. Targets: image."""

    magnitude_range, param_name = (0.0, 1.0), "threshold"

    @classmethod
    def value_to_param(cls, value):
        return 1.0 - value

    @classmethod
    def _image(cls, image, params, opts):
        return P.solarize(image, params["param"])


class Cutout(Op):
    """Paint a random square, side up to half the shorter image side, with the channel mean
    (Figure S11). The cell is occluded, not removed: labels are unchanged unless
    ``erase_labels=True``. Keywords: ``size`` (side as a fraction of the shorter side),
    ``fill`` (``"mean"`` or a fraction of the range), ``erase_labels``. Targets: image
    (and mask with ``erase_labels``)."""

    magnitude_range, param_name, n_random = (0.0, 0.5), "size", 2
    _options = {"fill": "mean", "erase_labels": False}
    _needs_size = True

    @classmethod
    def _prepare(cls, param, size, rand, expand, opts):
        h, w = size
        side = np.floor(param * min(h, w) + 0.5)
        u = rand
        cx, cy = np.floor(u[:, 0] * w), np.floor(u[:, 1] * h)
        x0, y0 = cx - side // 2, cy - side // 2
        return {"box": np.stack([x0, y0, x0 + side, y0 + side], -1)}

    @classmethod
    def _image(cls, image, params, opts):
        return P.cutout(image, params["box"], opts.get("fill", "mean"))

    @classmethod
    def _labels(cls, labels, params, opts):
        return P.cutout_labels(labels, params["box"]) if opts.get("erase_labels", False) else labels
