"""SAAA: mask encoding/decoding, the tiny end-to-end model (fit, sample, save/load, determinism,
resume), SourceMix, and the ``iaaa saaa`` command line. Tiny models on simulated data, CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from iaaa.errors import IaaaError
from iaaa.saaa import SAAA, MaskDiffusionConfig, Pix2PixConfig, channels_to_labels, labels_to_channels
from iaaa.structures import AnnotatedImage, instance_areas


TINY = dict(
    size=32, crops_per_image=6, diffusion_steps=4, pix2pix_steps=4, diffusion_batch=4, pix2pix_batch=4,
    diffusion=MaskDiffusionConfig(block_out_channels=(8, 16), sample_steps=3, min_area=4),
    pix2pix=Pix2PixConfig(base=8, depth=3, disc_base=8, disc_layers=2), perceptual="random",
)


def _assert_valid_labels(lab: torch.Tensor, min_area: int) -> None:
    assert lab.dtype == torch.int64 and lab.ndim == 2
    ids, areas = instance_areas(lab)
    assert torch.equal(ids, torch.arange(1, ids.numel() + 1)), "ids must be 1..N"
    assert bool((areas >= min_area).all()), f"instance below min_area {min_area}: {areas.min()}"
    # each instance one 8-connected piece (no fragments)
    for i in ids.tolist():
        _, n = ndimage.label((lab == i).numpy(), structure=np.ones((3, 3)))
        assert n == 1


# ----------------------------------------------------------------------------- masks


def test_encoding_range_and_touching_cells_separate():
    lab = torch.zeros(20, 30, dtype=torch.int64)
    lab[4:14, 3:13] = 1
    lab[4:14, 13:23] = 2  # touches cell 1 along a whole column
    ch = labels_to_channels(lab)
    assert ch.shape == (2, 20, 30) and ch.dtype == torch.float32
    assert float(ch.min()) == -1.0 and float(ch.max()) == 1.0
    assert torch.equal(ch[0] > 0, lab > 0)
    back = channels_to_labels(ch, min_area=1)
    assert int(back.max()) == 2, "two touching squares must decode as two cells"
    assert torch.equal(back > 0, lab > 0)


def test_decoding_drops_small_fragments_and_numbers_1_to_n():
    lab = torch.zeros(40, 40, dtype=torch.int64)
    lab[2:12, 2:12] = 5
    lab[20:22, 20:22] = 9  # 4 px: below min_area
    lab[25:38, 25:36] = 3
    back = channels_to_labels(labels_to_channels(lab), min_area=8)
    _assert_valid_labels(back, 8)
    assert int(back.max()) == 2 and not bool(back[20:22, 20:22].any())


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 12))
def test_decoding_is_always_valid(seed, min_area):
    g = torch.Generator().manual_seed(seed)
    ch = torch.rand(2, 24, 24, generator=g) * 2 - 1
    ch = torch.nn.functional.avg_pool2d(ch[None], 3, 1, 1)[0] * 3  # some spatial structure
    _assert_valid_labels(channels_to_labels(ch.clamp(-1, 1), min_area=min_area), min_area)


def test_round_trip_on_simulated_cells(sim_small):
    for s in sim_small:
        back = channels_to_labels(labels_to_channels(s.labels), min_area=1)
        assert torch.equal(back > 0, s.labels > 0)
        n_true, n_back = int(instance_areas(s.labels)[0].numel()), int(back.max())
        assert abs(n_back - n_true) <= max(2, n_true // 10)


# ----------------------------------------------------------------------------- model


@pytest.fixture(scope="module")
def tiny(sim_small, one_thread, tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck")
    model = SAAA(**TINY).fit(sim_small, checkpoint_dir=ck)
    return model, ck


def test_sample_shapes_dtypes(tiny, sim_small):
    model, _ = tiny
    s = model.sample(torch.Generator().manual_seed(1))
    assert s.image.shape == (sim_small[0].image.shape[0], 32, 32)
    assert s.image.dtype == sim_small[0].image.dtype
    _assert_valid_labels(s.labels, 4)
    assert s.class_ids.numel() == int(s.labels.max())
    batch = model.sample_batch(3, torch.Generator().manual_seed(2))
    assert len(batch) == 3 and all(b.image.shape == s.image.shape for b in batch)


def test_larger_canvas(tiny):
    import copy

    model = copy.copy(tiny[0])
    model.config = copy.copy(model.config)
    model.config.sample_size = 64
    s = model.sample(torch.Generator().manual_seed(1))
    assert s.image.shape[-2:] == (64, 64) and s.labels.shape == (64, 64)
    _assert_valid_labels(s.labels, 4)


@pytest.mark.parametrize("kind", ["v_prediction", "sample"])
def test_other_prediction_types_train_and_sample(kind, one_thread):
    from iaaa.saaa import MaskDiffusion

    model = MaskDiffusion(MaskDiffusionConfig(size=16, block_out_channels=(8, 16), sample_steps=2, prediction_type=kind, min_area=1))
    x0 = labels_to_channels(torch.zeros(2, 16, 16, dtype=torch.int64))
    loss = model.loss(x0, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and model.sample_labels(2, torch.Generator().manual_seed(0)).shape == (2, 16, 16)


def test_same_seed_same_sample_and_generator_matters(tiny):
    model, _ = tiny
    a = model.sample(torch.Generator().manual_seed(7))
    b = model.sample(torch.Generator().manual_seed(7))
    c = model.sample(torch.Generator().manual_seed(8))
    assert torch.equal(a.image, b.image) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.image, c.image)
    # Without a generator each call draws afresh (it returned one fixed image, seed 0, before),
    # as CellCompositor.sample() does; a SourceMix of it too.
    from iaaa.sources import SourceMix

    for sampler in (model, SourceMix([model])):
        d, e = sampler.sample(), sampler.sample()
        assert not torch.equal(d.image, e.image)


def test_save_load_round_trip(tiny, tmp_path):
    model, _ = tiny
    model.save(tmp_path / "m")
    loaded = SAAA.load(tmp_path / "m")
    a = model.sample(torch.Generator().manual_seed(3))
    b = loaded.sample(torch.Generator().manual_seed(3))
    assert torch.equal(a.image, b.image) and torch.equal(a.labels, b.labels)
    for f in ("mask_diffusion.pt", "pix2pix.pt"):
        payload = torch.load(tmp_path / "m" / f, weights_only=True)
        assert payload["format"].startswith("iaaa.saaa")


def test_fit_is_deterministic_and_resumes(tiny, sim_small, tmp_path):
    model, ck = tiny
    # A second fit with the same checkpoints resumes at the end: nothing to train, same weights.
    again = SAAA(**TINY).fit(sim_small, checkpoint_dir=ck)
    assert again.reports["diffusion"].resumed_from == TINY["diffusion_steps"]
    # Interrupted run: train 2 steps, then resume to 4 with the same options -> same weights as straight.
    part = tmp_path / "part"
    opts = dict(TINY, diffusion_steps=2, pix2pix_steps=2)
    SAAA(**opts).fit(sim_small, checkpoint_dir=part)
    assert torch.load(part / "diffusion.ckpt", weights_only=True)["step"] == 2
    resumed = SAAA(**TINY).fit(sim_small, checkpoint_dir=part)
    assert resumed.reports["diffusion"].resumed_from == 2
    a = model.sample(torch.Generator().manual_seed(5))
    b = resumed.sample(torch.Generator().manual_seed(5))
    assert torch.equal(a.labels, b.labels) and torch.equal(a.image, b.image)


def test_checkpoint_with_other_options_or_fewer_steps_is_refused(tiny, sim_small):
    _, ck = tiny
    with pytest.raises(IaaaError, match="other options.*batch_size"):
        SAAA(**dict(TINY, diffusion_batch=3)).fit(sim_small, checkpoint_dir=ck)
    with pytest.raises(IaaaError, match="beyond the 2 steps"):
        SAAA(**dict(TINY, diffusion_steps=2)).fit(sim_small, checkpoint_dir=ck)


def test_bad_model_folder_and_missing_weights(tiny, tmp_path):
    model, _ = tiny
    with pytest.raises(IaaaError, match="no such SAAA model folder"):
        SAAA.load(tmp_path / "nope")
    model.save(tmp_path / "m")
    (tmp_path / "m" / "pix2pix.pt").unlink()
    with pytest.raises(IaaaError, match="pix2pix.pt: missing"):
        SAAA.load(tmp_path / "m")
    (tmp_path / "m" / "saaa.json").write_text("{")
    with pytest.raises(IaaaError, match="saaa.json: not valid JSON"):
        SAAA.load(tmp_path / "m")


def test_dataset_and_source_mix(tiny, sim_small):
    from iaaa.data.dataset import SynthesisDataset
    from iaaa.sources import SourceMix

    model, _ = tiny

    class Real:  # a second source: 32 px corners of the real images, one chosen per sample
        def sample(self, generator):
            s = sim_small[int(torch.randint(len(sim_small), (1,), generator=generator))]
            return AnnotatedImage(s.image[:, :32, :32], s.labels[:32, :32])

    mix = SourceMix([model, Real()], weights=[1, 1])
    ds = SynthesisDataset(mix, 8, seed=3, target_format="sample")
    picks = [ds[i].meta["source_index"] for i in range(8)]
    assert set(picks) == {0, 1}
    assert [SynthesisDataset(mix, 8, seed=3, target_format="sample")[i].meta["source_index"] for i in range(8)] == picks
    img, target = SynthesisDataset(model, 2, seed=0)[0]
    assert img.dtype == torch.float32 and target["masks"].shape[0] == target["labels"].numel()
    with pytest.raises(IaaaError):
        SourceMix([model], weights=[1, 2])

    class Whole:  # the real images at their own size: not what the model makes
        def sample(self, generator):
            return sim_small[0]

    with pytest.raises(IaaaError, match=r"source 1 \(Whole\) makes 1-channel uint8 96x128.*size must agree"):
        SourceMix([model, Whole()])


def test_vgg_weights_file_errors(tmp_path):
    from iaaa.saaa import vgg_features

    with pytest.raises(IaaaError, match="no such perceptual weights file"):
        vgg_features(tmp_path / "vgg.pth")
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(IaaaError, match="not a torchvision VGG"):
        vgg_features(tmp_path / "bad.pth")


# ----------------------------------------------------------------------------- CLI


def test_cli_fit_and_sample(sim_small, tmp_path, capsys, one_thread):
    from iaaa.cli import main
    from iaaa.data import read_label_folder
    from iaaa.data.writers import write_label_folder

    write_label_folder(sim_small, tmp_path / "images", tmp_path / "masks")
    model = tmp_path / "model"
    argv = ["saaa", "fit", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--out", str(model),
            "--steps", "3", "--size", "32", "--crops-per-image", "4", "--batch-size", "4", "4", "--diffusion-channels", "8", "16",
            "--sample-steps", "2", "--pix2pix-base", "8", "--pix2pix-depth", "3", "--perceptual", "none", "--quiet"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((model / "saaa.json").read_text())["source"]["images"].endswith("images")
    out = tmp_path / "synth"
    assert main(["saaa", "sample", "--model", str(model), "--n", "3", "--out", str(out), "--size", "48", "--no-progress"]) == 0
    written = read_label_folder(out / "images", out / "masks")
    assert len(written) == 3 and written[0].image.dtype == sim_small[0].image.dtype and written[0].labels.shape == (48, 48)
    for s in written:
        _assert_valid_labels(s.labels, 8)
    assert (out / "annotations.json").is_file() and (out / "manifest.json").is_file()

    # iaaa synth --saaa: SAAA alone, then mixed with IAAA fitted on the same data.
    alone = tmp_path / "synth_saaa"
    assert main(["synth", "--saaa", str(model), "--n", "2", "--out", str(alone), "--no-progress"]) == 0
    assert json.loads((alone / "manifest.json").read_text())["saaa"]["weight"] == 1.0
    assert len(read_label_folder(alone / "images", alone / "masks")) == 2
    mixed = tmp_path / "synth_mixed"
    argv = ["synth", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--saaa", str(model),
            "--saaa-weight", "0.5", "--n", "6", "--out", str(mixed), "--no-progress", "--keep-border", "--size", "32", "32"]
    assert main(argv) == 0
    manifest = json.loads((mixed / "manifest.json").read_text())
    assert manifest["saaa"]["weight"] == 0.5 and "compositor" in manifest
    mixed_samples = read_label_folder(mixed / "images", mixed / "masks")
    assert len(mixed_samples) == 6
    for s in mixed_samples:  # IAAA keeps the real cells (the simulator's may be split), so ids only
        ids = instance_areas(s.labels)[0]
        assert torch.equal(ids, torch.arange(1, ids.numel() + 1)) and s.image.shape[-2:] == s.labels.shape
    capsys.readouterr()
    assert main(["synth", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--saaa", str(model), "--saaa-weight", "nan",
                 "--n", "2", "--out", str(tmp_path / "o2")]) == 2
    assert "--saaa-weight: must be a finite number" in capsys.readouterr().err


def test_cli_bad_model_is_one_line_exit_2(tmp_path, capsys):
    from iaaa.cli import main

    assert main(["saaa", "sample", "--model", str(tmp_path / "missing"), "--n", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "Traceback" not in err[0]
