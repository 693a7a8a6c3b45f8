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
    f.add_argument("--size", type=int, default=64, help="crop and sample size in px, a multiple of 2**max(--pix2pix-depth, levels - 1) (default: %(default)s)")
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
    f.add_argument("--overwrite", action="store_true", help="replace the finished model OUT holds when it was trained on other data or options")
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


# Config fields as the flags that set them, so a refusal names what the user typed.
_FLAGS = (
    ("diffusion.block_out_channels", "--diffusion-channels"), ("diffusion.sample_steps", "--sample-steps"),
    ("diffusion.min_area", "--min-area"), ("diffusion.prediction_type", "--prediction-type"),
    ("pix2pix.base", "--pix2pix-base"), ("pix2pix.depth", "--pix2pix-depth"), ("crops_per_image", "--crops-per-image"),
    ("diffusion_batch", "--batch-size DIFF"), ("pix2pix_batch", "--batch-size P2P"), ("diffusion_steps", "--diffusion-steps"),
    ("pix2pix_steps", "--pix2pix-steps"), ("perceptual", "--perceptual"), ("seed", "--seed"), ("size", "--size"),
)


def _as_flags(exc: Exception) -> "IaaaError":
    """A config refusal (``field: rule, got v``) worded with the flag that set the field."""
    from iaaa.errors import IaaaError

    msg = str(exc)
    for field, flag in _FLAGS:
        if msg.startswith(field + ":") or msg.startswith(field + " "):
            msg = flag + msg[len(field):]
            break
    for field, flag in (("lower crops_per_image or size", "lower --crops-per-image or --size"), ("raise crops_per_image or size", "raise --crops-per-image or --size")):
        msg = msg.replace(field, flag)
    return IaaaError(msg)


def _input_paths(args: argparse.Namespace) -> list[str]:
    return [v for k in ("images", "masks", "coco", "dsb") if (v := getattr(args, k, None))]


def run_fit(args: argparse.Namespace) -> int:
    from iaaa.device import resolve_device
    from iaaa.errors import IaaaError
    from iaaa.saaa import SAAA, SAAAConfig
    from iaaa.saaa.folder import CHECKPOINTS, MODEL_FILE, check_model_folder

    if args.steps is not None and args.diffusion_steps is not None and args.pix2pix_steps is not None:
        raise IaaaError("--steps: both --diffusion-steps and --pix2pix-steps are given, so it would set nothing; drop one of the three")
    d_steps = args.diffusion_steps if args.diffusion_steps is not None else args.steps if args.steps is not None else SAAAConfig.diffusion_steps
    p_steps = args.pix2pix_steps if args.pix2pix_steps is not None else args.steps if args.steps is not None else SAAAConfig.pix2pix_steps
    if min(d_steps, p_steps) < 1:
        raise IaaaError(f"--steps, --diffusion-steps and --pix2pix-steps must be >= 1, got {d_steps} and {p_steps}")
    # Everything is checked before anything is read, written or trained.
    device = resolve_device(args.device, "--device")
    try:
        model = SAAA(
            size=args.size, crops_per_image=args.crops_per_image, diffusion_steps=d_steps, pix2pix_steps=p_steps,
            diffusion_batch=args.batch_size[0], pix2pix_batch=args.batch_size[1], perceptual=args.perceptual, seed=args.seed,
            diffusion={"block_out_channels": list(args.diffusion_channels), "sample_steps": args.sample_steps, "min_area": args.min_area, "prediction_type": args.prediction_type},
            pix2pix={"base": args.pix2pix_base, "depth": args.pix2pix_depth}, device=device,
        )
    except IaaaError as exc:
        raise _as_flags(exc) from None
    out = Path(args.out)
    check_model_folder(out, inputs=_input_paths(args))
    with torch_threads_of(args):
        samples = load_inputs(args)
        try:
            described = model.describe_data(samples)
        except IaaaError as exc:
            raise _as_flags(exc) from None
        fingerprint = model.fingerprint_for(described)
        finished = check_model_folder(out, fingerprint=fingerprint, overwrite=args.overwrite)
        if finished is not None and finished.get("fingerprint") == fingerprint:
            print(f"saaa fit: {out} already holds this model (same data and options); nothing to do")
            return 0
        if args.overwrite:
            _discard_model(out, MODEL_FILE, CHECKPOINTS)
        model.fit(samples, checkpoint_dir=out / CHECKPOINTS, progress=not args.quiet)
        model.save(out)
        _record_source(out, args)
    rd, rp = model.reports["diffusion"], model.reports["pix2pix"]
    print(
        f"saaa fit: {len(samples)} images, {model.data['n_crops']} crops of {args.size} px; diffusion {rd.steps} steps "
        f"(mse {rd.losses['mse'][-1]:.4g}), pix2pix {rp.steps} steps (l1 {rp.losses['l1'][-1]:.4g}); wrote {out}"
    )
    return 0


def _discard_model(out: Path, model_file: str, checkpoints: str) -> None:
    """--overwrite: drop the model this folder holds (its saaa.json first, so an interrupted
    retraining resumes as an unfinished model) and the checkpoints of other runs. Only the files
    a model folder is made of are removed."""
    (out / model_file).unlink(missing_ok=True)
    for name in ("diffusion.ckpt", "pix2pix.ckpt"):
        (out / checkpoints / name).unlink(missing_ok=True)


def _record_source(out: Path, args: argparse.Namespace) -> None:
    import json

    from iaaa.data.imageio import atomic_path
    from iaaa.export import input_fingerprint

    meta = json.loads((out / "saaa.json").read_text())
    meta["source"] = {**input_record(args), "inputs_sha256": input_fingerprint(_input_paths(args))}
    with atomic_path(out / "saaa.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))


def run_sample(args: argparse.Namespace) -> int:
    from iaaa.device import resolve_device
    from iaaa.errors import IaaaError
    from iaaa.export import check_export_folder, export_synthetic, input_fingerprint
    from iaaa.saaa import SAAA
    from iaaa.saaa.fields import MAX_SAMPLE_SIZE, integer

    if args.n < 1:
        raise IaaaError(f"--n must be >= 1, got {args.n}")
    device = resolve_device(args.device, "--device")
    check_export_folder(args.out, [args.model])
    with torch_threads_of(args):
        model = SAAA.load(args.model, device=device)
        step = model.config.size_step()
        if args.size is not None:
            integer(args.size, "--size", 8, MAX_SAMPLE_SIZE)
            if args.size % step:
                raise IaaaError(f"--size: must be a multiple of {step} for this model ({model.config.size_rule()}), got {args.size}")
            model.config.sample_size = args.size
        if args.ddim_steps is not None:
            model.diffusion.config.sample_steps = integer(args.ddim_steps, "--ddim-steps", 1, model.diffusion.config.num_train_timesteps)
        root = Path(args.model)
        # What decides the images: the model's files and the sampling options. A resume with
        # another --ddim-steps or --size, or after the model was retrained, is refused.
        manifest = {
            "source": {"saaa_model": str(root.resolve()), "model_sha256": input_fingerprint([root / f for f in ("saaa.json", "mask_diffusion.pt", "pix2pix.pt")])},
            "saaa": model.config.to_dict(),
            "sampling": {"size": model.config.sample_size or model.config.size, "ddim_steps": model.diffusion.config.sample_steps},
        }
        result = export_synthetic(model, args.n, args.out, seed=args.seed, manifest=manifest, progress=not args.no_progress)
    print(f"wrote {result['written']} images ({result['skipped']} already done) to {args.out}: images/, masks/, annotations.json, manifest.json")
    return 0
