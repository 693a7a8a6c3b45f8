"""Reading and writing single image and label-map files (PNG 8/16-bit, TIFF, JPEG), atomically.

Images come back as ``(C, H, W)`` tensors in their stored dtype (uint8, uint16 or float32);
label maps as ``(H, W)`` int64. Every failure names the file.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from iaaa.errors import DataError, IaaaError
from iaaa.label_maps import split_instances

__all__ = [
    "IMAGE_SUFFIXES", "MAX_PIXELS_ENV", "TEMP_MARKER", "read_image", "read_label_map", "write_image", "write_label_map",
    "atomic_path", "atomic_write_text", "max_image_pixels", "temporary_target",
]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_TIFF = (".tif", ".tiff")
_JPEG = (".jpg", ".jpeg")
MAX_PIXELS_ENV = "IAAA_MAX_PIXELS"
# Temporary files are named ``.<final name>.<8 random>.iaaa-tmp<suffix>`` so that a resumed export
# can recognise exactly the files iaaa itself left half-written (and nothing a user put there).
TEMP_MARKER = ".iaaa-tmp"
_TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.[a-z0-9_]{8}" + re.escape(TEMP_MARKER) + r"(\.[A-Za-z0-9]+)?$")
# tifffile reports damaged files through its logger (on stderr when nothing is configured); the
# reader turns damage into one DataError instead, so those records must not reach the terminal.
logging.getLogger("tifffile").addHandler(logging.NullHandler())
_PIL_LIMIT_LOCK = threading.Lock()


def max_image_pixels() -> int | None:
    """The largest image (height x width) the readers decode; ``None`` = no limit.

    It is PIL's ``Image.MAX_IMAGE_PIXELS`` (89,478,485 by default, the decompression-bomb guard PIL
    applies to PNG and JPEG), applied to TIFF too, from the size a file *declares* before any pixel
    is decoded. Set the environment variable ``IAAA_MAX_PIXELS`` (an integer) to raise or lower it
    for the files iaaa reads."""
    from PIL import Image

    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        return Image.MAX_IMAGE_PIXELS
    try:
        limit = int(raw)
    except ValueError:
        raise IaaaError(f"environment variable {MAX_PIXELS_ENV}={raw!r} is not an integer pixel count") from None
    if limit < 1:
        raise IaaaError(f"environment variable {MAX_PIXELS_ENV}={raw!r} must be a positive pixel count")
    return limit


@contextmanager
def _pil_limit(limit: int | None) -> Iterator[None]:
    """Let ``Image.open`` accept up to ``limit`` pixels when that is above PIL's own guard (which
    refuses at twice ``Image.MAX_IMAGE_PIXELS``); the exact check is ours, after the open. PIL's
    setting is a global, so it is raised only for the call and under a lock."""
    from PIL import Image

    pil = Image.MAX_IMAGE_PIXELS
    if pil is None or (limit is not None and limit <= pil):
        yield
        return
    with _PIL_LIMIT_LOCK:
        Image.MAX_IMAGE_PIXELS = None if limit is None else limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = pil


def _check_declared_size(path: Path, height: int, width: int, values: int | None = None) -> None:
    limit = max_image_pixels()
    if limit is None:
        return
    if height * width > limit or (values is not None and values > 4 * limit):
        raise DataError(
            f"{path}: declares a {height}x{width} image ({height * width} pixels{f', {values} values' if values is not None else ''}), "
            f"over the {limit}-pixel limit that guards against decompression bombs; set {MAX_PIXELS_ENV} to read larger images"
        )


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        if not tf.pages or not tf.series:
            raise DataError(f"{path}: corrupt TIFF (no image pages)")
        series = tf.series[0]
        shape = tuple(int(v) for v in series.shape)
        axes = str(getattr(series, "axes", ""))
        # Only files that say so (ImageJ hyperstacks, OME): a plain stack's axes read "QYX" and
        # its planes are taken as channels. A z-stack or time series taken as channels would
        # give cells a different look in every channel, silently.
        for axis, what in (("Z", "z-stack"), ("T", "time series")):
            if axis in axes and len(axes) == len(shape) and shape[axes.index(axis)] > 1:
                raise DataError(
                    f"{path}: a {what} (TIFF axes {axes}, shape {shape}); iaaa reads 2-D images with channels: "
                    "save one plane or a projection per image"
                )
        page = tf.pages[0]
        _check_declared_size(path, int(getattr(page, "imagelength", 0) or 0), int(getattr(page, "imagewidth", 0) or 0), int(np.prod(shape)) if shape else 0)
        arr = np.asarray(series.asarray())
    if arr.size == 0 or not shape:
        raise DataError(f"{path}: corrupt TIFF (no pixel data could be decoded)")
    return arr


def _refuse_wide_colour_png(path: Path) -> None:
    """Pillow decodes a 16-bit colour or grey + alpha PNG to 8 bits, keeping each value's high
    byte: refuse it rather than hand on a quarter of its precision. The bit depth is byte 24 of
    the file (the IHDR chunk comes first in every PNG)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16:
        raise DataError(
            f"{path}: a 16-bit colour PNG, which the PNG decoder (Pillow) reads as 8-bit; save it as a TIFF "
            "(e.g. tifffile.imwrite), which keeps all 16 bits"
        )


def _read_array(path: Path, palette_indices: bool = False) -> tuple[np.ndarray, bool]:
    """The decoded pixels and whether they are channel-last by construction (PIL: always).
    A palette (``P`` mode) image gives its colours, or with ``palette_indices`` its indices."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix.lower() in _TIFF:
            return _read_tiff(path), False
        from PIL import Image

        limit = max_image_pixels()
        try:
            with _pil_limit(limit):
                im_ctx = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise DataError(f"{path}: {exc}; set {MAX_PIXELS_ENV} to read larger images") from None
        with im_ctx as im:
            w, h = im.size
            if limit is not None:
                _check_declared_size(path, h, w)
            if im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im, dtype=np.uint16), True
            if im.format == "PNG" and im.mode in ("RGB", "RGBA", "LA"):
                _refuse_wide_colour_png(path)
            if im.mode == "P" and not palette_indices:
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            return np.asarray(im), True
    except (DataError, IaaaError):
        raise
    except MemoryError:
        raise DataError(f"{path}: out of memory decoding this image") from None
    except Exception as exc:  # the decoders raise many types; the user needs the file name
        raise DataError(f"{path}: corrupt or unreadable image file ({type(exc).__name__}: {exc})") from exc


def _to_chw(arr: np.ndarray, path: Path, channel_last: bool) -> np.ndarray:
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        if channel_last:
            return np.moveaxis(arr, -1, 0)
        # tifffile gives whatever was stored: microscopy stacks are usually CHW, RGB TIFFs HWC.
        if arr.shape[-1] <= 4 and arr.shape[0] > 4:
            return np.moveaxis(arr, -1, 0)
        return arr
    raise DataError(f"{path}: expected a 2-D image or a 3-D channel stack, got shape {arr.shape}")


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image as ``(C, H, W)``: uint8 and uint16 are kept, other integer types become
    int32-safe uint16 when they fit, floats become float32. A fully opaque alpha channel (RGBA,
    grey + alpha) is dropped."""
    path = Path(path)
    raw, channel_last = _read_array(path)
    arr = _to_chw(raw, path, channel_last)
    # Outside TIFF, 2 and 4 channels are grey and RGB with alpha (PNG has no other kinds).
    if arr.shape[0] in (2, 4) and arr.dtype == np.uint8 and path.suffix.lower() not in _TIFF and bool((arr[-1] == 255).all()):
        arr = arr[:-1]
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
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: {int((~np.isfinite(arr)).sum())} pixels are NaN or infinite; fix or mask them before use")
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

    Raises :class:`~iaaa.errors.DataError` for JPEG files (lossy: compression changes label
    values along every cell edge), multi-channel maps (unless every channel is equal),
    non-integer values, negative labels and labels beyond int64. A palette PNG (labelme's and
    Pascal VOC's label maps) gives its palette indices, which are the labels; its colours are
    only for display."""
    path = Path(path)
    if path.suffix.lower() in _JPEG:
        raise DataError(f"{path}: JPEG label maps are lossy (compression invents label values along cell edges); save label maps as PNG or TIFF")
    arr, channel_last = _read_array(path, palette_indices=True)
    if arr.ndim == 3:
        axis = -1 if channel_last or (arr.shape[-1] <= 4 and arr.shape[0] > 4) else 0
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
        if arr.size and float(arr.max()) > np.iinfo(np.int64).max:
            raise DataError(f"{path}: label values up to {float(arr.max()):.6g} do not fit int64")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: unsupported label dtype {arr.dtype}")
    elif arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        # Checked before the cast: int64 would wrap these to negative numbers.
        raise DataError(f"{path}: label values up to {int(arr.max())} do not fit int64 (max {np.iinfo(np.int64).max}); renumber the instances 1..N")
    wrapped = arr.dtype == np.uint8 and arr.size and int(arr.max()) == 255
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise DataError(f"{path}: label map has negative labels (min {arr.min()}); 0 is background, k > 0 instance k")
    labels = torch.from_numpy(arr)
    if wrapped:
        # An 8-bit map that reaches 255 may hold more cells than it can number: the ids wrap
        # (cell 256 becomes background, 257 shares id 1 with cell 1, ...).
        split = split_instances(labels)
        if len(split) >= 2:
            ids = sorted(split)
            raise DataError(f"{path}: 8-bit label map numbered up to 255 in which labels {ids[:5]}{' ...' if len(ids) > 5 else ''} ({len(ids)} of them) each mark separate cells: more than 255 cells wrapped around (the ids of cells beyond 255 repeat, and cell 256 became background); save label maps as 16-bit PNG or TIFF")
    return labels


def _umask() -> int:
    # /proc gives the umask without the set-and-restore race of os.umask (another thread could
    # create a file in between); fall back to that where /proc is missing.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def temporary_target(name: str) -> str | None:
    """The final file name a temporary written by :func:`atomic_path` stands for, or ``None`` when
    ``name`` is not such a temporary."""
    m = _TEMP_NAME.match(name)
    return m.group("final") if m else None


def _write_failed(path: Path, exc: OSError) -> IaaaError:
    return IaaaError(f"{path}: cannot write ({exc.strerror or exc}{f': {exc.filename}' if exc.filename and str(exc.filename) != str(path) else ''})")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on failure
    remove it, so readers never see a half-written file.

    The file gets the mode an ordinary ``open`` would give (0o666 less the umask), not the 0o600
    of ``mkstemp``. OS errors (read-only folder, full disk, a folder in the way) become one
    :class:`~iaaa.errors.IaaaError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{TEMP_MARKER}{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise _write_failed(path, exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _write_failed(path, exc) from exc
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
        raise IaaaError(f"{path}: image must be (C, H, W), got shape {tuple(image.shape)}")
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
                raise IaaaError(f"{path}: PNG cannot hold a {c}-channel {arr.dtype} image without loss; use .tif")
        else:
            raise IaaaError(f"{path}: write images as .png or .tif, not {suffix!r}")
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
        raise IaaaError(f"{path}: label map must be (H, W), got shape {arr.shape}")
    top = int(arr.max()) if arr.size else 0
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".png":
            if top > 65535:
                raise IaaaError(f"{path}: {top} labels do not fit a 16-bit PNG; use .tif")
            from PIL import Image

            Image.fromarray(arr.astype(np.uint16)).save(tmp, format="PNG", compress_level=1)
        elif path.suffix.lower() in _TIFF:
            import tifffile

            tifffile.imwrite(tmp, arr.astype(np.uint16 if top <= 65535 else np.uint32))
        else:
            raise IaaaError(f"{path}: write label maps as .png or .tif, not {path.suffix!r}")
    return path
