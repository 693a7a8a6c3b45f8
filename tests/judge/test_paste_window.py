"""The online arm's paste around a crop at the images' own resolution (``Recipe.paste_scale``):
the pasted region brought to the working scale must be what preparing the whole pasted image
would give, and nothing else may change."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa import CellCompositor, PasteCells
from iaaa.datasets import simulate_cells
from iaaa.judge import Recipe, StepComposer, native_images, parse_arm, paste_window_native, prepare
from iaaa.judge.train_data import normalize_image, to_working
from iaaa.structures import AnnotatedImage

pytestmark = pytest.mark.usefixtures("one_thread")


class SquarePaster:
    """A stand-in for PasteCells that pastes one bright square cell at a set place of the window
    (over whatever is there), with PasteCells's renumbering and meta."""

    def __init__(self, top: int, left: int, side: int, value: float = 0.9):
        self.top, self.left, self.side, self.value = top, left, side, value

    def apply(self, sample: AnnotatedImage, generator: torch.Generator) -> AnnotatedImage:
        img, lab = sample.image.clone(), sample.labels.clone()
        h, w = lab.shape
        y0, x0 = min(self.top, h - 1), min(self.left, w - 1)
        y1, x1 = min(y0 + self.side, h), min(x0 + self.side, w)
        ids = torch.unique(lab[lab > 0])
        lab[y0:y1, x0:x1] = -1
        alive = torch.unique(lab[lab > 0])
        dropped = sorted(set(ids.tolist()) - set(alive.tolist()))
        lut = torch.zeros(int(sample.labels.max()) + 2, dtype=torch.int64)
        lut[alive] = torch.arange(1, len(alive) + 1)
        out = torch.where(lab < 0, torch.tensor(len(alive) + 1), lut[lab.clamp(min=0)])
        img[:, y0:y1, x0:x1] = self.value
        meta = {"pasted": True, "pasted_ids": torch.tensor([len(alive) + 1]), "dropped": dropped}
        return AnnotatedImage(img, out, meta={"paste": meta})


@pytest.fixture(scope="module")
def field():
    # an even-sized field so that scale 0.5 divides it exactly
    return simulate_cells(1, seed=5, size=(160, 176), cells=(10, 14))[0]


@settings(max_examples=25, deadline=None)
@given(y=st.integers(0, 80 - 24), x=st.integers(0, 88 - 24), top=st.integers(0, 40), left=st.integers(0, 40), side=st.integers(1, 12),
       context=st.sampled_from([1.0, 1.5, 2.0, 3.0]))
def test_native_paste_equals_preparing_the_pasted_image(field, y, x, top, left, side, context):
    scale, crop = 0.5, 24
    src = prepare(field, scale, crop)
    nat = native_images([field])[0]
    img, lab = paste_window_native(SquarePaster(top, left, side), src, nat, y, x, crop, context, torch.Generator())
    # The reference: paste the same square into the whole native image, renumber as the window
    # paste does (survivors keep their ids, the square above the image's), prepare it whole.
    sh = min(80, round(crop * context))
    sw = min(88, round(crop * context))
    y0, x0 = min(max(y - (sh - crop) // 2, 0), 80 - sh), min(max(x - (sw - crop) // 2, 0), 88 - sw)
    ny0, nx0 = 2 * y0, 2 * x0
    ny1, nx1 = ny0 + 2 * sh, nx0 + 2 * sw
    t, l = ny0 + min(top, ny1 - ny0 - 1), nx0 + min(left, nx1 - nx0 - 1)
    b, r = min(t + side, ny1), min(l + side, nx1)
    ref_img, ref_lab = nat.image.clone(), nat.labels.clone()
    ref_img[:, t:b, l:r] = 0.9
    ref_lab[t:b, l:r] = int(nat.labels.max()) + 1
    # prepare() normalises the native image, then resizes it: the paste goes between the two
    whole_img, whole_lab = to_working(nat.image, nat.labels, src.size)
    assert torch.allclose(whole_img, src.image, atol=1e-6) and torch.equal(whole_lab, src.labels)
    ref_img, ref_lab = to_working(ref_img, ref_lab, src.size)
    assert torch.allclose(img, ref_img, atol=1e-5)
    assert torch.equal(lab, ref_lab)


def test_native_paste_leaves_far_pixels_bit_identical_and_is_a_copy(field):
    src = prepare(field, 0.5, 24)
    nat = native_images([field])[0]
    before = src.image.clone(), src.labels.clone()
    img, lab = paste_window_native(SquarePaster(2, 2, 4), src, nat, 40, 40, 24, 2.0, torch.Generator())
    assert torch.equal(src.image, before[0]) and torch.equal(src.labels, before[1])  # input untouched
    changed = (img != src.image).any(0) | (lab != src.labels)
    ys, xs = torch.nonzero(changed, as_tuple=True)
    # window top-left at working (28, 28); the square covers native (58..61) -> working 29..30
    assert len(ys) and ys.min() >= 29 - 3 and ys.max() <= 30 + 3 and xs.min() >= 29 - 3 and xs.max() <= 30 + 3
    assert int(lab.max()) == int(nat.labels.max()) + 1


def test_native_paste_of_nothing_returns_the_prepared_image(field):
    class Nothing:
        def apply(self, sample, generator):
            return AnnotatedImage(sample.image, sample.labels, meta={"paste": {"pasted": False}})

    src = prepare(field, 0.5, 24)
    img, lab = paste_window_native(Nothing(), src, native_images([field])[0], 10, 10, 24, 2.0, torch.Generator())
    assert img is src.image and lab is src.labels


def test_native_paste_on_a_padded_image_stays_in_its_unpadded_part():
    small = simulate_cells(1, seed=3, size=(40, 48), cells=(3, 5))[0]
    src = prepare(small, 0.5, 32)  # 20 x 24 working, padded to 32 x 32
    assert src.size == (20, 24) and tuple(src.labels.shape) == (32, 32)
    img, lab = paste_window_native(SquarePaster(0, 0, 40), src, native_images([small])[0], 0, 0, 32, 2.0, torch.Generator())
    changed = (img != src.image).any(0) | (lab != src.labels)
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert len(ys) and ys.min() >= 6 and ys.max() < 26 and xs.min() >= 4 and xs.max() < 28


def test_composer_pastes_at_native_resolution_under_add():
    train = simulate_cells(3, seed=1, size=(128, 144), cells=(6, 10))
    recipe = Recipe(protocol="add", batch_size=2, crop=32, scale=0.5, seeds=(0,))
    assert recipe.pastes_native and not Recipe(scale=0.5, paste_scale="working").pastes_native
    assert not Recipe(scale=1.0).pastes_native and not Recipe(scale=0.5, protocol="online").pastes_native
    real = [prepare(s, 0.5, 32) for s in train]
    native = native_images(train)
    assert torch.equal(native[0].image, normalize_image(train[0].image))
    comp = CellCompositor().fit(native, progress=False)
    composer = StepComposer(real, recipe, 0, parse_arm("iaaa-online+aug"), paster=PasteCells(comp, p=1.0), native=native)
    ref = StepComposer(real, recipe, 0, parse_arm("aug"))
    more = 0
    for _ in range(4):
        s, r = composer.next(), ref.next()
        assert torch.equal(s.images[:2], r.images) and s.n_synthetic == 2
        more += sum(int(torch.unique(lab).numel()) for lab in s.labels[2:])
    assert more > 0
    again = StepComposer(real, recipe, 0, parse_arm("iaaa-online+aug"), paster=PasteCells(comp, p=1.0), native=native)
    first = StepComposer(real, recipe, 0, parse_arm("iaaa-online+aug"), paster=PasteCells(comp, p=1.0), native=native).next()
    assert torch.equal(again.next().labels, first.labels)
    with pytest.raises(Exception, match="native images for"):
        StepComposer(real, recipe, 0, parse_arm("iaaa-online+aug"), paster=PasteCells(comp, p=1.0), native=native[:1])
