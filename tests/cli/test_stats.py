"""``iaaa stats`` describes what the compositor's pools keep: objects by mask contact (or the
paper's box rule), border objects left out, the share of real cells kept, and image groups."""

import pytest
import torch

from iaaa.commands.stats import dataset_stats
from iaaa.structures import AnnotatedImage


def _disk(lab: torch.Tensor, cy: int, cx: int, r: int, value: int) -> None:
    yy, xx = torch.meshgrid(torch.arange(lab.shape[0]), torch.arange(lab.shape[1]), indexing="ij")
    lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value


def _sample() -> AnnotatedImage:
    lab = torch.zeros(64, 64, dtype=torch.int64)
    lab[5:31, 5:9] = 1  # an L-shaped cell ...
    lab[27:31, 5:31] = 1
    lab[8:15, 20:27] = 2  # ... and a cell in its crook: boxes overlap, masks 11 px apart
    _disk(lab, 45, 20, 5, 3)  # two touching cells: one MCO either way
    _disk(lab, 45, 29, 5, 4)
    _disk(lab, 50, 62, 4, 5)  # touches the frame: left out unless keep_border
    image = (lab > 0).to(torch.uint8)[None] * 200 + 20
    return AnnotatedImage(image, lab, name="synthetic-case")


def test_mask_grouping_kept_share_and_groups():
    s = _sample()
    d = dataset_stats([s])
    assert (d["sco"], d["mco"]) == (2, 1)  # cells 1 and 2 apart, 3 + 4 touching, 5 on the border
    assert d["cells"] == 5 and d["cells_in_objects"] == 4 and abs(d["kept_share"] - 0.8) < 1e-9
    assert d["cells_per_mco"] == 2.0
    (key, group), = d["groups"].items()
    assert key.startswith("64x64") and group["images"] == 1 and group["cells_min"] == group["cells_max"] == 5


def test_box_grouping_merges_diagonal_neighbours_and_border_option():
    s = _sample()
    d = dataset_stats([s], grouping="box")
    assert (d["sco"], d["mco"]) == (0, 2) and d["cells_in_objects"] == 4
    d = dataset_stats([s], keep_border=True)
    assert (d["sco"], d["mco"]) == (3, 1) and d["kept_share"] == 1.0


def test_contact_figures_touching_share_length_and_clusters():
    s = _sample()
    c = dataset_stats([s])["contacts"]
    # Cells 3 and 4 touch (one pair), cells 1, 2 and 5 stand alone.
    assert (c["cells"], c["touching"]) == (5, 2) and abs(c["touching_share"] - 0.4) < 1e-9
    assert c["clusters"][:3] == [3, 1, 0] and abs(c["mean_cluster_size"] - 5 / 4) < 1e-9
    assert c["mean_contact_px"] > 0
    # Cells 1 and 2 lie 12 px apart at their closest (the reach bounds are the CLI's 1..8).
    assert dataset_stats([s], contact_reach=8)["contacts"]["touching"] == 2


def test_stats_command_prints_real_and_synthetic_contacts(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from iaaa.cli import main

    s = _sample()
    for d in ("img", "msk"):
        (tmp_path / d).mkdir()
    Image.fromarray(s.image[0].numpy()).save(tmp_path / "img" / "a.png")
    Image.fromarray(s.labels.numpy().astype(np.uint16)).save(tmp_path / "msk" / "a.png")
    assert main(["stats", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "msk")]) == 0
    out = capsys.readouterr().out
    assert "touching share" in out and "0.400" in out and "clusters of 1/2/3/4+ cells" in out


def test_exposure_levels_and_their_spread():
    """Two fields of one layout, exposed differently: the background and cell medians of each, and
    the ratio of their contrasts (what says a set mixes exposures)."""
    dim = _sample()
    bright = AnnotatedImage(((dim.labels > 0).to(torch.uint8) * 180 + 60)[None], dim.labels, name="bright")
    d = dataset_stats([dim, bright])["levels"]
    assert d["background"][0] == pytest.approx(20 / 255) and d["background"][2] == pytest.approx(60 / 255)
    assert d["cells"][0] == pytest.approx(220 / 255) and d["cells"][2] == pytest.approx(240 / 255)
    assert d["contrasted_images"] == 2 and d["contrast_spread"] == pytest.approx(200 / 180)
    assert d["match_intensity_auto"] is False  # 1.1x: one exposure
    dark = AnnotatedImage(((dim.labels > 0).to(torch.uint8) * 60 + 20)[None], dim.labels, name="dark")
    d = dataset_stats([dim, dark])["levels"]
    assert d["contrast_spread"] == pytest.approx(200 / 60) and d["match_intensity_auto"] is True
    assert dataset_stats([dim])["levels"]["contrast_spread"] == 1.0
    # cells as bright as the background (phase contrast on average): no contrast to compare
    flat = AnnotatedImage(torch.full_like(dim.image, 90), dim.labels, name="flat")
    d = dataset_stats([flat])["levels"]
    assert d["contrasted_images"] == 0 and d["contrast_spread"] is None
    assert dataset_stats([AnnotatedImage(dim.image, torch.zeros_like(dim.labels), name="empty")])["levels"]["cells"] is None


def test_cell_size_spread_and_what_object_scale_auto_resolves_to(capsys):
    """The ratio of the images' median cell diameters and the jitter ``object_scale="auto"``
    would apply: one image has nothing to compare; the same image at 2.5x is another size."""
    from iaaa.synthesis.object_policy import AUTO_OBJECT_SCALE

    s = _sample()
    d = dataset_stats([s])
    assert d["diameter_spread"] is None and d["object_scale_auto"] is None
    zoom = torch.nn.functional.interpolate(s.labels[None, None].float(), scale_factor=2.5, mode="nearest")[0, 0].long()
    big = AnnotatedImage(torch.nn.functional.interpolate(s.image[None].float(), scale_factor=2.5)[0].to(torch.uint8), zoom, name="big")
    d = dataset_stats([s, big])
    assert d["diameter_spread"] == pytest.approx(2.5, rel=0.05) and d["object_scale_auto"] == list(AUTO_OBJECT_SCALE)
    assert dataset_stats([s, s])["object_scale_auto"] is None
