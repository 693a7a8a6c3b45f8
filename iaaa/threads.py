"""Running a block of torch work with a chosen number of intra-op threads: the one place the
library sets torch's thread count (the command line's ``--threads``, the search, WAE training,
and the compositor's small-tensor work, which runs under one thread)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ["torch_threads"]


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
