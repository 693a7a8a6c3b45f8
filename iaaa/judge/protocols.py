"""What one training step holds, per arm and protocol (:class:`Recipe`.protocol).

An arm is a name: ``real`` (real crops only), ``aug`` (real crops with the standard
augmentation), ``naive`` (online Simple Copy-Paste between real crops), any synthetic source
name (``iaaa``, ``iaaa[k=v]``, ``synthetic:DIR``), and any of these but ``real`` with ``+aug``.

Every step draws ``batch_size`` real crop positions from the real stream of the seed: the same
crops, in the same order, at every step of every arm (real-only pairing). What the arm adds:

* ``add``: ``recipe.n_synthetic`` more crops: from the synthetic pool, or for ``naive`` a real
  crop with the cells of another real crop pasted in;
* ``mix``: the same, replacing the last ``recipe.n_synthetic`` real crops;
* ``online``: each real crop, with probability ``p``, gets the cells of a pool crop (``naive``:
  of another real crop) pasted in; the batch size is unchanged.

The arm ``iaaa-online`` is ``naive``'s counterpart with the library's paste: where ``naive``
pastes another real crop's cells into a real crop, it pastes pooled cells through
:class:`iaaa.PasteCells` (a compositor fitted on the fold's training images, the
composer's ``paster``). Under ``add`` and ``mix`` its added crops are fresh real crops with
pasted cells, as ``naive``'s are; under ``online`` it pastes into the real crops with
probability ``p``. Under ``add`` / ``mix``, with ``Recipe.paste_context`` ``"image"`` (the
default) it pastes into the whole real image the crop comes from, with a number above 1 into a
window of it that many crop sides wide around the crop, and the crop (with its augmentation) is
cut from the pasted image afterwards, as a user's pipeline that pastes into
whole images before its random crop; with ``Recipe.paste_scale="native"`` (and a working scale
other than 1) the compositor is fitted on, and pastes into, the training images at their own
resolution (the composer's ``native``) and the pasted region is resized to the working scale
(:mod:`iaaa.judge.paste_window`). ``iaaa-online[k=v,...]`` pastes from the compositor variant ``iaaa[k=v,...]``
(which the judge's sources must hold). (Until 2026-12-03 it pasted into the real crops under every protocol, so
under ``add`` it trained on half the crops of ``naive``: records before then show that arm.)

With ``+aug`` (and in ``aug``) every crop of the step goes through the standard augmentation
(:mod:`iaaa.judge.augment`); the real crops' augmentation comes from a stream of its own, so it
is the same in every augmenting arm. Targets are computed after all of it, from the crops'
label maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch

from iaaa.errors import IaaaError
from iaaa.judge.augment import AugmentConfig, draw_augment, photometric, warp_crops
from iaaa.judge.naive import copy_paste
from iaaa.judge.paste_window import paste_window, paste_window_native
from iaaa.judge.recipe import Recipe
from iaaa.judge.targets import class_targets
from iaaa.judge.train_data import Prepared, derived_generator, dihedral
from iaaa.structures import AnnotatedImage

__all__ = ["REAL", "AUG", "NAIVE", "IAAA_ONLINE", "Arm", "parse_arm", "split_arms", "is_online", "offline_source", "Step", "StepComposer"]

REAL, AUG, NAIVE = "real", "aug", "naive"
IAAA_ONLINE = "iaaa-online"
_SUFFIX = "+aug"


def is_online(source: str | None) -> bool:
    """Whether an arm's source is the online paste: ``iaaa-online``, or ``iaaa-online[k=v,...]``
    (a compositor variant's :class:`iaaa.PasteCells`)."""
    return source is not None and (source == IAAA_ONLINE or source.startswith(IAAA_ONLINE + "["))


def offline_source(source: str) -> str:
    """The compositor source an online arm pastes from: ``"iaaa-online[k=v]"`` -> ``"iaaa[k=v]"``,
    ``"iaaa-online"`` -> ``"iaaa"``."""
    return "iaaa" + source[len(IAAA_ONLINE):]


@dataclass(frozen=True)
class Arm:
    """One configuration of a judgement: ``source`` names its synthetic pool (``None``: none;
    ``"naive"``: pastes from the real crops), ``augment`` adds the standard augmentation."""

    name: str
    source: str | None = None
    augment: bool = False


def split_arms(text: str) -> list[str]:
    """A comma list of arm names as the names: commas inside ``[...]`` belong to a compositor
    variant (``"aug,iaaa[object_scale=(0.7, 1.4)]+aug"`` is two arms)."""
    arms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth < 0:
            raise IaaaError(f"arms {text!r}: ']' without '[' at character {i}")
        if ch == "," and depth == 0:
            arms.append(text[start:i])
            start = i + 1
    if depth:
        raise IaaaError(f"arms {text!r}: '[' without ']'")
    arms.append(text[start:])
    return [a.strip() for a in arms if a.strip()]


def parse_arm(name: str) -> Arm:
    """``"iaaa+aug"`` -> ``Arm("iaaa+aug", "iaaa", True)`` (see module docs)."""
    base, augment = (name[: -len(_SUFFIX)], True) if name.endswith(_SUFFIX) else (name, False)
    if not base or base == REAL and augment:
        raise IaaaError(f"arm {name!r}: write 'aug' for real data with augmentation")
    if base == REAL:
        return Arm(name)
    if base == AUG:
        if augment:
            raise IaaaError(f"arm {name!r}: 'aug' already augments")
        return Arm(name, None, True)
    return Arm(name, base, augment)


@dataclass
class Step:
    """One step's crops: ``images`` ``(n, C, crop, crop)`` float, ``labels`` the crops' instance
    maps, ``targets`` their 3-class maps; ``real`` the real crop draws ``(image, y, x, k)``
    (the same in every arm), ``n_synthetic`` the added or replacing crops, ``n_pasted`` the
    real crops that got pasted cells (``online``)."""

    images: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor
    real: list[tuple[int, int, int, int]]
    n_synthetic: int = 0
    n_pasted: int = 0


def _draw(n: int, pool: Sequence[Prepared], crop: int, g: torch.Generator) -> list[tuple[int, int, int, int]]:
    """``n`` crop draws ``(image, y, x, dihedral k)``, one fixed-size row each."""
    u = torch.rand((n, 4), generator=g, dtype=torch.float64)
    out = []
    for row in u.tolist():
        i = min(int(row[0] * len(pool)), len(pool) - 1)
        h, w = pool[i].labels.shape
        out.append((i, min(int(row[1] * (h - crop + 1)), h - crop), min(int(row[2] * (w - crop + 1)), w - crop), min(int(row[3] * 8), 7)))
    return out


@dataclass
class StepComposer:
    """The crops of every step of one (arm, seed) run (see module docs).

    Args:
        real: prepared real training images (each at least ``recipe.crop`` per side).
        recipe: protocol, ratio, p, batch size, crop, boundary.
        seed: the run's seed (streams 1: real crops, 2: synthetic crops and pastes, 3: the real
            crops' augmentation, 4: the synthetic crops' augmentation).
        arm: what the arm adds.
        pool: the prepared synthetic images of the arm's source (``None`` for real, aug, naive).
        augment: ranges of the standard augmentation.
        paster: an online arm's :class:`iaaa.PasteCells` (with ``p=1``: the composer
            draws which crops it pastes into).
        native: ``real`` at their own resolution (normalised float images, int64 labels), for an
            online arm that pastes there (``Recipe.pastes_native``; its paster fitted on them);
            ``None``: it pastes into ``real``.
    """

    real: Sequence[Prepared]
    recipe: Recipe
    seed: int
    arm: Arm = field(default_factory=lambda: Arm(REAL))
    pool: Sequence[Prepared] | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    paster: Any = None
    native: Sequence[AnnotatedImage] | None = None

    def __post_init__(self) -> None:
        if not self.real:
            raise IaaaError("judge: no real training images")
        if is_online(self.arm.source):
            if self.paster is None:
                raise IaaaError(f"judge: arm {self.arm.name!r} needs a PasteCells (paster)")
            if self.native is not None and len(self.native) != len(self.real):
                raise IaaaError(f"judge: {len(self.native)} native images for {len(self.real)} real training images")
        elif self.arm.source not in (None, NAIVE) and not self.pool:
            raise IaaaError(f"judge: arm {self.arm.name!r} has no synthetic images")
        crop = self.recipe.crop
        for p in [*self.real, *(self.pool or [])]:
            if min(p.labels.shape) < crop:
                raise IaaaError(f"{p.name or 'image'}: {tuple(p.labels.shape)} is smaller than the crop {crop}; prepare() it with crop={crop}")
        # the real crops' augmentation has a stream of its own so the synthetic crops' draws
        # never shift it: real crops stay paired across augmenting arms
        self.g_real, self.g_syn, self.g_aug, self.g_aug_syn = (derived_generator(self.seed, k) for k in (1, 2, 3, 4))

    def _cut(self, pool: Sequence[Prepared], draws: list[tuple[int, int, int, int]], rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._cut_maps([p.image for p in pool], [p.labels for p in pool], draws, rows)

    def _cut_maps(self, images: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], draws: list[tuple[int, int, int, int]],
                  rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        crop = self.recipe.crop
        if rows is None:
            imgs = [dihedral(images[i][:, y : y + crop, x : x + crop], k) for i, y, x, k in draws]
            labs = [dihedral(labels[i][y : y + crop, x : x + crop], k) for i, y, x, k in draws]
            return torch.stack(imgs), torch.stack(labs)
        centres = [(y + (crop - 1) / 2, x + (crop - 1) / 2) for _, y, x, _ in draws]
        return warp_crops([images[i] for i, *_ in draws], [labels[i] for i, *_ in draws], centres, crop, rows)

    def _paste_around(self, draws: list[tuple[int, int, int, int]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """For each draw, its real image with the paster's cells pasted into the whole image or the
        window of ``paste_context`` times the crop's side around the crop (:mod:`iaaa.judge.paste_window`),
        at the images' own resolution when the composer has them (``Recipe.paste_scale``)."""
        crop, f = self.recipe.crop, self.recipe.paste_context
        out = [paste_window_native(self.paster, self.real[i], self.native[i], y, x, crop, f, self.g_syn) if self.native is not None
               else paste_window(self.paster, self.real[i], y, x, crop, f, self.g_syn) for i, y, x, _ in draws]
        return [o[0] for o in out], [o[1] for o in out]

    def _rows(self, n: int, g: torch.Generator) -> torch.Tensor | None:
        return draw_augment(n, self.augment, g) if self.arm.augment else None

    def _extra(self, n: int, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` synthetic crops: pool crops, or real crops with cells pasted in (``naive``: another
        real crop's; ``iaaa-online``: the paster's)."""
        crop = self.recipe.crop
        if self.arm.source == NAIVE:
            dst = self._cut(self.real, _draw(n, self.real, crop, self.g_syn), rows)
            src = self._cut(self.real, _draw(n, self.real, crop, self.g_syn), None)
            return copy_paste(*dst, *src, self.g_syn)
        if is_online(self.arm.source):
            draws = _draw(n, self.real, crop, self.g_syn)
            if self.recipe.pastes_around_crops or self.native is not None:
                return self._cut_maps(*self._paste_around(draws), [(j, y, x, k) for j, (_, y, x, k) in enumerate(draws)], rows)
            images, labels = self._cut(self.real, draws, rows)
            return self._paste(images, labels, range(n))
        return self._cut(self.pool, _draw(n, self.pool, crop, self.g_syn), rows)

    def _paste(self, images: torch.Tensor, labels: torch.Tensor, which: Iterable[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The crops ``which`` of ``images``/``labels`` with the paster's cells pasted in (copies)."""
        images, labels = images.clone(), labels.clone()
        for j in which:
            s = self.paster.apply(AnnotatedImage.trusted(image=images[j], labels=labels[j], class_ids=None), self.g_syn)
            images[j], labels[j] = s.image, s.labels
        return images, labels

    def _online(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        n = images.shape[0]
        hit = torch.nonzero(torch.rand(n, generator=self.g_syn) < self.recipe.p).flatten()
        if hit.numel() == 0:
            return images, labels, 0
        if is_online(self.arm.source):
            return (*self._paste(images, labels, hit.tolist()), int(hit.numel()))
        pool = self.real if self.arm.source == NAIVE else self.pool
        src = self._cut(pool, _draw(hit.numel(), pool, self.recipe.crop, self.g_syn), None)
        img, lab = copy_paste(images[hit], labels[hit], *src, self.g_syn)
        images, labels = images.clone(), labels.clone()
        images[hit], labels[hit] = img, lab
        return images, labels, int(hit.numel())

    def next(self) -> Step:
        """The next step's crops."""
        r = self.recipe
        draws = _draw(r.batch_size, self.real, r.crop, self.g_real)
        real_rows = self._rows(r.batch_size, self.g_aug)
        images, labels = self._cut(self.real, draws, real_rows)
        n_syn = n_pasted = 0
        online = r.protocol == "online"
        if self.arm.source is not None and online:
            # pasted cells take the crop's photometric augmentation with it
            images, labels, n_pasted = self._online(images, labels)
        if real_rows is not None:
            images = photometric(images, real_rows, self.g_aug)
        if self.arm.source is not None and not online:
            n_syn = r.n_synthetic
            extra_rows = self._rows(n_syn, self.g_aug_syn)
            xi, xl = self._extra(n_syn, extra_rows)
            if extra_rows is not None:
                xi = photometric(xi, extra_rows, self.g_aug_syn)
            keep = r.batch_size if r.protocol == "add" else r.batch_size - n_syn
            images, labels = torch.cat([images[:keep], xi]), torch.cat([labels[:keep], xl])
        return Step(images, labels, class_targets(labels, r.boundary), draws, n_syn, n_pasted)
