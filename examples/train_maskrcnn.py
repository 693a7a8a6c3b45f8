"""Train torchvision Mask R-CNN on real + IAAA-synthetic images and evaluate with COCOeval.

    # your data (label-map folders), 1:1 real:synthetic, evaluated on a held-out split
    python examples/train_maskrcnn.py --images data/images --masks data/masks --epochs 20

    # the CPU smoke run (a few iterations on tiny simulated images; what the test executes)
    python examples/train_maskrcnn.py --smoke

No weights are downloaded: the model starts from random weights unless you pass
``--weights FILE`` (a local ``maskrcnn_resnet50_fpn`` state dict).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from iaaa.synthesis import CellCompositor
from iaaa.data import read_label_folder, write_coco
from iaaa.data.dataset import MixedDataset, RealDataset, SynthesisDataset, collate_fn
from iaaa.datasets import simulate_cells


def build_model(num_classes: int, size: int, weights: str | None):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes, min_size=size, max_size=size, image_mean=[0.5] * 3, image_std=[0.25] * 3)
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Mask R-CNN's backbone expects 3 channels; microscopy often has 1."""
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3]


@torch.no_grad()
def evaluate(model, samples, device) -> dict[str, float]:
    """COCO bbox and segm AP of ``model`` on annotated ``samples``."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        gt_path = write_coco(samples, Path(tmp) / "gt.json", Path(tmp) / "images")
        gt = COCO(str(gt_path))
        results = []
        ds = RealDataset(samples)
        for image_id, (image, _) in enumerate(ds, start=1):
            out = model([to_rgb(image).to(device)])[0]
            masks = (out["masks"][:, 0] > 0.5).cpu().numpy().astype(np.uint8)
            for k in range(len(out["scores"])):
                rle = mask_utils.encode(np.asfortranarray(masks[k]))
                rle["counts"] = rle["counts"].decode("ascii")
                x0, y0, x1, y1 = out["boxes"][k].tolist()
                common = {"image_id": image_id, "category_id": int(out["labels"][k]), "score": float(out["scores"][k])}
                results.append({**common, "bbox": [x0, y0, x1 - x0, y1 - y0], "segmentation": rle})
        scores = {}
        for iou_type in ("bbox", "segm"):
            if not results:
                scores[iou_type] = 0.0
                continue
            dt = gt.loadRes(results)
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            scores[iou_type] = float(max(ev.stats[0], 0.0))
    return scores


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", help="real image folder (default: simulated data)")
    p.add_argument("--masks", help="real label-map folder")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--synthetic-ratio", type=float, default=1.0, help="synthetic images per real image (paper: about 1)")
    p.add_argument("--val-fraction", type=float, default=0.25)
    p.add_argument("--size", type=int, default=512, help="Mask R-CNN min_size/max_size")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--max-iters", type=int, default=0, help="stop after this many iterations (0: no limit)")
    p.add_argument("--weights", help="local Mask R-CNN state dict to start from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the AP scores as JSON here")
    p.add_argument("--smoke", action="store_true", help="a few CPU iterations on tiny simulated images")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.epochs, args.max_iters, args.batch_size, args.workers, args.lr = 96, 1, 2, 2, 1, 0.001

    torch.manual_seed(args.seed)  # model initialisation only; data randomness is seeded explicitly
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.images:
        samples = read_label_folder(args.images, args.masks)
    else:
        samples = simulate_cells(6 if args.smoke else 40, seed=args.seed, size=(args.size, args.size))
    n_val = max(1, int(round(len(samples) * args.val_fraction)))
    train, val = samples[n_val:], samples[:n_val]

    compositor = CellCompositor().fit(train)
    synthetic = SynthesisDataset(compositor, length=max(1, int(round(args.synthetic_ratio * len(train)))), seed=args.seed)
    dataset = MixedDataset(RealDataset(train), synthetic, ratio=args.synthetic_ratio, seed=args.seed)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, collate_fn=collate_fn, generator=torch.Generator().manual_seed(args.seed))

    num_classes = 1 + max(max(s.categories) for s in samples)
    model = build_model(num_classes, args.size, args.weights).to(device)
    opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=args.lr, momentum=0.9, weight_decay=1e-4)
    it = 0
    for epoch in range(args.epochs):
        synthetic.set_epoch(epoch)  # new synthetic images each epoch
        dataset.set_epoch(epoch)  # and a new real/synthetic layout
        model.train()
        for images, targets in loader:
            images = [to_rgb(im).to(device) for im in images]
            targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device), "masks": t["masks"].to(device)} for t in targets]
            losses = model(images, targets)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            it += 1
            print(f"epoch {epoch} iter {it} loss {loss.item():.3f}")
            if args.max_iters and it >= args.max_iters:
                break
        if args.max_iters and it >= args.max_iters:
            break
    scores = evaluate(model, val, device)
    print(f"bbox AP {scores['bbox']:.4f}  segm AP {scores['segm']:.4f}")
    result = {"iterations": it, "train_real": len(train), "train_synthetic": len(dataset) - len(train), **{f"{k}_AP": v for k, v in scores.items()}}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
