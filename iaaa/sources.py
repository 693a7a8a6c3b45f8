"""Mixing synthesis sources: one object with ``sample(generator)`` that draws each sample from
one of several sources (e.g. an IAAA ``CellCompositor`` and a ``SAAA`` model) with fixed weights."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage

__all__ = ["SourceMix"]


class SourceMix:
    """Each :meth:`sample` picks source ``k`` with probability ``weights[k] / sum(weights)``
    using the given generator, then asks that source for the sample with the same generator,
    so ``SynthesisDataset(SourceMix(...), n, seed)[i]`` is as reproducible as with one source.
    The chosen source's index is recorded in ``sample.meta["source_index"]``."""

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

    def sample(self, generator: torch.Generator | None = None) -> AnnotatedImage:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        k = int(torch.multinomial(self.weights, 1, generator=g))
        out = self.sources[k].sample(generator=g)
        out.meta = {**out.meta, "source_index": k}
        return out

    def __repr__(self) -> str:
        parts = ", ".join(f"{type(s).__name__}: {float(w):.2f}" for s, w in zip(self.sources, self.weights))
        return f"SourceMix({parts})"
