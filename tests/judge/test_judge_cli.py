"""``iaaa judge`` on the command line: the issue's run prints everything it promises; every bad
option ends in exit 2 with one stderr line naming it, before any training, and nothing outside
the named output is created, changed or deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iaaa.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, one_thread):
    from iaaa.data import write_label_folder
    from iaaa.datasets import simulate_cells

    root = tmp_path_factory.mktemp("judge_cli")
    write_label_folder(simulate_cells(4, seed=5, size=(48, 48), cells=(3, 6)), root / "tr" / "images", root / "tr" / "masks")
    write_label_folder(simulate_cells(1, seed=6, size=(48, 48), cells=(3, 6)), root / "te" / "images", root / "te" / "masks")
    write_label_folder([(torch.zeros(1, 48, 48, dtype=torch.uint8), torch.zeros(48, 48, dtype=torch.int64))], root / "empty" / "images", root / "empty" / "masks")
    return root


def _common(root: Path) -> list[str]:
    return ["judge", "--images", str(root / "tr" / "images"), "--masks", str(root / "tr" / "masks"),
            "--test-images", str(root / "te" / "images"), "--test-masks", str(root / "te" / "masks"),
            "--steps", "4", "--crop", "24", "--batch", "2", "--width", "4", "--depth", "2", "--seeds", "0,1", "--quiet"]


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"", p.lstat().st_mode) for p in sorted(root.rglob("*"))}


def test_issue_run_prints_the_table_intervals_and_curve(folders, capsys):
    out = folders / "j.json"
    (folders / "j.json.tmp").write_text("not ours")  # an unrelated file beside the target survives
    rc = main([*_common(folders), "--protocol", "add", "--pool", "2", "--train-limit", "2", "--folds", "4", "--compositor", "sigma=0", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    for word in ("mean AP", "AP@0.5", "F1@0.5", "[95% CI]", "real learning curve", "ceiling", "iaaa+aug", "naive", "iaaa[sigma=0]"):
        assert word in text, word
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"real", "aug", "naive", "iaaa", "iaaa+aug", "iaaa[sigma=0]"}
    assert data["settings"]["recipe"]["protocol"] == "add" and len(data["settings"]["folds"]) == 4
    assert all(len(runs) == 8 for runs in data["results"].values())  # 4 folds x 2 seeds
    assert (folders / "j.json.tmp").read_text() == "not ours"
    assert not [p for p in folders.iterdir() if p.name.startswith(".j.json")]


BAD = [
    (["--ratio", "0"], "--ratio"), (["--ratio", "inf"], "--ratio"), (["--ratio", "nan"], "--ratio"), (["--p", "1.5"], "--p"),
    (["--crop", "100000"], "--crop"), (["--crop", "2"], "--crop"), (["--pool", "1000000"], "--pool"), (["--scale", "0.001"], "--scale"),
    (["--scale", "inf"], "--scale"), (["--steps", "0"], "--steps"), (["--device", "bogus"], "--device"), (["--seeds", "a"], "--seeds"),
    (["--folds", "3"], "--folds"), (["--train-limit", "0"], "--train-limit"), (["--train-limit", "9"], "--train-limit"),
    (["--arms", "real,magic"], "magic"), (["--arms", "real+aug"], "--arms"), (["--compositor", "nonsense=1"], "nonsense"),
    (["--compositor", "sigma=big"], "sigma"), (["--compositor", "sigma=1e999"], "sigma"), (["--compositor", "size=ab"], "size"),
    (["--compositor", "seed=x"], "seed"), (["--lr", "-1"], "--lr"), (["--width", "100000"], "--width"),
    (["--train-limit", "1", "--folds", "2", "--only-folds", "2"], "--only-folds"), (["--only-folds", "a"], "--only-folds"),
    (["--aug-scale", "2,0.5"], "--aug-scale"), (["--aug-scale", "0,1"], "--aug-scale"), (["--aug-scale", "1"], "--aug-scale"),
    (["--aug-scale", "a,b"], "--aug-scale"), (["--aug-scale", "0.8,inf"], "--aug-scale"),
    (["--aug-photometric", "-1"], "--aug-photometric"), (["--aug-photometric", "nan"], "--aug-photometric"),
    (["--paste-context", "whole"], "--paste-context"), (["--paste-context", "0.5"], "--paste-context"),
]
if not torch.cuda.is_available():
    BAD.append((["--device", "cuda"], "--device"))


@pytest.mark.parametrize("bad,word", BAD)
def test_bad_options_one_line_before_training(folders, capsys, bad, word):
    before = _snapshot(folders)
    out = folders / "bad.json"
    rc = main([*_common(folders), "--steps", "100000", *bad, "--json", str(out)])  # a run that got to training would not end
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and word in err[0], (rc, err)
    assert _snapshot(folders) == before


@pytest.mark.parametrize("given, arms, named", [
    (["--p", "0.3"], "real,aug,iaaa", "--p: no arm of this run reads it (--p: --protocol online"),
    (["--ratio", "2"], "real,aug", "--ratio: no arm"),
    (["--protocol", "online", "--ratio", "2"], "real,naive", "--ratio: no arm"),
    (["--pool", "3", "--p", "0.2"], "real,naive", "--p, --pool: no arm of this run reads them"),
    (["--paste-context", "2"], "real,iaaa", "--paste-context: no arm"),
    (["--paste-scale", "working"], "real,iaaa-online", "--paste-scale: no arm"),  # at --scale 1 nothing is resized
])
def test_options_no_arm_reads_are_refused(folders, capsys, given, arms, named):
    """An option only some arms or protocols read, given where none does, would be recorded in
    the report and change nothing: one line naming it and what would read it, before training."""
    rc = main([*_common(folders), "--steps", "100000", "--arms", arms, *given])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and named in err[0], err


def test_options_an_arm_reads_are_taken(folders, capsys):
    for extra in (["--protocol", "online", "--arms", "real,naive", "--p", "0.3"], ["--arms", "real,iaaa-online", "--paste-context", "2", "--ratio", "0.5"]):
        assert main([*_common(folders), "--seeds", "0", "--steps", "2", *extra]) == 0
    capsys.readouterr()


def test_regime_parts_merge_on_the_command_line(folders, capsys, tmp_path):
    """Two --only-folds runs and a later arm run beside a shared arm, put together by --merge:
    the table of the whole, the differences against --baseline, the merged JSON; a part that does
    not pair and a file that is not a report end in one line naming them."""
    regime = ["--train-limit", "1", "--folds", "2", "--seeds", "0"]
    paths = [tmp_path / f"{n}.json" for n in ("f0", "f1", "late")]
    for only, arms, path in (("0", "real,aug", paths[0]), ("1", "real,aug", paths[1]), ("0,1", "aug,naive", paths[2])):
        assert main([*_common(folders), *regime, "--only-folds", only, "--arms", arms, "--json", str(path)]) == 0
    capsys.readouterr()
    merged = tmp_path / "merged.json"
    assert main(["judge", "--merge", *map(str, paths), "--baseline", "aug", "--json", str(merged)]) == 0
    out = capsys.readouterr().out
    assert "paired against aug:" in out and "real learning curve" in out
    data = json.loads(merged.read_text())
    assert set(data["results"]) == {"real", "aug", "naive"}
    assert all(len(data["results"][a]) == 2 for a in data["results"]) and data["settings"]["recipe"]["only_folds"] is None
    assert main(["judge", "--merge", *map(str, paths), "--per-image", "aug"]) == 0
    out = capsys.readouterr().out
    assert "per test image" in out and "Δ vs aug" in out and "naive (2)" in out
    tampered = json.loads(paths[2].read_text())
    tampered["results"]["aug"]["fold1/seed0"]["mean_ap"] += 0.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tampered))
    (tmp_path / "junk.json").write_text("not json")
    for args, word in (([str(paths[0]), str(paths[1]), str(bad)], "not paired"), ([str(paths[0]), str(tmp_path / "junk.json")], "junk.json"),
                       ([str(paths[0]), str(paths[1]), "--baseline", "iaaa"], "--baseline iaaa"),
                       ([str(paths[0]), str(paths[1]), "--per-image", "iaaa"], "--per-image iaaa")):
        assert main(["judge", "--merge", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0], err


def test_meaningless_data_refused_before_training(folders, capsys):
    c = _common(folders)
    for test_dir, word in ((folders / "empty", "no cell"), (folders / "tr", "also a training image")):
        args = [*c, "--steps", "100000"]
        args[args.index("--test-images") + 1] = str(test_dir / "images")
        args[args.index("--test-masks") + 1] = str(test_dir / "masks")
        rc = main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and word in err[0], err


@pytest.mark.parametrize("target,word", [("folder", "is a folder"), ("missing/x.json", "does not exist"), ("/dev/null", "not a regular file")])
def test_json_target_refused_before_the_run(folders, capsys, target, word):
    before = _snapshot(folders)
    path = folders if target == "folder" else (Path(target) if target.startswith("/") else folders / target)
    rc = main([*_common(folders), "--steps", "100000", "--json", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--json" in err[0] and word in err[0], err
    assert _snapshot(folders) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_json_in_read_only_folder(folders, capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc = main([*_common(folders), "--steps", "100000", "--json", str(ro / "r.json")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "--json" in err[0]
    finally:
        ro.chmod(0o700)


def test_json_on_a_full_disk_is_refused_before_the_run(folders, tmp_path):
    # A file-size limit makes every write past 64 KiB fail like a full disk (EFBIG instead of
    # ENOSPC); a run that started training would take minutes, the refusal takes a second.
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "from iaaa.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-c", script, *_common(folders), "--steps", "100000", "--json", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "--json" in err[0], proc.stderr
    assert list(tmp_path.iterdir()) == []
