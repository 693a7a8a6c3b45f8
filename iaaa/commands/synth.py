"""``iaaa synth``: write N synthetic images, label maps and one COCO JSON, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from iaaa.commands._checks import fill_defaults, finite
from iaaa.commands._inputs import add_input_args, has_inputs, input_record, load_inputs
from iaaa.commands._threads import add_threads_arg, torch_threads_of
from iaaa.errors import IaaaError

if TYPE_CHECKING:
    from iaaa.synthesis.config import CompositorConfig


def add_compositor_args(p: argparse.ArgumentParser) -> None:
    """The synthesis options. Every default is ``CompositorConfig()``'s: a flag left out leaves
    the library's value, so ``iaaa synth`` makes what ``CellCompositor()`` makes."""
    from iaaa.synthesis.config import CompositorConfig
    from iaaa.synthesis.background import METHODS

    d = CompositorConfig()
    g = p.add_argument_group("synthesis (defaults: the library's, iaaa.CompositorConfig())")
    g.add_argument("--policies", help="policy-set JSON from `iaaa search` (default: flips, any rotation, mild brightness/contrast)")
    g.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="output size (default: each background's own size)")
    g.add_argument("--count", help=f"cells per image: 'sample' (from the data), 'background', 'mode' (the paper), N, or LO-HI (default: {d.count.count})")
    g.add_argument("--sigma", help=f"Gaussian feather sigma of pasted objects (default: {d.placement.sigma})")
    g.add_argument("--background", choices=METHODS, help=f"cell removal: mask, bilinear or paper (default: {d.background.background_method})")
    g.add_argument("--keep-border", action="store_true", default=None, help="also use objects that touch the image border")
    g.add_argument("--group-by", choices=("none", "size", "auto"), help=f"which images share cells and backgrounds (default: {d.group_by})")
    g.add_argument("--paper", action="store_true", help="start from the paper's rules (CompositorConfig.paper()) instead of the library default")
    g.add_argument("--compositor", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                   help="any CompositorConfig option by its flat or dotted name, e.g. --compositor grouping=box sigma=2 (applied last)")


_FLAGS = (("--size", "size"), ("--count", "count"), ("--sigma", "sigma"), ("--background", "background_method"), ("--keep-border", "keep_border"), ("--group-by", "group_by"))
SAAA_WEIGHT = 0.5
"""Share of images drawn from SAAA when ``--saaa`` and input data are mixed (``--saaa-weight``)."""


def compositor_config(args: argparse.Namespace, flags: bool = True) -> "CompositorConfig":
    """The configuration the options ask for: ``CompositorConfig()`` (or ``.paper()`` with
    ``--paper``), then each given flag of :func:`add_compositor_args` (``flags=False``: a
    command without them, whose ``--size`` means something else), then every
    ``--compositor KEY=VALUE``; a bad value raises one line naming the flag."""
    from iaaa.synthesis.config import CompositorConfig, option_field

    # Each option is set once: a flag and a --compositor pair (or two pairs, "sigma" and
    # "placement.sigma") naming the same field would otherwise let one silently win.
    given: dict[str, str] = {}

    def claim(field: str, how: str) -> None:
        if field in given:
            raise IaaaError(f"{given[field]} and {how}: both set the compositor option {field}; give it once")
        given[field] = how

    config = CompositorConfig.paper() if getattr(args, "paper", False) else CompositorConfig()
    for flag, key in _FLAGS if flags else ():
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is None:
            continue
        claim(option_field(key), flag)
        if key == "size":
            value = tuple(value)
        elif key == "group_by":
            value = None if value == "none" else value
        try:
            config = CompositorConfig.from_options({key: value}, config)
        except IaaaError as exc:
            raise IaaaError(f"{flag}: {str(exc).partition(': ')[2]}") from None
    pairs = {}
    for pair in (p for group in getattr(args, "compositor", []) for p in group):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise IaaaError(f"--compositor: expected KEY=VALUE, got {pair!r}")
        try:
            field = option_field(key.strip())
        except IaaaError as exc:
            raise IaaaError(f"--compositor {exc}") from None
        claim(field, f"--compositor {pair}")
        pairs[key.strip()] = value
    return CompositorConfig.from_options(pairs, config, option="--compositor") if pairs else config


def build_compositor(args: argparse.Namespace, samples: list) -> tuple[object, dict]:
    """The fitted compositor and what the manifest records of it: the full resolved
    configuration (``config``), the seed it was fitted with and the policies."""
    import json

    from iaaa.synthesis.compositor import CellCompositor

    config = compositor_config(args)
    policy = None
    record: dict = {"config": config.to_dict()}
    if args.policies:
        from iaaa.policy import PolicySet

        path = Path(args.policies)
        if not path.is_file():
            raise IaaaError(f"--policies {path}: file not found")
        try:
            policy = PolicySet.load(path)
        except OSError as exc:
            raise IaaaError(f"--policies {path}: cannot read ({exc.strerror})") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise IaaaError(f"--policies {path}: not a policy-set JSON ({exc})") from exc
        record["policies"] = json.loads(path.read_text(encoding="utf-8"))
    compositor = CellCompositor(config, policy=policy).fit(samples, progress=not getattr(args, "no_progress", False), workers=getattr(args, "workers", 0))
    return compositor, record


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write N synthetic images + label maps + COCO JSON",
        description="Fit a CellCompositor on the input data and write --n synthetic images (source dtype kept), "
        "16-bit label maps, one COCO JSON with RLE masks and a manifest. Rerunning with the same options "
        "continues an interrupted run.",
    )
    add_input_args(p)
    p.add_argument("--n", type=int, default=500, help="number of synthetic images (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="sample i depends only on (seed, i) (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="worker processes fitting the images and generating new ones (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (fit and writing)")
    add_threads_arg(p)
    p.add_argument("--saaa", metavar="MODEL_DIR", help="SAAA model folder (from `iaaa saaa fit`): generated images; alone, or mixed with IAAA when input data is given")
    # None until given, so a weight given where nothing is mixed is refused, not ignored.
    p.add_argument("--saaa-weight", type=float, default=None, help=f"with --saaa and input data: share of images drawn from SAAA (default: {SAAA_WEIGHT})")
    add_compositor_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with torch_threads_of(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from iaaa.export import check_export_folder, export_synthetic

    if args.n < 1:
        raise IaaaError(f"--n must be >= 1, got {args.n}")
    if args.workers < 0:
        raise IaaaError(f"--workers must be >= 0, got {args.workers}")
    compositor_config(args)  # option errors first, before minutes of reading and fitting
    if fill_defaults(args, {"saaa_weight": SAAA_WEIGHT}) and not (args.saaa and has_inputs(args)):
        raise IaaaError("--saaa-weight: mixes SAAA images with the compositor's, so it needs both --saaa and input data (--images/--masks, --coco, --dsb)")
    if args.saaa:
        finite("--saaa-weight", args.saaa_weight, 0.0, 1.0)
    elif not has_inputs(args):
        raise IaaaError("give input data (--images/--masks, --coco, --dsb) or a SAAA model (--saaa MODEL_DIR)")
    inputs = [v for k in ("images", "masks", "coco", "dsb") if (v := getattr(args, k, None))]
    if args.saaa:
        inputs.append(args.saaa)
    check_export_folder(args.out, inputs)
    manifest: dict = {}
    sources, weights = [], []
    if has_inputs(args):
        samples = load_inputs(args)
        compositor, record = build_compositor(args, samples)
        print(compositor.stats.summary())
        manifest.update(source=input_record(args), compositor=record)
        sources.append(compositor)
        weights.append(1.0 - args.saaa_weight if args.saaa else 1.0)
    if args.saaa:
        from iaaa.saaa import SAAA

        sources.append(SAAA.load(args.saaa))
        weights.append(args.saaa_weight if sources[:-1] else 1.0)
        manifest["saaa"] = {"model": str(Path(args.saaa).resolve()), "weight": weights[-1]}
    if len(sources) == 1:
        source = sources[0]
    else:
        from iaaa.sources import SourceMix

        source = SourceMix(sources, weights)
    result = export_synthetic(source, args.n, args.out, seed=args.seed, workers=args.workers, manifest=manifest, progress=not args.no_progress, inputs=inputs)
    print(f"wrote {result['written']} images ({result['skipped']} already done) to {args.out}: images/, masks/, annotations.json, manifest.json")
    return 0
