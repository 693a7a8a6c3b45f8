"""The thread-count context of the search and WAE training: :func:`iaaa.threads.torch_threads`
(it lives in :mod:`iaaa.threads` so synthesis can use it without importing the policy package)."""

from iaaa.threads import torch_threads

__all__ = ["torch_threads"]
