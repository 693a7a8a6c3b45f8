"""Training and inference of the judge's U-Net: image preparation, paired random crops, the
fixed-budget training loop, and whole-image prediction back at the label maps' resolution.

Determinism: the weights come from ``Generator(seed)``, the real crops from their own
generator and the synthetic crops from a third one. Every step draws a full batch of real
crop parameters and uses the first ``n_real`` of them, so for one seed the real part of every
batch is identical whatever synthetic data (if any) fills the rest: differences between
training sets are paired. On CPU a run is bit-identical for a seed; on CUDA, cuDNN may pick
non-deterministic kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from iaaa.dtypes import to_float
from iaaa.errors import IaaaError
from iaaa.judge.targets import class_targets, instances_from_classes
from iaaa.judge.unet import UNet
from iaaa.structures import as_annotated

__all__ = ["Prepared", "normalize_image", "prepare", "dihedral", "train_segmenter", "predict_classes", "predict_instances", "derived_generator"]


@dataclass
class Prepared:
    """One image ready for training or inference at the working scale: ``image`` float32
    ``(C, h, w)`` normalised, ``classes`` int64 ``(h, w)`` 3-class targets, both centred in a
    reflect padding up to at least the crop size; ``size`` is the working size before padding;
    ``native`` is the label map at its own resolution (for scoring)."""

    image: torch.Tensor
    classes: torch.Tensor
    native: torch.Tensor
    size: tuple[int, int]
    name: str = ""


def derived_generator(seed: int, stream: int) -> torch.Generator:
    """Generator of stream ``stream`` of seed ``seed`` (independent streams for weights, real
    crops and synthetic crops)."""
    from iaaa.data.dataset import sample_generator

    return sample_generator(seed, stream, epoch=7919)


def normalize_image(image: torch.Tensor, low: float = 1.0, high: float = 99.5) -> torch.Tensor:
    """Float32 ``(C, H, W)``: each channel mapped so its ``low`` / ``high`` percentiles go to 0 / 1
    (uint8 and uint16 through :func:`iaaa.dtypes.to_float` first), so 8-bit fluorescence and
    16-bit phase contrast reach the network on the same footing."""
    x = to_float(image).float()
    flat = x.flatten(1)
    sub = flat[:, :: max(1, flat.shape[1] // 1_000_000)]  # quantiles of a subsample suffice
    q = torch.quantile(sub, torch.tensor([low / 100, high / 100], device=x.device), dim=1)
    lo, hi = q[0].view(-1, 1, 1), q[1].view(-1, 1, 1)
    return (x - lo) / (hi - lo).clamp_min(1e-6)


def _pad_to(x: np.ndarray, size: int) -> np.ndarray:
    ph, pw = max(0, size - x.shape[-2]), max(0, size - x.shape[-1])
    if not (ph or pw):
        return x
    pad = [(0, 0)] * (x.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
    # numpy reflects repeatedly, so images far smaller than the crop still fill it.
    return np.pad(x, pad, mode="reflect" if min(x.shape[-2:]) > 1 else "edge")


def prepare(sample: Any, scale: float = 1.0, crop: int = 0, boundary: int = 1) -> Prepared:
    """Normalise an annotated image, resize it by ``scale`` (area-averaged image, nearest labels),
    build its 3-class targets (boundary ``boundary`` px at the working scale) and reflect-pad
    both to at least ``crop`` pixels per side."""
    s = as_annotated(sample)
    img = normalize_image(s.image)
    lab = s.labels
    if scale != 1.0:
        h, w = s.size
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        img = F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        lab = F.interpolate(lab[None, None].double(), size=size, mode="nearest")[0, 0].long()
    cls = class_targets(lab, boundary)
    size = (int(cls.shape[0]), int(cls.shape[1]))
    if crop:
        img = torch.from_numpy(_pad_to(img.cpu().numpy(), crop))
        cls = torch.from_numpy(_pad_to(cls.cpu().numpy(), crop))
    return Prepared(img.contiguous(), cls.contiguous(), s.labels, size, s.name)


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips/right-angle rotations of the last two dims (``k`` in 0..7)."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def _draw(n: int, pool: Sequence[Prepared], crop: int, g: torch.Generator) -> list[tuple[int, int, int, int]]:
    """``n`` crop parameters ``(image, y, x, dihedral k)`` drawn uniformly from ``g``."""
    u = torch.rand((n, 4), generator=g, dtype=torch.float64)
    out = []
    for row in u.tolist():
        i = min(int(row[0] * len(pool)), len(pool) - 1)
        h, w = pool[i].classes.shape
        y = min(int(row[1] * (h - crop + 1)), h - crop)
        x = min(int(row[2] * (w - crop + 1)), w - crop)
        out.append((i, y, x, min(int(row[3] * 8), 7)))
    return out


def _batch(pool: Sequence[Prepared], params: list[tuple[int, int, int, int]], crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    imgs, clss = [], []
    for i, y, x, k in params:
        p = pool[i]
        imgs.append(dihedral(p.image[:, y : y + crop, x : x + crop], k))
        clss.append(dihedral(p.classes[y : y + crop, x : x + crop], k))
    return torch.stack(imgs), torch.stack(clss)


def train_segmenter(
    real: Sequence[Prepared],
    synthetic: Sequence[Prepared] | None = None,
    *,
    seed: int = 0,
    steps: int = 1500,
    crop: int = 96,
    batch_size: int = 8,
    ratio: float = 1.0,
    width: int = 16,
    depth: int = 3,
    lr: float = 2e-3,
    class_weights: Sequence[float] = (1.0, 1.0, 2.0),
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = None,
) -> UNet:
    """Train a :class:`~iaaa.judge.unet.UNet` from scratch for ``steps`` Adam steps (learning
    rate ``lr``, cosine decay to 0) on random ``crop`` px crops, each flipped/rotated at random.

    Without ``synthetic`` every batch holds ``batch_size`` real crops. With it, ``round(
    batch_size * ratio / (1 + ratio))`` of them (at least 1, at most ``batch_size - 1``) are
    replaced by synthetic crops: ``ratio`` is synthetic:real per batch (1.0, the paper's ~1:1)."""
    if not real:
        raise IaaaError("train_segmenter: no real training images")
    if steps < 1 or batch_size < 2 or crop < 8:
        raise IaaaError(f"train_segmenter: need steps >= 1, batch_size >= 2, crop >= 8, got {steps}, {batch_size}, {crop}")
    channels = real[0].image.shape[0]
    for p in [*real, *(synthetic or [])]:
        if p.image.shape[0] != channels:
            raise IaaaError(f"{p.name or 'image'}: {p.image.shape[0]} channels, the first training image has {channels}")
        if min(p.classes.shape) < crop:
            raise IaaaError(f"{p.name or 'image'}: {tuple(p.classes.shape)} is smaller than the crop {crop}; prepare() it with crop={crop}")
    n_syn = 0
    if synthetic:
        if not ratio > 0:
            raise IaaaError(f"ratio: synthetic:real per batch must be > 0, got {ratio}")
        n_syn = min(batch_size - 1, max(1, round(batch_size * ratio / (1 + ratio))))
    n_real = batch_size - n_syn
    device = torch.device(device)
    model = UNet(channels, 3, width, depth, generator=derived_generator(seed, 0)).to(device)
    g_real, g_syn = derived_generator(seed, 1), derived_generator(seed, 2)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    weights = torch.tensor(list(class_weights), dtype=torch.float32, device=device)
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        x, y = _batch(real, _draw(batch_size, real, crop, g_real)[:n_real], crop)
        if n_syn:
            xs, ys = _batch(synthetic, _draw(n_syn, synthetic, crop, g_syn), crop)
            x, y = torch.cat([x, xs]), torch.cat([y, ys])
        loss = F.cross_entropy(model(x.to(device)), y.to(device), weight=weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log is not None and (step + 1) % max(1, steps // 5) == 0:
            log(f"step {step + 1}/{steps} loss {float(loss.detach()):.4f}")
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
