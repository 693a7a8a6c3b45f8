"""CompositorConfig: typed, bounded, documented fields; flat and dotted options; JSON round trip;
the presets; measured values kept in the fitted pools; the typed paste record; no old paths."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iaaa.errors import IaaaError
from iaaa.synthesis import (
    BackgroundConfig, CellCompositor, CompositorConfig, CountConfig, LayoutConfig, ObjectConfig, PastedWindows, PlacementConfig,
)
from iaaa.synthesis.config import STAGE_CONFIGS, option_names

pytestmark = pytest.mark.usefixtures("one_thread")


def _leaves() -> list[tuple[str | None, str, type]]:
    out = [(None, f.name, CompositorConfig) for f in dataclasses.fields(CompositorConfig) if f.name not in STAGE_CONFIGS]
    for stage, cls in STAGE_CONFIGS.items():
        out += [(stage, f.name, cls) for f in dataclasses.fields(cls)]
    return out


def test_every_field_is_documented_unique_and_round_trips():
    names = [n for _, n, _ in _leaves()]
    assert len(names) == len(set(names)), "a flat option name must name one field"
    assert set(option_names()) == set(names)
    for stage, name, cls in _leaves():
        assert name in (cls.__doc__ or ""), f"{cls.__name__}.{name} is not documented"
    for stage in STAGE_CONFIGS:
        assert stage in CompositorConfig.__doc__
    for config in (CompositorConfig(), CompositorConfig.paper()):
        text = json.dumps(config.to_dict())
        assert CompositorConfig.from_dict(json.loads(text)) == config


def test_paper_preset_is_the_papers_rules_and_default_is_the_librarys():
    p = CompositorConfig.paper()
    assert (p.objects.grouping, p.background.background_method, p.rim, p.onto, p.group_by) == ("box", "paper", False, "background", None)
    assert (p.count.count, p.count.count_cap, p.placement.rounds, p.placement.match_sigma) == ("mode", False, 1, 0.0)
    d = CompositorConfig()
    assert (d.objects.grouping, d.background.background_method, d.rim, d.onto, d.group_by, d.count.count_cap) == ("mask", "mask", True, "image", "auto", False)
    assert CellCompositor().config == d


def test_flat_and_dotted_options_resolve_to_one_field():
    c = CompositorConfig().replace(grouping="box", sigma=2.0, background_sigma=3.0, layout="source", count=(3, 9))
    assert (c.objects.grouping, c.placement.sigma, c.background.background_sigma, c.layout.layout, c.count.count) == ("box", 2.0, 3.0, "source", (3, 9))
    assert CompositorConfig().replace(**{"placement.sigma": 2.0}) == CompositorConfig().replace(sigma=2.0)
    # A whole stage by its name; later flat fields apply on top of it.
    c = CompositorConfig().replace(layout=LayoutConfig(layout="source", layout_mix=0.5), layout_sigma=4.0)
    assert c.layout == LayoutConfig(layout="source", layout_mix=0.5, layout_sigma=4.0)
    with pytest.raises(IaaaError, match=r"^colour: unknown compositor option; valid: .*sigma"):
        CompositorConfig().replace(colour=3)
    with pytest.raises(IaaaError, match=r"^placement.colour: unknown"):
        CompositorConfig().replace(**{"placement.colour": 3})


@pytest.mark.parametrize(
    "options, line",
    [
        ({"sigma": "big"}, "--compositor sigma: expected a number, got 'big'"),
        ({"size": "ab"}, "--compositor size: expected an integer or a pair of integers or none, got 'ab'"),
        ({"sigma": "1e999"}, "--compositor sigma: expected a finite number, got '1e999'"),
        ({"sigma": "1e4"}, "--compositor sigma: must be in [0.0, 50.0], got 10000.0"),
        ({"sigma": "1e6"}, "--compositor sigma: must be in [0.0, 50.0], got 1000000.0"),
        ({"count": "1000000000"}, "--compositor count: must be in [0, 10000], got 1000000000"),
        ({"size": str(2**20)}, "--compositor size: must be in [8, 16384], got 1048576"),
        ({"grouping": "circle"}, "--compositor grouping: expected 'box' or 'mask', got 'circle'"),
        ({"rim": "maybe"}, "--compositor rim: expected true or false, got 'maybe'"),
        ({"count": "6-2"}, "--compositor count: range must satisfy lo <= hi, got (6, 2)"),
    ],
)
def test_command_line_values_fail_with_one_line_naming_the_option(options, line):
    with pytest.raises(IaaaError) as info:
        CompositorConfig.from_options(options, option="--compositor")
    assert str(info.value) == line


def test_command_line_values_parse_to_the_field_types():
    c = CompositorConfig.from_options({"sigma": "2", "size": "144,176", "count": "6-12", "rim": "false", "group_by": "none", "halo": "3", "mco_fraction": "0.25", "gap": "none"})
    assert (c.placement.sigma, c.size, c.count.count, c.rim, c.group_by, c.halo, c.count.mco_fraction, c.placement.gap) == (2.0, (144, 176), (6, 12), False, None, 3, 0.25, None)
    assert CompositorConfig.from_options({"halo": "auto", "count": "mode"}).count.count == "mode"


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: BackgroundConfig(background_patch=0), "background_patch"),
        (lambda: BackgroundConfig(background_method="median"), "background_method"),
        (lambda: BackgroundConfig(background_level_sigma=1e4), "background_level_sigma"),
        (lambda: LayoutConfig(layout="grid"), "layout"),
        (lambda: LayoutConfig(layout_mix=2.0), "layout_mix"),
        (lambda: PlacementConfig(collision="circle"), "collision"),
        (lambda: PlacementConfig(rounds=0), "rounds"),
        (lambda: PlacementConfig(sigma=float("nan")), "sigma"),
        (lambda: PlacementConfig(n_candidates=2.5), "n_candidates"),
        (lambda: ObjectConfig(min_area=0), "min_area"),
        (lambda: ObjectConfig(keep_border=1), "keep_border"),
        (lambda: CountConfig(count=-1), "count"),
        (lambda: CountConfig(count=10**9), "count"),
        (lambda: CompositorConfig(object_scale=(2.0, 1.0)), "object_scale"),
        (lambda: CompositorConfig(size=2**20), "size"),
        (lambda: CompositorConfig(halo=-1), "halo"),
        (lambda: CompositorConfig(placement={"sigma": 1.0}), "placement"),
        (lambda: CompositorConfig.from_dict({"placement": {"sigma": "2"}}), "sigma"),
        (lambda: CompositorConfig.from_dict({"placement": {"colour": 2}}), "compositor config: unknown key 'placement.colour'"),
        (lambda: CompositorConfig.from_dict({"colour": 2}), "compositor config: unknown key 'colour'"),
    ],
)
def test_bad_values_name_the_field(make, name):
    with pytest.raises(IaaaError, match=f"^{name}"):
        make()
    assert issubclass(IaaaError, ValueError)


@settings(max_examples=40, deadline=None)
@given(
    sigma=st.floats(0, 50), layout_mix=st.floats(0, 1), count=st.one_of(st.integers(0, 10_000), st.sampled_from(["sample", "mode", "background"])),
    size=st.one_of(st.none(), st.tuples(st.integers(8, 16384), st.integers(8, 16384))), rim=st.booleans(),
    grouping=st.sampled_from(["box", "mask"]), halo=st.one_of(st.just("auto"), st.integers(0, 256)),
)
def test_any_valid_config_round_trips_through_json(sigma, layout_mix, count, size, rim, grouping, halo):
    c = CompositorConfig().replace(sigma=sigma, layout_mix=layout_mix, count=count, size=size, rim=rim, grouping=grouping, halo=halo)
    assert CompositorConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_callables_are_refused_by_to_dict_not_written():
    c = CompositorConfig(group_by=lambda s: s.size)
    with pytest.raises(IaaaError, match="^group_by: a callable cannot be written to JSON"):
        c.to_dict()


def test_compositor_keywords_are_few_and_checked():
    with pytest.raises(TypeError, match="collision"):
        CellCompositor(collision="mask")
    with pytest.raises(IaaaError, match="^config: expected a CompositorConfig, got dict"):
        CellCompositor({"collision": "mask"})
    with pytest.raises(IaaaError, match="^seed:"):
        CellCompositor(seed=-1)


def test_fit_keeps_the_users_config_and_records_measured_values_in_the_pools(sim_small):
    config = CompositorConfig().replace(keep_border=True, group_by=None)
    comp = CellCompositor(config, policy="identity").fit(sim_small, progress=False)
    assert comp.config is config and comp.config == CompositorConfig().replace(keep_border=True, group_by=None)
    (pool,) = comp.pools.groups.values()
    assert pool.halo >= 0 and pool.rim == pool.halo  # rim=True carries the measured halo
    assert pool.context == comp._context(pool.rim) and pool.context >= comp.context
    assert comp.radius == config.placement.radius + pool.rim
    no_rim = CellCompositor(config.replace(rim=False), policy="identity").fit(sim_small, progress=False)
    assert next(iter(no_rim.pools.groups.values())).rim == 0


def test_sample_records_typed_windows(sim_small):
    comp = CellCompositor(CompositorConfig().replace(keep_border=True), seed=0, policy="identity").fit(sim_small, progress=False)
    out = comp.sample(torch.Generator().manual_seed(0))
    rec = out.meta["windows"]
    assert isinstance(rec, PastedWindows)
    assert sorted(rec.ids.tolist()) == list(range(1, out.num_instances + 1))
    for i, (x0, y0, x1, y1) in zip(rec.ids.tolist(), rec.boxes.tolist()):
        ys, xs = torch.nonzero(out.labels == i, as_tuple=True)
        assert x0 <= int(xs.min()) and int(xs.max()) <= x1 and y0 <= int(ys.min()) and int(ys.max()) <= y1
    assert out.meta["background_source"] in {s.name for s in sim_small} | {f"sample{i}" for i in range(len(sim_small))}


@pytest.mark.parametrize("old", ["compositor", "objects", "background", "placement", "layout", "object_policy", "compositor_stats"])
def test_old_paths_are_gone(old):
    import iaaa

    # Looked up in the package's own folder (an editable install elsewhere may map iaaa.* too).
    assert importlib.machinery.PathFinder.find_spec(f"iaaa.{old}", list(iaaa.__path__)) is None


def test_one_public_name_per_stage_function():
    import iaaa.synthesis as syn

    for gone in ("fill", "fill_background", "place", "extract", "STAGES"):
        assert gone not in syn.__all__
    for kept in ("extract_objects", "remove_cells", "place_objects", "CompositorConfig"):
        assert kept in syn.__all__ and getattr(syn, kept) is not None


def test_option_field_names_the_field_a_flat_or_dotted_name_sets():
    from iaaa.synthesis.config import option_field

    assert option_field("sigma") == option_field("placement.sigma") == "placement.sigma"
    assert option_field("size") == "size" and option_field("count") == "count.count"
    for bad in ("bogus", "placement.bogus"):
        with pytest.raises(IaaaError, match=bad):
            option_field(bad)
