"""Checking a device a user named (``--device``, ``device=``) before any work is done on it."""

from __future__ import annotations

import torch

from iaaa.errors import IaaaError

__all__ = ["resolve_device"]


def resolve_device(value: str | torch.device, name: str = "device") -> torch.device:
    """``value`` as a :class:`torch.device` that exists on this machine, else one
    :class:`IaaaError` naming ``name``: an unknown device string, CUDA or MPS that is not
    available, or a CUDA index beyond the GPUs present. (torch accepts ``cuda:7`` on a machine
    without CUDA and fails only at the first allocation, deep inside the work.)"""
    try:
        device = value if isinstance(value, torch.device) else torch.device(str(value))
    except (RuntimeError, ValueError, TypeError):
        raise IaaaError(f"{name}: {str(value)[:80]!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise IaaaError(f"{name} {value}: CUDA is not available on this machine; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise IaaaError(f"{name} {value}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise IaaaError(f"{name} {value}: MPS is not available on this machine; use cpu")
    elif device.type != "cpu":
        raise IaaaError(f"{name} {value}: iaaa runs on cpu, cuda or mps, not {device.type}")
    return device
