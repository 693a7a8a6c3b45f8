"""The op classes speak torchvision's v2 protocol through its public API only."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from iaaa.errors import IaaaError
from iaaa.ops import Rotate
from iaaa.ops._base import spatial_size


def test_spatial_size_reads_every_input_kind():
    img = tv_tensors.Image(torch.zeros(1, 20, 30))
    mask = tv_tensors.Mask(torch.zeros(20, 30, dtype=torch.int64))
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[1.0, 2.0, 5.0, 6.0]]), format="XYXY", canvas_size=(20, 30))
    assert spatial_size([img, mask, boxes, "a label string"]) == (20, 30)
    assert spatial_size([torch.zeros(3, 7, 9)]) == (7, 9)
    with pytest.raises(IaaaError, match="one spatial size"):
        spatial_size([img, tv_tensors.Mask(torch.zeros(21, 30, dtype=torch.int64))])
    with pytest.raises(IaaaError, match="none"):
        spatial_size(["no tensor"])


def test_geometric_op_moves_image_mask_and_boxes_together():
    img = tv_tensors.Image(torch.rand(1, 24, 32))
    lab = torch.zeros(24, 32, dtype=torch.int64)
    lab[4:9, 6:12] = 1
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[6.0, 4.0, 12.0, 9.0]]), format="XYXY", canvas_size=(24, 32))  # pixel edges
    out_img, out_mask, out_boxes = Rotate(degrees=90.0, expand=True)(img, tv_tensors.Mask(lab), boxes)
    assert tuple(out_img.shape[-2:]) == tuple(out_mask.shape[-2:]) == tuple(out_boxes.canvas_size) == (32, 24)
    ys, xs = torch.nonzero(out_mask.as_subclass(torch.Tensor) == 1, as_tuple=True)
    x0, y0, x1, y1 = out_boxes[0].tolist()
    assert (x0, y0, x1, y1) == (float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1)
