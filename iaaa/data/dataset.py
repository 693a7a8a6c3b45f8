"""PyTorch datasets: synthetic images generated on the fly, real annotated images in the same
target format, and a deterministic mix of the two.

Targets follow torchvision's detection convention, so the datasets plug straight into
``torchvision.models.detection.maskrcnn_resnet50_fpn`` training loops::

    image: tv_tensors.Image float32 (C, H, W) in [0, 1]
    target = {"boxes": BoundingBoxes XYXY (N, 4), "labels": int64 class ids (N,),
              "masks": Mask uint8 (N, H, W), "label_map": Mask int64 (H, W)}
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from iaaa.errors import IaaaError
from iaaa.dtypes import to_float
from iaaa.label_maps import labels_to_masks_and_boxes
from iaaa.sampler import Sampler, check_sampler, mix_seed
from iaaa.structures import AnnotatedImage, as_annotated

__all__ = ["SynthesisDataset", "RealDataset", "MixedDataset", "collate_fn", "make_target", "sample_generator", "TARGET_FORMATS"]

TARGET_FORMATS = ("detection", "label_map", "sample")


def sample_generator(seed: int, index: int, epoch: int = 0) -> torch.Generator:
    """The generator that drives sample ``index`` of epoch ``epoch``: a function of the three
    numbers alone, so a sample is the same in any worker, process, rank or machine."""
    return torch.Generator().manual_seed(mix_seed(seed, index, epoch))


def make_target(sample: AnnotatedImage, label_map: torch.Tensor | None = None) -> tuple[Any, dict[str, Any]]:
    """Detection-format ``(image, target)`` of a sample. Boxes and masks are both derived from
    the label map, so ``boxes == masks_to_boxes(masks)`` holds. ``label_map``
    overrides the sample's (used after geometric transforms); instances absent from it are
    dropped together with their class ids, and instances new in it (added by a transform such as
    :class:`~iaaa.synthesis.paste.PasteCells`) take the sample's one category (refused when it
    has several)."""
    from torchvision import tv_tensors

    labels = sample.labels if label_map is None else label_map.as_subclass(torch.Tensor).to(torch.int64)
    # One search of the label map gives each instance's box, which bounds its mask and is its
    # target box (in a DataLoader worker the masks are made in shared memory).
    masks, ids, boxes = labels_to_masks_and_boxes(labels, dtype=torch.uint8)
    if label_map is None:
        class_ids = sample.class_ids
    else:
        all_ids = sample.ids
        known = torch.isin(ids, all_ids)
        class_ids = torch.zeros(ids.shape, dtype=torch.int64)
        class_ids[known] = sample.class_ids[torch.searchsorted(all_ids, ids[known])].to(torch.int64)
        if not bool(known.all()):
            # New ids: instances a transform added (PasteCells on the (Image, Mask) pair, which
            # carries no class ids). Their class is known only where the sample has one class.
            only = _only_class(sample)
            if only is None:
                raise IaaaError(
                    f"{sample.name}: a transform added label values {ids[~known].tolist()}, but the sample has "
                    f"{len(sample.categories)} classes, so theirs is unknown; paste on the (image, target) pair or the "
                    f"AnnotatedImage (PasteCells.apply), which carry class ids"
                )
            class_ids[~known] = only
    h, w = labels.shape
    image = sample.image.as_subclass(torch.Tensor)
    target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
        "labels": class_ids.to(torch.int64),
        "masks": tv_tensors.Mask(masks),
        "label_map": tv_tensors.Mask(labels),
    }
    return tv_tensors.Image(to_float(image) if not image.dtype.is_floating_point else image.float()), target


def _integer(value: Any, name: str) -> int:
    """``value`` as a Python int (NumPy and 0-d tensor integers too), or one clear line."""
    try:
        return operator.index(value)
    except TypeError:
        raise IaaaError(f"{name} must be an integer, got {value!r}") from None


def _epoch(value: Any) -> int:
    """An epoch number (any integer type, not a bool) >= 0, or one clear line."""
    try:
        e = operator.index(value)
    except TypeError:
        e = -1
    if isinstance(value, bool) or e < 0:
        raise IaaaError(f"epoch must be an int >= 0, got {value!r}")
    return e


class _SharedEpoch:
    """The epoch number of a dataset, in a one-element tensor in shared memory: DataLoader
    workers hold copies of the dataset, and persistent ones (``persistent_workers=True``) keep
    theirs across epochs, so an epoch held in a plain attribute never reached them and every
    epoch replayed the first one's samples. A forked worker maps the same memory; a spawned one
    gets it through torch's multiprocessing pickler; a plain ``pickle`` copies the value (the
    same sharing as Hugging Face datasets' ``set_epoch``)."""

    def __init__(self, epoch: int) -> None:
        self._cell = torch.tensor(epoch, dtype=torch.int64)
        try:
            self._cell.share_memory_()
        except (RuntimeError, OSError):
            # No shared memory here: workers then see the epoch they were started with, as a
            # non-persistent loader's do.
            pass

    def get(self) -> int:
        return int(self._cell)

    def set(self, epoch: int) -> None:
        self._cell.fill_(epoch)


def _only_class(sample: AnnotatedImage) -> int | None:
    """The class id of a sample whose categories name one class (the default ``{1: "cell"}``),
    else ``None``."""
    return next(iter(sample.categories)) if len(sample.categories) == 1 else None


def _apply_transforms(sample: AnnotatedImage, transforms: Callable | None) -> tuple[Any, torch.Tensor | None]:
    if transforms is None:
        return None, None
    from torchvision import tv_tensors

    image, label_map = transforms(tv_tensors.Image(to_float(sample.image)), tv_tensors.Mask(sample.labels))
    return image, label_map


def _format(sample: AnnotatedImage, transforms: Callable | None, target_format: str) -> Any:
    if target_format == "sample":
        if transforms is not None:
            raise IaaaError("transforms are applied to tensors; use target_format='detection' or 'label_map' with transforms")
        return sample
    image, label_map = _apply_transforms(sample, transforms)
    if target_format == "label_map":
        if image is None:
            from torchvision import tv_tensors

            return tv_tensors.Image(to_float(sample.image)), tv_tensors.Mask(sample.labels)
        return image, label_map
    out_image, target = make_target(sample, label_map)
    return (out_image if image is None else image), target


class SynthesisDataset(Dataset):
    """Synthetic annotated images generated on the fly by a fitted compositor.

    ``ds[i]`` depends only on ``(seed, epoch, i)``: it is the same in two dataset instances,
    with any ``num_workers``, under ``DistributedSampler``, on any machine.

    Args:
        compositor: a fitted :class:`~iaaa.synthesis.compositor.CellCompositor`, or any other
            :class:`~iaaa.sampler.Sampler` (``sample(generator) -> AnnotatedImage``).
        length: number of samples per epoch.
        seed: base seed.
        transforms: optional callable applied after synthesis to
            ``(tv_tensors.Image float32, tv_tensors.Mask label map)`` and returning the same pair,
            e.g. a ``torchvision.transforms.v2.Compose`` of ``iaaa.ops``. Boxes and masks are
            derived from the transformed label map, so they stay exact. Instances a transform
            adds (:class:`~iaaa.synthesis.paste.PasteCells`) take the sample's class where its
            categories name one; with several classes they are refused (an ``(Image, Mask)``
            pair carries no class ids).
        target_format: ``"detection"`` (``(image, target dict)``, for Mask R-CNN),
            ``"label_map"`` (``(image, label map)`` pairs for U-Net-style training) or
            ``"sample"`` (the raw :class:`AnnotatedImage`, source dtype kept; used by export).
        epoch: start epoch; :meth:`set_epoch` changes it so each epoch sees new images.
    """

    def __init__(self, compositor: Sampler, length: int, seed: int = 0, transforms: Callable | None = None, target_format: str = "detection", epoch: int = 0) -> None:
        check_sampler(compositor, "compositor")
        length, seed = _integer(length, "length"), _integer(seed, "seed")
        if length < 0:
            raise IaaaError(f"length must be >= 0, got {length}")
        if target_format not in TARGET_FORMATS:
            raise IaaaError(f"target_format must be one of {TARGET_FORMATS}, got {target_format!r}")
        self.compositor = compositor
        self.length = length
        self.seed = seed
        self.transforms = transforms
        self.target_format = target_format
        self._epoch = _SharedEpoch(_epoch(epoch))

    def __len__(self) -> int:
        return self.length

    @property
    def epoch(self) -> int:
        """The current epoch (what :meth:`set_epoch` last set)."""
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s samples from now on, in this process and in the DataLoader
        workers that hold copies of this dataset, persistent ones included (call it before each
        epoch, as with ``DistributedSampler.set_epoch``, not while a loader iterates)."""
        self._epoch.set(_epoch(epoch))

    def synthesize(self, index: int) -> AnnotatedImage:
        """The raw synthetic :class:`AnnotatedImage` for ``index`` (no transforms; any integer
        type, e.g. a NumPy or 0-d tensor index from a custom sampler)."""
        index = operator.index(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a SynthesisDataset of length {self.length}")
        epoch = self.epoch
        sample = self.compositor.sample(generator=sample_generator(self.seed, index, epoch))
        sample = as_annotated(sample)
        sample.name = f"synth_{epoch:03d}_{index:06d}" if epoch else f"synth_{index:06d}"
        return sample

    def __getitem__(self, index: int) -> Any:
        return _format(self.synthesize(index), self.transforms, self.target_format)


class RealDataset(Dataset):
    """Real annotated images (from the readers) in the same formats as :class:`SynthesisDataset`,
    ``transforms`` included (e.g. ``v2.Compose([PasteCells(compositor), v2.RandomCrop(256)])``)."""

    def __init__(self, samples: Sequence[Any], transforms: Callable | None = None, target_format: str = "detection") -> None:
        if target_format not in TARGET_FORMATS:
            raise IaaaError(f"target_format must be one of {TARGET_FORMATS}, got {target_format!r}")
        self.samples = [as_annotated(s, name=f"real_{i:06d}") for i, s in enumerate(samples)]
        self.transforms = transforms
        self.target_format = target_format

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Any:
        return _format(self.samples[index], self.transforms, self.target_format)


# Streams of sample_generator that no (index >= 0, epoch >= 0) sample uses: where the real and
# synthetic items of an epoch sit (per epoch), and the shuffled passes over the synthetic dataset
# that epochs deal from (per pass, across epochs).
_LAYOUT_INDEX = -1
_PASS_EPOCH = -1


def _dealt(n: int, count: int, seed: int, epoch: int) -> torch.Tensor:
    """Synthetic indices of epoch ``epoch``: draws ``epoch * count`` to ``(epoch + 1) * count - 1``
    of an endless run of shuffled passes over ``range(n)`` (``count <= n``)."""
    if count == 0:
        return torch.zeros(0, dtype=torch.int64)
    start = epoch * count
    first, last = start // n, (start + count - 1) // n
    passes = torch.cat([torch.randperm(n, generator=sample_generator(seed, p, _PASS_EPOCH)) for p in range(first, last + 1)])
    offset = start - first * n
    return passes[offset : offset + count]


class MixedDataset(Dataset):
    """Real and synthetic samples mixed at ``ratio`` synthetic per real image (the paper uses
    about 1:1).

    Every epoch holds each real sample once and ``n_syn = round(ratio * len(real))`` synthetic
    ones, so ``len(mixed) == len(real) + n_syn`` and the ratio is exact in every epoch.
    ``synthetic`` may be (and usually is) longer than ``n_syn``: epochs deal its indices from
    shuffled passes over all of it, epoch ``e`` taking draws ``e * n_syn`` to
    ``(e + 1) * n_syn - 1``. So successive epochs see fresh synthetic samples, each index is used
    once per pass and every index has appeared after ``ceil(len(synthetic) / n_syn)`` epochs (an
    epoch that straddles two passes may draw one index twice). Where the real and synthetic items
    sit within an epoch is shuffled per epoch too.

    Which sample item ``i`` is depends only on ``(seed, epoch, i)``: the same in every instance,
    worker, process and rank, whatever the global RNG. Call :meth:`set_epoch` before each epoch,
    alongside ``DistributedSampler.set_epoch``; it reaches persistent DataLoader workers too. It
    does not touch the epochs of the datasets it mixes: a :class:`SynthesisDataset`'s own
    ``set_epoch`` still decides what its index ``k`` looks like.

    Args:
        real: the real samples (e.g. a :class:`RealDataset`).
        synthetic: the synthetic samples, at least ``n_syn`` long.
        ratio: synthetic items per real item, ``>= 0``.
        seed: seed of the layouts and the passes.
        epoch: start epoch.
    """

    def __init__(self, real: Dataset, synthetic: Dataset, ratio: float = 1.0, seed: int = 0, epoch: int = 0) -> None:
        if not ratio >= 0:
            raise IaaaError(f"ratio must be >= 0, got {ratio}")
        n_real = len(real)
        n_syn = int(round(ratio * n_real))
        if n_syn > len(synthetic):
            raise IaaaError(f"ratio {ratio} needs {n_syn} synthetic samples but the synthetic dataset has {len(synthetic)}")
        self.real, self.synthetic = real, synthetic
        self.ratio, self.seed = float(ratio), int(seed)
        self.n_real, self.n_syn = n_real, n_syn
        self._epoch = _SharedEpoch(_epoch(epoch))
        self._layout_of: tuple[int, list[int], list[int]] | None = None

    @property
    def epoch(self) -> int:
        """The current epoch (what :meth:`set_epoch` last set)."""
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s layout and synthetic draws from now on, in this process and in
        the DataLoader workers that hold copies of this dataset, persistent ones included."""
        self._epoch.set(_epoch(epoch))

    def _layout(self) -> tuple[list[int], list[int]]:
        """``(source, index)`` of every item of the current epoch, made once per epoch in each
        process that reads it (a worker learns of a new epoch from the shared number alone)."""
        epoch = self.epoch
        if self._layout_of is None or self._layout_of[0] != epoch:
            n = self.n_real + self.n_syn
            order = torch.randperm(n, generator=sample_generator(self.seed, _LAYOUT_INDEX, epoch))
            src = torch.cat([torch.zeros(self.n_real, dtype=torch.int64), torch.ones(self.n_syn, dtype=torch.int64)])
            idx = torch.cat([torch.arange(self.n_real), _dealt(len(self.synthetic), self.n_syn, self.seed, epoch)])
            self._layout_of = (epoch, src[order].tolist(), idx[order].tolist())
        return self._layout_of[1], self._layout_of[2]

    def __len__(self) -> int:
        return self.n_real + self.n_syn

    def is_synthetic(self, index: int) -> bool:
        """Whether item ``index`` of the current epoch comes from the synthetic dataset."""
        return bool(self._layout()[0][index])

    def locate(self, index: int) -> tuple[bool, int]:
        """``(synthetic, k)``: item ``index`` of the current epoch is item ``k`` of the synthetic
        (``True``) or the real dataset."""
        src, idx = self._layout()
        return bool(src[index]), idx[index]

    def __getitem__(self, index: int) -> Any:
        synthetic, k = self.locate(index)
        return (self.synthetic if synthetic else self.real)[k]


def collate_fn(batch: Sequence[Any]) -> tuple:
    """Collate for detection datasets: images and targets as tuples (sizes and instance counts
    differ between samples), as torchvision's detection references do."""
    return tuple(zip(*batch))
