"""Functional kernels on batched tensors, one pure function per op.

Images are ``(B, C, H, W)`` (uint8, uint16 or float in ``[0, 1]``), label maps ``(B, H, W)``
integer, and parameters a number or a tensor of ``B`` values (one per sample). The same code
runs on CPU and CUDA. Geometric ops return ``(image, labels)``; they are thin wrappers around a
:class:`~iaaa.ops.geometric.Warp` builder and :func:`warp_image` / :func:`warp_labels`, which you
can also call directly (e.g. to move boxes with :func:`warp_boxes`). Photometric kernels return
the image only: they never touch labels.
"""

from __future__ import annotations

import torch

from ._common import ParamLike, as_param, check_image, check_labels
from .geometric import (
    Warp,
    antialias_source,
    crop_warp,
    flip_warp,
    resize_warp,
    resized_labels_on_host,
    rotate_warp,
    scale_warp,
    shear_warp,
    translate_warp,
    warp_boxes,
    warp_image,
    warp_labels,
    warp_points,
)
from .photometric import (
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    adjust_sharpness,
    autocontrast,
    cutout,
    cutout_labels,
    equalize,
    gaussian_blur,
    invert,
    posterize,
    solarize,
)

__all__ = [
    "Warp", "flip_warp", "resize_warp", "rotate_warp", "shear_warp", "scale_warp", "translate_warp", "crop_warp",
    "warp_image", "warp_labels", "warp_boxes", "warp_points", "antialias_source",
    "hflip", "vflip", "rotate", "shear", "translate", "resize", "crop_resize", "resize_labels",
    "invert", "solarize", "posterize", "autocontrast", "equalize", "adjust_brightness",
    "adjust_contrast", "adjust_saturation", "adjust_sharpness", "gaussian_blur", "cutout", "cutout_labels",
]

Pair = tuple[torch.Tensor, "torch.Tensor | None"]


def _apply(image: torch.Tensor, labels: torch.Tensor | None, warp: Warp, interpolation: str, fill: float) -> Pair:
    out = warp_image(image, warp, interpolation, fill)
    return out, None if labels is None else warp_labels(labels, warp)


def _size(image: torch.Tensor, labels: torch.Tensor | None) -> tuple[int, int]:
    check_image(image)
    check_labels(labels, tuple(image.shape[-2:]), image.shape[0])
    return int(image.shape[-2]), int(image.shape[-1])


def hflip(image: torch.Tensor, labels: torch.Tensor | None = None) -> Pair:
    """Mirror left-right (exact)."""
    return _apply(image, labels, flip_warp(_size(image, labels), True), "nearest", 0.0)


def vflip(image: torch.Tensor, labels: torch.Tensor | None = None) -> Pair:
    """Mirror top-bottom (exact)."""
    return _apply(image, labels, flip_warp(_size(image, labels), False), "nearest", 0.0)


def rotate(image: torch.Tensor, labels: torch.Tensor | None = None, angle: ParamLike = 0.0, expand: bool = False, interpolation: str = "bilinear", fill: float = 0.0) -> Pair:
    """Rotate counter-clockwise by ``angle`` degrees per sample; ``fill`` is a raw pixel value."""
    return _apply(image, labels, rotate_warp(_size(image, labels), angle, expand), interpolation, fill)


def shear(image: torch.Tensor, labels: torch.Tensor | None = None, factor: ParamLike = 0.0, axis: str = "x", expand: bool = False, interpolation: str = "bilinear", fill: float = 0.0) -> Pair:
    """Shear by ``factor`` per sample along ``axis`` about the centre."""
    return _apply(image, labels, shear_warp(_size(image, labels), factor, axis, expand), interpolation, fill)


def translate(image: torch.Tensor, labels: torch.Tensor | None = None, pixels: ParamLike = 0.0, axis: str = "x", expand: bool = False, fill: float = 0.0) -> Pair:
    """Shift by whole ``pixels`` per sample along ``axis`` (exact)."""
    return _apply(image, labels, translate_warp(_size(image, labels), pixels, axis, expand), "nearest", fill)


def resize(image: torch.Tensor, labels: torch.Tensor | None = None, scale: ParamLike = 1.0, expand: bool = True, interpolation: str = "bilinear", antialias: bool = True, fill: float = 0.0) -> Pair:
    """Scale by ``scale`` per sample: a true resize with ``expand`` (default), a zoom in the same
    canvas without. Downscaled images are Gaussian pre-filtered when ``antialias``."""
    warp = scale_warp(_size(image, labels), scale, expand)
    source = antialias_source(image, as_param(scale, image.shape[0], "scale")) if antialias and interpolation == "bilinear" else None
    out = warp_image(image, warp, interpolation, fill, source)
    return out, None if labels is None else warp_labels(labels, warp)


def crop_resize(image: torch.Tensor, labels: torch.Tensor | None = None, box: ParamLike = (0.0, 0.0, 1.0, 1.0), interpolation: str = "bilinear") -> Pair:
    """Resample the window ``box = (x0, y0, x1, y1)`` (edge coordinates, one row per sample)
    to the full canvas."""
    return _apply(image, labels, crop_warp(_size(image, labels), box), interpolation, 0.0)


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Label maps ``(B, H, W)`` or ``(H, W)`` resampled to ``size`` by nearest (pixel centres
    aligned; no value invented): the one way the library resizes a label map."""
    lab = labels if labels.ndim == 3 else labels.unsqueeze(0)
    out_size = (int(size[0]), int(size[1]))
    out = resized_labels_on_host(lab, out_size) if min(out_size) >= 1 else None
    if out is None:
        out = warp_labels(lab, resize_warp(tuple(lab.shape[-2:]), out_size))
    return out if labels.ndim == 3 else out[0]
