"""``object_stretch``: the default object policy changes each object's aspect ratio (log-uniform
in ``(1/a, a)``, area kept, before the random rotation). Labels move with their pixels, the
stretch reaches both sides of the range, the default draws are untouched, and only the default
policy reads the option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa import CellCompositor, CompositorConfig
from iaaa.datasets import simulate_cells
from iaaa.errors import IaaaError
from iaaa.synthesis.object_policy import ObjectAugment


def test_the_stretch_draws_one_uniform_more_and_the_default_none() -> None:
    g0, g1, g2 = (torch.Generator().manual_seed(7) for _ in range(3))
    ObjectAugment().draw(g0)
    ObjectAugment(stretch=1.5).draw(g1)
    torch.rand(7, generator=g2, dtype=torch.float64)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    g3 = torch.Generator().manual_seed(7)
    torch.rand(6, generator=g3, dtype=torch.float64)
    assert torch.equal(torch.rand(3, generator=g0), torch.rand(3, generator=g3))
    # The first six draws (flips, angle, scale, brightness, contrast) are the unstretched ones.
    a = ObjectAugment().draw(torch.Generator().manual_seed(3))
    b = ObjectAugment(stretch=2.0).draw(torch.Generator().manual_seed(3))
    assert a[2:] == b[2:]
    q = abs(b[0])
    assert abs(b[1]) == pytest.approx(1 / q) and math.copysign(1, b[0]) == a[0] and math.copysign(1, b[1]) == a[1]
    assert ObjectAugment(stretch=1).stretch is None  # a = 1 is no stretch (six draws)


def test_the_aspect_ratio_covers_both_sides_of_the_range_and_the_area_is_kept() -> None:
    # No rotation, no flip, no photometric change: a square becomes a rectangle whose side ratio
    # is the drawn factor q^2 in [1/a, a] (a square: a disk's one-pixel tips may fall between
    # the nearest sampling's positions on the shrunk axis).
    lab = torch.zeros(80, 80, dtype=torch.int64)
    lab[20:60, 20:60] = 1
    img = (0.2 + 0.6 * lab.to(torch.float32))[None]
    pol = ObjectAugment(flip=False, degrees=0.0, brightness=0.0, contrast=0.0, stretch=2.0)
    ratios = []
    for seed in range(40):
        q = abs(pol.draw(torch.Generator().manual_seed(seed))[0])
        out, out_lab = pol(img, lab, torch.Generator().manual_seed(seed))
        ys, xs = torch.nonzero(out_lab, as_tuple=True)
        hgt, wid = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
        assert wid / hgt == pytest.approx(q * q, abs=0.06)
        assert wid == pytest.approx(40 * q, abs=1) and hgt == pytest.approx(40 / q, abs=1)
        assert float(out_lab.sum()) == pytest.approx(float(lab.sum()), rel=0.05)
        ratios.append(q * q)
    assert min(ratios) < 0.8 and max(ratios) > 1.25 and 0.5 - 1e-9 <= min(ratios) and max(ratios) <= 2.0 + 1e-9


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(1.0, 3.0), st.integers(16, 48), st.integers(16, 48))
def test_labels_stay_on_their_pixels(seed: int, stretch: float, h: int, w: int) -> None:
    # Two cells of distinct constant levels: wherever a label lands away from every label edge,
    # the pixel holds that cell's level (bilinear mixes only at the edge).
    lab = torch.zeros(h, w, dtype=torch.int64)
    lab[2 : h // 2, 3 : w // 2] = 1
    lab[h // 2 + 1 : h - 2, w // 2 : w - 3] = 2
    levels = torch.tensor([0.0, 0.3, 0.8])
    img = levels[lab][None].clone()
    pol = ObjectAugment(brightness=0.0, contrast=0.0, stretch=stretch)
    out, out_lab = pol(img, lab, torch.Generator().manual_seed(seed))
    assert out.shape[-2:] == out_lab.shape and set(out_lab.unique().tolist()) <= {0, 1, 2}
    pad = torch.nn.functional.pad(out_lab[None, None].float(), (2, 2, 2, 2), value=-1)[0, 0]
    inner = torch.ones_like(out_lab, dtype=torch.bool)
    for dy in range(5):
        for dx in range(5):
            inner &= pad[dy : dy + out_lab.shape[0], dx : dx + out_lab.shape[1]] == out_lab
    sel = inner & (out_lab > 0)
    torch.testing.assert_close(out[0][sel], levels[out_lab[sel]], atol=1e-5, rtol=0)
    for k in (1, 2):  # area kept within the nearest sampling's rounding
        a0, a1 = float((lab == k).sum()), float((out_lab == k).sum())
        assert abs(a1 - a0) <= 2.5 * math.sqrt(a0) * math.sqrt(stretch) + 6


def test_only_the_default_policy_reads_it_and_its_context_covers_the_shrink() -> None:
    base = CellCompositor(CompositorConfig())
    comp = CellCompositor(CompositorConfig().replace(object_stretch=2.25))
    assert isinstance(comp.policy, ObjectAugment) and comp.policy.stretch == 2.25
    assert comp.policy.max_shrink == pytest.approx(1 / 1.5)
    assert comp.context > base.context
    with pytest.raises(IaaaError, match="object_stretch"):
        CellCompositor(CompositorConfig().replace(object_stretch=1.5), policy="identity")
    with pytest.raises(IaaaError, match="object_stretch"):
        CompositorConfig().replace(object_stretch=0.5)
    for bad in (float("nan"), float("inf"), 0.9, True, "1.5"):
        with pytest.raises(IaaaError, match="stretch"):
            ObjectAugment(stretch=bad)
    assert ObjectAugment(stretch=np.float32(1.5)).stretch == 1.5
    assert CompositorConfig.from_options({"object_stretch": "1.5"}).object_stretch == 1.5


def test_stretched_samples_are_exact_instance_maps_and_differ_from_the_default() -> None:
    data = simulate_cells(3, seed=2, size=(128, 128), cells=(6, 10))
    plain = CellCompositor(CompositorConfig(), seed=0).fit(data, progress=False)
    comp = CellCompositor(CompositorConfig().replace(object_stretch=1.8), seed=0).fit(data, progress=False)
    differ = 0
    for s in range(4):
        out = comp.sample(torch.Generator().manual_seed(s))
        again = comp.sample(torch.Generator().manual_seed(s))
        assert torch.equal(out.labels, again.labels) and torch.equal(out.image, again.image)
        ids = out.labels.unique()
        assert ids.tolist() == list(range(int(ids.max()) + 1)) and len(out.class_ids) == int(ids.max())
        differ += not torch.equal(out.labels, plain.sample(torch.Generator().manual_seed(s)).labels)
    assert differ >= 3
    # Pasted cells are no longer only rotations of pooled ones: some bounding-box aspect ratios
    # leave the range the unstretched policy gives the same objects.
    def aspects(c):
        r = []
        for s in range(6):
            out = c.sample(torch.Generator().manual_seed(100 + s))
            kinds = out.meta["instance_kind"]
            for i, kind in enumerate(kinds, start=1):
                if kind == "real":
                    continue
                m = (out.labels == i).numpy()
                cov = np.cov(np.stack(np.nonzero(m)).astype(np.float64)) if m.sum() > 8 else None
                if cov is not None:
                    ev = np.linalg.eigvalsh(cov)
                    r.append(float(np.sqrt(ev[-1] / max(ev[0], 1e-9))))
        return np.array(r)
    assert np.percentile(aspects(comp), 90) > np.percentile(aspects(plain), 90)
