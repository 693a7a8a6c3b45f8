"""``SAAA``: the whole second pipeline (paper section 4) as one object that fits, saves, loads and
samples synthetic annotated images.

``fit`` cuts random square crops (``size`` px) out of the annotated images, encodes their label
maps as foreground + distance channels (:mod:`iaaa.saaa.masks`), trains the mask DDPM
(:mod:`iaaa.saaa.diffusion`) on whole-image crops, so layouts of touching cells are learned
together with cell shapes, and trains the Pix2Pix generator (:mod:`iaaa.saaa.pix2pix`) on the
(mask, image) crop pairs. ``sample`` draws a label map from the DDPM, decodes it into instances
``1..N``, re-encodes *those exact labels* and renders the image from them, so the image is drawn
around the labels it is returned with.

A saved model is a folder: ``saaa.json`` (options, data description, training summary) and one
``torch.save`` file per network (``mask_diffusion.pt``, ``pix2pix.pt``), each
``{"format", "version", "config", "state_dict"}`` of plain values and tensors
(``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from iaaa.dtypes import from_float, to_float
from iaaa.errors import IaaaError
from iaaa.saaa.diffusion import MaskDiffusion, MaskDiffusionConfig
from iaaa.saaa.masks import labels_to_channels
from iaaa.saaa.pix2pix import Pix2PixConfig, UNetGenerator
from iaaa.saaa.training import CropPool, TrainReport, fit_mask_diffusion, fit_pix2pix
from iaaa.structures import AnnotatedImage, as_annotated

__all__ = ["SAAA", "SAAAConfig", "random_crops"]

FORMAT = "iaaa.saaa"
VERSION = 1
_DTYPES = {"uint8": torch.uint8, "uint16": torch.uint16, "float32": torch.float32}


@dataclass
class SAAAConfig:
    """Options of :class:`SAAA` (all stored in ``saaa.json``).

    Attributes:
        size: side of the crops trained on and of the sampled images (px).
        crops_per_image: random crops cut from each training image.
        diffusion_steps, pix2pix_steps: optimiser steps of each model.
        diffusion_batch, pix2pix_batch: batch sizes.
        diffusion_lr, pix2pix_lr: learning rates.
        diffusion: the mask DDPM's options (its ``size`` is forced to ``size``).
        pix2pix: the generator's options (``out_channels`` is set from the data).
        perceptual: ``"wae"`` (default), ``"random"``, ``"none"`` or a local VGG16/VGG19 state
            dict path (see :mod:`iaaa.saaa.perceptual`).
        seed: seeds crops, initial weights and every training batch.
        sample_size: side of sampled images (default ``size``); both networks are
            convolutional, so a larger canvas holds more cells of the trained scale.
    """

    size: int = 64
    crops_per_image: int = 64
    diffusion_steps: int = 1000
    pix2pix_steps: int = 1500
    diffusion_batch: int = 8
    pix2pix_batch: int = 8
    diffusion_lr: float = 5e-4
    pix2pix_lr: float = 2e-4
    diffusion: MaskDiffusionConfig = field(default_factory=MaskDiffusionConfig)
    pix2pix: Pix2PixConfig = field(default_factory=Pix2PixConfig)
    perceptual: str = "wae"
    seed: int = 0
    sample_size: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.diffusion, dict):
            self.diffusion = MaskDiffusionConfig(**self.diffusion)
        if isinstance(self.pix2pix, dict):
            self.pix2pix = Pix2PixConfig(**self.pix2pix)
        self.perceptual = str(self.perceptual)
        if self.size < 8 or self.crops_per_image < 1 or min(self.diffusion_batch, self.pix2pix_batch) < 1 or min(self.diffusion_steps, self.pix2pix_steps) < 0:
            raise IaaaError(f"SAAAConfig: size must be >= 8, crops_per_image and batch sizes >= 1, steps >= 0 (got size {self.size})")
        self.diffusion = MaskDiffusionConfig(**{**self.diffusion.to_dict(), "size": self.size})
        step = 2**self.pix2pix.depth
        for name in ("size", "sample_size"):
            v = getattr(self, name)
            if v is not None and (v < step or v % step):
                raise IaaaError(f"SAAAConfig: {name} {v} must be a positive multiple of {step} for a Pix2Pix generator of depth {self.pix2pix.depth}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["diffusion"] = self.diffusion.to_dict()
        return d


def random_crops(samples: Sequence[AnnotatedImage], size: int, per_image: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_image`` uniformly placed ``size`` x ``size`` crops of each sample: float images in
    ``[0, 1]`` ``(N, C, S, S)`` and label maps ``(N, S, S)``. Images smaller than ``size`` are
    zero-padded (label 0) at the bottom/right first."""
    imgs, labs = [], []
    for s in samples:
        img, lab = to_float(s.image.cpu()), s.labels.cpu()
        h, w = lab.shape
        ph, pw = max(size - h, 0), max(size - w, 0)
        if ph or pw:
            img = torch.nn.functional.pad(img, (0, pw, 0, ph))
            lab = torch.nn.functional.pad(lab, (0, pw, 0, ph))
            h, w = lab.shape
        ys = torch.randint(0, h - size + 1, (per_image,), generator=generator).tolist()
        xs = torch.randint(0, w - size + 1, (per_image,), generator=generator).tolist()
        for y, x in zip(ys, xs):
            imgs.append(img[:, y : y + size, x : x + size])
            labs.append(lab[y : y + size, x : x + size])
    return torch.stack(imgs), torch.stack(labs)


class SAAA:
    """Semantic-aware AI augmentation: a mask DDPM plus a Pix2Pix renderer.

    >>> saaa = SAAA(size=64, diffusion_steps=1000, pix2pix_steps=1000).fit(samples)  # doctest: +SKIP
    >>> saaa.save("saaa_model"); saaa = SAAA.load("saaa_model")                      # doctest: +SKIP
    >>> sample = saaa.sample(torch.Generator().manual_seed(0))                       # doctest: +SKIP

    ``sample`` has the compositor's signature, so ``SynthesisDataset(saaa, n)``,
    ``iaaa.export.export_synthetic(saaa, n, out)`` and :class:`iaaa.sources.SourceMix` take it.
    Keyword arguments are :class:`SAAAConfig` fields; ``device`` is where training and sampling run.
    """

    def __init__(self, config: SAAAConfig | None = None, device: str | torch.device = "cpu", **options: Any) -> None:
        if config is not None and options:
            raise TypeError("SAAA: pass either a SAAAConfig or keyword options, not both")
        try:
            self.config = config if config is not None else SAAAConfig(**options)
        except TypeError as exc:
            raise IaaaError(f"SAAA: {exc}") from exc
        self.device = torch.device(device)
        self.diffusion: MaskDiffusion | None = None
        self.generator: UNetGenerator | None = None
        self.data: dict[str, Any] = {}
        self.reports: dict[str, TrainReport] = {}

    # ------------------------------------------------------------------ fitting

    def fit(self, samples: Iterable[Any], checkpoint_dir: str | os.PathLike | None = None, progress: bool = False) -> "SAAA":
        """Train both models on annotated images (anything :func:`~iaaa.structures.as_annotated`
        takes). ``checkpoint_dir`` holds resumable checkpoints (rerun the same call to continue
        after an interruption)."""
        from iaaa.synthesis.search_objects import objects_for_search
        from iaaa.saaa.perceptual import build_perceptual

        samples = [as_annotated(s) for s in samples]
        if not samples:
            raise IaaaError("SAAA.fit: no training images")
        chans = {int(s.image.shape[0]) for s in samples}
        dtypes = {s.image.dtype for s in samples}
        if len(chans) != 1 or len(dtypes) != 1:
            raise IaaaError(f"SAAA.fit: training images must share one channel count and dtype, got channels {sorted(chans)} and dtypes {sorted(map(str, dtypes))}")
        dtype = dtypes.pop()
        if str(dtype).removeprefix("torch.") not in _DTYPES:
            raise IaaaError(f"SAAA.fit: image dtype {dtype} is not supported (uint8, uint16, float32)")
        c = self.config
        g = torch.Generator().manual_seed(c.seed)
        images, labels = random_crops(samples, c.size, c.crops_per_image, g)
        # Per-channel scale from a high percentile: a dim 16-bit stack reaches the networks on
        # the same footing as a bright 8-bit one.
        flat = images.transpose(0, 1).reshape(images.shape[1], -1)
        scale = torch.quantile(flat[:, :: max(1, flat.shape[1] // 1_000_000)], 0.995, dim=1).clamp_min(1e-3)
        self.data = {"channels": chans.pop(), "dtype": str(dtype).removeprefix("torch."), "scale": scale.tolist(), "n_images": len(samples), "n_crops": int(images.shape[0])}
        pool = CropPool(labels_to_channels(labels), self._to_model_range(images))
        ck = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if ck is not None:
            ck.mkdir(parents=True, exist_ok=True)
        self.diffusion = MaskDiffusion(c.diffusion, seed=c.seed)
        self.reports["diffusion"] = fit_mask_diffusion(
            self.diffusion, pool, c.diffusion_steps, c.diffusion_batch, c.diffusion_lr, c.seed, self.device,
            checkpoint=(ck / "diffusion.ckpt") if ck else None, progress=progress,
        )
        p2p = Pix2PixConfig(**{**c.pix2pix.to_dict(), "out_channels": self.data["channels"]})
        objects = objects_for_search(samples, max_objects=300, seed=c.seed) if c.perceptual == "wae" else None
        perceptual, _ = build_perceptual(c.perceptual, objects, self.data["channels"], seed=c.seed)
        self.generator, self.reports["pix2pix"] = fit_pix2pix(
            p2p, pool, c.pix2pix_steps, perceptual, c.pix2pix_batch, c.pix2pix_lr, c.seed, self.device,
            checkpoint=(ck / "pix2pix.ckpt") if ck else None, progress=progress, options={"perceptual": c.perceptual},
        )
        self.diffusion.eval()
        return self

    # ------------------------------------------------------------------ sampling

    def _scale(self) -> torch.Tensor:
        return torch.tensor(self.data["scale"], dtype=torch.float32).view(-1, 1, 1)

    def _to_model_range(self, images01: torch.Tensor) -> torch.Tensor:
        return (images01 / self._scale().to(images01.device)).clamp(0, 1) * 2 - 1

    def _check_fitted(self) -> None:
        if self.diffusion is None or self.generator is None:
            raise IaaaError("SAAA: not fitted; call fit(samples) or SAAA.load(dir) first")

    @torch.no_grad()
    def render(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in the data's dtype ``([B,] C, H, W)`` for label maps ``([B,] H, W)`` (sides
        divisible by ``2 ** pix2pix.depth``) by the Pix2Pix generator."""
        self._check_fitted()
        single = labels.ndim == 2
        lab = labels[None] if single else labels
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        masks = labels_to_channels(lab.cpu()).to(self.device)
        noise = torch.randn((lab.shape[0], 1, *lab.shape[-2:]), generator=g).to(self.device) if self.generator.config.noise else None
        out = self.generator(masks, noise)
        img = ((out + 1) / 2).clamp(0, 1) * self._scale().to(self.device)
        img = from_float(img.clamp(0, 1), _DTYPES[self.data["dtype"]])
        return img[0] if single else img

    def sample_batch(self, n: int, generator: torch.Generator | None = None) -> list[AnnotatedImage]:
        """``n`` synthetic images in one batched pass through both networks."""
        self._check_fitted()
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        labels = self.diffusion.sample_labels(n, g, size=self.config.sample_size)
        images = self.render(labels, g)
        return [AnnotatedImage(images[i], labels[i].to(self.device), name="saaa", meta={"source": "saaa"}) for i in range(n)]

    def sample(self, generator: torch.Generator | None = None) -> AnnotatedImage:
        """One synthetic :class:`~iaaa.structures.AnnotatedImage` of ``sample_size`` px square: image
        in the training data's dtype and channels, int64 labels ``1..N`` (no instance below
        ``diffusion.min_area``). Depends on ``generator`` alone (None: a fixed seed 0)."""
        return self.sample_batch(1, generator)[0]

    # ------------------------------------------------------------------ persistence

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``saaa.json``, ``mask_diffusion.pt`` and ``pix2pix.pt`` into ``folder``."""
        from iaaa import __version__
        from iaaa.data.imageio import atomic_path

        self._check_fitted()
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        for name, model, cfg in (("mask_diffusion", self.diffusion.unet, self.diffusion.config.to_dict()), ("pix2pix", self.generator, self.generator.config.to_dict())):
            payload = {"format": f"{FORMAT}.{name}", "version": VERSION, "config": cfg, "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            with atomic_path(root / f"{name}.pt") as tmp:
                torch.save(payload, tmp)
        summary = {k: {"steps": r.steps, "seconds": round(r.seconds, 1), "final": {n: v[-1] for n, v in r.losses.items() if v}} for k, r in self.reports.items()}
        meta = {"format": FORMAT, "version": VERSION, "iaaa_version": __version__, "config": self.config.to_dict(), "data": self.data, "training": summary}
        with atomic_path(root / "saaa.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
        return root

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "SAAA":
        """Load a folder written by :meth:`save`; a missing or foreign file raises
        :class:`~iaaa.errors.IaaaError` naming it."""
        root = Path(folder)
        if not root.is_dir():
            raise IaaaError(f"{root}: no such SAAA model folder (train one with `iaaa saaa fit`)")
        meta_path = root / "saaa.json"
        if not meta_path.is_file():
            raise IaaaError(f"{meta_path}: missing; {root} is not a SAAA model folder")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise IaaaError(f"{meta_path}: not valid JSON ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise IaaaError(f"{meta_path}: not a SAAA model description (field 'format' should be {FORMAT!r})")
        if meta.get("version") != VERSION:
            raise IaaaError(f"{meta_path}: SAAA model version {meta.get('version')!r} is not supported (expected {VERSION})")
        try:
            config = SAAAConfig(**meta["config"])
            data = dict(meta["data"])
            _DTYPES[data["dtype"]], int(data["channels"]), list(data["scale"])
        except (TypeError, ValueError, KeyError) as exc:
            raise IaaaError(f"{meta_path}: field 'config' or 'data' is invalid: {exc}") from exc
        saaa = cls(config, device=device)
        saaa.data = data
        path = root / "mask_diffusion.pt"
        payload = _read_payload(path, "mask_diffusion")
        # Files written before prediction_type was an option hold epsilon models.
        payload["config"].setdefault("prediction_type", "epsilon")
        saaa.diffusion = MaskDiffusion(_build_config(MaskDiffusionConfig, payload, path))
        _load_state(saaa.diffusion.unet, payload, path)
        path = root / "pix2pix.pt"
        payload = _read_payload(path, "pix2pix")
        saaa.generator = UNetGenerator(_build_config(Pix2PixConfig, payload, path))
        _load_state(saaa.generator, payload, path)
        saaa.diffusion.to(saaa.device).eval()
        saaa.generator.to(saaa.device).eval()
        return saaa

    def __repr__(self) -> str:
        state = "fitted" if self.generator is not None else "not fitted"
        return f"SAAA(size={self.config.size}, channels={self.data.get('channels')}, dtype={self.data.get('dtype')}, {state})"


def _read_payload(path: Path, name: str) -> dict[str, Any]:
    """The checked contents of one network file of a saved model."""
    if not path.is_file():
        raise IaaaError(f"{path}: missing weights file of the SAAA model")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors come in many types; report them as one
        raise IaaaError(f"{path}: not a readable torch file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != f"{FORMAT}.{name}" or "state_dict" not in payload or "config" not in payload:
        raise IaaaError(f"{path}: not a SAAA {name} weights file (field 'format' should be '{FORMAT}.{name}')")
    return payload


def _build_config(cls: type, payload: dict[str, Any], path: Path) -> Any:
    try:
        return cls(**payload["config"])
    except (TypeError, ValueError) as exc:
        raise IaaaError(f"{path}: field 'config' is invalid: {exc}") from exc


def _load_state(module: torch.nn.Module, payload: dict[str, Any], path: Path) -> None:
    try:
        module.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise IaaaError(f"{path}: field 'state_dict' does not match its config ({str(exc).splitlines()[0]})") from exc
