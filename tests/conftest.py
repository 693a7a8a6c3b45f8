"""Shared fixtures: paths to the real data beside the project and small simulated samples."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DSB_FLUO = SHARED_DATA / "dsb2018_fluo"


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module on one torch thread (module-scoped, so module fixtures such as a
    fitted compositor run under it too), restored afterwards. On a small shared machine two OpenMP
    threads fighting other processes for the cores run several times slower than one."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def dsb_fluo_dir() -> Path:
    """The 30 real DSB 2018 fluorescence images (../shared/data/dsb2018_fluo), or skip."""
    if not (DSB_FLUO / "images").is_dir() or not (DSB_FLUO / "masks").is_dir():
        pytest.skip(f"real data not found at {DSB_FLUO} (it sits in ../shared beside the project checkout)")
    return DSB_FLUO


@pytest.fixture(scope="session")
def dsb_fluo(dsb_fluo_dir):
    from iaaa.data import read_label_folder

    return read_label_folder(dsb_fluo_dir / "images", dsb_fluo_dir / "masks")


@pytest.fixture(scope="session")
def sim_small():
    from iaaa.datasets import simulate_cells

    return simulate_cells(4, seed=1, size=(96, 128))
