"""The search space: every op, its magnitude range and kind, read by both the policy search and
the runtime, plus :func:`apply_op`, the fast call the compositor makes on single cell objects.

Ranges were chosen to keep cells biologically plausible (the paper gives none); the reasoning
is in ``docs/ops.md``. ``magnitude`` in ``[0, 1]`` maps linearly onto ``magnitude_range``;
magnitude 0 is the identity for every op that has a magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import transforms as T
from ._common import as_param, check_labels, unbatch_image
from iaaa.errors import IaaaError
from iaaa.threads import serial

__all__ = ["OpSpec", "SPACE", "TABLE_S1", "EXTENDED", "apply_op"]


@dataclass(frozen=True)
class OpSpec:
    """One op of the search space.

    Attributes:
        name: the op's name (the paper's spelling).
        cls: the transform class (a ``torchvision.transforms.v2.Transform``).
        magnitude_range: ``(lo, hi)`` in the op's unit; magnitude ``m`` means ``lo + m * (hi - lo)``.
        geometric: moves pixels (labels, boxes and points follow); otherwise only intensities change.
        signed: the value is applied in a random direction (``+-``), as in RandAugment.
        has_magnitude: ``False`` for ops with nothing to tune (flips, AutoContrast, Equalize, Invert).
        unit: what ``magnitude_range`` measures.
    """

    name: str
    cls: type
    magnitude_range: tuple[float, float]
    geometric: bool
    signed: bool
    has_magnitude: bool
    unit: str

    def value(self, magnitude: float) -> float:
        """The unsigned value of ``magnitude`` in the op's unit."""
        lo, hi = self.magnitude_range
        return lo + float(magnitude) * (hi - lo)

    def __call__(self, p: float = 1.0, magnitude: float = 0.5, generator: torch.Generator | None = None, **kwargs: Any) -> T.Op:
        """A transform instance: ``SPACE["Rotate"](p=0.5, magnitude=0.3, generator=g)``."""
        return self.cls(p=p, magnitude=magnitude, generator=generator, **kwargs)


_UNITS = {
    "FlipLR": "-", "FlipUD": "-", "AutoContrast": "-", "Equalize": "-", "Invert": "-",
    "Rotate": "degrees", "Posterize": "bits removed of 8 (of 16 for uint16: twice)",
    "Contrast": "factor - 1", "Brightness": "factor - 1", "Sharpness": "factor - 1", "Color": "factor - 1",
    "Smooth": "Gaussian sigma, px", "Resize": "log2 of the scale factor",
    "ShearX": "shear factor", "ShearY": "shear factor",
    "TranslateX": "fraction of the width", "TranslateY": "fraction of the height",
    "Solarize": "1 - threshold (fraction of the range)", "Cutout": "side / shorter image side",
    "CropBilinear": "fraction removed from each side length",
}

TABLE_S1: tuple[str, ...] = (
    "FlipLR", "FlipUD", "AutoContrast", "Equalize", "Rotate", "Posterize",
    "Contrast", "Brightness", "Sharpness", "Smooth", "Resize",
)
"""The 11 ops of the paper's Table S1, in its order."""

EXTENDED: tuple[str, ...] = (
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Solarize", "Invert", "Color", "Cutout", "CropBilinear",
)
"""The further ops of the paper's Figure S11."""


def _spec(name: str) -> OpSpec:
    cls = getattr(T, name)
    return OpSpec(name, cls, tuple(float(v) for v in cls.magnitude_range), cls.geometric, cls.signed, cls.has_magnitude, _UNITS[name])


SPACE: dict[str, OpSpec] = {name: _spec(name) for name in TABLE_S1 + EXTENDED}
"""Op name -> :class:`OpSpec`, Table S1 first, then the Figure S11 extensions."""


def apply_op(
    name: str,
    image: torch.Tensor,
    labels: torch.Tensor | None = None,
    magnitude: float | torch.Tensor = 0.5,
    generator: torch.Generator | None = None,
    expand: bool = False,
    *,
    sign: float | torch.Tensor | None = None,
    **options: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply op ``name`` to an image and its label map.

    Args:
        name: a key of :data:`SPACE`.
        image: ``(C, H, W)`` or ``(B, C, H, W)``, uint8, uint16 or float.
        labels: ``(H, W)`` or ``(B, H, W)`` integer label map, or ``None``.
        magnitude: in ``[0, 1]``, one value or one per sample.
        generator: source of the signs of signed ops and of random positions (Cutout,
            CropBilinear); ``None`` uses torch's global generator.
        expand: for Rotate, ShearX/Y, Resize and TranslateX/Y, fit the canvas to the result so
            an object is never cut (in a batch, samples share the largest canvas, each centred
            at a whole-pixel offset); ignored by the other ops.
        sign: force the direction of a signed op (``+1``/``-1``, one or one per sample)
            instead of drawing it.
        options: the op's keyword options (``interpolation``, ``fill``, ``antialias``,
            ``erase_labels``), as the transform class takes them.

    Returns:
        ``(image, labels)``: image in the input dtype, labels int64 (or ``None``). Photometric
        ops return the label map unchanged (int64). Outputs may share memory with the inputs
        when an op leaves them unchanged.
    """
    spec = SPACE.get(name)
    if spec is None:
        raise IaaaError(f"unknown op {name!r}; known ops: {', '.join(SPACE)}")
    cls = spec.cls
    img, batched = unbatch_image(image)
    b, _, h, w = img.shape
    lab = None
    if labels is not None:
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels: expected a torch.Tensor or None, got {type(labels).__name__}")
        want = 3 if batched else 2
        if labels.ndim != want:
            raise IaaaError(f"labels: expected shape {'(B, H, W)' if batched else '(H, W)'} for an image of shape {tuple(image.shape)}, got {tuple(labels.shape)}")
        lab = check_labels(labels if batched else labels.unsqueeze(0), (h, w), b)
        if lab.dtype != torch.int64:
            lab = lab.to(torch.int64)
    m = as_param(magnitude, b, "magnitude")
    # One value (the single-object case): checked as a Python float, numpy costs more.
    if not (0.0 <= m[0] <= 1.0 if m.size == 1 else ((m >= 0) & (m <= 1)).all()):
        raise IaaaError(f"magnitude: must be in [0, 1], got {m.tolist()}")
    if (spec.signed or cls.n_random) and m.shape[0] != b:
        m = np.broadcast_to(m, (b,))  # one draw per sample
    sg = None
    if sign is not None and spec.signed:
        sg = as_param(sign, b, "sign")
        if not (abs(sg[0]) == 1.0 if sg.size == 1 else (np.abs(sg) == 1).all()):
            raise IaaaError(f"sign: must be +1 or -1, got {sg.tolist()}")
    for k in options:
        if k not in cls.default_options or k == "expand":
            raise TypeError(f"{name}: unexpected option {k!r}; accepts {', '.join(cls.default_options) or 'none'}")
    opts = {**cls.default_options, **options} if options else cls.default_options
    param, rand = cls.draw(m, generator, sg)
    out, lab = _run(cls, img, lab, param, rand, bool(expand), opts)
    if not batched:
        return out[0], None if lab is None else lab[0]
    return out, lab


def _run(cls: type, img: torch.Tensor, lab: torch.Tensor | None, param: np.ndarray, rand: np.ndarray, expand: bool, opts: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    params = cls.prepare_params(param, tuple(img.shape[-2:]), rand, expand, opts)
    with serial(img.numel()):
        out = cls.apply_image(img, params, opts)
        return out, None if lab is None else cls.apply_labels(lab, params, opts)
