"""The sampler contract: anything with ``sample(generator) -> AnnotatedImage``.

A fitted :class:`~iaaa.synthesis.compositor.CellCompositor`, a SAAA model and a
:class:`~iaaa.sources.SourceMix` are samplers; the datasets, the export and the judge accept any
of them. One check, one error, so every entry point refuses a non-sampler with the same line.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage

__all__ = ["Sampler", "is_sampler", "check_sampler"]


@runtime_checkable
class Sampler(Protocol):
    """Draws one annotated image; the draw is a function of ``generator`` alone, so sample ``i``
    of a dataset is reproducible from its seed."""

    def sample(self, generator: torch.Generator | None = None) -> AnnotatedImage:
        """One annotated image drawn with ``generator``."""
        ...


def is_sampler(obj: Any) -> bool:
    """Whether ``obj`` has a callable ``sample`` method (what :class:`Sampler` asks of it)."""
    return callable(getattr(obj, "sample", None))


def check_sampler(obj: Any, what: str = "sampler") -> Sampler:
    """Return ``obj`` if it is a :class:`Sampler`, else raise :class:`~iaaa.errors.IaaaError`
    naming ``what`` (the argument or option at fault) and the type given."""
    if not is_sampler(obj):
        raise IaaaError(
            f"{what}: expected a sampler (an object with a sample(generator) method returning an AnnotatedImage, "
            f"e.g. a fitted CellCompositor), got {type(obj).__name__}"
        )
    return obj
