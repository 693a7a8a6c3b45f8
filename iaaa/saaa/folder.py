"""A SAAA model folder on disk: what may be written where (the export rules), and what each
saved file must hold before anything is allocated from it.

A model folder holds ``saaa.json`` (options, data description, training summary; written last,
so a folder holds a finished model only once every weights file is in place), one
``torch.save`` file per network (``mask_diffusion.pt``, ``pix2pix.pt``: ``{"format",
"version", "config", "state_dict"}`` of plain values and tensors) and, while training,
``checkpoints/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from iaaa.errors import IaaaError
from iaaa.saaa.fields import choice, integer, number
from iaaa.torchfile import check_state_dict, load_torch_file

__all__ = [
    "FORMAT", "VERSION", "DTYPES", "MODEL_FILE", "CHECKPOINTS", "read_model_description", "check_model_folder", "make_model_folder",
    "save_network_file", "check_data_description", "read_network_file", "build_network_config", "check_weight_shapes", "load_weights",
]

FORMAT = "iaaa.saaa"
VERSION = 1
DTYPES = {"uint8": torch.uint8, "uint16": torch.uint16, "float32": torch.float32}
MODEL_FILE = "saaa.json"
CHECKPOINTS = "checkpoints"


def read_model_description(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed ``saaa.json`` of ``folder`` when it is one of ours (``format`` field), ``None``
    when there is none; an unreadable or foreign one raises :class:`IaaaError` naming it."""
    path = Path(folder) / MODEL_FILE
    try:
        if not path.is_file():
            return None
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IaaaError(f"{path}: cannot read ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IaaaError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IaaaError(f"{path}: not a SAAA model description (field 'format' should be {FORMAT!r})")
    return meta


def _ours(p: Path) -> bool:
    # What a model folder holds before saaa.json exists: checkpoints/ and our temporaries.
    from iaaa.data.imageio import temporary_target

    return p.name in (CHECKPOINTS, "mask_diffusion.pt", "pix2pix.pt") or temporary_target(p.name) in (MODEL_FILE, "mask_diffusion.pt", "pix2pix.pt")


def check_model_folder(folder: str | os.PathLike, inputs: Sequence[str | os.PathLike] = (), fingerprint: str | None = None, overwrite: bool = False) -> dict[str, Any] | None:
    """Raise :class:`IaaaError` unless ``folder`` can take a SAAA model, by the rules of
    :func:`iaaa.export.check_export_folder`: it is new, empty, or a SAAA model folder (its
    ``saaa.json`` or only ``checkpoints/``), and does not overlap ``inputs``. A finished model
    whose fingerprint differs from ``fingerprint`` (other data or options) is refused unless
    ``overwrite``. Creates nothing. Returns the existing ``saaa.json`` contents, if any."""
    from iaaa.export import check_export_folder

    root = Path(folder)
    try:
        exists, is_dir = root.exists(), root.is_dir()
        meta = read_model_description(root) if is_dir else None
        foreign = sorted(p.name for p in root.iterdir() if not _ours(p)) if is_dir and meta is None else []
    except OSError as exc:  # a path too long, a folder we may not list
        raise IaaaError(f"{str(root)[:120]}: cannot use as a model folder ({exc.strerror})") from None
    if exists and not is_dir:
        raise IaaaError(f"{root}: exists and is not a folder; a SAAA model is a folder")
    if meta is None:
        if foreign:
            raise IaaaError(
                f"{root}: folder is not empty ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}) and holds no SAAA {MODEL_FILE}; "
                "refusing to write into it: choose a new or empty folder"
            )
        if inputs and not (is_dir and any(root.iterdir())):
            # The export rules for where output may lie. A folder holding our checkpoints was
            # checked when it was started; its checkpoints carry the data's fingerprint.
            check_export_folder(root, inputs)
        return None
    if fingerprint is not None and meta.get("fingerprint") != fingerprint and not overwrite:
        raise IaaaError(f"{root}: holds a finished SAAA model trained on other data or options; choose another folder, or replace it explicitly (--overwrite, save(overwrite=True))")
    return meta


def make_model_folder(root: Path) -> None:
    """Create the model folder (and its parents); one line naming it when that fails."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IaaaError(f"{str(root)[:120]}: cannot create the model folder ({exc.strerror})") from None


def save_network_file(payload: Any, tmp: Path, target: Path) -> None:
    """``torch.save`` to ``tmp`` (the atomic temporary of ``target``); one line naming ``target`` on failure."""
    try:
        torch.save(payload, tmp)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as a RuntimeError of its zip writer
        raise IaaaError(f"{target}: cannot write ({(str(exc).splitlines() or [type(exc).__name__])[0][:160]})") from None


def check_data_description(data: Any, meta_path: Path) -> dict[str, Any]:
    """The ``data`` field of ``saaa.json``, every entry checked."""
    if not isinstance(data, dict):
        raise IaaaError(f"{meta_path}: field 'data' must be an object (channels, dtype, scale, ...)")
    try:
        channels = integer(data.get("channels"), "data.channels", 1, 64)
        choice(data.get("dtype"), "data.dtype", tuple(DTYPES))
        scale = data.get("scale")
        if not isinstance(scale, list) or len(scale) != channels:
            raise IaaaError(f"data.scale: must be a list of {channels} numbers, got {str(scale)[:60]}")
        for v in scale:
            if number(v, "data.scale", 0.0, 1e6) <= 0:
                raise IaaaError(f"data.scale: must hold positive numbers, got {v!r}")
        for k in ("n_images", "n_crops"):
            if k in data:
                integer(data[k], f"data.{k}", 0, 2**62)
    except IaaaError as exc:
        raise IaaaError(f"{meta_path}: field {exc}") from None
    return dict(data)


def read_network_file(path: Path, name: str) -> dict[str, Any]:
    """The checked contents of one network file of a saved model."""
    if not path.is_file():
        raise IaaaError(f"{path}: missing weights file of the SAAA model")
    payload = load_torch_file(path, f"SAAA {name} weights")
    if not isinstance(payload, dict) or payload.get("format") != f"{FORMAT}.{name}" or "state_dict" not in payload or "config" not in payload:
        raise IaaaError(f"{path}: not a SAAA {name} weights file (field 'format' should be '{FORMAT}.{name}')")
    if not isinstance(payload["config"], dict):
        raise IaaaError(f"{path}: field 'config' must be a dict of options, got {type(payload['config']).__name__}")
    check_state_dict(payload["state_dict"], path)
    return payload


def build_network_config(cls: type, payload: dict[str, Any], path: Path) -> Any:
    """``cls(**payload['config'])``; a refused field is named with the file."""
    try:
        return cls(**payload["config"])
    except TypeError as exc:
        raise IaaaError(f"{path}: field 'config': {str(exc).split('__init__() ')[-1]}") from None
    except IaaaError as exc:
        raise IaaaError(f"{path}: field config.{exc}") from None


def check_weight_shapes(build: Callable[[], torch.nn.Module], payload: dict[str, Any], path: Path) -> None:
    """Compare the file's tensor names and shapes with the network its config describes, built
    on the ``meta`` device (no memory), so a config that does not match its weights is refused
    before the real network is allocated."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in payload["state_dict"].items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        what = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra else f"{wrong[0]} is {got[wrong[0]]}, the config needs {expected[wrong[0]]}")
        raise IaaaError(f"{path}: field 'state_dict' does not match its config ({what})")


def load_weights(module: torch.nn.Module, payload: dict[str, Any], path: Path) -> None:
    """Load the checked ``state_dict`` into ``module``."""
    try:
        module.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise IaaaError(f"{path}: field 'state_dict' does not match its config ({str(exc).splitlines()[0]})") from None
