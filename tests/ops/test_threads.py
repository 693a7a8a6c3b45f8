"""The one-thread guard of the hot paths (iaaa.threads): small work runs on one torch thread,
large work keeps torch's setting, and the setting is always restored."""

from __future__ import annotations

import pytest
import torch

import iaaa.threads as th
from iaaa.ops import apply_op
from iaaa.ops import functional as F
from iaaa.ops import geometric, photometric


@pytest.fixture
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def test_serial_runs_small_work_on_one_thread_and_restores(two_threads):
    with th.serial(10):
        assert torch.get_num_threads() == 1
        with th.serial(10):  # nested: still one, and the outer restore is unaffected
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with th.serial(th.PARALLEL_MIN_NUMEL):
        assert torch.get_num_threads() == 2
    with th.serial():
        assert torch.get_num_threads() == 1
    with th.serial(10, limit=5):
        assert torch.get_num_threads() == 2


def test_serial_restores_after_an_exception(two_threads):
    with pytest.raises(RuntimeError):
        with th.serial(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_serial_kernel_measures_the_first_tensor(two_threads):
    probe = th.serial_kernel(lambda scale, x: torch.get_num_threads())
    assert probe(2.0, torch.zeros(4)) == 1
    assert probe(2.0, torch.zeros(1)) == 1
    old = th.PARALLEL_MIN_NUMEL
    try:
        th.PARALLEL_MIN_NUMEL = 3
        assert probe(2.0, torch.zeros(4)) == 2
    finally:
        th.PARALLEL_MIN_NUMEL = old


def test_ops_kernels_run_single_threaded_inside(two_threads, monkeypatch):
    seen = []
    real = geometric.F.grid_sample

    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        return real(*a, **k)

    monkeypatch.setattr(geometric.F, "grid_sample", spy)
    img = torch.rand(2, 1, 16, 16)
    F.rotate(img, None, 30.0)
    apply_op("Rotate", img, None, 0.3, torch.Generator().manual_seed(0))  # 54 degrees: bilinear
    assert seen == [1, 1]
    assert torch.get_num_threads() == 2
    # Every public photometric kernel carries the guard.
    for name in photometric.__all__:
        assert hasattr(getattr(photometric, name), "__wrapped__"), name


def test_v2_transform_restores_threads(two_threads):
    from iaaa.ops import Brightness

    out = Brightness(magnitude=0.5, generator=torch.Generator().manual_seed(0))(torch.zeros(1, 8, 8, dtype=torch.uint8))
    assert out.shape == (1, 8, 8) and torch.get_num_threads() == 2
