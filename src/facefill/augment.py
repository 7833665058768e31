"""Training augmentation of face images: random zoom, shift and colour jitter.

Holds :class:`Augment`, the ``data.augment`` settings of the trainer's config, which
:class:`~facefill.data.ImageFolderDataset` applies to each decoded 8-bit image, after resizing
and the flip and before the float tensor is made. Every draw is a pure function of
(seed, epoch, index), like the flip, so a resumed run, another DataLoader worker or another rank
sees exactly the same samples. With every amplitude at 0 (the default) the image is returned
untouched, bit for bit.

No torchvision (it is not installable here): the geometry is one OpenCV affine warp, the colour
jitter numpy arithmetic on the uint8 array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["Augment"]

_MASK64 = (1 << 64) - 1
_SALT = 0x6175676D  # "augm": keeps these draws apart from any other use of (seed, epoch, index)

# Luma weights (ITU-R BT.601), for the contrast mean and the saturation's grey.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Augment:
    """Amplitudes of the training augmentation; 0 turns a part off.

    - ``scale``: zoom in by a factor drawn uniformly from [1, 1 + scale] about the image centre,
      cropped back to the same size (bicubic). At most 1 (2x zoom).
    - ``shift``: translate by whole pixels, each axis drawn uniformly from
      [-shift, shift] x side. Pixels that come in from outside are the image mirrored at its
      border (OpenCV's BORDER_REFLECT_101), not black, so no flat block enters training. At
      most 0.5.
    - ``color``: brightness (multiply by b), contrast (scale about the mean luma by c) and
      saturation (blend with the per-pixel luma by s), each factor drawn from
      [1 - color, 1 + color], applied in that order, then rounded and clipped to [0, 255].
      At most 1.

    The six numbers of a sample are always drawn, in the same order, from
    ``numpy.random.default_rng([salt, seed, epoch, index])``, so changing one amplitude never
    changes the other parts' draws.
    """

    scale: float = 0.0
    shift: float = 0.0
    color: float = 0.0

    def __post_init__(self) -> None:
        for name, top in (("scale", 1.0), ("shift", 0.5), ("color", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise InputError(f"augment.{name} must be a number in [0, {top:g}], got {value!r}")
            if not (math.isfinite(value) and 0.0 <= value <= top):
                raise InputError(f"augment.{name} must be in [0, {top:g}], got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def enabled(self) -> bool:
        """Whether any part is on."""
        return bool(self.scale or self.shift or self.color)

    def draw(self, seed: int, epoch: int, index: int) -> tuple[float, int, int, float, float, float]:
        """The sample's draws ``(zoom, shift_x, shift_y, brightness, contrast, saturation)``:
        the shifts as fractions of the side in [-shift, shift], the others as factors."""
        u = np.random.default_rng([_SALT, int(seed) & _MASK64, int(epoch), int(index)]).random(6)
        c = self.color
        return (
            1.0 + self.scale * float(u[0]),
            self.shift * (2.0 * float(u[1]) - 1.0),
            self.shift * (2.0 * float(u[2]) - 1.0),
            1.0 + c * (2.0 * float(u[3]) - 1.0),
            1.0 + c * (2.0 * float(u[4]) - 1.0),
            1.0 + c * (2.0 * float(u[5]) - 1.0),
        )

    def apply(self, image: np.ndarray, seed: int, epoch: int, index: int) -> np.ndarray:
        """Augment one (H, W, 3) uint8 RGB array; returns a new uint8 array of the same shape.

        Returns ``image`` itself when every amplitude is 0.
        """
        if not self.enabled:
            return image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"augment expects an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
        zoom, fx, fy, bright, contrast, sat = self.draw(seed, epoch, index)
        h, w = image.shape[:2]
        tx, ty = int(round(fx * w)), int(round(fy * h))
        out = image
        if zoom != 1.0 or tx or ty:
            out = _warp(out, zoom, tx, ty)
        if self.color:
            out = _jitter(out, bright, contrast, sat)
        return out


def _warp(image: np.ndarray, zoom: float, tx: int, ty: int) -> np.ndarray:
    """Zoom about the centre and translate: dst = zoom * (src - centre) + centre + (tx, ty)."""
    import cv2

    h, w = image.shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    matrix = np.array(
        [[zoom, 0.0, (1.0 - zoom) * cx + tx], [0.0, zoom, (1.0 - zoom) * cy + ty]], dtype=np.float64
    )
    return cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )


def _jitter(image: np.ndarray, bright: float, contrast: float, sat: float) -> np.ndarray:
    f = image.astype(np.float32) * np.float32(bright)
    mean = np.float32((f @ _LUMA).mean())
    f = (f - mean) * np.float32(contrast) + mean
    grey = (f @ _LUMA)[..., None]
    f = (f - grey) * np.float32(sat) + grey
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)
