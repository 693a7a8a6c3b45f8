"""A Kornia augmentation pipeline as a per-object policy, with exact masks.

``CellCompositor(policy=K.AugmentationSequential(..., data_keys=["input", "mask"]))`` works:
:func:`~iaaa.synthesis.object_policy.as_object_policy` wraps such a pipeline in
:class:`KorniaPolicy`, which makes it keep the library's contracts:

* **Exact labels.** Kornia moves a mask through every geometric op in turn (nearest each time,
  on a float copy). Here the pipeline's composed transformation matrix moves the label map
  *once*, with the op stack's nearest gather (:func:`iaaa.ops.functional.warp_labels`), in the
  label map's own integer dtype: every output label is an input label at the position the
  image's pixel came from, so no value is invented and ids of any size survive. A pipeline whose
  geometry is not one affine map (elastic, thin-plate, fisheye, perspective) falls back to
  Kornia's own nearest mask path, and its output is checked to hold only input labels.
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

    def __repr__(self) -> str:
        return f"KorniaPolicy({self.pipeline!r})"

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        seed = int(torch.randint(0, 2**62, (), generator=g, device=g.device))
        devices = [image.device.index or 0] if image.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            # Kornia takes masks as float; the float copy only matters on the fallback path.
            out, mask = self.pipeline(image.unsqueeze(0), labels.to(image.dtype)[None, None])
            matrix = getattr(self.pipeline, "transform_matrix", None)
        out = out[0]
        if out.ndim != 3 or out.shape[0] != image.shape[0]:
            raise IaaaError(f"policy: the Kornia pipeline turned a {tuple(image.shape)} object into {tuple(out.shape)}; it must keep the channel count")
        out = out.to(image.dtype)
        size = tuple(out.shape[-2:])
        affine = _affine_part(matrix)
        if affine is not None:
            from iaaa.ops.functional import Warp, warp_labels

            warp = Warp(affine, tuple(labels.shape), size)
            return out, warp_labels(labels.unsqueeze(0), warp)[0].to(torch.int64)
        lab = mask[0, 0]
        moved = lab.round().to(torch.int64)
        if tuple(moved.shape) != size or not bool(torch.equal(moved.to(lab.dtype), lab)) or not bool(torch.isin(moved.unique(), labels.unique()).all()):
            raise IaaaError("policy: the Kornia pipeline's mask path invented label values; keep its mask resampling nearest (the default extra_args)")
        return out, moved


def _affine_part(matrix: torch.Tensor | None) -> np.ndarray | None:
    """The ``(1, 2, 3)`` output -> input pixel map of a forward 3x3 Kornia transformation
    matrix when it is affine, else ``None`` (none computed, or projective)."""
    if matrix is None:
        return None
    m = matrix.detach().to("cpu", torch.float64).reshape(-1, 3, 3)[0].numpy()
    if not np.allclose(m[2], (0.0, 0.0, 1.0), atol=1e-9):
        return None
    return np.linalg.inv(m)[None, :2]
