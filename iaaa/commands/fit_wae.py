"""``iaaa fit-wae``: train the Wasserstein AutoEncoder that scores policies in ``iaaa search``."""

from __future__ import annotations

import argparse

from iaaa.commands._checks import finite
from iaaa.commands._inputs import add_input_args, load_inputs
from iaaa.commands._threads import add_threads_arg, torch_threads_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit-wae",
        help="train the WAE that scores augmentation policies",
        description="Cut cell objects out of annotated images, resize them to --size and train a "
        "Wasserstein AutoEncoder (MMD, IMQ kernel) on them. The model file (state dict + config) "
        "is what `iaaa search --wae` reads.",
    )
    add_input_args(p)
    p.add_argument("--out", required=True, help="model file to write (e.g. wae.pt)")
    p.add_argument("--size", type=int, nargs="+", default=[32], metavar="N", help="crop size: N or H W (default: 32)")
    p.add_argument("--latent-dim", type=int, default=8, help="latent code size (default: %(default)s)")
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64], metavar="C", help="conv widths, one stride-2 layer each (default: 16 32 64)")
    p.add_argument("--epochs", type=int, default=60, help="training epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--lambda-mmd", type=float, default=10.0, help="weight of the latent MMD penalty (default: %(default)s)")
    p.add_argument("--no-dihedral", action="store_true", help="do not show crops under random flips/transposes while training")
    add_object_args(p)
    p.add_argument("--seed", type=int, default=0, help="seeds initialisation, shuffling, prior samples and the object subset")
    p.add_argument("--time-budget", type=float, help="stop after the epoch that passes this many seconds")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    add_threads_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_object_args(p: argparse.ArgumentParser) -> None:
    """Object selection shared with ``iaaa search``."""
    p.add_argument("--kind", choices=("all", "sco", "mco"), default="all", help="which cell objects to use (default: %(default)s)")
    p.add_argument("--max-objects", type=int, default=300, help="use at most this many objects, a seeded random subset; 0 = all (default: %(default)s)")


def parse_size(values: list[int], flag: str = "--size") -> tuple[int, int]:
    from iaaa.errors import IaaaError

    if len(values) not in (1, 2) or min(values) < 1:
        raise IaaaError(f"{flag}: expected N or H W of positive ints, got {' '.join(map(str, values))}")
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def load_objects(args: argparse.Namespace) -> list:
    from iaaa.errors import IaaaError
    from iaaa.synthesis.search_objects import objects_for_search

    if args.max_objects < 0:
        raise IaaaError(f"--max-objects must be >= 0, got {args.max_objects}")
    objs = objects_for_search(load_inputs(args), kind=args.kind, max_objects=args.max_objects or None, seed=args.seed)
    if len(objs) < 2:
        raise IaaaError(f"the input data yields {len(objs)} usable cell objects of kind {args.kind!r} (objects touching the image border are skipped); need at least 2")
    return objs


def run_with_threads(args: argparse.Namespace, body) -> int:
    """Run ``body(args)`` under ``--threads`` torch threads (shared with ``iaaa search``): it
    covers reading and object extraction too, which suffer from oversubscription as well.
    ``--device`` is checked first: a device this machine lacks is one line, not a traceback
    from the first allocation after the objects were read."""
    from iaaa.device import resolve_device

    resolve_device(args.device, "--device")
    with torch_threads_of(args):
        return body(args)


def run(args: argparse.Namespace) -> int:
    return run_with_threads(args, _run)


def _run(args: argparse.Namespace) -> int:
    from iaaa.errors import IaaaError
    from iaaa.policy.wae import fit_wae

    size = parse_size(args.size)
    if args.epochs < 1 or args.batch_size < 2 or args.latent_dim < 1 or min(args.channels) < 1:
        raise IaaaError("--epochs, --latent-dim and --channels must be >= 1 and --batch-size >= 2")
    finite("--lr", args.lr, 0.0, lo_open=True)
    finite("--lambda-mmd", args.lambda_mmd, 0.0)
    finite("--time-budget", args.time_budget, 0.0, lo_open=True)
    objs = load_objects(args)
    try:
        model = fit_wae(
            objs, size=size, latent_dim=args.latent_dim, channels=tuple(args.channels), epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, lambda_mmd=args.lambda_mmd, seed=args.seed, device=args.device,
            time_budget=args.time_budget, progress=not args.quiet, dihedral=not args.no_dihedral, num_threads=args.threads or None,
        )
    except ValueError as exc:
        raise IaaaError(str(exc)) from exc
    model.save(args.out)
    rep = model.report
    print(
        f"fit-wae: {rep.n_objects} objects at {size[0]}x{size[1]}, {len(rep.loss)} epochs ({rep.steps} steps) in {rep.seconds:.1f} s; "
        f"loss {rep.loss[0]:.4g} -> {rep.loss[-1]:.4g} (reconstruction {rep.reconstruction[-1]:.4g}, MMD {rep.mmd[-1]:.4g}); wrote {args.out}"
    )
    return 0
