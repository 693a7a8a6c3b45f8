"""The ops as torchvision v2 transforms: dispatch over input types, parameters, randomness."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision import tv_tensors
from torchvision.transforms import v2

import iaaa.ops as ops
from iaaa.ops import SPACE, apply_op
from iaaa.ops import functional as F


def _sample(c=3, h=20, w=30, dtype=torch.uint8, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (c, h, w), generator=g, dtype=torch.uint8).to(dtype)
    lab = torch.zeros(h, w, dtype=torch.int64)
    lab[3:9, 4:12] = 5
    lab[12:18, 18:27] = 9
    return img, lab


@pytest.mark.parametrize("name", list(SPACE))
def test_class_equals_apply_op_for_the_same_seed(name):
    img, lab = _sample()
    op = SPACE[name](magnitude=0.7, generator=torch.Generator().manual_seed(3))
    if "expand" in SPACE[name].cls.default_options:
        op = SPACE[name](magnitude=0.7, generator=torch.Generator().manual_seed(3), expand=True)
    out, mask = op(tv_tensors.Image(img), tv_tensors.Mask(lab))
    assert isinstance(out, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
    ref, rlab = apply_op(name, img, lab, 0.7, torch.Generator().manual_seed(3), expand="expand" in SPACE[name].cls.default_options)
    assert torch.equal(out.as_subclass(torch.Tensor), ref)
    assert torch.equal(mask.as_subclass(torch.Tensor), rlab)


def test_compose_moves_image_mask_boxes_and_keypoints_together():
    img, lab = _sample()
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[4.0, 3.0, 12.0, 9.0], [18.0, 12.0, 27.0, 18.0]]), format="XYXY", canvas_size=(20, 30))
    points = tv_tensors.KeyPoints(torch.tensor([[4.0, 3.0], [26.0, 17.0]]), canvas_size=(20, 30))
    t = v2.Compose([ops.FlipLR(), ops.Rotate(degrees=90.0, expand=True), ops.Equalize()])
    out = t({"image": tv_tensors.Image(img), "mask": tv_tensors.Mask(lab), "boxes": boxes, "points": points, "id": 7})
    assert out["id"] == 7
    assert out["image"].shape == (3, 30, 20) and out["mask"].shape == (30, 20)
    ref_lab = torch.rot90(lab.flip(-1), 1, (-2, -1))
    assert torch.equal(out["mask"].as_subclass(torch.Tensor), ref_lab)
    assert out["boxes"].canvas_size == (30, 20) and out["points"].canvas_size == (30, 20)
    ref_boxes = TF.rotate(TF.horizontal_flip(boxes), 90.0, expand=True)
    assert torch.allclose(out["boxes"].as_subclass(torch.Tensor), ref_boxes.as_subclass(torch.Tensor), atol=1e-4)
    # Keypoints are pixel centres (torchvision's flip convention): each lands on the pixel its
    # marker pixel lands on.
    for (x, y), (px, py) in zip(points.tolist(), out["points"].tolist()):
        marker = torch.zeros(20, 30, dtype=torch.int64)
        marker[int(y), int(x)] = 1
        moved = t(tv_tensors.Mask(marker))
        assert moved[round(py), round(px)] == 1


def test_boxes_in_other_formats_and_instances_leaving_the_frame():
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[2.0, 2.0, 4.0, 4.0], [25.0, 2.0, 3.0, 3.0]]), format="XYWH", canvas_size=(20, 30))
    img, lab = _sample()
    lab[:, 25:] = 11
    out_img, out_lab, out_boxes = ops.TranslateX(translate=0.2)(tv_tensors.Image(img), tv_tensors.Mask(lab), boxes)
    assert out_boxes.format == tv_tensors.BoundingBoxFormat.XYWH
    assert torch.allclose(out_boxes[0], torch.tensor([8.0, 2.0, 4.0, 4.0]))
    assert float(out_boxes[1, 2]) == 0.0  # left the frame: zero width ...
    assert 11 not in torch.unique(out_lab).tolist()  # ... and gone from the label map
    kept = v2.SanitizeBoundingBoxes(labels_getter=None)(out_boxes)
    assert kept.shape[0] == 1


def test_plain_tensors_pil_and_stacked_masks():
    img, lab = _sample(c=1)
    # A plain tensor is the image; a second plain tensor passes through (torchvision's rule),
    # which is why label maps must be wrapped as Mask.
    a, b = ops.FlipUD()(img, lab)
    assert torch.equal(a, img.flip(-2)) and b is lab
    pil = PIL.Image.fromarray(img[0].numpy())
    out = ops.FlipLR()(pil)
    assert isinstance(out, PIL.Image.Image) and out.mode == "L"
    assert np.array_equal(np.asarray(out), img[0].flip(-1).numpy())
    rgb = PIL.Image.fromarray(_sample()[0].permute(1, 2, 0).numpy())
    assert ops.Equalize()(rgb).mode == "RGB"
    p16 = PIL.Image.fromarray((np.arange(600, dtype=np.uint16) * 100).reshape(20, 30))
    out16 = ops.AutoContrast()(p16)
    assert np.asarray(out16).dtype == np.uint16 and int(np.asarray(out16).max()) == 65535
    stacked = tv_tensors.Mask(torch.stack([lab == 5, lab == 9]))
    _, moved = ops.Rotate(degrees=33.0, expand=True)(tv_tensors.Image(img), stacked)
    _, ref = apply_op("Rotate", img, lab, 33.0 / 180.0, expand=True, sign=1.0)
    assert moved.dtype == torch.bool
    assert torch.equal(moved[0], ref == 5) and torch.equal(moved[1], ref == 9)


def test_photometric_ops_pass_masks_and_boxes_through():
    img, lab = _sample()
    mask = tv_tensors.Mask(lab)
    for name in ("Equalize", "Contrast", "Smooth", "Cutout", "Posterize"):
        _, m = SPACE[name](magnitude=1.0)(tv_tensors.Image(img), mask)
        assert m is mask


def test_cutout_can_erase_labels():
    img, lab = _sample()
    lab[:] = 1
    _, m = ops.Cutout(magnitude=1.0, erase_labels=True, generator=torch.Generator().manual_seed(0))(tv_tensors.Image(img), tv_tensors.Mask(lab))
    assert 0 < int((m == 0).sum()) <= 10 * 10


def test_probability_uses_the_generator_only():
    img, _ = _sample()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    g = torch.Generator().manual_seed(0)
    op = ops.Invert(p=0.5, generator=g)
    applied = sum(not torch.equal(op(img), img) for _ in range(400))
    assert 150 < applied < 250
    assert torch.equal(torch.rand(3), expected)  # the global RNG was not touched
    assert ops.Invert(p=0.0)(img) is img


def test_same_generator_seed_same_pipeline_output():
    img, lab = _sample()

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        t = v2.Compose([ops.Rotate(p=0.5, magnitude=0.4, generator=g), ops.Cutout(p=0.5, generator=g), ops.Contrast(generator=g)])
        return [t(tv_tensors.Image(img), tv_tensors.Mask(lab)) for _ in range(5)]

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(a, c))


def test_op_specific_keywords():
    img, lab = _sample(dtype=torch.float32)
    img = img / 255
    out, m = ops.Rotate(degrees=30.0)(tv_tensors.Image(img), tv_tensors.Mask(lab))
    ref, rl = F.rotate(img[None], lab[None], 30.0)
    assert torch.equal(out, ref[0]) and torch.equal(m, rl[0])
    g = torch.Generator().manual_seed(0)
    op = ops.Resize(scale=(0.5, 2.0), expand=True, generator=g)
    sizes = {op(tv_tensors.Image(img)).shape[-1] for _ in range(20)}
    assert len(sizes) > 5 and min(sizes) >= 15 and max(sizes) <= 60
    assert torch.equal(ops.Posterize(bits=3)(img), F.posterize(img[None], 3)[0])
    assert torch.equal(ops.Contrast(factor=1.0)(img), img)
    assert torch.equal(ops.Solarize(threshold=0.5)(img), F.solarize(img[None], 0.5)[0])
    assert torch.equal(ops.Smooth(sigma=1.0)(img), F.gaussian_blur(img[None], 1.0)[0])
    big = ops.Resize(scale=2.0, expand=True, interpolation="nearest")(tv_tensors.Mask(lab))
    assert torch.equal(big, lab.repeat_interleave(2, 0).repeat_interleave(2, 1))


def test_posterize_16_bit_removes_the_same_fraction_of_bits():
    x = torch.arange(0, 65536, 64, dtype=torch.int32).view(1, 32, 32).to(torch.uint16)
    out = ops.Posterize(magnitude=1.0)(x).to(torch.int32)  # 4 of 8 bits -> 8 of 16 bits
    assert torch.unique(out).numel() == 256
    y = (x.to(torch.int32) // 257).to(torch.uint8)
    assert torch.unique(ops.Posterize(magnitude=1.0)(y)).numel() == 16


def test_batched_tensor_gets_one_draw():
    x = torch.rand(4, 1, 10, 12)
    out = ops.Rotate(magnitude=0.3, generator=torch.Generator().manual_seed(0))(x)
    ref, _ = apply_op("Rotate", x[0], None, 0.3, torch.Generator().manual_seed(0))
    assert all(torch.equal(out[i], apply_op("Rotate", x[i], None, 0.3, torch.Generator().manual_seed(0))[0]) for i in range(4))
    assert torch.equal(out[0], ref)


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match="magnitude"):
        ops.Rotate(magnitude=1.5)
    with pytest.raises(ValueError, match="p must"):
        ops.Rotate(p=2.0)
    with pytest.raises(TypeError, match="'foo'"):
        ops.Rotate(foo=1)
    with pytest.raises(TypeError, match="'expand'"):
        ops.Equalize(expand=True)
    with pytest.raises(TypeError, match="generator"):
        ops.Rotate(generator=0)
    with pytest.raises(ValueError, match="degrees"):
        ops.Rotate(degrees=(5.0, 1.0))
    with pytest.raises(TypeError, match="integer"):
        ops.Rotate()(tv_tensors.Image(torch.zeros(1, 4, 4)), tv_tensors.Mask(torch.zeros(4, 4)))
    with pytest.raises(TypeError, match="dtype"):
        ops.Equalize()(torch.zeros(1, 4, 4, dtype=torch.int32))


def test_instance_options_feed_apply_op():
    """``apply_op(type(op).__name__, ..., expand=..., **op.opts)`` reproduces the transform."""
    img, lab = _sample()
    op = ops.Rotate(magnitude=0.4, expand=True, fill=0.5, generator=torch.Generator().manual_seed(2))
    assert "expand" not in op.opts and op.expand
    a, la = op(tv_tensors.Image(img), tv_tensors.Mask(lab))
    b, lb = apply_op("Rotate", img, lab, op.magnitude, torch.Generator().manual_seed(2), expand=op.expand, **op.opts)
    assert torch.equal(a, b) and torch.equal(la, lb)


def test_repr_shows_the_settings():
    r = repr(ops.Rotate(p=0.3, magnitude=0.2, expand=True))
    assert "p=0.3" in r and "magnitude=0.2" in r and "expand=True" in r
