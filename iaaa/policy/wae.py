"""Wasserstein AutoEncoder (WAE-MMD, Tolstikhin et al. 2018) for cell crops.

The model is a small convolutional autoencoder with a deterministic encoder. It is trained to
reconstruct cell crops (squared L2 cost) while an MMD penalty with the inverse multiquadratics
(IMQ) kernel pulls the aggregate latent distribution towards the prior ``N(0, sigma2 * I)``;
the MMD is the unbiased U-statistic estimator of the WAE paper (Algorithm 2). Because the latent
codes of real cells are spread like the prior, the same kernel measures in the scorer how far a
set of augmented cells lies from the real ones (see :class:`iaaa.policy.WAEScorer`).

Inputs are :class:`~iaaa.policy.batch.ObjectBatch` images (``[0, 1]`` floats) divided by a
per-channel ``input_scale`` fitted on the training crops, so a dim 16-bit stack and a bright
8-bit image reach the network on a similar scale. Any channel count and any input size of at
least ``2 ** len(channels)`` pixels per side work; the flatten size is computed from the size.

A saved model is one ``torch.save`` file holding ``{"format", "version", "config",
"state_dict", "history"}`` with only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from iaaa.errors import IaaaError
from iaaa.torchfile import load_torch_file
from iaaa.policy.batch import ObjectBatch, prepare_objects
from iaaa.threads import torch_threads

__all__ = ["WAE", "WAEConfig", "FitReport", "fit_wae", "load_wae", "imq_kernel", "offdiag_mean", "mmd_unbiased", "IMQ_SCALES"]

FORMAT = "iaaa.wae"
VERSION = 1

#: Multiples of the base IMQ scale ``C = 2 * latent_dim * sigma2`` summed into one kernel, as
#: in the reference WAE implementation: a sum over scales makes the MMD sensitive to both near
#: and far discrepancies without tuning one bandwidth.
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


# ----------------------------------------------------------------------------- MMD


def imq_kernel(x: torch.Tensor, y: torch.Tensor, base_scale: float, scales: Sequence[float] = IMQ_SCALES) -> torch.Tensor:
    """Gram matrix ``(n, m)`` of the multi-scale IMQ kernel ``sum_s C_s / (C_s + ||x - y||^2)``
    with ``C_s = s * base_scale``."""
    # |x|^2 + |y|^2 - 2 x.y is one matmul; it can dip below 0 by rounding, hence the clamp.
    d2 = (x.square().sum(1)[:, None] + y.square().sum(1)[None, :] - 2.0 * (x @ y.T)).clamp_min(0.0)
    if d2.requires_grad:  # training: autograd needs the out-of-place form
        return sum(s * base_scale / (s * base_scale + d2) for s in scales)
    out = torch.zeros_like(d2)
    tmp = torch.empty_like(d2)
    # In-place passes: scoring runs this thousands of times and temporaries dominate.
    for s in scales:
        c = s * base_scale
        torch.add(d2, c, out=tmp)
        tmp.reciprocal_()
        out.add_(tmp, alpha=c)
    return out


def offdiag_mean(k: torch.Tensor) -> torch.Tensor:
    """Mean of a square Gram matrix without its diagonal (the U-statistic average)."""
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))


def mmd_unbiased(
    x: torch.Tensor,
    y: torch.Tensor,
    base_scale: float | None = None,
    scales: Sequence[float] = IMQ_SCALES,
    paired: bool = False,
    xx_term: torch.Tensor | None = None,
) -> torch.Tensor:
    """Unbiased estimate of ``MMD^2`` between the samples ``x (n, d)`` and ``y (m, d)`` with the
    multi-scale IMQ kernel (``base_scale`` defaults to ``2 * d``, the WAE choice for a unit
    Gaussian prior).

    ``paired=False`` (independent samples, WAE Algorithm 2)::

        1/(n(n-1)) sum_{i!=j} k(x_i,x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i,y_j) - 2/(nm) sum_{i,j} k(x_i,y_j)

    ``paired=True`` needs ``n == m`` and ``y_i`` derived from ``x_i`` (an augmented cell and its
    original). The cross term then also skips ``i == j``: those pairs are dependent, and keeping
    them would reward ``y_i`` for staying close to its own ``x_i`` rather than to the
    distribution. It is Gretton et al.'s U-statistic ``MMD_u^2``; for ``y == x`` it is exactly 0.

    ``xx_term``: the precomputed first term (``offdiag_mean(imq_kernel(x, x, ...))``), for
    callers that compare many ``y`` with one ``x``.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise IaaaError(f"mmd_unbiased: expected x (n, d) and y (m, d) with the same d, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise IaaaError(f"mmd_unbiased: need at least 2 samples on each side, got {n} and {m}")
    if paired and n != m:
        raise IaaaError(f"mmd_unbiased(paired=True): x and y must have the same length, got {n} and {m}")
    c = 2.0 * x.shape[1] if base_scale is None else float(base_scale)
    sxx = offdiag_mean(imq_kernel(x, x, c, scales)) if xx_term is None else xx_term
    syy = offdiag_mean(imq_kernel(y, y, c, scales))
    kxy = imq_kernel(x, y, c, scales)
    sxy = offdiag_mean(kxy) if paired else kxy.mean()
    return sxx + syy - 2.0 * sxy


# ----------------------------------------------------------------------------- model


@dataclass
class WAEConfig:
    """Everything needed to rebuild a :class:`WAE` (stored in the model file).

    Attributes:
        in_channels: image channels.
        size: input ``(H, W)``.
        latent_dim: size of the latent code.
        channels: conv widths; each layer halves the resolution.
        sigma2: prior variance.
        lambda_mmd: weight of the MMD penalty in training.
        input_scale: per-channel divisor applied to ``[0, 1]`` inputs.
        margin: canvas margin used by :func:`prepare_objects` for the training crops; scoring
            uses the same so inputs look alike.
    """

    in_channels: int = 1
    size: tuple[int, int] = (32, 32)
    latent_dim: int = 8
    channels: tuple[int, ...] = (16, 32, 64)
    sigma2: float = 1.0
    lambda_mmd: float = 10.0
    input_scale: tuple[float, ...] = (1.0,)
    margin: float = math.sqrt(2.0)

    def __post_init__(self) -> None:
        self.size = (int(self.size[0]), int(self.size[1]))
        self.channels = tuple(int(c) for c in self.channels)
        self.input_scale = tuple(float(s) for s in self.input_scale)
        if self.in_channels < 1 or self.latent_dim < 1 or not self.channels or min(self.channels) < 1:
            raise IaaaError(f"WAEConfig: in_channels, latent_dim and channels must be positive, got {self.in_channels}, {self.latent_dim}, {self.channels}")
        need = 2 ** len(self.channels)
        if min(self.size) < need:
            raise IaaaError(f"WAEConfig: size {self.size} is too small for {len(self.channels)} stride-2 layers; each side needs >= {need}")
        if len(self.input_scale) != self.in_channels or min(self.input_scale) <= 0:
            raise IaaaError(f"WAEConfig: input_scale needs {self.in_channels} positive values, got {self.input_scale}")


class WAE(nn.Module):
    """Convolutional WAE: ``len(channels)`` stride-2 conv layers down to a ``latent_dim`` code
    and the mirror image back up.

    Transposed convolutions get an ``output_padding`` per layer from the encoder's recorded
    sizes, so odd and non-square inputs come back at exactly their input size."""

    def __init__(self, config: WAEConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        sizes = [config.size]
        for _ in config.channels:
            h, w = sizes[-1]
            sizes.append((h // 2, w // 2))  # conv k=4, s=2, p=1 floors the halving
        self._sizes = sizes
        widths = (config.in_channels, *config.channels)
        # Construction draws initial weights from the global RNG; fork it so building a model
        # never disturbs anyone's random stream, then initialise from our own generator.
        with torch.random.fork_rng(devices=[]):
            enc: list[nn.Module] = []
            for cin, cout in zip(widths[:-1], widths[1:]):
                enc += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
            self.encoder = nn.Sequential(*enc, nn.Flatten())
            bh, bw = sizes[-1]
            flat = widths[-1] * bh * bw
            self.to_latent = nn.Linear(flat, config.latent_dim)
            self.from_latent = nn.Linear(config.latent_dim, flat)
            dec: list[nn.Module] = []
            rev = list(reversed(widths))
            for k, (cin, cout) in enumerate(zip(rev[:-1], rev[1:])):
                (oh, ow), (ih, iw) = sizes[-2 - k], sizes[-1 - k]
                dec.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1, output_padding=(oh - 2 * ih, ow - 2 * iw)))
                if k < len(rev) - 2:
                    dec.append(nn.LeakyReLU(0.2))
            self.decoder = nn.Sequential(*dec)
        self.register_buffer("scale", torch.tensor(config.input_scale, dtype=torch.float32).view(1, -1, 1, 1))
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        for mod in self.modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_uniform_(mod.weight, a=0.2, generator=g)
                nn.init.zeros_(mod.bias)

    def _check(self, x: torch.Tensor) -> None:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels or tuple(x.shape[-2:]) != c.size:
            raise IaaaError(f"WAE: expected input (N, {c.in_channels}, {c.size[0]}, {c.size[1]}), got {tuple(x.shape)}")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(N, latent_dim)`` of ``[0, 1]`` images ``(N, C, H, W)``."""
        self._check(images)
        return self.to_latent(self.encoder(images / self.scale))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions in the scaled input space (multiply by ``scale`` for ``[0, 1]``)."""
        bh, bw = self._sizes[-1]
        return self.decoder(self.from_latent(z).view(z.shape[0], -1, bh, bw))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, reconstruction)``; the reconstruction is in the scaled space."""
        z = self.encode(images)
        return z, self.decode(z)

    def reconstruction_error(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, err)``: codes and per-image mean squared reconstruction error in the scaled space."""
        z, rec = self(images)
        return z, (rec - images / self.scale).square().flatten(1).mean(1)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike, history: Sequence[float] | None = None) -> None:
        """Write config + state dict to one file, atomically (temp file, then rename)."""
        from iaaa.data.imageio import atomic_path

        cfg = asdict(self.config)
        cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "config": cfg,
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
            "history": [float(v) for v in (history if history is not None else getattr(self, "history", []))],
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> "WAE":
        """Load a model written by :meth:`save` (tensors and plain values only: :func:`iaaa.torchfile.load_torch_file`)."""
        return load_wae(path, map_location)


def load_wae(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> WAE:
    """Load a :class:`WAE` from a local file written by :meth:`WAE.save` / ``iaaa fit-wae``."""
    if not os.path.isfile(path):
        raise IaaaError(f"{path}: no such WAE model file (train one with `iaaa fit-wae`)")
    payload = load_torch_file(path, "WAE model", map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise IaaaError(f"{path}: not an iaaa WAE model (field 'format' should be {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise IaaaError(f"{path}: WAE model version {payload.get('version')!r} is not supported (expected {VERSION})")
    try:
        config = WAEConfig(**payload["config"])
    except (TypeError, ValueError, KeyError) as exc:
        raise IaaaError(f"{path}: field 'config' is invalid: {exc}") from exc
    model = WAE(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise IaaaError(f"{path}: field 'state_dict' does not match its config: {exc}") from exc
    model.history = list(payload.get("history", []))
    return model.to(map_location).eval()


# ----------------------------------------------------------------------------- training


@dataclass
class FitReport:
    """What :func:`fit_wae` did: per-epoch mean loss (and its parts), time, crops, steps."""

    loss: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    mmd: list[float] = field(default_factory=list)
    seconds: float = 0.0
    n_objects: int = 0
    steps: int = 0
    stopped_early: bool = False


def _random_dihedral(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image under one of the 8 (square) or 4 (non-square) flips/transposes of the square."""
    bits = torch.rand(3, x.shape[0], generator=g).to(x.device) < 0.5
    x = torch.where(bits[0].view(-1, 1, 1, 1), x.flip(-1), x)
    x = torch.where(bits[1].view(-1, 1, 1, 1), x.flip(-2), x)
    if x.shape[-1] == x.shape[-2]:
        x = torch.where(bits[2].view(-1, 1, 1, 1), x.transpose(-1, -2), x)
    return x


def fit_wae(
    objects: Sequence[Any] | ObjectBatch,
    size: int | tuple[int, int] = 32,
    latent_dim: int = 8,
    channels: Sequence[int] = (16, 32, 64),
    epochs: int = 60,
    batch_size: int = 64,
    lr: float = 2e-3,
    lambda_mmd: float = 10.0,
    sigma2: float = 1.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    time_budget: float | None = None,
    progress: bool = False,
    dihedral: bool = True,
    num_threads: int | None = 1,
) -> WAE:
    """Train a :class:`WAE` on cell objects and return it in eval mode.

    The loss per batch is ``mean_i ||x_i - G(E(x_i))||^2 + lambda_mmd * MMD_u^2(E(x), z~prior)``
    with the squared error summed over pixels as in the WAE paper. ``model.report`` is a
    :class:`FitReport`, ``model.history`` its per-epoch losses. Everything random (init, shuffling,
    prior samples) comes from ``seed``. ``time_budget`` (seconds) stops after the epoch that
    crosses it.

    ``dihedral`` (default on) shows each training crop under a random flip (and, for square
    inputs, transpose) per step. A cell's orientation under the microscope is arbitrary, and
    without this a WAE fitted on a few hundred crops learns their particular orientations:
    the scorer would then call a flipped cell less real than the very same cell, i.e. reward
    doing nothing.

    ``num_threads``: torch intra-op threads while training (restored afterwards; ``None`` keeps
    torch's setting). Batches this small gain little from threads and lose a lot when the
    machine is busy.
    """

    with torch_threads(num_threads):
        return _fit(objects, size, latent_dim, channels, epochs, batch_size, lr, lambda_mmd, sigma2, seed, device, time_budget, progress, dihedral)


def _fit(objects, size, latent_dim, channels, epochs, batch_size, lr, lambda_mmd, sigma2, seed, device, time_budget, progress, dihedral) -> WAE:  # noqa: ANN001
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if epochs < 1 or batch_size < 2:
        raise IaaaError(f"fit_wae: epochs must be >= 1 and batch_size >= 2, got {epochs} and {batch_size}")
    margin = math.sqrt(2.0)
    batch = prepare_objects(objects, size, margin=margin, device=device)
    n = len(batch)
    if n < 2:
        raise IaaaError(f"fit_wae: need at least 2 objects to train, got {n}")
    x_all = batch.images
    # A high percentile, not the max: one saturated pixel should not squash everything else.
    flat = x_all.transpose(0, 1).reshape(x_all.shape[1], -1)
    q = torch.quantile(flat[:, :: max(1, flat.shape[1] // 1_000_000)], 0.995, dim=1)
    scale = tuple(max(float(v), 1e-3) for v in q)
    config = WAEConfig(batch.channels, batch.size, latent_dim, tuple(channels), sigma2, lambda_mmd, scale, margin)
    g = torch.Generator().manual_seed(int(seed))
    model = WAE(config, generator=g).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    report = FitReport(n_objects=n)
    bs = min(batch_size, n)
    base = 2.0 * latent_dim * sigma2
    model.train()
    bar = tqdm(range(epochs), desc="fit-wae", unit="epoch", disable=not progress, leave=False)
    for _ in bar:
        perm = torch.randperm(n, generator=g).to(device)
        tot = rec_tot = mmd_tot = 0.0
        steps = 0
        # Drop a last batch smaller than 2: the unbiased MMD needs two samples.
        for start in range(0, n - 1, bs):
            idx = perm[start : start + bs]
            if idx.numel() < 2:
                continue
            x = x_all[idx]
            if dihedral:
                x = _random_dihedral(x, g)
            z, rec = model(x)
            rec_loss = (rec - x / model.scale).square().flatten(1).sum(1).mean()
            prior = torch.randn(z.shape, generator=g).to(device) * math.sqrt(sigma2)
            mmd = mmd_unbiased(z, prior, base_scale=base)
            loss = rec_loss + lambda_mmd * mmd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach())
            rec_tot += float(rec_loss.detach())
            mmd_tot += float(mmd.detach())
            steps += 1
        sched.step()
        report.steps += steps
        report.loss.append(tot / steps)
        report.reconstruction.append(rec_tot / steps)
        report.mmd.append(mmd_tot / steps)
        bar.set_postfix(loss=f"{report.loss[-1]:.4g}")
        if time_budget is not None and time.perf_counter() - t0 > time_budget:
            report.stopped_early = len(report.loss) < epochs
            break
    bar.close()
    model.eval()
    report.seconds = time.perf_counter() - t0
    model.report = report
    model.history = list(report.loss)
    return model
