"""Does this synthetic data help my model? The judge's public entry point.

:func:`judge` trains the same small U-Net from scratch for every arm (``real``, ``aug``,
``naive``, each synthetic source, ``+aug`` variants; :mod:`iaaa.judge.protocols`), for every
fold of the data regime (:mod:`iaaa.judge.regimes`) and seed, and scores the held-out real test
images with the Data Science Bowl metrics. For one (fold, seed) every arm starts from the same
weights and sees the same real crops at every step, so differences to real only are paired per
(fold, seed); :class:`~iaaa.judge.report.JudgeReport` gives them with 95 % t intervals.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import torch

from iaaa.errors import IaaaError
from iaaa.judge.augment import AugmentConfig
from iaaa.judge.protocols import AUG, IAAA_ONLINE, NAIVE, REAL, Arm, StepComposer, is_online, offline_source, parse_arm
from iaaa.judge.recipe import Recipe
from iaaa.judge.regimes import fold_subsets
from iaaa.judge.report import METRICS, JudgeReport, run_key, run_platform
from iaaa.judge.scoring import score_images
from iaaa.judge.sources import compositor_name, compositor_source, fit_source, iter_pool
from iaaa.judge.targets import instances_from_classes
from iaaa.judge.train import predict_instances, train_segmenter
from iaaa.judge.train_data import Prepared, normalize_image, prepare
from iaaa.structures import AnnotatedImage, as_annotated

__all__ = [
    "judge", "check_data", "auto_min_area", "decoding_ceiling", "named_sources", "variant_arms", "DEFAULT_ARMS",
    "prepare_all", "native_images", "fold_pools", "fold_pasters", "prepared_pool",
]

DEFAULT_ARMS = (REAL, AUG, NAIVE, "iaaa", "iaaa+aug")


def named_sources(arms: Sequence[str], compositor_options: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The synthetic sources the ``arms`` need: ``"iaaa"`` (``CellCompositor`` defaults) when an
    arm uses it, and one ``"iaaa[k=v,...]"`` per dict of compositor options (``real``, ``aug``
    and ``naive`` need no source)."""
    sources: dict[str, Any] = {}
    if any(parse_arm(a).source == "iaaa" for a in arms):
        sources["iaaa"] = compositor_source()
    for options in compositor_options:
        sources[compositor_name(options)] = compositor_source(**options)
    return sources


def variant_arms(arms: Sequence[str], compositor_options: Sequence[Mapping[str, Any]]) -> list[str]:
    """The arms compositor variants add to ``arms``: each variant's plain arm ``"iaaa[k=v]"``,
    unless an arm already names it (``"iaaa[k=v]+aug"``) or pastes from it online
    (``"iaaa-online[k=v]"``)."""
    listed = {parse_arm(a).source for a in arms}
    listed |= {offline_source(s) for s in listed if is_online(s)}
    return [compositor_name(o) for o in compositor_options if compositor_name(o) not in listed]


def auto_min_area(samples: Sequence[Any]) -> int:
    """A quarter of the 1st percentile of the instance areas (native pixels) of ``samples``, at
    least 1: the ``min_area`` of ``Recipe(min_area="auto")``."""
    from iaaa.structures import instance_areas

    areas = torch.cat([instance_areas(as_annotated(s).labels)[1] for s in samples]).double()
    if areas.numel() == 0:
        return 1
    return max(1, int(0.25 * float(torch.quantile(areas, 0.01))))


def decoding_ceiling(test: Sequence[Prepared], min_area: int) -> dict[str, float]:
    """Scores of a perfect network: the test images' own 3-class targets at the working scale put
    through the same decoding (resize to native, argmax, seeded growth, ``min_area``). What the
    judge's resolution and decoding lose, whatever the training data."""
    from torch.nn import functional as F

    preds = []
    for p in test:
        onehot = F.one_hot(p.classes, 3).permute(2, 0, 1)[None].float()
        sh, sw = p.size
        top, left = (onehot.shape[-2] - sh) // 2, (onehot.shape[-1] - sw) // 2
        onehot = onehot[..., top : top + sh, left : left + sw]
        if (sh, sw) != tuple(p.native.shape):
            onehot = F.interpolate(onehot, size=tuple(p.native.shape), mode="bilinear", align_corners=False)
        preds.append(instances_from_classes(onehot[0].argmax(0), min_area=min_area))
    return score_images([p.native for p in test], preds)


def check_data(train: Sequence[AnnotatedImage], test: Sequence[AnnotatedImage]) -> list[str]:
    """Refuse data no judgement can use; return warnings for data that makes one meaningless.

    Refused: no training or test image, mixed channel counts, a test set without a cell, a test
    image that is also a training image (the test folder given as the training folder)."""
    if not train or not test:
        raise IaaaError(f"judge: need training and test images, got {len(train)} and {len(test)}")
    channels = train[0].image.shape[0]
    for s in [*train, *test]:
        if s.image.shape[0] != channels:
            raise IaaaError(f"judge: {s.name}: {s.image.shape[0]} channels, the first training image has {channels}")
    if not any(s.num_instances for s in test):
        raise IaaaError("judge: the test images hold no cell; every score would be 1 for predicting nothing")
    if not any(s.num_instances for s in train):
        raise IaaaError("judge: the training images hold no cell")
    by_shape: dict[tuple[int, ...], list[AnnotatedImage]] = {}
    for s in train:
        by_shape.setdefault(tuple(s.image.shape), []).append(s)
    for s in test:
        for t in by_shape.get(tuple(s.image.shape), []):
            if torch.equal(s.labels, t.labels) and torch.equal(s.image, t.image):
                raise IaaaError(f"judge: test image {s.name!r} is also a training image ({t.name!r}); the test images must be held out")
    warnings = [f"test image {s.name!r} holds no cell" for s in test if not s.num_instances]
    return warnings


def prepare_all(samples: Sequence[Any], recipe: Recipe, crop: int) -> list[Prepared]:
    """Every sample prepared at the recipe's working scale and boundary, padded to ``crop``
    (0 for test images, which are scored whole)."""
    return [prepare(s, recipe.scale, crop, recipe.boundary) for s in samples]


def _score(model: Any, test: Sequence[Prepared], recipe: Recipe, min_area: int) -> dict[str, Any]:
    preds = [predict_instances(model, p, recipe.device, min_area) for p in test]
    return score_images([p.native for p in test], preds)


def _run(arm: Arm, real: list[Prepared], pool: list[Prepared] | None, test: list[Prepared], recipe: Recipe, seed: int,
         min_area: int, say: Callable[[str], None], paster: Any = None, native: Sequence[AnnotatedImage] | None = None) -> dict[str, Any]:
    """Train one (arm, fold, seed) run and score it, with its learning curve (the curve's last
    point, at the last step, is the run's score: the model is scored once there)."""
    curve: list[dict[str, Any]] = []
    last: dict[str, Any] = {}

    def at_curve(step: int, model: Any) -> None:
        t = time.perf_counter()
        last.clear()
        last.update(_score(model, test, recipe, min_area), eval_s=time.perf_counter() - t)
        curve.append({"step": step, **{m: last[m] for m in METRICS}})

    composer = StepComposer(real, recipe, seed, arm, pool, augment=AugmentConfig(scale=recipe.aug_scale).with_photometric_strength(recipe.aug_photometric),
                            paster=paster, native=native)
    t0 = time.perf_counter()
    train_segmenter(composer, recipe, at_curve=at_curve, log=say)
    scores = dict(last)
    scores.update(curve=curve, train_s=time.perf_counter() - t0, pool=len(pool or []), curve_points=len(curve))  # train_s includes the curve's scoring
    return scores


def _check_arms(arms: Sequence[str], sources: Mapping[str, Any]) -> list[Arm]:
    parsed = [parse_arm(a) for a in arms]
    if not parsed:
        raise IaaaError("judge: no arm to train")
    if len({a.name for a in parsed}) != len(parsed):
        raise IaaaError(f"judge: an arm is named twice in {list(arms)}")
    for a in parsed:
        if a.source not in (None, NAIVE) and not is_online(a.source) and a.source not in sources:
            raise IaaaError(f"judge: arm {a.name!r} needs a synthetic source named {a.source!r}; sources: {', '.join(sources) or 'none'}")
        if is_online(a.source) and a.source != IAAA_ONLINE and (offline_source(a.source) not in sources or isinstance(sources[offline_source(a.source)], (list, tuple))):
            raise IaaaError(f"judge: arm {a.name!r} pastes from the compositor variant {offline_source(a.source)!r}; give that variant as a source (--compositor)")
    if REAL in sources or AUG in sources or NAIVE in sources:
        raise IaaaError(f"judge: {REAL!r}, {AUG!r} and {NAIVE!r} name built-in arms; give the synthetic source another name")
    return parsed


def fold_pools(arms: list[Arm], sources: Mapping[str, Any], train: list[AnnotatedImage], say: Callable[[str], None]) -> dict[str, tuple[Any, float]]:
    """The fitted sources one fold needs, with their fit time."""
    fitted: dict[str, tuple[Any, float]] = {}
    for name in dict.fromkeys(a.source for a in arms if a.source not in (None, NAIVE) and not is_online(a.source)):
        t0 = time.perf_counter()
        fitted[name] = (fit_source(name, sources[name], train), time.perf_counter() - t0)
        say(f"[{name}] fitted in {fitted[name][1]:.1f}s{_resolved(fitted[name][0])}")
    return fitted


def _resolved(fitted: Any) -> str:
    """What a compositor's data-chosen settings resolved to on this fold ("" for other sources)."""
    config = getattr(fitted, "config", None)
    out = ""
    if getattr(config, "match_intensity", None) == "auto":
        st = fitted.stats
        why = f"contrast spread {st.contrast_spread:.1f}x" if st.contrast_spread is not None else f"{st.contrasted_images} images with cell contrast"
        out += f"; match_intensity=auto -> {'on' if fitted.matches_intensity else 'off'} ({why})"
    if getattr(config, "object_scale", None) == "auto":
        st = fitted.stats
        scale = "off" if st.object_scale is None else "(%g, %g)" % st.object_scale
        why = "one image with cells" if st.diameter_spread is None else f"cell diameters spread {st.diameter_spread:.2f}x"
        out += f"; object_scale=auto -> {scale} ({why})"
    return out


def native_images(samples: Sequence[AnnotatedImage]) -> list[AnnotatedImage]:
    """The training images at their own resolution, normalised as :func:`prepare` normalises
    them, with int64 labels: what online arms paste into under ``Recipe.pastes_native``."""
    return [AnnotatedImage(normalize_image(s.image), s.labels.to(torch.int64), name=s.name) for s in samples]


def fold_pasters(arms: list[Arm], sources: Mapping[str, Any], real_prep: list[Prepared], say: Callable[[str], None],
                 native: Sequence[AnnotatedImage] | None = None) -> dict[str, Any]:
    """Each online arm's PasteCells (by source): the compositor (defaults for ``iaaa-online``, the
    source ``iaaa[k=v]`` for ``iaaa-online[k=v]``) fitted on the images it pastes into: the fold's
    prepared training images (normalised, at the working scale, without their padding to the
    crop: its mirrored cells are no data), or ``native``
    (:func:`native_images`) when given. ``p=1``: the step composer draws which crops it pastes
    into."""
    from iaaa.synthesis.paste import PasteCells

    pasters: dict[str, Any] = {}
    samples = list(native) if native is not None else [AnnotatedImage(*p.unpadded(), name=p.name) for p in real_prep]
    for name in dict.fromkeys(a.source for a in arms if is_online(a.source)):
        t0 = time.perf_counter()
        factory = compositor_source() if name == IAAA_ONLINE else sources[offline_source(name)]
        comp = fit_source(offline_source(name), factory, samples)
        say(f"[{name}] fitted in {time.perf_counter() - t0:.1f}s{_resolved(comp)}")
        pasters[name] = PasteCells(comp, p=1.0)
    return pasters


def prepared_pool(name: str, fitted: Any, seed: int, recipe: Recipe, channels: int) -> list[Prepared]:
    """The fitted source's ``recipe.pool_size`` synthetic images for ``seed``, prepared for
    training (no native label map: pool images are never scored)."""
    # One sample at a time: only the prepared crops of the pool are kept.
    pool = []
    for i, sample in enumerate(iter_pool(fitted, seed, recipe.pool_size)):
        s = as_annotated(sample, f"{name} {i}")
        if s.image.shape[0] != channels:
            raise IaaaError(f"judge: synthetic source {name!r}: image {s.name!r} has another channel count than the real images ({channels})")
        pool.append(prepare(s, recipe.scale, recipe.crop, recipe.boundary, native=False))
    if not pool:
        raise IaaaError(f"judge: synthetic source {name!r} gave no images")
    return pool


def judge(
    train_samples: Sequence[Any],
    test_samples: Sequence[Any],
    sources: Mapping[str, Any] | None = None,
    recipe: Recipe | None = None,
    arms: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> JudgeReport:
    """Train every arm on every fold and seed; score the held-out real test images.

    Args:
        train_samples, test_samples: annotated real images (``AnnotatedImage`` or ``(image,
            labels)``); the test images are never trained on.
        sources: ``name -> source`` (:mod:`iaaa.judge.sources`) that arms refer to.
        recipe: the training recipe (:class:`~iaaa.judge.recipe.Recipe`; default ``Recipe()``).
        arms: arm names (:mod:`iaaa.judge.protocols`, e.g. ``"iaaa+aug"``); default ``real``,
            ``aug``, ``naive`` and one arm per source.
        log: called with progress lines (e.g. ``print``).
    """
    recipe = recipe or Recipe()
    sources = dict(sources or {})
    say = log or (lambda _msg: None)
    train = [as_annotated(s, f"train {i}") for i, s in enumerate(train_samples)]
    test = [as_annotated(s, f"test {i}") for i, s in enumerate(test_samples)]
    warnings = check_data(train, test)
    channels = int(train[0].image.shape[0])
    arm_list = _check_arms(list(arms) if arms is not None else [REAL, AUG, NAIVE, *sources], sources)
    folds = fold_subsets(len(train), recipe.train_limit, recipe.folds)
    min_area = auto_min_area(train) if recipe.min_area == "auto" else int(recipe.min_area)
    test_prep = prepare_all(test, recipe, 0)
    ceiling = {k: decoding_ceiling(test_prep, min_area)[k] for k in METRICS}
    say(f"ceiling (perfect 3-class prediction through the same decoding): mean AP {ceiling['mean_ap']:.3f}")
    settings = {
        "recipe": recipe.to_dict(), "arms": [a.name for a in arm_list], "min_area": min_area, "channels": channels,
        "n_train": len(train), "n_test": len(test), "test": [s.name for s in test],
        "folds": [[train[i].name for i in f] for f in folds], "ceiling": ceiling, "warnings": warnings,
        "platform": run_platform(recipe.device),
    }
    results: dict[str, dict[str, dict[str, Any]]] = {a.name: {} for a in arm_list}
    for k, subset in enumerate(folds):
        if recipe.only_folds is not None and k not in recipe.only_folds:
            continue
        fold_train = [train[i] for i in subset]
        real_prep = prepare_all(fold_train, recipe, recipe.crop)
        fitted = fold_pools(arm_list, sources, fold_train, say)
        native = native_images(fold_train) if recipe.pastes_native and any(is_online(a.source) for a in arm_list) else None
        pasters = fold_pasters(arm_list, sources, real_prep, say, native)
        for seed in recipe.seeds:
            # A source's pool is prepared just before its first arm and released after its last:
            # pools are deterministic per seed, so when they are made changes nothing, and a run
            # with several sources holds one pool at a time when its arms come grouped by source.
            pools: dict[str, list[Prepared]] = {}
            last_use = {a.source: i for i, a in enumerate(arm_list) if a.source in fitted}
            for i, arm in enumerate(arm_list):
                tag = f"[{arm.name} fold {k} seed {seed}]"
                src = arm.source or ""
                if src in fitted and src not in pools:
                    pools[src] = prepared_pool(src, fitted[src][0], seed, recipe, channels)
                r = _run(arm, real_prep, pools.get(src), test_prep, recipe, seed, min_area, lambda m, t=tag: say(f"{t} {m}"), pasters.get(src),
                         native if is_online(arm.source) else None)
                if last_use.get(src) == i:
                    del pools[src]
                if arm.source in fitted:
                    r["fit_s"] = fitted[arm.source][1]
                results[arm.name][run_key(k, seed)] = r
                say(f"{tag} mean AP {r['mean_ap']:.4f}  AP@0.5 {r['ap50']:.4f}  F1@0.5 {r['f1_50']:.4f}  ({r['train_s']:.0f}s train)")
    return JudgeReport(results, settings)
