"""Fitting in worker processes gives the pools of a serial fit, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iaaa.errors import IaaaError
from iaaa.datasets import simulate_cells
from iaaa.structures import AnnotatedImage
from iaaa.synthesis import CellCompositor, CompositorConfig
from iaaa.synthesis.fitting import map_images
from iaaa.synthesis.halo import grow_masks
from iaaa.synthesis.image_groups import halo_width


def _same_pools(a: CellCompositor, b: CellCompositor) -> None:
    pa, pb = a.pools, b.pools
    assert len(pa.objects) == len(pb.objects) > 0
    for oa, ob in zip(pa.objects, pb.objects):
        assert torch.equal(oa.image, ob.image) and torch.equal(oa.labels, ob.labels)
        assert (oa.kind, oa.source, tuple(oa.box), oa.num_cells) == (ob.kind, ob.source, tuple(ob.box), ob.num_cells)
    assert len(pa.backgrounds) == len(pb.backgrounds) > 0
    for ba, bb in zip(pa.backgrounds, pb.backgrounds):
        assert torch.equal(ba.image, bb.image) and np.array_equal(ba.level, bb.level)
        assert (ba.name, ba.group, ba.cells) == (bb.name, bb.group, bb.cells)
        assert (ba.real is None) == (bb.real is None)
        if ba.real is not None:
            assert np.array_equal(ba.real.labels, bb.real.labels) and np.array_equal(ba.real.boxes, bb.real.boxes)
    sa, sb = pa.stats, pb.stats
    assert sa.cells_per_image == sb.cells_per_image and sa.contacts.to_dict() == sb.contacts.to_dict()
    assert (sa.n_sco, sa.n_mco, sa.match_intensity) == (sb.n_sco, sb.n_mco, sb.match_intensity)
    for i in range(3):
        x, y = a.sample(torch.Generator().manual_seed(i)), b.sample(torch.Generator().manual_seed(i))
        assert torch.equal(x.image, y.image) and torch.equal(x.labels, y.labels)


@pytest.mark.parametrize("onto", ["image", "background"])
def test_fit_with_workers_gives_the_serial_pools(onto):
    data = simulate_cells(5, seed=3, size=(160, 192), cells=(10, 20))
    cfg = CompositorConfig().replace(onto=onto)
    serial = CellCompositor(cfg, seed=7).fit(data, progress=False)
    parallel = CellCompositor(cfg, seed=7).fit(data, progress=False, workers=2)
    _same_pools(serial, parallel)


def test_fit_with_workers_on_mixed_sizes_and_the_paper_rules():
    # Two image sizes (two groups, each with its own halo) and the paper's box pipeline.
    data = simulate_cells(3, seed=1, size=(128, 128), cells=(6, 12)) + simulate_cells(3, seed=2, size=(176, 144), cells=(8, 16))
    for cfg in (CompositorConfig(), CompositorConfig.paper()):
        _same_pools(CellCompositor(cfg).fit(data, progress=False), CellCompositor(cfg).fit(data, progress=False, workers=2))


def test_fit_rejects_bad_workers():
    data = simulate_cells(2, seed=0, size=(96, 96), cells=(4, 6))
    for bad in (-1, 1.5, True):
        with pytest.raises(IaaaError, match="workers"):
            CellCompositor().fit(data, progress=False, workers=bad)


def _square(x: int, y: int) -> int:
    return x * x + y


def test_map_images_keeps_order_and_reports_each_result():
    seen = []
    args = [(i, 100) for i in range(7)]
    for workers in (0, 2):
        seen.clear()
        assert map_images(_square, args, workers, progress=seen.append) == [i * i + 100 for i in range(7)]
        assert seen == [i * i + 100 for i in range(7)]


def _tensors(i: int) -> dict:
    base = torch.arange(64, dtype=torch.int32).reshape(8, 8) + i
    return {
        "u16": (torch.arange(6, dtype=torch.int32) * 10_000).to(torch.uint16),
        "view": base[2:5, 1:7:2],  # a strided view of a larger storage
        "same": [base, base],  # one tensor twice
        "bf16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),  # no NumPy dtype: the usual pickling
        "array": np.full((3, 2), i, dtype=np.float16),
    }


def test_map_images_sends_results_by_value():
    # Worker results cross as values, not as shared-memory storages (one socket handshake per
    # tensor made receiving them the serial part of fit(workers=...)): same dtypes, shapes and
    # values, nothing left in shared memory, arrays writable.
    serial = map_images(_tensors, [(i,) for i in range(3)], 0)
    parallel = map_images(_tensors, [(i,) for i in range(3)], 2)
    for a, b in zip(serial, parallel):
        for key in ("u16", "view", "bf16"):
            assert b[key].dtype == a[key].dtype and torch.equal(b[key], a[key]) and not b[key].is_shared()
        assert b["view"].shape == (3, 3) and b["view"].untyped_storage().nbytes() == 9 * 4  # its own elements only
        assert b["same"][0] is b["same"][1] and torch.equal(b["same"][0], a["same"][0]) and not b["same"][0].is_shared()
        assert np.array_equal(b["array"], a["array"]) and b["array"].flags.writeable
        b["u16"][0] = 1  # writable, as a serial result is


def test_halo_width_needs_cells_and_background_and_keeps_the_table_on_request():
    img = torch.zeros(1, 32, 32, dtype=torch.uint8)
    assert halo_width(AnnotatedImage(img, torch.zeros(32, 32, dtype=torch.int64)), True) == (None, None)
    assert halo_width(AnnotatedImage(img, torch.ones(32, 32, dtype=torch.int64)), True) == (None, None)
    lab = torch.zeros(32, 32, dtype=torch.int64)
    lab[10:20, 10:20] = 1
    img[:, 8:22, 8:22] = 60
    img[:, 10:20, 10:20] = 200
    width, table = halo_width(AnnotatedImage(img, lab))
    assert isinstance(width, int) and table is None
    width2, table = halo_width(AnnotatedImage(img, lab), keep_nearest=True)
    assert width2 == width and torch.equal(table.grow(2), grow_masks(lab, 2))


def test_nearest_plan_keeps_tables_within_the_budget_in_order(monkeypatch):
    import iaaa.synthesis.image_groups as ig

    data = simulate_cells(4, seed=5, size=(64, 64), cells=(3, 5))
    empty = AnnotatedImage(data[0].image, torch.zeros(64, 64, dtype=torch.int64), name="empty")
    samples = [data[0], empty, data[1], data[2], data[3]]
    assert ig.nearest_plan(samples) == [True, False, True, True, True]  # no cell: nothing to keep
    # Room for two tables: the first two images that have one, then none.
    monkeypatch.setattr(ig, "_NEAREST_BUDGET", 2 * ig.NearestCells.nbytes_for(data[0].labels))
    assert ig.nearest_plan(samples) == [True, False, True, False, False]


def test_survey_takes_measured_widths_and_checks_their_count():
    from iaaa.synthesis.image_groups import survey

    data = simulate_cells(3, seed=4, size=(96, 96), cells=(5, 8))
    serial = survey(data, "auto", "auto")
    measured = [halo_width(s) for s in data]
    assert survey(data, "auto", "auto", measured=measured) == serial
    with pytest.raises(IaaaError, match="measured"):
        survey(data, "auto", "auto", measured=measured[:2])
