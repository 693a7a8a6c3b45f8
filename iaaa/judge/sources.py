"""Synthetic sources of the judge, and the one place the sampler contract is checked.

A source (value of ``judge(..., sources={name: source})``) is

* a list of annotated images, used as they are (e.g. an ``iaaa synth`` export folder);
* a sampler: an object with ``sample(generator) -> AnnotatedImage`` (a fitted ``CellCompositor``);
* a factory ``train_samples -> sampler``, fitted once per fold on that fold's training images
  (:func:`compositor_source`).

A sampler makes a fixed pool of ``recipe.pool_size`` images per (fold, seed), image ``i`` of seed
``s`` from ``iaaa.data.dataset.sample_generator(s, i)``, generated before training: a fixed pool is
what a user who exports ``iaaa synth`` output trains on, and it keeps synthesis cost out of the
training loop. ``naive`` is not a source: it pastes between real crops online
(:mod:`iaaa.judge.naive`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

from iaaa.errors import IaaaError
from iaaa.sampler import is_sampler

__all__ = ["make_compositor", "compositor_source", "fit_source", "draw_pool", "iter_pool", "compositor_name"]


def make_compositor(options: Mapping[str, Any]) -> Any:
    """``CellCompositor`` from ``--compositor KEY=VALUE`` options (flat or ``stage.field``
    names of :class:`~iaaa.synthesis.config.CompositorConfig`), unfitted: the one place the
    judge builds a compositor. A bad option is refused with one line naming its key."""
    from iaaa import CellCompositor, CompositorConfig

    return CellCompositor(CompositorConfig.from_options(dict(options), option="--compositor"))


def compositor_name(options: Mapping[str, Any]) -> str:
    """``"iaaa"`` for the defaults, ``"iaaa[k=v,...]"`` for a variant."""
    return "iaaa" if not options else "iaaa[" + ",".join(f"{k}={v!r}" for k, v in options.items()) + "]"


def compositor_source(**options: Any) -> Callable[[Sequence[Any]], Any]:
    """Factory of ``CellCompositor(**options).fit(train_samples)`` (built by :func:`make_compositor`)."""
    make_compositor(options)  # refuse bad options now, not after the real-only runs
    return lambda samples: make_compositor(options).fit(samples, progress=False)


def fit_source(name: str, source: Any, train: Sequence[Any]) -> Any:
    """The images or sampler of ``source`` for these training images (factories are called)."""
    if isinstance(source, (list, tuple)):
        if not source:
            raise IaaaError(f"judge: synthetic source {name!r} holds no images")
        return list(source)
    if is_sampler(source):
        return source
    if callable(source):
        try:
            fitted = source(list(train))
        except (ValueError, TypeError) as exc:
            raise IaaaError(f"judge: synthetic source {name!r} failed to fit: {exc}") from exc
        if not is_sampler(fitted):
            raise IaaaError(f"judge: synthetic source {name!r}: its factory returned {type(fitted).__name__}, not a sampler with sample(generator)")
        return fitted
    raise IaaaError(f"judge: synthetic source {name!r}: expected a list of images, a sampler with sample(generator) or a factory, got {type(source).__name__}")


def iter_pool(fitted: Any, seed: int, pool_size: int) -> Iterator[Any]:
    """The synthetic images of one seed (see module docs), one at a time: a caller that keeps
    only what it makes of each (the judge's prepared crops) never holds the whole pool of
    full-size samples (256 phase-contrast fields of 1024 px are about 2.5 GB)."""
    if isinstance(fitted, list):
        yield from fitted
        return
    from iaaa.data.dataset import sample_generator

    for i in range(pool_size):
        yield fitted.sample(sample_generator(seed, i))


def draw_pool(fitted: Any, seed: int, pool_size: int) -> list[Any]:
    """The synthetic images of one seed (see module docs), as a list."""
    return fitted if isinstance(fitted, list) else list(iter_pool(fitted, seed, pool_size))
