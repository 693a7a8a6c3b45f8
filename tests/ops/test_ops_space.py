"""The search space table and apply_op's contract; CPU == CUDA where a GPU is present."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torchvision.transforms.v2 import Transform

import iaaa.ops as ops
from iaaa.ops import EXTENDED, SPACE, TABLE_S1, OpSpec, apply_op

PAPER_S1 = ("FlipLR", "FlipUD", "AutoContrast", "Equalize", "Rotate", "Posterize", "Contrast", "Brightness", "Sharpness", "Smooth", "Resize")
PAPER_S11 = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Solarize", "Invert", "Color", "Cutout", "CropBilinear")


def test_table_lists_the_paper_ops_in_order():
    assert TABLE_S1 == PAPER_S1
    assert set(EXTENDED) == set(PAPER_S11) and len(EXTENDED) == 9
    assert tuple(SPACE) == TABLE_S1 + EXTENDED


@pytest.mark.parametrize("name", list(SPACE))
def test_spec_fields(name):
    spec = SPACE[name]
    assert isinstance(spec, OpSpec) and spec.name == name
    assert spec.cls is getattr(ops, name) and issubclass(spec.cls, Transform)
    lo, hi = spec.magnitude_range
    assert (lo < hi) == spec.has_magnitude and lo == 0.0
    assert spec.value(0.0) == lo and spec.value(1.0) == hi
    assert isinstance(spec(p=0.5, magnitude=0.2), spec.cls)
    assert spec.cls.__doc__ and spec.unit
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"


def test_kinds():
    geometric = {n for n, s in SPACE.items() if s.geometric}
    assert geometric == {"FlipLR", "FlipUD", "Rotate", "Resize", "ShearX", "ShearY", "TranslateX", "TranslateY", "CropBilinear"}
    signed = {n for n, s in SPACE.items() if s.signed}
    assert signed == {"Rotate", "Contrast", "Brightness", "Sharpness", "Resize", "ShearX", "ShearY", "TranslateX", "TranslateY", "Color"}
    assert {n for n, s in SPACE.items() if not s.has_magnitude} == {"FlipLR", "FlipUD", "AutoContrast", "Equalize", "Invert"}


def test_signed_ops_draw_both_directions_from_the_generator():
    img = torch.rand(1, 9, 9)
    g = torch.Generator().manual_seed(0)
    outs = [apply_op("Brightness", img, None, 0.5, g)[0].mean() > img.mean() for _ in range(50)]
    assert 10 < sum(outs) < 40
    up, _ = apply_op("Brightness", img, None, 0.5, sign=1.0)
    down, _ = apply_op("Brightness", img, None, 0.5, sign=-1.0)
    assert torch.allclose(up, (img * 1.25).clamp(0, 1)) and torch.allclose(down, img * 0.75)


def test_apply_op_shapes_and_dtypes():
    img = torch.randint(0, 256, (2, 3, 12, 14), dtype=torch.uint8)
    lab = torch.randint(0, 3, (2, 12, 14), dtype=torch.uint8)
    out, ol = apply_op("Rotate", img, lab, torch.tensor([0.1, 0.9]), torch.Generator().manual_seed(0))
    assert out.shape == img.shape and out.dtype == torch.uint8 and ol.dtype == torch.int64
    out, ol = apply_op("Equalize", img[0], lab[0].bool(), 0.5)
    assert out.shape == (3, 12, 14) and ol.dtype == torch.int64 and ol.shape == (12, 14)
    out, ol = apply_op("Resize", img[0], None, 1.0, expand=True, sign=1.0)
    assert out.shape == (3, 17, 20) and ol is None  # 2 ** 0.5 = 1.41x


def test_apply_op_errors_name_the_field():
    img = torch.zeros(1, 8, 8)
    with pytest.raises(ValueError, match="unknown op 'Spin'.*Rotate"):
        apply_op("Spin", img, None)
    with pytest.raises(ValueError, match="magnitude"):
        apply_op("Rotate", img, None, 1.2)
    with pytest.raises(ValueError, match="magnitude: expected 1 or 2"):
        apply_op("Rotate", torch.zeros(2, 1, 8, 8), None, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"labels: expected shape \(H, W\)"):
        apply_op("Rotate", img, torch.zeros(1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="labels: size"):
        apply_op("Rotate", img, torch.zeros(8, 7, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        apply_op("Rotate", img, torch.zeros(8, 8))
    with pytest.raises(TypeError, match="image: unsupported dtype torch.int32"):
        apply_op("Invert", torch.zeros(1, 8, 8, dtype=torch.int32), None)
    with pytest.raises(ValueError, match=r"image: expected shape \(B, C, H, W\)"):
        apply_op("Invert", torch.zeros(8, 8), None)
    with pytest.raises(ValueError, match="sign"):
        apply_op("Rotate", img, None, 0.5, sign=0.5)
    with pytest.raises(TypeError, match="'antialias'"):
        apply_op("Rotate", img, None, 0.5, antialias=False)


def test_without_generator_uses_global_rng_reproducibly():
    img = torch.rand(1, 9, 9)
    torch.manual_seed(5)
    a = [apply_op("Rotate", img, None, 0.5)[0] for _ in range(4)]
    torch.manual_seed(5)
    b = [apply_op("Rotate", img, None, 0.5)[0] for _ in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


# ----------------------------------------------------------------------------- CUDA


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", list(SPACE))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.float32])
def test_cuda_equals_cpu(name, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 4, 33, 41, generator=g)
    img = x if dtype == torch.float32 else (x * (255 if dtype == torch.uint8 else 65535)).round().to(torch.int32).to(dtype)
    lab = (torch.rand(3, 33, 41, generator=g) * 4).long() * 1000
    mags = torch.tensor([0.2, 0.6, 1.0])
    for expand in (False, True):
        a, la = apply_op(name, img, lab, mags, torch.Generator().manual_seed(1), expand=expand)
        b, lb = apply_op(name, img.cuda(), lab.cuda(), mags, torch.Generator().manual_seed(1), expand=expand)
        assert b.device.type == "cuda" and lb.device.type == "cuda"
        assert torch.equal(lb.cpu(), la), "labels must be identical"
        if dtype.is_floating_point:
            assert torch.allclose(b.cpu(), a, atol=1e-5)
        else:
            # Resampling and blending round in float32: CUDA may differ by one level.
            diff = (b.cpu().to(torch.int32) - a.to(torch.int32)).abs()
            assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 0.01


@cuda
@pytest.mark.cuda
def test_cuda_transform_pipeline():
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    img = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8).cuda()
    lab = torch.randint(0, 4, (40, 50)).cuda()
    t = v2.Compose([ops.Rotate(expand=True, generator=torch.Generator().manual_seed(0)), ops.Equalize(), ops.Smooth()])
    out, m = t(tv_tensors.Image(img), tv_tensors.Mask(lab))
    assert out.is_cuda and m.is_cuda and out.shape[-2:] == m.shape[-2:]
