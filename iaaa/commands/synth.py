"""``iaaa synth``: write N synthetic images, label maps and one COCO JSON, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from iaaa.commands._checks import finite
from iaaa.commands._inputs import add_input_args, has_inputs, input_record, load_inputs
from iaaa.errors import IaaaError


def add_compositor_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("synthesis")
    g.add_argument("--policies", help="policy-set JSON from `iaaa search` (default: flips, any rotation, mild brightness/contrast)")
    g.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="output size (default: each background's own size)")
    g.add_argument("--count", default="sample", help="cells per image: 'sample' (from the data, default), 'mode' (the paper), N, or LO-HI")
    g.add_argument("--sigma", type=float, default=1.0, help="Gaussian feather sigma of pasted objects (default: %(default)s)")
    g.add_argument("--background", choices=("paper", "bilinear"), default="bilinear", help="cell-removal fill (default: %(default)s)")
    g.add_argument("--keep-border", action="store_true", help="also use objects that touch the image border")
    g.add_argument("--group-by-size", action="store_true", help="only paste cells onto backgrounds from images of the same size")


def _count(value: str):
    if value in ("sample", "mode"):
        return value
    try:
        if "-" in value:
            lo, hi = (int(v) for v in value.split("-", 1))
            if not 0 <= lo <= hi:
                raise ValueError
            return (lo, hi)
        if int(value) < 0:
            raise ValueError
        return int(value)
    except ValueError:
        raise IaaaError(f"--count must be 'sample', 'mode', an integer >= 0 or LO-HI with 0 <= LO <= HI, got {value!r}") from None


# A feather wider than this blurs a pasted cell into its surroundings (and its kernel grows
# with it); 0 is a hard paste.
MAX_SIGMA = 50.0


def compositor_options(args: argparse.Namespace) -> dict:
    """The CellCompositor keyword arguments the options ask for (JSON-ready, for manifests)."""
    finite("--sigma", args.sigma, 0.0, MAX_SIGMA)
    if args.size and min(args.size) < 8:
        raise IaaaError(f"--size: output images need at least 8 px a side, got {args.size[0]} {args.size[1]}")
    return {
        "size": list(args.size) if args.size else None,
        "count": list(c) if isinstance(c := _count(args.count), tuple) else c,
        "sigma": args.sigma,
        "background_method": args.background,
        "keep_border": bool(args.keep_border),
        "group_by": "size" if args.group_by_size else None,
    }


def build_compositor(args: argparse.Namespace, samples: list) -> tuple[object, dict]:
    import json

    from iaaa.synthesis.compositor import CellCompositor

    options = compositor_options(args)
    policy = None
    record = dict(options)
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
    kwargs = dict(options)
    kwargs["count"] = tuple(kwargs["count"]) if isinstance(kwargs["count"], list) else kwargs["count"]
    kwargs["size"] = tuple(kwargs["size"]) if kwargs["size"] else None
    try:
        compositor = CellCompositor(policy=policy, **kwargs).fit(samples)
    except IaaaError:
        raise
    except ValueError as exc:
        raise IaaaError(str(exc)) from exc
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
    p.add_argument("--workers", type=int, default=0, help="worker processes generating images (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--saaa", metavar="MODEL_DIR", help="SAAA model folder (from `iaaa saaa fit`): generated images; alone, or mixed with IAAA when input data is given")
    p.add_argument("--saaa-weight", type=float, default=0.5, help="with --saaa and input data: share of images drawn from SAAA (default: %(default)s)")
    add_compositor_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iaaa.export import check_export_folder, export_synthetic

    if args.n < 1:
        raise IaaaError(f"--n must be >= 1, got {args.n}")
    if args.workers < 0:
        raise IaaaError(f"--workers must be >= 0, got {args.workers}")
    compositor_options(args)  # option errors first, before minutes of reading and fitting
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
