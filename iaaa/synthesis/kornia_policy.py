"""A Kornia augmentation pipeline as a per-object policy, with exact masks.

``CellCompositor(policy=K.AugmentationSequential(..., data_keys=["input", "mask"]))`` works:
:func:`~iaaa.synthesis.object_policy.as_object_policy` wraps such a pipeline in
:class:`KorniaPolicy`, which makes it keep the library's contracts:

* **Exact labels.** Kornia moves a mask through every geometric op in turn (nearest each time,
  on a float copy). Here the pipeline's composed transformation matrix moves the label map
  *once*, with the op stack's nearest gather (:func:`iaaa.ops.functional.warp_labels`), in the
  label map's own integer dtype: every output label is an input label at the position the
  image's pixel came from, so no value is invented and ids of any size survive. That matrix
  holds only Kornia's matrix ops (``GeometricAugmentationBase2D``): a pipeline with any other
  geometric op (``RandomElasticTransform``) or a projective one (``RandomPerspective``) moves
  its labels by Kornia's own nearest mask path instead, run on ids renumbered ``0..n`` (exact in
  float) and mapped back, and checked to hold only input labels. An op with no mask transform
  at all (``RandomThinPlateSpline``, ``RandomFisheye``) is refused when the policy is built,
  naming the op: its labels could not follow the image.
* **Randomness from the generator.** Kornia draws its parameters from torch's global RNG. The
  call draws one seed from the given generator and runs the pipeline inside
  :func:`torch.random.fork_rng` seeded with it, so a call is a function of the generator alone
  and the caller's global RNG state is left exactly as it was.
* **Image dtype and channels kept**, or an :class:`~iaaa.errors.IaaaError` naming the pipeline.

Kornia's kernels are not used anywhere else: on the CPU the library's own ops are faster
(``benchmarks/ops.py``, which times Kornia as a peer); whether Kornia beats them on CUDA has not
been measured yet.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from iaaa.errors import IaaaError

__all__ = ["KorniaPolicy", "is_kornia_pipeline"]


def is_kornia_pipeline(policy: Any) -> bool:
    """Is ``policy`` a ``kornia.augmentation.AugmentationSequential``? (Reads ``sys.modules``
    only: a pipeline exists only once Kornia is imported, so Kornia is never imported here.)"""
    aug = sys.modules.get("kornia.augmentation")
    return aug is not None and isinstance(policy, aug.AugmentationSequential)


class KorniaPolicy:
    """Per-object policy running a ``kornia.augmentation.AugmentationSequential`` built with
    ``data_keys=["input", "mask"]`` (see module docs)."""

    def __init__(self, pipeline: Any) -> None:
        if not is_kornia_pipeline(pipeline):
            raise TypeError(f"policy: expected a kornia.augmentation.AugmentationSequential, got {type(pipeline).__name__}")
        keys = [getattr(k, "name", str(k)).lower() for k in getattr(pipeline, "data_keys", [])]
        if keys != ["input", "mask"] and keys != ["image", "mask"]:
            raise IaaaError(f"policy: a Kornia pipeline must be built with data_keys=['input', 'mask'] so masks follow the image, got {keys}")
        self.pipeline = pipeline
        # Ops outside the composed matrix: their labels must go through Kornia's mask path.
        self.non_matrix_ops = _non_matrix_ops(pipeline)

    def __repr__(self) -> str:
        return f"KorniaPolicy({self.pipeline!r})"

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        seed = int(torch.randint(0, 2**62, (), generator=g, device=g.device))
        devices = [image.device.index or 0] if image.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            # Kornia takes masks as float: ids renumbered 0..n stay exact there, whatever their size.
            # 0 stays 0 (ids[0]), so what Kornia pads with is background, never a cell.
            ids = torch.cat([labels.new_zeros(1), labels.flatten()]).unique()
            compact = torch.searchsorted(ids, labels)
            out, mask = self.pipeline(image.unsqueeze(0), compact.to(torch.float32)[None, None])
            matrix = getattr(self.pipeline, "transform_matrix", None)
        out = out[0]
        if out.ndim != 3 or out.shape[0] != image.shape[0]:
            raise IaaaError(f"policy: the Kornia pipeline turned a {tuple(image.shape)} object into {tuple(out.shape)}; it must keep the channel count")
        out = out.to(image.dtype)
        size = tuple(out.shape[-2:])
        affine = None if self.non_matrix_ops else _affine_part(matrix)
        if affine is not None:
            from iaaa.ops.functional import Warp, warp_labels

            warp = Warp(affine, tuple(labels.shape), size)
            return out, warp_labels(labels.unsqueeze(0), warp)[0].to(torch.int64)
        lab = mask[0, 0]
        moved = lab.round().to(torch.int64)
        ops = ", ".join(self.non_matrix_ops) or "a projective op"
        if tuple(moved.shape) != size or not bool(torch.equal(moved.to(lab.dtype), lab)) or int(moved.min()) < 0 or int(moved.max()) >= ids.numel():
            raise IaaaError(f"policy: the Kornia pipeline's mask path ({ops}) invented label values; keep its mask resampling nearest (the default extra_args)")
        return out, ids[moved]


def _non_matrix_ops(pipeline: Any) -> list[str]:
    """Names of the pipeline's geometric ops that its transformation matrix does not describe;
    raises naming an op that has no mask transform at all."""
    from kornia.augmentation import AugmentationBase2D, GeometricAugmentationBase2D, IntensityAugmentationBase2D

    names = []
    for op in pipeline.modules():
        if not isinstance(op, AugmentationBase2D) or isinstance(op, (IntensityAugmentationBase2D, GeometricAugmentationBase2D)):
            continue
        name = type(op).__name__
        # Kornia's base class raises NotImplementedError for masks; such an op moves the image
        # and cannot move its labels, so the policy is refused before any object is drawn.
        if type(op).apply_transform_mask is AugmentationBase2D.apply_transform_mask:
            raise IaaaError(f"policy: the Kornia op {name} has no mask transform, so labels cannot follow the image it warps; remove it from the object policy")
        names.append(name)
    return names


def _affine_part(matrix: torch.Tensor | None) -> np.ndarray | None:
    """The ``(1, 2, 3)`` output -> input pixel map of a forward 3x3 Kornia transformation
    matrix when it is affine, else ``None`` (none computed, or projective)."""
    if matrix is None:
        return None
    m = matrix.detach().to("cpu", torch.float64).reshape(-1, 3, 3)[0].numpy()
    if not np.allclose(m[2], (0.0, 0.0, 1.0), atol=1e-9):
        return None
    return np.linalg.inv(m)[None, :2]
