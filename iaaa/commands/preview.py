"""``iaaa preview``: a PNG contact sheet of real and synthetic images with coloured outlines."""

from __future__ import annotations

import argparse

from iaaa.commands._inputs import add_input_args, has_inputs, load_export_folder, load_inputs


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iaaa.data.imageio import write_image
    from iaaa.errors import IaaaError
    from iaaa.preview import contact_sheet, overlay_instances

    if args.n < 1:
        raise IaaaError(f"--n must be >= 1, got {args.n}")
    rows = []
    if has_inputs(args):
        rows.append([overlay_instances(s, args.style) for s in load_inputs(args)[: args.n]])
    if args.synthetic:
        rows.append([overlay_instances(s, args.style) for s in load_export_folder(args.synthetic)[: args.n]])
    if not rows:
        raise IaaaError("nothing to draw: give input data (--images/--masks, --coco, --dsb) and/or --synthetic DIR")
    if not args.out.lower().endswith(".png"):
        raise IaaaError(f"--out must be a .png file, got {args.out}")
    path = write_image(args.out, contact_sheet(rows))
    print(f"wrote {path} ({' + '.join(f'{len(r)}' for r in rows)} images)")
    return 0
