"""Augmentation policies: sub-policies, policies, and ranked policy sets saved as JSON.

A :class:`SubPolicy` is one op with a probability and a magnitude. A :class:`Policy` applies its
sub-policies in order, each with its own probability. A :class:`PolicySet` is the ranked result
of a search; applying it picks one policy per object. All three are plain callables
``(image, labels, generator) -> (image, labels)``, the per-object policy interface of
:class:`iaaa.CellCompositor`, so ``CellCompositor(policy=PolicySet.load("policies.json"))``
works.

Ops are applied by name through :func:`iaaa.ops.apply_op` unless another ``apply`` callable
with the same signature is given (``apply(name, image, labels, magnitude, generator=...,
expand=...)``), which is how toy spaces and user-defined ops plug in.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from iaaa.errors import IaaaError

__all__ = ["SubPolicy", "Policy", "PolicySet", "ApplyFn", "default_apply"]

FORMAT = "iaaa.policies"
VERSION = 1
WEIGHTINGS = ("uniform", "rank")

ApplyFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def default_apply(name: str, image: torch.Tensor, labels: torch.Tensor, magnitude: float | None, generator: torch.Generator | None = None, expand: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the library op ``name`` (imported lazily so policies load without the op stack)."""
    from iaaa.ops import apply_op

    # Ops without a magnitude ignore the value, but apply_op wants a number.
    return apply_op(name, image, labels, 0.0 if magnitude is None else magnitude, generator=generator, expand=expand)


def _known_ops() -> set[str] | None:
    try:
        from iaaa.ops import SPACE
    except ImportError:
        return None
    return set(SPACE)


def _as_generator(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(0 if generator is None else int(generator))


@dataclass(frozen=True)
class SubPolicy:
    """One op applied with ``probability`` at ``magnitude`` (``None`` for ops without one).

    The magnitude is the library's normalised level in ``[0, 1]``: level 0 is the identity and 1
    the end of ``iaaa.ops.SPACE[op].magnitude_range`` (e.g. 180 degrees for Rotate). Signed ops
    draw their direction per application."""

    op: str
    probability: float
    magnitude: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.op, str) or not self.op:
            raise IaaaError(f"SubPolicy.op must be a non-empty op name, got {self.op!r}")
        p = float(self.probability)
        if not 0.0 <= p <= 1.0:
            raise IaaaError(f"SubPolicy({self.op}).probability must be in [0, 1], got {self.probability}")
        object.__setattr__(self, "probability", p)
        if self.magnitude is not None:
            m = float(self.magnitude)
            if not 0.0 <= m <= 1.0:
                raise IaaaError(f"SubPolicy({self.op}).magnitude must be a level in [0, 1] or null, got {self.magnitude}")
            object.__setattr__(self, "magnitude", m)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "probability": self.probability, "magnitude": self.magnitude}

    def __str__(self) -> str:
        mag = "" if self.magnitude is None else f", m={self.magnitude:.4g}"
        return f"{self.op}(p={self.probability:.3g}{mag})"


class Policy:
    """A sequence of sub-policies applied in order to one object.

    Args:
        sub_policies: :class:`SubPolicy` objects or ``(op, probability, magnitude)`` tuples.
        apply: op applier (default: :func:`iaaa.ops.apply_op`).
        expand: passed to the ops; ``True`` (default) lets a rotated/sheared/enlarged object
            grow its canvas instead of being cut, which is what pasting objects needs.
    """

    def __init__(self, sub_policies: Sequence[SubPolicy | Sequence[Any]], apply: ApplyFn | None = None, expand: bool = True) -> None:
        self.sub_policies: tuple[SubPolicy, ...] = tuple(s if isinstance(s, SubPolicy) else SubPolicy(*s) for s in sub_policies)
        self.apply = apply if apply is not None else default_apply
        self.expand = bool(expand)

    def __len__(self) -> int:
        return len(self.sub_policies)

    def __iter__(self) -> Iterator[SubPolicy]:
        return iter(self.sub_policies)

    def __getitem__(self, i: int) -> SubPolicy:
        return self.sub_policies[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.sub_policies == other.sub_policies

    def __hash__(self) -> int:
        return hash(self.sub_policies)

    def __repr__(self) -> str:
        return "Policy([" + ", ".join(str(s) for s in self.sub_policies) + "])"

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply to one object ``(C, h, w)`` + ``(h, w)``, or to a batch ``(B, C, h, w)`` +
        ``(B, h, w)`` where each object draws its own coin per sub-policy (a batch keeps its
        shape, so ``expand`` is off for batches).

        ``generator`` is a ``torch.Generator``, a seed, or ``None`` (seed 0); the coin flips and
        the ops' own draws all come from it."""
        g = _as_generator(generator)
        if image.ndim == 4:
            return self._apply_batch(image, labels, g)
        for sp in self.sub_policies:
            coin = torch.rand((), generator=g, device=g.device)
            if float(coin) < sp.probability:
                image, labels = self.apply(sp.op, image, labels, sp.magnitude, generator=g, expand=self.expand)
        return image, labels

    def _apply_batch(self, image: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if labels.ndim != 3 or labels.shape[0] != image.shape[0]:
            raise IaaaError(f"Policy: batched image {tuple(image.shape)} needs labels (B, H, W), got {tuple(labels.shape)}")
        image, labels = image.clone(), labels.clone()
        for sp in self.sub_policies:
            hit = (torch.rand(image.shape[0], generator=g, device=g.device) < sp.probability).to(image.device)
            if bool(hit.any()):
                idx = hit.nonzero().flatten()
                out_i, out_l = self.apply(sp.op, image[idx], labels[idx], sp.magnitude, generator=g, expand=False)
                image[idx], labels[idx] = out_i.to(image.dtype), out_l.to(labels.dtype)
        return image, labels

    def to_dict(self) -> dict[str, Any]:
        return {"sub_policies": [s.to_dict() for s in self.sub_policies]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], apply: ApplyFn | None = None, where: str = "policy") -> "Policy":
        subs = d.get("sub_policies") if isinstance(d, dict) else None
        if not isinstance(subs, list) or not subs:
            raise IaaaError(f"{where}.sub_policies: expected a non-empty list of sub-policies")
        out = []
        for j, s in enumerate(subs):
            w = f"{where}.sub_policies[{j}]"
            if not isinstance(s, dict) or "op" not in s or "probability" not in s:
                raise IaaaError(f"{w}: expected an object with 'op', 'probability' and 'magnitude'")
            try:
                out.append(SubPolicy(s["op"], s["probability"], s.get("magnitude")))
            except (TypeError, ValueError) as exc:
                raise IaaaError(f"{w}: {exc}") from exc
        return cls(out, apply=apply)


class PolicySet:
    """A ranked list of policies with their scores; applying it picks one policy per object.

    Args:
        policies: best first.
        scores: the search objective of each policy (lower is better), or ``None``.
        changes: each policy's measured mean relative change of the objects, or ``None``.
        weighting: ``"uniform"`` (default) picks every policy equally often; ``"rank"`` picks
            policy ``i`` (1-based) with probability proportional to ``1 / i**2`` as in Greedy
            AutoAugment. Uniform is the default because the search already kept only the top
            ``b``; rank weighting would apply the single best policy to about 2 objects in 3
            and cost most of the variety the set exists for.
        meta: free-form information (search settings, scorer, evaluation counts).
    """

    def __init__(
        self,
        policies: Sequence[Policy],
        scores: Sequence[float] | None = None,
        changes: Sequence[float] | None = None,
        weighting: str = "uniform",
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.policies = list(policies)
        if not self.policies:
            raise IaaaError("PolicySet: needs at least one policy")
        n = len(self.policies)
        self.scores = [float(s) for s in scores] if scores is not None else [float("nan")] * n
        self.changes = [float(c) for c in changes] if changes is not None else [float("nan")] * n
        if len(self.scores) != n or len(self.changes) != n:
            raise IaaaError(f"PolicySet: {n} policies but {len(self.scores)} scores and {len(self.changes)} changes")
        if weighting not in WEIGHTINGS:
            raise IaaaError(f"PolicySet: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        self.meta = dict(meta or {})

    def __len__(self) -> int:
        return len(self.policies)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies)

    def __getitem__(self, i: int) -> Policy:
        return self.policies[i]

    def __repr__(self) -> str:
        return f"PolicySet({len(self)} policies, weighting={self.weighting!r})"

    @property
    def weights(self) -> torch.Tensor:
        """Selection probabilities ``(len,)`` float64 summing to 1."""
        if self.weighting == "rank":
            w = 1.0 / torch.arange(1, len(self) + 1, dtype=torch.float64).square()
        else:
            w = torch.ones(len(self), dtype=torch.float64)
        return w / w.sum()

    def pick(self, generator: torch.Generator | int | None = None) -> Policy:
        """Draw one policy according to :attr:`weights`."""
        g = _as_generator(generator)
        return self.policies[int(torch.multinomial(self.weights.to(g.device), 1, generator=g))]

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick a policy (see :attr:`weighting`) and apply it to one object."""
        g = _as_generator(generator)
        return self.pick(g)(image, labels, g)

    def with_apply(self, apply: ApplyFn | None) -> "PolicySet":
        """A copy whose policies apply ops through ``apply``."""
        pols = [Policy(p.sub_policies, apply=apply, expand=p.expand) for p in self.policies]
        return PolicySet(pols, self.scores, self.changes, self.weighting, self.meta)

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "score_order": "lower_is_better",
            "weighting": self.weighting,
            "meta": self.meta,
            "policies": [
                {"rank": i + 1, "score": _json_float(s), "change": _json_float(c), **p.to_dict()}
                for i, (p, s, c) in enumerate(zip(self.policies, self.scores, self.changes))
            ],
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the set as JSON, atomically (temp file, then rename)."""
        from iaaa.data.imageio import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def from_dict(cls, d: Any, apply: ApplyFn | None = None, source: str = "policies") -> "PolicySet":
        """Build from :meth:`to_dict` output; errors name ``source`` and the field at fault."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise IaaaError(f"{source}: not an iaaa policy file (field 'format' should be {FORMAT!r})")
        if d.get("version") != VERSION:
            raise IaaaError(f"{source}: policy file version {d.get('version')!r} is not supported (expected {VERSION})")
        weighting = d.get("weighting", "uniform")
        if weighting not in WEIGHTINGS:
            raise IaaaError(f"{source}: field 'weighting' must be one of {WEIGHTINGS}, got {weighting!r}")
        entries = d.get("policies")
        if not isinstance(entries, list) or not entries:
            raise IaaaError(f"{source}: field 'policies' must be a non-empty list")
        known = _known_ops() if apply is None else None
        pols, scores, changes = [], [], []
        for i, e in enumerate(entries):
            where = f"{source}: policies[{i}]"
            pol = Policy.from_dict(e, apply=apply, where=where)
            if known is not None:
                for j, s in enumerate(pol):
                    if s.op not in known:
                        raise IaaaError(f"{where}.sub_policies[{j}].op: unknown op {s.op!r}; known ops: {', '.join(sorted(known))}")
            pols.append(pol)
            scores.append(_float_field(e.get("score"), f"{where}.score"))
            changes.append(_float_field(e.get("change"), f"{where}.change"))
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise IaaaError(f"{source}: field 'meta' must be an object")
        return cls(pols, scores, changes, weighting, meta)

    @classmethod
    def load(cls, path: str | os.PathLike, apply: ApplyFn | None = None) -> "PolicySet":
        """Read a policy JSON file written by :meth:`save` / ``iaaa search``."""
        try:
            text = open(path, encoding="utf-8").read()
        except FileNotFoundError:
            raise IaaaError(f"{path}: no such policy file (make one with `iaaa search`)") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IaaaError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(d, apply=apply, source=os.fspath(path))


def _json_float(x: float) -> float | None:
    return None if not math.isfinite(x) else x


def _float_field(x: Any, where: str) -> float:
    if x is None:
        return float("nan")
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise IaaaError(f"{where}: expected a number or null, got {x!r}")
    return float(x)
