"""Policies as per-object callables, policy-set selection, JSON round trips and errors, and a
policy set driving CellCompositor with images and masks kept aligned."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.errors import IaaaError
from iaaa.policy import Policy, PolicySet, SubPolicy


def shift_apply(name, image, labels, magnitude, generator=None, expand=False):
    """Toy op: add the magnitude (or 1) to the image; labels untouched."""
    return image + (1.0 if magnitude is None else magnitude), labels


def test_subpolicy_validation():
    assert SubPolicy("Rotate", 1, 0.5).probability == 1.0
    with pytest.raises(ValueError, match="probability"):
        SubPolicy("Rotate", 1.5, 0.5)
    with pytest.raises(ValueError, match="magnitude"):
        SubPolicy("Rotate", 0.5, 2.0)
    with pytest.raises(ValueError, match="op"):
        SubPolicy("", 0.5, 0.5)
    assert str(SubPolicy("FlipLR", 0.5)) == "FlipLR(p=0.5)"


def test_probability_one_always_applies_zero_never():
    img, lab = torch.zeros(1, 4, 4), torch.ones(4, 4, dtype=torch.long)
    always = Policy([("x", 1.0, 0.25), ("x", 1.0, 0.5)], apply=shift_apply)
    never = Policy([("x", 0.0, 0.25)], apply=shift_apply)
    for seed in range(20):
        assert torch.allclose(always(img, lab, torch.Generator().manual_seed(seed))[0], torch.full_like(img, 0.75))
        assert torch.equal(never(img, lab, seed)[0], img)


def test_coin_flips_follow_the_probability_and_the_generator():
    img, lab = torch.zeros(1, 2, 2), torch.ones(2, 2, dtype=torch.long)
    pol = Policy([("x", 0.3, 1.0)], apply=shift_apply)
    g = torch.Generator().manual_seed(0)
    hits = sum(float(pol(img, lab, g)[0].max()) > 0 for _ in range(2000))
    assert abs(hits / 2000 - 0.3) < 0.04
    a = [float(pol(img, lab, torch.Generator().manual_seed(s))[0].max()) for s in range(30)]
    b = [float(pol(img, lab, torch.Generator().manual_seed(s))[0].max()) for s in range(30)]
    assert a == b


def test_batched_policy_draws_a_coin_per_object():
    imgs, labs = torch.zeros(400, 1, 3, 3), torch.ones(400, 3, 3, dtype=torch.long)
    out, out_lab = Policy([("x", 0.5, 1.0)], apply=shift_apply)(imgs, labs, 7)
    changed = out.flatten(1).amax(1) > 0
    assert 150 < int(changed.sum()) < 250
    assert torch.equal(out_lab, labs)
    assert torch.equal(imgs, torch.zeros_like(imgs)), "the input batch must not be modified"


def test_policyset_weights_and_selection_frequencies():
    pols = [Policy([("x", 1.0, float(k) / 10)], apply=shift_apply) for k in range(1, 5)]
    uni = PolicySet(pols)
    rank = PolicySet(pols, weighting="rank")
    assert torch.allclose(uni.weights, torch.full((4,), 0.25, dtype=torch.float64))
    inv = torch.tensor([1.0, 1 / 4, 1 / 9, 1 / 16], dtype=torch.float64)
    assert torch.allclose(rank.weights, inv / inv.sum())
    g = torch.Generator().manual_seed(1)
    counts = torch.zeros(4)
    img, lab = torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.long)
    for _ in range(3000):
        v = float(rank(img, lab, g)[0])
        counts[round(v * 10) - 1] += 1
    assert torch.allclose(counts / 3000, rank.weights.float(), atol=0.03)
    with pytest.raises(ValueError, match="weighting"):
        PolicySet(pols, weighting="best")
    with pytest.raises(ValueError, match="at least one"):
        PolicySet([])


probabilities = st.floats(0.0, 1.0, allow_nan=False)
magnitudes = st.one_of(st.none(), st.floats(0.0, 1.0, allow_nan=False))
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=30, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.lists(st.tuples(st.sampled_from(["FlipLR", "Rotate", "Smooth", "Brightness"]), probabilities, magnitudes), min_size=1, max_size=3), finite, st.one_of(finite, st.just(float("nan")))),
        min_size=1,
        max_size=5,
    ),
    weighting=st.sampled_from(["uniform", "rank"]),
)
def test_json_round_trip_is_exact(tmp_path_factory, entries, weighting):
    pols = [Policy([SubPolicy(*s) for s in subs]) for subs, _, _ in entries]
    ps = PolicySet(pols, [e[1] for e in entries], [e[2] for e in entries], weighting, {"search": {"seed": 3, "space": ["FlipLR"]}})
    path = tmp_path_factory.mktemp("json") / "policies.json"
    ps.save(path)
    back = PolicySet.load(path)
    assert [p.sub_policies for p in back] == [p.sub_policies for p in ps]
    assert back.scores == ps.scores
    assert [(math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(back.changes, ps.changes)] == [True] * len(ps)
    assert back.weighting == weighting and back.meta == ps.meta
    assert sorted(p.name for p in path.parent.iterdir()) == ["policies.json"], "no temp file left behind"


def test_load_errors_name_file_and_field(tmp_path):
    with pytest.raises(IaaaError, match="no such policy file"):
        PolicySet.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(IaaaError, match="bad.json: not valid JSON"):
        PolicySet.load(bad)
    good = PolicySet([Policy([("Rotate", 0.5, 0.4), ("FlipLR", 1.0, None)])], [0.1], [0.2]).to_dict()

    def write(mutate):
        d = json.loads(json.dumps(good))
        mutate(d)
        bad.write_text(json.dumps(d))
        return bad

    with pytest.raises(IaaaError, match="format"):
        PolicySet.load(write(lambda d: d.update(format="other")))
    with pytest.raises(IaaaError, match=r"policies\[0\]\.sub_policies\[1\]\.op: unknown op 'Twirl'"):
        PolicySet.load(write(lambda d: d["policies"][0]["sub_policies"][1].update(op="Twirl")))
    with pytest.raises(IaaaError, match=r"policies\[0\]\.sub_policies\[0\]: .*probability"):
        PolicySet.load(write(lambda d: d["policies"][0]["sub_policies"][0].update(probability=3)))
    with pytest.raises(IaaaError, match=r"policies\[0\]\.score"):
        PolicySet.load(write(lambda d: d["policies"][0].update(score="high")))
    with pytest.raises(IaaaError, match="'policies' must be a non-empty list"):
        PolicySet.load(write(lambda d: d.update(policies=[])))
    with pytest.raises(IaaaError, match="weighting"):
        PolicySet.load(write(lambda d: d.update(weighting="best")))
    # a custom applier accepts its own op names
    assert PolicySet.load(write(lambda d: d["policies"][0]["sub_policies"][1].update(op="Twirl")), apply=shift_apply)[0][1].op == "Twirl"


def test_real_ops_keep_objects_whole_and_aligned():
    yy, xx = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    lab = torch.zeros(20, 30, dtype=torch.long)
    lab[((yy - 10) ** 2 / 36 + (xx - 10) ** 2 / 64) <= 1] = 1
    lab[((yy - 10) ** 2 / 25 + (xx - 21) ** 2 / 36) <= 1] = 2
    img = torch.where(lab > 0, 200, 10).to(torch.uint8).unsqueeze(0)
    flip = Policy([("FlipLR", 1.0, None)])
    fi, fl = flip(img, lab, 0)
    assert torch.equal(fi, img.flip(-1)) and torch.equal(fl, lab.flip(-1))
    # a 90-degree rotation with expand keeps both cells whole and the image on the labels
    rot = Policy([("Rotate", 1.0, 0.5), ("Brightness", 1.0, 0.4)])
    ri, rl = rot(img, lab, torch.Generator().manual_seed(0))
    assert ri.shape[-2:] == rl.shape and ri.dtype == img.dtype
    assert set(torch.unique(rl).tolist()) == {0, 1, 2}
    for k in (1, 2):
        assert abs(int((rl == k).sum()) - int((lab == k).sum())) <= 0.05 * int((lab == k).sum())
    assert float(ri[0][rl > 0].float().mean()) > 150 > float(ri[0][rl == 0].float().mean())


def _inside_outside_contrast(sample) -> float:
    img = sample.image.float().mean(0)
    inside = sample.labels > 0
    return float(img[inside].mean() - img[~inside].mean())


def test_policy_set_through_cell_compositor_keeps_alignment():
    from iaaa.policy.search import torch_threads

    # One thread: several test processes share two cores, and oversubscribed threads made
    # this test 10x slower.
    with torch_threads(1):
        _compositor_alignment()


def _compositor_alignment():
    from iaaa.datasets import simulate_cells
    from iaaa.synthesis import CellCompositor, CompositorConfig

    samples = simulate_cells(3, seed=1, size=(128, 128))
    ps = PolicySet([
        Policy([("Rotate", 1.0, 0.4), ("Brightness", 0.5, 0.2)]),
        Policy([("FlipUD", 1.0, None), ("Resize", 1.0, 0.6)]),
        Policy([("FlipLR", 0.5, None), ("Contrast", 1.0, 0.6)]),
    ])
    # Cleaned backgrounds: every cell is a pasted one, so the contrast measures the policy alone.
    comp = CellCompositor(CompositorConfig().replace(size=(128, 128), onto="background"), policy=ps, seed=0).fit(samples)
    real = min(_inside_outside_contrast(s) for s in samples)
    g = torch.Generator().manual_seed(0)
    outs = comp.sample_batch(4, generator=g)
    for s in outs:
        assert s.image.shape[-2:] == s.labels.shape == (128, 128)
        ids = torch.unique(s.labels)
        ids = ids[ids > 0]
        assert ids.tolist() == list(range(1, len(ids) + 1)) and len(ids) == len(s.class_ids) > 0
        # cells stay bright on their masks: a policy that moved the image off its labels
        # would pull this contrast towards 0 (see the control below)
        assert _inside_outside_contrast(s) > 0.5 * real
    again = comp.sample_batch(4, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a.image, b.image) and torch.equal(a.labels, b.labels) for a, b in zip(outs, again))

    def misaligned(image, labels, generator):
        return image.roll(image.shape[-1] // 2, -1), labels

    bad = CellCompositor(CompositorConfig().replace(size=(128, 128), onto="background"), policy=misaligned, seed=0).fit(samples)
    bad_out = bad.sample_batch(4, generator=torch.Generator().manual_seed(0))
    assert min(_inside_outside_contrast(s) for s in bad_out) < 0.5 * real
