"""``iaaa judge``: does this synthetic data help my model? Real only vs standard augmentation vs
online copy-paste vs real + synthetic, over folds of a data regime and paired seeds."""

from __future__ import annotations

import argparse
import ast
import os
import tempfile
from pathlib import Path
from typing import Any

from iaaa.commands._inputs import add_input_args, load_export_folder, load_inputs
from iaaa.commands._threads import add_threads_arg, torch_threads_of
from iaaa.errors import IaaaError

DEFAULT_ARMS = "real,aug,naive,iaaa,iaaa+aug"
# recipe field -> the flag that sets it, so a refused value is reported by its flag
FLAGS = {
    "protocol": "--protocol", "ratio": "--ratio", "p": "--p", "steps": "--steps", "batch_size": "--batch", "crop": "--crop",
    "lr": "--lr", "width": "--width", "depth": "--depth", "scale": "--scale", "pool_size": "--pool", "seeds": "--seeds",
    "train_limit": "--train-limit", "folds": "--folds", "only_folds": "--only-folds", "device": "--device", "min_area": "--min-area",
    "aug_scale": "--aug-scale", "aug_photometric": "--aug-photometric", "paste_context": "--paste-context",
    "paste_scale": "--paste-scale",
}


def register(sub: argparse._SubParsersAction) -> None:
    from iaaa.judge import PASTE_SCALES, PROTOCOLS, Recipe

    d = Recipe()
    p = sub.add_parser(
        "judge",
        help="train a small U-Net on real vs augmented vs real + synthetic data and score held-out real images",
        description="The downstream judge: train the same small 3-class U-Net from scratch for every arm (real only, "
        "real with standard augmentation, online Simple Copy-Paste, each synthetic source, '+aug' variants), every fold "
        "and seed, and score held-out real images with the Data Science Bowl mean AP (IoU 0.50-0.95), AP@0.5 and "
        "F1@0.5. Prints mean ± sd over runs, the difference to real only paired per (fold, seed) with its 95% interval, "
        "and the real-only learning curve.",
    )
    add_input_args(p)
    g = p.add_argument_group("held-out real test data")
    g.add_argument("--test-images", help="test image folder (never trained on; required unless --merge)")
    g.add_argument("--test-masks", help="test label-map folder matching --test-images by file stem")
    s = p.add_argument_group("arms and synthetic data")
    s.add_argument("--arms", default=DEFAULT_ARMS, help="comma list of real, aug (standard augmentation), naive (online Simple "
                   "Copy-Paste), iaaa (CellCompositor defaults), iaaa-online (PasteCells, fitted per fold, pasting into real crops as naive does), any of these but real with +aug (default: %(default)s); "
                   "--compositor and --synthetic sources are added as arms, but a --compositor k=v that an iaaa-online[k=v] arm pastes from")
    s.add_argument("--synthetic", action="append", default=[], metavar="DIR", help="an iaaa synth output folder (images/ + masks/); repeatable")
    s.add_argument("--compositor", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                   help="a CellCompositor variant fitted on each fold's training images, e.g. --compositor sigma=2 "
                   "(values are python literals; bare words are strings); repeat the option for several variants")
    s.add_argument("--protocol", choices=PROTOCOLS, default=d.protocol, help="add: synthetic crops added to the real ones; mix: "
                   "they replace real ones; online: real crops get pasted cells with probability --p (default: %(default)s)")
    # Options only some arms or protocols read default to None, so one given where nothing reads
    # it is refused (it would be recorded in the report and change nothing): READ_BY.
    s.add_argument("--ratio", type=float, default=None, help=f"synthetic:real crops per step, add and mix (default: {d.ratio})")
    s.add_argument("--p", type=float, default=None, help=f"probability of the online paste per real crop (default: {d.p})")
    s.add_argument("--pool", type=int, default=None, help=f"synthetic images per fold and seed drawn from a sampler (default: {d.pool_size})")
    t = p.add_argument_group("data regime and training")
    t.add_argument("--train-limit", type=int, default=None, metavar="N", help="train on N of the training images (default: all)")
    t.add_argument("--folds", type=int, default=d.folds, metavar="K", help="K different subsets of --train-limit images (default: %(default)s)")
    t.add_argument("--only-folds", default=None, metavar="K,..", help="train only these folds (0-based) of the --folds regime, to split "
                   "a regime over processes (default: all)")
    t.add_argument("--seeds", default=",".join(map(str, d.seeds)), help="comma list of seeds (default: %(default)s)")
    t.add_argument("--steps", type=int, default=d.steps, help="training steps per run (default: %(default)s)")
    t.add_argument("--crop", type=int, default=d.crop, help="crop side in working-scale pixels (default: %(default)s)")
    t.add_argument("--scale", type=float, default=d.scale, help="working scale (0.5 halves each side; scores stay at native resolution) (default: %(default)s)")
    t.add_argument("--batch", type=int, default=d.batch_size, help="real crops per step (default: %(default)s)")
    t.add_argument("--width", type=int, default=d.width, help="U-Net first-level channels (default: %(default)s)")
    t.add_argument("--depth", type=int, default=d.depth, help="U-Net poolings (default: %(default)s)")
    t.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate, cosine decay to 0 (default: %(default)s)")
    t.add_argument("--aug-scale", default=",".join(map(str, d.aug_scale)), metavar="LO,HI", help="zoom range of the standard "
                   "augmentation (aug, +aug arms), drawn log-uniformly per crop; 0.8,1.25 for data of one magnification (default: %(default)s)")
    t.add_argument("--aug-photometric", type=float, default=d.aug_photometric, metavar="S", help="strength of the standard "
                   "augmentation's brightness/contrast/gamma/blur/noise: 0 geometry only, 1 the default ranges (default: %(default)s)")
    t.add_argument("--paste-context", default=None, metavar="F", help="iaaa-online arms paste into the whole real "
                   "image each added crop is cut from ('image'), or into a window F times the crop's side around it (1: into the crop), "
                   f"before cutting it (default: {d.paste_context})")
    t.add_argument("--paste-scale", choices=PASTE_SCALES, default=None, help="the resolution iaaa-online arms fit and paste at: "
                   f"the images' own, resized afterwards as a pipeline that pastes before its resize, or the working scale (default: {d.paste_scale})")
    t.add_argument("--device", default=d.device, help="torch device: cpu or cuda[:i] (default: %(default)s)")
    add_threads_arg(t)
    m = p.add_argument_group("putting parts together (no training)")
    m.add_argument("--merge", nargs="+", metavar="JSON", help="print one report from the --json reports of a regime's parts (other "
                   "--only-folds, other --seeds, or arms run later beside a shared arm whose runs must reproduce) and write it with --json")
    m.add_argument("--baseline", action="append", default=[], metavar="ARM", help="also print the differences paired against this arm "
                   "(repeatable; with --merge or a run)")
    m.add_argument("--per-image", nargs="?", const="real", default=None, metavar="ARM", help="also print each test image's mean AP "
                   "per arm, its predicted/true instance ratio and the difference to ARM (default real) paired per run: which images "
                   "a difference comes from (with --merge or a run)")
    p.add_argument("--json", dest="json_out", help="also write the report to this JSON file (checked before the run)")
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
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key] = value
    return out


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise IaaaError(f"{flag}: expected a comma list of integers, got {text!r}") from None
    if not values:
        raise IaaaError(f"{flag}: give at least one value")
    return values


def _float_list(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise IaaaError(f"{flag}: expected a comma list of numbers, got {text!r}") from None


# What reads each option that only some runs use: (flag, attribute, who reads it, whether a run
# with this recipe reads it, given which kinds of arms it has: "any" (an arm with a synthetic or
# pasting source), "online" (an iaaa-online arm), "sampled" (an arm drawn from a compositor)).
READ_BY = (
    ("--ratio", "ratio", "--protocol add or mix with a synthetic or pasting arm", lambda r, k: r.protocol != "online" and k["any"]),
    ("--p", "p", "--protocol online with a synthetic or pasting arm", lambda r, k: r.protocol == "online" and k["any"]),
    ("--pool", "pool", "an arm drawn from a compositor (iaaa, iaaa[k=v])", lambda r, k: k["sampled"]),
    ("--paste-context", "paste_context", "iaaa-online arms under --protocol add or mix", lambda r, k: r.protocol != "online" and k["online"]),
    ("--paste-scale", "paste_scale", "iaaa-online arms under --protocol add or mix at a --scale other than 1",
     lambda r, k: r.protocol != "online" and r.scale != 1.0 and k["online"]),
)


def check_options_read(args: argparse.Namespace, recipe: Any, arms: list[str]) -> None:
    """Refuse options given for this run that none of its arms reads (see :data:`READ_BY`)."""
    from iaaa.judge import parse_arm
    from iaaa.judge.protocols import NAIVE, is_online

    sources = [s for s in (parse_arm(a).source for a in arms) if s is not None]
    kinds = {"any": bool(sources), "online": any(map(is_online, sources)),
             "sampled": any(s != NAIVE and not is_online(s) and not s.startswith("synthetic:") for s in sources)}
    idle = [(flag, who) for flag, attr, who, reads in READ_BY if getattr(args, attr) is not None and not reads(recipe, kinds)]
    if idle:
        raise IaaaError(f"{', '.join(f for f, _ in idle)}: no arm of this run reads {'them' if len(idle) > 1 else 'it'} ("
                        + "; ".join(f"{f}: {who}" for f, who in idle) + ")")


def recipe_of(args: argparse.Namespace) -> Any:
    """The :class:`~iaaa.judge.Recipe` of the options; a refused value names its flag."""
    from iaaa.judge import Recipe, RecipeError
    from iaaa.judge.recipe import parse_paste_context

    try:
        d = Recipe()
        given = lambda value, default: default if value is None else value  # noqa: E731
        return Recipe(
            protocol=args.protocol, ratio=given(args.ratio, d.ratio), p=given(args.p, d.p), steps=args.steps, batch_size=args.batch, crop=args.crop,
            lr=args.lr, width=args.width, depth=args.depth, scale=args.scale, pool_size=given(args.pool, d.pool_size), seeds=_int_list(args.seeds, "--seeds"),
            train_limit=args.train_limit, folds=args.folds, device=args.device, aug_scale=_float_list(args.aug_scale, "--aug-scale"),
            aug_photometric=args.aug_photometric, paste_context=d.paste_context if args.paste_context is None else parse_paste_context(args.paste_context),
            paste_scale=given(args.paste_scale, d.paste_scale),
            only_folds=None if args.only_folds is None else _int_list(args.only_folds, "--only-folds"),
        )
    except RecipeError as exc:
        raise IaaaError(f"{FLAGS.get(exc.field, exc.field)}: {exc.reason}") from None


def check_writable(path: str, flag: str = "--json") -> None:
    """Refuse an output file that cannot be written, before any work: a folder, a device or
    other special file, a missing or read-only folder, a full disk. The probe is a temporary file of our own (unique name) beside
    the target, removed again; the target itself is not touched."""
    target = Path(path)
    if target.is_dir():
        raise IaaaError(f"{flag} {path}: is a folder; give a file name")
    parent = target.parent
    if not parent.is_dir():
        raise IaaaError(f"{flag} {path}: folder {parent} does not exist")
    if target.exists() and not target.is_file():
        # a device, pipe or socket: the final rename would replace it with a plain file
        raise IaaaError(f"{flag} {path}: not a regular file")
    if target.exists() and not os.access(target, os.W_OK):
        raise IaaaError(f"{flag} {path}: not writable")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise IaaaError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    try:
        # a report is tens of KB; a full disk fails this write (or its fsync), not the run's end
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * 256 * 1024)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise IaaaError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def build_sources(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """``(arms, name -> source)`` from --arms, --compositor and --synthetic, every compositor
    option checked now (the compositor validates them in its constructor)."""
    from iaaa.judge import named_sources, parse_arm, split_arms, variant_arms
    from iaaa.judge.protocols import is_online

    options = [parse_pairs(pairs) for pairs in args.compositor]
    try:
        arms = split_arms(args.arms)
        for a in arms:
            arm = parse_arm(a)
            if not is_online(arm.source) and arm.source not in (None, "naive", "iaaa"):
                raise IaaaError(f"unknown arm {a!r}; choose from real, aug, naive, iaaa, iaaa-online, each but real also with +aug "
                                "(and iaaa-online[k=v] for a --compositor k=v)")
        sources = named_sources(arms, [])
    except IaaaError as exc:
        raise IaaaError(f"--arms: {exc}") from None
    for kwargs in options:
        try:
            sources.update(named_sources([], [kwargs]))
        except IaaaError as exc:
            raise IaaaError(f"--compositor {exc}") from None
    arms += variant_arms(arms, options)
    for folder in args.synthetic:
        name = f"synthetic:{Path(folder).name or folder}"
        sources[name] = load_export_folder(folder)
        arms.append(name)
    return arms, sources


def run(args: argparse.Namespace) -> int:
    with torch_threads_of(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from iaaa.data import load_samples
    from iaaa.judge import judge

    if args.merge:
        return _merge(args)
    if not args.test_images or not args.test_masks:
        raise IaaaError("--test-images and --test-masks: both required (held-out real images to score), unless --merge")
    recipe = recipe_of(args)
    if args.json_out:
        check_writable(args.json_out)
    arms, sources = build_sources(args)
    check_options_read(args, recipe, arms)
    for flag, arm in _pairings(args):
        if arm not in arms:
            raise IaaaError(f"{flag} {arm}: not one of the arms ({', '.join(arms)})")
    train = load_inputs(args)
    test = load_samples(images=args.test_images, masks=args.test_masks)
    if not test:
        raise IaaaError(f"--test-images {args.test_images}: no images")
    if args.train_limit is not None and args.train_limit > len(train):
        raise IaaaError(f"--train-limit: {args.train_limit} is more than the {len(train)} training images")
    report = judge(train, test, sources, recipe, arms=arms, log=None if args.quiet else print)
    return _print_and_write(report, args)


def _pairings(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The arms the report is also paired against, with the flag that names each."""
    return [("--baseline", a) for a in args.baseline] + ([("--per-image", args.per_image)] if args.per_image else [])


def _print_and_write(report: Any, args: argparse.Namespace) -> int:
    print(report.table())
    for arm in args.baseline:
        print(f"\npaired against {arm}:")
        print(report.rebased(arm).table(curves=False))
    if args.per_image:
        print()
        print(report.rebased(args.per_image).per_image_table())
    if args.json_out:
        report.to_json(args.json_out)
        print(f"wrote {args.json_out}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    """``--merge``: the parts' JSON reports as one (:meth:`JudgeReport.merge`); trains nothing."""
    import json

    from iaaa.judge.report import JudgeReport

    if args.json_out:
        check_writable(args.json_out)
    parts = []
    for path in args.merge:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise IaaaError(f"--merge {path}: cannot read it ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IaaaError(f"--merge {path}: not a JSON report of iaaa judge --json ({exc})") from None
        try:
            parts.append(JudgeReport.from_dict(data if isinstance(data, dict) else {}))
        except IaaaError as exc:
            raise IaaaError(f"--merge {path}: {exc}") from None
    try:
        report = JudgeReport.merge(parts)
    except IaaaError as exc:
        raise IaaaError(f"--merge (parts numbered from 0 in the order given): {exc}") from None
    for flag, arm in _pairings(args):
        if arm not in report.results:
            raise IaaaError(f"{flag} {arm}: not an arm of these reports ({', '.join(report.arms)})")
    return _print_and_write(report, args)
