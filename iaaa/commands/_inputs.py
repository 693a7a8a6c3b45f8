"""Shared command-line arguments for reading a dataset: label folders, COCO or DSB."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from iaaa.errors import IaaaError


def add_input_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("input data (one of: --images + --masks, --coco + --images, --dsb)")
    g.add_argument("--images", help="image folder (with --masks, or with --coco)")
    g.add_argument("--masks", help="label-map folder matching --images by file stem")
    g.add_argument("--coco", help="COCO instance JSON; file names relative to --images")
    g.add_argument("--dsb", help="root of a DSB 2018 layout (<id>/images, <id>/masks)")
    p.set_defaults(_inputs_required=required)


def has_inputs(args: argparse.Namespace) -> bool:
    return bool(args.images or args.masks or args.coco or args.dsb)


def load_inputs(args: argparse.Namespace) -> list[Any]:
    from iaaa.data import load_samples

    samples = load_samples(images=args.images, masks=args.masks, coco=args.coco, dsb=args.dsb)
    if not samples:
        raise IaaaError("the input data holds no images")
    return samples


def input_record(args: argparse.Namespace) -> dict[str, Any]:
    """Where the data came from, for manifests (absolute paths)."""
    return {k: str(Path(v).resolve()) for k in ("images", "masks", "coco", "dsb") if (v := getattr(args, k, None))}


def load_export_folder(folder: str) -> list[Any]:
    """Read an ``iaaa synth`` output folder (images/ + masks/)."""
    from iaaa.data import read_label_folder

    root = Path(folder)
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise IaaaError(f"{root}: expected an iaaa synth output folder with images/ and masks/")
    return read_label_folder(root / "images", root / "masks")
