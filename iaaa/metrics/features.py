"""Image preparation and feature extractors for FID and KID.

A *feature extractor* is anything callable that maps a float batch ``(B, C, H, W)`` with values
in ``[0, 1]`` to a matrix ``(B, D)``: an ``nn.Module`` (the encoder of a trained ``WAEScorer``, a
torchvision backbone), a plain function, or one of the extractors here. It may carry three
optional attributes that :func:`compute_features` reads:

* ``input_size``: ``(H, W)`` the extractor needs (Inception: 299x299); ``None`` = any size, the
  caller picks one.
* ``channels``: channel count it needs (Inception: 3); ``None`` = the data's own.
* ``standardize``: ``True`` when its features have arbitrary per-dimension scales, so the
  protocol z-scores both sets with the real set's statistics before FID/KID.

Conversion of microscopy images (documented in docs/metrics.md):

* Intensity: integers are scaled by their dtype's range (uint8 / 255, uint16 / 65535), floats are
  taken as already in ``[0, 1]``; pass ``value_range=(lo, hi)`` to map ``lo..hi`` to ``0..1``
  instead (a 12-bit camera stored as uint16 wants ``(0, 4095)``). The same mapping is applied to
  real and synthetic images, so a brightness difference between them still counts.
* Channels: equal counts are kept; 1 channel is replicated when more are needed; otherwise the
  channels are averaged to one gray channel (then replicated if needed).
* Size: ``fit="pad"`` scales the image to fit inside the target keeping its aspect ratio and pads
  with the mean of the image's border pixels, so a cell's elongation survives; ``"stretch"``
  resizes to the target directly.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from iaaa.errors import IaaaError
from iaaa.torchfile import load_torch_file
from iaaa.metrics.pyramid import laplacian_pyramid
from iaaa.structures import to_float

__all__ = [
    "to_unit_float",
    "match_channels",
    "fit_to_size",
    "prepare_batch",
    "compute_features",
    "as_extractor",
    "ModuleFeatures",
    "wae_features",
    "InceptionFeatures",
    "PyramidStatsFeatures",
    "standardize",
    "INCEPTION_WEIGHTS_HELP",
]

Size = tuple[int, int]

INCEPTION_WEIGHTS_HELP = (
    "nothing is downloaded at run time; on a machine with internet run "
    "`python -c \"import torchvision; torchvision.models.inception_v3(weights='IMAGENET1K_V1')\"`, "
    "copy ~/.cache/torch/hub/checkpoints/inception_v3_google-0cc3c7bd.pth here and pass its path "
    "(or use the offline default features, which need no weights)"
)


# ----------------------------------------------------------------------------- image conversion


def to_unit_float(image: torch.Tensor, value_range: tuple[float, float] | None = None) -> torch.Tensor:
    """``(C, H, W)`` (or ``(H, W)``) image of any dtype -> float32 in ``[0, 1]``.

    ``value_range=None`` scales integers by their dtype's range and clamps floats to ``[0, 1]``;
    ``(lo, hi)`` maps ``lo -> 0`` and ``hi -> 1`` (clamped) whatever the dtype; ``lo``/``hi`` may
    be per-channel sequences."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image: expected a torch.Tensor, got {type(image).__name__}")
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.ndim != 3:
        raise IaaaError(f"image: expected (C, H, W) or (H, W), got shape {tuple(image.shape)}")
    if value_range is None:
        x = to_float(image) if image.dtype != torch.bool else image.float()
    else:
        lo = torch.as_tensor(value_range[0], dtype=torch.float32).reshape(-1, 1, 1)
        hi = torch.as_tensor(value_range[1], dtype=torch.float32).reshape(-1, 1, 1)
        if lo.shape[0] not in (1, image.shape[0]) or hi.shape[0] not in (1, image.shape[0]):
            raise IaaaError(f"value_range: per-channel bounds {lo.shape[0]}/{hi.shape[0]} do not match the image's {image.shape[0]} channels")
        if not bool((hi > lo).all()):
            raise IaaaError(f"value_range: need lo < hi, got {value_range}")
        src = image.to(torch.int32) if image.dtype == torch.uint16 else image
        x = (src.to(torch.float32) - lo.to(image.device)) / (hi - lo).to(image.device)
    return x.clamp(0.0, 1.0)


def match_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Convert ``(..., C, H, W)`` to ``channels`` channels by the documented rule: keep equal
    counts, replicate a single channel, otherwise average to gray (and replicate if needed)."""
    c = x.shape[-3]
    if channels is None or c == channels:
        return x
    if channels < 1:
        raise IaaaError(f"channels: must be >= 1, got {channels}")
    gray = x if c == 1 else x.mean(dim=-3, keepdim=True)
    return gray if channels == 1 else gray.expand(*gray.shape[:-3], channels, *gray.shape[-2:]).contiguous()


def fit_to_size(x: torch.Tensor, size: Size, fit: str = "pad") -> torch.Tensor:
    """Resize a float ``(C, H, W)`` image to ``size`` (bilinear, antialiased when shrinking).

    ``fit="pad"`` keeps the aspect ratio and pads with the image's border mean; ``"stretch"``
    ignores the aspect ratio."""
    th, tw = int(size[0]), int(size[1])
    h, w = x.shape[-2:]
    if (h, w) == (th, tw):
        return x
    if fit == "stretch":
        return F.interpolate(x[None], size=(th, tw), mode="bilinear", align_corners=False, antialias=True)[0]
    if fit != "pad":
        raise IaaaError(f"fit must be 'pad' or 'stretch', got {fit!r}")
    scale = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    # The border mean is the local background, so padding looks like more background rather
    # than a black frame that would dominate bright-field crops.
    border = torch.cat([x[:, 0, :], x[:, -1, :], x[:, :, 0], x[:, :, -1]], dim=1).mean(dim=1)
    resized = F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
    out = border.view(-1, 1, 1).expand(x.shape[0], th, tw).clone()
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[:, top : top + nh, left : left + nw] = resized
    return out


def prepare_batch(
    images: Sequence[torch.Tensor],
    size: Size | None = None,
    channels: int | None = None,
    value_range: tuple[float, float] | None = None,
    fit: str = "pad",
) -> torch.Tensor:
    """Stack images of any dtype/size into one float batch ``(B, C, H, W)`` in ``[0, 1]``.

    With ``size=None`` all images must already share one size and channel count."""
    if len(images) == 0:
        raise IaaaError("images: empty sequence")
    out = []
    for i, im in enumerate(images):
        x = match_channels(to_unit_float(im, value_range), channels)
        if size is not None:
            x = fit_to_size(x, size, fit)
        if out and x.shape != out[0].shape:
            raise IaaaError(
                f"images[{i}]: shape {tuple(x.shape)} differs from images[0] {tuple(out[0].shape)}; "
                "give a size (input_size) so they are resized, and matching channel counts"
            )
        out.append(x)
    return torch.stack(out)


# ----------------------------------------------------------------------------- running extractors


def compute_features(
    images: Sequence[torch.Tensor] | torch.Tensor,
    extractor: Callable[[torch.Tensor], torch.Tensor],
    *,
    input_size: Size | int | None = None,
    channels: int | None = None,
    value_range: tuple[float, float] | None = None,
    fit: str = "pad",
    batch_size: int = 64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Features ``(N, D)`` float64 on the CPU of ``N`` images (a list of ``(C, H, W)`` tensors of
    any dtype and size, or one ``(N, C, H, W)`` tensor).

    The extractor's own ``input_size``/``channels`` attributes win over the arguments (a network
    built for 299x299 must get 299x299); the arguments fill in for extractors that accept any
    size. An ``nn.Module`` is run in eval mode (its mode is restored afterwards) without
    gradients; a tuple output uses its first element, and outputs with more than two dims are
    flattened per sample."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise IaaaError(f"images: expected (N, C, H, W), got shape {tuple(images.shape)}")
        images = list(images)
    images = list(images)
    if not images:
        raise IaaaError("images: no images to compute features of")
    size = getattr(extractor, "input_size", None) or input_size
    if isinstance(size, int):
        size = (size, size)
    channels = getattr(extractor, "channels", None) or channels
    if device is None:
        device = getattr(extractor, "device", None) or "cpu"
    if batch_size < 1:
        raise IaaaError(f"batch_size: must be >= 1, got {batch_size}")
    module = extractor if isinstance(extractor, torch.nn.Module) else getattr(extractor, "module", None)
    if not isinstance(module, torch.nn.Module):
        # A bound method such as ``wae.encode`` still needs its module in eval mode.
        module = getattr(module, "__self__", None)
    was_training = module.training if isinstance(module, torch.nn.Module) else None
    if was_training:
        module.eval()
    feats = []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = prepare_batch(images[start : start + batch_size], size, channels, value_range, fit).to(device)
                out = extractor(batch)
                if isinstance(out, (tuple, list)):
                    out = out[0]
                if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != batch.shape[0]:
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise IaaaError(f"extractor: expected (B, D) output for a batch of B={batch.shape[0]}, got {got}")
                feats.append(out.reshape(out.shape[0], -1).to("cpu", torch.float64))
    finally:
        if was_training:
            module.train()
    out = torch.cat(feats)
    if not bool(torch.isfinite(out).all()):
        raise IaaaError("extractor: produced non-finite features (NaN/inf); check the model and the input scaling")
    return out


def standardize(real: torch.Tensor, fake: torch.Tensor, clip: float | None = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-score both feature sets with the *real* set's per-dimension mean and std, then
    soft-clip to ``clip * tanh(z / clip)``.

    One shared map keeps the comparison fair (a shift between the sets survives) while putting
    hand-crafted features of very different units on one scale, which KID's polynomial kernel
    needs. The soft clip (linear within about +-2 sd, saturating at +-``clip``) stops one outlying
    image from dominating the cubic kernel: on heterogeneous microscopy data a single very
    bright image otherwise moves KID by an order of magnitude. A set that is far off still
    saturates far from the real one. Constant dimensions are centred but not scaled."""
    mu = real.mean(0)
    sd = real.std(0) if real.shape[0] > 1 else torch.ones_like(mu)
    sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
    zr, zf = (real - mu) / sd, (fake - mu) / sd
    if clip is not None:
        if clip <= 0:
            raise IaaaError(f"clip: must be > 0 or None, got {clip}")
        zr, zf = clip * torch.tanh(zr / clip), clip * torch.tanh(zf / clip)
    return zr, zf


class ModuleFeatures:
    """Wrap any callable or ``nn.Module`` mapping ``(B, C, H, W)`` to ``(B, D)`` as an extractor
    with fixed ``input_size``/``channels``/``device`` and an optional input ``normalize`` step
    (e.g. ``lambda x: (x - 0.5) / 0.5`` when the network was trained on ``[-1, 1]`` inputs).

    The encoder of a trained ``WAEScorer`` plugs in this way."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor], Any],
        input_size: Size | int | None = None,
        channels: int | None = None,
        device: torch.device | str | None = None,
        normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
        standardize: bool = False,
        name: str | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn: expected a callable or nn.Module, got {type(fn).__name__}")
        self.module = fn
        self.input_size = (input_size, input_size) if isinstance(input_size, int) else input_size
        self.channels = channels
        self.device = device
        self.normalize = normalize
        self.standardize = standardize
        # Shown in reports; a bare function or module is named after its type.
        self.name = name or getattr(fn, "__qualname__", type(fn).__name__)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.normalize is not None:
            batch = self.normalize(batch)
        return self.module(batch)


def wae_features(model: Any, device: torch.device | str | None = None) -> ModuleFeatures:
    """Features from the encoder of a trained WAE (``iaaa.policy``): the latent code of each
    image, at the size and channel count the model was trained on.

    ``model`` is a ``WAE``, anything holding one as ``.wae``/``.model`` (a ``WAEScorer``), or the
    path of a saved model file. The latent codes are trained towards ``N(0, sigma2 I)``, so they
    need no standardisation."""
    if isinstance(model, (str, os.PathLike)):
        from iaaa.policy.wae import load_wae

        path = os.fspath(model)
        if not os.path.isfile(path):
            raise IaaaError(f"wae model: file {path!r} not found; train one with iaaa.policy.fit_wae and save it")
        model = load_wae(path, map_location=device or "cpu")
    for attr in ("wae", "model"):
        if not hasattr(model, "encode") and hasattr(model, attr):
            model = getattr(model, attr)
    cfg = getattr(model, "config", None)
    if not hasattr(model, "encode") or cfg is None:
        raise TypeError(f"wae_features: expected a WAE (with .encode and .config), got {type(model).__name__}")
    if device is not None and isinstance(model, torch.nn.Module):
        model = model.to(device)
    name = f"WAE encoder ({int(getattr(cfg, 'latent_dim', 0)) or '?'}-d latent, {cfg.size[0]}x{cfg.size[1]} input)"
    return ModuleFeatures(model.encode, input_size=tuple(cfg.size), channels=int(cfg.in_channels), device=device, name=name)


def as_extractor(fn: Callable[[torch.Tensor], Any], **kwargs: Any) -> ModuleFeatures:
    """Shorthand for :class:`ModuleFeatures` (returns extractors unchanged)."""
    if isinstance(fn, (ModuleFeatures, InceptionFeatures, PyramidStatsFeatures)) and not kwargs:
        return fn
    return ModuleFeatures(fn, **kwargs)


# ----------------------------------------------------------------------------- Inception-v3


class InceptionFeatures:
    """2048-d pool features of torchvision's Inception-v3, loaded from a local weights file.

    Nothing is downloaded: the architecture is built with ``weights=None, init_weights=False``
    and the file's state dict is loaded into it (a bare state dict, or one nested under
    ``"state_dict"``/``"model"``; ``AuxLogits.*`` keys decide ``aux_logits``). Inputs are fed as
    ``2x - 1``, which is exactly what torchvision's ``transform_input=True`` makes of
    ImageNet-normalised input for these Google weights.

    Note: FID/KID from this network are not comparable to numbers computed with the TF-ported
    "pt_inception-2015-12-05" network that pytorch-fid / torch-fidelity use; compare only
    numbers computed with the same weights file."""

    input_size: Size = (299, 299)
    channels: int = 3
    standardize: bool = False

    def __init__(self, weights: str | os.PathLike, device: torch.device | str | None = None) -> None:
        import torchvision

        path = os.fspath(weights) if weights is not None else ""
        if not path or not os.path.isfile(path):
            raise IaaaError(f"inception weights: file {path!r} not found; {INCEPTION_WEIGHTS_HELP}")
        state = load_torch_file(path, "Inception-v3 weights file (a torch checkpoint)")
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict) or not state:
            raise IaaaError(f"inception weights: {path!r} holds no state dict; save one with torch.save(model.state_dict(), path)")
        aux = any(k.startswith("AuxLogits.") for k in state)
        num_classes = int(state["fc.weight"].shape[0]) if "fc.weight" in state else 1000
        model = torchvision.models.inception_v3(weights=None, aux_logits=aux, init_weights=False, num_classes=num_classes, transform_input=False)
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise IaaaError(
                f"inception weights: {path!r} does not match torchvision's Inception-v3 "
                f"(missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}); {INCEPTION_WEIGHTS_HELP}"
            )
        # Replacing the classifier makes forward() return the 2048-d global-average-pool output.
        model.fc = torch.nn.Identity()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.module = model.eval().to(self.device)
        self.name = f"Inception-v3 pool (2048-d, {os.path.basename(path)})"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.module(batch.to(self.device) * 2.0 - 1.0)
        return out[0] if isinstance(out, tuple) else out


# ----------------------------------------------------------------------------- offline default


class PyramidStatsFeatures:
    """Offline default features: no weights, no training, deterministic.

    Per channel: intensity mean, std and quantiles (1, 5, 25, 50, 75, 95, 99 %); for each
    Laplacian band its log RMS relative to the image std (the spectrum's shape), log quantiles
    of ``|band|`` (50, 90, 99 %) relative to the band RMS (sparsity) and log kurtosis; the
    correlation of band magnitudes between neighbouring scales (high for sharp edges, which
    exist at every scale); the low-pass residual's log std relative to the image std. Band
    features are invariant to a gain change, so brightness is measured once (by the intensity
    statistics) rather than by every feature. Together they separate cells pasted with hard
    edges, wrong brightness, wrong texture or wrong density from real ones. Features have mixed units, so ``standardize = True`` asks the
    protocol to z-score them with the real set's statistics before FID/KID.

    ``levels`` band-pass levels need inputs of at least ``4 * 2**levels`` pixels per side; the
    default ``levels=None`` uses as many as fit down to an 8-pixel residual, at most 5."""

    input_size: Size | None = None
    channels: int | None = None
    standardize: bool = True
    name: str = "PyramidStatsFeatures (offline)"
    _QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    _BAND_QUANTILES = (0.5, 0.9, 0.99)

    def __init__(self, levels: int | None = None, device: torch.device | str | None = None) -> None:
        if levels is not None and levels < 1:
            raise IaaaError(f"levels: must be >= 1, got {levels}")
        self.levels = levels
        self.device = device

    def _num_bands(self, h: int, w: int) -> int:
        if self.levels is not None:
            if min(h, w) < 4 * 2**self.levels:
                raise IaaaError(f"PyramidStatsFeatures: {self.levels} levels need inputs of at least {4 * 2 ** self.levels} px, got {h}x{w}")
            return self.levels
        n = 0
        while n < 5 and min(h, w) // 2 ** (n + 1) >= 8:
            n += 1
        return max(n, 1)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(torch.float32)
        b, c, h, w = x.shape
        # 1e-3 is a quarter of an 8-bit grey level: below it a ratio measures noise, not content.
        eps = 1e-3
        flat = x.reshape(b, c, -1)
        q = torch.tensor(self._QUANTILES, device=x.device)
        sd = flat.std(-1)
        feats = [flat.mean(-1), sd, *torch.quantile(flat, q, dim=-1).unbind(0)]
        log_sd = torch.log(sd + eps)
        pyr = laplacian_pyramid(x, self._num_bands(h, w) + 1)
        qb = torch.tensor(self._BAND_QUANTILES, device=x.device)
        mags = []
        # Band statistics are ratios (to the image's std, to the band's RMS), so they describe
        # sharpness and texture independently of brightness, which the intensity statistics
        # above already carry; otherwise a gain change would move every feature at once.
        for band in pyr[:-1]:
            a = band.abs().reshape(b, c, -1)
            m2 = (a * a).mean(-1)
            log_rms = 0.5 * torch.log(m2 + eps * eps)
            feats.append(log_rms - log_sd)
            feats.extend((torch.log(torch.quantile(a, qb, dim=-1) + eps) - log_rms).unbind(0))
            feats.append(torch.log((a**4).mean(-1) + eps**4) - 2 * torch.log(m2 + eps * eps))
            mags.append(band.abs())
        for fine, coarse in zip(mags[:-1], mags[1:]):
            up = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
            fa, ca = fine.reshape(b, c, -1), up.reshape(b, c, -1)
            fa, ca = fa - fa.mean(-1, keepdim=True), ca - ca.mean(-1, keepdim=True)
            denom = (fa.norm(dim=-1) * ca.norm(dim=-1)).clamp_min(1e-12)
            feats.append((fa * ca).sum(-1) / denom)
        low = pyr[-1].reshape(b, c, -1)
        feats.append(torch.log(low.std(-1) + eps) - log_sd)
        return torch.stack(feats, dim=-1).reshape(b, -1)
