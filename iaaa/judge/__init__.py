"""The downstream judge: does synthetic data help a segmentation model trained on it?

Trains a small 3-class U-Net from scratch on real images only, with standard augmentation,
with online Simple Copy-Paste, and with each synthetic source (added to the real crops,
mixed in, or pasted online), over folds of a data regime and paired seeds, and scores held-out
real images with the Data Science Bowl metrics.

    from iaaa.judge import Recipe, judge, named_sources
    report = judge(train, test, named_sources(["iaaa"]), Recipe(train_limit=2, folds=4),
                   arms=["real", "aug", "naive", "iaaa", "iaaa+aug"])
    print(report.table())
"""

from iaaa.judge.augment import AugmentConfig, draw_augment, photometric, warp_crops
from iaaa.judge.judge import DEFAULT_ARMS, auto_min_area, check_data, decoding_ceiling, fold_pasters, fold_pools, judge, named_sources, native_images, prepare_all, prepared_pool, variant_arms
from iaaa.judge.naive import copy_paste
from iaaa.judge.protocols import AUG, NAIVE, REAL, Arm, Step, StepComposer, parse_arm, split_arms
from iaaa.judge.paste_window import paste_window, paste_window_native
from iaaa.judge.recipe import PASTE_SCALES, PROTOCOLS, Recipe, RecipeError, check_device
from iaaa.judge.regimes import fold_subsets, paired_interval
from iaaa.judge.report import METRICS, JudgeReport, run_key
from iaaa.judge.scoring import THRESHOLDS, ImageScore, iou_matrix, score_image, score_images
from iaaa.judge.sources import compositor_source, draw_pool, fit_source, iter_pool, make_compositor
from iaaa.judge.targets import class_targets, instances_from_classes
from iaaa.judge.train import predict_classes, predict_instances, train_segmenter
from iaaa.judge.train_data import Prepared, normalize_image, prepare, to_working
from iaaa.judge.unet import UNet

__all__ = [
    "judge", "check_data", "JudgeReport", "Recipe", "RecipeError", "PROTOCOLS", "PASTE_SCALES", "check_device", "DEFAULT_ARMS",
    "auto_min_area", "decoding_ceiling", "named_sources", "variant_arms", "prepare_all", "native_images", "fold_pools", "fold_pasters", "prepared_pool", "compositor_source", "make_compositor", "fit_source", "draw_pool", "iter_pool",
    "REAL", "AUG", "NAIVE", "METRICS", "run_key", "Arm", "parse_arm", "split_arms", "Step", "StepComposer",
    "AugmentConfig", "draw_augment", "warp_crops", "photometric", "copy_paste", "paste_window", "paste_window_native", "fold_subsets", "paired_interval",
    "THRESHOLDS", "ImageScore", "iou_matrix", "score_image", "score_images",
    "class_targets", "instances_from_classes",
    "Prepared", "normalize_image", "prepare", "to_working", "train_segmenter", "predict_classes", "predict_instances", "UNet",
]
