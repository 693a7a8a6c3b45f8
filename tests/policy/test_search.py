"""Greedy policy search on toy spaces with known optima, budgets, determinism, no trivial winners."""

from __future__ import annotations

import json
import math
from collections import namedtuple

import numpy as np
import pytest
import torch

from iaaa.policy import GreedyPolicySearch, PolicySet, StatsScorer, resolve_space
from iaaa.policy.batch import ObjectBatch, prepare_objects

Spec = namedtuple("Spec", "name has_magnitude")

TOY_SPACE = [Spec("identity", False), Spec("bright", True), Spec("dim", True), Spec("flip", False), Spec("nudge", True), Spec("glow", True)]
# Magnitude level (0..1) -> intensity shift, like OpSpec.magnitude_range does for real ops.
TOY_RANGE = {"bright": 0.5, "dim": -0.1, "nudge": 0.005, "glow": 0.25}


def toy_apply(name, images, labels, magnitude, generator=None, expand=False):
    """Ops on batches: `bright`/`dim`/`nudge` shift the intensity, `flip` mirrors, `identity` nothing."""
    if name == "identity":
        return images.clone(), labels.clone()
    if name in TOY_RANGE:
        return images + magnitude * TOY_RANGE[name], labels.clone()
    if name == "flip":
        return images.flip(-1), labels.flip(-1)
    raise KeyError(name)


def toy_objects(n: int = 31) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`n` lopsided blobs (so a flip changes them) at intensity 0.2 on a 0.05 background."""
    out = []
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(14.0), indexing="ij")
    for i in range(n):
        r = 3.0 + (i % 3)
        mask = ((yy - 6) ** 2 + (xx - 5) ** 2 <= r * r) | ((yy - 6).abs() <= 1) & (xx >= 5) & (xx <= 11)
        image = torch.where(mask, torch.tensor(0.2), torch.tensor(0.05)).unsqueeze(0)
        out.append((image, mask.long()))
    return out


def mean_shift(original: ObjectBatch, augmented: ObjectBatch) -> float:
    """Mean intensity added inside each object's (unchanged) mask."""
    m = (original.labels > 0).unsqueeze(1).float()
    per = ((augmented.images - original.images) * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    return float(per.mean())


def target_scorer(target: float):
    return lambda o, a: (mean_shift(o, a) - target) ** 2


def pixel_distance(original: ObjectBatch, augmented: ObjectBatch) -> float:
    """Identity-loving: the closer each object stays to its original, the better."""
    return float((augmented.images - original.images).abs().mean())


def make(scorer, **kw) -> GreedyPolicySearch:
    kw = {"space": TOY_SPACE, "n_p": 3, "n_m": 5, "l_max": 1, "top_b": 5, "min_change": 0.0, "size": 16, "apply": toy_apply, "progress": False, **kw}
    return GreedyPolicySearch(scorer=scorer, **kw)


def test_space_grid_leaves_out_zero_magnitude_and_counts():
    choices = resolve_space(TOY_SPACE, n_m=5)
    assert [c.name for c in choices] == ["identity", "bright", "dim", "flip", "nudge", "glow"]
    assert choices[0].magnitudes == (None,)
    assert choices[1].magnitudes == pytest.approx((0.2, 0.4, 0.6, 0.8, 1.0))
    s = make(target_scorer(0.3), l_max=3)
    k = 3 * (1 + 5 + 5 + 1 + 5 + 5)
    assert s.candidates_per_level == k
    assert s.planned_evaluations == k + 2 * 5 * k
    assert make(target_scorer(0.3), l_max=3, allow_repeats=True).planned_evaluations == k + 2 * 6 * k
    assert s.brute_force_evaluations == k + k**2 + k**3
    assert s.search_space_size == (6 * 3 * 5) ** 3


def test_level_one_finds_the_known_optimum_with_stated_evaluations():
    s = make(target_scorer(0.3))
    result = s.search(toy_objects())
    best = result[0]
    assert [(sp.op, sp.probability, round(sp.magnitude, 6)) for sp in best] == [("bright", 1.0, 0.6)]
    assert result.scores[0] == pytest.approx(0.0, abs=1e-10)
    assert s.n_evaluations == 3 * 22
    assert len(s.history) == s.n_evaluations
    # Exactly one policy per op survives level 1, ranked by score.
    assert len(result) == 5
    s6 = make(target_scorer(0.3), top_b=6)
    assert len(s6.search(toy_objects())) == 6
    assert result.scores == sorted(result.scores)


def test_level_two_extends_the_kept_policy_to_the_two_step_optimum():
    # 0.7 is out of reach of one op (bright: max 0.5): greedy keeps bright(1, level 1.0) at
    # level 1 and must then add glow(1, level 0.8) = +0.2. With 31 objects no p < 1 hits
    # 0.7 exactly, so the optimum is unique.
    s = make(target_scorer(0.7), l_max=2)
    result = s.search(toy_objects(31))
    assert [(sp.op, sp.probability, round(sp.magnitude, 6)) for sp in result[0]] == [("bright", 1.0, 1.0), ("glow", 1.0, 0.8)]
    assert result.scores[0] == pytest.approx(0.0, abs=1e-10)
    k = s.candidates_per_level
    # each of the 6 kept policies is extended by every op but its own last one
    per_op = {c.name: 3 * len(c.magnitudes) for c in s.choices}
    assert s.n_evaluations == k + sum(k - per_op[name] for name in per_op) == s.planned_evaluations
    assert s.n_evaluations < s.brute_force_evaluations / 5
    assert all(pol[0].op != pol[-1].op for pol in result if len(pol) == 2)
    meta = result.meta["search"]
    assert meta["evaluations"] == s.n_evaluations and meta["truncated"] is False


def test_identity_loving_scorer_still_yields_non_identity_policies():
    objs = toy_objects()
    # Without the guard the scorer's favourite, doing nothing, wins: the test below can fail.
    unguarded = make(pixel_distance, l_max=2).search(objs)
    assert all(sp.op == "identity" for sp in unguarded[0]) or unguarded.changes[0] < 1e-6

    s = make(pixel_distance, l_max=2, min_change=0.1)
    result = s.search(objs)
    assert len(result) >= 3
    for pol, change in zip(result, result.changes):
        assert change >= 0.1
        assert not all(sp.op in ("identity", "nudge") for sp in pol), pol
        assert pol[-1].op not in ("identity",), "a padding sub-policy must not extend a policy"
    # Every evaluation the guard let through really changed the objects by min_change, and
    # every sub-policy added at level 2 contributed min_change on its own.
    for ev in s.history:
        if ev.feasible:
            assert ev.change >= 0.1 and ev.marginal >= 0.1


def test_min_change_can_exclude_everything_with_a_clear_error():
    with pytest.raises(ValueError, match="min_change"):
        make(pixel_distance, space=[TOY_SPACE[0], TOY_SPACE[4]], min_change=0.5).search(toy_objects())


def test_diversity_weight_prefers_bigger_changes():
    plain = make(pixel_distance, min_change=0.1).search(toy_objects())
    diverse = make(pixel_distance, min_change=0.1, diversity_weight=10.0).search(toy_objects())
    assert diverse.changes[0] > plain.changes[0]


def test_deterministic_for_a_seed_and_json_round_trip(tmp_path):
    objs = toy_objects()
    runs = []
    for _ in range(2):
        r = make(StatsScorer(), l_max=2, min_change=0.1, seed=3).search(objs)
        r.meta["search"].pop("seconds")
        runs.append(r.to_dict())
    assert runs[0] == runs[1]
    path = tmp_path / "p.json"
    r = PolicySet.from_dict(runs[0], apply=toy_apply)
    r.save(path)
    again = PolicySet.load(path, apply=toy_apply)
    assert again.to_dict() == r.to_dict()
    assert json.loads(path.read_text())["policies"][0]["rank"] == 1


def test_evaluation_budget_stops_early_and_keeps_what_was_scored():
    s = make(target_scorer(0.3), l_max=2, max_evaluations=40)
    with pytest.warns(UserWarning, match="budget"):
        result = s.search(toy_objects())
    assert s.n_evaluations <= 40 and s.truncated
    assert result.meta["search"]["truncated"] is True
    assert len(result) >= 1


def test_time_budget_zero_scores_nothing_and_says_so():
    s = make(target_scorer(0.3), time_budget=0.0)
    with pytest.warns(UserWarning):
        with pytest.raises(ValueError, match="no policy"):
            s.search(toy_objects())
    assert s.n_evaluations == 0


def test_embedding_fast_path_matches_plain_callable():
    objs = toy_objects()
    stats = StatsScorer()
    fast = make(stats, l_max=2, min_change=0.1).search(objs)
    slow = make(lambda o, a: stats(o, a), l_max=2, min_change=0.1).search(objs)
    assert [p.sub_policies for p in fast] == [p.sub_policies for p in slow]
    assert fast.scores == pytest.approx(slow.scores, rel=1e-4, abs=1e-6)


def test_search_reports_progress(capsys):
    make(target_scorer(0.3), progress=True).search(toy_objects())
    assert "eval" in capsys.readouterr().err


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="n_p"):
        make(pixel_distance, n_p=0)
    with pytest.raises(ValueError, match="min_change"):
        make(pixel_distance, min_change=-1)
    for size in (0, (0, 8), (8,), 2.5, True):
        with pytest.raises(ValueError, match="size must be a positive int"):
            make(pixel_distance, size=size)
    make(pixel_distance, size=np.int64(16))  # NumPy integers are sizes, as prepare_objects takes them
    with pytest.raises(ValueError, match="twice"):
        make(pixel_distance, space=[TOY_SPACE[0], TOY_SPACE[0]])
    with pytest.raises(ValueError, match="at least 2"):
        make(pixel_distance).search(toy_objects(1))

    def grow(name, images, labels, magnitude, generator=None, expand=False):
        return images[..., :-1], labels[..., :-1]

    with pytest.raises(ValueError, match="shape"):
        make(pixel_distance, apply=grow).search(toy_objects())


def test_prepared_batch_and_identity_refill_are_exact():
    objs = toy_objects(4)
    batch = prepare_objects(objs, 16)
    assert batch.images.shape == (4, 1, 16, 16) and batch.labels.shape == (4, 16, 16)
    again = batch.refill(batch.images, batch.labels)
    assert torch.equal(again.images, batch.images)
    # outside the mask every pixel is the object's background level
    out = batch.labels.unsqueeze(1) == 0
    assert torch.allclose(batch.images[out], torch.full_like(batch.images[out], 0.05))
    assert math.isclose(float(batch.background.flatten()[0]), 0.05, rel_tol=1e-6)


def test_default_scorer_is_a_wae_trained_on_the_objects():
    from iaaa.policy import WAEScorer

    s = GreedyPolicySearch(space=TOY_SPACE, apply=toy_apply, n_p=2, n_m=2, l_max=1, size=16, progress=False)
    result = s.search(toy_objects())
    assert isinstance(s.used_scorer, WAEScorer) and s.used_scorer.input_size == (16, 16)
    assert "WAEScorer" in result.meta["search"]["scorer"]
    assert all(c >= 0.1 for c in result.changes)
