"""Torch intra-op threads around the library's hot paths.

torch runs every elementwise op on a tensor above ~32k elements as an OpenMP region over all
its threads, and the region ends only when the slowest thread does. On a small machine whose
other cores are busy (a 2-core VM, DataLoader workers, a training loop beside the augmentation)
a thread is often descheduled and the region waits for it: ``x + 1`` on a 64x1x64x64 tensor took
49 us with one thread and 16 ms with two (benchmarks/ops.md). The augmentation kernels work on
cell crops and single images, far too little to gain from a second thread and a lot to lose, so
they run on one thread below :data:`PARALLEL_MIN_NUMEL` elements and keep torch's setting above.

* :class:`serial` -- a context manager: one torch thread inside the block when the work is
  small (or always), the previous count restored on exit; nested uses cost one
  ``torch.get_num_threads`` call.
* :func:`serial_kernel` -- the same as a decorator for kernels whose first tensor argument
  measures the work.
* :func:`torch_threads` -- run a block with a chosen thread count (the ``--threads`` option).

The thread count is torch's per-process setting: do not change it from several Python threads
at once (DataLoader workers are processes, which is fine).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import torch

__all__ = ["PARALLEL_MIN_NUMEL", "serial", "serial_kernel", "torch_threads"]

PARALLEL_MIN_NUMEL: int = 1 << 23
"""Blocks handling fewer elements than this (2**23, as many as 32 single-channel 512x512 images
hold) run on one torch thread. Set it to 0 to keep torch's thread count everywhere."""

F = TypeVar("F", bound=Callable[..., Any])


class serial:
    """Run the block on one torch thread when ``numel`` (the elements it handles) is below
    ``limit`` (default :data:`PARALLEL_MIN_NUMEL`), or always when ``numel`` is ``None``; the
    previous thread count is restored on exit, also after an exception.

    A class rather than a generator context manager: it costs about a microsecond, which
    matters on the compositor's single-object calls (20-100 us each)."""

    __slots__ = ("_active", "_old")

    def __init__(self, numel: int | None = None, limit: int | None = None) -> None:
        lim = PARALLEL_MIN_NUMEL if limit is None else limit
        self._active = numel is None or numel < lim
        self._old = 1

    def __enter__(self) -> "serial":
        if self._active:
            self._old = torch.get_num_threads()
            if self._old != 1:
                torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._active and self._old != 1:
            torch.set_num_threads(self._old)


def serial_kernel(fn: F) -> F:
    """Decorate a kernel so it runs under :class:`serial` sized by its first tensor argument."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        numel = next((a.numel() for a in args if isinstance(a, torch.Tensor)), None)
        with serial(0 if numel is None else numel):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (``None``: leave the setting alone); the
    previous setting is restored afterwards, also when the block raises."""
    if n is None or int(n) == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
