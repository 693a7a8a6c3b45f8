"""Training and inference of the judge's U-Net: the fixed-budget loop over a
:class:`~iaaa.judge.protocols.StepComposer`, and whole-image prediction back at the label maps'
resolution.

On CPU a run is bit-identical for a seed; on CUDA, cuDNN may pick non-deterministic kernels.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.nn import functional as F

from iaaa.judge.protocols import StepComposer
from iaaa.judge.recipe import Recipe
from iaaa.judge.targets import instances_from_classes
from iaaa.judge.train_data import Prepared, derived_generator
from iaaa.judge.unet import UNet

__all__ = ["CLASS_WEIGHTS", "train_segmenter", "predict_classes", "predict_instances"]

CLASS_WEIGHTS = (1.0, 1.0, 2.0)  # boundaries are rare and decide whether touching cells split


def train_segmenter(
    composer: StepComposer,
    recipe: Recipe,
    *,
    at_curve: Callable[[int, UNet], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> UNet:
    """Train a :class:`~iaaa.judge.unet.UNet` from scratch (weights from stream 0 of the
    composer's seed) for ``recipe.steps`` Adam steps (learning rate ``recipe.lr``, cosine decay
    to 0) on the composer's steps. ``at_curve(step, model)`` is called after each of
    ``recipe.curve_steps()`` (the model in eval mode; training resumes afterwards)."""
    device = torch.device(recipe.device)
    channels = composer.real[0].image.shape[0]
    model = UNet(channels, 3, recipe.width, recipe.depth, generator=derived_generator(composer.seed, 0)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    weights = torch.tensor(CLASS_WEIGHTS, dtype=torch.float32, device=device)
    marks = set(recipe.curve_steps())
    model.train()
    for step in range(recipe.steps):
        for group in opt.param_groups:
            group["lr"] = recipe.lr * 0.5 * (1 + math.cos(math.pi * step / recipe.steps))
        batch = composer.next()
        loss = F.cross_entropy(model(batch.images.to(device)), batch.targets.to(device), weight=weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log is not None and (step + 1) % max(1, recipe.steps // 5) == 0:
            log(f"step {step + 1}/{recipe.steps} loss {float(loss.detach()):.4f}")
        if at_curve is not None and step + 1 in marks:
            at_curve(step + 1, model.eval())
            model.train()
    return model.eval()


@torch.no_grad()
def predict_classes(model: UNet, prepared: Prepared, device: str | torch.device = "cpu") -> torch.Tensor:
    """3-class map ``(H, W)`` at the native label map's resolution: the class probabilities at
    the working scale (padding removed) are resized bilinearly to the native size before the
    argmax."""
    model.eval()
    h, w = prepared.native.shape
    prob = torch.softmax(model(prepared.image[None].to(device)), 1)
    sh, sw = prepared.size
    top, left = (prob.shape[-2] - sh) // 2, (prob.shape[-1] - sw) // 2
    prob = prob[..., top : top + sh, left : left + sw]
    if (sh, sw) != (h, w):
        prob = F.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False)
    return prob[0].argmax(0).cpu()


def predict_instances(model: UNet, prepared: Prepared, device: str | torch.device = "cpu", min_area: int = 10) -> torch.Tensor:
    """Instance label map at native resolution (see :func:`predict_classes` and
    :func:`~iaaa.judge.targets.instances_from_classes`)."""
    return instances_from_classes(predict_classes(model, prepared, device), min_area=min_area)
