"""Face image datasets: robust image loading, image folders, and CelebA preparation.

Images are returned as float32 tensors in [0, 1], shaped (3, H, W), RGB.

Three parts, one file each:

- :mod:`.images`: :func:`load_image` decodes one file to an 8-bit RGB ``PIL.Image`` whatever its
  mode (alpha, palette, 16-bit, CMYK, EXIF rotation); the centre and face-box crops.
- :mod:`.folders`: :class:`ImageFolderDataset` serves a folder tree of images, optionally
  restricted to the ids listed in ``<root>/train.txt`` or ``<root>/test.txt``, at a fixed square
  size, with a horizontal flip and augmentation (:mod:`facefill.augment`) that are pure functions
  of (seed, epoch, index). :func:`carve_holdout` takes a seeded, fixed part of a split out for
  validation; the dataset serves either part.
- :mod:`.celeba`: :func:`prepare_celeba` turns a CelebA download into such a folder: square face
  crops at ``size`` x ``size`` saved as PNG (or JPEG), ``train.txt`` / ``test.txt`` and
  ``prepare.json``.

:mod:`.errors` holds :class:`DatasetError` and :class:`ImageReadError`.
"""

from .celeba import CELEBA_BBOX_HEADER, PrepareResult, prepare_celeba, read_celeba_bboxes
from .errors import DatasetError, ImageReadError
from .folders import ImageFolderDataset, carve_holdout, flip_decision, read_id_list, scan_images
from .images import IMAGE_EXTENSIONS, PathLike, center_crop_resize, face_box_crop, image_to_tensor, load_image

__all__ = [
    "CELEBA_BBOX_HEADER", "DatasetError", "IMAGE_EXTENSIONS", "ImageFolderDataset", "ImageReadError",
    "PathLike", "PrepareResult", "carve_holdout", "center_crop_resize", "face_box_crop", "flip_decision",
    "image_to_tensor", "load_image", "prepare_celeba", "read_celeba_bboxes", "read_id_list", "scan_images",
]
