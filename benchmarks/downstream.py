"""Downstream benchmark: does synthetic data help a segmentation model on held-out REAL images?

The judge (``iaaa.judge``) trains the same small 3-class U-Net from scratch for every arm, every
fold of the data regime and every seed, and scores held-out real images with the Data Science
Bowl mean AP (IoU 0.50:0.05:0.95), AP@0.5 and F1@0.5 at the label maps' native resolution.
Arms (``--arms``):

    real        real crops only (the reference of the paired differences)
    aug         real crops with standard augmentation (scale 0.5-2x, any angle, mirror,
                brightness/contrast/gamma, blur, noise; iaaa.ops, labels exact)
    naive       online Simple Copy-Paste between real crops
    iaaa        + iaaa.CellCompositor() with its defaults, fitted on each fold's training images
    X+aug       arm X with the standard augmentation on every crop
    iaaa[k=v,...]   + CellCompositor(k=v, ...) for each --compositor variant
    synthetic:NAME  + the images of an `iaaa synth` output folder (--synthetic DIR), used whole

``--protocol add`` (default): every step holds the same real crops as real only plus
``ratio x batch`` synthetic crops; ``mix``: synthetic crops replace real ones; ``online``: real
crops get pasted cells with probability ``--p``. ``--train-limit N --folds K``: K subsets of N
training fields, the same test fields; differences paired per (fold, seed) with 95 % t intervals.

Datasets (by path, never copied):

    usiigaci   ../shared/data/usiigaci_phase_dev: 16 dense 1022x1024 uint16 phase-contrast fields,
               sorted by name: first 8 train, last 8 test. Worked at scale 0.5, scored at full
               resolution.
    dsb        ../shared/data/dsb2018_fluo: 30 nuclei images of several labs and sizes. Split by
               size group, alternating train/test within each: 17 train / 13 test. Scale 1.

``--time-steps N``: instead of a judgement, seconds per training step of the previous default
(U-Net width 16) and the current one (width 8), real only and with each protocol's extra crops,
interleaved in one process so the ratios hold under any load, and the wall time this predicts
for the record's commands (benchmarks/downstream.md, "to run").

Run from the repository root, e.g.

    python benchmarks/downstream.py --dataset usiigaci --train-limit 2 --folds 4 --json out/u2.json
    python benchmarks/downstream.py --dataset dsb --time-steps 30
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from iaaa.commands.judge import parse_pairs  # noqa: E402
from iaaa.data import read_label_folder  # noqa: E402
from iaaa.judge import PASTE_SCALES, Recipe, StepComposer, judge, named_sources, parse_arm, prepare, split_arms, train_segmenter, variant_arms  # noqa: E402
from iaaa.judge.report import JudgeReport  # noqa: E402
from iaaa.judge.recipe import parse_paste_context  # noqa: E402

# beside the checkout; a worktree one level deeper (wt/NAME) finds it one level up
DATA = next((d for d in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data") if d.is_dir()), ROOT.parent / "shared" / "data")
DATASETS = {
    "usiigaci": {"folder": "usiigaci_phase_dev", "scale": 0.5},
    "dsb": {"folder": "dsb2018_fluo", "scale": 1.0},
}
ARMS = "real,aug,naive,iaaa,iaaa+aug"


def split(name: str, samples: list[Any]) -> tuple[list[Any], list[Any]]:
    """The documented train/test split of each dataset (see module docs)."""
    samples = sorted(samples, key=lambda s: s.name)
    if name == "usiigaci":
        half = len(samples) // 2
        return samples[:half], samples[half:]
    groups: dict[tuple[int, int], list[Any]] = {}
    for s in samples:
        groups.setdefault(s.size, []).append(s)
    train, test = [], []
    for size in sorted(groups):
        for i, s in enumerate(groups[size]):
            (train if i % 2 == 0 else test).append(s)
    return train, test


def time_steps(train: list[Any], recipe: Recipe, n: int) -> None:
    """Seconds per training step of the old and new defaults and the protocols (module docs)."""
    real = [prepare(s, recipe.scale, recipe.crop, recipe.boundary) for s in train]
    cases = [
        ("width 16, real (previous default)", Recipe(**{**recipe.to_dict(), "width": 16, "steps": n, "curve": (1.0,)}), "real"),
        ("width 8, real (default)", Recipe(**{**recipe.to_dict(), "steps": n, "curve": (1.0,)}), "real"),
        ("width 8, aug", Recipe(**{**recipe.to_dict(), "steps": n, "curve": (1.0,)}), "aug"),
        ("width 8, add ratio 1 (naive)", Recipe(**{**recipe.to_dict(), "steps": n, "curve": (1.0,), "protocol": "add"}), "naive"),
        ("width 8, add ratio 1 (naive+aug)", Recipe(**{**recipe.to_dict(), "steps": n, "curve": (1.0,), "protocol": "add"}), "naive+aug"),
    ]
    times: dict[str, list[float]] = {c[0]: [] for c in cases}
    for rep in range(3):  # interleaved, so a change of load hits every case alike
        for label, r, arm in cases:
            composer = StepComposer(real, r, rep, parse_arm(arm), None)
            t0 = time.perf_counter()
            train_segmenter(composer, r)
            times[label].append((time.perf_counter() - t0) / n)
    base = min(times[cases[0][0]])
    print(f"\nseconds per training step (min of 3 interleaved repeats of {n} steps; batch {recipe.batch_size} x {recipe.crop} px, "
          f"{torch.get_num_threads()} thread(s), {recipe.device})")
    print("| case | s/step | vs previous default |\n|---|---|---|")
    for label, *_ in cases:
        t = min(times[label])
        print(f"| {label} | {t:.4f} | {base / t:.2f}x fewer s |")
    new_real, new_add = min(times[cases[1][0]]), min(times[cases[3][0]])
    print("\npredicted training time of a record command at these speeds (+ ~10 % scoring and curve points):")
    for name, runs_real, runs_add, steps in (
        ("5 arms x 4 folds x 3 seeds", 2 * 12, 3 * 12, recipe.steps),
        ("5 arms x 1 fold x 3 seeds", 2 * 3, 3 * 3, recipe.steps),
    ):
        s = steps * (runs_real * new_real + runs_add * new_add) * 1.1
        print(f"  {name}, {steps} steps: {s / 60:.0f} min")


def select_arms(data: dict[str, Any], spec: str, path: str) -> dict[str, Any]:
    """The report ``data`` with only the arms of ``spec`` (``"ARM,ARM->NAME,ARM@0+2,..."``, split
    as ``--arms`` is): each kept, or renamed to ``NAME``; ``@F+F`` keeps only the runs of those
    folds (a fold whose draws a later commit changed). For a record put together from parts
    whose other arms were run by older code, or whose arm now has another name (a variant that
    became the default)."""
    results = data["results"]
    kept: dict[str, Any] = {}
    for item in split_arms(spec):
        item, at, folds = item.rpartition("@") if "@" in item else (item, "", "")
        arm, _, name = item.partition("->")
        arm, name = arm.strip(), (name.strip() or arm.strip())
        if arm not in results:
            raise SystemExit(f"--merge {path}: no arm {arm!r} in it ({', '.join(results)})")
        runs = results[arm]
        if at:
            try:
                wanted = {int(f) for f in folds.split("+")}
            except ValueError:
                raise SystemExit(f"--merge {path}: {item}@{folds}: folds are written F+F (e.g. @0+2+3)") from None
            runs = {k: r for k, r in runs.items() if int(k.split("/")[0].removeprefix("fold")) in wanted}
            if not runs:
                raise SystemExit(f"--merge {path}: arm {arm!r} has no run in folds {sorted(wanted)}")
        kept[name] = runs
    settings = dict(data["settings"], arms=list(kept))
    return dict(data, results=kept, settings=settings)


def merge(paths: list[str], json_out: str | None, baselines: list[str] = (), per_image: str | None = None) -> int:
    """Print one table from the JSON reports of a regime's parts (``--only-folds``, other seeds,
    arms run later: ``JudgeReport.merge``),
    and the differences paired against each of ``baselines`` (e.g. ``aug``). A part given as
    ``PATH:ARMS`` contributes only those arms (:func:`select_arms`)."""
    parts = []
    for spec in paths:
        # a file whose own name holds ":" is taken whole
        path, _, arms = (spec, "", "") if Path(spec).is_file() else spec.partition(":")
        data = json.loads(Path(path).read_text())
        parts.append(select_arms(data, arms, path) if arms else data)
    report = JudgeReport.merge([JudgeReport.from_dict(d) for d in parts])
    print(report.table())
    for arm in baselines:
        if arm not in report.results:
            print(f"error: --baseline {arm}: not an arm of these reports ({', '.join(report.arms)})", file=sys.stderr)
            return 2
        print(f"\npaired against {arm}:")
        print(report.rebased(arm).table(curves=False))
    if per_image:
        if per_image not in report.results:
            print(f"error: --per-image {per_image}: not an arm of these reports ({', '.join(report.arms)})", file=sys.stderr)
            return 2
        print()
        print(report.rebased(per_image).per_image_table())
    wall = sum(float(d.get("wall_s", 0.0)) for d in parts)
    print(f"\n{len(parts)} parts, {wall / 60:.1f} min of wall time in all (parts run side by side overlap)")
    if json_out:
        from iaaa.data.imageio import atomic_write_text

        data = report.to_dict()
        data.update({k: parts[0][k] for k in ("dataset", "folder", "train", "torch") if k in parts[0]},
                    parts=[{"path": p, "command": d.get("command"), "wall_s": d.get("wall_s")} for p, d in zip(paths, parts)])
        atomic_write_text(json_out, json.dumps(data, indent=2))
        print(f"wrote {json_out}")
    return 0


def main() -> int:
    d = Recipe()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DATASETS), default="usiigaci")
    p.add_argument("--data", help="override the dataset folder (images/ + masks/)")
    p.add_argument("--arms", "--cases", dest="arms", default=ARMS, help="comma list of arms (default: %(default)s)")
    p.add_argument("--compositor", action="append", nargs="+", default=[], metavar="KEY=VALUE", help="a CellCompositor variant (repeatable)")
    p.add_argument("--synthetic", action="append", default=[], metavar="DIR", help="an iaaa synth output folder, used whole (repeatable)")
    p.add_argument("--protocol", default=d.protocol, choices=("add", "mix", "online"))
    p.add_argument("--ratio", type=float, default=d.ratio)
    p.add_argument("--p", type=float, default=d.p)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--folds", type=int, default=1)
    p.add_argument("--only-folds", default=None, metavar="K,..", help="run only these folds of the regime (split a regime over processes; put the JSONs together with --merge)")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="print (and with --json write) one report from the JSON reports of a regime's parts (other folds, seeds, or arms run later beside a shared arm whose runs must reproduce); PATH:ARM,ARM->NAME keeps (and renames) only those arms of a part; trains nothing")
    p.add_argument("--baseline", action="append", default=[], metavar="ARM", help="with --merge: also print the differences paired against this arm (repeatable)")
    p.add_argument("--per-image", nargs="?", const="real", default=None, metavar="ARM", help="with --merge: also print each test image's "
                   "mean AP per arm and the difference to ARM (default real) paired per run")
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)))
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--pool", type=int, default=d.pool_size)
    p.add_argument("--crop", type=int, default=d.crop)
    p.add_argument("--batch", type=int, default=d.batch_size)
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--depth", type=int, default=d.depth)
    p.add_argument("--scale", type=float, default=None, help="working scale (default: the dataset's, see module docs)")
    p.add_argument("--aug-scale", default=",".join(map(str, d.aug_scale)), metavar="LO,HI", help="zoom range of the aug arms (default: %(default)s)")
    p.add_argument("--aug-photometric", type=float, default=d.aug_photometric, metavar="S", help="strength of the aug arms' photometric part: 0 geometry only (default: %(default)s)")
    p.add_argument("--paste-context", type=parse_paste_context, default=d.paste_context, metavar="F", help="iaaa-online arms paste into the whole image ('image') or a window F times the crop's side around each added crop (default: %(default)s)")
    p.add_argument("--paste-scale", choices=PASTE_SCALES, default=d.paste_scale, help="iaaa-online arms fit and paste at the images' own resolution or the working scale (default: %(default)s)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--time-steps", type=int, default=0, metavar="N", help="only time N training steps per case (see module docs)")
    p.add_argument("--json", dest="json_out", help="write the report (recipe, folds, per-run results and curves, summary) here")
    args = p.parse_args()

    if args.merge:
        return merge(args.merge, args.json_out, args.baseline, args.per_image)
    torch.set_num_threads(args.threads)
    cfg = DATASETS[args.dataset]
    folder = Path(args.data) if args.data else DATA / cfg["folder"]
    if not (folder / "images").is_dir():
        print(f"dataset not found at {folder} (it sits in ../shared beside the checkout)", file=sys.stderr)
        return 2
    try:
        aug_scale = tuple(float(v) for v in args.aug_scale.split(","))
    except ValueError:
        print(f"--aug-scale: expected LO,HI numbers, got {args.aug_scale!r}", file=sys.stderr)
        return 2
    recipe = Recipe(protocol=args.protocol, ratio=args.ratio, p=args.p, steps=args.steps, batch_size=args.batch, crop=args.crop,
                    width=args.width, depth=args.depth, scale=args.scale if args.scale is not None else cfg["scale"],
                    pool_size=args.pool, seeds=tuple(int(s) for s in args.seeds.split(",")), train_limit=args.train_limit,
                    folds=args.folds, device=args.device, aug_scale=aug_scale, aug_photometric=args.aug_photometric,
                    paste_context=args.paste_context, paste_scale=args.paste_scale, only_folds=None if args.only_folds is None else tuple(int(k) for k in args.only_folds.split(",")))
    samples = read_label_folder(folder / "images", folder / "masks")
    train, test = split(args.dataset, samples)
    if args.time_steps:
        time_steps(train, recipe, args.time_steps)
        return 0
    arms = split_arms(args.arms)
    options = [parse_pairs(pairs) for pairs in args.compositor]
    sources = named_sources(arms, options)
    # a variant named in --arms (e.g. "iaaa[halo=16]+aug", or online: "iaaa-online[halo=16]+aug")
    # runs as named; the others plain
    arms += variant_arms(arms, options)
    for folder_ in args.synthetic:
        root = Path(folder_)
        if not (root / "images").is_dir() or not (root / "masks").is_dir():
            print(f"--synthetic {root}: expected an iaaa synth output folder with images/ and masks/", file=sys.stderr)
            return 2
        sources[f"synthetic:{root.name}"] = read_label_folder(root / "images", root / "masks")
        arms.append(f"synthetic:{Path(folder_).name}")
    print(f"{args.dataset}: {len(train)} train / {len(test)} test images; arms {arms}; recipe {recipe.to_dict()}; "
          f"{torch.get_num_threads()} thread(s)", flush=True)
    t0 = time.perf_counter()
    report = judge(train, test, sources, recipe, arms=arms, log=lambda m: print(m, flush=True))
    wall = time.perf_counter() - t0
    print()
    print(report.table())
    print(f"\nwall time {wall / 60:.1f} min; torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}")
    if args.json_out:
        from iaaa.data.imageio import atomic_write_text

        data = report.to_dict()
        data.update(dataset=args.dataset, folder=str(folder), train=[s.name for s in train], wall_s=wall, torch=torch.__version__,
                    command=" ".join(sys.argv))
        atomic_write_text(args.json_out, json.dumps(data, indent=2))
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    from iaaa.errors import IaaaError

    try:
        sys.exit(main())
    except IaaaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
