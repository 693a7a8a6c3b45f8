"""Hostile and careless input, round 2 (issue 21): SAAA model folders and files, mixed sources,
size-like options, devices, preview targets. Every CLI case ends in exit code 2 and ONE stderr
line naming the file, field or option at fault, and leaves every file outside its output as it
was (before/after snapshots); API cases raise an IaaaError saying the same. Resource cases run
in one subprocess under RLIMIT_AS, with a control showing the unguarded allocation exceeds it.

Sections follow the issue's classes (1 model folders, 2 mixed resumes, 3 sources, 4 model-file
fields, 5 sizes, 8 tracebacks, 9 destroyed input, 10 late errors, 11 wording). Tiny models,
two training steps, on simulated cells.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_checks import check, cli, cli_under_memory_limit, refused, snapshot
from iaaa.data.writers import write_label_folder
from iaaa.datasets import simulate_cells
from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage

pytestmark = pytest.mark.usefixtures("one_thread")


# The smallest model the CLI trains: 2 steps each, 32 px crops, two U-Net levels, depth-3 Pix2Pix.
TINY_FLAGS = ["--steps", "2", "--size", "32", "--crops-per-image", "2", "--batch-size", "2", "2", "--diffusion-channels", "8", "16",
              "--sample-steps", "2", "--pix2pix-base", "8", "--pix2pix-depth", "3", "--perceptual", "none", "--quiet"]


def _data(root: Path, seed: int = 7, n: int = 2, size=(48, 64), dtype=torch.uint8, channels: int = 1, empty: bool = False) -> Path:
    sims = simulate_cells(n, seed=seed, size=size, dtype=dtype, cells=(4, 6), radius=(5.0, 7.0))
    if channels != 1 or empty:
        sims = [AnnotatedImage(s.image.repeat(channels, 1, 1), torch.zeros_like(s.labels) if empty else s.labels) for s in sims]
    write_label_folder(sims, root / "images", root / "masks")
    return root


def _fit(data: Path, out: Path, *extra) -> list:
    return ["saaa", "fit", "--images", data / "images", "--masks", data / "masks", "--out", out, *TINY_FLAGS, *extra]


def _sample(model: Path, out: Path, *extra, n: int = 2) -> list:
    return ["saaa", "sample", "--model", model, "--n", n, "--out", out, "--no-progress", *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """Data A, data B (other cells) and a finished model trained on A."""
    root = tmp_path_factory.mktemp("models")
    a, b = _data(root / "a"), _data(root / "b", seed=8)
    from iaaa.cli import main

    assert main([str(x) for x in _fit(a, root / "model")]) == 0
    return {"a": a, "b": b, "model": root / "model"}


@pytest.fixture
def work(tmp_path, trained):
    """A folder holding copies of data A and B and of the finished model."""
    for k in ("a", "b", "model"):
        shutil.copytree(trained[k], tmp_path / k)
    return tmp_path


# ============================================================================ 1. model folders


def test_fit_refuses_a_foreign_nonempty_folder(work, capsys):
    out = work / "theirs"
    out.mkdir()
    (out / "notes.txt").write_text("someone's notes")
    check(capsys, work, _fit(work / "a", out), str(out), "not empty", "notes.txt")


def test_fit_refuses_a_foreign_saaa_json(work, capsys):
    out = work / "theirs"
    out.mkdir()
    (out / "saaa.json").write_text(json.dumps({"project": "someone else's"}))
    check(capsys, work, _fit(work / "a", out), "saaa.json", "not a SAAA model description", "format")


@pytest.mark.parametrize("change", ["other data", "other options", "other data, checkpoints deleted"])
def test_finished_model_is_never_replaced_silently(work, capsys, change):
    data = work / ("b" if "data" in change else "a")
    extra = ["--seed", "5"] if change == "other options" else []
    if "deleted" in change:
        shutil.rmtree(work / "model" / "checkpoints")
    check(capsys, work, _fit(data, work / "model", *extra), str(work / "model"), "finished SAAA model", "--overwrite")


def test_same_run_on_a_finished_model_changes_nothing(work, capsys):
    shutil.rmtree(work / "model" / "checkpoints")  # nothing left to resume from, nothing retrained
    before = snapshot(work)
    rc, _ = cli(capsys, *_fit(work / "a", work / "model"))
    assert rc == 0 and snapshot(work) == before


def test_overwrite_replaces_the_model(work, capsys):
    old = json.loads((work / "model" / "saaa.json").read_text())["fingerprint"]
    rc, err = cli(capsys, *_fit(work / "b", work / "model", "--overwrite"))
    assert rc == 0, err
    new = json.loads((work / "model" / "saaa.json").read_text())
    assert new["fingerprint"] != old and new["source"]["images"].endswith(str(Path("b") / "images"))


def test_checkpoints_carry_the_data_fingerprint(work):
    meta = json.loads((work / "model" / "saaa.json").read_text())
    for name in ("diffusion", "pix2pix"):
        ck = torch.load(work / "model" / "checkpoints" / f"{name}.ckpt", weights_only=True)
        assert ck["options"]["data_sha256"] == meta["data"]["sha256"]
    assert len(meta["fingerprint"]) == 64 and len(meta["source"]["inputs_sha256"]) == 64


def test_unfinished_checkpoints_of_other_data_are_not_resumed(work, capsys):
    # An interrupted run: checkpoints only. Resuming on other data used to exit 0 in seconds
    # with the old weights.
    for f in ("saaa.json", "mask_diffusion.pt", "pix2pix.pt"):
        (work / "model" / f).unlink()
    check(capsys, work, _fit(work / "b", work / "model"), "diffusion.ckpt", "trained on other data")


def test_api_save_guards_like_the_cli(work, trained):
    from iaaa.saaa import SAAA

    model = SAAA.load(work / "model")
    (work / "theirs").mkdir()
    (work / "theirs" / "data.csv").write_text("1,2\n")
    with pytest.raises(IaaaError, match="data.csv.*holds no SAAA saaa.json"):
        model.save(work / "theirs")
    model.fingerprint = "0" * 64  # a model of other data or options
    before = snapshot(work / "model")
    with pytest.raises(IaaaError, match="finished SAAA model"):
        model.save(work / "model")
    assert snapshot(work / "model") == before
    model.save(work / "model", overwrite=True)
    assert json.loads((work / "model" / "saaa.json").read_text())["fingerprint"] == "0" * 64


def test_api_fit_refuses_checkpoint_of_other_data(work):
    from iaaa.data import read_label_folder
    from iaaa.saaa import SAAA, MaskDiffusionConfig, Pix2PixConfig

    tiny = dict(size=32, crops_per_image=2, diffusion_steps=2, pix2pix_steps=2, diffusion_batch=2, pix2pix_batch=2, perceptual="none",
                diffusion=MaskDiffusionConfig(block_out_channels=(8, 16), sample_steps=2), pix2pix=Pix2PixConfig(base=8, depth=3))
    ck = work / "ck"
    SAAA(**tiny).fit(read_label_folder(work / "a" / "images", work / "a" / "masks"), checkpoint_dir=ck)
    with pytest.raises(IaaaError, match="diffusion.ckpt: checkpoint was trained on other data"):
        SAAA(**tiny).fit(read_label_folder(work / "b" / "images", work / "b" / "masks"), checkpoint_dir=ck)


# ============================================================================ 2. mixed resumes


def test_sample_resume_with_other_ddim_steps_is_refused(work, capsys):
    out = work / "synth"
    assert cli(capsys, *_sample(work / "model", out))[0] == 0
    check(capsys, work, _sample(work / "model", out, "--ddim-steps", "3"), str(out), "settings differ", "sampling")


def test_sample_resume_after_retraining_is_refused(work, capsys):
    out = work / "synth"
    assert cli(capsys, *_sample(work / "model", out))[0] == 0
    assert cli(capsys, *_fit(work / "a", work / "model", "--seed", "3", "--overwrite"))[0] == 0
    check(capsys, work, _sample(work / "model", out), str(out), "settings differ", "source")


def test_sample_into_the_model_folder_is_refused(work, capsys):
    check(capsys, work, _sample(work / "model", work / "model" / "synth"), "lies inside the input", "model")


# ============================================================================ 3. sources that do not agree


@pytest.mark.parametrize("kind, needles", [
    ("rgb", ["channels", "3-channel", "1-channel"]),
    ("uint16", ["dtype", "uint16", "uint8"]),
    ("size", ["size", "48x64", "32x32", "--size H W"]),
])
def test_synth_refuses_sources_that_disagree(work, capsys, kind, needles):
    if kind == "rgb":
        data = _data(work / "rgb", channels=3, size=(32, 32))
    elif kind == "uint16":
        data = _data(work / "u16", dtype=torch.uint16, size=(32, 32))
    else:
        data = work / "a"
    size = [] if kind == "size" else ["--size", "32", "32"]
    argv = ["synth", "--images", data / "images", "--masks", data / "masks", "--saaa", work / "model", "--n", "4", "--out", work / "mix", "--no-progress", "--keep-border", *size]
    check(capsys, work, argv, "SourceMix", *needles)
    assert not (work / "mix").exists()


def test_source_mix_checks_samples_of_variable_size(trained):
    from iaaa.saaa import SAAA
    from iaaa.sources import SourceMix

    model = SAAA.load(trained["model"])

    class Varying:  # 32 px when probed, 64 px afterwards: a source whose size varies
        calls = 0

        def sample(self, generator):
            Varying.calls += 1
            side = 32 if Varying.calls == 1 else 64
            return AnnotatedImage(torch.zeros(1, side, side, dtype=torch.uint8), torch.zeros(side, side, dtype=torch.int64))

    mix = SourceMix([model, Varying()], weights=[0, 1])
    with pytest.raises(IaaaError, match="source 1 \\(Varying\\) gave a 1-channel uint8 64x64 sample, the mix agreed on 1-channel uint8 32x32"):
        mix.sample(torch.Generator().manual_seed(0))


# ============================================================================ 4. model-file fields


def _edit_json(model: Path, path: list, value) -> None:
    meta = json.loads((model / "saaa.json").read_text())
    node = meta
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    (model / "saaa.json").write_text(json.dumps(meta))


def _edit_payload(model: Path, name: str, path: list, value) -> None:
    payload = torch.load(model / name, weights_only=True)
    node = payload
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    torch.save(payload, model / name)


FIELD_CASES = {
    "size-string": ("json", ["config", "size"], "64", "saaa.json", "config.size"),
    "sample-size-huge": ("json", ["config", "sample_size"], 2**20, "saaa.json", "config.sample_size"),
    "steps-float": ("json", ["config", "diffusion_steps"], 2.5, "saaa.json", "config.diffusion_steps"),
    "config-list": ("json", ["config"], [1, 2], "saaa.json", "'config'"),
    "scale-string": ("json", ["data", "scale"], "x", "saaa.json", "data.scale"),
    "dtype-unknown": ("json", ["data", "dtype"], "int8", "saaa.json", "data.dtype"),
    "channels-mismatch": ("json", ["data", "channels"], 2, "pix2pix.pt", "out_channels"),
    "scheduler-unknown": ("mask_diffusion.pt", ["config", "beta_schedule"], "cosine", "mask_diffusion.pt", "config.beta_schedule"),
    "sample-steps-5000": ("mask_diffusion.pt", ["config", "sample_steps"], 5000, "mask_diffusion.pt", "config.sample_steps"),
    "timesteps-1e9": ("mask_diffusion.pt", ["config", "num_train_timesteps"], 10**9, "mask_diffusion.pt", "config.num_train_timesteps"),
    "width-1e5": ("pix2pix.pt", ["config", "base"], 100_000, "pix2pix.pt", "config.base"),
    "width-mismatch": ("pix2pix.pt", ["config", "base"], 16, "pix2pix.pt", "state_dict"),
    "unknown-field": ("pix2pix.pt", ["config", "colour"], "red", "pix2pix.pt", "colour"),
    "state-dict-list": ("pix2pix.pt", ["state_dict"], [1, 2], "pix2pix.pt", "state_dict"),
    "state-dict-values": ("mask_diffusion.pt", ["state_dict", "conv_in.weight"], [0.0], "mask_diffusion.pt", "state_dict"),
}


@pytest.mark.parametrize("case", list(FIELD_CASES))
def test_hand_edited_model_fields_are_refused_on_load(work, capsys, case):
    where, path, value, file, field = FIELD_CASES[case]
    if where == "json":
        _edit_json(work / "model", path, value)
    else:
        _edit_payload(work / "model", where, path, value)
    if case == "channels-mismatch":  # consistent within saaa.json, not with the weights
        _edit_json(work / "model", ["data", "scale"], [0.5, 0.5])
    out = work / "synth"
    check(capsys, work, _sample(work / "model", out), file, field)
    assert not out.exists(), "a refused model left an output folder (a lone manifest.json)"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


@pytest.mark.parametrize("name", ["pix2pix.pt", "checkpoints/diffusion.ckpt"])
def test_code_carrying_files_refused_without_suggesting_to_disable_the_guard(work, capsys, name):
    torch.save({"format": "x", "payload": _Evil()}, work / "model" / name)
    if name.endswith(".ckpt"):  # the checkpoint is read when training resumes
        for f in ("saaa.json", "mask_diffusion.pt", "pix2pix.pt"):
            (work / "model" / f).unlink()
        argv = _fit(work / "a", work / "model")
    else:
        argv = _sample(work / "model", work / "synth")
    line = check(capsys, work, argv, name.split("/")[-1], "could run code", out=work / "model" / "checkpoints")
    assert "weights_only" not in line and "False" not in line
    assert not (Path.cwd() / "pwned.txt").exists()


@pytest.mark.parametrize("field, value, needle", [
    ("options", [1, 2], "field 'options'"),
    ("modules", [1, 2], "field 'modules'"),
    ("step", "many", "field 'step'"),
    ("generator", [0], "field 'generator'"),
])
def test_hand_edited_checkpoint_fields_are_refused(work, capsys, field, value, needle):
    for f in ("saaa.json", "mask_diffusion.pt", "pix2pix.pt"):
        (work / "model" / f).unlink()
    _edit_payload(work / "model", "checkpoints/diffusion.ckpt", [field], value)
    check(capsys, work, _fit(work / "a", work / "model"), "diffusion.ckpt", needle)


# ============================================================================ 4/5. resources under a memory limit
#
# One subprocess runs the cases under RLIMIT_AS = its address space after importing torch,
# diffusers and iaaa plus HEADROOM; the control subprocess shows each unguarded allocation
# needs more than HEADROOM.

HEADROOM = 1 << 30

_CONTROL_SCRIPT = r"""
import json, resource, sys
import torch
from torch import nn
from diffusers import DDPMScheduler
def vmsize():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
limit = vmsize() + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
unguarded = {
    "sample_size": lambda: torch.randn((1, 2, 2**20, 2**20)),  # the DDIM start noise of one 2**20 px canvas
    "width": lambda: nn.Conv2d(100_000, 100_000, 4),  # the first convolution of a base-100000 generator
    "timesteps": lambda: DDPMScheduler(num_train_timesteps=10**9),  # the noise schedule of 1e9 levels
    "crops": lambda: torch.empty((2 * 10_000, 1, 1024, 1024)),  # 2 images x 10000 crops of 1024 px
}
exceeded = {}
for kind, allocate in unguarded.items():
    try:
        allocate()
        exceeded[kind] = False
    except (MemoryError, RuntimeError):
        exceeded[kind] = True
print(json.dumps(exceeded))
"""


@pytest.fixture(scope="module")
def resource_runs(tmp_path_factory, trained):
    root = tmp_path_factory.mktemp("resources")
    cases = {}
    for name, where, path, value, needles in (
        ("sample_size", "json", ["config", "sample_size"], 2**20, ["saaa.json", "config.sample_size"]),
        ("width", "pix2pix.pt", ["config", "base"], 100_000, ["pix2pix.pt", "config.base"]),
        ("timesteps", "mask_diffusion.pt", ["config", "num_train_timesteps"], 10**9, ["mask_diffusion.pt", "config.num_train_timesteps"]),
    ):
        model = root / name / "model"
        shutil.copytree(trained["model"], model)
        if where == "json":
            _edit_json(model, path, value)
        else:
            _edit_payload(model, where, path, value)
        cases[name] = (_sample(model, root / name / "synth"), needles)
    cases["crops"] = (_fit(trained["a"], root / "crops" / "model", "--crops-per-image", "10000", "--size", "1024"), ["--crops-per-image", "--size", "GiB"])
    cases["sample_flag"] = (_sample(trained["model"], root / "flag" / "synth", "--size", "1048576"), ["--size", "2048"])
    names = list(cases)
    argvs = [[str(a) for a in cases[k][0]] for k in names]
    before = snapshot(root)
    results = dict(zip(names, cli_under_memory_limit(argvs, HEADROOM, ("diffusers", "iaaa.saaa", "iaaa.export", "iaaa.data"))))
    return {"cases": cases, "results": results, "before": before, "after": snapshot(root)}


@pytest.mark.parametrize("case", ["sample_size", "width", "timesteps", "crops", "sample_flag"])
def test_resource_case_refused_under_memory_limit(resource_runs, case):
    _, needles = resource_runs["cases"][case]
    res = resource_runs["results"][case]
    refused(res["rc"], res["err"].strip().splitlines(), *needles)
    assert resource_runs["before"] == resource_runs["after"], "a refused run created or changed files"


@pytest.fixture(scope="module")
def control_runs():
    """Which unguarded allocations fail under the same limit (one subprocess for all)."""
    proc = subprocess.run([sys.executable, "-c", _CONTROL_SCRIPT, str(HEADROOM)], capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["sample_size", "width", "timesteps", "crops"])
def test_resource_control_exceeds_headroom_without_guard(control_runs, kind):
    assert control_runs[kind], f"the unguarded {kind} allocation fitted in {HEADROOM} bytes: the case proves nothing"


# ============================================================================ 5. size-like options


@pytest.mark.parametrize("extra, needles", [
    (["--size", "4096"], ["--size", "[8, 1024]"]),
    (["--crops-per-image", "100000"], ["--crops-per-image", "10000"]),
    (["--batch-size", "100000", "2"], ["--batch-size DIFF", "256"]),
    (["--batch-size", "2", "0"], ["--batch-size P2P"]),
    (["--diffusion-channels", "100000", "8"], ["--diffusion-channels", "2048"]),
    (["--sample-steps", "5000"], ["--sample-steps", "1000"]),
    (["--pix2pix-depth", "40"], ["--pix2pix-depth", "[1, 8]"]),
])
def test_fit_size_options_bounded(work, capsys, extra, needles):
    check(capsys, work, _fit(work / "a", work / "new", *extra), *needles)
    assert not (work / "new").exists()


@pytest.mark.parametrize("extra, needles", [
    (["--size", "100000"], ["--size", "2048"]),
    (["--size", "36"], ["--size", "multiple of 8", "depth 3"]),
    (["--ddim-steps", "0"], ["--ddim-steps"]),
])
def test_sample_size_options_bounded(work, capsys, extra, needles):
    check(capsys, work, _sample(work / "model", work / "synth", *extra), *needles)
    assert not (work / "synth").exists()


@pytest.mark.parametrize("flag, value, bound", [("--image-size", "100000", "2048"), ("--crop-size", "5000", "1024"), ("--tile", "100000", "4096"), ("--batch-size", "0", "1"), ("--subsets", "1000000000", "100000")])
def test_evaluate_size_options_bounded(work, capsys, flag, value, bound):
    argv = ["evaluate", "--real", work / "a", "--synthetic", work / "b", flag, value, *(["--tile", "0"] if flag == "--image-size" else [])]
    check(capsys, work, argv, flag, bound)


@pytest.mark.parametrize("extra, needle", [
    (["--image-size", "64"], "--image-size: nothing reads it at --levels sco,mco,image (--image-size fits whole images: it goes with --tile 0)"),
    (["--levels", "sco", "--tile", "64"], "--tile: nothing reads it at --levels sco"),
    (["--levels", "image", "--crop-size", "32"], "--crop-size: nothing reads it at --levels image"),
])
def test_evaluate_size_options_nothing_reads_are_refused(work, capsys, extra, needle):
    """A size only one level (or --tile 0) reads, given where nothing does, would be ignored."""
    check(capsys, work, ["evaluate", "--real", work / "a", "--synthetic", work / "b", *extra], needle)


def test_search_recon_weight_goes_with_the_wae_scorer(work, capsys):
    check(capsys, work, ["search", "--images", work / "a" / "images", "--masks", work / "a" / "masks", "--out", work / "p.json", "--scorer", "stats",
                         "--recon-weight", "0.5"], "--recon-weight", "goes with --scorer wae")
    assert not (work / "p.json").exists()


def test_library_configs_carry_the_bounds():
    from iaaa.metrics import evaluate_fidelity
    from iaaa.saaa import SAAA, MaskDiffusionConfig, Pix2PixConfig, SAAAConfig

    with pytest.raises(IaaaError, match=r"^size: must be in \[8, 1024\], got 4096"):
        SAAAConfig(size=4096)
    with pytest.raises(IaaaError, match=r"^crops_per_image: must be in"):
        SAAA(crops_per_image=10**6)
    with pytest.raises(IaaaError, match=r"^sample_steps: must be in \[1, 1000\]"):
        MaskDiffusionConfig(sample_steps=5000)
    with pytest.raises(IaaaError, match=r"^base: must be an integer"):
        Pix2PixConfig(base=1e5)
    with pytest.raises(IaaaError, match=r"^image_size: must be an integer in \[16, 2048\]"):
        evaluate_fidelity([torch.zeros(1, 8, 8)], [torch.zeros(1, 8, 8)], levels=["image"], image_size=100_000)


def test_sampling_api_bounds(trained):
    from iaaa.saaa import SAAA

    model = SAAA.load(trained["model"])
    with pytest.raises(IaaaError, match=r"^size: must be in \[1, 2048\]"):
        model.diffusion.sample_labels(1, size=2**20)
    with pytest.raises(IaaaError, match=r"^steps: must be in \[1, 1000\]"):
        model.diffusion.sample_labels(1, steps=5000)


# ============================================================================ 8. tracebacks -> one line


@pytest.mark.parametrize("device, needle", [("bogus", "not a torch device"), ("cuda", "CUDA is not available"), ("cuda:0", "CUDA is not available")])
def test_bad_device_is_one_line(work, capsys, device, needle):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    check(capsys, work, _fit(work / "a", work / "new", "--device", device), "--device", needle)
    check(capsys, work, _sample(work / "model", work / "synth", "--device", device), "--device", needle)
    check(capsys, work, ["evaluate", "--real", work / "a", "--synthetic", work / "b", "--device", device], "--device", needle)
    # search and fit-wae printed torch's traceback from the first allocation before stop 53
    for cmd, out in (("search", work / "pol.json"), ("fit-wae", work / "wae.pt")):
        check(capsys, work, [cmd, "--images", work / "a" / "images", "--masks", work / "a" / "masks", "--out", out, "--device", device], "--device", needle)
    with pytest.raises(IaaaError, match=needle):
        from iaaa.saaa import SAAA

        SAAA.load(work / "model", device=device)


def test_fit_out_is_a_file(work, capsys):
    (work / "out_file").write_text("user data")
    check(capsys, work, _fit(work / "a", work / "out_file"), "out_file", "not a folder")


def test_fit_out_read_only(work, capsys):
    if not Path("/sys").is_dir():
        pytest.skip("needs /sys (read-only for every user on Linux)")
    check(capsys, work, _fit(work / "a", Path("/sys/iaaa-test-model")), "/sys/iaaa-test-model", "cannot create")


def test_fit_out_path_too_long(work, capsys):
    check(capsys, work, _fit(work / "a", work / ("m" * 300)), "File name too long")


def test_fit_full_disk_while_checkpointing(work, capsys, monkeypatch):
    real_save = torch.save

    def save(obj, f, *a, **k):
        if str(f).endswith(".ckpt") or ".ckpt." in str(f):
            raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file data/3: file write failed")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    out = work / "new"
    check(capsys, work, _fit(work / "a", out), "diffusion.ckpt", "cannot write", out=out)
    assert not [p for p in out.rglob("*") if ".iaaa-tmp" in p.name], "a half-written checkpoint was left behind"


def test_fit_full_disk_while_saving(work, capsys, monkeypatch):
    def save(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = work / "new"
    monkeypatch.setattr("iaaa.saaa.folder.torch.save", save)
    monkeypatch.setattr("iaaa.saaa.training.torch.save", save)
    check(capsys, work, _fit(work / "a", out), "No space left on device", out=out)
    assert not (out / "saaa.json").exists()


# ============================================================================ 9. destroyed input


@pytest.mark.parametrize("target", ["an input image", "a new file in the masks folder", "inside --synthetic"])
def test_preview_never_writes_over_or_into_its_inputs(work, capsys, target):
    synth = work / "synth"
    assert cli(capsys, *_sample(work / "model", synth))[0] == 0
    out = {"an input image": next((work / "a" / "images").glob("*.png")), "a new file in the masks folder": work / "a" / "masks" / "sheet.png",
           "inside --synthetic": synth / "images" / "sheet.png"}[target]
    argv = ["preview", "--images", work / "a" / "images", "--masks", work / "a" / "masks", "--synthetic", synth, "--out", out]
    check(capsys, work, argv, "--out", "input", out.name)


def test_preview_threads_option(work, capsys):
    rc, err = cli(capsys, "preview", "--images", work / "a" / "images", "--masks", work / "a" / "masks", "--out", work / "sheet.png", "--threads", "1")
    assert rc == 0 and (work / "sheet.png").is_file(), err
    check(capsys, work, ["preview", "--images", work / "a" / "images", "--masks", work / "a" / "masks", "--out", work / "s2.png", "--threads", "-1"], "--threads")


# ============================================================================ 10. errors after the expensive work


def test_fit_on_data_without_cells_refused_before_training(work, capsys):
    empty = _data(work / "empty", empty=True)
    out = work / "new"
    check(capsys, work, _fit(empty, out), "hold no cells")
    assert not out.exists(), "the refusal came after the model folder (and training) had started"


def test_fit_with_missing_perceptual_file_refused_before_training(work, capsys):
    out = work / "new"
    argv = [a if a != "none" else str(work / "vgg16.pth") for a in _fit(work / "a", out)]
    check(capsys, work, argv, "vgg16.pth", "no such perceptual weights file")
    assert not (out / "checkpoints" / "diffusion.ckpt").exists()


# ============================================================================ 11. wording


def test_size_rule_names_the_flag_and_the_real_rule(work, capsys):
    line = check(capsys, work, _fit(work / "a", work / "new", "--size", "36", "--pix2pix-depth", "4"), "--size", "multiple of 16", "36")
    assert "Config" not in line and "multiple of 2 " not in line
    line = check(capsys, work, _fit(work / "a", work / "new", "--size", "36", "--diffusion-channels", "8", "8", "8", "8", "8"), "--size", "multiple of 16", "U-Net")
    assert "Config" not in line


def test_fit_steps_beside_both_model_steps_is_refused(work, capsys):
    """--steps sets the steps of each model not given its own; beside both it would set nothing."""
    check(capsys, work, ["saaa", "fit", "--images", work / "a" / "images", "--masks", work / "a" / "masks", "--out", work / "m2",
                         "--steps", "5", "--diffusion-steps", "2", "--pix2pix-steps", "2"], "--steps", "would set nothing")
    assert not (work / "m2").exists()
