"""What fit records: PoolBuilder -> Pools, the group pools with their measured halo, rim and
context, and how a synthetic image draws its count and objects from a group."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage, CellObject
from iaaa.synthesis import CellCompositor, CompositorConfig, CountConfig, PoolBuilder, PooledBackground, Pools
from iaaa.synthesis.draws import choose_objects, count_cap, draw_count

pytestmark = pytest.mark.usefixtures("one_thread")


def _sample(name: str, h: int = 20, w: int = 30, cells: int = 2, dtype: torch.dtype = torch.uint8, channels: int = 1) -> AnnotatedImage:
    lab = torch.zeros(h, w, dtype=torch.int64)
    for k in range(cells):
        lab[2 + 4 * k : 4 + 4 * k, 2:5] = k + 1
    return AnnotatedImage(torch.zeros(channels, h, w, dtype=dtype), lab, name=name)


def _object(kind: str, cells: int, source: str) -> CellObject:
    lab = torch.zeros(6, 6, dtype=torch.int64)
    for k in range(cells):
        lab[k, :2] = k + 1
    return CellObject(image=torch.zeros(1, 6, 6, dtype=torch.uint8), labels=lab, class_ids=torch.ones(cells, dtype=torch.int64), kind=kind, source=source, box=(0, 0, 5, 5), source_ids=tuple(range(1, cells + 1)))


def _background(s: AnnotatedImage, group: str, cells: int) -> PooledBackground:
    return PooledBackground(s.image, np.zeros((1, *s.size), dtype=np.float16), s.name, group, cells, float(s.size[0] * s.size[1]), None, None)


def _built() -> Pools:
    b = PoolBuilder(torch.device("cpu"))
    plan = [("a0", "A", 4, [("sco", 1), ("mco", 3)], (3, 3, 12)), ("a1", "A", 6, [("sco", 1)], (3, 3, 12)), ("b0", "B", 10, [("sco", 1), ("sco", 1)], (0, 0, 5))]
    for name, group, cells, objs, (halo, rim, context) in plan:
        s = _sample(name)
        b.add(s, group, [_object(k, n, name) for k, n in objs], cells, border_objects=1, fragments=2, halo=halo, rim=rim, context=context)
        b.add_background(_background(s, group, cells), name)
    return b.finish(None)


def test_builder_pools_objects_backgrounds_and_groups():
    p = _built()
    assert [o.kind for o in p.objects] == ["sco", "mco", "sco", "sco", "sco"]
    assert p.sco_index.tolist() == [0, 2, 3, 4] and p.mco_index.tolist() == [1]
    assert p.object_cells.tolist() == [1, 3, 1, 1, 1]
    assert [b.name for b in p.backgrounds] == ["a0", "a1", "b0"]
    assert set(p.groups) == {"A", "B"}
    a, b = p.groups["A"], p.groups["B"]
    assert a.sco.tolist() == [0, 2] and a.mco.tolist() == [1] and b.sco.tolist() == [3, 4] and b.mco.tolist() == []
    assert a.counts.tolist() == [4.0, 6.0] and b.counts.tolist() == [10.0]
    assert a.mco_fraction == pytest.approx(1 / 3) and b.mco_fraction == 0.0
    st = p.stats
    assert (st.n_images, st.n_sco, st.n_mco, st.cells_in_mcos, st.n_border_objects, st.n_fragments) == (3, 4, 1, 3, 3, 6)
    assert st.cells_per_image == [4, 6, 10] and p.dtype == torch.uint8


def test_measured_values_live_in_the_group_pools():
    p = _built()
    assert (p.groups["A"].halo, p.groups["A"].rim, p.groups["A"].context) == (3, 3, 12)
    assert (p.groups["B"].halo, p.groups["B"].rim, p.groups["B"].context) == (0, 0, 5)
    assert p.stats.groups["A"]["halo"] == 3


def test_builder_refuses_what_cannot_be_pooled():
    b = PoolBuilder(torch.device("cpu"))
    b.check(_sample("x"))
    with pytest.raises(IaaaError, match="^y: 3 channels, but the first sample has 1"):
        b.check(_sample("y", channels=3))
    raw = _sample("raw", dtype=torch.float32)
    raw.image[0, 0, 0] = 4095.0  # raw sensor units stored as float: would be clipped to white
    with pytest.raises(IaaaError, match=r"^raw: float image values span 0\.\.4095, .*divide by the sensor maximum"):
        b.check(raw)
    raw.image[0, 0, 0] = float("inf")
    with pytest.raises(IaaaError, match="^raw: 1 pixels are NaN or infinite"):
        b.check(raw)
    with pytest.raises(IaaaError, match="no samples given"):
        PoolBuilder(torch.device("cpu")).finish(None)
    mixed = PoolBuilder(torch.device("cpu"))
    for name, dt in (("u8", torch.uint8), ("u16", torch.uint16)):
        s = _sample(name, dtype=dt)
        mixed.add(s, None, [_object("sco", 1, name)], 2, 0, 0)
        mixed.add_background(_background(s, None, 2), name)
    with pytest.raises(IaaaError, match="mix image dtypes"):
        mixed.finish(None)
    assert mixed.finish(torch.float32).dtype == torch.float32
    empty = PoolBuilder(torch.device("cpu"))
    empty.add(_sample("e"), None, [], 2, 0, 0)
    empty.add_background(None, "e")
    with pytest.raises(IaaaError, match=r"no image has background pixels .*\(e\)"):
        empty.finish(None)


def test_counts_and_choices_follow_the_group():
    p = _built()
    a = p.groups["A"]
    bg = p.backgrounds[0]
    area = float(20 * 30)
    assert count_cap(a, area) == 6  # the densest image of A holds 6 cells on the same area
    assert count_cap(a, 2 * area) == 12
    g = torch.Generator().manual_seed(0)
    assert {draw_count(a, CountConfig(count="sample"), g, area, bg) for _ in range(40)} == {4, 6}
    assert draw_count(a, CountConfig(count="background"), g, 2 * area, bg) == 8
    assert draw_count(a, CountConfig(count=7), g, area, bg) == 7
    assert all(3 <= draw_count(a, CountConfig(count=(3, 5)), g, area, bg) <= 5 for _ in range(20))
    # count_factor scales a count taken from the data (stochastically rounded: the mean is exact)
    # and leaves explicit counts alone; 1.0 draws what no factor draws, from the same stream.
    whole = [draw_count(a, CountConfig(count="background", count_factor=0.75), g, area, bg) for _ in range(400)]
    assert set(whole) == {3} and abs(np.mean(whole) - 0.75 * 4) < 1e-9
    rounded = [draw_count(a, CountConfig(count="background", count_factor=0.6), g, area, bg) for _ in range(2000)]
    assert set(rounded) == {2, 3} and abs(np.mean(rounded) - 2.4) < 0.05
    assert draw_count(a, CountConfig(count=7, count_factor=0.5), g, area, bg) == 7
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(20):
        assert draw_count(a, CountConfig(count="sample"), g1, area, bg) == draw_count(a, CountConfig(count="sample", count_factor=1.0), g2, area, bg)
        assert torch.rand((), generator=g1) == torch.rand((), generator=g2)
    picks = [j for _ in range(200) for j in choose_objects(a, CountConfig(), p.object_cells, 6, g)]
    assert set(picks) <= {0, 1, 2}  # only group A's objects
    share = np.mean([p.objects[j].kind == "mco" for j in picks])
    assert abs(share - 1 / 3) < 0.1
    capped = choose_objects(a, CountConfig(), p.object_cells, 40, g, cap=5)
    assert sum(p.object_cells[j] for j in capped) <= 5
    assert set(choose_objects(p.groups["B"], CountConfig(mco_fraction=1.0), p.object_cells, 3, g)) <= {3, 4}


def test_fitted_groups_record_each_groups_measured_halo(sim_small):
    from iaaa.datasets import simulate_cells

    small = [AnnotatedImage(s.image, s.labels, s.class_ids, f"s{i}", s.categories) for i, s in enumerate(simulate_cells(2, seed=1, size=(64, 64), cells=(3, 5), radius=(4.0, 5.0)))]
    config = CompositorConfig().replace(group_by="size", keep_border=True)
    comp = CellCompositor(config, policy="identity").fit(list(sim_small) + small, progress=False)
    assert set(comp.pools.groups) == {(96, 128), (64, 64)}
    for pool in comp.pools.groups.values():
        assert pool.rim == pool.halo and pool.context == comp._context(pool.rim)
    fixed = CellCompositor(config.replace(halo=2), policy="identity").fit(sim_small, progress=False)
    assert [p.halo for p in fixed.pools.groups.values()] == [2]
    assert fixed.config.halo == 2  # the user's value, never replaced by a measurement
