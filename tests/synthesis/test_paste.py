"""PasteCells, the online transform: exact label maps (occlusion, dropped cells, ids 1..N),
untouched pixels bit-identical, determinism, pickling and DataLoader workers, the v2 and
Mask R-CNN input forms, bad inputs; and the object draws without repeats / never empty."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa import CellCompositor, CompositorConfig, PasteCells
from iaaa.dtypes import to_float
from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(one_thread):
    from iaaa.datasets import simulate_cells

    return simulate_cells(4, seed=3, size=(96, 112), dtype=torch.uint8, cells=(6, 12), cluster_prob=0.3)


@pytest.fixture(scope="module")
def comp(data):
    return CellCompositor(seed=5).fit(data, progress=False)


@pytest.fixture(scope="module")
def plain(data):
    """Identity object policy: a pasted object is exactly its pooled mask, so tests can check
    every pasted pixel. Pasted over the sample's cells (Simple Copy-Paste's way, not the
    default): the case where real cells lose pixels or vanish, which the label bookkeeping must
    get exact."""
    cfg = CompositorConfig().replace(paste_count=(1, 3), over_cells=True)
    return CellCompositor(cfg, policy="identity", seed=5).fit(data, progress=False)


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _same(a: AnnotatedImage, b: AnnotatedImage) -> bool:
    return torch.equal(a.image, b.image) and torch.equal(a.labels, b.labels) and torch.equal(a.class_ids, b.class_ids)


# ----------------------------------------------------------------------------- label maps


def _check_exact(comp: CellCompositor, sample: AnnotatedImage, out: AnnotatedImage) -> None:
    """Every property of the module docs, for an identity-policy compositor."""
    meta = out.meta["paste"]
    lab_in, lab_out = sample.labels.numpy(), out.labels.numpy()
    ids_out = np.unique(lab_out[lab_out > 0])
    n = len(ids_out)
    assert ids_out.tolist() == list(range(1, n + 1))  # ids 1..N
    assert out.class_ids.numel() == n
    if not meta["pasted"]:
        assert _same(out, sample)
        return
    pasted = meta["pasted_ids"].numpy()
    h, w = lab_in.shape
    covered = np.zeros((h, w), bool)
    near = np.zeros((h, w), bool)
    r = comp.radius
    # each placed object's cells are exactly its pooled mask at its box
    pos = 0
    for j, box in zip(meta["objects"], meta["boxes"].tolist()):
        obj = comp.objects[j]
        ol = obj.labels.numpy()
        ys, xs = np.nonzero(ol)
        tight = ol[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        x0, y0, x1, y1 = box
        assert (y1 - y0 + 1, x1 - x0 + 1) == tight.shape
        k = obj.num_cells
        ids = pasted[pos : pos + k]
        pos += k
        win = lab_out[y0 : y1 + 1, x0 : x1 + 1]
        m = tight > 0
        # the window's pixels of these ids are exactly the mask, cell by cell
        for c, new in enumerate(ids, start=1):
            assert np.array_equal(win == new, tight == c)
        assert not np.isin(lab_out, ids)[~np.pad(m, ((y0, h - y1 - 1), (x0, w - x1 - 1)))].any()
        covered[y0 : y1 + 1, x0 : x1 + 1] |= m
        near[max(y0 - r, 0) : y1 + r + 1, max(x0 - r, 0) : x1 + r + 1] = True
    assert pos == len(pasted)
    # untouched pixels: image bit-identical, labels the same cells
    assert torch.equal(out.image[:, ~torch.from_numpy(near)], sample.image[:, ~torch.from_numpy(near)])
    # neither feather nor rim paints over a real cell: its uncovered pixels keep their values
    real_px = torch.from_numpy((lab_in > 0) & ~covered)
    assert torch.equal(out.image[:, real_px], sample.image[:, real_px])
    real_out = lab_out[~covered]
    real_in = lab_in[~covered]
    assert not np.isin(real_out, pasted).any()
    # the surviving real ids map one to one, in order, onto 1..M': nothing invented
    pairs = np.unique(np.stack([real_in, real_out], 1), axis=0)
    assert np.array_equal(pairs[:, 0] > 0, pairs[:, 1] > 0)
    fg = pairs[pairs[:, 0] > 0]
    assert len(np.unique(fg[:, 0])) == len(fg) == len(np.unique(fg[:, 1]))
    assert np.array_equal(fg[:, 1], np.arange(1, len(fg) + 1))  # order kept
    in_ids = np.unique(lab_in[lab_in > 0])
    hidden = sorted(set(in_ids.tolist()) - set(fg[:, 0].tolist()))
    assert hidden == sorted(meta["dropped"])
    for i in hidden:  # fully covered cells are gone
        assert covered[lab_in == i].all()
    # class ids follow their cells
    cls_in = dict(zip(in_ids.tolist(), sample.class_ids.tolist()))
    assert out.class_ids[: len(fg)].tolist() == [cls_in[i] for i in fg[:, 0].tolist()]
    assert pasted.tolist() == list(range(len(fg) + 1, n + 1))


def _crop(sample: AnnotatedImage, y: int, x: int, size: int, cls_seed: int) -> AnnotatedImage:
    img = sample.image[:, y : y + size, x : x + size]
    lab = sample.labels[y : y + size, x : x + size]
    k = int(torch.unique(lab[lab > 0]).numel())
    cls = torch.randint(1, 3, (k,), generator=_g(cls_seed))
    return AnnotatedImage(img, lab, cls, "crop")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), which=st.integers(0, 3), y=st.integers(0, 32), x=st.integers(0, 48), n=st.integers(1, 4))
def test_labels_exact_and_untouched_pixels_kept(plain, data, seed, which, y, x, n):
    sample = _crop(data[which], y, x, 64, seed)
    out = PasteCells(plain, p=1.0, n=n).apply(sample, _g(seed))
    _check_exact(plain, sample, out)


def test_fully_covered_cells_are_dropped(plain, data):
    # a label map of 3x3 tiles: any pasted object hides whole tiles
    s = data[0]
    h, w = s.size
    tiles = (torch.arange(h)[:, None] // 3) * ((w + 2) // 3) + torch.arange(w)[None, :] // 3 + 1
    cls = (torch.arange(int(tiles.max())) % 2) + 1
    sample = AnnotatedImage(s.image, tiles, cls, "tiles")
    dropped = 0
    for seed in range(3):
        out = PasteCells(plain, p=1.0, n=3).apply(sample, _g(seed))
        _check_exact(plain, sample, out)
        dropped += len(out.meta["paste"]["dropped"])
    assert dropped > 0


def test_default_policy_keeps_labels_consistent(comp, data):
    for seed in range(6):
        s = data[seed % 4]
        out = PasteCells(comp, p=1.0, n=(1, 3)).apply(s, _g(seed))
        ids = torch.unique(out.labels[out.labels > 0])
        assert ids.tolist() == list(range(1, ids.numel() + 1)) and out.class_ids.numel() == ids.numel()
        assert out.image.dtype == s.image.dtype and out.image.shape == s.image.shape
        assert out.meta["paste"]["pasted"]
        assert len(set(out.meta["paste"]["objects"])) == len(out.meta["paste"]["objects"])  # no object twice


def test_p_zero_returns_the_input(comp, data):
    s = data[1]
    out = PasteCells(comp, p=0.0).apply(s, _g(0))
    assert _same(out, s) and out.meta["paste"] == {"pasted": False}


def test_float_image_in_unit_range(comp, data):
    s = data[2]
    f = AnnotatedImage(s.image.float() / 255, s.labels, s.class_ids, "float")
    a = PasteCells(comp, p=1.0).apply(s, _g(3))
    b = PasteCells(comp, p=1.0).apply(f, _g(3))
    assert b.image.dtype == torch.float32 and torch.equal(a.labels, b.labels)
    assert torch.allclose(b.image * 255, a.image.float(), atol=0.51)


# ----------------------------------------------------------------------------- determinism, workers


def test_deterministic_for_a_generator_and_no_global_rng(comp, data):
    t = PasteCells(comp, p=0.7, n=(1, 3))
    torch.manual_seed(0)
    a = [t.apply(data[i % 4], _g(i)) for i in range(6)]
    torch.manual_seed(123)
    b = [t.apply(data[i % 4], _g(i)) for i in range(6)]
    assert all(_same(x, y) for x, y in zip(a, b))
    assert not all(_same(x, a[0]) for x in a[1:])
    # without a generator the transform's own one advances: two calls differ, a fresh transform repeats
    c1, c2 = t.apply(data[0]), t.apply(data[0])
    d1 = PasteCells(comp, p=0.7, n=(1, 3)).apply(data[0])
    assert _same(c1, d1) and not _same(c1, c2)


def test_pickle_round_trip(comp, data):
    t = PasteCells(comp, p=1.0, n=2)
    u = pickle.loads(pickle.dumps(t))
    assert _same(t.apply(data[0], _g(9)), u.apply(data[0], _g(9)))


class _Pasted(torch.utils.data.Dataset):
    def __init__(self, samples, transform):
        self.samples, self.t = samples, transform

    def __len__(self):
        return 8

    def __getitem__(self, i):
        from iaaa.data.dataset import sample_generator

        s = self.t.apply(self.samples[i % len(self.samples)], sample_generator(0, i))
        return s.image, s.labels, s.class_ids


def test_dataloader_workers_give_the_same_samples(comp, data):
    ds = _Pasted(data, PasteCells(comp, p=0.8, n=(1, 3)))
    kw = dict(batch_size=None, shuffle=False)
    a = list(torch.utils.data.DataLoader(ds, num_workers=0, **kw))
    b = list(torch.utils.data.DataLoader(ds, num_workers=2, **kw))
    assert len(a) == len(b) == 8
    for x, y in zip(a, b):
        assert all(torch.equal(u, v) for u, v in zip(x, y))


# ----------------------------------------------------------------------------- input forms


def test_v2_image_mask_pair_and_compose(comp, data):
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    s = data[0]
    t = PasteCells(comp, p=1.0, n=2)
    ref = t.apply(s, _g(4))
    img, mask = t(tv_tensors.Image(s.image), tv_tensors.Mask(s.labels), generator=_g(4))
    assert isinstance(img, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
    assert torch.equal(img.as_subclass(torch.Tensor), ref.image) and torch.equal(mask.as_subclass(torch.Tensor), ref.labels)
    # inside v2.Compose, followed by a geometric v2 op that moves image and mask together
    pipe = v2.Compose([PasteCells(comp, p=1.0, n=2), v2.RandomHorizontalFlip(p=1.0)])
    img2, mask2 = pipe(tv_tensors.Image(s.image), tv_tensors.Mask(s.labels))
    assert img2.shape == s.image.shape and mask2.shape == s.labels.shape
    assert int(mask2.max()) > s.num_instances - 1


def test_maskrcnn_target_dict(comp, data):
    from iaaa.data.dataset import make_target
    from torchvision import tv_tensors

    s = AnnotatedImage(data[1].image, data[1].labels, (torch.arange(data[1].num_instances) % 2) + 1, "x")
    image, target = make_target(s)
    target["image_id"] = 7
    t = PasteCells(comp, p=1.0, n=3)
    ref = t.apply(AnnotatedImage(image.as_subclass(torch.Tensor), s.labels, s.class_ids), _g(2))
    img, tgt = t(image, target, generator=_g(2))
    assert isinstance(img, tv_tensors.Image) and torch.equal(img.as_subclass(torch.Tensor), ref.image)
    assert tgt["image_id"] == 7
    n = int(ref.labels.max())
    assert tgt["masks"].shape == (n, *s.size) and tgt["boxes"].shape == (n, 4) and tgt["labels"].tolist() == ref.class_ids.tolist()
    assert torch.equal(tgt["label_map"].as_subclass(torch.Tensor), ref.labels)
    for k in range(n):
        assert torch.equal(tgt["masks"][k].bool(), ref.labels == k + 1)
    from torchvision.ops import masks_to_boxes

    assert torch.equal(tgt["boxes"].as_subclass(torch.Tensor), masks_to_boxes(tgt["masks"]))


def test_group_matching(comp, data):
    from iaaa.synthesis.paste import match_group

    key, pool = match_group(comp, data[0])
    assert key in comp.pools.groups
    # a sample whose cells are far larger than any group's falls back to all objects
    big = AnnotatedImage(data[0].image, (data[0].labels > 0).to(torch.int64) * 0 + 1, None, "one big cell")
    key, pool = match_group(comp, big)
    assert key == "all" and len(pool.sco) == len(comp.sco_index)


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs(comp, data):
    s = data[0]
    with pytest.raises(IaaaError, match="not fitted"):
        PasteCells(CellCompositor())
    t = PasteCells(comp, p=1.0)
    with pytest.raises(IaaaError, match="channels"):
        t.apply(AnnotatedImage(s.image.expand(3, -1, -1).contiguous(), s.labels), _g(0))
    with pytest.raises(IaaaError, match="dtype"):
        t.apply(AnnotatedImage(s.image.to(torch.int32).to(torch.uint16), s.labels), _g(0))
    from torchvision import tv_tensors

    with pytest.raises(IaaaError, match="labels: shape"):
        t(tv_tensors.Image(s.image), tv_tensors.Mask(s.labels[:-1]), generator=_g(0))
    with pytest.raises(IaaaError, match="integer label map"):
        t(tv_tensors.Image(s.image), tv_tensors.Mask(s.labels.float()), generator=_g(0))
    neg = s.labels.to(torch.int64).clone()
    neg[0, 0] = -3
    with pytest.raises(IaaaError, match=r"^labels: negative value -3;"):
        t(tv_tensors.Image(s.image), tv_tensors.Mask(neg), generator=_g(0))
    for kw in ({"p": 1.5}, {"p": True}, {"n": (3, 1)}, {"n": -1}, {"n": 2.5}):
        with pytest.raises(IaaaError):
            PasteCells(comp, **kw)
    with pytest.raises(IaaaError, match="expected an AnnotatedImage"):
        t("not an image")
    f = to_float(s.image)
    t.apply(AnnotatedImage(f, s.labels), _g(0))  # float in [0, 1] is accepted
    for bad, needle in ((f * 255, r"^image: float image values span 0\.\.255"), (f - 0.5, "divide by the sensor maximum"),
                        (torch.where(s.labels > 0, float("nan"), f), "pixels are NaN or infinite")):
        # Raw units would be clipped to white where the pastes write: refused, not corrupted.
        with pytest.raises(IaaaError, match=needle):
            t.apply(AnnotatedImage(bad, s.labels), _g(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_same_as_cpu(data):
    comp = CellCompositor(policy="identity", seed=5).fit(data, progress=False)
    s = data[0]
    a = PasteCells(comp, p=1.0, n=3).apply(s, _g(1))
    comp.to("cuda")
    b = PasteCells(comp, p=1.0, n=3).apply(s.to("cuda"), _g(1))
    assert b.image.device.type == "cuda" and b.labels.device.type == "cuda"
    assert torch.equal(a.labels, b.labels.cpu())
    assert (a.image.int() - b.image.cpu().int()).abs().max() <= 1


# ----------------------------------------------------------------------------- object draws


def _pool(n_sco: int, n_mco: int, share: float):
    from iaaa.synthesis.pools import GroupPool

    return GroupPool(np.arange(n_sco), np.arange(n_sco, n_sco + n_mco), np.array([10.0]), np.array([1e4]), share, 10, 1e4)


def test_no_object_twice_unless_the_pool_is_too_small():
    from iaaa.synthesis.draws import CountConfig, pick_objects

    cfg = CountConfig()
    for seed in range(50):
        got = pick_objects(_pool(12, 4, 0.25), cfg, 10, _g(seed))
        assert len(got) == 10
        sco = [j for j in got if j < 12]
        mco = [j for j in got if j >= 12]
        assert len(set(sco)) == len(sco)
        # 4 MCOs: repeats only once all four are used
        assert len(set(mco)) == min(len(mco), 4)
    # a pool of 3 objects drawn 7 times: each used 2 or 3 times
    got = pick_objects(_pool(3, 0, 0.0), cfg, 7, _g(1))
    assert sorted(np.bincount(got).tolist()) == [2, 2, 3]
    # with repeat_objects the old draw comes back, duplicates included
    dups = [len(set(pick_objects(_pool(12, 4, 0.25), CountConfig(repeat_objects=True), 10, _g(s)))) < 10 for s in range(50)]
    assert any(dups)


def test_draws_without_repeats_equal_the_old_draws():
    from iaaa.synthesis.draws import CountConfig, pick_objects

    for seed in range(50):
        new = pick_objects(_pool(12, 4, 0.25), CountConfig(), 10, _g(seed))
        old = pick_objects(_pool(12, 4, 0.25), CountConfig(repeat_objects=True), 10, _g(seed))
        if len(set(old)) == len(old):
            assert new == old


def test_no_empty_draw():
    from iaaa.synthesis.draws import CountConfig, choose_objects

    pool = _pool(5, 2, 0.3)
    cells = np.array([1] * 5 + [3, 3])
    for seed in range(30):
        assert len(choose_objects(pool, CountConfig(), cells, 1, _g(seed))) >= 1  # 1 cell asked: never 0 objects
        got = choose_objects(pool, CountConfig(), cells, 4, _g(seed), cap=1)  # room for one cell
        assert len(got) == 1 and cells[got[0]] == 1
    assert choose_objects(pool, CountConfig(), cells, 0, _g(0)) == []  # 0 asked: 0 given
    assert choose_objects(pool, CountConfig(), cells, 5, _g(0), cap=0) == []  # no room
    mco_only = _pool(0, 3, 1.0)
    big = np.array([4, 2, 6])
    for seed in range(10):  # no SCO and every MCO over the room left: the smallest drawn one
        got = choose_objects(mco_only, CountConfig(), big, 6, _g(seed), cap=1)
        assert len(got) == 1 and big[got[0]] == big[choose_objects(mco_only, CountConfig(), big, 6, _g(seed))].min()


def test_compositor_images_hold_each_object_once(data):
    comp = CellCompositor(CompositorConfig().replace(onto="background"), seed=2).fit(data, progress=False)
    size = {"sco": len(comp.sco_index), "mco": len(comp.mco_index)}
    for seed in range(8):
        objs = comp.sample(_g(seed)).meta["objects"]
        assert objs
        for kind in ("sco", "mco"):
            mine = [o["object"] for o in objs if o["kind"] == kind]
            # repeats only once the kind's pool is used up
            assert len(set(mine)) == min(len(mine), size[kind])


def test_the_feather_stays_off_real_cells_without_a_rim(data):
    """rim=False: no rim keeps the feather away from neighbours, so the guard must (the
    property of _check_exact with a compositor whose objects carry no rim)."""
    bare = CellCompositor(CompositorConfig().replace(rim=False), policy="identity", seed=5).fit(data, progress=False)
    assert bare.radius > 0
    touched = 0
    for seed in range(12):
        sample = _crop(data[seed % 4], 16, 16, 64, seed)
        out = PasteCells(bare, p=1.0, n=3).apply(sample, _g(seed))
        _check_exact(bare, sample, out)
        touched += bool(out.meta["paste"]["pasted"])
    assert touched


# ----------------------------------------------------------------------------- PasteConfig


@pytest.fixture(scope="module")
def free(data):
    """Identity policy, a count from the data, free space only."""
    cfg = CompositorConfig().replace(paste_count="data", over_cells=False)
    return CellCompositor(cfg, policy="identity", seed=5).fit(data, progress=False)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), which=st.integers(0, 3), y=st.integers(0, 32), x=st.integers(0, 48))
def test_free_space_paste_keeps_every_real_cell(free, data, seed, which, y, x):
    sample = _crop(data[which], y, x, 64, seed)
    out = PasteCells(free, p=1.0).apply(sample, _g(seed))
    _check_exact(free, sample, out)
    meta = out.meta["paste"]
    assert meta["pasted"]  # a count from the data never pastes nothing
    if not meta["over_cells"]:
        # every real cell keeps all its pixels, and each pasted box grown by the gap held none
        assert meta["dropped"] == []
        lab_in = sample.labels.numpy()
        keep = lab_in > 0
        assert np.array_equal(out.labels.numpy()[keep] > 0, keep[keep])
        assert torch.equal(out.image[:, torch.from_numpy(keep)], sample.image[:, torch.from_numpy(keep)])
        gap = free.config.placement.min_gap
        for x0, y0, x1, y1 in meta["boxes"].tolist():
            assert not lab_in[max(y0 - gap, 0) : y1 + gap + 1, max(x0 - gap, 0) : x1 + gap + 1].any()


def test_free_space_paste_goes_on_top_only_when_nothing_fits(free, data):
    s = data[0]
    h, w = s.size
    tiles = (torch.arange(h)[:, None] // 3) * ((w + 2) // 3) + torch.arange(w)[None, :] // 3 + 1  # no free pixel
    sample = AnnotatedImage(s.image, tiles, None, "tiles")
    out = PasteCells(free, p=1.0).apply(sample, _g(0))
    _check_exact(free, sample, out)
    assert out.meta["paste"]["pasted"] and out.meta["paste"]["over_cells"] and out.meta["paste"]["dropped"]
    # with room, the same compositor pastes into free space
    assert not PasteCells(free, p=1.0).apply(data[1], _g(0)).meta["paste"]["over_cells"]


def test_data_count_follows_the_compositors_count_rule(data):
    # SCOs only and an explicit count of 4 cells: exactly 4 objects asked for, placed or skipped
    cfg = CompositorConfig().replace(paste_count="data", mco_fraction=0.0, count=4)
    comp = CellCompositor(cfg, policy="identity", seed=5).fit(data, progress=False)
    for seed in range(4):
        meta = PasteCells(comp, p=1.0).apply(data[seed], _g(seed)).meta["paste"]
        assert len(meta["objects"]) + len(meta["skipped"]) == 4
    # count="background": the sample's own cells, so an empty sample still gets one object and
    # a crowded one more (count_factor scales it, as for sample())
    cfg = CompositorConfig().replace(paste_count="data", mco_fraction=0.0, count="background", count_factor=2.0)
    comp = CellCompositor(cfg, policy="identity", seed=5).fit(data, progress=False)
    empty = AnnotatedImage(data[0].image, torch.zeros_like(data[0].labels), None, "empty")
    asked = [len(m["objects"]) + len(m["skipped"]) for m in (PasteCells(comp, p=1.0).apply(empty, _g(s)).meta["paste"] for s in range(4))]
    assert asked == [1, 1, 1, 1]
    cells = int(torch.unique(data[2].labels[data[2].labels > 0]).numel())
    meta = PasteCells(comp, p=1.0).apply(data[2], _g(0)).meta["paste"]
    assert len(meta["objects"]) + len(meta["skipped"]) == 2 * cells
    # n given to the transform overrides the config
    meta = PasteCells(comp, p=1.0, n=2).apply(data[2], _g(0)).meta["paste"]
    assert len(meta["objects"]) + len(meta["skipped"]) == 2


def test_paste_config_is_validated_and_reaches_the_transform(comp):
    from iaaa.synthesis.paste import PasteConfig

    for bad in [(3, 1), -1, 1001, "many", True, (1, 2, 3)]:
        with pytest.raises(IaaaError, match="paste_count"):
            PasteConfig(paste_count=bad)
    with pytest.raises(IaaaError, match="over_cells"):
        PasteConfig(over_cells="no")
    with pytest.raises(IaaaError, match="^n: "):
        PasteCells(comp, n="all")
    cfg = CompositorConfig.from_options({"paste_count": "data", "paste.over_cells": "false"})
    assert cfg.paste == PasteConfig("data", False) == CompositorConfig().paste  # the default since 2026-12-05
    assert CompositorConfig.from_dict(cfg.to_dict()) == cfg
    assert "n='data', over_cells=False" in repr(PasteCells(comp)) and "n=(1, 3)" in repr(PasteCells(comp, n=(1, 3)))
