"""The judge's ``iaaa-online`` arm: PasteCells fitted on each fold's prepared training images,
applied as ``naive`` applies its paste: to added real crops under ``add``/``mix``, to the real
crops with probability ``p`` under ``online``."""

from __future__ import annotations

import re

import pytest
import torch

from iaaa import CellCompositor, CompositorConfig, PasteCells
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


def _more_cells_ids_1_to_n(labels):
    ids = torch.unique(labels[labels > 0])
    assert ids.tolist() == list(range(1, ids.numel() + 1))
    return ids.numel()


def test_online_arm_pastes_into_the_same_real_crops(setup):
    real, paster = setup
    recipe = Recipe(protocol="online", batch_size=4, crop=32, p=0.5, seeds=(0,))
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
            _more_cells_ids_1_to_n(s.labels[j])
        assert torch.equal(s.targets, class_targets(s.labels))
        pasted += len(changed)
    assert pasted > 0
    # reproducible for the seed
    again = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster)
    first = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster).next()
    assert torch.equal(again.next().images, first.images)


@pytest.mark.parametrize("protocol", ["add", "mix"])
def test_online_arm_adds_pasted_real_crops_as_naive_does(setup, protocol):
    """Under add / mix the arm's crops are fresh real crops with pasted cells, as naive's are:
    the same number of crops per step as naive, the real crops untouched (add) or the last ones
    replaced (mix)."""
    real, paster = setup
    recipe = Recipe(protocol=protocol, batch_size=4, crop=32, ratio=1.0, seeds=(0,), paste_context=1.0)
    ref = StepComposer(real, recipe, 3, parse_arm("real"))
    naive = StepComposer(real, recipe, 3, parse_arm("naive"))
    arm = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster)
    keep, extra = (4, 4) if protocol == "add" else (2, 2)
    grew = 0
    for _ in range(6):
        r, n, s = ref.next(), naive.next(), arm.next()
        assert s.real == r.real and s.n_synthetic == n.n_synthetic == extra and s.n_pasted == 0
        assert s.images.shape == n.images.shape == (keep + extra, 1, 32, 32)
        assert torch.equal(s.images[:keep], r.images[:keep]) and torch.equal(s.labels[:keep], r.labels[:keep])
        assert torch.equal(s.targets, class_targets(s.labels))
        for j in range(keep, keep + extra):
            _more_cells_ids_1_to_n(s.labels[j])
    # The first step's added crops, pasted and not: the same real windows (drawn before any
    # paste), so where the labels differ the paste added cells, and elsewhere nothing changed.
    class Unpasted:
        def apply(self, sample, generator=None):
            return AnnotatedImage.trusted(image=sample.image, labels=sample.labels, class_ids=sample.class_ids, meta={"paste": {"pasted": False}})

    plain = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=Unpasted()).next()
    first = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster).next()
    for j in range(keep, keep + extra):
        if torch.equal(first.labels[j], plain.labels[j]):
            assert torch.equal(first.images[j], plain.images[j])
        else:
            grew += 1
            assert _more_cells_ids_1_to_n(first.labels[j]) > 0 and not torch.equal(first.images[j], plain.images[j])
    assert grew > 0
    again = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster).next()
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)


@pytest.mark.parametrize("over_cells", [True, False])
def test_paste_context_pastes_into_a_window_around_the_crop(tiny, over_cells):
    """Recipe.paste_context: the paste goes into a window of the real image around the crop;
    outside it the image is the real one bit for bit, the real cells keep their ids (a cell the
    window cuts stays one instance), pasted cells get ids above the image's."""
    train, _ = tiny
    real = [prepare(s, 1.0, 32) for s in train]
    cfg = CompositorConfig().replace(paste_count="data", over_cells=over_cells)
    paster = PasteCells(CellCompositor(cfg).fit([AnnotatedImage(p.image, p.labels) for p in real], progress=False), p=1.0)

    class Recording:  # the paster, noting whether each call pasted over real cells
        on_top: list[bool] = []

        def apply(self, sample, generator=None):
            out = paster.apply(sample, generator)
            self.on_top.append(out.meta["paste"]["over_cells"])
            return out

    recipe = Recipe(protocol="add", batch_size=4, crop=32, seeds=(0,), paste_context=1.5)
    rec = Recording()
    composer = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=rec)
    draws = [(0, 0, 0, 0), (1, 20, 30, 5), (2, 32, 40, 2), (3, 10, 17, 1)]
    images, labels = composer._paste_around(draws)
    assert rec.on_top == [True] * 4 if over_cells else False in rec.on_top
    cut = 0
    for (i, y, x, _), img, lab, on_top in zip(draws, images, labels, rec.on_top):
        src = real[i]
        h, w = src.labels.shape
        y0, x0 = min(max(y - 8, 0), h - 48), min(max(x - 8, 0), w - 48)
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[y0 : y0 + 48, x0 : x0 + 48] = True
        assert torch.equal(img[:, ~inside], src.image[:, ~inside]) and torch.equal(lab[~inside], src.labels[~inside])
        top = int(src.labels.max())
        changed = lab != src.labels
        assert changed.any()  # a count from the data never pastes nothing
        assert (lab[changed] > top).all()  # where labels changed, pasted cells (ids above the image's)
        if not on_top:
            assert not changed[src.labels > 0].any()  # free space: every real pixel keeps its cell
        for c in torch.unique(src.labels[inside & ~inside.roll(1, 0) | inside & ~inside.roll(1, 1)]).tolist():
            if c and (src.labels[~inside] == c).any() and (lab[inside] == c).any():
                cut += 1  # a cell the window cuts keeps its id on both sides
    assert cut > 0
    # the crops of a step come from these images, and a seed reproduces them
    a = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster).next()
    b = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=paster).next()
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, class_targets(a.labels)) and a.n_synthetic == 4


def test_default_paste_context_pastes_into_the_whole_image(setup):
    """``paste_context="image"`` (the default): the paster gets each added crop's whole real
    image, and the crop is cut from the pasted image."""
    real, paster = setup
    seen: list[tuple[int, int]] = []

    class Recording:
        def apply(self, sample, generator=None):
            seen.append(sample.size)
            return paster.apply(sample, generator)

    recipe = Recipe(protocol="add", batch_size=4, crop=32, seeds=(0,))
    assert recipe.paste_context == "image" and recipe.pastes_around_crops
    composer = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=Recording())
    draws = [(0, 0, 0, 0), (1, 20, 30, 5), (3, 10, 17, 1)]
    images, labels = composer._paste_around(draws)
    assert seen == [tuple(real[i].labels.shape) for i, *_ in draws]
    for (i, *_), img, lab in zip(draws, images, labels):
        assert img.shape == real[i].image.shape and (lab != real[i].labels).any()
    step = StepComposer(real, recipe, 3, parse_arm("iaaa-online"), paster=Recording()).next()
    assert step.images.shape[-2:] == (32, 32) and step.n_synthetic == 4


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
    fitted = [m for m in lines if "[iaaa-online] fitted" in m]
    assert fitted
    # the defaults' data-chosen exposure matching and scale jitter say what they resolved to and
    # why, in words (a set without measured contrast has no spread to print)
    assert all(re.search(r"; match_intensity=auto -> (on|off) \((contrast spread \d+\.\dx|\d+ images with cell contrast)\); "
                         r"object_scale=auto -> (off|\(0\.5, 2\)) \(cell diameters spread \d+\.\d\dx\)$", m) for m in fitted)


def test_judge_says_what_object_scale_auto_resolved_to(tiny):
    train, test = tiny
    recipe = Recipe(protocol="add", steps=2, crop=32, batch_size=2, width=4, depth=2, seeds=(0,))
    lines: list[str] = []
    judge(train, test, {"iaaa": lambda t: CellCompositor(CompositorConfig(object_scale="auto")).fit(t, progress=False)}, recipe, arms=["iaaa"], log=lines.append)
    fitted = [m for m in lines if "[iaaa] fitted" in m]
    assert fitted and all(re.search(r"; object_scale=auto -> (off|\(0\.5, 2\)) \((cell diameters spread \d+\.\d\dx|one image with cells)\)$", m) for m in fitted)


def test_online_variant_pastes_from_its_compositor_variant(tiny):
    """``iaaa-online[k=v]`` fits the source ``iaaa[k=v]`` per fold and pastes from it; that
    source is not an arm of its own, and a missing one is refused before any training."""
    from iaaa.judge import named_sources

    train, test = tiny
    recipe = Recipe(protocol="add", steps=2, crop=32, batch_size=2, width=4, depth=2, seeds=(0,))
    sources = named_sources([], [{"match_intensity": True}])
    lines: list[str] = []
    arms = ["real", "iaaa-online[match_intensity=True]+aug"]
    rep = judge(train, test, sources, recipe, arms=arms, log=lines.append)
    assert rep.arms == arms
    assert any("[iaaa-online[match_intensity=True]] fitted" in m for m in lines)
    assert not any(m.startswith("[iaaa[match_intensity=True]] fitted") for m in lines)
    with pytest.raises(IaaaError, match=r"iaaa\[sigma=2\.0\].*--compositor"):
        judge(train, test, sources, recipe, arms=["real", "iaaa-online[sigma=2.0]"])


def test_online_variant_on_the_command_line():
    """The CLI takes ``iaaa-online[k=v]`` with its ``--compositor k=v`` and does not add the
    offline variant as an arm."""
    import argparse

    from iaaa.commands.judge import build_sources

    args = argparse.Namespace(arms="real,iaaa-online[match_intensity=True]", compositor=[["match_intensity=True"]], synthetic=[])
    arms, sources = build_sources(args)
    assert arms == ["real", "iaaa-online[match_intensity=True]"] and list(sources) == ["iaaa[match_intensity=True]"]
    args = argparse.Namespace(arms="real,iaaa-online", compositor=[["match_intensity=True"]], synthetic=[])
    arms, _ = build_sources(args)
    assert arms == ["real", "iaaa-online", "iaaa[match_intensity=True]"]


def test_online_compositor_fits_on_the_images_without_their_padding(tiny, monkeypatch):
    """Images smaller than the crop are reflect-padded for training, which repeats their border
    cells mirrored under the same ids; the online arm's compositor learns its cells from the
    images' own pixels only (before, a padded 16 px image failed the fit as 'binary masks')."""
    import importlib

    judge_module = importlib.import_module("iaaa.judge.judge")  # the module, not the function iaaa.judge.judge
    train, _ = tiny
    real = [prepare(s, 0.5, 48) for s in train]  # 32x36 at the working scale, padded to 48x48
    assert all(tuple(p.labels.shape) == (48, 48) and p.size == (32, 36) for p in real)
    seen = []
    fit = judge_module.fit_source
    monkeypatch.setattr(judge_module, "fit_source", lambda name, source, samples: seen.append(samples) or fit(name, source, samples))
    pasters = judge_module.fold_pasters([parse_arm("iaaa-online")], {}, real, lambda m: None)
    assert set(pasters) == {"iaaa-online"} and len(seen) == 1
    for s, p, own in zip(seen[0], real, (prepare(t, 0.5, 0) for t in train)):
        assert torch.equal(s.image, own.image) and torch.equal(s.labels, own.labels)
        assert torch.equal(p.unpadded()[0], own.image) and torch.equal(p.unpadded()[1], own.labels)
