"""The synthesis stage configs: validated once, routed from CellCompositor keywords, usable as
positional configs; the typed paste record; the deprecated module paths."""

from __future__ import annotations

import importlib

import pytest
import torch

from iaaa.errors import IaaaError
from iaaa.synthesis import BackgroundConfig, CellCompositor, CountConfig, LayoutConfig, ObjectConfig, PastedWindows, PlacementConfig
from iaaa.synthesis.compositor import STAGES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"background_patch": 0}, "background_patch"),
        ({"background_method": "median"}, "background_method"),
        ({"background_candidates": 0}, "background_candidates"),
        ({"layout": "grid"}, "layout"),
        ({"layout_mix": 2.0}, "layout_mix"),
        ({"collision": "circle"}, "collision"),
        ({"rounds": 0}, "rounds"),
        ({"min_area": 0}, "min_area"),
        ({"count": -1}, "count"),
        ({"object_scale": (2.0, 1.0)}, "object_scale"),
    ],
)
def test_bad_option_names_the_keyword(kwargs, name):
    with pytest.raises(IaaaError, match=f"^{name}:"):
        CellCompositor(**kwargs)
    assert issubclass(IaaaError, ValueError)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="background_colour"):
        CellCompositor(background_colour=3)
    with pytest.raises(TypeError, match="stage configs"):
        CellCompositor({"collision": "mask"})
    with pytest.raises(TypeError, match="two PlacementConfig"):
        CellCompositor(PlacementConfig(), PlacementConfig())


def test_keywords_and_configs_build_the_same_compositor():
    by_kw = CellCompositor(collision="mask", layout="source", layout_sigma=8.0, count="background", background_patch=4, margin=2, min_area=5)
    by_cfg = CellCompositor(
        PlacementConfig(collision="mask"), LayoutConfig("source", sigma=8.0), CountConfig("background"),
        BackgroundConfig(patch=4, margin=2), ObjectConfig(margin=2, min_area=5),
    )
    for attr in ("placement_config", "layout_config", "count_config", "background_config", "object_config"):
        assert getattr(by_kw, attr) == getattr(by_cfg, attr), attr
    # margin serves extraction and cell removal alike, as the single keyword always did.
    assert by_kw.background_config.margin == by_kw.object_config.margin == 2
    # A keyword overrides the field of a positional config, and is validated again.
    over = CellCompositor(PlacementConfig(collision="mask", rounds=2), rounds=3)
    assert (over.placement_config.collision, over.placement_config.rounds) == ("mask", 3)
    with pytest.raises(IaaaError, match="^rounds:"):
        CellCompositor(PlacementConfig(), rounds=0)


def test_every_config_field_is_reachable_by_keyword_or_derived():
    import dataclasses

    from iaaa.synthesis.compositor import _KEYWORDS

    routed = {(cls, f) for cls, f in _KEYWORDS.values()}
    for cls, (_, aliases) in STAGES.items():
        for f in dataclasses.fields(cls):
            assert (cls, f.name) in routed or aliases.get(f.name, "") is None, (cls.__name__, f.name)


def test_sample_records_typed_windows(sim_small):
    comp = CellCompositor(seed=0, keep_border=True, policy="identity").fit(sim_small)
    out = comp.sample(torch.Generator().manual_seed(0))
    rec = out.meta["windows"]
    assert isinstance(rec, PastedWindows)
    assert sorted(rec.ids.tolist()) == list(range(1, out.num_instances + 1))
    for i, (x0, y0, x1, y1) in zip(rec.ids.tolist(), rec.boxes.tolist()):
        ys, xs = torch.nonzero(out.labels == i, as_tuple=True)
        assert x0 <= int(xs.min()) and int(xs.max()) <= x1 and y0 <= int(ys.min()) and int(ys.max()) <= y1


@pytest.mark.parametrize(
    "old, new",
    [
        ("iaaa.compositor", "iaaa.synthesis.compositor"),
        ("iaaa.objects", "iaaa.synthesis.objects"),
        ("iaaa.background", "iaaa.synthesis.background"),
        ("iaaa.placement", "iaaa.synthesis.placement"),
        ("iaaa.layout", "iaaa.synthesis.layout"),
        ("iaaa.object_policy", "iaaa.synthesis.object_policy"),
        ("iaaa.compositor_stats", "iaaa.synthesis.pools"),
    ],
)
def test_old_paths_reexport(old, new):
    mod, home = importlib.import_module(old), importlib.import_module(new)
    assert "deprecated" in (mod.__doc__ or "").lower()
    assert mod.__all__
    for name in mod.__all__:
        assert getattr(mod, name) is getattr(home, name, getattr(mod, name)), name
    assert any(hasattr(home, name) for name in mod.__all__)
