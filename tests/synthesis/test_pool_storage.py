"""What a fitted compositor keeps for its whole life is stored narrow (pooled objects in their
source dtype with uint8 / int16 labels, real cells' label maps and occupancy tables narrowed):
the same values, so every sample and every paste equals what pools stored as float32 / int64
give."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa import CellCompositor, CompositorConfig, PasteCells
from iaaa.dtypes import to_float
from iaaa.label_maps import compact_labels

pytestmark = pytest.mark.usefixtures("one_thread")


@settings(max_examples=60, deadline=None)
@given(top=st.one_of(st.integers(0, 70000), st.integers(2**31 - 3, 2**31 + 3), st.integers(0, 2**40)), as_tensor=st.booleans(), seed=st.integers(0, 99))
def test_compact_labels_keeps_every_value_in_the_narrowest_dtype(top, as_tensor, seed):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, top + 1, size=(5, 7), dtype=np.int64)
    lab[0, 0] = top
    got = compact_labels(torch.from_numpy(lab) if as_tensor else lab)
    want = np.uint8 if top <= 255 else np.int16 if top <= 32767 else np.int32 if top < 2**31 else np.int64
    arr = got.numpy() if as_tensor else got
    assert isinstance(got, torch.Tensor) == as_tensor
    assert arr.dtype == want
    assert np.array_equal(arr.astype(np.int64), lab)


def test_compact_labels_refuses_negative_ids():
    from iaaa.errors import IaaaError

    with pytest.raises(IaaaError, match="negative"):
        compact_labels(torch.tensor([[0, -1], [2, 3]]))
    with pytest.raises(IaaaError, match="negative"):
        compact_labels(np.array([[-300, 1]]))


def test_compact_labels_of_an_empty_map():
    assert compact_labels(torch.zeros((0, 4), dtype=torch.int64)).dtype == torch.uint8
    assert compact_labels(np.zeros((3, 0), dtype=np.int64)).dtype == np.uint8


def _widened(comp: CellCompositor) -> CellCompositor:
    """The same fitted compositor with the storage of before: float32 object images, int64
    labels, int32 occupancy tables."""
    wide = copy.deepcopy(comp)
    pools = wide.pools
    pools.objects = [o._replace(image=to_float(o.image), labels=o.labels.to(torch.int64)) for o in pools.objects]
    pools.backgrounds = [
        b._replace(real=b.real._replace(labels=b.real.labels.astype(np.int64), table=b.real.table.astype(np.int32))) if b.real is not None else b
        for b in pools.backgrounds
    ]
    return wide


def _data(dtype: torch.dtype):
    from iaaa.datasets import simulate_cells

    return simulate_cells(4, seed=7, size=(120, 136), dtype=dtype, cells=(10, 18), cluster_prob=0.4)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.float32])
@pytest.mark.parametrize("options", [{}, {"object_warp": "fused"}, {"match_intensity": True, "object_scale": (0.5, 2.0)}, {"onto": "background"}])
def test_narrow_pools_sample_and_paste_what_wide_pools_do(dtype, options):
    data = _data(dtype)
    comp = CellCompositor(CompositorConfig().replace(**options), seed=3).fit(data, progress=False)
    pools = comp.pools
    assert pools.objects
    for o in pools.objects:
        assert o.image.dtype == dtype and o.labels.dtype == torch.uint8
    for b in pools.backgrounds:
        if b.real is not None:
            assert b.real.labels.dtype == np.uint8 and b.real.table.dtype == np.uint16
    wide = _widened(comp)
    for i in range(6):
        a = comp.sample(torch.Generator().manual_seed(i))
        w = wide.sample(torch.Generator().manual_seed(i))
        assert a.labels.dtype == torch.int64 and torch.equal(a.labels, w.labels)
        assert a.image.dtype == w.image.dtype == dtype and torch.equal(a.image, w.image)
    for i, s in enumerate(data):
        a = PasteCells(comp, p=1.0).apply(s, torch.Generator().manual_seed(10 + i))
        w = PasteCells(wide, p=1.0).apply(s, torch.Generator().manual_seed(10 + i))
        assert a.labels.dtype == torch.int64 and torch.equal(a.labels, w.labels) and torch.equal(a.image, w.image)


def test_a_custom_policy_still_receives_float32_images_and_int64_labels():
    seen = []

    def policy(image, labels, generator):
        seen.append((image.dtype, labels.dtype))
        return image, labels

    comp = CellCompositor(policy=policy, seed=1).fit(_data(torch.uint8), progress=False)
    comp.sample(torch.Generator().manual_seed(0))
    assert seen and set(seen) == {(torch.float32, torch.int64)}


def test_pools_of_many_cells_keep_ids_past_255():
    # A real image with 360 cells: its stored label map must widen beyond uint8 and keep ids.
    from iaaa.structures import AnnotatedImage

    lab = torch.zeros(84, 210, dtype=torch.int64)
    k = 0
    for y in range(1, 84, 7):
        for x in range(1, 210, 7):
            k += 1
            lab[y : y + 5, x : x + 5] = k
    img = torch.full((1, 84, 210), 40, dtype=torch.uint8)
    img[0, lab > 0] = 200
    comp = CellCompositor(CompositorConfig().replace(onto="image"), seed=0).fit([AnnotatedImage(img, lab, name="many")], progress=False)
    real = [b.real for b in comp.pools.backgrounds if b.real is not None]
    assert real[0].labels.dtype == np.int16 and int(real[0].labels.max()) == k
    out = comp.sample(torch.Generator().manual_seed(0))
    assert int(out.labels.max()) >= k and torch.equal(out.labels.unique()[1:], torch.arange(1, int(out.labels.max()) + 1))
