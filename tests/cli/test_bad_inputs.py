"""Hostile and careless input (issue 14): every case ends in exit code 2 and ONE stderr line
naming the file, field or option at fault (CLI), or an IaaaError saying the same (API); memory
stays bounded; nothing outside the export is created, changed or deleted.

Sections follow the issue's six classes: resources, tracebacks, user files, silent wrong data,
layouts, smaller. Resource cases run in one subprocess under RLIMIT_AS (``cli_checks.cli_under_memory_limit``).
"""

from __future__ import annotations

import errno
import re
import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from cli_checks import check as _check, cli as _cli, cli_under_memory_limit, refused as _refused, snapshot as _snapshot
from iaaa.cli import main
from iaaa.data import read_dsb, read_image, read_label_folder, read_label_map, write_coco, write_image, write_label_folder
from iaaa.datasets import simulate_cells
from iaaa.errors import IaaaError
from iaaa.export import LOCK_FILE, export_synthetic

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- helpers


def _png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _dataset(root: Path, n: int = 2, size=(64, 72), dtype=torch.uint8) -> Path:
    sims = simulate_cells(n, seed=7, size=size, dtype=dtype, cells=(5, 8), radius=(5.0, 7.0))
    write_label_folder(sims, root / "images", root / "masks")
    return root


def _coco(path: Path, images: list[dict], annotations: list[dict]) -> Path:
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cell"}]}))
    return path


@pytest.fixture(scope="module")
def good_data(tmp_path_factory):
    return _dataset(tmp_path_factory.mktemp("good"))


@pytest.fixture
def work(tmp_path, good_data):
    """A folder with a copy of good annotated data in ``data/images`` and ``data/masks``."""
    shutil.copytree(good_data, tmp_path / "data")
    return tmp_path


def _synth_on(images: Path, masks: Path, out: Path, *extra, n: int = 2) -> list:
    return ["synth", "--images", images, "--masks", masks, "--n", n, "--out", out, "--no-progress", *extra]


def _synth(work: Path, out: Path, *extra, n: int = 2) -> list:
    return _synth_on(work / "data" / "images", work / "data" / "masks", out, *extra, n=n)


def _coco_case(work: Path, segmentation, size=(64, 72)) -> Path:
    h, w = size
    img = work / "cimg"
    _png(img / "a.png", np.full((h, w), 40, np.uint8))
    return _coco(work / "c.json", [{"id": 1, "file_name": "a.png", "height": h, "width": w}], [{"id": 5, "image_id": 1, "category_id": 1, "segmentation": segmentation}])


# ============================================================================ 1. resources
#
# One subprocess runs all resource cases through `iaaa synth` under RLIMIT_AS = its own address
# space after importing torch and iaaa (about 3.3 GB for the CUDA build of torch, nearly all of it
# reserved, not touched) plus HEADROOM. A control subprocess shows each bad file needs more than
# HEADROOM without the guards: pycocotools segfaults on the polygons, the TIFF decodes raise
# MemoryError.

HEADROOM = 1 << 30

_CONTROL_SCRIPT = r"""
import resource, sys
import numpy as np
def vmsize():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
kind, arg = sys.argv[1], sys.argv[2]
if kind == "polygon":
    from pycocotools import mask
    poly = [float(v) for v in arg.split(",")]
elif kind == "tiff":
    import tifffile
limit = vmsize() + int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    if kind == "polygon":
        mask.decode(mask.merge(mask.frPyObjects([poly], 64, 72)))
    else:
        np.asarray(tifffile.imread(arg)).astype(np.int64)
except MemoryError:
    sys.exit(3)
print("decoded within the limit")
"""

_NAN_POLYGON = [10.0, 10.0, float("nan"), 20.0, 30.0, 40.0]
_HUGE_POLYGON = [-1e7, -1e7, 1e7, -1e7, 1e7, 1e7, -1e7, 1e7]


def _declared_tiff(path: Path, h: int, w: int, dtype) -> Path:
    """A tiny compressed TIFF whose header declares an h x w image (the strips hold 16x16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.ones((16, 16), dtype), compression="zlib")
    with tifffile.TiffFile(path, mode="r+b") as tf:
        tf.pages[0].tags["ImageWidth"].overwrite(w)
        tf.pages[0].tags["ImageLength"].overwrite(h)
    return path


def _declared_png(path: Path, h: int, w: int) -> Path:
    """A 16x16 PNG whose IHDR declares h x w (CRC fixed, so only the size lies)."""
    _png(path, np.zeros((16, 16), np.uint8))
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def resource_runs(tmp_path_factory):
    """The resource cases, their CLI results under the memory limit, and the files involved."""
    root = tmp_path_factory.mktemp("resources")
    good = _dataset(root / "good")
    cases = {}
    for name, poly in (("nan_polygon", _NAN_POLYGON), ("huge_polygon", _HUGE_POLYGON)):
        d = root / name
        _png(d / "img" / "a.png", np.full((64, 72), 40, np.uint8))
        _coco(d / "c.json", [{"id": 1, "file_name": "a.png", "height": 64, "width": 72}], [{"id": 9, "image_id": 1, "segmentation": [poly]}])
        cases[name] = (["synth", "--coco", d / "c.json", "--images", d / "img", "--n", "1", "--out", d / "out", "--no-progress"], "c.json", "annotation 9")
    # a real 150 KB 12000x12000 uint8 label map: 144 Mpx, over PIL's 89.5 Mpx; 1.15 GB as int64 labels
    lab = root / "big_labels"
    shutil.copytree(good / "images", lab / "images")
    shutil.copytree(good / "masks", lab / "masks")
    stem = sorted((lab / "masks").glob("*.png"))[0]
    stem.unlink()
    tiles = (np.zeros((1024, 1024), np.uint8) for _ in range(12 * 12))
    tifffile.imwrite(lab / "masks" / f"{stem.stem}.tif", tiles, shape=(12000, 12000), dtype=np.uint8, tile=(1024, 1024), compression="zlib")
    cases["tiff_labels_12000"] = (["synth", "--images", lab / "images", "--masks", lab / "masks", "--n", "1", "--out", lab / "out", "--no-progress"], f"{stem.stem}.tif", "IAAA_MAX_PIXELS")
    # a header declaring a 40000x40000 uint16 image: 3.2 GB decoded
    img = root / "big_image"
    _declared_tiff(img / "images" / "x.tif", 40000, 40000, np.uint16)
    _png(img / "masks" / "x.png", np.zeros((16, 16), np.uint8))
    cases["tiff_image_40000"] = (["synth", "--images", img / "images", "--masks", img / "masks", "--n", "1", "--out", img / "out", "--no-progress"], "x.tif", "IAAA_MAX_PIXELS")
    # a PNG declaring 30000x30000 (PIL's own bomb guard, reported the same way)
    png = root / "big_png"
    _declared_png(png / "images" / "x.png", 30000, 30000)
    _png(png / "masks" / "x_masks.png", np.zeros((16, 16), np.uint8))
    cases["png_image_30000"] = (["synth", "--images", png / "images", "--masks", png / "masks", "--n", "1", "--out", png / "out", "--no-progress"], "x.png", "IAAA_MAX_PIXELS")
    names = list(cases)
    argvs = [[str(a) for a in cases[k][0]] for k in names]
    before = _snapshot(root)
    preload = ("iaaa.synthesis.compositor", "iaaa.export", "iaaa.data", "pycocotools.mask", "tifffile", "PIL.Image")
    results = dict(zip(names, cli_under_memory_limit(argvs, HEADROOM, preload)))
    return {"cases": cases, "results": results, "root": root, "before": before, "after": _snapshot(root)}


@pytest.mark.parametrize("case", ["nan_polygon", "huge_polygon", "tiff_labels_12000", "tiff_image_40000", "png_image_30000"])
def test_resource_case_refused_under_memory_limit(resource_runs, case):
    argv, *needles = resource_runs["cases"][case]
    res = resource_runs["results"][case]
    _refused(res["rc"], res["err"].strip().splitlines(), *needles)
    assert resource_runs["before"] == resource_runs["after"], "a refused run created or changed files"


@pytest.mark.parametrize("poly", [_NAN_POLYGON, _HUGE_POLYGON], ids=["nan", "huge"])
def test_resource_control_polygon_exceeds_headroom_without_guard(poly):
    proc = subprocess.run([sys.executable, "-c", _CONTROL_SCRIPT, "polygon", ",".join(map(str, poly)), str(HEADROOM)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "decoded within the limit" not in proc.stdout  # segfault (-11) or MemoryError (3)


def test_resource_control_tiffs_exceed_headroom_without_guard(resource_runs):
    # The 40000^2 header is only a header, so its case rests on the declared size; the 12000^2
    # label map is a real file, and decoding it as the unguarded reader did runs out of memory.
    assert 40000 * 40000 * 2 > HEADROOM and 12000 * 12000 * 8 > HEADROOM
    lab = next((resource_runs["root"] / "big_labels" / "masks").glob("*.tif"))
    assert lab.stat().st_size < 200_000
    proc = subprocess.run([sys.executable, "-c", _CONTROL_SCRIPT, "tiff", str(lab), str(HEADROOM)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr[-500:])  # MemoryError


def test_max_pixels_env_lowers_and_raises_the_limit(tmp_path, monkeypatch):
    p = tifffile.imwrite(tmp_path / "a.tif", np.zeros((40, 50), np.uint16)) or tmp_path / "a.tif"
    monkeypatch.setenv("IAAA_MAX_PIXELS", "1000")
    with pytest.raises(IaaaError, match=r"a\.tif: declares a 40x50 image .*IAAA_MAX_PIXELS"):
        read_image(p)
    monkeypatch.setenv("IAAA_MAX_PIXELS", "2000")
    assert read_image(p).shape == (1, 40, 50)
    monkeypatch.setenv("IAAA_MAX_PIXELS", "lots")
    with pytest.raises(IaaaError, match="IAAA_MAX_PIXELS='lots' is not an integer"):
        read_image(p)


# ============================================================================ 2. tracebacks


@pytest.mark.parametrize(
    "segmentation, needle",
    [
        ({"size": [64, 72], "counts": [5, 3]}, "cover 8 pixels"),  # uncompressed, runs short of 64*72
        ({"size": [64, 72], "counts": "abc"}, "compressed RLE counts end in the middle"),
        ({"size": [64, 72], "counts": "PP9"}, "cover"),  # compressed counts that do not add up
        ({"size": [64, 72], "counts": "0"}, "cover 0 pixels"),  # pycocotools decodes this from stray memory
        ({"size": [64, 72], "counts": "0\x7f"}, "outside the RLE alphabet"),
        ({"size": [32, 32], "counts": [1024]}, "RLE size [32, 32] differs"),
        ({"size": [64, 72], "counts": {"a": 1}}, "counts must be a list or a string"),
        ([[1.0, 2.0, 3.0]], "even number of coordinates"),
        ("polygon", "unsupported segmentation type str"),
    ],
    ids=["rle-short", "rle-truncated", "rle-garbage", "rle-stray-memory", "rle-alphabet", "rle-size", "rle-counts-type", "odd-polygon", "seg-type"],
)
def test_malformed_segmentation_names_file_and_annotation(work, capsys, segmentation, needle):
    js = _coco_case(work, segmentation)
    _check(capsys, work, ["stats", "--coco", js, "--images", work / "cimg"], "c.json", "annotation 5", "a.png", needle)


@pytest.mark.parametrize("seed", range(5))
def test_rle_string_counts_match_pycocotools(seed):
    from pycocotools import mask as mask_utils

    from iaaa.data.coco import rle_string_counts

    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 60, size=2)
    m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(m))
    runs = rle_string_counts(rle["counts"])
    flat = m.flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    expected = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat[0] == 1:
        expected = [0] + expected
    assert runs == expected and sum(runs) == h * w


def test_read_only_output_folder(work, capsys):
    if not Path("/sys").is_dir():
        pytest.skip("needs /sys (read-only for every user on Linux)")
    _check(capsys, work, _synth(work, Path("/sys/iaaa-test-out")), "/sys/iaaa-test-out", "cannot create")


def test_read_only_target_on_rename(work, capsys, monkeypatch):
    # As root a chmod does not stop writes, so the rename fails the way a read-only folder does.
    def deny(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr("iaaa.data.imageio.os.replace", deny)
    argv = ["stats", "--images", work / "data" / "images", "--masks", work / "data" / "masks", "--json", work / "stats.json"]
    _check(capsys, work, argv, "stats.json", "cannot write", "Permission denied")  # its temporary is gone too


@pytest.mark.parametrize("workers", [0, 1])
def test_full_disk_mid_export(work, capsys, monkeypatch, workers):
    calls = {"n": 0}
    real_save = Image.Image.save

    def save(self, fp, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save)
    out = work / "out"
    # with a loader worker (forked, so it inherits the patch) the error still arrives as one line
    _check(capsys, work, _synth(work, out, "--workers", workers), str(out), "No space left on device", out=out)
    assert not [p for p in out.rglob("*") if ".iaaa-tmp" in p.name]  # no half-written file left
    assert not (out / LOCK_FILE).exists()


def test_out_is_a_file(work, capsys):
    (work / "out_file").write_text("user data")
    _check(capsys, work, _synth(work, work / "out_file"), "out_file", "not a folder")


def test_json_is_a_folder(work, capsys):
    (work / "stats_dir").mkdir()
    argv = ["stats", "--images", work / "data" / "images", "--masks", work / "data" / "masks", "--json", work / "stats_dir"]
    _check(capsys, work, argv, "stats_dir", "cannot write")


def test_output_piped_into_head_exits_quietly(work):
    cmd = [sys.executable, "-m", "iaaa", "stats", "--images", str(work / "data" / "images"), "--masks", str(work / "data" / "masks")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.close()  # the reader is gone before the table is printed, as with `| head -0`
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == b""


def test_corrupt_png_names_file(work, capsys):
    victim = sorted((work / "data" / "images").glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:60])
    _check(capsys, work, ["stats", "--images", work / "data" / "images", "--masks", work / "data" / "masks"], victim.name, "corrupt or unreadable")


@pytest.mark.parametrize(
    "doc, needle",
    [
        ([], "expected a JSON object"),
        ({"images": [{"id": 1, "file_name": "a.png", "height": "tall"}], "annotations": []}, "images[0]"),
        ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"id": "x", "image_id": 1, "segmentation": []}]}, "non-integer id"),
        ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [], "categories": [{"name": "cell"}]}, "'categories'"),
    ],
    ids=["not-object", "bad-height", "bad-ann-id", "bad-category"],
)
def test_malformed_coco_fields(work, capsys, doc, needle):
    _png(work / "cimg" / "a.png", np.zeros((16, 16), np.uint8))
    (work / "c.json").write_text(json.dumps(doc))
    _check(capsys, work, ["stats", "--coco", work / "c.json", "--images", work / "cimg"], "c.json", needle)


# ============================================================================ 3. user files


def test_foreign_nonempty_out_untouched(work, capsys):
    out = work / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "mine.png").write_bytes(b"precious")
    (out / "images" / ".draft.png.tmp1").write_text("notes")
    (out / "annotations.json").write_text("{}")
    _check(capsys, work, _synth(work, out), str(out), "not empty", "manifest.json")


def test_foreign_manifest_is_not_an_export(work, capsys):
    out = work / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"project": "mine"}')
    _check(capsys, work, _synth(work, out), "manifest.json", "not a manifest written by iaaa")


def test_out_inside_the_inputs(work, capsys):
    _check(capsys, work, _synth(work, work / "data" / "images" / "synthetic"), "lies inside the input", "images")


def test_inputs_inside_out_api(work):
    from iaaa.synthesis import CellCompositor

    comp = CellCompositor(seed=0).fit(read_label_folder(work / "data" / "images", work / "data" / "masks"))
    before = _snapshot(work)
    with pytest.raises(IaaaError, match="contains the input"):
        export_synthetic(comp, 1, work, inputs=[work / "data" / "images"], progress=False)
    assert _snapshot(work) == before


def test_concurrent_run_refused(work, capsys):
    out = work / "out"
    out.mkdir()
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running export holds it
        _check(capsys, work, _synth(work, out), str(out), "another iaaa export is writing")
    finally:
        os.close(fd)


def test_resume_on_changed_inputs_refused(work, capsys):
    out = work / "out"
    assert _cli(capsys, *_synth(work, out))[0] == 0
    assert len(json.loads((out / "manifest.json").read_text())["inputs_sha256"]) == 64
    # the same data with one pixel of one image edited: a resume would mix two datasets
    img = sorted((work / "data" / "images").glob("*.png"))[0]
    arr = np.asarray(Image.open(img)).copy()
    arr[0, 0] ^= 1
    Image.fromarray(arr).save(img)
    _check(capsys, work, _synth(work, out), str(out), "input files changed", "inputs_sha256")


def test_resume_deletes_only_iaaa_temporaries(work, capsys):
    out = work / "out"
    assert _cli(capsys, *_synth(work, out))[0] == 0
    ours = out / "images" / ".synth_000001.png.k2j4h6g8.iaaa-tmp.png"
    theirs = [out / "images" / ".synth_000001.x1y2z3.tmp.png", out / "images" / ".notes.tmp", out / "images" / ".other.png.k2j4h6g8.iaaa-tmp.png"]
    for p in [ours, *theirs]:
        p.write_bytes(b"x")
    assert _cli(capsys, *_synth(work, out))[0] == 0
    assert not ours.exists()
    assert all(p.read_bytes() == b"x" for p in theirs)


def test_api_writers_stay_inside_their_folder(tmp_path):
    sims = simulate_cells(1, seed=2, size=(32, 32))
    bad = sims[0].__class__(sims[0].image, sims[0].labels, None, name="../escaped")
    for write in (lambda: write_label_folder([bad], tmp_path / "o" / "i", tmp_path / "o" / "m"), lambda: write_coco([bad], tmp_path / "o" / "c.json", tmp_path / "o" / "i")):
        with pytest.raises(IaaaError, match=r"'\.\./escaped' is not a plain file name"):
            write()
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_foreign_out(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    _check(capsys, tmp_path, ["demo", "--out", out, "--n", "2", "--synthetic", "1"], "--out", "not an earlier iaaa demo")


def test_demo_refuses_simulator_options_beside_a_folder(work, capsys):
    """--n, --mode and --size shape simulated data; beside --images they would be ignored (a
    user asking for --n 2 got 16 synthetic images without a word)."""
    for extra, named in ((["--n", "2"], "--n: a simulator option"), (["--size", "64", "64", "--mode", "brightfield"], "--mode, --size: simulator options")):
        _check(capsys, work, ["demo", "--images", work / "data" / "images", "--masks", work / "data" / "masks", "--out", work / "demo", *extra],
               named)
        assert not (work / "demo").exists()


def test_options_that_would_be_ignored_are_refused(work, capsys):
    """An option that only matters beside another one, given without it, is refused naming it:
    --saaa-weight without both --saaa and input data (nothing to mix), --wae / --inception-weights
    with other --features (the extractor that reads them is not used)."""
    _check(capsys, work, [*_synth(work, work / "o"), "--saaa-weight", "0.3"], "--saaa-weight", "needs both --saaa and input data")
    assert not (work / "o").exists()
    real = ["evaluate", "--real-images", work / "data" / "images", "--real-masks", work / "data" / "masks", "--synthetic-images", work / "data" / "images",
            "--synthetic-masks", work / "data" / "masks", "--features", "stats"]
    _check(capsys, work, [*real, "--wae", work / "model.pt"], "--wae: goes with --features wae")
    _check(capsys, work, [*real, "--inception-weights", work / "w.pth"], "--inception-weights: goes with --features inception")


def test_demo_refuses_out_around_its_input(work, capsys):
    _check(capsys, work, ["demo", "--images", work / "data" / "images", "--masks", work / "data" / "masks", "--out", work / "data" / "images" / "demo"], "overlaps --images")


# ============================================================================ 4. silent wrong data


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--sigma", "2", "--compositor", "sigma=3"], "--sigma and --compositor sigma=3: both set the compositor option placement.sigma"),
        (["--compositor", "sigma=2", "placement.sigma=3"], "--compositor sigma=2 and --compositor placement.sigma=3: both set"),
        (["--compositor", "count=4", "--compositor", "count=4"], "--compositor count=4 and --compositor count=4: both set the compositor option count.count"),
        (["--size", "64", "64", "--compositor", "size=(32,32)"], "--size and --compositor size=(32,32): both set the compositor option size"),
    ],
    ids=["flag-and-pair", "flat-and-dotted", "pair-twice", "size-twice"],
)
def test_synth_option_given_twice_is_refused(work, capsys, extra, needle):
    """One compositor option set by two flags would let one of them silently win."""
    _check(capsys, work, _synth(work, work / "o", *extra), needle)
    assert not (work / "o").exists()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--sigma", "nan"], "--sigma: expected a finite number"),
        (["--sigma", "inf"], "--sigma: expected a finite number"),
        (["--sigma", "-1"], "--sigma: must be in [0.0, 50.0]"),
        (["--sigma", "1e9"], "--sigma: must be in [0.0, 50.0]"),
        (["--count", "-3"], "--count"),
        (["--size", "1", "1"], "--size"),
    ],
    ids=["sigma-nan", "sigma-inf", "sigma-negative", "sigma-huge", "count-negative", "size-tiny"],
)
def test_synth_numeric_options(work, capsys, extra, needle):
    _check(capsys, work, _synth(work, work / "out", *extra), needle)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["evaluate", "--real", "{d}", "--synthetic", "{d}", "--value-range", "0", "inf"], "--value-range HI: must be a finite number"),
        (["evaluate", "--real", "{d}", "--synthetic", "{d}", "--value-range", "nan", "1"], "--value-range LO: must be a finite number"),
        (["search", "--images", "{i}", "--masks", "{m}", "--out", "{o}", "--scorer", "stats", "--min-change", "nan"], "--min-change"),
        (["search", "--images", "{i}", "--masks", "{m}", "--out", "{o}", "--scorer", "stats", "--recon-weight", "inf"], "--recon-weight"),
        (["search", "--images", "{i}", "--masks", "{m}", "--out", "{o}", "--scorer", "stats", "--time-budget=-1"], "--time-budget: must be > 0"),
        (["fit-wae", "--images", "{i}", "--masks", "{m}", "--out", "{o}", "--lr", "nan"], "--lr: must be a finite number"),
        (["fit-wae", "--images", "{i}", "--masks", "{m}", "--out", "{o}", "--lambda-mmd=-inf"], "--lambda-mmd"),
    ],
    ids=["eval-inf", "eval-nan", "search-min-change", "search-recon", "search-budget", "wae-lr", "wae-lambda"],
)
def test_other_float_options(work, capsys, argv, needle):
    d = work / "data"
    argv = [a.format(d=d, i=d / "images", m=d / "masks", o=work / "out.json") for a in argv]
    _check(capsys, work, argv, needle)


def _float_dataset(root: Path, image: np.ndarray) -> Path:
    (root / "images").mkdir(parents=True)
    tifffile.imwrite(root / "images" / "f.tif", image)
    labels = np.zeros(image.shape, np.uint16)
    labels[10:20, 10:20] = 1
    _png(root / "masks" / "f.png", labels)
    return root


@pytest.mark.parametrize("bad, needle", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (4080.0, "divide by the sensor maximum")], ids=["nan", "inf", "raw-units"])
def test_float_image_values(tmp_path, capsys, bad, needle):
    img = np.full((40, 40), 0.25, np.float32)
    img[5, 5] = bad
    d = _float_dataset(tmp_path / "float", img)
    _check(capsys, tmp_path, _synth_on(d / "images", d / "masks", tmp_path / "out"), "f.tif", needle)


def test_float_image_in_unit_range_is_read(tmp_path):
    d = _float_dataset(tmp_path, np.linspace(0, 1, 1600, dtype=np.float32).reshape(40, 40))
    (s,) = read_label_folder(d / "images", d / "masks")
    assert s.image.dtype == torch.float32 and float(s.image.max()) == 1.0 and s.num_instances == 1


def test_nan_option_never_reaches_manifest_api(work):
    from iaaa.synthesis import CellCompositor

    comp = CellCompositor(seed=0).fit(read_label_folder(work / "data" / "images", work / "data" / "masks"))
    with pytest.raises(IaaaError, match="NaN or infinite"):
        export_synthetic(comp, 1, work / "out", manifest={"compositor": {"sigma": float("nan")}}, progress=False)
    assert not (work / "out").exists()


# ============================================================================ 5. layouts


def test_cellpose_layout_one_folder(tmp_path, capsys):
    sims = simulate_cells(2, seed=4, size=(48, 56))
    write_label_folder(sims, tmp_path / "i", tmp_path / "m")
    d = tmp_path / "cp"
    d.mkdir()
    for img in sorted((tmp_path / "i").glob("*.png")):
        shutil.copy(img, d / img.name)
        shutil.copy(tmp_path / "m" / img.name, d / f"{img.stem}_masks.png")
    (d / f"{sims[0].name}_flows.tif").write_bytes(b"cellpose flow field")
    with pytest.warns(UserWarning, match="_flows"):
        back = read_label_folder(d, d)
    assert [b.name for b in back] == [s.name for s in sims]
    for b, s in zip(back, sims):
        assert torch.equal(b.labels, s.labels) and torch.equal(b.image, s.image)
    with pytest.warns(UserWarning, match="_flows"):
        rc, err = _cli(capsys, "stats", "--images", d, "--masks", d)
    assert rc == 0 and err == []


def test_dsb_case_without_masks(tmp_path, capsys):
    _png(tmp_path / "dsb" / "c1" / "images" / "c1.png", np.zeros((16, 16), np.uint8))
    _png(tmp_path / "dsb" / "c1" / "masks" / "m.png", np.pad(np.full((4, 4), 255, np.uint8), 6))
    _png(tmp_path / "dsb" / "c2" / "images" / "c2.png", np.zeros((16, 16), np.uint8))
    _check(capsys, tmp_path, ["stats", "--dsb", tmp_path / "dsb"], "c2", "no masks/ folder")


def test_dsb_masks_holding_a_label_map(tmp_path, capsys):
    lab = np.zeros((16, 16), np.uint8)
    lab[2:6, 2:6], lab[8:12, 8:12] = 1, 2
    _png(tmp_path / "c1" / "images" / "c1.png", np.zeros((16, 16), np.uint8))
    _png(tmp_path / "c1" / "masks" / "all.png", lab)
    with pytest.raises(IaaaError, match=r"all\.png: holds 3 distinct values.*--images/--masks"):
        read_dsb(tmp_path)
    _check(capsys, tmp_path, ["stats", "--dsb", tmp_path], "all.png", "binary")


def test_jpeg_label_map_refused(work, capsys):
    masks = work / "jpg_masks"
    masks.mkdir()
    for m in sorted((work / "data" / "masks").glob("*.png")):
        Image.open(m).convert("L").save(masks / f"{m.stem}.jpg")
    _check(capsys, work, ["stats", "--images", work / "data" / "images", "--masks", masks], ".jpg", "JPEG label maps are lossy")


@pytest.mark.parametrize(
    "images, needle",
    [
        ([{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}], "image id 1 is listed twice"),
        ([{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "a.png"}], "file_name 'a.png' is listed twice"),
        ([{"id": 1, "file_name": "../secret.png"}], "points outside"),
        ([{"id": 1, "file_name": "/etc/secret.png"}], "points outside"),
        ([{"id": 1, "file_name": "sub/../../secret.png"}], "points outside"),
    ],
    ids=["dup-id", "dup-name", "dotdot", "absolute", "nested-dotdot"],
)
def test_coco_image_entries(work, capsys, images, needle):
    _png(work / "cimg" / "a.png", np.zeros((16, 16), np.uint8))
    _png(work / "cimg" / "b.png", np.zeros((16, 16), np.uint8))
    _png(work / "secret.png", np.zeros((16, 16), np.uint8))  # would be read through '..'
    _coco(work / "c.json", images, [])
    _check(capsys, work, ["stats", "--coco", work / "c.json", "--images", work / "cimg"], "c.json", needle)


def test_tiny_image_among_normal_ones(work, capsys):
    _png(work / "data" / "images" / "zz_tiny.png", np.zeros((1, 1), np.uint8))
    _png(work / "data" / "masks" / "zz_tiny.png", np.zeros((1, 1), np.uint8))
    _check(capsys, work, _synth(work, work / "out"), "zz_tiny.png", "1x1 px")


@pytest.mark.parametrize("side", [2, 3, 4, 8])
def test_small_rgb_png_is_channel_last(tmp_path, side):
    rgb = np.arange(side * side * 3, dtype=np.uint8).reshape(side, side, 3)
    p = _png(tmp_path / "rgb.png", rgb)
    assert torch.equal(read_image(p), torch.from_numpy(rgb).permute(2, 0, 1))


# ============================================================================ 6. smaller


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_honour_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        p = write_image(tmp_path / "a.png", torch.zeros(1, 8, 8, dtype=torch.uint8))
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask


def test_export_files_honour_umask(work, capsys):
    old = os.umask(0o002)
    try:
        assert _cli(capsys, *_synth(work, work / "out", n=1))[0] == 0
    finally:
        os.umask(old)
    modes = {p.stat().st_mode & 0o777 for p in (work / "out").rglob("*") if p.is_file()}
    assert modes == {0o664}


def test_cli_messages_name_flags_not_keywords(tmp_path, capsys):
    # Cells of 9 pixels are debris to the compositor (min_area=10, no flag for it): the
    # library's advice names a Python keyword, the CLI's line must not.
    d = tmp_path / "tiny"
    _png(d / "images" / "a.png", np.full((24, 24), 90, np.uint8))
    lab = np.zeros((24, 24), np.uint8)
    lab[5:8, 5:8] = 1
    lab[14:17, 14:17] = 2
    _png(d / "masks" / "a.png", lab)
    line = _check(capsys, tmp_path, _synth_on(d / "images", d / "masks", tmp_path / "out"), "too small")
    assert "min_area" not in line and "keep_border" not in line
    assert not re.search(r"\b[a-z_]+=(True|False|\.\.\.)", line)


def test_label_overflow_not_blamed_on_negative_labels(tmp_path):
    lab = np.zeros((16, 16), np.uint64)
    lab[2:5, 2:5] = np.uint64(2**63 + 5)
    tifffile.imwrite(tmp_path / "l.tif", lab)
    with pytest.raises(IaaaError, match=r"l\.tif: label values up to 9223372036854775813 do not fit int64") as info:
        read_label_map(tmp_path / "l.tif")
    assert "negative" not in str(info.value)


@pytest.mark.parametrize("cut", ["header", "half"])
def test_corrupt_tiff_reported_as_corrupt(tmp_path, cut):
    tifffile.imwrite(tmp_path / "ok.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    data = (tmp_path / "ok.tif").read_bytes()
    bad = tmp_path / "bad.tif"
    bad.write_bytes(data[:8] + b"\0" * 100 if cut == "header" else data[: len(data) // 2])
    with pytest.raises(IaaaError, match=r"bad\.tif: corrupt") as info:
        read_image(bad)
    assert "shape" not in str(info.value)


def test_binary_masks_refused_by_every_reader_path(tmp_path, capsys):
    # Semantic masks (0 / 255) saved where instance label maps belong: every cell of an image
    # would be one "instance". Refused by the folder reader (CLI) and by fit (API).
    sims = simulate_cells(3, seed=11, size=(96, 96), cells=(6, 9), radius=(5.0, 8.0))
    for s in sims:
        _png(tmp_path / "data" / "images" / f"{s.name}.png", s.image[0].numpy())
        _png(tmp_path / "data" / "masks" / f"{s.name}.png", ((s.labels.numpy() > 0) * 255).astype(np.uint8))
    _check(capsys, tmp_path, _synth_on(tmp_path / "data" / "images", tmp_path / "data" / "masks", tmp_path / "out"),
           "sim_0000.png: label value 255 covers", "binary (semantic) masks")
    from iaaa import AnnotatedImage, CellCompositor

    binary = [AnnotatedImage(s.image, (s.labels > 0).to(torch.int64) * 255, name=s.name) for s in sims]
    with pytest.raises(IaaaError, match=r"sim_0000: label value 255 covers \d+ separate regions"):
        CellCompositor().fit(binary, progress=False)


def test_wrapped_8bit_label_map_refused(tmp_path, capsys):
    # 300 cells saved as 8-bit: ids past 255 wrap (cell 256 becomes background, 257 shares id 1).
    lab = np.zeros((200, 300), np.int64)
    k = 0
    for y in range(2, 198, 10):
        for x in range(2, 298, 20):
            k += 1
            lab[y : y + 6, x : x + 6] = k
    assert k > 260
    _png(tmp_path / "data" / "images" / "a.png", (lab > 0).astype(np.uint8) * 200)
    mask = _png(tmp_path / "data" / "masks" / "a.png", (lab % 256).astype(np.uint8))
    with pytest.raises(IaaaError, match=r"a\.png: 8-bit label map numbered up to 255 .* wrapped around"):
        read_label_map(mask)
    _check(capsys, tmp_path, ["stats", "--images", tmp_path / "data" / "images", "--masks", tmp_path / "data" / "masks"], "a.png", "16-bit PNG")
    # 255 cells in 8 bits are fine.
    _png(tmp_path / "ok.png", np.where(lab <= 255, lab, 0).astype(np.uint8))
    assert int(read_label_map(tmp_path / "ok.png").max()) == 255


def test_swapped_image_and_mask_folders_refused(work, capsys):
    # --images pointing at the masks and --masks at the images: the "label maps" are intensities.
    data = work / "data"
    _check(capsys, work, _synth_on(data / "masks", data / "images", work / "out"), "neighbouring labelled pixels differ", "swapped")
