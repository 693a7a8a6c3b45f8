"""Mixing synthesis sources: one object with ``sample(generator)`` that draws each sample from
one of several sources (e.g. an IAAA ``CellCompositor`` and a ``SAAA`` model) with fixed weights.

The sources must agree on what a sample is: channel count, dtype and image size. A mix of a
3-channel 128 px source and a 1-channel 32 px one would write both kinds into one dataset, so
:class:`SourceMix` refuses it when built (each source's ``output_spec()`` when it has one, else
one probe sample drawn with a private generator) and checks every sample it returns against the
agreed spec, which also catches sources whose size varies from sample to sample."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from iaaa.errors import IaaaError
from iaaa.sampler import OwnGenerator
from iaaa.structures import AnnotatedImage

__all__ = ["SourceMix", "source_spec"]


class SourceMix:
    """Each :meth:`sample` picks source ``k`` with probability ``weights[k] / sum(weights)``
    using the given generator, then asks that source for the sample with the same generator,
    so ``SynthesisDataset(SourceMix(...), n, seed)[i]`` is as reproducible as with one source.
    The chosen source's index is recorded in ``sample.meta["source_index"]``. Without a
    generator each call draws afresh from the mix's own (:class:`~iaaa.sampler.OwnGenerator`)."""

    def __init__(self, sources: Sequence[Any], weights: Sequence[float] | None = None) -> None:
        self.sources = list(sources)
        if not self.sources:
            raise IaaaError("SourceMix: no sources given")
        for k, s in enumerate(self.sources):
            if not callable(getattr(s, "sample", None)):
                raise IaaaError(f"SourceMix: source {k} ({type(s).__name__}) has no sample(generator=...) method")
        w = [1.0] * len(self.sources) if weights is None else [float(v) for v in weights]
        if len(w) != len(self.sources) or not all(math.isfinite(v) and v >= 0 for v in w) or sum(w) <= 0:
            raise IaaaError(f"SourceMix: weights must be {len(self.sources)} non-negative numbers with a positive sum, got {list(w)}")
        self.weights = torch.tensor(w, dtype=torch.float64) / sum(w)
        self.spec = _agreed_spec(self.sources) if len(self.sources) > 1 else None
        # sample() without a generator: fresh draws call by call (and per DataLoader worker).
        self._own = OwnGenerator(0)

    def sample(self, generator: torch.Generator | None = None) -> AnnotatedImage:
        g = generator if generator is not None else self._own.get()
        k = int(torch.multinomial(self.weights, 1, generator=g))
        out = self.sources[k].sample(generator=g)
        if self.spec is not None and _spec_of(out) != self.spec:
            raise IaaaError(f"SourceMix: source {k} ({type(self.sources[k]).__name__}) gave a {_show(_spec_of(out))} sample, the mix agreed on {_show(self.spec)}; give every source one output size; pass CompositorConfig(size=...)")
        out.meta = {**out.meta, "source_index": k}
        return out

    def __repr__(self) -> str:
        parts = ", ".join(f"{type(s).__name__}: {float(w):.2f}" for s, w in zip(self.sources, self.weights))
        return f"SourceMix({parts})"


Spec = tuple[int, torch.dtype, tuple[int, int]]


def _spec_of(sample: AnnotatedImage) -> Spec:
    return int(sample.image.shape[0]), sample.image.dtype, (int(sample.image.shape[-2]), int(sample.image.shape[-1]))


def _show(spec: Spec) -> str:
    c, dtype, (h, w) = spec
    return f"{c}-channel {str(dtype).removeprefix('torch.')} {h}x{w}"


def source_spec(source: Any) -> Spec:
    """``(channels, dtype, (H, W))`` of ``source``'s samples: its ``output_spec()`` when it has
    one (no sampling), else those of one sample drawn with a fixed private generator."""
    spec = getattr(source, "output_spec", None)
    if callable(spec):
        c, dtype, (h, w) = spec()
        return int(c), dtype, (int(h), int(w))
    return _spec_of(source.sample(generator=torch.Generator().manual_seed(0)))


def _agreed_spec(sources: Sequence[Any]) -> Spec:
    specs = [source_spec(s) for s in sources]
    for k, spec in enumerate(specs[1:], 1):
        if spec != specs[0]:
            what = [name for name, a, b in zip(("channels", "dtype", "size"), specs[0], spec) if a != b]
            raise IaaaError(
                f"SourceMix: source 0 ({type(sources[0]).__name__}) makes {_show(specs[0])} images but source {k} "
                f"({type(sources[k]).__name__}) makes {_show(spec)}; their {' and '.join(what)} must agree to share one dataset" + ("; pass CompositorConfig(size=...) to match the size" if what == ["size"] else "")
            )
    return specs[0]
