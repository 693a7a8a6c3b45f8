"""Feature extractors and the documented image conversion (dtype, channels, size)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.errors import IaaaError
from iaaa.metrics import InceptionFeatures, ModuleFeatures, PyramidStatsFeatures, as_extractor, compute_features, standardize, wae_features
from iaaa.metrics.features import fit_to_size, match_channels, prepare_batch, to_unit_float


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- conversion


def test_to_unit_float_dtype_ranges_and_explicit_range():
    assert to_unit_float(torch.tensor([[0, 255]], dtype=torch.uint8)).tolist() == [[[0.0, 1.0]]]
    u16 = torch.tensor([[0, 65535, 4095]], dtype=torch.int32).to(torch.uint16)
    assert torch.allclose(to_unit_float(u16), torch.tensor([[[0.0, 1.0, 4095 / 65535]]]))
    # 12-bit data in a uint16 container: the documented way is an explicit range.
    assert torch.allclose(to_unit_float(u16, (0, 4095)), torch.tensor([[[0.0, 1.0, 1.0]]]))
    assert to_unit_float(torch.tensor([[-0.5, 0.5, 2.0]])).tolist() == [[[0.0, 0.5, 1.0]]]
    two = torch.tensor([[[100.0]], [[100.0]]])
    assert to_unit_float(two, ([0, 50], [200, 150])).flatten().tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="lo < hi"):
        to_unit_float(u16, (10, 10))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        to_unit_float(torch.zeros(1, 1, 2, 2))


def test_match_channels_rule():
    x = torch.rand(2, 1, 4, 4, generator=_gen(0))
    assert torch.equal(match_channels(x, 3), x.expand(2, 3, 4, 4))
    rgb = torch.rand(2, 3, 4, 4, generator=_gen(1))
    assert torch.allclose(match_channels(rgb, 1), rgb.mean(1, keepdim=True))
    five = torch.rand(5, 4, 4, generator=_gen(2))
    out = match_channels(five, 3)
    assert out.shape == (3, 4, 4) and torch.allclose(out[0], five.mean(0)) and torch.equal(out[0], out[2])
    assert match_channels(rgb, None) is rgb


def test_fit_to_size_pad_keeps_aspect_with_border_mean():
    # A 20x40 crop: a bright bar on a background of 0.2. Padded into 64x64 it keeps its 1:2 shape.
    crop = torch.full((1, 20, 40), 0.2)
    crop[:, 8:12, 5:35] = 1.0
    out = fit_to_size(crop, (64, 64), "pad")
    assert out.shape == (1, 64, 64)
    assert torch.allclose(out[:, :16], torch.tensor(0.2)) and torch.allclose(out[:, 48:], torch.tensor(0.2))
    rows = (out[0] > 0.6).any(1).nonzero().flatten()
    cols = (out[0] > 0.6).any(0).nonzero().flatten()
    assert 5 <= rows.numel() <= 8 and 45 <= cols.numel() <= 52  # the 4x30 bar scaled by 1.6
    stretched = fit_to_size(crop, (64, 64), "stretch")
    assert int((stretched[0] > 0.6).any(1).sum()) >= 2 * rows.numel()  # stretched: twice as tall
    with pytest.raises(ValueError, match="fit must be"):
        fit_to_size(crop, (8, 8), "crop")


def test_prepare_batch_requires_size_for_mixed_shapes():
    ims = [torch.zeros(1, 10, 10, dtype=torch.uint8), torch.zeros(1, 12, 10, dtype=torch.uint8)]
    with pytest.raises(ValueError, match=r"images\[1\]: shape .* differs"):
        prepare_batch(ims)
    assert prepare_batch(ims, (16, 16), channels=3).shape == (2, 3, 16, 16)


# ----------------------------------------------------------------------------- running extractors


def test_compute_features_with_any_callable_and_module_mode_restored():
    ims = [torch.randint(0, 255, (1, 20 + i, 30), dtype=torch.uint8, generator=_gen(i)) for i in range(5)]
    f = compute_features(ims, lambda b: b.mean((2, 3)), input_size=16, batch_size=2)
    assert f.shape == (5, 1) and f.dtype == torch.float64

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.drop = torch.nn.Dropout(0.9)

        def forward(self, x):
            return self.drop(self.conv(x)), "aux"  # tuple output and a 4-D feature map

    net = Net().train()
    a = compute_features(ims, net, input_size=(8, 8), channels=3)
    b = compute_features(ims, net, input_size=(8, 8), channels=3)
    assert a.shape == (5, 4 * 6 * 6) and torch.equal(a, b)  # eval mode: dropout off, deterministic
    assert net.training  # mode restored

    wrapped = as_extractor(lambda x: x.flatten(1), input_size=4, channels=2)
    assert compute_features(ims, wrapped, input_size=32).shape == (5, 2 * 4 * 4)  # extractor's size wins
    with pytest.raises(ValueError, match=r"expected \(B, D\) output for a batch of B=2"):
        compute_features(ims[:2], lambda b: b[:1].flatten(1), input_size=8)
    with pytest.raises(ValueError, match="non-finite"):
        compute_features(ims[:2], lambda b: b.flatten(1) / 0, input_size=8)


def test_standardize_uses_real_statistics_and_soft_clips():
    g = _gen(0)
    real = torch.randn(200, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 100.0, 0.01]) + 5
    fake = real + torch.tensor([0.0, 0.0, 1.0])  # a 100-sd shift in dim 2
    zr, zf = standardize(real, fake, clip=None)
    assert torch.allclose(zr.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(zr.std(0), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(zf[:, 2] - zr[:, 2], 1.0 / real[:, 2].std())  # ~100 sd of the real set
    cr, cf = standardize(real, fake)
    assert float(cf.abs().max()) <= 3.0 and float(cf[:, 2].mean()) > 2.9  # far off stays far off
    assert torch.allclose(cr[:, 0], 3 * torch.tanh(zr[:, 0] / 3))


# ----------------------------------------------------------------------------- offline default


def _disc_image(blur: bool = False, scale: int = 1, dtype=torch.uint8) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    img = torch.where((yy - 30) ** 2 + (xx - 34) ** 2 < 144, 0.8, 0.1)
    if blur:
        img = torch.nn.functional.avg_pool2d(img[None, None], 7, 1, 3, count_include_pad=False)[0, 0]
    return (img * 255).round().to(torch.int32).mul(scale).to(dtype)[None]


def test_pyramid_stats_features_shape_determinism_and_sensitivity():
    ext = PyramidStatsFeatures()
    sharp, soft = _disc_image(), _disc_image(blur=True)
    f = compute_features([sharp, soft, sharp], ext, input_size=64)
    levels = 3  # 64 -> bands at 64, 32, 16, 8-px residual
    assert f.shape == (3, 9 + 5 * levels + (levels - 1) + 1)
    assert torch.equal(f[0], f[2])
    # Blurring the edge lowers the finest band's energy (feature 9 = log RMS of band 0).
    assert f[1, 9] < f[0, 9] - 0.5
    # 16-bit input scaled by 257 is the same image after the documented conversion.
    f16 = compute_features([_disc_image(scale=257, dtype=torch.uint16)], ext, input_size=64)
    assert torch.allclose(f16[0], f[0], atol=1e-4)
    # Three channels give three times the features.
    assert compute_features([sharp.expand(3, 64, 64)], ext, input_size=64).shape[1] == 3 * f.shape[1]
    with pytest.raises(ValueError, match="levels need inputs of at least 64 px"):
        PyramidStatsFeatures(levels=4)(torch.rand(1, 1, 32, 32))


# ----------------------------------------------------------------------------- Inception


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.mark.parametrize("aux", [False, True])
def test_inception_from_local_random_weights(tmp_path, no_downloads, aux):
    import torchvision

    torch.manual_seed(0)  # torchvision layers draw their (skipped) init from the global RNG
    model = torchvision.models.inception_v3(weights=None, aux_logits=aux, init_weights=False)
    path = tmp_path / "inception.pth"
    torch.save({"state_dict": model.state_dict()} if aux else model.state_dict(), path)
    ext = InceptionFeatures(path)
    assert ext.input_size == (299, 299) and ext.channels == 3
    # 1-channel 16-bit crops of different sizes: converted, replicated to RGB, fitted to 299.
    ims = [torch.randint(0, 65535, (1, 40, 60), generator=_gen(i), dtype=torch.int32).to(torch.uint16) for i in range(2)]
    f = compute_features(ims, ext, batch_size=2)
    assert f.shape == (2, 2048) and torch.isfinite(f).all()
    assert not torch.equal(f[0], f[1])


def test_inception_missing_or_wrong_weights_explain_how_to_get_them(tmp_path, no_downloads):
    with pytest.raises(IaaaError, match=r"not found; nothing is downloaded.*inception_v3_google"):
        InceptionFeatures(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(IaaaError, match="junk.pth: not a readable Inception-v3 weights file"):
        InceptionFeatures(junk)
    code = tmp_path / "code.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "how": IaaaError("a pickled class")}, code)
    with pytest.raises(IaaaError, match="could run code") as e:
        InceptionFeatures(code)
    assert "weights_only=False" not in str(e.value)
    wrong = tmp_path / "wrong.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), wrong)
    with pytest.raises(IaaaError, match="does not match torchvision's Inception-v3.*missing"):
        InceptionFeatures(wrong)


# ----------------------------------------------------------------------------- WAE encoder


def test_wae_encoder_plugs_in(tmp_path):
    import iaaa.policy.wae as wae_mod
    model = wae_mod.WAE(wae_mod.WAEConfig(in_channels=1, size=(32, 32), latent_dim=6))
    ext = wae_features(model)
    crops = [torch.randint(0, 255, (1, 20, 10 + i), dtype=torch.uint8, generator=_gen(i)) for i in range(3)]
    f = compute_features(crops, ext)
    assert f.shape == (3, 6)
    with torch.no_grad():
        expect = model.encode(prepare_batch(crops, (32, 32), 1)).double()
    assert torch.allclose(f, expect, atol=1e-6)
    model.save(tmp_path / "wae.pt")
    assert torch.allclose(compute_features(crops, wae_features(tmp_path / "wae.pt")), f, atol=1e-6)
    from iaaa.policy.scorers import WAEScorer

    assert torch.allclose(compute_features(crops, wae_features(WAEScorer(model))), f, atol=1e-6)  # the scorer holds its WAE as .model
    with pytest.raises(IaaaError, match="not found"):
        wae_features(tmp_path / "nope.pt")
    with pytest.raises(TypeError, match="expected a WAE"):
        wae_features(object())


@settings(max_examples=15, deadline=None)
@given(h=st.integers(3, 80), w=st.integers(3, 80), c=st.sampled_from([1, 2, 3]))
def test_any_crop_shape_fits(h, w, c):
    x = torch.rand(c, h, w, generator=_gen(h * 100 + w))
    out = fit_to_size(x, (32, 32))
    assert out.shape == (c, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1
    assert isinstance(as_extractor(ModuleFeatures(lambda b: b)), ModuleFeatures)
