"""CompositorConfig: every choice of a :class:`~iaaa.synthesis.compositor.CellCompositor` in one
frozen, validated, JSON-ready dataclass.

Its fields are the stage configs (``objects``: :class:`~iaaa.synthesis.objects.ObjectConfig`,
``background``: :class:`~iaaa.synthesis.background.BackgroundConfig`, ``layout``:
:class:`~iaaa.synthesis.layout.LayoutConfig`, ``placement``:
:class:`~iaaa.synthesis.placement.PlacementConfig`, ``count``:
:class:`~iaaa.synthesis.draws.CountConfig`, ``paste``: :class:`~iaaa.synthesis.paste.PasteConfig`) plus the choices that span stages (``size``,
``object_scale``, ``object_stretch``, ``object_warp``, ``group_by``, ``halo``, ``rim``, ``onto``, ``match_intensity``). Every leaf field has one name that
is unique over the whole tree, so a flat ``KEY=VALUE`` (``sigma=2``, ``grouping=box``) names
exactly one field; the dotted ``stage.field`` (``placement.sigma``) always works too.

Values the compositor *measures* from the data (each group's halo, the rim its objects carry,
the context kept around them) are never written here: they live in the fitted
:class:`~iaaa.synthesis.pools.GroupPool` s.

Two presets: ``CompositorConfig()`` is the library's default (what the downstream judge measured
best among the IAAA options, docs/synthesis.md section 5) and :meth:`CompositorConfig.paper` the
paper's rules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage
from iaaa.synthesis.background import BackgroundConfig
from iaaa.synthesis.checks import bounded, check, field_hints, parse_text, validate
from iaaa.synthesis.layout import LayoutConfig
from iaaa.synthesis.objects import ObjectConfig
from iaaa.synthesis.placement import PlacementConfig
from iaaa.synthesis.draws import CountConfig
from iaaa.synthesis.paste import PasteConfig

__all__ = ["CompositorConfig", "STAGE_CONFIGS", "option_names", "option_field"]

STAGE_CONFIGS: dict[str, type] = {
    "objects": ObjectConfig,
    "background": BackgroundConfig,
    "layout": LayoutConfig,
    "placement": PlacementConfig,
    "count": CountConfig,
    "paste": PasteConfig,
}
"""The stage fields of :class:`CompositorConfig` and their config classes."""


@dataclass(frozen=True)
class CompositorConfig:
    """Every choice of a :class:`~iaaa.synthesis.compositor.CellCompositor` (see module docs).

    Attributes:
        objects: which cells form one object (:class:`~iaaa.synthesis.objects.ObjectConfig`).
        background: how cells are removed (:class:`~iaaa.synthesis.background.BackgroundConfig`).
        layout: where candidate positions come from (:class:`~iaaa.synthesis.layout.LayoutConfig`).
        placement: placement and blending (:class:`~iaaa.synthesis.placement.PlacementConfig`).
        count: cells per image and MCO share (:class:`~iaaa.synthesis.draws.CountConfig`).
        paste: what the online :class:`~iaaa.synthesis.paste.PasteCells` pastes into a sample
            (:class:`~iaaa.synthesis.paste.PasteConfig`: objects per call, over the sample's
            cells or into its free space); :meth:`sample` does not read it.
        size: output ``(H, W)`` (an int: square); ``None`` uses the drawn background's own size.
            Larger backgrounds are cropped at a random offset, smaller ones mirror-tiled.
        object_scale: ``None``, a factor, or ``(lo, hi)`` (drawn log-uniformly): objects are
            resized before their policy (:class:`~iaaa.synthesis.object_policy.RandomScale`).
            ``"auto"``: ``(0.5, 2.0)``
            (:data:`~iaaa.synthesis.object_policy.AUTO_OBJECT_SCALE`) where the fitted images
            vary in cell size (their median cell diameters spread by more than 1.6x,
            :func:`~iaaa.synthesis.image_groups.varied_cell_sizes`), ``None`` otherwise; what
            it resolved to is ``CompositorStats.object_scale``. ``"auto"`` is the default
            (judged without aug against no resizing: DSB 4 images +0.023 mean AP over 8 paired
            runs, 7 above, large nuclei no longer split into fragments; DSB all 17 images +0.012,
            3 of 3 seeds above; off, so unchanged, on the phase-contrast fields the judge trains
            on; benchmarks/downstream.md); ``None`` never resizes (the paper; :meth:`paper`
            sets it).
        object_stretch: ``None`` (default) or a factor ``a >= 1``: the default per-object
            policy (:class:`~iaaa.synthesis.object_policy.ObjectAugment`) also changes every
            object's aspect ratio by a factor drawn log-uniformly from ``(1/a, a)`` (area kept,
            before its random rotation), which gives cell shapes the data does not hold. Only
            the default policy reads it: with ``policy=...`` given it is refused. Judged at
            ``a = 1.5`` against the default (8 paired runs each, stop 49): usiigaci 2 fields
            -0.003 mean AP, DSB 4 images -0.007 (benchmarks/downstream.md, "Stretched
            objects"), so it is not the default.
        object_warp: how the default per-object policy (:class:`~iaaa.synthesis.object_policy.ObjectAugment`)
            and ``object_scale`` move a pooled object. ``"separate"``: the resize, then the
            rotation onto a canvas that holds the whole rotated crop, the contrast taken about
            that canvas's mean. ``"fused"``: both in one resampling computed only over the
            pixels placement uses (the mask's box grown by the rim and feather radius), the
            contrast about that window's mean
            (:func:`~iaaa.synthesis.object_warp.warp_within_reach`); the same random draws.
            Other policies always run as given, after the resize. ``"separate"`` is the
            default (computed, with the same bits, only over the pixels placement uses where it
            can: :func:`~iaaa.synthesis.object_warp.separate_within_reach`): fused is 1.26x
            faster in ``PasteCells`` and 1.63x in ``sample()`` on DSB than it (stop 53) but was
            judged -0.006 mean AP there over two seeds (usiigaci -0.001; 8 paired runs each,
            rule -0.005, benchmarks/downstream.md, stops 46 and 53).
        group_by: ``None`` (one pool), ``"size"`` (group images by their size), ``"auto"``
            (default: by size and median cell diameter, :mod:`iaaa.synthesis.image_groups`) or a
            callable ``sample -> key`` (not JSON-writable). With groups, a synthetic image takes
            its cell count, MCO share, objects and halo from the group of its background.
        halo: pixels around every mask that belong to the cell in the image (phase-contrast
            halo, blurred rim): ``"auto"`` (default) measures it per group
            (:func:`iaaa.synthesis.halo.measure_halo`), or an int. Used by mask grouping (what a
            crop keeps), mask background removal (what is removed) and ``rim``. The measured
            value is kept in the fitted group pools, not here.
        rim: objects carry their halo: the paste's alpha covers the mask grown by the halo,
            feathered at its outer edge; labels get the exact mask.
        onto: ``"image"`` (default: pasted into the free space of the real image itself, its
            cells and labels kept, as InstaBoost / Simple Copy-Paste do; an image smaller than
            ``size`` gives its cleaned background instead) or ``"background"`` (the paper: onto
            cleaned backgrounds). With ``"image"`` the drawn count is *added* to the real cells
            (uncapped by default; ``count_cap=True`` bounds the total by the group's densest image).
        match_intensity: map every pasted object's intensities from its source image's
            background and cell levels to the destination image's
            (:func:`iaaa.synthesis.levels.match_intensity`), context ring included: data of
            mixed exposures (several labs or gains in one set) otherwise paste bright
            nuclei with grey rings into dim fields. ``"auto"``: on where the fitted images mix
            exposures (:func:`iaaa.synthesis.levels.mixed_exposures`: cell contrasts beyond
            the noise that differ by 2x or more), off otherwise; what it resolved to is
            ``CompositorStats.match_intensity``. ``"auto"`` is the default (judged: DSB 2018
            +0.014 mean AP over the capped defaults at 4 images, 8 runs, +0.010 with all 17;
            identical to them on phase contrast, benchmarks/downstream.md); ``False`` pastes
            pixels as they are (the paper; :meth:`paper` sets it).
    """

    objects: ObjectConfig = field(default_factory=ObjectConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    count: CountConfig = field(default_factory=CountConfig)
    paste: PasteConfig = field(default_factory=PasteConfig)
    size: int | tuple[int, int] | None = bounded(None, 8, 16384)
    object_scale: float | tuple[float, float] | Literal["auto"] | None = bounded("auto", 0.05, 20.0)
    object_stretch: float | None = bounded(None, 1.0, 4.0)
    object_warp: Literal["separate", "fused"] = "separate"
    group_by: Literal["size", "auto"] | Callable[[AnnotatedImage], Any] | None = "auto"
    halo: int | Literal["auto"] = bounded("auto", 0, 256)
    rim: bool = True
    onto: Literal["background", "image"] = "image"
    match_intensity: bool | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        for name, cls in STAGE_CONFIGS.items():
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise IaaaError(f"{name}: expected a {cls.__name__}, got {type(value).__name__}")
        validate(self)
        if isinstance(self.size, int):
            object.__setattr__(self, "size", (self.size, self.size))
        s = self.object_scale
        check(not isinstance(s, tuple) or s[0] <= s[1], "object_scale", "range must satisfy lo <= hi", s)

    # ------------------------------------------------------------------ presets

    @classmethod
    def paper(cls) -> "CompositorConfig":
        """The paper's rules (sections 2.2-2.4): merged-box objects (``grouping="box"``),
        merged-box background fill (``background_method="paper"``), cells pasted onto cleaned
        backgrounds (``onto="background"``) with their mask only (``rim=False``), one pool
        (``group_by=None``), the mode of the cell counts without a cap (``count="mode"``,
        ``count_cap=False``), one round of candidates (``rounds=1``) scored on raw background
        pixels (``match_sigma=0``), objects pasted at their own size and levels
        (``object_scale=None``, ``match_intensity=False``); everything else as in
        ``CompositorConfig()``."""
        return cls(
            objects=ObjectConfig(grouping="box"),
            background=BackgroundConfig(background_method="paper"),
            placement=PlacementConfig(rounds=1, match_sigma=0.0),
            count=CountConfig(count="mode", count_cap=False),
            group_by=None,
            rim=False,
            onto="background",
            match_intensity=False,
            object_scale=None,
        )

    # ------------------------------------------------------------------ flat options

    def replace(self, **options: Any) -> "CompositorConfig":
        """A copy with ``options`` applied: a flat name (``sigma=2.0``) sets the unique field of
        that name, a dotted ``"stage.field"`` (via ``**{"placement.sigma": 2.0}``) always works,
        and a stage name with a stage config (``layout=LayoutConfig(...)``) replaces the stage.
        An unknown or ambiguous name raises an :class:`~iaaa.errors.IaaaError` listing the
        valid ones."""
        top: dict[str, Any] = {}
        stages: dict[str, dict[str, Any]] = {}
        for key, value in options.items():
            stage, name = _resolve(key, value)
            if stage is None:
                top[name] = value
            else:
                stages.setdefault(stage, {})[name] = value
        for stage, fields in stages.items():
            base = top.get(stage, getattr(self, stage))
            top[stage] = dataclasses.replace(base, **fields)
        return dataclasses.replace(self, **top)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], base: "CompositorConfig | None" = None, *, option: str = "") -> "CompositorConfig":
        """``base`` (default ``CompositorConfig()``) with flat or dotted ``options`` applied as
        :meth:`replace` does; string values (from a command line) are parsed to the field's type.
        ``option`` (e.g. ``"--compositor"``) prefixes every error line."""
        base = cls() if base is None else base
        prefix = f"{option} " if option else ""
        parsed: dict[str, Any] = {}
        try:
            for key, value in options.items():
                stage, name = _resolve(key, value)
                if isinstance(value, str):
                    hint = field_hints(cls if stage is None else STAGE_CONFIGS[stage])[name]
                    value = parse_text(key, value, hint)
                parsed[key] = value
            return base.replace(**parsed)
        except IaaaError as exc:
            raise IaaaError(f"{prefix}{exc}") from None

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: one dict per stage, tuples as lists. A callable ``group_by`` or
        ``count`` cannot be written and raises an :class:`~iaaa.errors.IaaaError`."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in STAGE_CONFIGS:
                out[f.name] = {g.name: _json(g.name, getattr(value, g.name)) for g in dataclasses.fields(value)}
            else:
                out[f.name] = _json(f.name, value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CompositorConfig":
        """The config :meth:`to_dict` wrote (keys left out take their defaults). An unknown key
        or a value of the wrong type raises one line naming the key."""
        if not isinstance(data, Mapping):
            raise IaaaError(f"compositor config: expected a JSON object, got {type(data).__name__}")
        top = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in top:
                raise IaaaError(f"compositor config: unknown key {key!r}; valid keys: {', '.join(sorted(top))}")
            if key in STAGE_CONFIGS:
                stage_cls = STAGE_CONFIGS[key]
                if not isinstance(value, Mapping):
                    raise IaaaError(f"{key}: expected a JSON object of {stage_cls.__name__} fields, got {value!r}")
                names = {f.name for f in dataclasses.fields(stage_cls)}
                for k in value:
                    if k not in names:
                        raise IaaaError(f"compositor config: unknown key {key + '.' + str(k)!r}; valid keys: {', '.join(key + '.' + n for n in sorted(names))}")
                kwargs[key] = stage_cls(**value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _json(name: str, value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if callable(value):
        raise IaaaError(f"{name}: a callable cannot be written to JSON; give a named choice to record the config")
    return value


def option_names() -> dict[str, tuple[str | None, str]]:
    """Every flat option name -> ``(stage or None, field)``: the top-level choices and every
    stage config field (each unique over the tree, which the tests assert)."""
    names: dict[str, tuple[str | None, str]] = {}
    for f in dataclasses.fields(CompositorConfig):
        if f.name not in STAGE_CONFIGS:
            names[f.name] = (None, f.name)
    for stage, cls in STAGE_CONFIGS.items():
        for f in dataclasses.fields(cls):
            names.setdefault(f.name, (stage, f.name))
    return names


def _all_names() -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = [(None, f.name) for f in dataclasses.fields(CompositorConfig) if f.name not in STAGE_CONFIGS]
    for stage, cls in STAGE_CONFIGS.items():
        out += [(stage, f.name) for f in dataclasses.fields(cls)]
    return out


def option_field(key: str) -> str:
    """The field a flat or dotted option name sets, as ``"stage.field"`` (or ``"field"`` for a
    top-level one): ``"sigma"`` and ``"placement.sigma"`` both give ``"placement.sigma"``. An
    unknown or ambiguous name raises an :class:`~iaaa.errors.IaaaError` naming it."""
    stage, name = _resolve(key, None)
    return name if stage is None else f"{stage}.{name}"


def _resolve(key: str, value: Any) -> tuple[str | None, str]:
    """Where the option ``key`` goes: ``(stage, field)``, or ``(None, name)`` for a top-level
    field or a whole stage."""
    if not isinstance(key, str):
        raise IaaaError(f"compositor option: expected a name, got {key!r}")
    if "." in key:
        stage, _, name = key.partition(".")
        cls = STAGE_CONFIGS.get(stage)
        if cls is None or name not in {f.name for f in dataclasses.fields(cls)}:
            raise IaaaError(f"{key}: unknown compositor option; valid: {_valid()}")
        return stage, name
    if key in STAGE_CONFIGS and isinstance(value, STAGE_CONFIGS[key]):
        return None, key
    hits = [(s, n) for s, n in _all_names() if n == key and not (s is None and n in STAGE_CONFIGS)]
    if len(hits) > 1:
        raise IaaaError(f"{key}: ambiguous compositor option, give one of {', '.join(f'{s}.{n}' if s else n for s, n in hits)}")
    if not hits:
        raise IaaaError(f"{key}: unknown compositor option; valid: {_valid()}")
    return hits[0]


def _valid() -> str:
    return ", ".join(sorted(option_names()))
