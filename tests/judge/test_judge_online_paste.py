"""The judge's ``iaaa-online`` arm: PasteCells fitted on each fold's prepared training images,
applied to the real crops with probability ``p`` under every protocol."""

from __future__ import annotations

import pytest
import torch

from iaaa import CellCompositor, PasteCells
from iaaa.errors import IaaaError
from iaaa.judge import Recipe, StepComposer, judge, parse_arm, prepare
from iaaa.judge.targets import class_targets
from iaaa.structures import AnnotatedImage

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tiny):
    train, _ = tiny
    real = [prepare(s, 1.0, 32) for s in train]
    comp = CellCompositor().fit([AnnotatedImage(p.image, p.labels) for p in real], progress=False)
    return real, PasteCells(comp, p=1.0)


@pytest.mark.parametrize("protocol", ["add", "online"])
def test_online_arm_pastes_into_the_same_real_crops(setup, protocol):
    real, paster = setup
    recipe = Recipe(protocol=protocol, batch_size=4, crop=32, p=0.5, seeds=(0,))
    ref = StepComposer(real, recipe, 3, parse_arm("real"))
    arm = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster)
    pasted = 0
    for _ in range(6):
        r, s = ref.next(), arm.next()
        assert s.real == r.real and s.images.shape == r.images.shape and s.n_synthetic == 0
        changed = [j for j in range(4) if not torch.equal(s.labels[j], r.labels[j])]
        assert len(changed) <= s.n_pasted
        for j in set(range(4)) - set(changed):
            assert torch.equal(s.images[j], r.images[j])
        for j in changed:  # pasted crops: more cells, ids 1..N
            ids = torch.unique(s.labels[j][s.labels[j] > 0])
            assert ids.tolist() == list(range(1, ids.numel() + 1))
        assert torch.equal(s.targets, class_targets(s.labels))
        pasted += len(changed)
    assert pasted > 0
    # reproducible for the seed
    again = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster)
    first = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster).next()
    assert torch.equal(again.next().images, first.images)


def test_online_arm_needs_a_paster(setup):
    real, _ = setup
    with pytest.raises(IaaaError, match="PasteCells"):
        StepComposer(real, Recipe(crop=32), 0, parse_arm("iaaa-online"))


def test_judge_runs_the_online_arm(tiny):
    train, test = tiny
    recipe = Recipe(protocol="online", p=1.0, steps=3, crop=32, batch_size=2, width=4, depth=2, seeds=(0,))
    lines: list[str] = []
    rep = judge(train, test, None, recipe, arms=["real", "iaaa-online", "iaaa-online+aug"], log=lines.append)
    assert rep.arms == ["real", "iaaa-online", "iaaa-online+aug"]
    for runs in rep.results.values():
        for r in runs.values():
            assert 0.0 <= r["mean_ap"] <= 1.0
    assert any("[iaaa-online] fitted" in m for m in lines)
