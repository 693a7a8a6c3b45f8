"""``iaaa judge``: does this synthetic data help my model? Real only vs real + synthetic."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

from iaaa.commands._inputs import add_input_args, load_export_folder, load_inputs
from iaaa.commands._threads import add_threads_arg, torch_threads_of
from iaaa.errors import IaaaError

BASELINES = ("real", "naive", "iaaa")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "judge",
        help="train a small U-Net on real vs real + synthetic data and score held-out real images",
        description="The downstream judge: train the same small 3-class U-Net from scratch on real images only and "
        "on real + each synthetic source (half of every batch synthetic), with paired seeds, and score held-out real "
        "images with the Data Science Bowl mean AP (IoU 0.50-0.95), AP@0.5 and F1@0.5. Prints mean ± sd over seeds "
        "and the paired difference to real only per seed.",
    )
    add_input_args(p)
    g = p.add_argument_group("held-out real test data")
    g.add_argument("--test-images", required=True, help="test image folder (never trained on)")
    g.add_argument("--test-masks", required=True, help="test label-map folder matching --test-images by file stem")
    s = p.add_argument_group("synthetic data")
    s.add_argument("--synthetic", action="append", default=[], metavar="DIR", help="an iaaa synth output folder (images/ + masks/); repeatable")
    s.add_argument("--compositor", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                   help="a CellCompositor variant fitted on the training images, e.g. --compositor sigma=2 background_method=\"'paper'\" "
                   "(values are python literals; bare words are strings); repeat the option for several variants")
    s.add_argument("--baselines", default="real,naive,iaaa", help="comma list of real, naive (hard copy-paste), iaaa (CellCompositor defaults) (default: %(default)s)")
    s.add_argument("--pool", type=int, default=32, help="synthetic images per seed drawn from naive/iaaa/compositor sources (default: %(default)s)")
    s.add_argument("--ratio", type=float, default=1.0, help="synthetic:real crops per batch (default: %(default)s)")
    t = p.add_argument_group("training")
    t.add_argument("--seeds", default="0,1,2", help="comma list of seeds (default: %(default)s)")
    t.add_argument("--steps", type=int, default=1500, help="training steps per run (default: %(default)s)")
    t.add_argument("--crop", type=int, default=96, help="crop side in working-scale pixels (default: %(default)s)")
    t.add_argument("--scale", type=float, default=1.0, help="working scale (0.5 halves each side; scores stay at native resolution) (default: %(default)s)")
    t.add_argument("--batch", type=int, default=8, help="crops per batch (default: %(default)s)")
    t.add_argument("--width", type=int, default=16, help="U-Net first-level channels (default: %(default)s)")
    t.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: %(default)s)")
    add_threads_arg(t)
    p.add_argument("--json", dest="json_out", help="also write the report to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def parse_pairs(pairs: list[str], option: str = "--compositor") -> dict[str, Any]:
    """``["sigma=2", "background_method=paper"]`` -> ``{"sigma": 2, "background_method": "paper"}``:
    values are python literals, anything else a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise IaaaError(f"{option}: expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise IaaaError(f"--seeds: expected a comma list of integers, got {text!r}") from None
    if not seeds:
        raise IaaaError("--seeds: give at least one seed")
    return seeds


def build_sources(args: argparse.Namespace) -> tuple[bool, dict[str, Any]]:
    """``(include_real, name -> source)`` from --baselines, --compositor and --synthetic."""
    from iaaa.judge import named_sources

    names = [b.strip() for b in args.baselines.split(",") if b.strip()]
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise IaaaError(f"--baselines: unknown {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    options = [parse_pairs(pairs) for pairs in args.compositor]
    for kwargs in options:
        _check_compositor_kwargs(kwargs)
    sources = named_sources(names, options)
    for folder in args.synthetic:
        sources[f"synthetic:{Path(folder).name or folder}"] = load_export_folder(folder)
    return "real" in names, sources


def _check_compositor_kwargs(kwargs: dict[str, Any]) -> None:
    """Build the compositor once, unfitted, so an unknown option or a bad value is reported
    before any training starts (the compositor validates every option in its constructor)."""
    from iaaa import CompositorConfig

    CompositorConfig.from_options(kwargs, option="--compositor")


def run(args: argparse.Namespace) -> int:
    with torch_threads_of(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import torch

    from iaaa.data import load_samples
    from iaaa.judge import judge

    seeds = _seeds(args.seeds)
    include_real, sources = build_sources(args)
    train = load_inputs(args)
    test = load_samples(images=args.test_images, masks=args.test_masks)
    if not test:
        raise IaaaError(f"--test-images {args.test_images}: no images")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise IaaaError(f"--device {args.device}: CUDA is not available")
    report = judge(
        train, test, sources, seeds=seeds, steps=args.steps, crop=args.crop, scale=args.scale, batch_size=args.batch,
        ratio=args.ratio, pool_size=args.pool, width=args.width, include_real=include_real, device=args.device,
        log=None if args.quiet else print,
    )
    print(report.table())
    if args.json_out:
        report.to_json(args.json_out)
        print(f"wrote {args.json_out}")
    return 0
