"""Reading ``torch.save`` files that came from somewhere else: tensors and plain values only.

Every model, checkpoint and weights file the library reads goes through :func:`load_torch_file`,
which calls ``torch.load(weights_only=True)`` and turns its many failure types into one
:class:`~iaaa.errors.IaaaError` line naming the file. A file that carries Python code (a pickled
class or function) is refused with a message that never suggests turning the guard off: torch's
own text advises re-running with ``weights_only=False``, which would run that code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from iaaa.errors import IaaaError

__all__ = ["load_torch_file", "check_state_dict"]


def load_torch_file(path: str | os.PathLike, what: str, map_location: str | torch.device = "cpu") -> Any:
    """The contents of ``path`` loaded with ``weights_only=True``; ``what`` names the kind of
    file in the message (e.g. ``"SAAA checkpoint"``). Raises one-line :class:`IaaaError` for a
    missing, unreadable, truncated or code-carrying file."""
    p = Path(path)
    if not p.is_file():
        raise IaaaError(f"{p}: no such {what} file")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any pickled global (class, function): such a file can run code.
        # Any other unpickling failure (e.g. "Unsupported operand" from a text file) means the
        # bytes are not a pickle at all, which is a different complaint.
        detail = next((ln.strip() for ln in str(exc).splitlines() if "unsupported global" in ln.lower()), "")
        if not detail:
            raise IaaaError(f"{p}: not a readable {what} (not a torch.save file)") from None
        detail = detail.split(" was not an allowed global")[0].removeprefix("WeightsUnpickler error: ")
        raise IaaaError(f"{p}: not a plain {what}: it holds pickled Python objects that could run code when loaded ({detail}); iaaa refuses to load it") from None
    except OSError as exc:
        raise IaaaError(f"{p}: cannot read the {what} ({exc.strerror or exc})") from None
    except Exception as exc:  # zip/pickle framing errors come in many types; report them as one line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise IaaaError(f"{p}: not a readable {what} ({type(exc).__name__}: {first})") from None


def check_state_dict(state: Any, path: str | os.PathLike, field: str = "state_dict") -> dict[str, torch.Tensor]:
    """``state`` if it is a dict of tensors keyed by strings, else an :class:`IaaaError` naming
    ``path`` and ``field`` (a list or number where a state dict belongs)."""
    if not isinstance(state, dict):
        raise IaaaError(f"{path}: field {field!r} must be a state dict (names -> tensors), got {type(state).__name__}")
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise IaaaError(f"{path}: field {field!r} must map names to tensors, got {type(k).__name__} -> {type(v).__name__} for {str(k)[:60]!r}")
    return state
