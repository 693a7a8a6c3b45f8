"""The sampler contract: anything with ``sample(generator) -> AnnotatedImage``, and where a
sampler's randomness comes from.

A fitted :class:`~iaaa.synthesis.compositor.CellCompositor`, a SAAA model and a
:class:`~iaaa.sources.SourceMix` are samplers; the datasets, the export and the judge accept any
of them. One check, one error, so every entry point refuses a non-sampler with the same line.

:func:`mix_seed` turns a few integers into one seed (what drives sample ``i`` of a dataset);
:class:`OwnGenerator` is the generator a sampler or transform uses when its caller gives none,
reseeded in each DataLoader worker so that workers and epochs do not repeat one stream.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from iaaa.errors import IaaaError
from iaaa.structures import AnnotatedImage

__all__ = ["Sampler", "is_sampler", "check_sampler", "mix_seed", "OwnGenerator"]


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


def mix_seed(seed: int, index: int, epoch: int = 0) -> int:
    """A seed in ``[0, 2**63)`` that is a function of the three integers alone (splitmix64-style
    mixing keeps triples from colliding in practice; any sign or size of each)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xD1B54A32D192ED03 + index * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 29
    return x & 0x7FFFFFFFFFFFFFFF


# The stream of mix_seed a worker's OwnGenerator draws from (dataset samples use epochs >= 0 and
# their layouts -1).
_WORKER_STREAM = -2


class OwnGenerator:
    """The generator of a sampler or transform called without one (``sample()``,
    ``PasteCells()(image, mask)``): seeded with ``seed`` where it was made and advanced call by
    call. A DataLoader worker gets a copy pickled when the epoch's workers start, so every
    worker, every epoch, would replay that one stream (the same pastes for the k-th item of each
    worker in every epoch); in a worker it is instead reseeded once from the worker's seed, which
    the loader draws afresh per worker and per epoch from its own generator (seed the loader's
    ``generator=`` and the run repeats). Picklable."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._generator = torch.Generator().manual_seed(self.seed)
        self._worker_seed: int | None = None

    def get(self) -> torch.Generator:
        """The generator to draw from now (see the class docs)."""
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._generator = torch.Generator().manual_seed(mix_seed(self.seed, info.seed, _WORKER_STREAM))
        return self._generator

    def __getstate__(self) -> dict[str, Any]:
        # A torch.Generator pickles its state as a temporary tensor, which torch's multiprocessing
        # pickler hands to a spawned DataLoader worker as a file descriptor that is closed again
        # before the worker opens it ("unable to resize file" in every worker); bytes travel with
        # the pickle itself.
        return {"seed": self.seed, "state": self._generator.get_state().numpy().tobytes(), "worker_seed": self._worker_seed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.seed, self._worker_seed = state["seed"], state["worker_seed"]
        self._generator = torch.Generator()
        self._generator.set_state(torch.frombuffer(bytearray(state["state"]), dtype=torch.uint8))
