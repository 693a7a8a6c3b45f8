"""A kornia.augmentation pipeline as a per-object policy: exact labels, generator-driven
randomness that leaves the global RNG alone, image dtype and channels kept."""

from __future__ import annotations

import warnings

import pytest
import torch

K = pytest.importorskip("kornia.augmentation")

from iaaa.errors import IaaaError  # noqa: E402
from iaaa.synthesis import CellCompositor, CompositorConfig, KorniaPolicy, as_object_policy  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]


def _object(channels: int = 1, big_ids: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(channels, 30, 40, generator=g)
    lab = torch.zeros(30, 40, dtype=torch.int64)
    lab[5:15, 5:20] = 1
    lab[16:25, 22:35] = 2
    lab[3:6, 30:38] = 3
    if big_ids:  # not representable in float32: a float round trip would corrupt them
        lab = torch.where(lab > 0, lab + 2**25, lab)
    return img, lab


def _pipeline(*ops):
    return K.AugmentationSequential(*ops, data_keys=["input", "mask"])


GEOMETRIC = (K.RandomRotation(degrees=180.0, p=1.0), K.RandomHorizontalFlip(), K.RandomAffine(degrees=0.0, scale=(0.8, 1.2), translate=(0.1, 0.1), p=1.0))


@pytest.mark.parametrize("channels", [1, 3])
def test_labels_exact_and_image_kept(channels):
    pol = as_object_policy(_pipeline(*GEOMETRIC, K.ColorJitter(0.2, 0.2, p=1.0)))
    assert isinstance(pol, KorniaPolicy)
    img, lab = _object(channels)
    for s in range(6):
        out, moved = pol(img, lab, torch.Generator().manual_seed(s))
        assert out.dtype == img.dtype and out.shape[0] == channels and tuple(out.shape[-2:]) == tuple(moved.shape)
        assert moved.dtype == torch.int64
        assert set(moved.unique().tolist()) <= set(lab.unique().tolist())


def test_big_ids_survive():
    pol = as_object_policy(_pipeline(*GEOMETRIC))
    img, lab = _object(big_ids=True)
    _, moved = pol(img, lab, torch.Generator().manual_seed(4))
    assert set(moved.unique().tolist()) <= set(lab.unique().tolist())
    assert len(moved.unique()) > 1


def test_moved_mask_is_the_nearest_resampled_original():
    """One geometric op: the label map equals Kornia's own nearest resampling of the mask under
    the same parameters (an independent implementation)."""
    pipe = _pipeline(K.RandomRotation(degrees=180.0, p=1.0), K.RandomAffine(degrees=0.0, scale=(0.7, 1.3), p=0.0))
    pol = as_object_policy(pipe)
    img, lab = _object()
    for s in range(10):
        g = torch.Generator().manual_seed(s)
        seed = int(torch.randint(0, 2**62, (), generator=torch.Generator().manual_seed(s)))
        out, moved = pol(img, lab, g)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ref_img, ref_mask = pipe(img[None], lab.float()[None, None])
        assert torch.equal(out, ref_img[0])
        assert torch.equal(moved, ref_mask[0, 0].round().long())


def test_randomness_comes_from_the_generator_only():
    pol = as_object_policy(_pipeline(*GEOMETRIC, K.ColorJitter(0.2, 0.2, p=1.0)))
    img, lab = _object()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = pol(img, lab, torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left untouched
    torch.manual_seed(999)  # a different global state does not matter
    b = pol(img, lab, torch.Generator().manual_seed(7))
    c = pol(img, lab, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_compositor_takes_a_kornia_pipeline(sim_small):
    comp = CellCompositor(CompositorConfig().replace(keep_border=True), policy=_pipeline(*GEOMETRIC), seed=0).fit(sim_small)
    x = comp.sample(torch.Generator().manual_seed(1))
    y = comp.sample(torch.Generator().manual_seed(1))
    assert torch.equal(x.image, y.image) and torch.equal(x.labels, y.labels)
    n = int(x.labels.max())
    assert set(x.labels.unique().tolist()) == set(range(n + 1)) and x.class_ids.numel() == n


def test_pipeline_needs_input_and_mask_keys():
    with pytest.raises(IaaaError, match="data_keys"):
        as_object_policy(K.AugmentationSequential(K.RandomHorizontalFlip(), data_keys=["input"]))


def test_non_affine_pipeline_uses_nearest_mask_path():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pol = as_object_policy(_pipeline(K.RandomElasticTransform(p=1.0)))
        img, lab = _object()
        _, moved = pol(img, lab, torch.Generator().manual_seed(0))
    assert set(moved.unique().tolist()) <= set(lab.unique().tolist())
