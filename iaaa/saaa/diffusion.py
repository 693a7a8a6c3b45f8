"""The mask generator (paper section 4.1): an unconditional DDPM over two-channel cell masks.

The network is ``diffusers``' :class:`~diffusers.UNet2DModel`, trained with the noise-prediction
loss under a :class:`~diffusers.DDPMScheduler`; sampling runs a :class:`~diffusers.DDIMScheduler`
built from the same config, so a few dozen steps replace the thousand of ancestral sampling. The
samples are the foreground + distance channels of :mod:`iaaa.saaa.masks`, decoded into instance
label maps by :func:`~iaaa.saaa.masks.channels_to_labels`.

All noise comes from an explicit :class:`torch.Generator` on the CPU and is moved to the model's
device, so a seed gives the same masks on any device class where the kernels agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from iaaa.errors import IaaaError
from iaaa.saaa.fields import MAX_SAMPLE_SIZE, MAX_WIDTH, choice, flag, integer, number
from iaaa.saaa.masks import MASK_CHANNELS, channels_to_labels

__all__ = ["MaskDiffusionConfig", "MaskDiffusion", "BETA_SCHEDULES", "PREDICTION_TYPES"]

#: Noise schedules diffusers' DDPM/DDIM schedulers implement.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
#: DDPM noise levels: the schedule holds one float per level; thousands are customary.
MAX_TIMESTEPS = 10_000


@dataclass
class MaskDiffusionConfig:
    """Everything needed to rebuild a :class:`MaskDiffusion` (stored with its weights).

    Attributes:
        size: side of the square masks it learns and samples (a multiple of
            ``2 ** (len(block_out_channels) - 1)``).
        block_out_channels: U-Net widths per resolution level.
        layers_per_block: residual layers per level.
        attention: add self-attention at the coarsest level (down and up).
        num_train_timesteps: DDPM noise levels.
        beta_schedule: ``"linear"`` or ``"squaredcos_cap_v2"``.
        prediction_type: what the U-Net predicts: ``"epsilon"`` (the noise, as in DDPM),
            ``"v_prediction"`` (default) or ``"sample"``; the latter two keep the clean-mask estimate
            well conditioned at high noise, where an epsilon model's error is amplified.
        sample_steps: DDIM steps when sampling (at most ``num_train_timesteps``).
        min_area: smallest instance (pixels) kept when decoding a sample.
        marker_threshold: distance level that marks a cell centre when decoding.
    """

    size: int = 64
    block_out_channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    attention: bool = True
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"
    sample_steps: int = 50
    min_area: int = 8
    marker_threshold: float = 0.5

    def __post_init__(self) -> None:
        # Every field is checked for type and bounds before anything is built from it: configs
        # come back from hand-editable files (see iaaa.saaa.fields).
        if not isinstance(self.block_out_channels, (list, tuple)) or not 1 <= len(self.block_out_channels) <= 8:
            raise IaaaError(f"block_out_channels: must be a list of 1 to 8 widths, got {self.block_out_channels!r:.80}")
        self.block_out_channels = tuple(integer(c, "block_out_channels", 1, MAX_WIDTH) for c in self.block_out_channels)
        step = 2 ** (len(self.block_out_channels) - 1)
        integer(self.size, "size", 1, MAX_SAMPLE_SIZE)
        if self.size < step or self.size % step:
            raise IaaaError(f"size: must be a multiple of {step} (the U-Net halves it {len(self.block_out_channels) - 1} times), got {self.size}")
        integer(self.layers_per_block, "layers_per_block", 1, 8)
        flag(self.attention, "attention")
        integer(self.num_train_timesteps, "num_train_timesteps", 2, MAX_TIMESTEPS)
        choice(self.beta_schedule, "beta_schedule", BETA_SCHEDULES)
        choice(self.prediction_type, "prediction_type", PREDICTION_TYPES)
        integer(self.sample_steps, "sample_steps", 1, min(self.num_train_timesteps, MAX_TIMESTEPS))
        integer(self.min_area, "min_area", 0, 2**31)
        self.marker_threshold = number(self.marker_threshold, "marker_threshold", 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _norm_groups(channels: tuple[int, ...]) -> int:
    """The largest group count up to 32 that divides every width (GroupNorm needs it)."""
    return next(g for g in range(min(32, min(channels)), 0, -1) if all(c % g == 0 for c in channels))


class MaskDiffusion(nn.Module):
    """Unconditional DDPM over ``(2, size, size)`` mask encodings.

    Use :meth:`loss` in a training loop and :meth:`sample_channels` / :meth:`sample_labels` to
    generate. ``seed`` fixes the initial weights (drawn in a forked RNG so the global stream is
    untouched)."""

    def __init__(self, config: MaskDiffusionConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        from diffusers import DDPMScheduler, UNet2DModel

        self.config = config = config or MaskDiffusionConfig()
        levels = len(config.block_out_channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if config.attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        with torch.random.fork_rng(devices=[]):
            # diffusers draws initial weights from the global RNG; seeding it inside a fork keeps
            # the weights a function of ``seed`` without touching anyone else's stream.
            torch.manual_seed(int(seed))
            self.unet = UNet2DModel(
                sample_size=config.size, in_channels=MASK_CHANNELS, out_channels=MASK_CHANNELS,
                block_out_channels=config.block_out_channels, layers_per_block=config.layers_per_block,
                down_block_types=tuple(down), up_block_types=tuple(up), norm_num_groups=_norm_groups(config.block_out_channels),
                attention_head_dim=8, add_attention=config.attention,
            )
        self.scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule, prediction_type=config.prediction_type)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def loss(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """MSE of the U-Net's prediction (noise, velocity or clean sample, per
        ``config.prediction_type``) on a batch of clean encodings ``(B, 2, size, size)`` in
        ``[-1, 1]``; timesteps and noise drawn from ``generator`` (CPU)."""
        b = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        t = torch.randint(0, self.config.num_train_timesteps, (b,), generator=generator).to(x0.device)
        noisy = self.scheduler.add_noise(x0, noise, t)
        kind = self.config.prediction_type
        target = noise if kind == "epsilon" else x0 if kind == "sample" else self.scheduler.get_velocity(x0, noise, t)
        return nn.functional.mse_loss(self.unet(noisy, t).sample, target)

    @torch.no_grad()
    def sample_channels(self, n: int, generator: torch.Generator | None = None, steps: int | None = None, size: int | None = None) -> torch.Tensor:
        """``n`` generated encodings ``(n, 2, size, size)`` in ``[-1, 1]`` by DDIM (eta 0: the
        initial noise alone decides the sample). ``size`` defaults to the training size; the
        U-Net is convolutional, so a larger canvas (a multiple of ``2 ** (levels - 1)``) gives a
        larger layout of cells of the trained scale."""
        from diffusers import DDIMScheduler

        g = generator if generator is not None else torch.Generator().manual_seed(0)
        k = integer(steps if steps is not None else self.config.sample_steps, "steps", 1, self.config.num_train_timesteps)
        s = integer(size if size is not None else self.config.size, "size", 1, MAX_SAMPLE_SIZE)
        integer(n, "n", 1, 1 << 20)
        step = 2 ** (len(self.config.block_out_channels) - 1)
        if s % step:
            raise IaaaError(f"size: must be a multiple of {step} (the U-Net halves it {len(self.config.block_out_channels) - 1} times), got {s}")
        ddim = DDIMScheduler.from_config(self.scheduler.config)
        ddim.set_timesteps(k)
        x = torch.randn((n, MASK_CHANNELS, s, s), generator=g).to(self.device)
        was_training = self.training
        self.eval()
        try:
            for t in ddim.timesteps:
                eps = self.unet(x, t.to(self.device)).sample
                x = ddim.step(eps, t, x, eta=0.0).prev_sample
        finally:
            self.train(was_training)
        return x.clamp(-1, 1)

    def sample_labels(self, n: int, generator: torch.Generator | None = None, steps: int | None = None, size: int | None = None) -> torch.Tensor:
        """``n`` generated instance label maps ``(n, size, size)`` int64, ids ``1..N``, no
        instance below ``config.min_area`` pixels."""
        ch = self.sample_channels(n, generator, steps, size)
        return channels_to_labels(ch, min_area=self.config.min_area, marker_threshold=self.config.marker_threshold)
