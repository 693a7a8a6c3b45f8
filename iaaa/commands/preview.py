"""``iaaa preview``: a PNG contact sheet of real and synthetic images with coloured outlines."""

from __future__ import annotations

import argparse

from pathlib import Path

from iaaa.commands._inputs import add_input_args, has_inputs, load_export_folder, load_inputs
from iaaa.commands._threads import add_threads_arg, torch_threads_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preview",
        help="write a PNG contact sheet: real vs synthetic, instance outlines",
        description="Draw real images (top row) and synthetic ones (bottom row) with each instance outlined "
        "or filled in its own colour.",
    )
    add_input_args(p)
    p.add_argument("--synthetic", help="an iaaa synth output folder")
    p.add_argument("--out", default="preview.png", help="PNG to write (default: %(default)s)")
    p.add_argument("--n", type=int, default=4, help="images per row (default: %(default)s)")
    p.add_argument("--style", choices=("outline", "fill"), default="outline")
    add_threads_arg(p)
    p.set_defaults(func=run)


def _refuse_input_target(out: str, args: argparse.Namespace) -> None:
    """The sheet may not replace an input file nor land inside an input folder (the rule
    exports follow): a preview never destroys or mixes into the data it shows."""
    from iaaa.errors import IaaaError

    try:
        target = Path(out).resolve()
    except (OSError, RuntimeError) as exc:
        raise IaaaError(f"--out {out}: unusable path ({exc})") from None
    for flag in ("images", "masks", "coco", "dsb", "synthetic"):
        given = getattr(args, flag, None)
        if not given:
            continue
        src = Path(given).resolve()
        if target == src or target.is_relative_to(src):
            where = "is the input" if target == src else "lies inside the input folder"
            raise IaaaError(f"--out {out}: {where} --{flag} {given}; write the preview somewhere else")


def run(args: argparse.Namespace) -> int:
    from iaaa.data.imageio import write_image
    from iaaa.errors import IaaaError
    from iaaa.preview import contact_sheet, overlay_instances

    if args.n < 1:
        raise IaaaError(f"--n must be >= 1, got {args.n}")
    if not has_inputs(args) and not args.synthetic:
        raise IaaaError("nothing to draw: give input data (--images/--masks, --coco, --dsb) and/or --synthetic DIR")
    if not args.out.lower().endswith(".png"):
        raise IaaaError(f"--out must be a .png file, got {args.out}")
    rows = []
    with torch_threads_of(args):
        # Inputs are read (and named when malformed) first; nothing is written before the
        # target is checked against them.
        if has_inputs(args):
            rows.append([overlay_instances(s, args.style) for s in load_inputs(args)[: args.n]])
        if args.synthetic:
            rows.append([overlay_instances(s, args.style) for s in load_export_folder(args.synthetic)[: args.n]])
        _refuse_input_target(args.out, args)
        if Path(args.out).is_dir():
            raise IaaaError(f"--out {args.out}: is a folder; name the .png file to write")
        path = write_image(args.out, contact_sheet(rows))
    print(f"wrote {path} ({' + '.join(f'{len(r)}' for r in rows)} images)")
    return 0
