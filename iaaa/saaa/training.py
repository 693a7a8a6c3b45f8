"""Training loops of the two SAAA models: a checkpointed, resumable step loop and the two fits.

A checkpoint is one ``torch.save`` file of plain Python values and tensors (module and optimiser
state dicts, the step, the loss history, the state of the ``torch.Generator`` that draws every
batch, and the options it was started with), so it loads with ``torch.load(weights_only=True)``.
Restarting with the same options and checkpoint continues from the saved step and gives the same
weights as an uninterrupted run on the same device (asking for more steps than before trains the
checkpoint further); different options are refused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from iaaa.errors import IaaaError
from iaaa.saaa.diffusion import MaskDiffusion
from iaaa.saaa.pix2pix import PatchDiscriminator, Pix2PixConfig, UNetGenerator, discriminator_loss, generator_loss, init_weights
from iaaa.torchfile import check_state_dict, load_torch_file

__all__ = ["CropPool", "TrainReport", "run_steps", "fit_mask_diffusion", "fit_pix2pix", "random_dihedral"]

CHECKPOINT_FORMAT = "iaaa.saaa.checkpoint"


@dataclass
class CropPool:
    """Training crops: mask encodings ``(N, 2, S, S)`` in ``[-1, 1]`` and the matching images
    ``(N, C, S, S)`` scaled to ``[-1, 1]`` (None when only masks are trained)."""

    masks: torch.Tensor
    images: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.masks.shape[0]

    def batch(self, size: int, generator: torch.Generator, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A random batch (drawn with replacement) under one random flip/transpose per crop,
        the same for mask and image."""
        idx = torch.randint(0, len(self), (size,), generator=generator)
        m = self.masks[idx]
        img = self.images[idx] if self.images is not None else None
        m, img = random_dihedral(m, img, generator)
        return m.to(device), (img.to(device) if img is not None else None)


def random_dihedral(a: torch.Tensor, b: torch.Tensor | None, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same random flip/transpose (one of 8, square crops) per item of both batches: cell
    orientation under the microscope is arbitrary, and a few hundred crops are few."""
    bits = (torch.rand(3, a.shape[0], generator=generator) < 0.5).view(3, -1, 1, 1, 1)

    def move(x: torch.Tensor) -> torch.Tensor:
        x = torch.where(bits[0], x.flip(-1), x)
        x = torch.where(bits[1], x.flip(-2), x)
        return torch.where(bits[2], x.transpose(-1, -2), x) if x.shape[-1] == x.shape[-2] else x

    return move(a), (move(b) if b is not None else None)


@dataclass
class TrainReport:
    """Per-step losses (name -> list), steps done, seconds of this run, where it resumed from."""

    losses: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    resumed_from: int = 0


def _load_checkpoint(path: str, options: dict[str, Any]) -> dict[str, Any] | None:
    if not os.path.isfile(path):
        return None
    ck = load_torch_file(path, "SAAA checkpoint")
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise IaaaError(f"{path}: not an iaaa SAAA checkpoint (field 'format'); delete it to start over")
    # The step count is not an option: a checkpoint can be trained further with more steps.
    theirs = ck.get("options")
    if not isinstance(theirs, dict):
        raise IaaaError(f"{path}: field 'options' must be a dict, got {type(theirs).__name__}; delete it to start over")
    if theirs != options:
        diff = sorted(k for k in set(options) | set(theirs) if options.get(k) != theirs.get(k))
        if diff == ["data_sha256"]:
            raise IaaaError(f"{path}: checkpoint was trained on other data; use the same data, or another folder to start over")
        raise IaaaError(f"{path}: checkpoint was written with other options ({', '.join(diff)}); use the same options or delete it")
    # Every other field is checked before it reaches a module, optimiser or generator.
    step = ck.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise IaaaError(f"{path}: field 'step' must be a non-negative integer, got {step!r:.40}")
    for field in ("modules", "optimizers"):
        if not isinstance(ck.get(field), dict):
            raise IaaaError(f"{path}: field {field!r} must be a dict, got {type(ck.get(field)).__name__}")
    for k, state in ck["modules"].items():
        check_state_dict(state, path, f"modules.{k}")
    for k, state in ck["optimizers"].items():
        if not isinstance(state, dict) or not isinstance(state.get("state"), dict) or not isinstance(state.get("param_groups"), list):
            raise IaaaError(f"{path}: field 'optimizers.{k}' is not an optimiser state (state, param_groups)")
    gen = ck.get("generator")
    if not isinstance(gen, torch.Tensor) or gen.dtype != torch.uint8 or gen.ndim != 1:
        raise IaaaError(f"{path}: field 'generator' must be a torch.Generator state (a 1-d uint8 tensor)")
    losses = ck.get("losses")
    if not isinstance(losses, dict) or not all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in losses.values()):
        raise IaaaError(f"{path}: field 'losses' must map names to lists of numbers")
    return ck


def run_steps(
    name: str,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    step_fn: Callable[[], dict[str, float]],
    steps: int,
    generator: torch.Generator,
    options: dict[str, Any],
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 200,
    progress: bool = False,
) -> TrainReport:
    """Call ``step_fn`` until ``steps`` steps are done, showing the losses it returns in a tqdm
    bar, and saving ``modules``, ``optimizers``, ``generator`` and the history to ``checkpoint``
    every ``checkpoint_every`` steps and at the end. An existing checkpoint written with the same
    ``options`` is resumed."""
    from tqdm.auto import tqdm

    from iaaa.data.imageio import atomic_path

    report = TrainReport()
    ck = _load_checkpoint(str(checkpoint), options) if checkpoint else None
    start = 0
    if ck is not None:
        try:
            for k, m in modules.items():
                m.load_state_dict(ck["modules"][k])
            for k, o in optimizers.items():
                o.load_state_dict(ck["optimizers"][k])
            generator.set_state(ck["generator"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise IaaaError(f"{checkpoint}: checkpoint does not fit the models of these options ({(str(exc).splitlines() or [''])[0][:160]}); delete it to start over") from None
        report.losses = {k: list(v) for k, v in ck["losses"].items()}
        start = report.resumed_from = int(ck["step"])
        if start > steps:
            raise IaaaError(f"{checkpoint}: checkpoint is at step {start}, beyond the {steps} steps asked for; ask for at least {start} or delete it")

    def save(step: int) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT, "name": name, "step": step, "options": options,
            "modules": {k: {n: t.detach().cpu().clone() for n, t in m.state_dict().items()} for k, m in modules.items()},
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "generator": generator.get_state(), "losses": report.losses,
        }
        with atomic_path(checkpoint) as tmp:
            try:
                torch.save(payload, tmp)
            except (OSError, RuntimeError) as exc:  # a full disk reaches torch's zip writer as RuntimeError
                raise IaaaError(f"{checkpoint}: cannot write the checkpoint ({(str(exc).splitlines() or [type(exc).__name__])[0][:160]})") from None

    t0 = time.perf_counter()
    for m in modules.values():
        m.train()
    bar = tqdm(range(start, steps), desc=name, unit="step", initial=start, total=steps, disable=not progress, leave=False)
    for step in bar:
        parts = step_fn()
        for k, v in parts.items():
            report.losses.setdefault(k, []).append(float(v))
        bar.set_postfix({k: f"{v:.4g}" for k, v in parts.items()})
        if checkpoint and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            save(step + 1)
    bar.close()
    if checkpoint and start == steps and ck is None:
        save(steps)
    for m in modules.values():
        m.eval()
    report.steps = steps
    report.seconds = time.perf_counter() - t0
    return report


def fit_mask_diffusion(
    model: MaskDiffusion, pool: CropPool, steps: int, batch_size: int = 16, lr: float = 5e-4, seed: int = 0,
    device: str | torch.device = "cpu", checkpoint: str | os.PathLike | None = None, progress: bool = False, options: dict[str, Any] | None = None,
) -> TrainReport:
    """Train ``model`` on the mask encodings of ``pool`` for ``steps`` AdamW steps."""
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(int(seed) + 1)

    def step() -> dict[str, float]:
        x0, _ = pool.batch(batch_size, g, device)
        loss = model.loss(x0, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return {"mse": float(loss.detach())}

    opts = {"model": model.config.to_dict(), "batch_size": batch_size, "lr": lr, "seed": seed, "n_crops": len(pool), **(options or {})}
    return run_steps("diffusion", {"unet": model.unet}, {"adamw": opt}, step, steps, g, opts, checkpoint, progress=progress)


def fit_pix2pix(
    config: Pix2PixConfig, pool: CropPool, steps: int, perceptual: nn.Module | None = None, batch_size: int = 8, lr: float = 2e-4, seed: int = 0,
    device: str | torch.device = "cpu", checkpoint: str | os.PathLike | None = None, progress: bool = False, options: dict[str, Any] | None = None,
) -> tuple[UNetGenerator, TrainReport]:
    """Train a Pix2Pix generator/discriminator pair on the (mask, image) crops of ``pool``;
    returns the generator (eval mode) and the report."""
    if pool.images is None:
        raise IaaaError("fit_pix2pix: the crop pool has no images")
    g = torch.Generator().manual_seed(int(seed) + 2)
    gen, disc = UNetGenerator(config), PatchDiscriminator(config)
    init_weights(gen, g)
    init_weights(disc, g)
    gen.to(device)
    disc.to(device)
    if perceptual is not None:
        perceptual.to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))

    def step() -> dict[str, float]:
        masks, real = pool.batch(batch_size, g, device)
        noise = torch.randn((masks.shape[0], 1, *masks.shape[-2:]), generator=g).to(device) if config.noise else None
        fake = gen(masks, noise)
        d_loss = discriminator_loss(disc, masks, fake, real)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss, parts = generator_loss(disc, masks, fake, real, config, perceptual)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return {"d": float(d_loss.detach()), **parts}

    opts = {"model": config.to_dict(), "batch_size": batch_size, "lr": lr, "seed": seed, "n_crops": len(pool), **(options or {})}
    report = run_steps("pix2pix", {"generator": gen, "discriminator": disc}, {"g": opt_g, "d": opt_d}, step, steps, g, opts, checkpoint, progress=progress)
    return gen, report
