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

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from iaaa.device import resolve_device
from iaaa.dtypes import from_float, to_float
from iaaa.errors import IaaaError
from iaaa.sampler import OwnGenerator
from iaaa.saaa.diffusion import MaskDiffusion, MaskDiffusionConfig
from iaaa.saaa.folder import (
    DTYPES, FORMAT, MODEL_FILE, VERSION, build_network_config, check_data_description, check_model_folder, check_weight_shapes,
    load_weights, make_model_folder, read_model_description, read_network_file, save_network_file,
)
from iaaa.saaa.fields import MAX_BATCH, MAX_CROP_BYTES, MAX_CROPS_PER_IMAGE, MAX_SAMPLE_SIZE, MAX_TRAIN_SIZE, integer, number
from iaaa.saaa.masks import labels_to_channels
from iaaa.saaa.pix2pix import Pix2PixConfig, UNetGenerator
from iaaa.saaa.training import CropPool, TrainReport, fit_mask_diffusion, fit_pix2pix
from iaaa.structures import AnnotatedImage, as_annotated

__all__ = ["SAAA", "SAAAConfig", "random_crops"]

#: Most optimiser steps of either network.
MAX_STEPS = 10_000_000


def _sub_config(cls: type, value: Any, name: str, forced: dict[str, Any]) -> Any:
    """``value`` (a ``cls`` or its dict) as a checked ``cls`` with ``forced`` fields set; errors
    name the field as ``name.field``."""
    if isinstance(value, cls):
        value = value.to_dict()
    if not isinstance(value, dict):
        raise IaaaError(f"{name}: must be a {cls.__name__} or a dict of its fields, got {type(value).__name__}")
    try:
        return cls(**{**value, **forced})
    except TypeError as exc:  # an unknown or missing field
        raise IaaaError(f"{name}: {str(exc).split('__init__() ')[-1]}") from None
    except IaaaError as exc:
        raise IaaaError(f"{name}.{exc}") from None


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
        # Every field is checked for type and bounds before anything is built from it: the
        # config comes back from saaa.json, which people edit (see iaaa.saaa.fields).
        integer(self.size, "size", 8, MAX_TRAIN_SIZE)
        integer(self.crops_per_image, "crops_per_image", 1, MAX_CROPS_PER_IMAGE)
        integer(self.diffusion_steps, "diffusion_steps", 0, MAX_STEPS)
        integer(self.pix2pix_steps, "pix2pix_steps", 0, MAX_STEPS)
        integer(self.diffusion_batch, "diffusion_batch", 1, MAX_BATCH)
        integer(self.pix2pix_batch, "pix2pix_batch", 1, MAX_BATCH)
        for name in ("diffusion_lr", "pix2pix_lr"):
            if number(getattr(self, name), name, 0.0, 10.0) <= 0:
                raise IaaaError(f"{name}: must be > 0, got {getattr(self, name)!r}")
            setattr(self, name, float(getattr(self, name)))
        if not isinstance(self.perceptual, str):
            raise IaaaError(f"perceptual: must be 'wae', 'random', 'none' or a file path, got {self.perceptual!r:.80}")
        integer(self.seed, "seed", -(2**63), 2**64 - 1)
        if self.sample_size is not None:
            integer(self.sample_size, "sample_size", 8, MAX_SAMPLE_SIZE)
        self.pix2pix = _sub_config(Pix2PixConfig, self.pix2pix, "pix2pix", {})
        # The mask DDPM learns the crops, so its size is the crop size whatever a file says; it is
        # checked here against both networks (128 is valid for any of the 1..8 levels meanwhile).
        self.diffusion = _sub_config(MaskDiffusionConfig, self.diffusion, "diffusion", {"size": 128})
        step = self.size_step()
        for name in ("size", "sample_size"):
            v = getattr(self, name)
            if v is not None and v % step:
                raise IaaaError(f"{name}: must be a multiple of {step} ({self.size_rule()}), got {v}")
        self.diffusion.size = self.size

    def size_step(self) -> int:
        """What every image side must be a multiple of: both networks halve it repeatedly."""
        return 2 ** max(self.pix2pix.depth, len(self.diffusion.block_out_channels) - 1)

    def size_rule(self) -> str:
        """Why sides must be multiples of :meth:`size_step` (for messages)."""
        levels = len(self.diffusion.block_out_channels) - 1
        if self.pix2pix.depth >= levels:
            return f"the Pix2Pix generator of depth {self.pix2pix.depth} halves it {self.pix2pix.depth} times"
        return f"the mask U-Net of {levels + 1} levels halves it {levels} times"

    def crop_bytes(self, n_images: int, channels: int) -> int:
        """Memory the training crops of ``n_images`` images of ``channels`` channels take: float
        images, two float mask channels and int64 labels per crop pixel."""
        return int(n_images) * self.crops_per_image * self.size**2 * (4 * int(channels) + 4 * 2 + 8)

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
            raise IaaaError(f"SAAA: {str(exc).split('__init__() ')[-1]}") from None
        self.device = resolve_device(device)
        # sample() without a generator draws fresh samples, as CellCompositor.sample() does.
        self._own = OwnGenerator(self.config.seed)
        self.diffusion: MaskDiffusion | None = None
        self.generator: UNetGenerator | None = None
        self.data: dict[str, Any] = {}
        self.reports: dict[str, TrainReport] = {}
        self.fingerprint: str | None = None

    # ------------------------------------------------------------------ fitting

    def describe_data(self, samples: Sequence[AnnotatedImage]) -> dict[str, Any]:
        """Check training images and describe them (channels, dtype, count, ``sha256`` of their
        pixels and labels) without training: the refusals :meth:`fit` would give (no images,
        mixed channels or dtypes, no cells, too many crops) come from here first."""
        if not samples:
            raise IaaaError("SAAA.fit: no training images")
        chans = {int(s.image.shape[0]) for s in samples}
        dtypes = {s.image.dtype for s in samples}
        if len(chans) != 1 or len(dtypes) != 1:
            raise IaaaError(f"SAAA.fit: training images must share one channel count and dtype, got channels {sorted(chans)} and dtypes {sorted(map(str, dtypes))}")
        dtype = str(dtypes.pop()).removeprefix("torch.")
        if dtype not in DTYPES:
            raise IaaaError(f"SAAA.fit: image dtype {dtype} is not supported (uint8, uint16, float32)")
        if not any(bool((s.labels > 0).any()) for s in samples):
            raise IaaaError(f"SAAA.fit: the {len(samples)} training label maps hold no cells (every label is 0); SAAA learns cell layouts from annotated cells")
        channels = chans.pop()
        need = self.config.crop_bytes(len(samples), channels)
        if need > MAX_CROP_BYTES:
            raise IaaaError(
                f"crops_per_image {self.config.crops_per_image} x {len(samples)} images of size {self.config.size} px would take "
                f"{need / 2**30:.1f} GiB of training crops (limit {MAX_CROP_BYTES / 2**30:.0f} GiB); lower crops_per_image or size"
            )
        h = hashlib.sha256()
        for smp in samples:  # identity of the data, not a float comparison: equal bytes, equal data
            for t in (smp.image, smp.labels):
                t = t.detach().cpu().contiguous()
                h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy())
        return {"channels": channels, "dtype": dtype, "n_images": len(samples), "sha256": h.hexdigest()}

    def fingerprint_for(self, data: dict[str, Any]) -> str:
        """SHA-256 of the options and the data description: a model folder or checkpoint with
        another fingerprint was trained on other data or with other options."""
        doc = {"format": FORMAT, "version": VERSION, "config": self.config.to_dict(), "data_sha256": data["sha256"], "channels": data["channels"], "dtype": data["dtype"]}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def fit(self, samples: Iterable[Any], checkpoint_dir: str | os.PathLike | None = None, progress: bool = False) -> "SAAA":
        """Train both models on annotated images (anything :func:`~iaaa.structures.as_annotated`
        takes). ``checkpoint_dir`` holds resumable checkpoints (rerun the same call to continue
        after an interruption); a checkpoint written for other data or options is refused.

        Everything is checked before the first step: the data (:meth:`describe_data`), the
        perceptual loss (a missing VGG file), the checkpoint folder."""
        from iaaa.synthesis.search_objects import objects_for_search
        from iaaa.saaa.perceptual import build_perceptual

        samples = [as_annotated(s) for s in samples]
        described = self.describe_data(samples)
        c = self.config
        channels = described["channels"]
        p2p = Pix2PixConfig(**{**c.pix2pix.to_dict(), "out_channels": channels})
        objects = objects_for_search(samples, max_objects=300, seed=c.seed) if c.perceptual == "wae" else None
        perceptual, _ = build_perceptual(c.perceptual, objects, channels, seed=c.seed)
        ck = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if ck is not None:
            try:
                ck.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise IaaaError(f"{ck}: cannot create the checkpoint folder ({exc.strerror})") from None
        g = torch.Generator().manual_seed(c.seed)
        images, labels = random_crops(samples, c.size, c.crops_per_image, g)
        if not bool((labels > 0).any()):
            raise IaaaError(f"SAAA.fit: none of the {labels.shape[0]} random {c.size} px crops holds a cell; raise crops_per_image or size")
        # Per-channel scale from a high percentile: a dim 16-bit stack reaches the networks on
        # the same footing as a bright 8-bit one.
        flat = images.transpose(0, 1).reshape(images.shape[1], -1)
        scale = torch.quantile(flat[:, :: max(1, flat.shape[1] // 1_000_000)], 0.995, dim=1).clamp_min(1e-3)
        self.data = {"channels": channels, "dtype": described["dtype"], "scale": scale.tolist(), "n_images": len(samples), "n_crops": int(images.shape[0]), "sha256": described["sha256"]}
        self.fingerprint = self.fingerprint_for(described)
        pool = CropPool(labels_to_channels(labels), self._to_model_range(images))
        # The data and the crop options join each checkpoint's options, so a checkpoint left by
        # a run on other data is refused instead of resumed.
        guard = {"data_sha256": described["sha256"], "crop_size": c.size, "crops_per_image": c.crops_per_image}
        self.diffusion = MaskDiffusion(c.diffusion, seed=c.seed)
        self.reports["diffusion"] = fit_mask_diffusion(
            self.diffusion, pool, c.diffusion_steps, c.diffusion_batch, c.diffusion_lr, c.seed, self.device,
            checkpoint=(ck / "diffusion.ckpt") if ck else None, progress=progress, options=guard,
        )
        self.generator, self.reports["pix2pix"] = fit_pix2pix(
            p2p, pool, c.pix2pix_steps, perceptual, c.pix2pix_batch, c.pix2pix_lr, c.seed, self.device,
            checkpoint=(ck / "pix2pix.ckpt") if ck else None, progress=progress, options={"perceptual": c.perceptual, **guard},
        )
        self.diffusion.eval()
        return self

    def output_spec(self) -> tuple[int, torch.dtype, tuple[int, int]]:
        """``(channels, dtype, (H, W))`` of every sample, known without sampling (what
        :class:`iaaa.sources.SourceMix` compares across its sources)."""
        self._check_fitted()
        side = self.config.sample_size or self.config.size
        return int(self.data["channels"]), DTYPES[self.data["dtype"]], (side, side)

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
        img = from_float(img.clamp(0, 1), DTYPES[self.data["dtype"]])
        return img[0] if single else img

    def sample_batch(self, n: int, generator: torch.Generator | None = None) -> list[AnnotatedImage]:
        """``n`` synthetic images in one batched pass through both networks (without a
        ``generator``: the model's own, seeded by ``config.seed`` and advanced call by call,
        reseeded per DataLoader worker: :class:`~iaaa.sampler.OwnGenerator`)."""
        self._check_fitted()
        g = generator if generator is not None else self._own.get()
        labels = self.diffusion.sample_labels(n, g, size=self.config.sample_size)
        images = self.render(labels, g)
        return [AnnotatedImage(images[i], labels[i].to(self.device), name="saaa", meta={"source": "saaa"}) for i in range(n)]

    def sample(self, generator: torch.Generator | None = None) -> AnnotatedImage:
        """One synthetic :class:`~iaaa.structures.AnnotatedImage` of ``sample_size`` px square: image
        in the training data's dtype and channels, int64 labels ``1..N`` (no instance below
        ``diffusion.min_area``). Depends on ``generator`` alone (None: a fixed seed 0)."""
        return self.sample_batch(1, generator)[0]

    # ------------------------------------------------------------------ persistence

    def save(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write ``saaa.json``, ``mask_diffusion.pt`` and ``pix2pix.pt`` into ``folder`` (checked
        with :func:`check_model_folder`: a foreign non-empty folder is refused, and a finished
        model trained on other data or options is replaced only with ``overwrite=True``)."""
        from iaaa import __version__
        from iaaa.data.imageio import atomic_path

        self._check_fitted()
        root = Path(folder)
        check_model_folder(root, fingerprint=self.fingerprint or "", overwrite=overwrite)  # unknown: never equal
        make_model_folder(root)
        for name, model, cfg in (("mask_diffusion", self.diffusion.unet, self.diffusion.config.to_dict()), ("pix2pix", self.generator, self.generator.config.to_dict())):
            payload = {"format": f"{FORMAT}.{name}", "version": VERSION, "config": cfg, "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            with atomic_path(root / f"{name}.pt") as tmp:
                save_network_file(payload, tmp, root / f"{name}.pt")
        summary = {k: {"steps": r.steps, "seconds": round(r.seconds, 1), "final": {n: v[-1] for n, v in r.losses.items() if v}} for k, r in self.reports.items()}
        meta = {"format": FORMAT, "version": VERSION, "iaaa_version": __version__, "fingerprint": self.fingerprint, "config": self.config.to_dict(), "data": self.data, "training": summary}
        # saaa.json last: a folder holds a finished model only once every weights file is in place.
        with atomic_path(root / MODEL_FILE) as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
        return root

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "SAAA":
        """Load a folder written by :meth:`save`. Every field of ``saaa.json`` and of each
        weights file's config is checked for type and bounds, and the weights' names and shapes
        are compared with the config on the ``meta`` device, all before any network is
        allocated; a missing or bad file or field raises one :class:`~iaaa.errors.IaaaError`
        naming it."""
        device = resolve_device(device)
        root = Path(folder)
        if not root.is_dir():
            raise IaaaError(f"{root}: no such SAAA model folder (train one with `iaaa saaa fit`)")
        meta_path = root / MODEL_FILE
        meta = read_model_description(root)
        if meta is None:
            raise IaaaError(f"{meta_path}: missing; {root} is not a SAAA model folder (or its training did not finish)")
        if meta.get("version") != VERSION:
            raise IaaaError(f"{meta_path}: SAAA model version {meta.get('version')!r} is not supported (expected {VERSION})")
        if not isinstance(meta.get("config"), dict):
            raise IaaaError(f"{meta_path}: field 'config' must be an object of SAAA options")
        try:
            config = SAAAConfig(**meta["config"])
        except TypeError as exc:
            raise IaaaError(f"{meta_path}: field 'config': {str(exc).split('__init__() ')[-1]}") from None
        except IaaaError as exc:
            raise IaaaError(f"{meta_path}: field config.{exc}") from None
        data = check_data_description(meta.get("data"), meta_path)
        saaa = cls(config, device=device)
        saaa.data = data
        fp = meta.get("fingerprint")
        saaa.fingerprint = fp if isinstance(fp, str) else None
        path = root / "mask_diffusion.pt"
        payload = read_network_file(path, "mask_diffusion")
        # Files written before prediction_type was an option hold epsilon models.
        payload["config"].setdefault("prediction_type", "epsilon")
        dcfg = build_network_config(MaskDiffusionConfig, payload, path)
        check_weight_shapes(lambda: MaskDiffusion(dcfg).unet, payload, path)
        gpath = root / "pix2pix.pt"
        gpayload = read_network_file(gpath, "pix2pix")
        gcfg = build_network_config(Pix2PixConfig, gpayload, gpath)
        if gcfg.out_channels != data["channels"]:
            raise IaaaError(f"{gpath}: field config.out_channels is {gcfg.out_channels} but {meta_path} says the data has {data['channels']} channels")
        check_weight_shapes(lambda: UNetGenerator(gcfg), gpayload, gpath)
        saaa.diffusion = MaskDiffusion(dcfg)
        load_weights(saaa.diffusion.unet, payload, path)
        saaa.generator = UNetGenerator(gcfg)
        load_weights(saaa.generator, gpayload, gpath)
        saaa.diffusion.to(saaa.device).eval()
        saaa.generator.to(saaa.device).eval()
        return saaa

    def __repr__(self) -> str:
        state = "fitted" if self.generator is not None else "not fitted"
        return f"SAAA(size={self.config.size}, channels={self.data.get('channels')}, dtype={self.data.get('dtype')}, {state})"
