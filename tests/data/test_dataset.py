"""SynthesisDataset and MixedDataset: determinism per (seed, epoch, index), target format, loaders,
samplers, the real:synthetic mix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from iaaa.data.dataset import MixedDataset, RealDataset, SynthesisDataset, collate_fn
from iaaa.errors import IaaaError

ROOT = Path(__file__).resolve().parents[2]


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


class _MasksShared(Dataset):
    """Whether the detection target's masks were made in shared memory where they were made."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i][1]["masks"].is_shared()


def test_worker_targets_make_their_masks_in_shared_memory(compositor):
    # A worker sends a tensor through shared memory: masks made there are not copied again (at
    # 1024 px, 161 instances: 161 MB a target). The main process keeps ordinary memory.
    ds = _MasksShared(SynthesisDataset(compositor, 4, seed=2))
    assert list(DataLoader(ds, batch_size=None, num_workers=2)) == [True] * 4
    assert [ds[i] for i in range(4)] == [False] * 4


class _OwnSamples(Dataset):
    """A user's dataset that calls the compositor without a generator."""

    def __init__(self, compositor, n):
        self.compositor, self.n = compositor, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.compositor.sample().image


def test_own_generators_do_not_replay_across_workers_and_epochs(compositor, sim_small):
    # Without a generator per call, PasteCells and sample() draw from their own generator. A
    # DataLoader worker holds a copy pickled at the start of each epoch: unless reseeded per
    # worker, every epoch replayed the same pastes (4 of 4 items identical before the fix).
    from iaaa import PasteCells

    paste = RealDataset(sim_small, transforms=v2.Compose([PasteCells(compositor, p=1.0, n=2)]), target_format="label_map")
    for ds, collate in ((paste, collate_fn), (_OwnSamples(compositor, 4), None)):
        def epoch(loader):
            # label maps of the pasted samples, images of the compositor's own samples
            return [(b[1][0] if collate else b[0]).as_subclass(torch.Tensor).clone() for b in loader]

        def loader():
            return DataLoader(ds, batch_size=1, num_workers=2, collate_fn=collate, generator=torch.Generator().manual_seed(3))

        same = loader()
        first, second = epoch(same), epoch(same)
        assert not any(torch.equal(a, b) for a, b in zip(first, second))  # fresh each epoch
        assert not torch.equal(first[0], first[1])  # the two workers' first items differ in their draws too
        assert all(torch.equal(a, b) for a, b in zip(first, epoch(loader())))  # a seeded loader repeats the run
    # In the main process the stream is the seeded one, as before.
    a = PasteCells(compositor, p=1.0, n=2)(tv_tensors.Image(sim_small[0].image), tv_tensors.Mask(sim_small[0].labels))[1]
    b = PasteCells(compositor, p=1.0, n=2)(tv_tensors.Image(sim_small[0].image), tv_tensors.Mask(sim_small[0].labels))[1]
    assert torch.equal(a, b)


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_persistent_workers_follow_set_epoch_under_every_start_method(compositor, sim_small, context):
    # Persistent workers keep their copies of the datasets across epochs: before the epoch was
    # shared, every epoch replayed epoch 0's layout and samples there. Under "spawn" (the default
    # on macOS and Windows) and "forkserver" (Linux's from Python 3.14) the datasets travel
    # through torch's multiprocessing pickler, where a compositor's own torch.Generator failed
    # to load in every worker.
    import multiprocessing

    if context not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {context!r} start method on this platform")
    from iaaa import PasteCells

    real = RealDataset(sim_small, transforms=v2.Compose([PasteCells(compositor, p=1.0, n=2)]), target_format="label_map")
    syn = SynthesisDataset(compositor, 6, seed=5, target_format="label_map")
    mixed = MixedDataset(real, syn, ratio=1.0)
    loader = DataLoader(mixed, batch_size=len(mixed), num_workers=1, persistent_workers=True, collate_fn=collate_fn, multiprocessing_context=context)
    seen = []
    for epoch in (0, 1, 2):
        mixed.set_epoch(epoch)
        syn.set_epoch(3 * epoch)
        _, labels = next(iter(loader))
        for k, lab in enumerate(labels):
            synthetic, j = mixed.locate(k)
            if synthetic:
                assert torch.equal(lab, syn[j][1])  # epoch `epoch`'s sample, as in this process
                seen.append(lab)
            else:  # pasted in the worker: the real cells and more
                assert len(torch.unique(lab)) - 1 > sim_small[j].num_instances
    assert not torch.equal(seen[0], seen[len(seen) // 3])


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
        synthetic, k = mixed.locate(i)
        assert _same((image, target), (syn if synthetic else real)[k])
    with pytest.raises(IaaaError, match="needs 40 synthetic"):
        MixedDataset(real, syn, ratio=10)


class _Tagged(Dataset):
    """Items that say where they came from, so the mixing can be checked without images."""

    def __init__(self, tag: str, n: int) -> None:
        self.tag, self.n = tag, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> tuple[str, int]:
        if not 0 <= k < self.n:
            raise IndexError(k)
        return self.tag, k


def _epoch_items(mixed: MixedDataset, epoch: int) -> list[tuple[str, int]]:
    mixed.set_epoch(epoch)
    return [mixed[i] for i in range(len(mixed))]


def test_mixed_epochs_draw_fresh_synthetic_samples():
    """The issue-17 case: 16 real images, 1000 synthetic, ratio 1. Each epoch is 32 items, 16 of
    them synthetic; successive epochs use new synthetic indices and 63 epochs use all 1000."""
    mixed = MixedDataset(_Tagged("real", 16), _Tagged("syn", 1000), ratio=1.0, seed=3)
    seen: list[int] = []
    for epoch in range(63):
        items = _epoch_items(mixed, epoch)
        assert len(items) == 32
        assert sorted(k for t, k in items if t == "real") == list(range(16))
        syn = [k for t, k in items if t == "syn"]
        assert len(syn) == 16
        seen += syn
    # Epochs 0-61 lie inside the first pass (992 draws): no index twice; epoch 62 completes it.
    assert len(set(seen[:992])) == 992
    assert set(seen) == set(range(1000))


@settings(max_examples=60, deadline=None)
@given(
    n_real=st.integers(0, 12),
    n_syn_total=st.integers(1, 40),
    ratio=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.0]),
    seed=st.integers(0, 2**40),
)
def test_mixed_ratio_is_exact_and_every_synthetic_index_appears(n_real, n_syn_total, ratio, seed):
    n_syn = round(ratio * n_real)
    assume(n_syn <= n_syn_total)
    mixed = MixedDataset(_Tagged("real", n_real), _Tagged("syn", n_syn_total), ratio=ratio, seed=seed)
    assert len(mixed) == n_real + n_syn
    epochs = -(-n_syn_total // n_syn) if n_syn else 2
    counts = [0] * n_syn_total
    for epoch in range(epochs):
        items = _epoch_items(mixed, epoch)
        assert sorted(k for t, k in items if t == "real") == list(range(n_real))
        syn = [k for t, k in items if t == "syn"]
        assert len(syn) == n_syn
        for k in syn:
            counts[k] += 1
    if n_syn:
        # One pass over the synthetic dataset is complete, and no index is ahead by more than the
        # pass the last epoch reached into.
        assert min(counts) >= 1 and max(counts) <= 2


def test_mixed_mapping_depends_only_on_seed_epoch_index():
    def mapping(m: MixedDataset) -> list[tuple[bool, int]]:
        return [m.locate(i) for i in range(len(m))]

    torch.manual_seed(0)
    a = MixedDataset(_Tagged("real", 16), _Tagged("syn", 1000), ratio=1.0, seed=5)
    first = mapping(a)
    a.set_epoch(4)
    fourth = mapping(a)
    torch.manual_seed(123)  # the global RNG plays no part
    b = MixedDataset(_Tagged("real", 16), _Tagged("syn", 1000), ratio=1.0, seed=5, epoch=4)
    assert mapping(b) == fourth != first
    a.set_epoch(0)
    assert mapping(a) == first
    assert mapping(MixedDataset(_Tagged("real", 16), _Tagged("syn", 1000), ratio=1.0, seed=6, epoch=4)) != fourth
    # Another process (another hash seed, another global RNG) computes the same mapping.
    code = (
        "import json, torch; torch.manual_seed(99); from iaaa.data.dataset import MixedDataset; "
        "m = MixedDataset(list(range(16)), list(range(1000)), ratio=1.0, seed=5, epoch=4); "
        "print(json.dumps([m.locate(i) for i in range(len(m))]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "7", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert [tuple(x) for x in json.loads(out.stdout)] == fourth


def test_mixed_under_distributed_sampler_ranks_agree():
    """Each rank builds its own MixedDataset; with set_epoch on sampler and dataset alike the
    ranks share one epoch: together they cover its items, each real sample once."""
    for epoch in (0, 1, 5):
        seen = []
        for rank in range(2):
            mixed = MixedDataset(_Tagged("real", 7), _Tagged("syn", 50), ratio=1.0, seed=2)
            sampler = DistributedSampler(mixed, num_replicas=2, rank=rank, shuffle=True, seed=3, drop_last=False)
            sampler.set_epoch(epoch)
            mixed.set_epoch(epoch)
            seen += [mixed[i] for i in sampler]
        reference = _epoch_items(MixedDataset(_Tagged("real", 7), _Tagged("syn", 50), ratio=1.0, seed=2), epoch)
        assert set(seen) == set(reference) and len(seen) == 14  # 14 items split 7 + 7, no padding


def test_mixed_bad_arguments():
    real, syn = _Tagged("real", 4), _Tagged("syn", 10)
    with pytest.raises(IaaaError, match="ratio must be >= 0"):
        MixedDataset(real, syn, ratio=-0.5)
    with pytest.raises(IaaaError, match="ratio must be >= 0"):
        MixedDataset(real, syn, ratio=float("nan"))
    mixed = MixedDataset(real, syn)
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(IaaaError, match="epoch must be an int >= 0"):
            mixed.set_epoch(bad)
    assert mixed.epoch == 0
    mixed.set_epoch(np.int64(3))
    assert mixed.epoch == 3 and isinstance(mixed.epoch, int)


def test_bad_arguments(compositor):
    with pytest.raises(IaaaError, match=r"^compositor: expected a sampler .* got object$"):
        SynthesisDataset(object(), 3)
    with pytest.raises(ValueError, match="target_format"):
        SynthesisDataset(compositor, 3, target_format="coco")
    with pytest.raises(IndexError):
        SynthesisDataset(compositor, 3)[3]
    ds = SynthesisDataset(compositor, 3, seed=0)
    # NumPy and 0-d tensor indices (custom samplers) are the same sample as the int.
    assert _same(ds[np.int64(2)], ds[2]) and _same(ds[torch.tensor(2)], ds[2])
    for kw, needle in (({"seed": None}, "seed must be an integer"), ({"length": 2.5}, "length must be an integer"),
                       ({"epoch": -1}, "epoch must be an int >= 0"), ({"epoch": True}, "epoch must be an int >= 0")):
        with pytest.raises(IaaaError, match=needle):
            SynthesisDataset(compositor, **{"length": 3, **kw})


def test_paste_cells_inside_a_dataset_pipeline(compositor, sim_small):
    # PasteCells in a dataset's transforms adds instances the sample did not have; with one
    # category they take its class, and the targets stay exact.
    from iaaa import AnnotatedImage, PasteCells

    tf = v2.Compose([PasteCells(compositor, p=1.0, n=3), v2.RandomHorizontalFlip(p=1.0)])
    for i, (image, target) in enumerate(RealDataset(sim_small, transforms=tf)):
        lm = target["label_map"].as_subclass(torch.Tensor)
        ids = torch.unique(lm[lm > 0])
        assert target["masks"].shape[0] == target["labels"].numel() == ids.numel() > int(sim_small[i].class_ids.numel())
        assert torch.equal(target["masks"].bool(), lm.unsqueeze(0) == ids.view(-1, 1, 1))
        assert torch.equal(target["boxes"].as_subclass(torch.Tensor), masks_to_boxes(target["masks"]).float())
        assert bool((target["labels"] == 1).all())
    # Two categories: the pasted cells' class is unknown on an (Image, Mask) pair: refused.
    s = sim_small[0]
    two = AnnotatedImage(s.image, s.labels, torch.arange(s.class_ids.numel()) % 2 + 1, "two", categories={1: "a", 2: "b"})
    with pytest.raises(IaaaError, match=r"^two: a transform added label values .* 2 classes"):
        RealDataset([two], transforms=tf)[0]


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
    """A synthetic sample's target does not depend on its meta (the compositor's record of the
    windows it pasted into): the same as the target of the bare image and label map."""
    from iaaa.data.dataset import make_target
    from iaaa.structures import AnnotatedImage, PastedWindows

    raw = SynthesisDataset(compositor, 12, seed=5, target_format="sample")
    for i in range(12):
        s = raw[i]
        assert isinstance(s.meta.get("windows"), PastedWindows) and s.meta["windows"].ids.numel() == s.class_ids.numel()
        fast = make_target(s)[1]
        plain = AnnotatedImage(s.image, s.labels, s.class_ids)  # no meta: general path
        slow = make_target(plain)[1]
        for k in ("boxes", "labels", "masks", "label_map"):
            assert torch.equal(fast[k], slow[k]), k


class _TupleSampler:
    """Not a compositor: anything with sample(generator) is a Sampler."""

    def sample(self, generator=None):
        labels = torch.zeros(8, 8, dtype=torch.int64)
        labels[2:4, 2:5] = 1
        return torch.rand(1, 8, 8, generator=generator), labels


def test_sampler_protocol():
    from iaaa.sampler import Sampler, check_sampler, is_sampler

    s = _TupleSampler()
    assert isinstance(s, Sampler) and is_sampler(s) and check_sampler(s) is s
    assert not is_sampler(object()) and not is_sampler(type("NotCallable", (), {"sample": 3})())
    with pytest.raises(IaaaError, match=r"^sources\[1\]: expected a sampler .* got int$"):
        check_sampler(7, "sources[1]")
    ds = SynthesisDataset(s, 2, seed=3, target_format="sample")
    assert torch.equal(ds[1].image, SynthesisDataset(s, 2, seed=3, target_format="sample")[1].image)
    assert ds[0].num_instances == 1
