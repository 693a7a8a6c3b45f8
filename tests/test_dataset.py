"""SynthesisDataset: determinism per (seed, epoch, index), target format, loaders, samplers."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from iaaa.data.dataset import MixedDataset, RealDataset, SynthesisDataset, collate_fn


@pytest.fixture(scope="module")
def compositor():
    from iaaa.synthesis import CellCompositor, CompositorConfig
    from iaaa.datasets import simulate_cells

    real = simulate_cells(4, seed=2, size=(80, 96), cells=(6, 12), radius=(5.0, 9.0))
    # Cleaned backgrounds: onto="image" may return a real image unchanged when it is already
    # as dense as its group allows, and these tests need every sample to differ.
    return CellCompositor(CompositorConfig().replace(onto="background"), seed=0).fit(real)


def _same(a, b):
    (ia, ta), (ib, tb) = a, b
    return torch.equal(ia, ib) and all(torch.equal(ta[k], tb[k]) for k in ("boxes", "labels", "masks", "label_map"))


def test_same_index_same_sample_across_instances(compositor):
    a = SynthesisDataset(compositor, 6, seed=11)
    b = SynthesisDataset(compositor, 6, seed=11)
    for i in (0, 3, 5):
        assert _same(a[i], b[i])
    assert _same(a[2], a[2])
    assert not torch.equal(a[0][0], a[1][0])
    assert not torch.equal(SynthesisDataset(compositor, 6, seed=12)[0][0], a[0][0])


def test_epochs_differ_and_are_reproducible(compositor):
    ds = SynthesisDataset(compositor, 3, seed=1)
    first = ds[0]
    ds.set_epoch(1)
    second = ds[0]
    assert not torch.equal(first[0], second[0])
    ds.set_epoch(0)
    assert _same(ds[0], first)


def test_workers_do_not_change_samples(compositor):
    ds = SynthesisDataset(compositor, 6, seed=4)
    single = list(DataLoader(ds, batch_size=2, num_workers=0, collate_fn=collate_fn))
    multi = list(DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_fn))
    for (ia, ta), (ib, tb) in zip(single, multi):
        for x, y, s, t in zip(ia, ib, ta, tb):
            assert _same((x, s), (y, t))


def test_distributed_ranks_cover_every_index_once(compositor):
    ds = SynthesisDataset(compositor, 7, seed=0)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3, drop_last=False)
        seen.append(list(sampler))
    union = seen[0] + seen[1]
    # DistributedSampler pads 7 to 8 by repeating one index; every real index appears.
    assert set(union) == set(range(7)) and len(union) == 8
    for i in set(seen[0]) & set(seen[1]):
        assert _same(ds[i], ds[i])


def test_target_format(compositor):
    ds = SynthesisDataset(compositor, 3, seed=0)
    image, target = ds[1]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32 and image.shape[0] == 1
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    n = target["labels"].numel()
    assert n > 0 and target["labels"].dtype == torch.int64
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
    assert isinstance(target["masks"], tv_tensors.Mask) and target["masks"].shape == (n, *image.shape[-2:])
    assert torch.equal(target["boxes"].as_subclass(torch.Tensor), masks_to_boxes(target["masks"]).float())
    lm = target["label_map"].as_subclass(torch.Tensor)
    ids = torch.unique(lm)
    ids = ids[ids > 0]
    assert torch.equal(target["masks"].bool(), lm.unsqueeze(0) == ids.view(-1, 1, 1))
    img2, lm2 = SynthesisDataset(compositor, 3, seed=0, target_format="label_map")[1]
    assert torch.equal(img2, image) and torch.equal(lm2, target["label_map"])
    raw = SynthesisDataset(compositor, 3, seed=0, target_format="sample")[1]
    assert raw.image.dtype == torch.uint8 and torch.equal(raw.labels, lm)


def test_transforms_keep_targets_exact(compositor):
    tf = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.RandomRotation(30)])
    torch.manual_seed(0)  # torchvision's own transforms use the global RNG
    image, target = SynthesisDataset(compositor, 2, seed=0, transforms=tf)[0]
    lm = target["label_map"].as_subclass(torch.Tensor)
    assert torch.equal(target["boxes"].as_subclass(torch.Tensor), masks_to_boxes(target["masks"]).float()) if target["masks"].shape[0] else True
    assert target["labels"].numel() == target["masks"].shape[0] == torch.unique(lm[lm > 0]).numel()


def test_real_and_mixed(compositor, sim_small):
    real = RealDataset(sim_small)
    syn = SynthesisDataset(compositor, 10, seed=0)
    mixed = MixedDataset(real, syn, ratio=1.0, seed=0)
    assert len(mixed) == 8 and sum(mixed.is_synthetic(i) for i in range(8)) == 4
    for i in range(len(mixed)):
        image, target = mixed[i]
        assert image.dtype == torch.float32 and target["masks"].shape[0] == target["labels"].numel()
    with pytest.raises(ValueError, match="needs 40 synthetic"):
        MixedDataset(real, syn, ratio=10)


def test_bad_arguments(compositor):
    with pytest.raises(TypeError, match="sample"):
        SynthesisDataset(object(), 3)
    with pytest.raises(ValueError, match="target_format"):
        SynthesisDataset(compositor, 3, target_format="coco")
    with pytest.raises(IndexError):
        SynthesisDataset(compositor, 3)[3]


def test_maskrcnn_training_step_runs(compositor):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, min_size=96, max_size=96)
    model.train()
    images, targets = collate_fn([SynthesisDataset(compositor, 2, seed=0)[i] for i in range(2)])
    images = [im.expand(3, -1, -1) for im in images]
    targets = [{k: t[k] for k in ("boxes", "labels", "masks")} for t in targets]
    losses = model(images, targets)
    assert set(losses) >= {"loss_classifier", "loss_box_reg", "loss_mask"}
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()


def test_pasted_windows_give_the_same_targets(compositor):
    """The fast path (masks searched inside the compositor's pasted boxes) equals the general one."""
    from iaaa.data.dataset import _pasted_windows, make_target
    from iaaa.structures import AnnotatedImage

    raw = SynthesisDataset(compositor, 12, seed=5, target_format="sample")
    for i in range(12):
        s = raw[i]
        assert _pasted_windows(s) is not None
        fast = make_target(s)[1]
        plain = AnnotatedImage(s.image, s.labels, s.class_ids)  # no meta: general path
        slow = make_target(plain)[1]
        for k in ("boxes", "labels", "masks", "label_map"):
            assert torch.equal(fast[k], slow[k]), k
