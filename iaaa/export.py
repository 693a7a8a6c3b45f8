"""Writing a synthetic dataset to disk: images (dtype kept), label maps, one COCO JSON with RLE
masks, and a manifest that lets the same dataset be regenerated exactly.

Exports are resumable: every file is written atomically, and each sample's annotations go to
a small part file written *last*, so a sample counts as done only when all its files are
complete. A rerun with the same options skips finished samples; the final COCO JSON is
assembled from the parts in index order, so an interrupted-and-resumed export is byte-identical
to an uninterrupted one. The part files stay in the hidden ``.parts/`` folder of a finished
export (a rerun with the same options then has nothing to do); deleting them is safe, and a
rerun then writes every sample again.

An export never touches files it did not write: ``out`` must be new, empty, or an earlier iaaa
export (it holds iaaa's ``manifest.json``); it may not overlap the input data; one process at
a time writes into it (an ``fcntl`` lock); a resume compares a fingerprint of the input files
and the options with the manifest's; and the only files a resume deletes are temporaries named
by :func:`iaaa.data.imageio.atomic_path` for files this export writes.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from torch.utils.data import DataLoader, Dataset

from iaaa import __version__
from iaaa.data.dataset import SynthesisDataset
from iaaa.data.imageio import atomic_write_text, image_suffix_for, temporary_target, write_image, write_label_map
from iaaa.data.writers import coco_annotations
from iaaa.errors import IaaaError
from iaaa.sampler import Sampler, check_sampler

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second concurrent run is not detected there
    fcntl = None

__all__ = ["export_synthetic", "check_export_folder", "input_fingerprint", "MANIFEST", "ANNOTATIONS", "LOCK_FILE"]

MANIFEST = "manifest.json"
ANNOTATIONS = "annotations.json"
LOCK_FILE = ".iaaa-export.lock"
_PARTS = ".parts"


def _identity(x: Any) -> Any:
    return x


class _WriteSamples(Dataset):
    """Synthesises *and writes* sample ``todo[k]`` inside the loader's worker, so PNG and RLE
    encoding run in parallel too instead of queueing in the main process."""

    def __init__(self, dataset: SynthesisDataset, out: Path, todo: list[int]) -> None:
        self.dataset, self.out, self.todo = dataset, out, todo

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, k: int) -> tuple[int, IaaaError | None]:
        index = self.todo[k]
        try:
            _write_sample(self.out, index, self.dataset[index])
        except IaaaError as exc:
            # Handed back, not raised: a loader worker would re-raise it wrapped in its traceback text.
            return index, exc
        return index, None


def _write_sample(out: Path, index: int, sample: Any) -> None:
    name = sample.name
    img_path = write_image(out / "images" / f"{name}{image_suffix_for(sample.image)}", sample.image)
    top = int(sample.labels.max()) if sample.labels.numel() else 0
    write_label_map(out / "masks" / f"{name}{'.png' if top <= 65535 else '.tif'}", sample.labels)
    h, w = sample.size
    part = {
        "image": {"id": index + 1, "file_name": img_path.name, "height": h, "width": w},
        "annotations": coco_annotations(sample, index + 1, 1),
        "categories": {str(k): v for k, v in sample.categories.items()},
        "meta": {k: v for k, v in sample.meta.items() if _jsonable(v)},
    }
    atomic_write_text(out / _PARTS / f"{index:08d}.json", json.dumps(part))


def _sample_stems(n: int) -> set[str]:
    # The names SynthesisDataset gives samples 0..n-1 at epoch 0 (what an export writes).
    return {f"synth_{i:06d}" for i in range(n)}


def _remove_stale_temporaries(out: Path, n: int) -> list[Path]:
    """Delete the temporaries a killed run of *this* export left (a rename never happened, so
    they are partial): only files named like :func:`atomic_path`'s temporaries whose final name is
    one this export writes. Returns the files removed."""
    stems = _sample_stems(n)
    expected = {
        out: {MANIFEST, ANNOTATIONS},
        out / "images": {f"{s}{ext}" for s in stems for ext in (".png", ".tif")},
        out / "masks": {f"{s}{ext}" for s in stems for ext in (".png", ".tif")},
        out / _PARTS: {f"{i:08d}.json" for i in range(n)},
    }
    removed = []
    for folder, names in expected.items():
        if folder.is_dir():
            for p in folder.iterdir():
                if temporary_target(p.name) in names and p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
    return removed


def input_fingerprint(paths: Sequence[str | os.PathLike]) -> str:
    """SHA-256 over the relative names, sizes and contents of the input files (every
    non-hidden file under each folder; a file as itself). Equal data gives equal fingerprints
    wherever it lies; any added, removed or edited file changes it."""
    h = hashlib.sha256()
    for root in sorted({Path(p).resolve() for p in paths}):
        if root.is_file():
            files = [(root.name, root)]
        elif root.is_dir():
            files = sorted((str(f.relative_to(root)), f) for f in root.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts))
        else:
            raise IaaaError(f"{root}: input not found")
        h.update(f"{root.name}/\0".encode())
        for rel, f in files:
            try:
                h.update(f"{rel}\0{f.stat().st_size}\0".encode())
                with open(f, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        h.update(chunk)
            except OSError as exc:
                raise IaaaError(f"{f}: cannot read ({exc.strerror})") from exc
    return h.hexdigest()


def _refuse_overlap(out: Path, inputs: Sequence[str | os.PathLike]) -> None:
    o = out.resolve()
    for p in inputs:
        if not Path(p).exists():
            continue  # the reader names a missing input
        q = Path(p).resolve()
        if o == q or o.is_relative_to(q) or q.is_relative_to(o):
            where = "is" if o == q else ("lies inside" if o.is_relative_to(q) else "contains")
            raise IaaaError(f"{out}: the export folder {where} the input {p}; write the export somewhere else, so synthetic files never mix with real ones")


def _is_ours(p: Path) -> bool:
    return p.name == LOCK_FILE or temporary_target(p.name) == MANIFEST


def check_export_folder(out: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> None:
    """Raise :class:`~iaaa.errors.IaaaError` unless ``out`` can take an export: new, empty, or an
    earlier iaaa export, and neither inside nor around any of ``inputs``. Creates nothing, so a
    command can check before it spends time reading and fitting."""
    out = Path(out)
    if inputs:
        _refuse_overlap(out, inputs)
    if out.exists() and not out.is_dir():
        raise IaaaError(f"{out}: exists and is not a folder; the export needs a folder")
    if out.is_dir() and not (out / MANIFEST).exists():
        foreign = sorted(p.name for p in out.iterdir() if not _is_ours(p))
        if foreign:
            raise IaaaError(
                f"{out}: folder is not empty ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}) and holds no iaaa {MANIFEST}; "
                "refusing to write into it: choose a new or empty folder"
            )


def _create_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IaaaError(f"{out}: cannot create the export folder ({exc.strerror})") from exc


@contextmanager
def _export_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``out/.iaaa-export.lock`` (released by the kernel even when the
    process is killed, so a resume after ``kill -9`` is never blocked by a stale lock)."""
    if fcntl is None:
        yield
        return
    path = out / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise IaaaError(f"{out}: cannot create the lock file {LOCK_FILE} ({exc.strerror})") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise IaaaError(f"{out}: another iaaa export is writing into this folder right now ({LOCK_FILE} is locked); wait for it or choose another folder") from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # still holding the lock, so no other run is past its check
    finally:
        os.close(fd)


def _manifest_text(record: dict[str, Any]) -> str:
    try:
        return json.dumps(record, indent=1, sort_keys=True, allow_nan=False)
    except ValueError as exc:
        raise IaaaError(f"export options hold a NaN or infinite number, which cannot be recorded or reproduced ({exc})") from None


def _check_or_write_manifest(out: Path, record: dict[str, Any]) -> None:
    man_path = out / MANIFEST
    text = _manifest_text(record)
    if not man_path.is_file():
        atomic_write_text(man_path, text)
        return
    try:
        old = json.loads(man_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IaaaError(f"{man_path}: unreadable manifest ({exc}); remove it or choose another --out") from exc
    if not isinstance(old, dict) or "iaaa_version" not in old:
        raise IaaaError(f"{man_path}: not a manifest written by iaaa; refusing to write into {out}")
    old.pop("background_sources", None)  # written after the images, by this same run
    if old != record:
        diff = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        what = "input files changed since" if diff == ["inputs_sha256"] else "settings differ from"
        raise IaaaError(f"{out} holds an export whose {what} this run (differs in {diff}); choose another --out to start a new one")


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _record_background_sources(out: Path, n: int, record: dict[str, Any]) -> None:
    """Add to the manifest the real image each output image was built on (``meta["background_source"]``),
    so a user can check that no held-out field went into training data."""
    parts = [json.loads((out / _PARTS / f"{i:08d}.json").read_text(encoding="utf-8")) for i in range(n)]
    sources = {p["image"]["file_name"]: p["meta"]["background_source"] for p in parts if "background_source" in p.get("meta", {})}
    if sources:
        atomic_write_text(out / MANIFEST, _manifest_text({**record, "background_sources": sources}))


def _assemble(out: Path, n: int) -> Path:
    images, annotations, categories = [], [], {}
    next_id = 1
    for i in range(n):
        part = json.loads((out / _PARTS / f"{i:08d}.json").read_text(encoding="utf-8"))
        images.append(part["image"])
        for ann in part["annotations"]:
            ann["id"] = next_id
            next_id += 1
            annotations.append(ann)
        categories.update({int(k): v for k, v in part["categories"].items()})
    doc = {
        "info": {"description": "synthetic images written by iaaa", "version": __version__},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": v, "supercategory": "cell"} for k, v in sorted(categories.items())],
    }
    path = out / ANNOTATIONS
    atomic_write_text(path, json.dumps(doc))
    return path


def export_synthetic(
    compositor: Sampler,
    n: int,
    out: str | os.PathLike,
    seed: int = 0,
    workers: int = 0,
    manifest: dict[str, Any] | None = None,
    progress: bool | Callable[[int, int], None] = True,
    inputs: Sequence[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Generate ``n`` synthetic samples with ``compositor`` and write them under ``out``:
    ``images/``, ``masks/``, ``annotations.json`` (COCO, RLE) and ``manifest.json``.

    Sample ``i`` is ``SynthesisDataset(compositor, n, seed)[i]``, so the export equals what a
    training loader would see. ``manifest`` (source data, compositor options, policies) is
    recorded with the seed, count and library version; rerunning into the same ``out`` with the
    same manifest resumes, with a different one it refuses. ``inputs`` are the files and folders
    the compositor was fitted on: ``out`` may not overlap them, and their fingerprint
    (:func:`input_fingerprint`) goes into the manifest, so a resume on changed data is refused.

    Raises :class:`~iaaa.errors.IaaaError` when ``out`` is a file, a non-empty folder that is not
    an iaaa export, overlaps an input, is being written by another process, or holds an export
    with other settings or inputs. Returns a summary dict (``written``, ``skipped``, paths).
    """
    check_sampler(compositor, "compositor")  # before anything is created
    if n < 1:
        raise IaaaError(f"n must be >= 1, got {n}")
    out = Path(out)
    record = {"iaaa_version": __version__, "seed": int(seed), "n": int(n), **(manifest or {})}
    check_export_folder(out, inputs)
    if inputs:
        record["inputs_sha256"] = input_fingerprint(inputs)
    _manifest_text(record)  # refuse NaN options before anything is created
    _create_out(out)
    with _export_lock(out):
        _check_or_write_manifest(out, record)
        _remove_stale_temporaries(out, n)
        done = {int(p.stem) for p in (out / _PARTS).glob("*.json") if p.stem.isdigit()} if (out / _PARTS).is_dir() else set()
        todo = [i for i in range(n) if i not in done]
        ds = SynthesisDataset(compositor, n, seed=seed, target_format="sample")
        loader = DataLoader(_WriteSamples(ds, out, todo), batch_size=None, num_workers=workers, collate_fn=_identity)
        bar = None
        if progress is True:
            from tqdm import tqdm

            bar = tqdm(total=n, initial=n - len(todo), desc="synthesising", unit="img")
        try:
            for k, (_, error) in enumerate(loader):
                if error is not None:
                    raise error
                if bar is not None:
                    bar.update(1)
                elif callable(progress):
                    progress(n - len(todo) + k + 1, n)
        finally:
            if bar is not None:
                bar.close()
        ann = _assemble(out, n)
        _record_background_sources(out, n, record)
    return {"written": len(todo), "skipped": n - len(todo), "annotations": str(ann), "manifest": str(out / MANIFEST), "out": str(out)}
