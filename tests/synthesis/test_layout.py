"""Where new cells go: density-driven candidate positions (``layout="source"``), counts tied to
the background (``count="background"``) and mask-level collisions (``collision="mask"``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.datasets import simulate_cells
from iaaa.synthesis import CellCompositor, CompositorConfig, PlacementConfig, candidate_positions, layout_density, layout_grid, place_objects
from iaaa.structures import AnnotatedImage

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(s: int) -> torch.Generator:
    return torch.Generator().manual_seed(s)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_candidates_follow_the_density_exactly(gh, gw, seed, step):
    """Inverse-CDF sampling: block frequencies match the weights, zero-weight blocks are never
    chosen, and every centre lies inside its block."""
    rng = np.random.default_rng(seed)
    grid = rng.random((gh, gw)) * (rng.random((gh, gw)) < 0.6)
    if grid.sum() == 0:
        grid[rng.integers(gh), rng.integers(gw)] = 1.0
    n = 20_000
    u = rng.random((1, n, 2))
    one = np.ones(1, dtype=np.int64)
    # 1x1 boxes and a frame as large as the grid: no clipping, the box corner is the centre.
    xs, ys = candidate_positions(u, one, one, np.array([gh * step]), np.array([gw * step]), 0, (grid, step))
    by, bx = ys[0] // step, xs[0] // step
    counts = np.bincount(by * gw + bx, minlength=gh * gw).reshape(gh, gw)
    p = grid / grid.sum()
    assert counts[p == 0].sum() == 0
    # Binomial sd of a count is at most sqrt(n / 4) = 71; allow 5 sd.
    assert np.abs(counts - n * p).max() <= 5 * np.sqrt(n / 4)
    assert xs.min() >= 0 and ys.min() >= 0 and xs.max() < gw * step and ys.max() < gh * step


def test_candidates_are_clipped_into_the_frame():
    grid = np.zeros((8, 8))
    grid[0, 0] = 1.0  # all weight in the top-left corner block
    u = np.random.default_rng(0).random((2, 50, 2))
    th, tw = np.array([10, 3]), np.array([12, 3])
    H = W = 32
    b = 2
    xs, ys = candidate_positions(u, th, tw, H - th - 2 * b + 1, W - tw - 2 * b + 1, b, (grid, 4))
    assert (xs >= b).all() and (ys >= b).all()
    assert (xs + tw[:, None] <= W - b).all() and (ys + th[:, None] <= H - b).all()
    # Centres near the weighted block: boxes are pushed no farther than the frame requires.
    assert (xs[1] <= 4).all() and (ys[1] <= 4).all()


def test_layout_grid_and_density():
    mask = torch.zeros(40, 64, dtype=torch.bool)
    mask[:, :16] = True  # cells only in the left quarter
    grid = layout_grid(mask, sigma=4.0)
    assert grid.shape == (10, 16)
    assert grid[:, :3].min() > 0.5 and grid[:, 8:].max() < 1e-3
    p, step = layout_density(grid, (0, 0), (40, 64), mix=0.2)
    assert step == 4 and np.isclose(p.sum(), 1.0)
    assert np.isclose(p[:, 8:].sum(), 0.2 * 8 / 16, atol=1e-3)  # only the uniform share is there
    assert layout_density(np.zeros((10, 16)), (0, 0), (40, 64), mix=0.2) is None
    with pytest.raises(ValueError, match="mask"):
        layout_grid(mask[None], 4.0)


def _left_half(samples):
    """The simulated images with only the cells whose centre is in the left half annotated."""
    out = []
    for s in samples:
        lab = s.labels.clone()
        ids = torch.arange(1, int(lab.max()) + 1)
        xs = torch.arange(lab.shape[1]).expand_as(lab)
        cnt = torch.bincount(lab.flatten(), minlength=len(ids) + 1)[1:].clamp_min(1)
        cx = torch.bincount(lab.flatten(), weights=xs.flatten().double(), minlength=len(ids) + 1)[1:] / cnt
        drop = ids[cx >= lab.shape[1] / 2]
        lab[torch.isin(lab, drop)] = 0
        out.append(AnnotatedImage(s.image, lab, name=s.name))
    return out


def _centres_x(out: AnnotatedImage) -> torch.Tensor:
    lab = out.labels
    n = int(lab.max())
    xs = torch.arange(lab.shape[1]).expand_as(lab).flatten().double()
    cnt = torch.bincount(lab.flatten(), minlength=n + 1)[1:].double()
    return torch.bincount(lab.flatten(), weights=xs, minlength=n + 1)[1:] / cnt


def test_source_layout_puts_cells_where_the_background_had_them():
    data = _left_half(simulate_cells(4, seed=2, size=(192, 192), cells=(14, 20)))
    base = CompositorConfig().replace(count=12, onto="background")  # cells go where the removed ones were
    src = CellCompositor(base.replace(layout="source", layout_mix=0.0, layout_sigma=4.0), policy="identity").fit(data)
    uni = CellCompositor(base.replace(layout="uniform"), policy="identity").fit(data)
    left_src = torch.cat([_centres_x(src.sample(_gen(i))) for i in range(10)])
    left_uni = torch.cat([_centres_x(uni.sample(_gen(i))) for i in range(10)])
    # Centres are drawn in the left half; a box is only pushed right by at most its own width.
    assert float((left_src < 192 / 2 + 12).double().mean()) > 0.95
    assert 0.3 < float((left_uni < 192 / 2).double().mean()) < 0.7


def test_layout_and_collision_do_not_change_the_random_stream():
    data = simulate_cells(3, seed=5, size=(128, 128))
    states = []
    for layout in ("uniform", "source"):
        for collision in ("mask", "box"):
            g = _gen(9)
            CellCompositor(CompositorConfig().replace(layout=layout, collision=collision), seed=0).fit(data).sample(g)
            states.append(g.get_state())
    assert all(torch.equal(states[0], s) for s in states[1:])


def test_count_background_takes_the_backgrounds_own_count():
    data = simulate_cells(5, seed=7, size=(160, 160), cells=(3, 30))
    comp = CellCompositor(CompositorConfig().replace(count="background"), policy="identity", seed=0).fit(data)
    cells = {s.name: int(s.labels.max()) for s in data}
    seen = set()
    for i in range(20):
        out = comp.sample(_gen(i))
        seen.add(out.meta["background_source"])
        assert out.meta["requested_cells"] == cells[out.meta["background_source"]]
    assert len(seen) >= 3
    # With an output size, the count is scaled by area like "sample".
    big = CellCompositor(CompositorConfig().replace(count="background", size=(320, 320)), policy="identity").fit(data)
    out = big.sample(_gen(0))
    assert abs(out.meta["requested_cells"] - 4 * cells[out.meta["background_source"]]) <= 1


def test_mask_collisions_pack_round_cells_closer_than_boxes():
    """Two discs whose boxes overlap but whose masks are far enough apart: the box test rejects
    every position next to the first disc, the mask test accepts one, and the gap still holds."""
    yy, xx = torch.meshgrid(torch.arange(21), torch.arange(21), indexing="ij")
    disc = (((yy - 10) ** 2 + (xx - 10) ** 2) <= 100).to(torch.int64)
    obj = (torch.full((1, 21, 21), 200, dtype=torch.uint8), disc)
    bg = torch.zeros(1, 40, 40, dtype=torch.uint8)
    existing = torch.zeros(40, 40, dtype=torch.int64)
    existing[:21, :21] = disc  # a disc in the top-left corner; its box's far corner is empty
    config = PlacementConfig(gap=2, n_candidates=64, rounds=8, sigma=0.0)
    # The only free 21x21 box positions keep x or y >= 24, off a 40 px frame: none fits.
    boxed = place_objects(bg, [obj], dataclasses.replace(config, collision="box"), labels=existing, generator=_gen(0))
    assert boxed.skipped.tolist() == [0]
    masked = place_objects(bg, [obj], dataclasses.replace(config, collision="mask"), labels=existing, generator=_gen(0))
    assert masked.placed.tolist() == [0]
    new = masked.labels == 2
    near = F.max_pool2d(new.float()[None, None], 5, 1, 2)[0, 0] > 0
    assert not bool((near & (existing > 0)).any())  # more than gap=2 px from the old disc
    with pytest.raises(ValueError, match="collision"):
        place_objects(bg, [obj], PlacementConfig(collision="circle"))


def test_option_errors_name_the_field():
    with pytest.raises(ValueError, match="layout"):
        CellCompositor(CompositorConfig().replace(layout="grid"))
    with pytest.raises(ValueError, match="layout_mix"):
        CellCompositor(CompositorConfig().replace(layout_mix=1.5))
    with pytest.raises(ValueError, match="collision"):
        CellCompositor(CompositorConfig().replace(collision="circle"))
    bg = torch.zeros(1, 16, 16)
    with pytest.raises(ValueError, match="density"):
        place_objects(bg, [], density=torch.ones(8, 8))
    with pytest.raises(ValueError, match="density"):
        place_objects(bg, [], density=-torch.ones(16, 16))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 24), st.integers(1, 24), st.integers(0, 5), st.floats(0.05, 1.0), st.integers(0, 2**31 - 1))
def test_grown_runs_equal_a_square_max_filter(h, w, gap, density, seed):
    """The runs the mask-collision test queries cover exactly the mask grown by ``gap``."""
    from scipy.ndimage import maximum_filter

    from iaaa.synthesis.canvas import grown_runs

    rng = np.random.default_rng(seed)
    lab = (rng.random((h, w)) < density).astype(np.int64)
    lab[rng.integers(h), rng.integers(w)] = 1
    ys, xs = np.nonzero(lab)
    tight = (int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max()))
    m = lab[tight[0] : tight[1] + 1, tight[2] : tight[3] + 1] > 0
    want = maximum_filter(np.pad(m, gap), size=2 * gap + 1, mode="constant") if gap else m
    dy, x0, x1 = grown_runs(lab, tight, gap)
    got = np.zeros_like(want)
    for y, a, b in zip(dy, x0, x1):
        assert not got[y + gap, a + gap : b + gap + 1].any()  # runs never overlap
        got[y + gap, a + gap : b + gap + 1] = True
    assert np.array_equal(got, want)
