"""Mask-aware augmentation ops: the paper's Table S1 and Figure S11 ops.

Three layers, one behaviour:

* :mod:`iaaa.ops.functional` — pure kernels on batched tensors with per-sample parameters;
* the transform classes (:class:`Rotate`, :class:`Equalize`, ...) — ``torchvision.transforms.v2``
  transforms with a uniform ``Op(p, magnitude, generator)`` constructor, each a thin spec
  (``prepare_params``, ``apply_image``, ``apply_labels``) over the functional kernels;
* :data:`SPACE` — op name -> :class:`OpSpec` (class, magnitude range, geometric, signed), the
  single table that both the policy search and the runtime read, and :func:`apply_op`, which
  draws parameters and calls the same spec without building a transform.

Geometric ops move label maps with nearest sampling, photometric ops never touch them; no op
invents a label value; magnitude 0 is the identity.
"""

from __future__ import annotations

from . import functional
from .space import EXTENDED, SPACE, TABLE_S1, OpSpec, apply_op
from .transforms import (
    AutoContrast,
    Brightness,
    Color,
    Contrast,
    CropBilinear,
    Cutout,
    Equalize,
    FlipLR,
    FlipUD,
    Invert,
    Op,
    Posterize,
    Resize,
    Rotate,
    Sharpness,
    ShearX,
    ShearY,
    Smooth,
    Solarize,
    TranslateX,
    TranslateY,
)

__all__ = [
    "functional", "SPACE", "TABLE_S1", "EXTENDED", "OpSpec", "apply_op", "Op",
    "FlipLR", "FlipUD", "AutoContrast", "Equalize", "Rotate", "Posterize", "Contrast", "Brightness",
    "Sharpness", "Smooth", "Resize", "ShearX", "ShearY", "TranslateX", "TranslateY", "Solarize",
    "Invert", "Color", "Cutout", "CropBilinear",
]
