"""The mask-to-image generator (paper section 4.2): Pix2Pix with the paper's three changes.

* :class:`UNetGenerator`: the Pix2Pix U-Net (stride-2 4x4 convolutions down, transposed
  convolutions up, skip connections) with **self-attention at the bottleneck** (SAGAN-style,
  gated by a learned scale that starts at 0) and a **squeeze-and-excitation block** after every
  decoder stage. Input: the two mask channels of :mod:`iaaa.saaa.masks` plus one channel of
  Gaussian noise drawn from an explicit generator (Pix2Pix's dropout noise uses the global RNG,
  which this library never touches); output: the data's channel count in ``[-1, 1]`` (tanh).
* :class:`PatchDiscriminator`: the 70x70-style PatchGAN on ``(mask channels, image)`` pairs.
* :func:`pix2pix_losses`: adversarial (logistic) + L1 + perceptual
  (:mod:`iaaa.saaa.perceptual`) terms for one generator step, and the discriminator's loss.

Normalisation is GroupNorm rather than BatchNorm, so a sample does not depend on what else is
in its batch (a single ``sample()`` call equals the same image inside a batch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from iaaa.errors import IaaaError
from iaaa.saaa.fields import MAX_WIDTH, flag, integer, number
from iaaa.saaa.masks import MASK_CHANNELS

__all__ = ["Pix2PixConfig", "SelfAttention", "SqueezeExcitation", "UNetGenerator", "PatchDiscriminator", "generator_loss", "discriminator_loss", "init_weights"]


@dataclass
class Pix2PixConfig:
    """Shapes of the generator and discriminator (stored with their weights).

    Attributes:
        out_channels: image channels produced.
        base: width of the first generator level (doubles per level, capped at ``8 * base``).
        depth: stride-2 levels of the generator; inputs need sides divisible by ``2 ** depth``.
        disc_base: width of the discriminator's first layer.
        disc_layers: stride-2 layers of the discriminator.
        noise: add one Gaussian noise input channel.
        l1_weight, perceptual_weight: loss weights beside the adversarial term (weight 1).
    """

    out_channels: int = 1
    base: int = 32
    depth: int = 4
    disc_base: int = 32
    disc_layers: int = 3
    noise: bool = True
    l1_weight: float = 100.0
    perceptual_weight: float = 10.0

    def __post_init__(self) -> None:
        # Checked for type and bounds before any layer is built (configs come back from files).
        integer(self.out_channels, "out_channels", 1, 64)
        integer(self.base, "base", 1, MAX_WIDTH // 8)
        integer(self.depth, "depth", 1, 8)
        integer(self.disc_base, "disc_base", 1, MAX_WIDTH // 8)
        integer(self.disc_layers, "disc_layers", 1, 8)
        flag(self.noise, "noise")
        self.l1_weight = number(self.l1_weight, "l1_weight", 0.0, 1e6)
        self.perceptual_weight = number(self.perceptual_weight, "perceptual_weight", 0.0, 1e6)

    @property
    def in_channels(self) -> int:
        return MASK_CHANNELS + int(self.noise)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _groups(c: int) -> int:
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


class SelfAttention(nn.Module):
    """SAGAN self-attention over all positions; ``gamma`` starts at 0 so training begins from
    the plain U-Net and lets the long-range term in as it helps."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 8, 1)
        self.q = nn.Conv2d(channels, inner, 1)
        self.k = nn.Conv2d(channels, inner, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(x).flatten(2).transpose(1, 2)  # (B, HW, inner)
        k = self.k(x).flatten(2)  # (B, inner, HW)
        attn = torch.softmax(q @ k / q.shape[-1] ** 0.5, dim=-1)
        out = (self.v(x).flatten(2) @ attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out


class SqueezeExcitation(nn.Module):
    """Channel re-weighting from globally pooled features (Hu et al. 2018)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        inner = max(channels // reduction, 4)
        self.fc = nn.Sequential(nn.Linear(channels, inner), nn.ReLU(inplace=True), nn.Linear(inner, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


class UNetGenerator(nn.Module):
    """Pix2Pix U-Net, self-attention at the bottleneck, SE blocks in the decoder."""

    def __init__(self, config: Pix2PixConfig) -> None:
        super().__init__()
        self.config = config
        widths = [min(config.base * 2**i, config.base * 8) for i in range(config.depth)]
        self.down = nn.ModuleList()
        cin = config.in_channels
        for i, c in enumerate(widths):
            layers: list[nn.Module] = [nn.Conv2d(cin, c, 4, 2, 1)]
            if i > 0:
                layers.append(nn.GroupNorm(_groups(c), c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.down.append(nn.Sequential(*layers))
            cin = c
        self.attention = SelfAttention(widths[-1])
        self.up = nn.ModuleList()
        for i in reversed(range(config.depth)):
            cout = widths[i - 1] if i > 0 else config.base
            cin_up = widths[i] if i == config.depth - 1 else widths[i] * 2
            self.up.append(nn.Sequential(nn.ConvTranspose2d(cin_up, cout, 4, 2, 1), nn.GroupNorm(_groups(cout), cout), nn.ReLU(inplace=True), SqueezeExcitation(cout)))
        self.head = nn.Sequential(nn.Conv2d(config.base + config.in_channels, config.out_channels, 3, 1, 1), nn.Tanh())

    def forward(self, masks: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(B, out_channels, H, W)`` in ``[-1, 1]`` from mask encodings ``(B, 2, H, W)``
        and, when the config has noise, noise ``(B, 1, H, W)``."""
        step = 2**self.config.depth
        if masks.ndim != 4 or masks.shape[1] != MASK_CHANNELS or masks.shape[-1] % step or masks.shape[-2] % step:
            raise IaaaError(f"UNetGenerator: expected masks (B, {MASK_CHANNELS}, H, W) with H, W divisible by {step}, got {tuple(masks.shape)}")
        if self.config.noise:
            if noise is None:
                raise IaaaError("UNetGenerator: this generator takes a noise channel; pass noise (B, 1, H, W)")
            x = torch.cat([masks, noise], 1)
        else:
            x = masks
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.attention(h)
        for i, layer in enumerate(self.up):
            if i > 0:
                h = torch.cat([h, skips[-1 - i]], 1)
            h = layer(h)
        return self.head(torch.cat([h, x], 1))


class PatchDiscriminator(nn.Module):
    """PatchGAN: a logit per overlapping patch of ``(mask channels, image)``."""

    def __init__(self, config: Pix2PixConfig) -> None:
        super().__init__()
        c = config.disc_base
        layers: list[nn.Module] = [nn.Conv2d(MASK_CHANNELS + config.out_channels, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(config.disc_layers - 1):
            c2 = min(c * 2, config.disc_base * 8)
            layers += [nn.Conv2d(c, c2, 4, 2, 1), nn.GroupNorm(_groups(c2), c2), nn.LeakyReLU(0.2, inplace=True)]
            c = c2
        layers += [nn.Conv2d(c, c, 3, 1, 1), nn.GroupNorm(_groups(c), c), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(c, 1, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([masks, images], 1))


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """Pix2Pix initialisation (conv weights ~ N(0, 0.02), biases 0) from ``generator``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()


def generator_loss(
    disc: PatchDiscriminator, masks: torch.Tensor, fake: torch.Tensor, real: torch.Tensor, config: Pix2PixConfig, perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Generator objective ``adv + l1_weight * L1 + perceptual_weight * perceptual`` and its parts."""
    logits = disc(masks, fake)
    adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    l1 = (fake - real).abs().mean()
    total = adv + config.l1_weight * l1
    parts = {"adv": float(adv.detach()), "l1": float(l1.detach())}
    if perceptual is not None and config.perceptual_weight > 0:
        p = perceptual(fake, real)
        total = total + config.perceptual_weight * p
        parts["perc"] = float(p.detach())
    return total, parts


def discriminator_loss(disc: PatchDiscriminator, masks: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Logistic PatchGAN loss, halved as in Pix2Pix to slow the discriminator relative to G."""
    lr = disc(masks, real)
    lf = disc(masks, fake.detach())
    return 0.5 * (F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))
