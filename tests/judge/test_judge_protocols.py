"""The judge's protocols (add / mix / online), the standard augmentation and online Simple
Copy-Paste, folds of a data regime, the paired interval, the recipe and an end-to-end run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.errors import IaaaError
from iaaa.judge import (
    AugmentConfig,
    JudgeReport,
    Recipe,
    RecipeError,
    StepComposer,
    copy_paste,
    draw_augment,
    fold_subsets,
    judge,
    named_sources,
    paired_interval,
    parse_arm,
    prepare,
    run_key,
    warp_crops,
)
from iaaa.judge.targets import INTERIOR, class_targets
from iaaa.synthesis import CellCompositor


@pytest.fixture(scope="module")
def prepared(tiny):
    train, _ = tiny
    real = [prepare(s, 1.0, 32) for s in train]
    pool = [prepare(s, 1.0, 32) for s in train[:2]]  # a stand-in synthetic pool
    return real, pool


def _steps(real, pool, recipe, arm, n=4, seed=3):
    c = StepComposer(real, recipe, seed, parse_arm(arm), pool if parse_arm(arm).source not in (None, "naive") else None)
    return [c.next() for _ in range(n)]


# ----------------------------------------------------------------------------- protocols


@pytest.mark.parametrize("protocol", ["add", "mix", "online"])
def test_same_real_crops_in_every_arm(prepared, protocol):
    real, pool = prepared
    recipe = Recipe(protocol=protocol, batch_size=4, crop=32, ratio=1.0, p=0.5, seeds=(0,))
    ref = _steps(real, pool, recipe, "real")
    arms = {a: _steps(real, pool, recipe, a) for a in ("aug", "naive", "iaaa", "naive+aug", "iaaa+aug")}
    keep = 4 - recipe.n_synthetic if protocol == "mix" else 4
    for arm, steps in arms.items():
        for r, s in zip(ref, steps):
            assert s.real == r.real, arm  # the same real draws at every step
            if arm in ("naive", "iaaa"):
                if protocol == "online":
                    # untouched real crops are the real arm's crops, bit for bit
                    same = [j for j in range(4) if torch.equal(s.labels[j], r.labels[j])]
                    assert all(torch.equal(s.images[j], r.images[j]) for j in same)
                    assert len(same) >= 4 - s.n_pasted
                else:
                    assert torch.equal(s.images[:keep], r.images[:keep]) and torch.equal(s.labels[:keep], r.labels[:keep])
    # the augmenting arms see the same augmented real crops
    for a, b in zip(arms["aug"], arms["iaaa+aug"]):
        if protocol == "add":
            assert torch.equal(a.images, b.images[:4]) and torch.equal(a.labels, b.labels[:4])
    # and the augmentation changes them
    assert any(not torch.equal(a.images, r.images) for a, r in zip(arms["aug"], ref))


def test_added_crops_are_counted(prepared):
    real, pool = prepared
    for ratio, want in ((1.0, 4), (0.5, 2), (2.0, 8), (0.1, 1)):
        recipe = Recipe(protocol="add", batch_size=4, crop=32, ratio=ratio)
        for arm in ("naive", "iaaa", "iaaa+aug"):
            s = _steps(real, pool, recipe, arm, n=1)[0]
            assert recipe.n_synthetic == want and s.n_synthetic == want
            assert s.images.shape == (4 + want, 1, 32, 32) and s.targets.shape == (4 + want, 32, 32)
    mix = Recipe(protocol="mix", batch_size=4, crop=32, ratio=1.0)
    s = _steps(real, pool, mix, "iaaa", n=1)[0]
    assert s.n_synthetic == 2 and s.images.shape[0] == 4
    on = Recipe(protocol="online", batch_size=4, crop=32, p=1.0)
    for arm in ("naive", "iaaa"):
        s = _steps(real, pool, on, arm, n=1)[0]
        assert s.images.shape[0] == 4 and s.n_pasted == 4 and s.n_synthetic == 0
    # real and aug add nothing whatever the protocol
    assert _steps(real, pool, Recipe(protocol="add", batch_size=4, crop=32), "aug", n=1)[0].images.shape[0] == 4


def test_targets_follow_the_crops_labels(prepared):
    real, pool = prepared
    for s in _steps(real, pool, Recipe(batch_size=4, crop=32), "naive+aug", n=3):
        assert torch.equal(s.targets, class_targets(s.labels))
        assert s.images.dtype == torch.float32 and float(s.images.min()) >= 0 and float(s.images.max()) <= 1


def test_parse_arm():
    assert parse_arm("iaaa+aug") == parse_arm("iaaa+aug") and parse_arm("iaaa+aug").augment
    assert parse_arm("aug").source is None and parse_arm("aug").augment
    assert parse_arm("naive").source == "naive" and not parse_arm("real").augment
    for bad in ("real+aug", "aug+aug", "+aug"):
        with pytest.raises(IaaaError):
            parse_arm(bad)


# ----------------------------------------------------------------------------- augmentation


def test_quarter_turn_at_scale_one_is_exact():
    g = torch.Generator().manual_seed(0)
    lab = torch.randint(0, 5, (40, 40), generator=g)
    img = torch.rand((1, 40, 40), generator=g)
    row = torch.tensor([[1.0, 90.0, 0.0, 1, 1, 1, 0, 0]], dtype=torch.float64)
    ci, cl = warp_crops([img], [lab], [(19.5, 19.5)], 20, row)
    win = lab[10:30, 10:30]
    # some quarter turn of the window, exactly (which way round is the warp's convention)
    assert any(torch.equal(cl[0], torch.rot90(win, k)) for k in (1, 3))
    k = next(k for k in (1, 3) if torch.equal(cl[0], torch.rot90(win, k)))
    assert torch.allclose(ci[0, 0], torch.rot90(img[0, 10:30, 10:30], k), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_augmentation_keeps_labels_exact(seed):
    from iaaa.datasets import simulate_cells

    s = simulate_cells(1, seed=seed % 50, size=(64, 64), cells=(3, 6))[0]
    lab = s.labels
    img = (lab > 0).float()[None]  # the image IS the mask: any drift between them shows
    g = torch.Generator().manual_seed(seed)
    rows = draw_augment(3, AugmentConfig(), g)
    ci, cl = warp_crops([img] * 3, [lab] * 3, [(31.5, 31.5)] * 3, 32, rows)
    assert set(cl.unique().tolist()) <= set(lab.unique().tolist())  # no label invented
    # The image IS the mask, sampled bilinearly: where the nearest source pixel (the label's) is a
    # cell it weighs at least a quarter, so a cell's interior reads >= 0.25 and pixels far from any
    # cell <= 0.75; overall the two agree almost everywhere. A shift of a pixel breaks all three.
    inner = class_targets(cl) == INTERIOR
    assert bool((ci[:, 0][inner] >= 0.25 - 1e-6).all())
    far = (class_targets(cl) == 0) & (torch.nn.functional.max_pool2d((cl > 0).float()[:, None], 5, 1, 2)[:, 0] == 0)
    assert bool((ci[:, 0][far] <= 0.75 + 1e-6).all())
    assert float(((ci[:, 0] > 0.5) == (cl > 0)).float().mean()) > 0.95


def test_photometric_leaves_labels_and_draws_reproducibly(prepared):
    real, pool = prepared
    r = Recipe(batch_size=4, crop=32)
    a = _steps(real, pool, r, "aug", n=2, seed=5)
    b = _steps(real, pool, r, "aug", n=2, seed=5)
    for x, y in zip(a, b):
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)


# ----------------------------------------------------------------------------- copy-paste


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_copy_paste_occludes_exactly(seed):
    g = torch.Generator().manual_seed(seed)
    dl = torch.randint(0, 4, (3, 24, 24), generator=g)
    sl = torch.randint(0, 6, (3, 24, 24), generator=g)
    di, si = torch.rand((3, 2, 24, 24), generator=g), torch.rand((3, 2, 24, 24), generator=g)
    img, lab = copy_paste(di, dl, si, sl, torch.Generator().manual_seed(seed))
    top = dl.flatten(1).amax(1).view(3, 1, 1)
    kept = lab <= top
    # where nothing was pasted, the destination is untouched; pasted ids sit above its ids
    assert torch.equal(lab[kept], dl[kept]) and torch.equal(img.permute(1, 0, 2, 3)[:, kept], di.permute(1, 0, 2, 3)[:, kept])
    # a destination cell only loses pixels
    for b in range(3):
        for k in dl[b].unique().tolist():
            if k:
                assert int((lab[b] == k).sum()) <= int((dl[b] == k).sum())
    again = copy_paste(di, dl, si, sl, torch.Generator().manual_seed(seed))
    assert torch.equal(again[0], img) and torch.equal(again[1], lab)


def test_copy_paste_drops_fully_hidden_cells():
    dl = torch.zeros(1, 16, 16, dtype=torch.int64)
    dl[0, 4:8, 4:8], dl[0, 10:13, 2:6] = 1, 2
    sl = torch.ones(1, 16, 16, dtype=torch.int64)  # one source cell covering the crop
    img, lab = copy_paste(torch.zeros(1, 1, 16, 16), dl, torch.ones(1, 1, 16, 16), sl, torch.Generator().manual_seed(0), scale=(4.0, 4.0), keep=1.0)
    # zoomed 4x and shifted by at most half the crop, the source still covers every pixel
    assert torch.equal(lab, torch.full_like(lab, 3)) and bool((img == 1).all())


# ----------------------------------------------------------------------------- regimes and intervals


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 6))
def test_folds(n, limit, folds):
    if (limit >= n and folds > 1) or (limit < n and folds > n):
        with pytest.raises(IaaaError):
            fold_subsets(n, limit, folds)
        return
    subsets = fold_subsets(n, limit, folds)
    if limit >= n:
        assert subsets == [list(range(n))]
        return
    assert len(subsets) == folds and all(len(s) == limit == len(set(s)) for s in subsets)
    # No fold repeats another's images (a repeated run would count twice in a paired mean).
    assert len({tuple(s) for s in subsets}) == folds
    if folds * limit <= n:  # disjoint where N allows
        flat = [i for s in subsets for i in s]
        assert len(flat) == len(set(flat))
    else:  # rotating: every image used, no image more than once more than another
        counts = [sum(i in s for s in subsets) for i in range(n)]
        assert max(counts) - min(counts) <= 1


def test_folds_that_would_wrap_onto_an_earlier_fold_are_spread_instead():
    # 12 images, 4 folds of 4: the rotation's fold 3 is fold 0's images again.
    assert fold_subsets(12, 4, 4) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [0, 9, 10, 11]]
    # Where the rotation gives distinct folds it is kept (the recorded regimes' folds).
    assert fold_subsets(8, 2, 4) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert fold_subsets(17, 4, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert fold_subsets(10, 4, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 8, 9], [2, 3, 4, 5]]


def test_paired_interval_hand_values():
    mean, lo, hi = paired_interval([1.0, 2.0, 3.0])
    # sd 1, t(0.975, 2) = 4.302653, half width 4.302653 / sqrt(3)
    assert mean == 2.0 and hi - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5) and mean - lo == pytest.approx(hi - mean)
    m, lo, hi = paired_interval([0.5])
    assert m == 0.5 and math.isnan(lo) and math.isnan(hi)
    assert paired_interval([0.2, 0.2, 0.2])[1:] == pytest.approx((0.2, 0.2))


def test_report_pairs_per_fold_and_seed():
    def run(v):
        return {"mean_ap": v, "ap50": v, "f1_50": v, "curve": [{"step": 5, "mean_ap": v - 0.1}, {"step": 10, "mean_ap": v}]}

    results = {
        "real": {run_key(0, 0): run(0.5), run_key(0, 1): run(0.6), run_key(1, 0): run(0.4)},
        "iaaa": {run_key(0, 0): run(0.55), run_key(0, 1): run(0.6), run_key(1, 0): run(0.5)},
    }
    rep = JudgeReport(results, {"ceiling": {"mean_ap": 0.9, "ap50": 0.95, "f1_50": 0.97}})
    d = rep.summary()["iaaa"]["mean_ap"]
    assert d["diff"] == pytest.approx([0.05, 0.0, 0.1])  # sorted keys: fold0/seed0, fold0/seed1, fold1/seed0
    want = paired_interval([0.05, 0.0, 0.1])
    assert (d["diff_mean"], d["diff_low"], d["diff_high"]) == pytest.approx(want)
    curve = rep.curve()
    assert [s for s, _ in curve] == [5, 10] and [v for _, v in curve] == pytest.approx([0.4, 0.5])
    table = rep.table()
    assert "learning curve" in table and f"{want[1]:+.3f}" in table and "ceiling" in table
    assert rep.plateaued() is False and "NOT plateaued" in table  # 0.4 -> 0.5: still rising
    assert "real learning curve" in table and "iaaa learning curve" in table  # every arm's curve, the baseline first
    assert table.index("real learning curve") < table.index("iaaa learning curve")
    flat = {"real": {run_key(0, 0): {**run(0.5), "curve": [{"step": s, "mean_ap": v} for s, v in ((1, 0.2), (2, 0.495), (3, 0.5))]}}}
    assert JudgeReport(flat).plateaued() is True
    never = {"real": {run_key(0, 0): {**run(0.0), "curve": [{"step": s, "mean_ap": 0.001} for s in (1, 2, 3)]}}}
    assert JudgeReport(never).plateaued() is False  # flat at zero has not begun to learn
    early = {"real": {run_key(0, 0): {**run(0.4), "curve": [{"step": s, "mean_ap": v} for s, v in ((1, 0.394), (2, 0.403), (3, 0.4))]}}}
    assert JudgeReport(early).plateaued() is True  # flat from the first point at a real level: learned early


def test_per_image_view_pairs_runs_and_shows_where_a_difference_comes_from():
    """Per test image: each arm's mean AP over its runs, predicted/true ratio, and the difference
    to the baseline paired per run; a run without per-image scores (older reports) is left out
    of the pairing, an arm without any is left out of the view."""
    def run(aps, preds, v=0.5):
        return {"mean_ap": v, "ap50": v, "f1_50": v, "per_image": {"mean_ap": aps, "n_true": [10, 4], "n_pred": preds, "tp50": [8, 3]}}

    results = {
        "naive": {run_key(0, 0): run([0.6, 0.5], [10, 4]), run_key(1, 0): run([0.4, 0.5], [12, 4]), run_key(2, 0): {"mean_ap": 0.5, "ap50": 0.5, "f1_50": 0.5}},
        "iaaa": {run_key(0, 0): run([0.7, 0.1], [10, 40]), run_key(1, 0): run([0.5, 0.2], [10, 24]), run_key(2, 0): run([0.9, 0.9], [10, 4])},
        "old": {run_key(0, 0): {"mean_ap": 0.5, "ap50": 0.5, "f1_50": 0.5}},
    }
    rep = JudgeReport(results, {"test": ["a.png", "b.png"]}).rebased("naive")
    pi = rep.per_image()
    assert pi["images"] == ["a.png", "b.png"] and pi["n_true"] == [10, 4] and set(pi["arms"]) == {"naive", "iaaa"}
    iaaa = pi["arms"]["iaaa"]
    assert iaaa["runs"] == 3 and iaaa["paired"] == 2  # fold 2 has no per-image baseline run
    assert iaaa["mean_ap"] == pytest.approx([0.7, 0.4]) and iaaa["pred_ratio"] == pytest.approx([1.0, (10 + 6 + 1) / 3])
    assert iaaa["diff"] == pytest.approx([0.1, -0.35]) and iaaa["wins"] == [2, 0]
    assert "diff" not in pi["arms"]["naive"]
    table = rep.per_image_table()
    assert "b.png" in table and "-0.350 (0/2)" in table and "x5.7" in table and "Δ vs naive" in table
    assert "no run" in JudgeReport({"old": results["old"]}).per_image_table()


# ----------------------------------------------------------------------------- recipe


def test_recipe_round_trip_and_bounds():
    r = Recipe(protocol="online", p=0.3, seeds=(4, 5), train_limit=2, folds=3, curve=(0.5, 1.0), aug_scale=(0.8, 1.25))
    assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    for context in ("image", 1.0, 2.5):
        r = Recipe(paste_context=context)
        assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r and r.pastes_around_crops == (context != 1.0)
    for field, value in (("ratio", 0), ("ratio", float("inf")), ("ratio", float("nan")), ("crop", 10**6), ("pool_size", 10**6),
                         ("scale", 0.001), ("device", "bogus"), ("protocol", "x"), ("steps", 0), ("seeds", ()), ("folds", 2),
                         ("curve", (0.5,)), ("p", 0.0), ("aug_scale", (2.0, 0.5)), ("aug_scale", (0.0, 1.0)),
                         ("aug_scale", (1.0,)), ("aug_scale", (1.0, float("nan"))), ("aug_scale", (True, 2.0)),
                         ("aug_photometric", -0.1), ("aug_photometric", 5.0), ("aug_photometric", float("nan")), ("aug_photometric", True),
                         ("paste_context", 0.5), ("paste_context", 17.0), ("paste_context", float("nan")), ("paste_context", True),
                         ("paste_context", "whole")):
        with pytest.raises(RecipeError) as e:
            Recipe(**{field: value})
        assert e.value.field == field
    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match="CUDA"):
            Recipe(device="cuda")
    with pytest.raises(RecipeError, match="not a recipe field"):
        Recipe.from_dict({"stpes": 3})


# ----------------------------------------------------------------------------- end to end


def test_judge_folds_seeds_and_pairing(tiny, tmp_path):
    train, test = tiny
    recipe = Recipe(steps=4, crop=32, batch_size=2, width=4, depth=2, pool_size=2, seeds=(0, 1), train_limit=2, folds=2)
    rep = judge(train, test, named_sources(["iaaa"]), recipe, arms=["real", "aug", "naive", "iaaa", "iaaa+aug"])
    assert rep.arms == ["real", "aug", "naive", "iaaa", "iaaa+aug"]
    keys = sorted(run_key(f, s) for f in (0, 1) for s in (0, 1))
    for arm, runs in rep.results.items():
        assert sorted(runs) == keys
        for r in runs.values():
            assert 0.0 <= r["mean_ap"] <= r["ap50"] <= 1.0 and [p["step"] for p in r["curve"]] == [1, 2, 3, 4]
            assert r["curve"][-1]["mean_ap"] == r["mean_ap"]  # the last curve point is the scored model
    assert rep.settings["folds"] == [[train[0].name, train[1].name], [train[2].name, train[3].name]]
    # real only does not depend on the other arms, and a run is reproducible
    alone = judge(train, test, None, recipe, arms=["real"])
    assert {k: v["mean_ap"] for k, v in alone.results["real"].items()} == {k: v["mean_ap"] for k, v in rep.results["real"].items()}
    out = tmp_path / "r.json"
    (tmp_path / "r.json.tmp").write_text("someone else's")
    rep.to_json(str(out))
    data = json.loads(out.read_text())
    assert Recipe.from_dict(data["settings"]["recipe"]) == recipe and set(data["results"]) == set(rep.arms)
    assert (tmp_path / "r.json.tmp").read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.json.tmp"]


def test_regime_split_over_processes_merges_into_the_whole(tiny):
    """--only-folds parts, run separately and merged, give the whole regime's runs and table."""
    from iaaa.judge.report import JudgeReport

    train, test = tiny
    whole = Recipe(steps=3, crop=32, batch_size=2, width=4, depth=2, seeds=(0,), train_limit=1, folds=3)
    arms = ["real", "naive"]
    full = judge(train, test, None, whole, arms=arms)
    parts = [judge(train, test, None, Recipe.from_dict({**whole.to_dict(), "only_folds": folds}), arms=arms)
             for folds in ([2], [0, 1])]
    assert sorted(parts[0].results["real"]) == [run_key(2, 0)]
    assert sorted(parts[1].results["real"]) == [run_key(0, 0), run_key(1, 0)]
    merged = JudgeReport.merge([JudgeReport.from_dict(json.loads(p.to_json())) for p in parts])
    for arm in arms:
        assert {k: v["mean_ap"] for k, v in merged.results[arm].items()} == {k: v["mean_ap"] for k, v in full.results[arm].items()}
    assert merged.settings["recipe"]["only_folds"] is None and merged.table() == full.table()
    with pytest.raises(IaaaError, match="adds no run"):
        JudgeReport.merge([parts[0], parts[0]])
    other = judge(train, test, None, Recipe.from_dict({**whole.to_dict(), "only_folds": [1], "steps": 2}), arms=arms)
    with pytest.raises(IaaaError, match="other settings"):
        JudgeReport.merge([parts[0], other])
    for bad in ([3], [0, 0], []):
        with pytest.raises(RecipeError) as e:
            Recipe(train_limit=1, folds=3, only_folds=bad)
        assert e.value.field == "only_folds"


def test_arm_run_later_merges_only_when_the_shared_arm_reproduces(tiny):
    """An arm added in a later process joins the record when the arm both runs share has the same
    scores (same real crops, weights and build); a shared run that differs is refused by name."""
    from iaaa.judge.report import JudgeReport

    train, test = tiny
    recipe = Recipe(steps=3, crop=32, batch_size=2, width=4, depth=2, seeds=(0,), train_limit=1, folds=2)
    first = judge(train, test, None, recipe, arms=["real", "naive"])
    later = judge(train, test, None, recipe, arms=["real", "aug"])
    merged = JudgeReport.merge([JudgeReport.from_dict(json.loads(p.to_json())) for p in (first, later)])
    full = judge(train, test, None, recipe, arms=["real", "naive", "aug"])
    assert merged.arms == ["real", "naive", "aug"] and merged.settings["arms"] == merged.arms
    assert merged.table() == full.table()
    tampered = JudgeReport.from_dict(json.loads(later.to_json()))
    tampered.results["real"][run_key(1, 0)]["mean_ap"] += 0.01
    with pytest.raises(IaaaError, match=r"run fold1/seed0 of arm 'real' .* not paired"):
        JudgeReport.merge([first, tampered])


def test_aug_scale_reaches_the_aug_arms_and_keeps_regimes_apart(tiny, monkeypatch):
    """The recipe's zoom range is the one the aug arms draw from (real only is untouched), a
    report records it, and parts run with different ranges never merge; a part written before
    the field existed counts as the default range."""
    import iaaa.judge.protocols as protocols
    from iaaa.judge.report import JudgeReport

    seen = []
    draw = protocols.draw_augment

    def spy(n, config, generator):
        rows = draw(n, config, generator)
        seen.append((config.scale, float(rows[:, 0].min()), float(rows[:, 0].max())))
        return rows

    monkeypatch.setattr(protocols, "draw_augment", spy)
    train, test = tiny
    wide = Recipe(steps=3, crop=32, batch_size=2, width=4, depth=2, seeds=(0,), train_limit=1, folds=2)
    mild = Recipe(**{**wide.to_dict(), "aug_scale": (0.8, 1.25)})
    a = judge(train, test, None, mild, arms=["real", "aug"])
    assert seen and all(sc == (0.8, 1.25) and 0.8 <= lo <= hi <= 1.25 for sc, lo, hi in seen)
    seen.clear()
    b = judge(train, test, None, wide, arms=["real", "aug"])
    assert seen and all(sc == (0.5, 2.0) for sc, *_ in seen) and max(hi for *_, hi in seen) > 1.25
    scores = lambda rep: {k: (r["mean_ap"], r["n_pred"], r["curve"]) for k, r in rep.results["real"].items()}  # noqa: E731
    assert scores(a) == scores(b)
    assert a.settings["recipe"]["aug_scale"] == [0.8, 1.25]
    with pytest.raises(IaaaError, match="other settings"):
        JudgeReport.merge([a, b])
    older = b.to_dict()
    del older["settings"]["recipe"]["aug_scale"]
    later = judge(train, test, None, wide, arms=["real", "naive"])
    merged = JudgeReport.merge([JudgeReport.from_dict(older), later])
    assert merged.arms == ["real", "aug", "naive"]


def test_photometric_strength_scales_ranges_towards_identity():
    from iaaa.judge import AugmentConfig

    base = AugmentConfig()
    assert base.with_photometric_strength(1.0) == base
    off = base.with_photometric_strength(0.0)
    assert (off.brightness, off.contrast, off.gamma, off.blur, off.noise) == ((1.0, 1.0),) * 3 + ((0.0, 0.0),) * 2
    assert (off.scale, off.rotate, off.flip) == (base.scale, base.rotate, base.flip)
    half = base.with_photometric_strength(0.5)
    assert half.brightness == pytest.approx((0.8 ** 0.5, 1.25 ** 0.5)) and half.blur == pytest.approx((0.0, 0.6))
    with pytest.raises(IaaaError, match="photometric strength"):
        base.with_photometric_strength(-1.0)


def test_photometric_off_leaves_aug_crops_geometric_only(tiny, monkeypatch):
    """``aug_photometric=0``: the aug arms' crops are exactly the warped real pixels (no
    brightness, contrast, gamma, blur or noise), the geometry is drawn as before, and parts
    with other strengths never merge."""
    import iaaa.judge.protocols as protocols
    from iaaa.judge.report import JudgeReport

    seen = []
    draw = protocols.draw_augment

    def spy(n, config, generator):
        rows = draw(n, config, generator)
        seen.append(rows)
        return rows

    monkeypatch.setattr(protocols, "draw_augment", spy)
    train, test = tiny
    full = Recipe(steps=3, crop=32, batch_size=2, width=4, depth=2, seeds=(0,), train_limit=1, folds=2)
    geo = Recipe(**{**full.to_dict(), "aug_photometric": 0.0})
    a = judge(train, test, None, geo, arms=["real", "aug"])
    rows_geo = torch.cat(seen)
    seen.clear()
    b = judge(train, test, None, full, arms=["real", "aug"])
    rows_full = torch.cat(seen)
    assert torch.equal(rows_geo[:, :3], rows_full[:, :3])  # same zoom, angle, mirror
    assert torch.all(rows_geo[:, 3:6] == 1.0) and torch.all(rows_geo[:, 6:] == 0.0)
    assert not torch.all(rows_full[:, 6:] == 0.0)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(protocols.photometric(x, rows_geo[:4], torch.Generator().manual_seed(1)), x, atol=1e-6)
    assert a.settings["recipe"]["aug_photometric"] == 0.0
    with pytest.raises(IaaaError, match="other settings"):
        JudgeReport.merge([a, b])
    # A part written before the field existed ran the full photometric part: it merges with
    # full-strength parts only, whatever the default is.
    older = b.to_dict()
    del older["settings"]["recipe"]["aug_photometric"]
    later = judge(train, test, None, full, arms=["real", "naive"])
    assert JudgeReport.merge([JudgeReport.from_dict(older), later]).arms == ["real", "aug", "naive"]
    with pytest.raises(IaaaError, match="other settings"):
        JudgeReport.merge([JudgeReport.from_dict(older), a])


def test_arm_list_splits_outside_variant_brackets():
    from iaaa.judge import split_arms

    assert split_arms(" aug, iaaa[object_scale=(0.7, 1.4),sigma=2]+aug ,naive,") == [
        "aug", "iaaa[object_scale=(0.7, 1.4),sigma=2]+aug", "naive"]
    for bad in ("aug,iaaa[sigma=2", "aug]"):
        with pytest.raises(IaaaError, match="without"):
            split_arms(bad)


def test_judge_refuses_meaningless_data(tiny):
    train, test = tiny
    recipe = Recipe(steps=1, crop=32, batch_size=2, width=4, depth=2, seeds=(0,))
    empty = [(s.image, torch.zeros_like(s.labels)) for s in test]
    with pytest.raises(IaaaError, match="test images hold no cell"):
        judge(train, empty, None, recipe, arms=["real"])
    with pytest.raises(IaaaError, match="also a training image"):
        judge(train, [train[1]], None, recipe, arms=["real"])
    with pytest.raises(IaaaError, match="needs a synthetic source"):
        judge(train, test, None, recipe, arms=["real", "iaaa"])
    with pytest.raises(IaaaError, match="built-in arms"):
        judge(train, test, {"naive": list(train)}, recipe, arms=["real"])
    rgb = [(torch.zeros(3, 40, 40, dtype=torch.uint8), s.labels[:40, :40]) for s in train]
    with pytest.raises(IaaaError, match="channels"):
        judge(train, rgb, None, recipe, arms=["real"])


def test_judge_fixed_synthetic_list_under_mix_and_online(tiny):
    train, test = tiny
    for protocol in ("mix", "online"):
        recipe = Recipe(protocol=protocol, steps=2, crop=32, batch_size=2, width=4, depth=2, seeds=(0,), p=1.0)
        rep = judge(train, test, {"mine": list(train[:1])}, recipe, arms=["mine", "mine+aug"])
        assert rep.arms == ["mine", "mine+aug"] and rep.results["mine"][run_key(0, 0)]["pool"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_judge_on_cuda_matches_the_table_shape(tiny):
    train, test = tiny
    recipe = Recipe(steps=3, crop=32, batch_size=2, width=4, depth=2, seeds=(0,), device="cuda")
    rep = judge(train, test, None, recipe, arms=["real", "aug", "naive"])
    assert set(rep.results) == {"real", "aug", "naive"} and "learning curve" in rep.table()


def test_synthetic_pools_are_made_per_source_when_needed_and_change_nothing(tiny, monkeypatch):
    """Each source's pool is prepared before its first arm and released after its last (one
    pool held at a time); an arm's runs do not depend on which arms come before it, and pool
    images keep no full-size label map (they are never scored)."""
    import importlib

    from iaaa.judge import draw_pool, iter_pool

    jj = importlib.import_module("iaaa.judge.judge")  # the module (the package's `judge` is the function)

    train, test = tiny
    recipe = Recipe(steps=3, crop=32, batch_size=2, width=4, depth=2, pool_size=3, seeds=(0,), train_limit=2, folds=1)
    sources = named_sources(["iaaa"], [{"sigma": 2.0}])
    made, held = [], []
    real_pool = jj.prepared_pool

    def spy(name, fitted, seed, rec, channels):
        pool = real_pool(name, fitted, seed, rec, channels)
        assert all(p.native is None for p in pool) and len(pool) == 3
        made.append(name)
        return pool

    real_run = jj._run

    def run_spy(arm, real, pool, *args, **kwargs):
        held.append(pool is not None)
        return real_run(arm, real, pool, *args, **kwargs)

    monkeypatch.setattr(jj, "prepared_pool", spy)
    monkeypatch.setattr(jj, "_run", run_spy)
    arms = ["iaaa", "iaaa+aug", "real", "iaaa[sigma=2.0]+aug"]
    rep = judge(train, test, sources, recipe, arms=arms)
    assert made == ["iaaa", "iaaa[sigma=2.0]"]  # once per source, in arm order
    assert held == [True, True, False, True]
    other = judge(train, test, sources, recipe, arms=["iaaa[sigma=2.0]+aug", "real", "iaaa+aug"])
    for arm in ("iaaa+aug", "iaaa[sigma=2.0]+aug", "real"):
        assert {k: v["mean_ap"] for k, v in other.results[arm].items()} == {k: v["mean_ap"] for k, v in rep.results[arm].items()}
    comp = CellCompositor().fit(train, progress=False)
    lazy, listed = list(iter_pool(comp, 5, 2)), draw_pool(comp, 5, 2)
    assert all(torch.equal(a.image, b.image) and torch.equal(a.labels, b.labels) for a, b in zip(lazy, listed))
    assert draw_pool(train, 0, 99) is train


def test_merge_compares_paste_context_only_between_parts_with_online_arms():
    """``paste_context`` is read by ``iaaa-online`` arms only: a part without one merges whatever
    its value (records before the field ran at 1), parts with one must agree, and the merged
    recipe carries the online arms' value."""
    from iaaa.judge import JudgeReport

    def part(arms: dict[str, float], context: float | None) -> JudgeReport:
        recipe = {**Recipe(seeds=(0,)).to_dict()}
        if context is None:
            del recipe["paste_context"]  # written before the field existed
        else:
            recipe["paste_context"] = context
        run = lambda v: {"mean_ap": v, "ap50": v, "f1_50": v}  # noqa: E731
        return JudgeReport({a: {"fold0/seed0": run(v)} for a, v in arms.items()}, {"recipe": recipe, "arms": list(arms)}, "aug")

    old = part({"aug": 0.2, "iaaa+aug": 0.23}, None)
    new = part({"aug": 0.2, "iaaa-online+aug": 0.22}, 2.0)
    merged = JudgeReport.merge([old, new])
    assert merged.arms == ["aug", "iaaa+aug", "iaaa-online+aug"] and merged.settings["recipe"]["paste_context"] == 2.0
    with pytest.raises(IaaaError, match="paste_context"):
        JudgeReport.merge([part({"aug": 0.2, "iaaa-online+aug": 0.21}, None), new])
    with pytest.raises(IaaaError, match="other settings"):  # any other field still has to agree
        other = part({"aug": 0.2, "naive+aug": 0.21}, 1.0)
        other.settings["recipe"]["steps"] = 10
        JudgeReport.merge([old, other])


def test_report_records_the_platform_and_merge_names_runs_paired_across_platforms(tiny):
    """A report says which torch build and CPU kernels trained it (the same run repeats bit for
    bit only there); parts of different platforms merge, and a run whose arms come from parts of
    different platforms is named in a warning, while runs held whole by one platform are not."""
    import torch

    from iaaa.judge.report import JudgeReport, run_platform

    train, test = tiny
    recipe = Recipe(steps=2, crop=32, batch_size=2, width=4, depth=2, seeds=(0,), train_limit=1, folds=2)
    first = judge(train, test, None, recipe, arms=["real", "naive"])
    plat = first.settings["platform"]
    assert plat == run_platform("cpu") and plat["cpu_kernels"] == str(torch.backends.cpu.get_cpu_capability()) and plat["torch"] == torch.__version__
    assert f"CPU kernels {plat['cpu_kernels']}" in first.table()
    later = JudgeReport.from_dict(json.loads(judge(train, test, None, recipe, arms=["real", "aug"]).to_json()))
    same = JudgeReport.merge([first, later])
    assert not any("platforms" in w for w in same.settings["warnings"]) and same.settings["platform"] == plat
    # The later part as if trained on a machine with other kernels (its shared `real` runs
    # reproduced here only because this test ran both on one machine).
    later.settings["platform"] = {**plat, "cpu_kernels": "OTHER"}
    mixed = JudgeReport.merge([first, later])
    warning = [w for w in mixed.settings["warnings"] if "different platforms" in w]
    assert len(warning) == 1 and "fold0/seed0, fold1/seed0" in warning[0]
    assert len(mixed.settings["platform"]) == 2 and "CPU kernels OTHER" in mixed.table()
    # Parts of different platforms holding different runs (one fold each) pair within each run.
    folds = [judge(train, test, None, Recipe.from_dict({**recipe.to_dict(), "only_folds": [k]}), arms=["real", "naive"]) for k in (0, 1)]
    folds[1].settings["platform"] = {**plat, "cpu_kernels": "OTHER"}
    assert not any("different platforms" in w for w in JudgeReport.merge(folds).settings["warnings"])
    # Reports written before the platform was recorded merge as before, without a warning.
    for p in (first, later):
        p.settings.pop("platform")
    assert not any("different platforms" in w for w in JudgeReport.merge([first, later]).settings["warnings"])
