"""Perceptual losses for the Pix2Pix generator, all offline.

The paper compares VGG activations of generated and real images. No weights are downloaded
here, ever; three sources of features are supported:

* ``perceptual_weights=PATH``: a local torchvision VGG16 or VGG19 state dict (the paper's
  choice; the architecture is read off the keys). Activations after relu1_2, relu2_2 and
  relu3_3 (VGG19: relu3_4), grey images repeated to RGB, ImageNet normalisation.
* ``"wae"`` (the default): the convolutional encoder of a :class:`~iaaa.policy.wae.WAE` fitted
  on the training data's cell objects, i.e. features of an autoencoder that has seen these
  cells. Every conv activation is compared.
* ``"random"``: the same encoder with its random initial weights (a fixed random filter bank;
  it still compares local structure at several scales, and needs no training).

``"none"`` turns the term off. Which default gives better images is measured in
``benchmarks/saaa.py`` (see benchmarks/saaa.md).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from torch import nn

from iaaa.errors import IaaaError
from iaaa.torchfile import load_torch_file

__all__ = ["PERCEPTUAL_CHOICES", "FeatureLoss", "vgg_features", "wae_encoder_features", "build_perceptual"]

#: Named choices for ``perceptual`` besides a file path.
PERCEPTUAL_CHOICES = ("wae", "random", "none")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureLoss(nn.Module):
    """Mean L1 distance between the activations of ``layers`` (a sequence of modules run in
    order; activations are taken after each index in ``taps``) for two image batches in
    ``[-1, 1]``. ``prepare`` maps those images to the network's input. Frozen, eval mode."""

    def __init__(self, layers: nn.Sequential, taps: Sequence[int], prepare: nn.Module) -> None:
        super().__init__()
        self.layers = layers[: max(taps) + 1]
        self.taps = set(int(t) for t in taps)
        self.prepare = prepare
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FeatureLoss":  # frozen: stays in eval mode
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.prepare(x)
        out = []
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i in self.taps:
                out.append(h)
        return out

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        ff, fr = self.features(fake), self.features(real)
        return sum((a - b).abs().mean() for a, b in zip(ff, fr)) / len(ff)


class _ToVGGInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 2:
            x = torch.cat([x, x.mean(1, keepdim=True)], 1)
        elif x.shape[1] > 3:
            x = x[:, :3]
        return (x - self.mean) / self.std


class _ToWAEInput(nn.Module):
    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2) / self.scale


def vgg_features(path: str | os.PathLike) -> FeatureLoss:
    """Perceptual loss on a local torchvision VGG16/VGG19 state dict (full model or
    ``features.*`` keys). Raises :class:`IaaaError` naming the file when it is missing or is
    not such a state dict."""
    from torchvision.models import vgg16, vgg19

    if not os.path.isfile(path):
        raise IaaaError(f"{path}: no such perceptual weights file (a torchvision VGG16/VGG19 state dict)")
    state = load_torch_file(path, "perceptual weights")
    if not isinstance(state, dict):
        raise IaaaError(f"{path}: expected a VGG state dict, got {type(state).__name__}")
    features = {k[len("features."):]: v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    is19 = "34.weight" in features
    with torch.random.fork_rng(devices=[]):
        net = (vgg19 if is19 else vgg16)(weights=None).features
    try:
        net.load_state_dict(features)
    except RuntimeError as exc:
        raise IaaaError(f"{path}: not a torchvision VGG16/VGG19 state dict ({str(exc).splitlines()[0]})") from exc
    taps = (3, 8, 17) if is19 else (3, 8, 15)
    return FeatureLoss(net, taps, _ToVGGInput())


def wae_encoder_features(wae: Any) -> FeatureLoss:
    """Perceptual loss on the conv layers of a WAE encoder (any input size)."""
    convs = [m for m in wae.encoder if not isinstance(m, nn.Flatten)]
    seq = nn.Sequential(*[_copy(m) for m in convs])
    taps = [i for i, m in enumerate(seq) if isinstance(m, nn.LeakyReLU)]
    return FeatureLoss(seq, taps, _ToWAEInput(wae.scale))


def _copy(m: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(m)


def build_perceptual(spec: str | os.PathLike | None, objects: Sequence[Any] | None, channels: int, seed: int = 0, wae_epochs: int = 30) -> tuple[FeatureLoss | None, Any]:
    """``(loss, wae)`` for a ``perceptual`` choice: a VGG weights path, ``"wae"`` (fit on
    ``objects``, cell objects of the training data), ``"random"`` or ``"none"``/``None``. The
    fitted WAE (or None) is returned too so a caller can store it."""
    from iaaa.policy.wae import WAE, WAEConfig, fit_wae

    if spec is None or spec == "none":
        return None, None
    if spec == "random":
        wae = WAE(WAEConfig(in_channels=channels, input_scale=(1.0,) * channels), generator=torch.Generator().manual_seed(seed))
        return wae_encoder_features(wae), None
    if spec == "wae":
        if not objects or len(objects) < 2:
            raise IaaaError("perceptual='wae' needs at least 2 cell objects in the training data to fit the autoencoder")
        wae = fit_wae(objects, size=32, epochs=wae_epochs, seed=seed, num_threads=None)
        return wae_encoder_features(wae), wae
    if isinstance(spec, str) and spec in PERCEPTUAL_CHOICES:
        raise AssertionError(spec)
    return vgg_features(spec), None
