"""``iaaa saaa``: train the SAAA models (mask DDPM + Pix2Pix) and sample synthetic datasets from them."""

from __future__ import annotations

import argparse
from pathlib import Path

from iaaa.commands._inputs import add_input_args, input_record, load_inputs
from iaaa.commands._threads import add_threads_arg, torch_threads_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "saaa",
        help="train / sample SAAA (diffusion masks + Pix2Pix images)",
        description="SAAA (paper section 4): a diffusion model generates cell label maps and a Pix2Pix generator "
        "renders their images. `fit` trains both on annotated images and writes a model folder; `sample` writes a "
        "synthetic dataset in the `iaaa synth` format (images/, masks/, annotations.json, manifest.json).",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB")

    f = verbs.add_parser("fit", help="train a SAAA model folder", description="Train the mask DDPM and the Pix2Pix generator on random --size px crops of the input data; checkpoints in OUT/checkpoints make an interrupted run resumable (rerun the same command).")
    add_input_args(f)
    f.add_argument("--out", required=True, help="model folder to write")
    f.add_argument("--steps", type=int, help="training steps of each model (default: 1000 diffusion, 1500 pix2pix)")
    f.add_argument("--diffusion-steps", type=int, help="steps of the mask DDPM (default: --steps or 1000)")
    f.add_argument("--pix2pix-steps", type=int, help="steps of the Pix2Pix generator (default: --steps or 1500)")
    f.add_argument("--size", type=int, default=64, help="crop and sample size in px (default: %(default)s)")
    f.add_argument("--crops-per-image", type=int, default=64, help="random training crops per image (default: %(default)s)")
    f.add_argument("--batch-size", type=int, nargs=2, default=[8, 8], metavar=("DIFF", "P2P"), help="batch sizes (default: 8 8)")
    f.add_argument("--diffusion-channels", type=int, nargs="+", default=[32, 64, 128, 128], metavar="C", help="U-Net widths per level (default: 32 64 128 128)")
    f.add_argument("--prediction-type", choices=("epsilon", "v_prediction", "sample"), default="v_prediction", help="what the mask U-Net predicts; epsilon drifts to too much foreground when undertrained (default: %(default)s)")
    f.add_argument("--sample-steps", type=int, default=50, help="DDIM steps when sampling (default: %(default)s)")
    f.add_argument("--min-area", type=int, default=8, help="smallest generated cell kept, px (default: %(default)s)")
    f.add_argument("--pix2pix-base", type=int, default=32, help="width of the generator's first level (default: %(default)s)")
    f.add_argument("--pix2pix-depth", type=int, default=4, help="stride-2 levels of the generator (default: %(default)s)")
    f.add_argument("--perceptual", default="wae", help="perceptual loss: wae (default), random, none, or a local VGG16/VGG19 state dict file")
    f.add_argument("--seed", type=int, default=0, help="seeds crops, weights and batches (default: %(default)s)")
    f.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    add_threads_arg(f)
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fit)

    s = verbs.add_parser("sample", help="write N synthetic images from a SAAA model", description="Sample --n images from a model folder written by `iaaa saaa fit` (same output format as `iaaa synth`; rerunning continues an interrupted run).")
    s.add_argument("--model", required=True, help="model folder from `iaaa saaa fit`")
    s.add_argument("--n", type=int, default=100, help="number of images (default: %(default)s)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0, help="sample i depends only on (seed, i) (default: %(default)s)")
    s.add_argument("--size", type=int, help="side of the sampled images in px (default: the model's training size; larger canvases hold more cells)")
    s.add_argument("--ddim-steps", type=int, help="DDIM steps per mask (default: the model's, 50)")
    s.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    add_threads_arg(s)
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=run_sample)
    p.set_defaults(func=lambda args: _no_verb(p))


def _no_verb(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def run_fit(args: argparse.Namespace) -> int:
    from iaaa.errors import IaaaError
    from iaaa.saaa import SAAA, MaskDiffusionConfig, Pix2PixConfig

    from iaaa.saaa import SAAAConfig

    d_steps = args.diffusion_steps if args.diffusion_steps is not None else args.steps if args.steps is not None else SAAAConfig.diffusion_steps
    p_steps = args.pix2pix_steps if args.pix2pix_steps is not None else args.steps if args.steps is not None else SAAAConfig.pix2pix_steps
    if min(d_steps, p_steps) < 1:
        raise IaaaError(f"--steps, --diffusion-steps and --pix2pix-steps must be >= 1, got {d_steps} and {p_steps}")
    try:
        model = SAAA(
            size=args.size, crops_per_image=args.crops_per_image, diffusion_steps=d_steps, pix2pix_steps=p_steps,
            diffusion_batch=args.batch_size[0], pix2pix_batch=args.batch_size[1], perceptual=args.perceptual, seed=args.seed,
            diffusion=MaskDiffusionConfig(block_out_channels=tuple(args.diffusion_channels), sample_steps=args.sample_steps, min_area=args.min_area, prediction_type=args.prediction_type),
            pix2pix=Pix2PixConfig(base=args.pix2pix_base, depth=args.pix2pix_depth), device=args.device,
        )
    except ValueError as exc:
        raise IaaaError(f"saaa fit: {exc}") from exc
    out = Path(args.out)
    with torch_threads_of(args):
        samples = load_inputs(args)
        model.fit(samples, checkpoint_dir=out / "checkpoints", progress=not args.quiet)
        model.save(out)
    rd, rp = model.reports["diffusion"], model.reports["pix2pix"]
    print(
        f"saaa fit: {len(samples)} images, {model.data['n_crops']} crops of {args.size} px; diffusion {rd.steps} steps "
        f"(mse {rd.losses['mse'][-1]:.4g}), pix2pix {rp.steps} steps (l1 {rp.losses['l1'][-1]:.4g}); wrote {out}"
    )
    _record_source(out, args)
    return 0


def _record_source(out: Path, args: argparse.Namespace) -> None:
    import json

    from iaaa.data.imageio import atomic_path

    meta = json.loads((out / "saaa.json").read_text())
    meta["source"] = input_record(args)
    with atomic_path(out / "saaa.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))


def run_sample(args: argparse.Namespace) -> int:
    from iaaa.errors import IaaaError
    from iaaa.export import export_synthetic
    from iaaa.saaa import SAAA

    if args.n < 1:
        raise IaaaError(f"--n must be >= 1, got {args.n}")
    with torch_threads_of(args):
        model = SAAA.load(args.model, device=args.device)
        step = 2 ** max(model.generator.config.depth, len(model.diffusion.config.block_out_channels) - 1)
        if args.size is not None:
            if args.size < step or args.size % step:
                raise IaaaError(f"--size must be a positive multiple of {step} for this model, got {args.size}")
            model.config.sample_size = args.size
        if args.ddim_steps is not None:
            if args.ddim_steps < 1:
                raise IaaaError(f"--ddim-steps must be >= 1, got {args.ddim_steps}")
            model.diffusion.config.sample_steps = args.ddim_steps
        manifest = {"source": {"saaa_model": str(Path(args.model).resolve())}, "saaa": model.config.to_dict()}
        result = export_synthetic(model, args.n, args.out, seed=args.seed, manifest=manifest, progress=not args.no_progress)
    print(f"wrote {result['written']} images ({result['skipped']} already done) to {args.out}: images/, masks/, annotations.json, manifest.json")
    return 0
