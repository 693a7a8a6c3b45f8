"""``iaaa search``: find augmentation policies with Greedy AutoAugment and save them as JSON."""

from __future__ import annotations

import argparse
import warnings

from iaaa.commands._checks import fill_defaults, finite
from iaaa.commands._inputs import add_input_args
from iaaa.commands._threads import add_threads_arg
from iaaa.commands.fit_wae import add_object_args, load_objects, parse_size, run_with_threads

OP_SETS = ("table-s1", "extended", "all")


RECON_WEIGHT = 0.1
"""Default weight of the WAE scorer's reconstruction term (``--recon-weight``)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="search augmentation policies (Greedy AutoAugment) and write policies.json",
        description="Cut cell objects out of annotated images and run Greedy AutoAugment over the op "
        "space, scoring policies with a Wasserstein AutoEncoder (--wae model.pt from `iaaa fit-wae`; "
        "without it one is trained first) or the training-free --scorer stats. The top policies go "
        "to --out, ready for `iaaa synth --policies`.",
    )
    add_input_args(p)
    p.add_argument("--out", required=True, help="policy JSON to write (e.g. policies.json)")
    p.add_argument("--scorer", choices=("wae", "stats"), default="wae", help="how policies are scored (default: %(default)s)")
    p.add_argument("--wae", help="WAE model file from `iaaa fit-wae` (--scorer wae); trained on the fly when absent")
    p.add_argument("--save-wae", help="with --scorer wae and no --wae: also save the WAE trained on the fly here")
    p.add_argument("--recon-weight", type=float, default=None, help=f"weight of the WAE reconstruction term, --scorer wae (default: {RECON_WEIGHT})")
    p.add_argument("--ops", default="table-s1", help="op set: table-s1 (the paper's 11), extended (Figure S11 extras), all, or a comma list of op names (default: %(default)s)")
    p.add_argument("--n-p", type=int, default=3, help="probabilities per op (default: %(default)s)")
    p.add_argument("--n-m", type=int, default=5, help="magnitudes per op (default: %(default)s)")
    p.add_argument("--l-max", type=int, default=2, help="maximum sub-policies per policy (default: %(default)s)")
    p.add_argument("--top-b", type=int, default=10, help="policies kept (default: %(default)s)")
    p.add_argument("--min-change", type=float, default=0.1, help="minimum mean relative change of a policy and of each sub-policy (default: %(default)s)")
    p.add_argument("--diversity-weight", type=float, default=0.0, help="objective reward per unit of change (default: %(default)s)")
    p.add_argument("--weighting", choices=("uniform", "rank"), default="uniform", help="how synthesis picks a policy per object (default: %(default)s)")
    add_object_args(p)
    p.add_argument("--size", type=int, nargs="+", default=[32], metavar="N", help="object size for --scorer stats, or for a WAE trained on the fly (default: 32)")
    p.add_argument("--seed", type=int, default=0, help="seeds the object subset, the search's draws and an on-the-fly WAE")
    p.add_argument("--max-evals", type=int, help="stop before this many scorer evaluations")
    p.add_argument("--time-budget", type=float, help="stop the search after about this many seconds")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    add_threads_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p.set_defaults(func=run)


def resolve_ops(spec: str) -> list[str]:
    from iaaa.errors import IaaaError
    from iaaa.ops import EXTENDED, SPACE, TABLE_S1

    if spec == "table-s1":
        return list(TABLE_S1)
    if spec == "extended":
        return list(EXTENDED)
    if spec == "all":
        return list(TABLE_S1) + list(EXTENDED)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in SPACE]
    if not names or unknown:
        raise IaaaError(f"--ops: unknown op(s) {', '.join(unknown) or repr(spec)}; use {', '.join(OP_SETS)} or names from: {', '.join(SPACE)}")
    if len(set(names)) != len(names):
        raise IaaaError(f"--ops: an op is listed twice in {spec!r}")
    return names


def run(args: argparse.Namespace) -> int:
    return run_with_threads(args, _run)


def _run(args: argparse.Namespace) -> int:
    from iaaa.errors import IaaaError
    from iaaa.policy import GreedyPolicySearch, StatsScorer, WAEScorer, fit_wae

    ops = resolve_ops(args.ops)
    size = parse_size(args.size)
    for flag, v in (("--n-p", args.n_p), ("--n-m", args.n_m), ("--l-max", args.l_max), ("--top-b", args.top_b)):
        if v < 1:
            raise IaaaError(f"{flag} must be >= 1, got {v}")
    finite("--min-change", args.min_change, 0.0)
    if fill_defaults(args, {"recon_weight": RECON_WEIGHT}) and args.scorer != "wae":
        raise IaaaError("--recon-weight weighs the WAE scorer's reconstruction term; it goes with --scorer wae")
    finite("--recon-weight", args.recon_weight, 0.0)
    finite("--diversity-weight", args.diversity_weight)
    finite("--time-budget", args.time_budget, 0.0, lo_open=True)
    if args.max_evals is not None and args.max_evals < 1:
        raise IaaaError(f"--max-evals must be >= 1, got {args.max_evals}")
    if args.scorer == "stats" and (args.wae or args.save_wae):
        raise IaaaError("--wae and --save-wae go with --scorer wae")
    if args.wae and args.save_wae:
        raise IaaaError("--save-wae saves a WAE trained on the fly; it cannot go with --wae")
    threads = args.threads or None
    scorer = WAEScorer(args.wae, recon_weight=args.recon_weight, device=args.device) if args.wae else None
    objs = load_objects(args)
    if args.scorer == "stats":
        scorer = StatsScorer()
    elif scorer is None:
        if not args.quiet:
            print(f"search: no --wae given; training one on {len(objs)} objects first (save it with --save-wae, or train with `iaaa fit-wae`)")
        model = fit_wae(objs, size=size, seed=args.seed, device=args.device, progress=not args.quiet, num_threads=threads)
        if args.save_wae:
            model.save(args.save_wae)
        scorer = WAEScorer(model, recon_weight=args.recon_weight, device=args.device)
    search = GreedyPolicySearch(
        space=ops, n_p=args.n_p, n_m=args.n_m, l_max=args.l_max, top_b=args.top_b, scorer=scorer,
        min_change=args.min_change, diversity_weight=args.diversity_weight, max_evaluations=args.max_evals,
        time_budget=args.time_budget, seed=args.seed, size=size, device=args.device, progress=not args.quiet, num_threads=threads,
    )
    try:
        with warnings.catch_warnings():
            # The summary line below reports a budget stop; the library warning would repeat it.
            warnings.filterwarnings("ignore", message="policy search stopped by its budget")
            result = search.search(objs)
    except ValueError as exc:
        raise IaaaError(str(exc)) from exc
    result.weighting = args.weighting
    result.meta["input"] = {k: getattr(args, k) for k in ("images", "masks", "coco", "dsb") if getattr(args, k, None)}
    result.meta["objects"] = {"kind": args.kind, "count": len(objs), "max_objects": args.max_objects}
    result.save(args.out)
    st = search.stats
    print(
        f"search: {st['evaluations']} scorer evaluations (brute force: {st['brute_force_evaluations']}) on {st['n_objects']} objects "
        f"in {st['seconds']:.1f} s{' (stopped by budget)' if st['truncated'] else ''}; wrote {len(result)} policies to {args.out}"
    )
    if not args.quiet:
        for i, (pol, score, change) in enumerate(zip(result, result.scores, result.changes), 1):
            print(f"  {i:2d}. score {score:.4g}  change {change:.3f}  " + " -> ".join(str(s) for s in pol))
    return 0
