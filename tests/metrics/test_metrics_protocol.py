"""The three-level protocol (SCO crops, MCO crops, image tiles) and its report."""

from __future__ import annotations

import json
import math

import pytest
import torch

from iaaa.metrics import FidelityReport, evaluate_fidelity, image_tiles, level_images
from iaaa.metrics.protocols import resolve_value_range
from iaaa.structures import AnnotatedImage, CellObject


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _object(kind: str, seed: int, brightness: float = 0.8, hard: bool = False) -> CellObject:
    """A hand-made crop: one disc (SCO) or two touching discs (MCO) on a dark background."""
    g = _gen(seed)
    h, w = (int(v) for v in torch.randint(14, 30, (2,), generator=g))
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    labels = torch.zeros(h, w, dtype=torch.int64)
    centres = [(h / 2, w / 2)] if kind == "sco" else [(h / 2, w / 3), (h / 2, 2 * w / 3)]
    r = min(h, w) / 3
    for k, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = k
    d = torch.sqrt((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / r
    inside = (labels > 0).float()
    body = inside if hard else torch.sigmoid((1.0 - d) * 6) * 0.6 + 0.4 * inside
    img = 0.05 + torch.rand(h, w, generator=g) * 0.05 + brightness * body
    image = (img.clamp(0, 1) * 255).round().to(torch.uint8)[None]
    n = int(labels.max())
    return CellObject(image, labels, torch.ones(n, dtype=torch.int64), kind, source=f"s{seed}")


def _sample(seed: int, size=(96, 160)) -> AnnotatedImage:
    g = _gen(seed)
    img = (torch.rand(1, *size, generator=g) * 60).to(torch.uint8)
    labels = torch.zeros(size, dtype=torch.int64)
    labels[10:20, 10:20] = 1
    return AnnotatedImage(img, labels, name=f"img{seed}")


def test_image_tiles_grid_and_small_images():
    img = torch.arange(3 * 256 * 300, dtype=torch.int32).reshape(3, 256, 300).to(torch.float32)
    tiles = image_tiles(img, 128)
    assert len(tiles) == 4  # 2 x 2; the 44-px right remainder is dropped
    assert torch.equal(tiles[1], img[:, 0:128, 128:256]) and torch.equal(tiles[2], img[:, 128:256, 0:128])
    small = torch.randint(0, 65535, (1, 60, 200), generator=_gen(0), dtype=torch.int32).to(torch.uint16)
    (one,) = image_tiles(small, 128)
    assert one.shape == (1, 128, 128) and one.dtype == torch.uint16  # kept in its own units


def test_level_images_uses_given_objects_and_rejects_unknown_levels():
    objs = [_object("sco", 0), _object("mco", 1), _object("sco", 2)]
    samples = [_sample(0), _sample(1)]
    assert len(level_images(samples, "sco", objects=objs)) == 2
    assert len(level_images(samples, "mco", objects=objs)) == 1
    assert len(level_images(samples, "image")) == 2  # 96 x 160 -> no full 128 tile -> one fitted tile each
    assert len(level_images(samples, "image", tile=32)) == 2 * 3 * 5
    assert level_images(samples, "image", tile=None)[0].shape == (1, 96, 160)
    with pytest.raises(ValueError, match="level: expected one of"):
        level_images(samples, "cells")


def test_protocol_table_identical_vs_shifted_objects():
    real_objs = [_object("sco", i) for i in range(24)] + [_object("mco", 100 + i) for i in range(12)]
    same = [CellObject(o.image.clone(), o.labels.clone(), o.class_ids, o.kind) for o in real_objs]
    hard = [_object(o.kind, 1000 + i, brightness=0.5, hard=True) for i, o in enumerate(real_objs)]
    real = [_sample(i) for i in range(6)]
    kw = dict(levels=("sco", "mco", "image"), metrics=("kid", "swd", "fid"), num_subsets=50, seed=3)
    ident = evaluate_fidelity(real, real, real_objects=real_objs, synthetic_objects=same, **kw)
    shifted = evaluate_fidelity(real, real, real_objects=real_objs, synthetic_objects=hard, **kw)
    assert [r.level for r in ident.levels] == ["sco", "mco", "image"]
    assert ident["sco"].n_real == 24 and ident["mco"].n_synthetic == 12 and ident["image"].n_real == 6
    for lv in ("sco", "mco"):
        assert ident[lv].swd.mean == 0.0 and ident[lv].fid == pytest.approx(0.0, abs=1e-6)
        # Identical sets: subsets are drawn independently, so KID scatters around 0.
        assert abs(ident[lv].kid.mean) < 3 * ident[lv].kid.std + 1e-9
        assert shifted[lv].kid.mean > ident[lv].kid.mean + 3 * shifted[lv].kid.std / math.sqrt(50)
        assert shifted[lv].swd.mean > 0.1 and shifted[lv].fid > 1.0
    assert ident["sco"].kid.subset_size == 12 and ident["mco"].kid.subset_size == 6
    text = shifted.table()
    assert text.splitlines()[0].startswith("| level") and "KID (mean ± std)" in text and "±" in text.splitlines()[2]
    doc = json.loads(json.dumps(shifted.to_dict()))
    assert doc["levels"][0]["kid"]["subset_size"] == 12 and doc["settings"]["seed"] == 3


def test_level_results_do_not_depend_on_other_levels_and_are_reproducible():
    real_objs = [_object("sco", i) for i in range(10)]
    fake_objs = [_object("sco", 50 + i, brightness=0.6) for i in range(9)]
    real, fake = [_sample(i) for i in range(4)], [_sample(10 + i) for i in range(4)]
    both = evaluate_fidelity(real, fake, levels=("sco", "image"), real_objects=real_objs, synthetic_objects=fake_objs, num_subsets=20)
    alone = evaluate_fidelity(real, fake, levels=("sco",), real_objects=real_objs, synthetic_objects=fake_objs, num_subsets=20)
    assert both["sco"].kid.values == alone["sco"].kid.values and both["sco"].swd == alone["sco"].swd
    again = evaluate_fidelity(real, fake, levels=("sco", "image"), real_objects=real_objs, synthetic_objects=fake_objs, num_subsets=20)
    assert again.to_dict() == both.to_dict()


def test_too_few_samples_is_a_note_not_a_crash():
    real_objs = [_object("sco", i) for i in range(5)] + [_object("mco", 9)]
    rep = evaluate_fidelity([_sample(0)], [_sample(1)], levels=("mco", "sco"), real_objects=real_objs, synthetic_objects=real_objs, metrics=("kid", "fid", "fid_inf"), num_subsets=5)
    assert rep["mco"].kid is None and "need at least 2" in rep["mco"].note
    assert rep["sco"].kid is not None and rep["sco"].fid is not None and rep["sco"].fid_inf is None
    assert "rank-deficient covariance" in rep["sco"].note and "FID∞ skipped" in rep["sco"].note
    assert "mco: skipped" in rep.table()
    with pytest.raises(KeyError, match="level 'image' not in report"):
        rep["image"]
    with pytest.raises(ValueError, match="unknown metric 'is'"):
        evaluate_fidelity([_sample(0)], [_sample(1)], metrics=("is",))
    with pytest.raises(ValueError, match="need images in both sets"):
        evaluate_fidelity([], [_sample(1)])


def test_value_range_real_uses_real_percentiles():
    imgs = [torch.arange(0, 4096, dtype=torch.int32).reshape(1, 64, 64).to(torch.uint16)]
    lo, hi = resolve_value_range(imgs, "real")
    assert lo[0] == pytest.approx(4.095, abs=0.01) and hi[0] == pytest.approx(4090.9, abs=0.1)
    assert resolve_value_range(imgs, None) is None and resolve_value_range(imgs, (0, 4095)) == (0, 4095)
    with pytest.raises(ValueError, match="value_range"):
        resolve_value_range(imgs, "auto")
    # A 12-bit set compared with itself scaled to 16 bits: identical after each side's own mapping
    # is impossible with one shared map, so the shift shows up, which is the point.
    fake = [(i.to(torch.int32) * 16).to(torch.uint16) for i in imgs * 3]
    rep = evaluate_fidelity(imgs * 3, fake, levels=("image",), tile=32, metrics=("swd",), value_range="real")
    assert rep["image"].swd.mean > 0.5


def test_bare_image_tensors_work_for_the_image_level_only():
    imgs = [torch.randint(0, 255, (1, 128, 128), generator=_gen(i), dtype=torch.int32).to(torch.uint8) for i in range(4)]
    rep = evaluate_fidelity(imgs, imgs, levels=("image",), metrics=("swd", "kid"), num_subsets=10)
    assert rep["image"].swd.mean == 0.0 and rep["image"].n_real == 4
    with pytest.raises(ValueError, match="bare image has no instance labels"):
        evaluate_fidelity(imgs, imgs, levels=("sco",))


def test_real_dsb_blur_is_detected_against_the_held_out_half(dsb_fluo):
    """On the real fluorescence data, blurring the held-out half moves it away from the other
    half: SCO-level KID and the finest-level SWD at both levels rise well above the real floor.

    (Brightness is deliberately left alone: the two halves of this small, mixed-lab set already
    differ in brightness more than a mild dimming would, see docs/metrics.md.)"""
    a, b = dsb_fluo[0::2], dsb_fluo[1::2]
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k2 = (torch.outer(k, k) / 256).view(1, 1, 5, 5)

    def blur(s: AnnotatedImage) -> AnnotatedImage:
        x = s.image.float()[None]
        for _ in range(2):
            x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect"), k2)
        return AnnotatedImage(x[0].round().to(torch.uint8), s.labels, name=s.name)

    kw = dict(levels=("sco", "image"), metrics=("kid", "swd"), num_subsets=40, max_samples=100, seed=0)
    floor = evaluate_fidelity(a, b, **kw)
    worse = evaluate_fidelity(a, [blur(s) for s in b], **kw)
    assert isinstance(floor, FidelityReport) and floor["sco"].n_real == 100
    assert worse["sco"].kid.mean > floor["sco"].kid.mean + 3 * (floor["sco"].kid.std + worse["sco"].kid.std) / math.sqrt(40)
    for lv in ("sco", "image"):
        assert worse[lv].swd.per_level[0] > 1.4 * floor[lv].swd.per_level[0]
