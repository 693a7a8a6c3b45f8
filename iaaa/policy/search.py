"""Greedy AutoAugment (Naghizadeh et al. 2020; paper section 2.1) over a pluggable scorer.

The space holds ``n_o`` ops, each with ``n_p`` probabilities ``k / n_p`` and ``n_m`` magnitude
levels ``k / n_m`` (``k = 1..n``; the zero ends are left out because probability 0 and magnitude
level 0 are no augmentation). Ops without a magnitude get a single candidate per probability.

* Level 1 scores every ``(op, p, m)`` and keeps the best per op.
* Level ``l + 1`` extends every kept policy by its best next sub-policy (any op, p, m).
* All kept policies of all levels are ranked and the top ``b`` returned.

That costs at most ``K + (l_max - 1) * (n_o - 1) * K`` scorer evaluations with
``K = n_p * sum(n_m or 1)`` (a policy is not extended by the op it ends with unless
``allow_repeats``) instead of the ``sum_l K^l`` of brute force.

**Objective** (lower is better): ``scorer cost - diversity_weight * change``, subject to
``change >= min_change`` for the policy *and* for the last sub-policy's own contribution.
``change`` is the mean over objects of ``mean|augmented - original| / mean|original -
background|``: pixel change as a fraction of the object's contrast. Any realism score is
best when nothing changes, so the constraint, not the scorer, keeps identity and
near-identity policies (and sub-policies that only pad a good prefix) out of the result.

Evaluation uses common random numbers: every candidate at level ``l`` sees the same coin flips
per object (``u_l < p`` selects the objects the sub-policy touches) and the same op draws for
the same ``(level, op, magnitude)``. Comparisons between candidates are therefore not drowned
in sampling noise, results are deterministic for a seed, and an :class:`EmbeddingScorer`
embeds each augmented batch once per ``(op, magnitude)`` for all probabilities.
"""

from __future__ import annotations

import math
import time
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from iaaa.policy.batch import ObjectBatch, object_size, prepare_objects
from iaaa.threads import torch_threads
from iaaa.policy.policy import ApplyFn, Policy, PolicySet, SubPolicy, default_apply
from iaaa.errors import IaaaError

__all__ = ["GreedyPolicySearch", "OpChoice", "Evaluation", "resolve_space", "torch_threads"]


@dataclass(frozen=True)
class OpChoice:
    """One op of the search space and the magnitudes the search tries for it."""

    name: str
    magnitudes: tuple[float | None, ...]


@dataclass
class Evaluation:
    """One scored candidate policy."""

    policy: tuple[SubPolicy, ...]
    level: int
    cost: float
    change: float
    marginal: float
    objective: float
    feasible: bool


@dataclass
class _State:
    subs: tuple[SubPolicy, ...]
    batch: ObjectBatch
    change: torch.Tensor
    emb: torch.Tensor | None
    evaluation: Evaluation | None = None


@dataclass
class _Best:
    evaluation: Evaluation | None = None
    state: _State | None = None


def _spec_fields(spec: Any, where: str) -> tuple[str, bool]:
    name = getattr(spec, "name", None)
    has_mag = getattr(spec, "has_magnitude", None)
    if not isinstance(name, str) or has_mag is None:
        raise IaaaError(f"{where}: expected an op name or an OpSpec-like object with name and has_magnitude, got {spec!r}")
    return name, bool(has_mag)


def resolve_space(space: Any = None, n_m: int = 5) -> list[OpChoice]:
    """Turn a search space into :class:`OpChoice` s.

    ``space`` may be ``None`` (the paper's Table S1 ops from :mod:`iaaa.ops`), op names
    (looked up in ``iaaa.ops.SPACE``), OpSpec-like objects (``name``, ``has_magnitude``), or a
    mapping of name to OpSpec. Magnitudes are the library's normalised levels in ``[0, 1]``
    (``OpSpec.magnitude_range`` maps them to the op's unit; 0 is the identity), so an op with a
    magnitude gets ``k / n_m`` for ``k = 1..n_m``."""
    if n_m < 1:
        raise IaaaError(f"n_m must be >= 1, got {n_m}")
    if space is None or isinstance(space, str) or (isinstance(space, Sequence) and any(isinstance(s, str) for s in space)):
        from iaaa.ops import SPACE, TABLE_S1

        names = TABLE_S1 if space is None else ([space] if isinstance(space, str) else space)
        specs = []
        for n in names:
            key = n if isinstance(n, str) else getattr(n, "name", n)
            if key not in SPACE:
                raise IaaaError(f"space: unknown op {key!r}; known ops: {', '.join(SPACE)}")
            specs.append(SPACE[key])
    elif isinstance(space, Mapping):
        specs = list(space.values())
    else:
        specs = list(space)
    if not specs:
        raise IaaaError("space: needs at least one op")
    out, seen = [], set()
    for i, spec in enumerate(specs):
        name, has_mag = _spec_fields(spec, f"space[{i}]")
        if name in seen:
            raise IaaaError(f"space[{i}]: op {name!r} listed twice")
        seen.add(name)
        out.append(OpChoice(name, tuple(k / n_m for k in range(1, n_m + 1)) if has_mag else (None,)))
    return out


class GreedyPolicySearch:
    """Greedy AutoAugment policy search.

    Args:
        space: ops to search (see :func:`resolve_space`; default the paper's Table S1).
        n_p: number of probabilities, ``k / n_p`` for ``k = 1..n_p``.
        n_m: number of magnitudes per op.
        l_max: maximum sub-policies per policy.
        top_b: policies returned.
        scorer: a :class:`~iaaa.policy.scorers.Scorer` (lower is better). ``None`` trains a
            :class:`~iaaa.policy.wae.WAE` on the objects first and scores with it (kept as
            ``search.used_scorer``, so ``search.used_scorer.model.save(path)`` keeps it).
        min_change: minimum mean relative change a policy, and its last sub-policy alone,
            must make (see the module docstring); ``0`` switches the guard off.
        diversity_weight: rewards change in the objective (``cost - weight * change``).
        max_evaluations: stop before exceeding this many scorer evaluations.
        time_budget: stop after about this many seconds (results then depend on the machine).
        seed: seeds the coin flips and the ops' draws; same seed, same result.
        size: object size when the scorer does not state an ``input_size``.
        apply: op applier ``apply(name, images, labels, magnitude, generator=, expand=)``
            (default :func:`iaaa.ops.apply_op`); it must accept batches ``(N, C, H, W)``.
        device: where objects are augmented and scored (default: where they are).
        progress: show a tqdm progress bar.
        num_threads: torch intra-op threads during the search (restored afterwards); ``None``
            keeps torch's setting. The default 1 is deliberate: the search runs thousands of
            small tensor ops, where threads cost more in synchronisation than they save, and on
            a loaded 2-core machine two threads ran the scoring ~10x slower than one.
        allow_repeats: let a sub-policy use the same op as the one before it. Off by default:
            ``Brightness`` twice is a stronger ``Brightness`` the magnitude grid already offers,
            and ``FlipLR`` twice partly undoes itself, so a repeat only wastes a policy slot.
    """

    def __init__(
        self,
        space: Any = None,
        n_p: int = 3,
        n_m: int = 5,
        l_max: int = 2,
        top_b: int = 10,
        scorer: Callable[[ObjectBatch, ObjectBatch], float] | None = None,
        min_change: float = 0.1,
        diversity_weight: float = 0.0,
        max_evaluations: int | None = None,
        time_budget: float | None = None,
        seed: int = 0,
        size: int | tuple[int, int] = 32,
        apply: ApplyFn | None = None,
        device: str | torch.device | None = None,
        progress: bool = True,
        num_threads: int | None = 1,
        allow_repeats: bool = False,
    ) -> None:
        for name, v, lo in (("n_p", n_p, 1), ("n_m", n_m, 1), ("l_max", l_max, 1), ("top_b", top_b, 1)):
            if not isinstance(v, int) or v < lo:
                raise IaaaError(f"{name} must be an integer >= {lo}, got {v!r}")
        if min_change < 0 or not math.isfinite(min_change):
            raise IaaaError(f"min_change must be a finite number >= 0, got {min_change}")
        if max_evaluations is not None and max_evaluations < 0:
            raise IaaaError(f"max_evaluations must be >= 0, got {max_evaluations}")
        object_size(size)  # refused here, before a search extracts objects or fits its scorer
        self.space = space
        self.choices = resolve_space(space, n_m)
        self.n_p, self.n_m, self.l_max, self.top_b = n_p, n_m, l_max, top_b
        self.scorer = scorer
        self.min_change = float(min_change)
        self.diversity_weight = float(diversity_weight)
        self.max_evaluations = max_evaluations
        self.time_budget = time_budget
        self.seed = int(seed)
        self.size = size
        self.apply = apply
        self.device = device
        self.progress = progress
        self.num_threads = num_threads
        self.allow_repeats = bool(allow_repeats)
        self.probabilities = tuple(k / n_p for k in range(1, n_p + 1))
        self.history: list[Evaluation] = []
        self.used_scorer: Any = scorer  # the WAEScorer trained on the fly when scorer is None
        self.n_evaluations = 0
        self.truncated = False
        self.stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ counts

    @property
    def candidates_per_level(self) -> int:
        """``K``: candidate sub-policies tried for one prefix."""
        return self.n_p * sum(len(c.magnitudes) for c in self.choices)

    @property
    def planned_evaluations(self) -> int:
        """Evaluations of a full run when every op yields a feasible policy (an upper bound):
        ``K`` at level 1, then per kept policy ``K`` minus its last op's candidates unless
        ``allow_repeats``."""
        k = self.candidates_per_level
        per_prefix = len(self.choices) * k if self.allow_repeats else (len(self.choices) - 1) * k
        return k + (self.l_max - 1) * per_prefix

    def _extensions(self, state: _State) -> list[OpChoice]:
        if self.allow_repeats or not state.subs:
            return list(self.choices)
        return [c for c in self.choices if c.name != state.subs[-1].op]

    @property
    def brute_force_evaluations(self) -> int:
        """Evaluations brute force would need for all policies of length ``1..l_max``."""
        k = self.candidates_per_level
        return sum(k**l for l in range(1, self.l_max + 1))

    @property
    def search_space_size(self) -> int:
        """Paper eq. (1): ``(n_o * n_p * n_m) ** l_max``."""
        return (len(self.choices) * self.n_p * self.n_m) ** self.l_max

    # ------------------------------------------------------------------ search

    def search(self, objects: Sequence[Any] | ObjectBatch) -> PolicySet:
        """Search policies for ``objects`` (``CellObject`` s, ``(image, labels)`` pairs, or an
        :class:`ObjectBatch`) and return the top ``b`` as a :class:`PolicySet`."""
        with torch_threads(self.num_threads):
            return self._search(objects)

    def _search(self, objects: Sequence[Any] | ObjectBatch) -> PolicySet:
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        self.history, self.n_evaluations, self.truncated = [], 0, False
        scorer = self.scorer
        if scorer is None:
            from iaaa.policy.scorers import WAEScorer
            from iaaa.policy.wae import fit_wae

            scorer = WAEScorer(fit_wae(objects, size=self.size, seed=self.seed, device=self.device or "cpu", progress=self.progress))
        self.used_scorer = scorer
        size = getattr(scorer, "input_size", None) or self.size
        margin = getattr(scorer, "margin", math.sqrt(2.0))
        orig = prepare_objects(objects, size, margin=margin, device=self.device)
        n = len(orig)
        if n < 2:
            raise IaaaError(f"search: need at least 2 objects, got {n}")
        self._orig = orig
        self._scorer = scorer
        self._fast = callable(getattr(scorer, "embed", None)) and callable(getattr(scorer, "compare", None))
        self._signal = (orig.images - orig.background).abs().flatten(1).mean(1).clamp_min(1e-3)
        coin_gen = torch.Generator().manual_seed(self.seed)
        self._coins = torch.rand(self.l_max, n, generator=coin_gen).to(orig.device)
        self._emb0 = scorer.embed(orig) if self._fast else None
        apply = self.apply if self.apply is not None else default_apply
        self._apply_fn = apply
        self._t0 = t0
        self._bar = tqdm(total=self.planned_evaluations, desc="policy search l=1", unit="eval", disable=not self.progress, leave=False)

        root = _State((), orig, torch.zeros(n, device=orig.device), self._emb0)
        found: list[Evaluation] = []
        try:
            per_op: dict[str, _Best] = {}
            for choice in self.choices:
                best = per_op.setdefault(choice.name, _Best())
                if not self._scan(root, 1, [choice], best):
                    break
            frontier = [b.state for b in per_op.values() if b.state is not None]
            found += [s.evaluation for s in frontier]
            for level in range(2, self.l_max + 1):
                if self.truncated or not frontier:
                    break
                self._bar.set_description(f"policy search l={level}")
                per_level = sum(self.n_p * sum(len(c.magnitudes) for c in self._extensions(st)) for st in frontier)
                self._bar.total = self.n_evaluations + per_level * (self.l_max - level + 1)
                nxt = []
                for state in frontier:
                    best = _Best()
                    ok = self._scan(state, level, self._extensions(state), best)
                    if best.state is not None:
                        nxt.append(best.state)
                    if not ok:
                        break
                frontier = nxt
                found += [s.evaluation for s in frontier]
        finally:
            self._bar.close()

        if self.truncated:
            warnings.warn(f"policy search stopped by its budget after {self.n_evaluations} evaluations; the result covers only what was scored", stacklevel=3)
        ranked, seen = [], set()
        for ev in sorted(found, key=lambda e: e.objective):
            if ev.policy not in seen:
                seen.add(ev.policy)
                ranked.append(ev)
        ranked = ranked[: self.top_b]
        if not ranked:
            raise IaaaError(
                f"search: no policy made a mean relative change >= min_change={self.min_change} "
                f"({self.n_evaluations} evaluations); lower min_change or widen the space"
            )
        seconds = time.perf_counter() - t0
        self.stats = {
            "space": [c.name for c in self.choices],
            "n_p": self.n_p,
            "n_m": self.n_m,
            "l_max": self.l_max,
            "top_b": self.top_b,
            "seed": self.seed,
            "min_change": self.min_change,
            "diversity_weight": self.diversity_weight,
            "allow_repeats": self.allow_repeats,
            "scorer": repr(scorer),
            "n_objects": n,
            "object_size": list(orig.size),
            "evaluations": self.n_evaluations,
            "planned_evaluations": self.planned_evaluations,
            "brute_force_evaluations": self.brute_force_evaluations,
            "search_space_size": self.search_space_size,
            "max_evaluations": self.max_evaluations,
            "time_budget": self.time_budget,
            "truncated": self.truncated,
            "seconds": round(seconds, 3),
        }
        pols = [Policy(e.policy, apply=self.apply) for e in ranked]
        return PolicySet(pols, [e.objective for e in ranked], [e.change for e in ranked], meta={"search": dict(self.stats)})

    # ------------------------------------------------------------------ internals

    def _budget_left(self) -> bool:
        if self.max_evaluations is not None and self.n_evaluations + self.n_p > self.max_evaluations:
            return False
        if self.time_budget is not None and time.perf_counter() - self._t0 > self.time_budget:
            return False
        return True

    def _op_generator(self, level: int, name: str, m_idx: int) -> torch.Generator:
        # crc32, not hash(): Python salts str hashes per process, and results must not change.
        key = zlib.crc32(f"{self.seed}/{level}/{name}/{m_idx}".encode())
        return torch.Generator().manual_seed(key)

    def _scan(self, state: _State, level: int, choices: Sequence[OpChoice], best: _Best) -> bool:
        """Score every (op, m, p) extension of ``state``; keep the best feasible in ``best``.
        Returns False when the budget ran out."""
        orig, u = self._orig, self._coins[level - 1]
        for choice in choices:
            for m_idx, mag in enumerate(choice.magnitudes):
                if not self._budget_left():
                    self.truncated = True
                    return False
                images, labels = self._apply_fn(choice.name, state.batch.images, state.batch.labels, mag, generator=self._op_generator(level, choice.name, m_idx), expand=False)
                if tuple(images.shape) != tuple(state.batch.images.shape) or tuple(labels.shape) != tuple(state.batch.labels.shape):
                    raise IaaaError(f"op {choice.name!r} changed the batch shape from {tuple(state.batch.images.shape)} to {tuple(images.shape)}; search ops must keep the size with expand=False")
                aug = orig.refill(images, labels)
                d_full = (aug.images - orig.images).abs().flatten(1).mean(1) / self._signal
                d_step = (aug.images - state.batch.images).abs().flatten(1).mean(1) / self._signal
                emb_aug = self._scorer.embed(aug) if self._fast else None
                for p in self.probabilities:
                    hit = u < p
                    change = float(torch.where(hit, d_full, state.change).mean())
                    marginal = float(torch.where(hit, d_step, torch.zeros_like(d_step)).mean())
                    # The mixed batch is only built when needed: in the fast path that is
                    # only for a new best, and building it per candidate costs as much as scoring.
                    mixed = None
                    if self._fast:
                        emb = torch.where(hit[:, None], emb_aug, state.emb)
                        cost = float(self._scorer.compare(self._emb0, emb))
                    else:
                        emb = None
                        mixed = state.batch.select(hit, aug)
                        cost = float(self._scorer(orig, mixed))
                    self.n_evaluations += 1
                    self._bar.update(1)
                    feasible = math.isfinite(cost) and change >= self.min_change and marginal >= self.min_change
                    objective = cost - self.diversity_weight * change if math.isfinite(cost) else math.inf
                    ev = Evaluation(state.subs + (SubPolicy(choice.name, p, mag),), level, cost, change, marginal, objective, feasible)
                    self.history.append(ev)
                    if feasible and (best.evaluation is None or objective < best.evaluation.objective):
                        full_change = torch.where(hit, d_full, state.change)
                        best.evaluation = ev
                        best.state = _State(ev.policy, mixed if mixed is not None else state.batch.select(hit, aug), full_change, emb, ev)
        return True
