"""Running a block of torch work with a chosen number of intra-op threads (the search, WAE
training and the command line share it); it lives in :mod:`iaaa.threads` beside the ops' guard."""

from __future__ import annotations

from iaaa.threads import torch_threads

__all__ = ["torch_threads"]
