"""Reading and writing annotated datasets (label-map folders, COCO JSON, DSB 2018 layout)."""

from iaaa.data.imageio import MAX_PIXELS_ENV, max_image_pixels, read_image, read_label_map, write_image, write_label_map
from iaaa.data.readers import MIN_IMAGE_SIDE, list_image_files, load_samples, read_coco, read_dsb, read_label_folder
from iaaa.data.writers import coco_annotations, write_coco, write_label_folder

__all__ = [
    "read_label_folder",
    "read_coco",
    "read_dsb",
    "load_samples",
    "write_label_folder",
    "write_coco",
    "coco_annotations",
    "read_image",
    "read_label_map",
    "write_image",
    "write_label_map",
    "list_image_files",
    "max_image_pixels",
    "MAX_PIXELS_ENV",
    "MIN_IMAGE_SIDE",
]
