"""Per-object policies for :class:`~iaaa.synthesis.compositor.CellCompositor`.

A per-object policy is any callable ``policy(image, labels, generator) -> (image, labels)`` on one
cell object: ``image`` float32 ``(C, h, w)`` in ``[0, 1]``, ``labels`` int64 ``(h, w)`` with the
object's cells ``1..k``. It may change the canvas size (a rotated object grows); it must move the
labels with the image, draw randomness only from ``generator``, and not modify its inputs in
place (they are the compositor's pooled object). :class:`iaaa.policy.Policy`
and :class:`iaaa.policy.PolicySet` are such callables, and so is :class:`ObjectAugment`, the
default. :func:`as_object_policy` turns the accepted shorthands into one. The resampling these
policies and the compositor's object paths share is :mod:`iaaa.synthesis.object_warp`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

from iaaa.errors import IaaaError
from iaaa.synthesis.kornia_policy import KorniaPolicy, is_kornia_pipeline
from iaaa.synthesis.object_warp import affine_warp, brightness_contrast, resize_image

__all__ = ["ObjectPolicy", "ObjectAugment", "RandomScale", "AUTO_OBJECT_SCALE", "Identity", "Sequential", "as_object_policy"]

ObjectPolicy = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class Identity:
    """The per-object policy that changes nothing (``policy=[]`` or ``policy="identity"``)."""

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return image, labels

    def __repr__(self) -> str:
        return "Identity()"


class ObjectAugment:
    """The default per-object policy: random FlipLR / FlipUD, rotation by any angle with the
    canvas expanded so nothing is cut, optional rescaling and stretching, and mild brightness /
    contrast.

    The geometric part is one affine resampling (bilinear image, nearest labels, both through the
    same grid) instead of one op call per transform, because the compositor runs it on every
    object of every synthetic image. Semantics match :mod:`iaaa.ops` (``FlipLR``, ``FlipUD``,
    ``Rotate(expand=True)``, ``Resize``, ``Brightness``, ``Contrast``).

    Args:
        flip: flip left-right and up-down, each with probability 1/2.
        degrees: rotation angle drawn uniformly from ``(-degrees, degrees)`` (180: any angle).
        scale: ``None`` or ``(lo, hi)``: resize factor drawn log-uniformly.
        brightness: factor drawn from ``1 +- brightness`` (multiplies the image).
        contrast: factor drawn from ``1 +- contrast`` (about the crop's mean).
        stretch: ``None`` or a factor ``a >= 1``: the object's aspect ratio is changed by a
            factor drawn log-uniformly from ``(1/a, a)``, the x axis scaled by its square root
            and the y axis by the inverse (area kept), before the rotation, so the stretch's
            direction is as random as the angle: new cell shapes, which pasting whole cells
            cannot make.

    Every call draws exactly six uniforms from the generator (seven with ``stretch``), whatever
    the other settings, so the random stream of everything after it does not depend on them.
    """

    def __init__(
        self, flip: bool = True, degrees: float = 180.0, scale: tuple[float, float] | None = None, brightness: float = 0.1, contrast: float = 0.1,
        stretch: float | None = None,
    ) -> None:
        if degrees < 0:
            raise IaaaError(f"degrees must be >= 0, got {degrees}")
        if stretch is not None and not (isinstance(stretch, (int, float, np.floating)) and not isinstance(stretch, bool) and math.isfinite(stretch) and stretch >= 1):
            raise IaaaError(f"stretch must be None or a factor >= 1, got {stretch!r}")
        if scale is not None:
            lo, hi = (float(v) for v in scale)
            if not 0 < lo <= hi:
                raise IaaaError(f"scale must be (lo, hi) with 0 < lo <= hi, got {scale}")
            scale = (lo, hi)
        if not 0 <= brightness < 1 or not 0 <= contrast < 1:
            raise IaaaError(f"brightness and contrast must be in [0, 1), got {brightness}, {contrast}")
        self.flip, self.degrees, self.scale = bool(flip), float(degrees), scale
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.stretch = None if stretch is None or stretch == 1 else float(stretch)

    def __repr__(self) -> str:
        more = f", stretch={self.stretch}" if self.stretch is not None else ""
        return f"ObjectAugment(flip={self.flip}, degrees={self.degrees}, scale={self.scale}, brightness={self.brightness}, contrast={self.contrast}{more})"

    @property
    def max_shrink(self) -> float:
        """Smallest factor this policy scales an axis by (1 without ``scale`` and ``stretch``)."""
        shrink = min(1.0, self.scale[0]) if self.scale else 1.0
        return shrink / math.sqrt(self.stretch) if self.stretch is not None else shrink

    def draw(self, generator: torch.Generator) -> tuple[float, float, float, float, float, float]:
        """One call's parameters ``(fx, fy, angle in radians, scale, brightness factor,
        contrast factor)`` from six uniforms of ``generator`` (seven with ``stretch``). ``fx``
        and ``fy`` are the x and y axis factors before the rotation: +-1 (the flips), times the
        stretch's square root and its inverse."""
        u = torch.rand(6 if self.stretch is None else 7, generator=generator, device=generator.device, dtype=torch.float64).tolist()
        fx = -1.0 if self.flip and u[0] < 0.5 else 1.0
        fy = -1.0 if self.flip and u[1] < 0.5 else 1.0
        if self.stretch is not None:
            q = math.exp((u[6] - 0.5) * math.log(self.stretch))
            fx, fy = fx * q, fy / q
        angle = math.radians(self.degrees * (2 * u[2] - 1))
        s = 1.0
        if self.scale is not None:
            lo, hi = self.scale
            s = math.exp(math.log(lo) + u[3] * (math.log(hi) - math.log(lo)))
        return fx, fy, angle, s, 1.0 + self.brightness * (2 * u[4] - 1), 1.0 + self.contrast * (2 * u[5] - 1)

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        fx, fy, angle, s, bf, cf = self.draw(g)
        image, labels = affine_warp(image, labels, angle, s, fx, fy)
        return brightness_contrast(image, bf, cf), labels


AUTO_OBJECT_SCALE = (0.5, 2.0)
"""The range ``object_scale="auto"`` resolves to on data of varied cell sizes: one objective
step (about 2x) either way, so a model trained on a few fields also meets the cell sizes of the
neighbouring magnifications (judged on DSB 2018 at 4 training images, benchmarks/downstream.md
"Scale jitter without aug")."""


class RandomScale:
    """Resize an object by a factor drawn log-uniformly from ``(lo, hi)`` (one uniform per
    call): bilinear (antialiased when shrinking) for the image, nearest for the labels. What
    ``CompositorConfig(object_scale=...)`` applies before the policy.

    Args:
        scale: a factor > 0, or ``(lo, hi)`` with ``0 < lo <= hi``.
    """

    def __init__(self, scale: float | tuple[float, float]) -> None:
        lo, hi = (scale, scale) if isinstance(scale, (int, float)) else scale
        if not 0 < float(lo) <= float(hi):
            raise IaaaError(f"object_scale: expected a factor > 0 or (lo, hi) with 0 < lo <= hi, got {scale!r}")
        self.lo, self.hi = float(lo), float(hi)

    def __repr__(self) -> str:
        return f"RandomScale(({self.lo}, {self.hi}))"

    def draw(self, generator: torch.Generator) -> float:
        """One call's factor, from one uniform of ``generator``."""
        u = float(torch.rand((), generator=generator, device=generator.device, dtype=torch.float64))
        return math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        s = self.draw(g)
        if s == 1.0:
            return image, labels
        from iaaa.ops.functional import resize_labels  # the op stack loads only when used

        image, size = resize_image(image, s)
        return image, resize_labels(labels, size).to(torch.int64)


class Sequential:
    """Apply per-object policies one after another with the same generator."""

    def __init__(self, policies: Sequence[ObjectPolicy]) -> None:
        self.policies = list(policies)

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        for p in self.policies:
            image, labels = p(image, labels, generator)
        return image, labels

    def __repr__(self) -> str:
        return f"Sequential({self.policies!r})"


class _OpCall:
    """An ``iaaa.ops`` transform instance used as a per-object step: coin with its ``p``, then
    :func:`iaaa.ops.apply_op` with its magnitude and options, canvas expanded."""

    def __init__(self, op: Any) -> None:
        if getattr(op, "value", None) is not None:
            raise IaaaError(f"policy: {type(op).__name__} was built with an explicit {op.param_name}=...; per-object policies take ops by magnitude, write it as ({type(op).__name__!r}, p, magnitude) or wrap it in a callable")
        self.name, self.p, self.magnitude, self.opts = type(op).__name__, op.p, op.magnitude, dict(op.opts)

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        from iaaa.ops import apply_op

        g = generator if generator is not None else torch.Generator().manual_seed(0)
        if float(torch.rand((), generator=g)) < self.p:
            image, labels = apply_op(self.name, image, labels, self.magnitude, generator=g, expand=True, **self.opts)
        return image, labels


def _is_triple(item: Any) -> bool:
    return isinstance(item, (tuple, list)) and len(item) == 3 and isinstance(item[0], str)


def as_object_policy(policy: Any) -> ObjectPolicy:
    """Turn what ``CellCompositor(policy=...)`` accepts into a per-object policy.

    * ``None``: :class:`ObjectAugment` with its defaults.
    * ``"identity"``, ``False`` or an empty list: no change.
    * a list of ``(op name, probability, magnitude)`` triples (or :class:`iaaa.policy.SubPolicy`):
      one :class:`iaaa.policy.Policy`, applied through :func:`iaaa.ops.apply_op` with the canvas
      expanded.
    * a list mixing such triples, ``iaaa.ops`` transform instances and callables: applied in order.
    * any callable ``(image, labels, generator) -> (image, labels)``, e.g. a
      :class:`iaaa.policy.PolicySet` from the search.
    * a ``kornia.augmentation.AugmentationSequential(..., data_keys=["input", "mask"])``:
      wrapped in :class:`~iaaa.synthesis.kornia_policy.KorniaPolicy` (exact labels, randomness
      from the generator), also as an item of a list.
    """
    if policy is None:
        return ObjectAugment()
    if is_kornia_pipeline(policy):
        return KorniaPolicy(policy)
    if policy is False or (isinstance(policy, str) and policy == "identity"):
        return Identity()
    if isinstance(policy, str):
        raise IaaaError(f"policy: unknown name {policy!r}; use None (default), 'identity', a list of (op, p, magnitude) triples or a callable")
    if isinstance(policy, (list, tuple)):
        if len(policy) == 0:
            return Identity()
        from iaaa.policy import Policy, SubPolicy

        if all(_is_triple(p) or isinstance(p, SubPolicy) for p in policy):
            return Policy(list(policy), expand=True)
        steps: list[ObjectPolicy] = []
        for i, item in enumerate(policy):
            if _is_triple(item) or isinstance(item, SubPolicy):
                steps.append(Policy([item], expand=True))
            elif _is_op(item):
                steps.append(_OpCall(item))
            elif is_kornia_pipeline(item):
                steps.append(KorniaPolicy(item))
            elif callable(item):
                steps.append(item)
            else:
                raise TypeError(f"policy[{i}]: expected an (op, probability, magnitude) triple, an iaaa.ops transform or a callable, got {type(item).__name__}")
        return Sequential(steps)
    if _is_op(policy):
        return _OpCall(policy)
    if callable(policy):
        return policy
    raise TypeError(f"policy: expected None, a list of (op, p, magnitude) triples or a callable (image, labels, generator) -> (image, labels), got {type(policy).__name__}")


def _is_op(item: Any) -> bool:
    try:
        from iaaa.ops import Op
    except ImportError:  # the op stack is optional for the default policy
        return False
    return isinstance(item, Op)
