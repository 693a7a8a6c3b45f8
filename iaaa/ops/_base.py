"""The shared machinery of the op transforms: constructor, parameter drawing, dispatch over
input types (``torchvision.transforms.v2`` protocol, public torchvision API only), on top of
the kernels of :mod:`iaaa.ops.functional`."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as TF
from iaaa.errors import IaaaError
from iaaa.threads import serial

from . import functional as F
from ._common import bound, check_labels
__all__ = ["Op", "uniform", "raw_fill", "GEOM_OPTS", "spatial_size"]


def uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> np.ndarray:
    """``U[0, 1)`` float64 numpy values drawn from ``generator`` (on its own device)."""
    dev = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, device=dev, dtype=torch.float64).cpu().numpy()


class Op(Transform):
    """Base class of the ops: a constructor, parameter drawing and per-type dispatch.

    Subclasses describe themselves with class attributes (the search space reads them) and
    three public class methods, the op's kernel spec that both the v2 protocol here and
    :func:`iaaa.ops.apply_op` call: ``prepare_params`` (per-sample parameters -> what the kernels
    need), ``apply_image`` and ``apply_labels``, each a call of :mod:`iaaa.ops.functional`
    kernels (geometric ops only prepare a warp: images, labels, boxes and points follow it)."""

    magnitude_range: ClassVar[tuple[float, float]] = (0.0, 0.0)
    geometric: ClassVar[bool] = False
    signed: ClassVar[bool] = False
    has_magnitude: ClassVar[bool] = True
    param_name: ClassVar[str | None] = None
    n_random: ClassVar[int] = 0  # uniforms per sample beyond the sign (positions of Cutout, CropBilinear)
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, p: float = 1.0, magnitude: float = 0.5, generator: torch.Generator | None = None, **kwargs: Any) -> None:
        super().__init__()
        name = type(self).__name__
        if not 0.0 <= float(p) <= 1.0:
            raise IaaaError(f"{name}: p must be in [0, 1], got {p}")
        if not 0.0 <= float(magnitude) <= 1.0:
            raise IaaaError(f"{name}: magnitude must be in [0, 1], got {magnitude}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{name}: generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.p = float(p)
        self.magnitude = float(magnitude)
        self.generator = generator
        self.value = None
        if self.param_name is not None and self.param_name in kwargs:
            self.value = _check_value(kwargs.pop(self.param_name), f"{name}: {self.param_name}")
        opts = dict(self.default_options)
        for k, v in kwargs.items():
            if k not in opts:
                allowed = sorted([*self.default_options, *([self.param_name] if self.param_name else [])])
                raise TypeError(f"{name}: unexpected keyword {k!r}; accepts p, magnitude, generator, {', '.join(allowed) or 'nothing else'}")
            opts[k] = v
        # expand is a call-level choice (apply_op takes it as an argument), so it is kept apart
        # from the kernel options: ``apply_op(type(op).__name__, ..., **op.opts)`` works.
        self.expand = bool(opts.pop("expand", False))
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
    def prepare_params(cls, param: np.ndarray, size: tuple[int, int], rand: np.ndarray, expand: bool, opts: dict[str, Any]) -> dict[str, Any]:
        """Kernel inputs from per-sample ``param (n,)`` and ``rand (n, n_random)`` uniforms."""
        return {"param": param}

    @classmethod
    def apply_image(cls, image: torch.Tensor, params: dict[str, Any], opts: dict[str, Any]) -> torch.Tensor:
        if cls.geometric:
            return F.warp_image(image, params["warp"], opts.get("interpolation", "bilinear"), raw_fill(opts.get("fill", 0.0), image.dtype))
        raise NotImplementedError

    @classmethod
    def apply_labels(cls, labels: torch.Tensor, params: dict[str, Any], opts: dict[str, Any]) -> torch.Tensor:
        return F.warp_labels(labels, params["warp"]) if cls.geometric else labels

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
        size = spatial_size(flat_inputs) if (self.geometric or self.needs_size) else (0, 0)
        return self.prepare_params(param, size, rand, self.expand, self.opts)

    @classmethod
    def draw(cls, magnitude: np.ndarray, generator: torch.Generator | None, sign: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample ``(param (n,), rand (n, n_random))`` for magnitudes ``(n,)`` in [0, 1].

        Draws run sample by sample (sign, then the op's own uniforms), so with a CPU generator
        sample ``i`` of a batch gets exactly what it would get alone after the samples before it."""
        n = magnitude.shape[0]
        lo, hi = cls.magnitude_range
        k = int(cls.signed and sign is None) + cls.n_random
        # One call: CPU generators fill float64 sequentially, so row i is what sample i would
        # draw alone after the samples before it (tested).
        u = uniform((n, k), generator) if k else np.zeros((n, 0))
        if n == 1 and (sign is None or sign.size == 1):
            # The same float64 arithmetic on Python floats: numpy's per-call cost would dominate
            # a single-object call.
            v = lo + float(magnitude[0]) * (hi - lo)
            if cls.signed:
                v *= (-1.0 if u[0, 0] < 0.5 else 1.0) if sign is None else float(sign.reshape(-1)[0])
            value = np.array([v])
        else:
            value = lo + magnitude * (hi - lo)
            if cls.signed:
                value = value * (np.where(u[:, 0] < 0.5, -1.0, 1.0) if sign is None else sign)
        return cls.value_to_param(value), u[:, k - cls.n_random:]

    needs_size: ClassVar[bool] = False

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params.get("skip"):
            return inpt
        # prod(shape), not numel(): on a tv_tensor numel() goes through __torch_function__.
        with serial(math.prod(inpt.shape) if isinstance(inpt, torch.Tensor) else 0):
            return self._transform_one(inpt, params)

    def _transform_one(self, inpt: Any, params: dict[str, Any]) -> Any:
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
            return tv_tensors.wrap(F.warp_points(inpt.as_subclass(torch.Tensor), w), like=inpt, canvas_size=w.out_size)
        if isinstance(inpt, tv_tensors.Mask):
            if not (self.geometric or self.opts.get("erase_labels", False)):
                return inpt
            x = inpt.as_subclass(torch.Tensor)
            lead, (h, w) = x.shape[:-2], x.shape[-2:]
            out = self.apply_labels(check_labels(x.reshape(-1, h, w), what="Mask"), params, self.opts)
            return tv_tensors.wrap(out.reshape(*lead, *out.shape[-2:]), like=inpt)
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)) or _is_plain_tensor(inpt):
            out = self._image_any(inpt.as_subclass(torch.Tensor), params)
            return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out
        return inpt

    def _image_any(self, x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        """Images with any leading dims ``(..., C, H, W)`` (or a bare ``(H, W)``)."""
        if x.ndim == 2:
            return self._image_any(x.unsqueeze(0), params).squeeze(0)
        if x.ndim < 2:
            raise IaaaError(f"{type(self).__name__}: image must be (..., C, H, W), got shape {tuple(x.shape)}")
        lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
        out = self.apply_image(x.reshape(-1, c, h, w), params, self.opts)
        return out.reshape(*lead, *out.shape[-3:])

    def _boxes(self, boxes: tv_tensors.BoundingBoxes, params: dict[str, Any]) -> tv_tensors.BoundingBoxes:
        fmt = boxes.format
        if tv_tensors.is_rotated_bounding_format(fmt) if hasattr(tv_tensors, "is_rotated_bounding_format") else False:
            raise TypeError(f"{type(self).__name__}: rotated bounding boxes ({fmt}) are not supported")
        w = params["warp"]
        xyxy = TF.convert_bounding_box_format(boxes.as_subclass(torch.Tensor), old_format=fmt, new_format=tv_tensors.BoundingBoxFormat.XYXY)
        out = F.warp_boxes(xyxy.reshape(-1, 4), w).reshape(xyxy.shape)
        out = TF.convert_bounding_box_format(out, old_format=tv_tensors.BoundingBoxFormat.XYXY, new_format=fmt)
        return tv_tensors.wrap(out, like=boxes, canvas_size=w.out_size)


def _is_plain_tensor(x: Any) -> bool:
    """A tensor that is no ``tv_tensors`` type (torchvision treats it as an image)."""
    return isinstance(x, torch.Tensor) and not isinstance(x, tv_tensors.TVTensor)


_CANVAS_TYPES = (tv_tensors.BoundingBoxes, tv_tensors.KeyPoints) if hasattr(tv_tensors, "KeyPoints") else (tv_tensors.BoundingBoxes,)


def spatial_size(flat_inputs: list[Any]) -> tuple[int, int]:
    """The ``(H, W)`` shared by every image, video, mask, plain tensor, PIL image, box set and
    point set among a sample's inputs (public torchvision API only); an error names the sizes
    when they disagree or when there is none."""
    sizes = set()
    for x in flat_inputs:
        if isinstance(x, _CANVAS_TYPES):
            sizes.add(tuple(int(v) for v in x.canvas_size))
        elif isinstance(x, PIL.Image.Image):
            sizes.add((x.height, x.width))
        elif isinstance(x, (tv_tensors.Image, tv_tensors.Video, tv_tensors.Mask)) or _is_plain_tensor(x):
            shape = x.shape  # once: a tv_tensor's shape and ndim each cost a dispatch
            if len(shape) >= 2:
                sizes.add((int(shape[-2]), int(shape[-1])))
    if len(sizes) != 1:
        raise IaaaError(f"inputs: expected one spatial size (H, W) among images, masks and boxes, got {sorted(sizes) or 'none'}")
    return sizes.pop()


def _check_value(value: Any, what: str) -> tuple[float, float]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or float(value[0]) > float(value[1]):
            raise IaaaError(f"{what}: expected a number or a (lo, hi) pair with lo <= hi, got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), float(value)


def raw_fill(fill: float, dtype: torch.dtype) -> float:
    """Fill given as a fraction of the dtype's range -> raw pixel value."""
    return float(fill) * bound(dtype)


GEOM_OPTS = {"expand": False, "interpolation": "bilinear", "fill": 0.0}
