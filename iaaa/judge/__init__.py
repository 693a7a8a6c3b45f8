"""The downstream judge: does synthetic data help a segmentation model trained on it?

Trains a small 3-class U-Net from scratch on real images only and on real + synthetic images,
with paired seeds, and scores held-out real images with the Data Science Bowl metrics.

    from iaaa.judge import judge, naive_source, compositor_source
    report = judge(train, test, {"naive": naive_source(), "iaaa": compositor_source()})
    print(report.table())
"""

from iaaa.judge.judge import METRICS, REAL, JudgeReport, auto_min_area, compositor_source, decoding_ceiling, judge, naive_source, named_sources
from iaaa.judge.naive import NaivePaste
from iaaa.judge.scoring import THRESHOLDS, ImageScore, iou_matrix, score_image, score_images
from iaaa.judge.targets import class_targets, instances_from_classes
from iaaa.judge.train import Prepared, normalize_image, predict_classes, predict_instances, prepare, train_segmenter
from iaaa.judge.unet import UNet

__all__ = [
    "judge", "JudgeReport", "auto_min_area", "decoding_ceiling", "naive_source", "compositor_source", "named_sources", "REAL", "METRICS", "NaivePaste",
    "THRESHOLDS", "ImageScore", "iou_matrix", "score_image", "score_images",
    "class_targets", "instances_from_classes",
    "Prepared", "normalize_image", "prepare", "train_segmenter", "predict_classes", "predict_instances", "UNet",
]
