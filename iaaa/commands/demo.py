"""``iaaa demo``: the end-to-end run on the built-in simulator (or a folder of your own)."""

from __future__ import annotations

import argparse
from pathlib import Path

from iaaa.commands._checks import fill_defaults
from iaaa.commands._threads import add_threads_arg, torch_threads_of


SIMULATOR = {"n": 8, "mode": "fluorescence", "size": (256, 256)}
"""The simulator options' defaults (``--n``, ``--mode``, ``--size``)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run end to end on built-in simulated data (or your folder)",
        description="Simulate annotated cell images (or read --images/--masks), fit a CellCompositor on them, "
        "write synthetic images with exact label maps and a COCO JSON, and draw a preview PNG (rows: real images, "
        "their backgrounds after cell removal, synthetic images; instances outlined).",
    )
    p.add_argument("--out", default="iaaa-demo", help="output folder (default: %(default)s)")
    # The simulator's options default to None so a value given beside --images (where it would
    # do nothing) is refused instead of ignored.
    p.add_argument("--n", type=int, default=None, help=f"number of simulated images (default: {SIMULATOR['n']})")
    p.add_argument("--synthetic", type=int, default=16, help="number of synthetic images to write (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default: %(default)s)")
    p.add_argument("--mode", choices=("fluorescence", "brightfield"), default=None, help=f"simulated modality (default: {SIMULATOR['mode']})")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="simulated image size (default: %d %d)" % SIMULATOR["size"])
    p.add_argument("--images", help="use this image folder instead of the simulator (needs --masks)")
    p.add_argument("--masks", help="label-map folder matching --images")
    p.add_argument("--compositor", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                   help="a CompositorConfig option by its flat or dotted name (default: the library's CompositorConfig())")
    add_threads_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with torch_threads_of(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from iaaa.commands.synth import compositor_config
    from iaaa.synthesis.compositor import CellCompositor
    from iaaa.data import load_samples, write_coco, write_label_folder
    from iaaa.data.dataset import SynthesisDataset
    from iaaa.export import MANIFEST, export_synthetic
    from iaaa.datasets import simulate_cells
    from iaaa.errors import IaaaError
    from iaaa.preview import save_preview

    config = compositor_config(args, flags=False)  # option errors first
    given = fill_defaults(args, SIMULATOR)
    if (args.images or args.masks) and given:
        what = "simulator options, which do" if len(given) > 1 else "a simulator option, which does"
        raise IaaaError(f"{', '.join('--' + k for k in given)}: {what} nothing with --images/--masks (the number of synthetic images is --synthetic)")
    if args.n < 1 or args.synthetic < 1:
        raise IaaaError(f"--n and --synthetic must be >= 1, got {args.n} and {args.synthetic}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise IaaaError(f"--out {out}: exists and is not a folder")
    # The demo writes real/, synthetic/ and preview.png: only into a new or empty folder, or
    # over an earlier demo (recognised by its export manifest).
    if out.is_dir() and any(out.iterdir()) and not (out / "synthetic" / MANIFEST).is_file():
        raise IaaaError(f"--out {out}: folder is not empty and is not an earlier iaaa demo; choose a new or empty folder")
    for flag, given in (("--images", args.images), ("--masks", args.masks)):
        if given and Path(given).exists():
            o, q = out.resolve(), Path(given).resolve()
            if o == q or o.is_relative_to(q) or q.is_relative_to(o):
                raise IaaaError(f"--out {out} overlaps {flag} {given}; the demo writes real copies and synthetic images there, so keep it apart from the input")
    if args.images or args.masks:
        real = load_samples(images=args.images, masks=args.masks)
        source = f"{args.images} + {args.masks}"
    else:
        real = simulate_cells(args.n, seed=args.seed, size=tuple(args.size), mode=args.mode)
        source = f"simulator (seed {args.seed}, {args.mode})"
    write_label_folder(real, out / "real" / "images", out / "real" / "masks")
    write_coco(real, out / "real" / "annotations.json", out / "real" / "images")
    cells = sum(s.num_instances for s in real)
    print(f"read {len(real)} annotated images ({cells} cells) from {source}")
    print(f"wrote {out / 'real'}/images, masks, annotations.json")
    compositor = CellCompositor(config, seed=args.seed).fit(real, progress=False)
    print(f"fitted: {compositor.stats.summary()}")
    manifest = {"source": source, "compositor": {"config": config.to_dict()}}
    result = export_synthetic(compositor, args.synthetic, out / "synthetic", seed=args.seed, manifest=manifest, progress=False)
    synthetic = [SynthesisDataset(compositor, args.synthetic, seed=args.seed).synthesize(i) for i in range(min(4, args.synthetic))]
    print(f"wrote {result['written']} synthetic images to {out / 'synthetic'}/images, masks, annotations.json, manifest.json")
    # With onto="image" the compositor's pool holds the real images with their cells; the
    # preview's middle row shows what the configured cell removal makes of the same images.
    import torch

    from iaaa.synthesis.background import remove_cells
    from iaaa.synthesis.image_groups import survey

    shown = real[:4]
    keys, halos = survey(shown, config.group_by, config.halo, config.objects.min_area)
    cleaned = [remove_cells(s.image, s.labels, config.background, halo=halos[k], generator=torch.Generator().manual_seed(args.seed)).image for s, k in zip(shown, keys)]
    preview = save_preview(out / "preview.png", shown, synthetic, backgrounds=cleaned)
    print(f"wrote {preview} (rows: real with outlines, the same images with cells removed, synthetic)")
    return 0
