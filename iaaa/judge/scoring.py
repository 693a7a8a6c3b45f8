"""Instance segmentation scores of the 2018 Data Science Bowl (DSB).

For one image, a predicted instance matches a true one when their IoU exceeds a threshold
``t``; above 0.5 a true instance can overlap at most one prediction by more than half of
their union, so matches are unique without an assignment step. With TP matches, FP unmatched
predictions and FN unmatched true instances, the DSB score at ``t`` is ``TP / (TP + FP + FN)``
and the image's mean AP averages it over ``t = 0.50, 0.55, ..., 0.95``. A data set's score is
the mean over its images (as the DSB ranked entries). An image with no true and no predicted
instance scores 1; one side empty and not the other scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from iaaa.errors import IaaaError
from iaaa.structures import relabel_sequential

__all__ = ["THRESHOLDS", "iou_matrix", "ImageScore", "score_image", "score_images"]

THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def iou_matrix(true: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """IoU ``(T, P)`` float64 between every true and every predicted instance of two label maps
    of the same shape (instances in sorted id order; ids need not be consecutive).

    One bincount over ``(true, pred)`` label pairs gives every intersection at once."""
    if true.shape != pred.shape:
        raise IaaaError(f"true and pred label maps differ in shape: {tuple(true.shape)} vs {tuple(pred.shape)}")
    t, _ = relabel_sequential(true.cpu())
    p, _ = relabel_sequential(pred.cpu())
    n_t, n_p = int(t.max()) if t.numel() else 0, int(p.max()) if p.numel() else 0
    joint = torch.bincount((t * (n_p + 1) + p).reshape(-1), minlength=(n_t + 1) * (n_p + 1)).view(n_t + 1, n_p + 1).double()
    area_t, area_p = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    inter = joint[1:, 1:]
    union = area_t[1:] + area_p[:, 1:] - inter
    return inter / union.clamp_min(1)


@dataclass(frozen=True)
class ImageScore:
    """Scores of one image: ``mean_ap`` (DSB, IoU 0.50:0.05:0.95), ``ap50`` and ``f1_50`` (at IoU
    0.5), and the counts behind them at IoU 0.5."""

    mean_ap: float
    ap50: float
    f1_50: float
    n_true: int
    n_pred: int
    tp50: int


def score_image(true: torch.Tensor, pred: torch.Tensor, thresholds: Sequence[float] = THRESHOLDS) -> ImageScore:
    """DSB scores of a predicted label map against the true one (see module docs)."""
    iou = iou_matrix(true, pred)
    n_t, n_p = iou.shape
    if n_t == 0 and n_p == 0:
        return ImageScore(1.0, 1.0, 1.0, 0, 0, 0)
    th = torch.tensor(list(thresholds), dtype=torch.float64)
    # A true instance has at most one prediction with IoU > 0.5, so counting pairs counts matches.
    tp = (iou[None] > th.view(-1, 1, 1)).flatten(1).sum(1).double()
    precision = tp / (n_t + n_p - tp)
    tp50 = int((iou > 0.5).sum())
    ap50 = tp50 / (n_t + n_p - tp50)
    f1 = 2 * tp50 / (n_t + n_p)
    return ImageScore(float(precision.mean()), float(ap50), float(f1), n_t, n_p, tp50)


def score_images(trues: Sequence[torch.Tensor], preds: Sequence[torch.Tensor]) -> dict[str, Any]:
    """Mean over images of :func:`score_image`: ``{"mean_ap", "ap50", "f1_50"}`` plus the totals
    ``n_true``, ``n_pred`` and ``tp50``, and ``per_image``: those four per image, in order (the
    score is a mean over images, so where unmatched predictions fall matters as much as how
    many there are; a report keeps what a diagnosis needs)."""
    if len(trues) != len(preds):
        raise IaaaError(f"{len(trues)} true label maps for {len(preds)} predictions")
    if not trues:
        raise IaaaError("no images to score")
    scores = [score_image(t, p) for t, p in zip(trues, preds)]
    n = len(scores)
    return {
        "mean_ap": sum(s.mean_ap for s in scores) / n,
        "ap50": sum(s.ap50 for s in scores) / n,
        "f1_50": sum(s.f1_50 for s in scores) / n,
        "n_true": sum(s.n_true for s in scores),
        "n_pred": sum(s.n_pred for s in scores),
        "tp50": sum(s.tp50 for s in scores),
        "per_image": {k: [getattr(s, k) for s in scores] for k in ("mean_ap", "n_true", "n_pred", "tp50")},
    }
