"""What the segmenter sees: how the crops each judge arm adds to a training step hold their cells.

The judge (``benchmarks/downstream.py``) scores arms by training; this script looks at their
training data instead, with no training. For each fold of a data regime it builds every arm's
step composer exactly as the judge does (same folds, working scale, crop, seed streams, pools
and online pasters), draws ``--steps`` steps and measures the crops the arm adds to a step
(``aug``: its real crops, the reference): cells per crop, the share of crop pixels inside
cells, the share of cells that touch another (a mask pixel within 1 px of another cell's, as
:func:`iaaa.synthesis.contacts.measure_contacts` counts it), contact pixels per crop (the
pixels that teach the segmenter where two cells meet: the boundary between touching cells),
and the share of cells cut by the crop's frame.

    python benchmarks/training_crops.py --dataset usiigaci --train-limit 2 --folds 4 --seed 0
    python benchmarks/training_crops.py --dataset dsb --train-limit 4 --folds 4 --seed 0 \\
        --arms "aug,naive+aug,iaaa+aug,iaaa[count_cap=False]+aug" --compositor count_cap=False

Prints one row per arm (all folds pooled). Nothing is asserted; results go to
benchmarks/downstream.md beside the judge's scores of the same arms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from downstream import DATA, DATASETS, split  # noqa: E402
from iaaa.commands.judge import parse_pairs  # noqa: E402
from iaaa.data import read_label_folder  # noqa: E402
from iaaa.judge import PASTE_SCALES, Recipe, StepComposer, fold_pasters, fold_pools, fold_subsets, named_sources, native_images, parse_arm, prepare_all, prepared_pool, split_arms  # noqa: E402
from iaaa.judge.recipe import parse_paste_context  # noqa: E402
from iaaa.synthesis.contacts import measure_contacts  # noqa: E402

ARMS = "aug,naive+aug,iaaa+aug,iaaa[count_cap=False]+aug,iaaa-online+aug"


def crop_figures(labels: torch.Tensor) -> tuple[int, int, int, int, int]:
    """``(cells, cell pixels, touching cells, contact pixels, cells cut by the frame)`` of one
    crop's instance map."""
    lab = labels.numpy()
    st = measure_contacts(lab, 1)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return st.cells, int((lab > 0).sum()), st.touching, st.contact_px, int((edge > 0).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="usiigaci")
    ap.add_argument("--data", help="override the dataset folder (images/ + masks/), as downstream.py's --data")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--folds", type=int, default=1)
    ap.add_argument("--only-folds", default=None, help="comma-separated fold indices")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100, help="steps drawn per arm and fold")
    ap.add_argument("--pool", type=int, default=32)
    ap.add_argument("--arms", default=ARMS)
    ap.add_argument("--paste-context", type=parse_paste_context, default=1.0, metavar="F", help="as downstream.py's --paste-context")
    ap.add_argument("--paste-scale", choices=PASTE_SCALES, default="working", help="as downstream.py's --paste-scale")
    ap.add_argument("--compositor", action="append", nargs="+", default=[], metavar="KEY=VALUE", help="a CellCompositor variant (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    info = DATASETS[args.dataset]
    folder = Path(args.data) if args.data else DATA / info["folder"]
    if not folder.is_dir():
        sys.exit(f"{folder}: not found (the data sets live in ../shared/data beside the checkout)")
    train, _ = split(args.dataset, read_label_folder(folder / "images", folder / "masks"))
    only = tuple(int(v) for v in args.only_folds.split(",")) if args.only_folds else None
    recipe = Recipe(scale=info["scale"], train_limit=args.train_limit, folds=args.folds, only_folds=only, seeds=(args.seed,), pool_size=args.pool,
                    paste_context=args.paste_context, paste_scale=args.paste_scale)
    # the default arms' one variant needs its options, as downstream.py's --compositor gives them
    pairs_list = args.compositor or ([["count_cap=False"]] if args.arms == ARMS else [])
    options = [parse_pairs(pairs) for pairs in pairs_list]
    arms = split_arms(args.arms)
    sources = named_sources(arms, options)
    arms = [parse_arm(a) for a in arms]
    sums: dict[str, np.ndarray] = {a.name: np.zeros(6) for a in arms}  # crops, cells, cell px, touching, contact px, cut
    t0 = time.perf_counter()
    for k, subset in enumerate(fold_subsets(len(train), recipe.train_limit, recipe.folds)):
        if only is not None and k not in only:
            continue
        fold_train = [train[i] for i in subset]
        # the judge's own fold set-up: each source fitted once, online arms' pasters, pools
        real = prepare_all(fold_train, recipe, recipe.crop)
        fitted = fold_pools(arms, sources, fold_train, lambda _m: None)
        native = native_images(fold_train) if recipe.pastes_native else None
        pasters = fold_pasters(arms, sources, real, lambda _m: None, native)
        pools = {name: prepared_pool(name, f, args.seed, recipe, int(real[0].image.shape[0])) for name, (f, _) in fitted.items()}
        for arm in arms:
            pool, paster = pools.get(arm.source or ""), pasters.get(arm.source or "")
            composer = StepComposer(real, recipe, args.seed, arm, pool, paster=paster, native=native if paster is not None else None)
            for _ in range(args.steps):
                step = composer.next()
                crops = step.labels[recipe.batch_size :] if step.n_synthetic else step.labels[: recipe.batch_size]
                for lab in crops:
                    sums[arm.name] += (1, *crop_figures(lab))
        print(f"fold {k} done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)

    px = recipe.crop * recipe.crop
    print(f"{args.dataset}, N = {args.train_limit or 'all'}, folds {only or 'all'}, seed {args.seed}, {args.steps} steps per arm and fold; crops {recipe.crop} px at scale {recipe.scale}")
    print("| arm | crops | cells per crop | cell pixels | touching share | contact px per crop | contact px per touching cell | cells cut by the frame |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in sums.items():
        n, cells, cpx, touch, contact, cut = s
        print(f"| {name} | {int(n)} | {cells / n:.2f} | {cpx / n / px:.3f} | {touch / max(cells, 1):.3f} | {contact / n:.1f} | {contact / max(touch, 1):.1f} | {cut / max(cells, 1):.3f} |")


if __name__ == "__main__":
    main()
