"""Mask-level synthesis in the compositor (issue 11): mask grouping, mask background, objects with
their rim, pasting onto the real image, mixed-data groups; exact labels and untouched pixels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.synthesis import CellCompositor, CompositorConfig
from iaaa.synthesis import BackgroundConfig, ObjectConfig, extract_objects, group_instances, remove_cells
from iaaa.synthesis.halo import grow_masks

pytestmark = pytest.mark.usefixtures("one_thread")

MASK = dict(grouping="mask", background_method="mask", rim=True, halo=3, group_by=None)


@pytest.fixture(scope="module")
def sim():
    from iaaa.datasets import simulate_cells

    return simulate_cells(4, seed=3, size=(112, 128), mode="brightfield", dtype=torch.uint8, cells=(8, 14), radius=(6.0, 12.0), cluster_prob=0.4)


@pytest.fixture(scope="module")
def fitted(sim):
    return {
        "mask": CellCompositor(CompositorConfig().replace(**MASK), policy="identity").fit(sim),
        "image": CellCompositor(CompositorConfig().replace(**{**MASK, "onto": "image"}), policy="identity").fit(sim),
        "paper": CellCompositor(CompositorConfig().replace(grouping="box", background_method="paper", rim=False, group_by=None), policy="identity").fit(sim),
    }


def test_mask_grouping_crops_hold_only_their_cells(sim):
    s = sim[0]
    bg = torch.full_like(s.image, 7)
    objs = extract_objects([s], ObjectConfig(grouping="mask", touch=1), halo=3, context=6, backgrounds=[bg])
    grown = grow_masks(s.labels, 3)
    assert objs
    for o in objs:
        x0, y0, x1, y1 = o.box
        own = torch.tensor(o.source_ids)
        assert sorted(torch.unique(o.labels[o.labels > 0]).tolist()) == list(range(1, len(own) + 1))
        if x0 < 0 or y0 < 0 or x1 >= s.size[1] or y1 >= s.size[0]:
            continue
        reg = torch.isin(grown[y0 : y1 + 1, x0 : x1 + 1], own)
        # Real pixels exactly on the own cells' grown region, background everywhere else.
        assert torch.equal(o.image[:, reg], s.image[:, y0 : y1 + 1, x0 : x1 + 1][:, reg])
        assert bool((o.image[:, ~reg] == 7).all())


def test_mask_grouping_keeps_more_cells_than_boxes(fitted, sim):
    box = CellCompositor(CompositorConfig().replace(grouping="box"), policy="identity").fit(sim).stats
    mask = fitted["mask"].stats
    assert mask.kept_share > box.kept_share
    assert 0 < mask.kept_share <= 1
    assert "real cells" in mask.summary() and "halo 3" in mask.summary()
    g = group_instances(sim[0].labels, ObjectConfig(grouping="mask", touch=1))
    assert int(g.sizes.sum()) == g.ids.numel()


def _check_sample(comp, x, rim):
    """ids 1..N; every pasted object's labels are its own mask at its box; pixels farther than
    the rim plus the feather from every pasted cell are the background's, bit for bit."""
    lab = x.labels.numpy()
    ids = np.unique(lab)
    ids = ids[ids > 0]
    assert ids.tolist() == list(range(1, len(ids) + 1))
    assert x.class_ids.numel() == len(ids)
    new = np.zeros(lab.shape, bool)
    for o in x.meta["objects"]:
        obj = comp.objects[o["object"]]
        ol = obj.labels.numpy()
        ys, xs = np.nonzero(ol)
        t = ol[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        x0, y0, x1, y1 = o["box"]
        region = lab[y0 : y1 + 1, x0 : x1 + 1]
        present = np.unique(t[t > 0])
        lut = np.zeros(int(t.max()) + 1, dtype=np.int64)
        lut[present] = o["ids"]
        assert np.array_equal(region[t > 0], lut[t[t > 0]])
        assert np.array_equal(np.isin(region, o["ids"]), t > 0)
        new[y0 : y1 + 1, x0 : x1 + 1] |= t > 0
    r = comp.radius + rim
    near = ndi.maximum_filter(new, size=2 * r + 1) if r else new
    bi, (oy, ox) = x.meta["background"], x.meta["offset"]
    h, w = lab.shape
    bg = comp.backgrounds[bi][:, oy : oy + h, ox : ox + w]
    assert torch.equal(x.image[:, torch.from_numpy(~near)], bg[:, torch.from_numpy(~near)])


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["mask", "image", "paper"]))
def test_samples_are_exact(fitted, seed, name):
    comp = fitted[name]
    x = comp.sample(torch.Generator().manual_seed(seed))
    rim = 3 if name != "paper" else 0
    _check_sample(comp, x, rim)
    if name == "image":
        # The real image's own cells stay, with their pixels, as ids 1..M.
        m = x.meta["real_cells"]
        src = [s for s in comp.pools.backgrounds][x.meta["background"]].real
        assert np.array_equal(x.labels.numpy() * (x.labels.numpy() <= m), src.labels)


def test_removed_halo_and_beyond_are_exact(sim):

    s = sim[1]
    r = remove_cells(s.image, s.labels, BackgroundConfig(background_method="mask"), halo=3, generator=torch.Generator().manual_seed(0))
    hole = grow_masks(s.labels, 3) > 0
    assert torch.equal(r.fill_mask, hole)
    assert torch.equal(r.image[:, ~hole], s.image[:, ~hole])


def test_auto_groups_keep_settings_apart():
    from iaaa.datasets import simulate_cells

    from iaaa.structures import AnnotatedImage

    def named(samples, prefix):
        return [AnnotatedImage(s.image, s.labels, s.class_ids, f"{prefix}{i}", s.categories, s.meta) for i, s in enumerate(samples)]

    small = named(simulate_cells(3, seed=1, size=(96, 96), cells=(4, 6), radius=(4.0, 5.0)), "small")
    large = named(simulate_cells(3, seed=2, size=(160, 160), cells=(10, 14), radius=(12.0, 15.0)), "large")
    comp = CellCompositor(CompositorConfig().replace(**{**MASK, "group_by": "auto", "count_cap": True}), policy="identity").fit(small + large)
    groups = comp.stats.groups
    assert len(groups) == 2
    names = {s.name: s.size for s in small + large}
    for seed in range(6):
        x = comp.sample(torch.Generator().manual_seed(seed))
        bg_size = names[x.meta["background_source"]]
        assert all(names[o["source"]] == bg_size for o in x.meta["objects"])
        key = next(k for k in groups if tuple(k[:2]) == tuple(bg_size))
        # the cap of the background's own group; its densest image still gets one object
        room = max(1, groups[key]["cells_max"] - x.meta["real_cells"])
        assert int(x.labels.max()) - x.meta["real_cells"] <= room
