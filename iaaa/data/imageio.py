"""Reading and writing single image and label-map files (PNG 8/16-bit, TIFF, JPEG), atomically.

Images come back as ``(C, H, W)`` tensors in their stored dtype (uint8, uint16 or float32);
label maps as ``(H, W)`` int64. Every failure names the file.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from iaaa.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "read_image", "read_label_map", "write_image", "write_label_map", "atomic_path", "atomic_write_text"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_TIFF = (".tif", ".tiff")


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix.lower() in _TIFF:
            import tifffile

            return np.asarray(tifffile.imread(path))
        from PIL import Image

        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im, dtype=np.uint16)
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            return np.asarray(im)
    except DataError:
        raise
    except Exception as exc:  # the decoders raise many types; the user needs the file name
        raise DataError(f"{path}: unreadable image file ({type(exc).__name__}: {exc})") from exc


def _to_chw(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        # PIL gives HWC; tifffile gives whatever was stored: microscopy stacks are usually CHW.
        if arr.shape[-1] <= 4 and arr.shape[0] > 4:
            return np.moveaxis(arr, -1, 0)
        return arr
    raise DataError(f"{path}: expected a 2-D image or a 3-D channel stack, got shape {arr.shape}")


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image as ``(C, H, W)``: uint8 and uint16 are kept, other integer types become
    int32-safe uint16 when they fit, floats become float32. A fully opaque alpha channel is dropped."""
    path = Path(path)
    arr = _to_chw(_read_array(path), path)
    if arr.shape[0] == 4 and arr.dtype == np.uint8 and path.suffix.lower() not in _TIFF and bool((arr[3] == 255).all()):
        arr = arr[:3]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype in (np.uint8, np.uint16):
        pass
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 65535:
            raise DataError(f"{path}: integer image values {arr.min()}..{arr.max()} do not fit uint16; store it as float or uint16")
        arr = arr.astype(np.uint16)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    else:
        raise DataError(f"{path}: unsupported pixel type {arr.dtype}")
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:  # PIL hands out read-only buffers; torch wants to own writable memory
        arr = arr.copy()
    if arr.dtype == np.uint16:
        return torch.from_numpy(arr.astype(np.int32)).to(torch.uint16)
    return torch.from_numpy(arr)


def read_label_map(path: str | os.PathLike) -> torch.Tensor:
    """Read an instance label map as ``(H, W)`` int64 (0 = background).

    Raises :class:`~iaaa.errors.DataError` for multi-channel maps (unless every channel is
    equal), non-integer values and negative labels."""
    path = Path(path)
    arr = _read_array(path)
    if arr.ndim == 3:
        axis = -1 if arr.shape[-1] <= 4 and arr.shape[0] > 4 else 0
        first = np.take(arr, 0, axis=axis)
        if not all(np.array_equal(first, np.take(arr, i, axis=axis)) for i in range(arr.shape[axis])):
            raise DataError(f"{path}: label map must have one channel, got shape {arr.shape} with differing channels")
        arr = first
    if arr.ndim != 2:
        raise DataError(f"{path}: label map must be 2-D (H, W), got shape {arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise DataError(f"{path}: label map holds non-integer values (dtype {arr.dtype}); labels must be integers")
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: unsupported label dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise DataError(f"{path}: label map has negative labels (min {arr.min()}); 0 is background, k > 0 instance k")
    return torch.from_numpy(arr)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on failure
    remove it, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.uint16:
        return t.to(torch.int32).numpy().astype(np.uint16)
    return t.numpy()


def write_image(path: str | os.PathLike, image: torch.Tensor) -> Path:
    """Write a ``(C, H, W)`` image keeping its dtype. PNG holds 1/3/4-channel uint8 and
    1-channel uint16; anything else (float, uint16 RGB, other channel counts) must go to TIFF.
    Returns the path written."""
    path = Path(path)
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.ndim != 3:
        raise ValueError(f"{path}: image must be (C, H, W), got shape {tuple(image.shape)}")
    arr = _numpy(image)
    c = arr.shape[0]
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix in _TIFF:
            import tifffile

            tifffile.imwrite(tmp, arr[0] if c == 1 else arr, photometric="minisblack" if c != 3 or arr.dtype != np.uint8 else "rgb")
        elif suffix == ".png":
            from PIL import Image

            # zlib level 1: ~25% faster than the default 6 for ~10% larger files of noisy images.
            if arr.dtype == np.uint8 and c in (1, 3, 4):
                Image.fromarray(arr[0] if c == 1 else np.moveaxis(arr, 0, -1)).save(tmp, format="PNG", compress_level=1)
            elif arr.dtype == np.uint16 and c == 1:
                Image.fromarray(arr[0]).save(tmp, format="PNG", compress_level=1)
            else:
                raise ValueError(f"{path}: PNG cannot hold a {c}-channel {arr.dtype} image without loss; use .tif")
        else:
            raise ValueError(f"{path}: write images as .png or .tif, not {suffix!r}")
    return path


def image_suffix_for(image: torch.Tensor) -> str:
    """The lossless file suffix for an image: .png where PNG holds it exactly, else .tif."""
    c = image.shape[0] if image.ndim == 3 else 1
    if (image.dtype == torch.uint8 and c in (1, 3, 4)) or (image.dtype == torch.uint16 and c == 1):
        return ".png"
    return ".tif"


def write_label_map(path: str | os.PathLike, labels: torch.Tensor) -> Path:
    """Write a label map: 16-bit PNG when labels fit in 0..65535 (and the suffix is .png), else
    32-bit TIFF."""
    path = Path(path)
    arr = _numpy(labels)
    if arr.ndim != 2:
        raise ValueError(f"{path}: label map must be (H, W), got shape {arr.shape}")
    top = int(arr.max()) if arr.size else 0
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".png":
            if top > 65535:
                raise ValueError(f"{path}: {top} labels do not fit a 16-bit PNG; use .tif")
            from PIL import Image

            Image.fromarray(arr.astype(np.uint16)).save(tmp, format="PNG", compress_level=1)
        elif path.suffix.lower() in _TIFF:
            import tifffile

            tifffile.imwrite(tmp, arr.astype(np.uint16 if top <= 65535 else np.uint32))
        else:
            raise ValueError(f"{path}: write label maps as .png or .tif, not {path.suffix!r}")
    return path
