"""Readers and writers on good and bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from iaaa.data import load_samples, read_coco, read_dsb, read_image, read_label_folder, write_coco, write_label_folder
from iaaa.datasets import simulate_cells
from iaaa.errors import DataError
from iaaa.structures import AnnotatedImage


def _save_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_real_dsb_fluo_loads(dsb_fluo):
    assert len(dsb_fluo) == 30
    for s in dsb_fluo:
        assert s.image.dtype == torch.uint8 and s.image.shape[0] == 1
        assert s.image.shape[-2:] == s.labels.shape
        assert s.num_instances >= 2
    assert sum(s.num_instances for s in dsb_fluo) == 1745


@pytest.mark.parametrize("dtype,mode,channels", [(torch.uint8, "fluorescence", 1), (torch.uint16, "fluorescence", 1), (torch.uint8, "brightfield", 3), (torch.float32, "fluorescence", 1)])
def test_label_folder_roundtrip_keeps_dtype(tmp_path, dtype, mode, channels):
    sim = simulate_cells(2, seed=3, size=(48, 64), mode=mode, dtype=dtype)
    write_label_folder(sim, tmp_path / "i", tmp_path / "m")
    back = read_label_folder(tmp_path / "i", tmp_path / "m")
    for a, b in zip(sim, back):
        assert b.name == a.name and b.image.dtype == dtype and b.image.shape[0] == channels
        assert torch.equal(a.image, b.image) and torch.equal(a.labels, b.labels)
    assert not list((tmp_path / "i").glob(".*")), "temporary files left behind"


def test_label_folder_multichannel_tiff_and_classes(tmp_path):
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 65535, (5, 20, 30), generator=g, dtype=torch.int32).to(torch.uint16)
    lab = torch.zeros(20, 30, dtype=torch.int64)
    lab[2:6, 2:6] = 4
    lab[10:15, 10:20] = 9
    s = AnnotatedImage(img, lab, torch.tensor([2, 3]), name="stack", categories={1: "cell", 2: "T cell", 3: "tumour"})
    write_label_folder([s], tmp_path / "i", tmp_path / "m")
    assert (tmp_path / "i" / "stack.tif").is_file() and (tmp_path / "m" / "classes.json").is_file()
    (b,) = read_label_folder(tmp_path / "i", tmp_path / "m")
    assert b.image.shape == (5, 20, 30) and b.image.dtype == torch.uint16 and torch.equal(b.image, img)
    assert b.class_ids.tolist() == [2, 3] and b.categories[2] == "T cell"


def test_tiff_hwc_and_chw(tmp_path):
    arr = np.random.default_rng(0).integers(0, 255, (3, 16, 24), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "chw.tif", arr, photometric="minisblack")
    tifffile.imwrite(tmp_path / "hwc.tif", np.moveaxis(arr, 0, -1))
    assert torch.equal(read_image(tmp_path / "chw.tif"), torch.from_numpy(arr))
    assert torch.equal(read_image(tmp_path / "hwc.tif"), torch.from_numpy(arr))


def test_palette_label_maps_give_their_indices_and_opaque_alpha_is_dropped(tmp_path):
    # labelme and Pascal VOC store label maps as palette PNGs: the indices are the labels, the
    # colours only show them (read as colours, every such map was refused as 3-channel).
    rng = np.random.default_rng(0)
    lab = np.zeros((12, 16), np.uint8)
    lab[1:5, 2:7], lab[6:11, 3:9], lab[2:6, 10:15] = 1, 2, 7
    pal = Image.fromarray(lab, mode="P")
    pal.putpalette(rng.integers(0, 256, 768).astype(np.uint8).tolist())
    img = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    _save_png(tmp_path / "i" / "a.png", np.stack([img, np.full_like(img, 255)], -1))  # grey + opaque alpha
    (tmp_path / "m").mkdir()
    pal.save(tmp_path / "m" / "a.png")
    (s,) = read_label_folder(tmp_path / "i", tmp_path / "m")
    assert s.image.shape == (1, 12, 16) and torch.equal(s.image[0], torch.from_numpy(img))
    assert torch.equal(s.labels, torch.from_numpy(lab).to(torch.int64))
    # an image in palette mode still gives its colours, and a translucent alpha is kept
    pal.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (3, 12, 16)
    _save_png(tmp_path / "la.png", np.stack([img, np.full_like(img, 128)], -1))
    assert read_image(tmp_path / "la.png").shape == (2, 12, 16)


def test_z_stacks_and_time_series_are_refused_not_taken_as_channels(tmp_path):
    arr = np.random.default_rng(0).integers(0, 255, (5, 16, 24), dtype=np.uint8)
    for axes, what in (("ZYX", "z-stack"), ("TYX", "time series")):
        tifffile.imwrite(tmp_path / "s.tif", arr, imagej=True, metadata={"axes": axes})
        with pytest.raises(DataError, match=f"s.tif: a {what} \\(TIFF axes {axes}, shape \\(5, 16, 24\\)\\)"):
            read_image(tmp_path / "s.tif")
    tifffile.imwrite(tmp_path / "c.tif", arr, imagej=True, metadata={"axes": "CYX"})  # channels say so
    assert torch.equal(read_image(tmp_path / "c.tif"), torch.from_numpy(arr))


def _png16(path, arr, colour_type):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour)."""
    import struct
    import zlib

    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_sixteen_bit_colour_png_is_refused_not_cut_to_eight_bits(tmp_path):
    arr = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1000).astype(np.uint16)
    _png16(tmp_path / "rgb16.png", arr, 2)
    with pytest.raises(DataError, match="rgb16.png: a 16-bit colour PNG"):
        read_image(tmp_path / "rgb16.png")
    _png16(tmp_path / "grey16.png", arr[..., 0], 0)  # 16-bit grey: read whole
    assert torch.equal(read_image(tmp_path / "grey16.png")[0].to(torch.int32), torch.from_numpy(arr[..., 0].astype(np.int32)))
    _save_png(tmp_path / "rgb8.png", (arr // 256).astype(np.uint8))
    assert read_image(tmp_path / "rgb8.png").shape == (3, 4, 5)


def test_mask_suffixes_are_matched(tmp_path):
    _save_png(tmp_path / "i" / "a.png", np.zeros((8, 8), np.uint8))
    _save_png(tmp_path / "m" / "a_masks.png", np.ones((8, 8), np.uint16))
    (s,) = read_label_folder(tmp_path / "i", tmp_path / "m")
    assert s.num_instances == 1


def test_label_folder_errors(tmp_path):
    i, m = tmp_path / "i", tmp_path / "m"
    i.mkdir()
    m.mkdir()
    with pytest.raises(DataError, match="no image files"):
        read_label_folder(i, m)
    with pytest.raises(DataError, match="not found"):
        read_label_folder(tmp_path / "nope", m)
    _save_png(i / "a.png", np.zeros((8, 8), np.uint8))
    _save_png(i / "b.png", np.zeros((8, 8), np.uint8))
    _save_png(m / "a.png", np.zeros((8, 9), np.uint16))
    _save_png(m / "c.png", np.zeros((8, 8), np.uint16))
    with pytest.raises(DataError, match=r"images without a mask: \['b'\].*masks without an image: \['c.png'\]"):
        read_label_folder(i, m)
    (m / "c.png").rename(m / "b.png")
    with pytest.raises(DataError, match=r"a.png.*does not match mask size"):
        read_label_folder(i, m)
    _save_png(m / "a.png", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(m / "b.tif", np.full((8, 8), 0.5, np.float32))
    (m / "b.png").unlink()
    with pytest.raises(DataError, match=r"b.tif.*non-integer"):
        read_label_folder(i, m)
    tifffile.imwrite(m / "b.tif", np.full((8, 8), -1, np.int32))
    with pytest.raises(DataError, match=r"b.tif.*negative"):
        read_label_folder(i, m)
    (m / "b.tif").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match=r"b.tif.*unreadable"):
        read_label_folder(i, m)
    _save_png(m / "b.tif", np.zeros((8, 8), np.uint16))
    (m / "b.tif").unlink()
    _save_png(m / "b.png", np.stack([np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8), np.ones((8, 8), np.uint8)], -1))
    with pytest.raises(DataError, match=r"b.png.*one channel"):
        read_label_folder(i, m)


def _coco_doc():
    return {
        "images": [{"id": 7, "file_name": "a.png", "height": 10, "width": 12}, {"id": 8, "file_name": "b.png", "height": 10, "width": 12}],
        "annotations": [
            # a big square polygon and a small square that overlaps it: the small one keeps its pixels
            {"id": 1, "image_id": 7, "category_id": 2, "segmentation": [[1, 1, 8, 1, 8, 8, 1, 8]], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "segmentation": {"size": [10, 12], "counts": [44, 3, 7, 3, 7, 3, 53]}, "iscrowd": 0},
        ],
        "categories": [{"id": 2, "name": "T cell"}, {"id": 3, "name": "tumour"}],
    }


def test_read_coco_polygons_rle_and_overlap(tmp_path):
    _save_png(tmp_path / "a.png", np.zeros((10, 12), np.uint8))
    _save_png(tmp_path / "b.png", np.zeros((10, 12), np.uint8))
    (tmp_path / "ann.json").write_text(json.dumps(_coco_doc()))
    with pytest.warns(UserWarning, match="smaller instance"):
        a, b = read_coco(tmp_path / "ann.json", tmp_path)
    assert a.class_ids.tolist() == [2, 3] and a.categories == {2: "T cell", 3: "tumour"}
    assert a.meta["overlap"]["pixels"] > 0 and a.meta["annotation_ids"] == [1, 2]
    small = a.labels == 2
    assert int(small.sum()) == 9  # the 3x3 RLE square survives whole
    assert b.num_instances == 0
    # writer -> reader round trip keeps classes and pixels
    write_coco([a], tmp_path / "out.json", tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        (c,) = read_coco(tmp_path / "out.json", tmp_path / "out")
    assert torch.equal(c.labels, a.labels) and c.class_ids.tolist() == [2, 3]


def test_read_coco_errors(tmp_path):
    _save_png(tmp_path / "a.png", np.zeros((10, 12), np.uint8))
    doc = _coco_doc()
    doc["annotations"][0]["image_id"] = 99
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="annotation 1 points at image_id 99"):
        read_coco(tmp_path / "ann.json", tmp_path)
    doc = _coco_doc()
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="b.png: file not found"), pytest.warns(UserWarning, match="smaller instance"):
        read_coco(tmp_path / "ann.json", tmp_path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        read_coco(tmp_path / "bad.json", tmp_path)
    doc["images"][0]["height"] = 11
    doc["images"] = doc["images"][:1]
    doc["annotations"] = []
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="a.png is 10x12 on disk but 11x12"):
        read_coco(tmp_path / "ann.json", tmp_path)


def test_read_dsb_layout(tmp_path):
    for case, n in (("c1", 2), ("c2", 0)):
        _save_png(tmp_path / case / "images" / f"{case}.png", np.full((9, 9, 4), 255, np.uint8))
        for k in range(n):
            m = np.zeros((9, 9), np.uint8)
            m[k * 4 : k * 4 + 3, 1:4] = 255
            _save_png(tmp_path / case / "masks" / f"m{k}.png", m)
    (tmp_path / "c2" / "masks").mkdir()  # an empty masks/ says "no cells"; a missing one is refused
    c1, c2 = read_dsb(tmp_path)
    assert c1.image.shape == (3, 9, 9)  # opaque alpha dropped
    assert c1.num_instances == 2 and c2.num_instances == 0
    assert int((c1.labels == 1).sum()) == 9
    with pytest.raises(DataError, match="no <id>/images"):
        read_dsb(tmp_path / "c1" / "masks")


def test_load_samples_dispatch_errors(tmp_path):
    with pytest.raises(DataError, match="no input data"):
        load_samples()
    with pytest.raises(DataError, match="--coco needs --images"):
        load_samples(coco=str(tmp_path / "x.json"))


def test_writer_rejects_duplicate_names(tmp_path):
    s = simulate_cells(1, size=(32, 32))[0]
    with pytest.raises(ValueError, match="unique"):
        write_label_folder([s, s], tmp_path / "i", tmp_path / "m")


def test_read_coco_equal_areas_tie_goes_to_the_earlier_annotation(tmp_path):
    _save_png(tmp_path / "a.png", np.zeros((10, 12), np.uint8))
    square = lambda x, y: [[x, y, x + 4, y, x + 4, y + 4, x, y + 4]]  # noqa: E731
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 12}],
        "annotations": [
            {"id": 5, "image_id": 1, "segmentation": square(1, 1)},
            {"id": 6, "image_id": 1, "segmentation": square(3, 3)},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="smaller instance"):
        (a,) = read_coco(tmp_path / "ann.json", tmp_path)
    from pycocotools import mask as mask_utils

    first = torch.from_numpy(mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(square(1, 1), 10, 12))).astype(bool))
    assert torch.equal(a.labels == 1, first)  # annotation 5 keeps the overlap
    assert a.meta["overlap"]["pixels"] > 0 and a.meta["annotation_ids"] == [5, 6]


def test_read_dsb_overlapping_masks_paint_like_coco(tmp_path):
    case = tmp_path / "c1"
    _save_png(case / "images" / "c1.png", np.zeros((9, 9), np.uint8))
    big, small = np.zeros((9, 9), np.uint8), np.zeros((9, 9), np.uint8)
    big[1:7, 1:7], small[5:8, 5:8] = 255, 255
    _save_png(case / "masks" / "a.png", big)
    _save_png(case / "masks" / "b.png", small)
    with pytest.warns(UserWarning, match="4 pixels covered by several instances"):
        (s,) = read_dsb(tmp_path)
    assert int((s.labels == 2).sum()) == 9 and int((s.labels == 1).sum()) == 36 - 4
