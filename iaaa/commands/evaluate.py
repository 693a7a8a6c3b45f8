"""``iaaa evaluate``: how close synthetic images are to real ones (KID, SWD, FID) at the SCO,
MCO and whole-image levels, as a table and optionally JSON.

Each side (``real``, ``synthetic``) is read from one of:

* ``--real DIR``: a folder with ``images/`` and ``masks/`` subfolders (the layout ``iaaa demo``
  and the synthetic export write);
* ``--real-images DIR --real-masks DIR``: separate folders matched by file stem;
* ``--real-images DIR`` alone: images without annotations, enough for ``--levels image``;
* ``--real-coco JSON --real-images DIR`` or ``--real-dsb DIR``.

The same options exist with ``synthetic`` in place of ``real``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iaaa.commands._checks import fill_defaults, finite
from iaaa.errors import IaaaError

_LEVELS = ("sco", "mco", "image")
SIZES = {"tile": 128, "image_size": 256, "crop_size": 64}
"""Defaults of ``--tile``, ``--image-size`` and ``--crop-size``."""
_METRICS = ("kid", "swd", "fid", "fid_inf")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare synthetic to real images with KID, SWD and FID (offline)",
        description="Compare synthetic to real annotated images at three levels (single-cell "
        "object crops, multi-cell object crops, whole images cut into tiles) with KID, SWD and "
        "FID, print a table and optionally write JSON. Works offline: the default features need "
        "no pretrained weights; Inception-v3 loads only from a local weights file.",
    )
    for side in ("real", "synthetic"):
        g = p.add_argument_group(f"{side} data (one of the forms)")
        g.add_argument(f"--{side}", metavar="DIR", help="folder with images/ and masks/ subfolders")
        g.add_argument(f"--{side}-images", metavar="DIR", help="image folder (with --%s-masks or --%s-coco; alone: image level only)" % (side, side))
        g.add_argument(f"--{side}-masks", metavar="DIR", help="label-map folder matching the images by file stem")
        g.add_argument(f"--{side}-coco", metavar="JSON", help=f"COCO instance JSON (with --{side}-images)")
        g.add_argument(f"--{side}-dsb", metavar="DIR", help="2018 Data Science Bowl layout root")
    p.add_argument("--levels", default=",".join(_LEVELS), help="comma list of sco, mco, image (default: %(default)s)")
    p.add_argument("--metrics", default="kid,swd,fid", help="comma list of kid, swd, fid, fid_inf (default: %(default)s)")
    p.add_argument("--features", choices=("stats", "inception", "wae"), default="stats",
                   help="features for KID/FID: stats = offline Laplacian-pyramid statistics (default), "
                   "inception = Inception-v3 from --inception-weights, wae = encoder of --wae")
    p.add_argument("--inception-weights", metavar="FILE", help="local Inception-v3 state dict (torchvision inception_v3_google-*.pth)")
    p.add_argument("--wae", metavar="FILE", help="a trained WAE model file (iaaa.policy)")
    # Sizes default to None so one given where nothing reads it (an --image-size without --tile 0,
    # a --crop-size without an object level) is refused, not ignored: SIZES.
    p.add_argument("--tile", type=int, default=None, help=f"tile size for the image level; 0 = whole images (default: {SIZES['tile']})")
    p.add_argument("--image-size", type=int, default=None, help=f"size whole images are fitted to when --tile 0 (default: {SIZES['image_size']})")
    p.add_argument("--crop-size", type=int, default=None, help=f"size object crops are fitted to, sco and mco levels (default: {SIZES['crop_size']})")
    p.add_argument("--value-range", nargs="+", metavar="V",
                   help="intensity mapping to [0, 1]: LO HI (e.g. 0 4095 for 12-bit data), or 'real' for the "
                   "real set's 0.1-99.9 percentiles; default: the dtype's range")
    p.add_argument("--subset-size", type=int, help="KID subset size (default: min(1000, half the smaller set))")
    p.add_argument("--subsets", type=int, default=100, help="number of KID subsets (default: %(default)s)")
    p.add_argument("--max-samples", type=int, help="cap per set and level (seeded random subset)")
    p.add_argument("--seed", type=int, default=0, help="seed of subsets, patches and projections (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device for features and SWD (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="feature batch size (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(func=run)


def _csv(value: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise IaaaError(f"{flag}: unknown {bad or 'empty list'}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def _read_images_only(folder: str, side: str) -> list[Any]:
    from iaaa.data.imageio import read_image
    from iaaa.data.readers import list_image_files

    return [read_image(f) for f in list_image_files(folder, f"--{side}-images")]


def _read_side(args: argparse.Namespace, side: str) -> tuple[list[Any], bool]:
    """Samples of one side, and whether they carry instance annotations."""
    from iaaa.data import load_samples

    folder = getattr(args, side)
    images, masks = getattr(args, f"{side}_images"), getattr(args, f"{side}_masks")
    coco, dsb = getattr(args, f"{side}_coco"), getattr(args, f"{side}_dsb")
    given = [f for f, v in ((f"--{side}", folder), (f"--{side}-images", images), (f"--{side}-coco", coco), (f"--{side}-dsb", dsb)) if v]
    if folder:
        if len(given) > 1 or masks:
            raise IaaaError(f"--{side} DIR already names images/ and masks/; do not combine it with {', '.join(g for g in given[1:]) or f'--{side}-masks'}")
        root = Path(folder)
        if not root.is_dir():
            raise IaaaError(f"--{side}: {root}: folder not found")
        if not (root / "images").is_dir() or not (root / "masks").is_dir():
            raise IaaaError(f"--{side}: {root} has no images/ and masks/ subfolders; use --{side}-images DIR --{side}-masks DIR, --{side}-coco or --{side}-dsb")
        return load_samples(images=str(root / "images"), masks=str(root / "masks")), True
    if images and not masks and not coco:
        return _read_images_only(images, side), False
    if not given:
        raise IaaaError(f"no {side} data: give --{side} DIR, --{side}-images DIR [--{side}-masks DIR], --{side}-coco JSON --{side}-images DIR, or --{side}-dsb DIR")
    return load_samples(images=images, masks=masks, coco=coco, dsb=dsb), True


def _extractor(args: argparse.Namespace) -> Any:
    from iaaa.metrics import InceptionFeatures, PyramidStatsFeatures, wae_features
    from iaaa.metrics.features import INCEPTION_WEIGHTS_HELP

    for flag, given, kind in (("--inception-weights", args.inception_weights, "inception"), ("--wae", args.wae, "wae")):
        if given and args.features != kind:
            raise IaaaError(f"{flag}: goes with --features {kind}, not --features {args.features} (it would be ignored)")
    if args.features == "inception":
        if not args.inception_weights:
            raise IaaaError(f"--features inception needs --inception-weights FILE; {INCEPTION_WEIGHTS_HELP}")
        return InceptionFeatures(args.inception_weights, device=args.device)
    if args.features == "wae":
        if not args.wae:
            raise IaaaError("--features wae needs --wae FILE (a model saved by iaaa.policy)")
        return wae_features(args.wae, device=args.device)
    return PyramidStatsFeatures(device=args.device)


def _value_range(values: list[str] | None) -> Any:
    if not values:
        return None
    if values == ["real"]:
        return "real"
    try:
        lo, hi = (float(v) for v in values)
    except ValueError:
        raise IaaaError(f"--value-range: expected LO HI (two numbers) or 'real', got {' '.join(values)}") from None
    finite("--value-range LO", lo)
    finite("--value-range HI", hi)
    if not hi > lo:
        raise IaaaError(f"--value-range: LO must be below HI, got {lo} {hi}")
    return (lo, hi)


def run(args: argparse.Namespace) -> int:
    from iaaa.data.imageio import atomic_write_text
    from iaaa.device import resolve_device
    from iaaa.metrics import evaluate_fidelity
    from iaaa.metrics.protocols import SIZE_BOUNDS

    levels = _csv(args.levels, _LEVELS, "--levels")
    metrics = _csv(args.metrics, _METRICS, "--metrics")
    given = fill_defaults(args, SIZES)
    idle = [flag for flag, attr, read in (
        ("--tile", "tile", "image" in levels),
        ("--image-size", "image_size", "image" in levels and args.tile == 0),
        ("--crop-size", "crop_size", "sco" in levels or "mco" in levels),
    ) if attr in given and not read]
    if idle:
        raise IaaaError(f"{', '.join(idle)}: nothing reads {'them' if len(idle) > 1 else 'it'} at --levels {','.join(levels)}"
                        + (" (--image-size fits whole images: it goes with --tile 0)" if "--image-size" in idle and "image" in levels else ""))
    if args.tile < 0:
        raise IaaaError(f"--tile: must be >= 0, got {args.tile}")
    if 0 < args.tile < 16:
        raise IaaaError(f"--tile: tiles below 16 px hold no pyramid levels; got {args.tile} (0 = whole images)")
    # The library's own bounds, checked here first so the refusal names the flag.
    for flag, v, name in (("--tile", args.tile or 16, "tile"), ("--crop-size", args.crop_size, "crop_size"), ("--image-size", args.image_size, "image_size"), ("--subsets", args.subsets, "num_subsets"), ("--batch-size", args.batch_size, "batch_size")):
        lo, hi = SIZE_BOUNDS[name]
        if not lo <= v <= hi:
            raise IaaaError(f"{flag}: must be in [{lo}, {hi}], got {v}")
    if args.subset_size is not None and args.subset_size < 2:
        raise IaaaError(f"--subset-size: must be >= 2, got {args.subset_size}")
    if args.max_samples is not None and args.max_samples < 2:
        raise IaaaError(f"--max-samples: must be >= 2, got {args.max_samples}")
    value_range = _value_range(args.value_range)
    resolve_device(args.device, "--device")
    real, real_annotated = _read_side(args, "real")
    synthetic, synth_annotated = _read_side(args, "synthetic")
    object_levels = [lv for lv in levels if lv != "image"]
    if object_levels and not (real_annotated and synth_annotated):
        side = "real" if not real_annotated else "synthetic"
        raise IaaaError(f"--levels {','.join(object_levels)} need instance masks, but the {side} images came without (--{side}-masks); use --levels image")
    extractor = _extractor(args) if any(m in metrics for m in ("kid", "fid", "fid_inf")) else None
    try:
        report = evaluate_fidelity(
            real, synthetic, levels=levels, metrics=metrics, extractor=extractor,
            tile=args.tile or None, crop_size=args.crop_size, image_size=args.image_size,
            value_range=value_range, subset_size=args.subset_size, num_subsets=args.subsets,
            max_samples=args.max_samples, seed=args.seed, batch_size=args.batch_size, device=args.device,
        )
    except ValueError as exc:  # data the protocol cannot use (channel counts, sizes): one line for the user
        raise IaaaError(str(exc)) from exc
    print(report.table())
    sizes = ", ".join(f"{r.level} {r.kid.subset_size}" for r in report.levels if r.kid is not None)
    print(f"features: {report.settings['extractor']}; seed {args.seed}" + (f"; KID subsets: {args.subsets} of size {sizes}" if sizes else ""))
    if args.json:
        doc = report.to_dict()
        doc["inputs"] = {side: {k: getattr(args, k) for k in (side, f"{side}_images", f"{side}_masks", f"{side}_coco", f"{side}_dsb") if getattr(args, k)} for side in ("real", "synthetic")}
        atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
