"""A small U-Net for the judge: 3 classes per pixel (background, interior, boundary).

Weights are initialised from an explicit ``torch.Generator`` (never the global RNG), so two
models built with the same seed start identical and a comparison between training sets is
paired.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from iaaa.errors import IaaaError

__all__ = ["UNet"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``depth`` poolings; level ``i`` has ``width * 2**i`` channels.

    Args:
        in_channels: image channels.
        n_classes: output logits per pixel (3 for the judge).
        width: channels of the first level.
        depth: number of 2x poolings; inputs are reflect-padded to a multiple of ``2**depth``
            inside :meth:`forward` and the logits cropped back, so any size works.
        generator: draws the initial weights (Kaiming normal for convolutions).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 3, width: int = 16, depth: int = 3, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if in_channels < 1 or n_classes < 2 or width < 1 or depth < 1:
            raise IaaaError(f"UNet: need in_channels >= 1, n_classes >= 2, width >= 1, depth >= 1, got {in_channels}, {n_classes}, {width}, {depth}")
        self.depth = depth
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, chans[0])] + [_block(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))])
        self.merge = nn.ModuleList([_block(2 * chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], n_classes, 1)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes, H, W)`` of images ``(B, C, H, W)`` float."""
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], 1))
        return self.head(x)[..., :h, :w]
