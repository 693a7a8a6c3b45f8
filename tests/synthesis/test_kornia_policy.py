"""A kornia.augmentation pipeline as a per-object policy: exact labels, generator-driven
randomness that leaves the global RNG alone, image dtype and channels kept."""

from __future__ import annotations

import warnings

import pytest
import torch

import kornia.augmentation as K

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


@pytest.mark.parametrize("first", [K.RandomRotation(degrees=90.0, p=1.0, resample="nearest"), K.RandomAffine(degrees=30.0, shear=10.0, p=1.0, resample="nearest")])
def test_elastic_after_affine_labels_follow_the_image_exactly(first):
    """Issue 21 class 7: with a non-affine op the labels used to follow the affine part only
    (IoU 0.01-0.07). The image here *is* the label map, warped by nearest throughout, so the
    returned labels must equal the warped image pixel for pixel."""
    pipe = _pipeline(first, K.RandomElasticTransform(kernel_size=(31, 31), sigma=(6.0, 6.0), alpha=(3.0, 3.0), p=1.0, resample="nearest"))
    pol = as_object_policy(pipe)
    assert pol.non_matrix_ops == ["RandomElasticTransform"]
    _, lab = _object()
    moved_any = False
    for s in range(6):
        out, moved = pol(lab.float()[None], lab, torch.Generator().manual_seed(s))
        assert torch.equal(out[0].round().long(), moved)
        moved_any |= not torch.equal(moved, lab)
    assert moved_any


def test_elastic_keeps_big_ids_and_background():
    pol = as_object_policy(_pipeline(K.RandomRotation(degrees=45.0, p=1.0), K.RandomElasticTransform(p=1.0)))
    img, lab = _object(big_ids=True)
    _, moved = pol(img, lab, torch.Generator().manual_seed(2))
    assert set(moved.unique().tolist()) <= set(lab.unique().tolist()) and len(moved.unique()) > 2
    full = torch.full_like(lab, 2**40)  # no background at all: padding must still come back as 0
    _, moved = as_object_policy(_pipeline(K.RandomRotation(degrees=(45.0, 45.0), p=1.0), K.RandomElasticTransform(p=1.0)))(img, full, torch.Generator().manual_seed(0))
    assert set(moved.unique().tolist()) == {0, 2**40}


@pytest.mark.parametrize("op", [K.RandomThinPlateSpline(p=1.0), K.RandomFisheye(torch.tensor([-0.3, 0.3]), torch.tensor([-0.3, 0.3]), torch.tensor([0.9, 1.0]), p=1.0)], ids=["tps", "fisheye"])
def test_op_without_mask_transform_is_refused_by_name(op):
    with pytest.raises(IaaaError, match=f"Kornia op {type(op).__name__} has no mask transform"):
        as_object_policy(_pipeline(K.RandomRotation(degrees=10.0, p=1.0), op))
