"""`iaaa fit-wae` and `iaaa search` end to end: files written, results loadable, one-line errors."""

from __future__ import annotations


import pytest
import torch

from iaaa.policy import PolicySet, load_wae


def cli(argv: list[str]) -> int:
    from iaaa.cli import main

    return main(argv)


@pytest.fixture(scope="module")
def sim_folder(tmp_path_factory):
    from iaaa.data import write_label_folder
    from iaaa.datasets import simulate_cells

    root = tmp_path_factory.mktemp("sim")
    write_label_folder(simulate_cells(4, seed=2, size=(256, 256)), root / "images", root / "masks")
    return root


TINY_WAE = ["--size", "16", "--channels", "8", "16", "--latent-dim", "4", "--epochs", "4", "--quiet"]
SMALL_SEARCH = ["--ops", "FlipLR,Rotate,Brightness", "--n-p", "2", "--n-m", "2", "--l-max", "2", "--top-b", "4", "--quiet"]


def test_fit_wae_then_search_then_load(sim_folder, tmp_path, capsys):
    data = ["--images", str(sim_folder / "images"), "--masks", str(sim_folder / "masks")]
    model = tmp_path / "wae.pt"
    assert cli(["fit-wae", *data, "--out", str(model), *TINY_WAE]) == 0
    out = capsys.readouterr().out
    assert "fit-wae:" in out and str(model) in out
    wae = load_wae(model)
    assert wae.config.size == (16, 16) and wae.config.latent_dim == 4

    policies = tmp_path / "policies.json"
    assert cli(["search", *data, "--out", str(policies), "--wae", str(model), *SMALL_SEARCH, "--weighting", "rank"]) == 0
    out = capsys.readouterr().out
    ps = PolicySet.load(policies)
    assert 1 <= len(ps) <= 4 and ps.weighting == "rank"
    meta = ps.meta["search"]
    # K = n_p * (1 + 2 + 2) = 10 candidates at level 1; level 2 extends each of the 3 kept
    # policies by the other two ops: (10 - 2) + (10 - 4) + (10 - 4)
    assert meta["evaluations"] == 10 + 8 + 6 + 6 and f"{meta['evaluations']} scorer evaluations" in out
    assert meta["space"] == ["FlipLR", "Rotate", "Brightness"] and meta["object_size"] == [16, 16]
    assert all(c >= 0.1 for c in ps.changes)
    assert ps.meta["objects"]["count"] >= 2
    # the file drives a policy on a real object
    img, lab = torch.zeros(1, 12, 12, dtype=torch.uint8), torch.zeros(12, 12, dtype=torch.long)
    lab[3:9, 2:8] = 1
    img[0][lab > 0] = 200
    a, b = ps(img, lab, torch.Generator().manual_seed(0))
    assert a.shape[-2:] == b.shape


def test_search_with_stats_scorer_is_deterministic(sim_folder, tmp_path):
    data = ["--images", str(sim_folder / "images"), "--masks", str(sim_folder / "masks")]
    outs = []
    for k in range(2):
        path = tmp_path / f"p{k}.json"
        assert cli(["search", *data, "--out", str(path), "--scorer", "stats", *SMALL_SEARCH, "--seed", "4"]) == 0
        d = PolicySet.load(path).to_dict()
        d["meta"]["search"].pop("seconds")
        outs.append(d)
    assert outs[0] == outs[1]


def test_search_trains_a_wae_when_none_is_given(sim_folder, tmp_path, capsys):
    data = ["--images", str(sim_folder / "images"), "--masks", str(sim_folder / "masks")]
    saved = tmp_path / "onthefly.pt"
    rc = cli(["search", *data, "--out", str(tmp_path / "p.json"), "--save-wae", str(saved), "--size", "16", *SMALL_SEARCH[:-1], "--max-evals", "12"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "training one" in captured.out and "stopped by budget" in captured.out
    assert load_wae(saved).config.size == (16, 16)
    assert PolicySet.load(tmp_path / "p.json").meta["search"]["evaluations"] <= 12


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--wae", "nowhere.pt"], "nowhere.pt: no such WAE model file"),
        (["--ops", "FlipLR,Twirl"], "--ops: unknown op(s) Twirl"),
        (["--scorer", "stats", "--wae", "x.pt"], "--wae and --save-wae go with --scorer wae"),
        (["--scorer", "stats", "--n-p", "0"], "--n-p must be >= 1"),
        (["--scorer", "stats", "--ops", "Sharpness", "--min-change", "5"], "min_change"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(sim_folder, tmp_path, capsys, extra, message):
    data = ["--images", str(sim_folder / "images"), "--masks", str(sim_folder / "masks")]
    rc = cli(["search", *data, "--out", str(tmp_path / "p.json"), "--n-m", "2", "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "p.json").exists()


def test_missing_data_folder_is_reported(tmp_path, capsys):
    rc = cli(["fit-wae", "--images", str(tmp_path / "none"), "--masks", str(tmp_path / "none"), "--out", str(tmp_path / "m.pt")])
    assert rc == 2
    assert "none" in capsys.readouterr().err


def test_real_data_search(dsb_fluo_dir, tmp_path):
    data = ["--images", str(dsb_fluo_dir / "images"), "--masks", str(dsb_fluo_dir / "masks")]
    model = tmp_path / "wae.pt"
    assert cli(["fit-wae", *data, "--out", str(model), *TINY_WAE, "--max-objects", "120"]) == 0
    path = tmp_path / "p.json"
    assert cli(["search", *data, "--out", str(path), "--wae", str(model), *SMALL_SEARCH, "--max-objects", "120"]) == 0
    ps = PolicySet.load(path)
    assert ps.meta["search"]["n_objects"] == 120 and len(ps) >= 1
