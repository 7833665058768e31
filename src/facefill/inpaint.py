"""Inpaint real photos: :class:`Inpainter`, the entry point the CLI and the web page call.

``Inpainter.from_pretrained(path)(image, mask)`` fills the hole of one image or a batch.
Everything a user may hold is accepted and given back in the same kind: a file path (given
back as a ``PIL.Image``), a ``PIL.Image``, a numpy array (H, W) or (H, W, C), uint8, uint16 or
float in [0, 1], a torch tensor (C, H, W) float in [0, 1]; a list of any of these, a batched
array (N, H, W, C) or a batched tensor (B, C, H, W).

How a photo is inpainted (``aligned=False``):

1. The mask is read as values in [0, 1] and thresholded: **values above ``threshold`` (0.5) are
   the hole** (white = hole; ``invert_mask=True`` for black = hole). A mask of another size
   than the image is resized to it (bilinear, then thresholded) with a warning, unless its
   aspect ratio differs by more than 2 %, which is refused as the wrong mask. 8-bit and
   16-bit masks are scaled by 255 / 65535, except that integer masks holding only 0 and 1
   are read as 0 / 1. A mask with transparency (strokes on a transparent canvas) is read
   from its alpha channel. One mask serves every image of a batch, or pass a list, a
   tensor (B, 1, H, W) or an array (N, H, W).
2. The hole is grown by ``dilate`` pixels; ``feather`` pixels around the grown hole blend
   the result into the photo (0 = hard composite). Pixels farther than ``dilate + feather``
   from the hole come back bit-identical.
3. Faces are found with OpenCV's bundled Haar cascade. The face whose crop holds most of the
   hole is chosen (or the nearest one, if its crop is within half a crop side of the hole).
   Its crop is framed like the training faces (``FACE_CROP_SCALE`` x the detector's box,
   box centre at ``FACE_CENTER_Y`` of the crop's height: calibrated by running the cascade on
   faces128, whose crops are 1.8 x dlib's box with the eyes at 40 %), grown to a square that
   also holds the hole and a margin, resized to the model's training size, inpainted,
   resized back and pasted into the hole region only.
   No face near the hole: a square of twice the hole's size around it is inpainted instead,
   with a warning and ``mode="no_face"`` in the returned info.
4. ``aligned=True`` skips detection: the image is already a face crop; it is resized so its
   shorter side is the model's size (if it is not already) and pasted back the same way.

Decisions, for the record:

- **Empty mask**: the input comes back unchanged (a copy), with a warning.
- **All-hole mask**: refused (:class:`~facefill.errors.InputError`): there is nothing to
  condition on.
- **Too large**: images over ``MAX_SIDE`` (8192) pixels on a side or ``MAX_PIXELS`` (50 MP)
  are refused; downscale them first.
- **Colour modes**: RGB stays RGB. RGBA / LA keep their alpha channel untouched; the model
  sees the colour composited onto white (as in training). Greyscale (L, 16-bit I;16, numpy
  (H, W) or (H, W, 1), tensors (1, H, W)) comes back greyscale (the fill is converted with
  ITU-R 601 luma). Palette images come back RGB (RGBA when they have transparency). Other
  modes (CMYK, YCbCr, ...) come back RGB.
- **EXIF orientation** of paths and PIL images is applied first; the output is upright.
- ``seed``: APFI has no randomness at inference; the seed is accepted and, when given, the
  model runs under a forked, seeded torch RNG, so a stochastic model would be deterministic
  too and the caller's global RNG is left as it was.
- ``precision``: ``"auto"`` (default) runs bf16 where the hardware computes it natively (a
  CUDA GPU, a CPU with AVX512-BF16 or AMX) and float32 elsewhere; ``"bf16"`` / ``"fp32"`` force
  one (``"fp16"``: CUDA only). See :func:`facefill._device.resolve_precision`. The output is
  float32 whatever the precision, composited in float32, so the known pixels are the input's.
- What happened to each image is in ``inpainter.last_info`` (a list of :class:`InpaintInfo`)
  and, with ``return_info=True``, returned as ``(result, infos)``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from ._device import precision_name, resolve_device, resolve_precision
from ._inference import prepare_model, run_generator
from .checkpoint import CheckpointError, load_weights
from .data import ImageReadError
from .errors import InputError
from .models.base import InpaintingGenerator

__all__ = [
    "Inpainter",
    "InpaintInfo",
    "InpaintWarning",
    "WeightsNotFoundError",
    "DEMO_WEIGHTS",
    "detect_faces",
    "open_image",
    "read_mask",
]

logger = logging.getLogger("facefill.inpaint")

#: The bundled demo weights, relative to the ``facefill`` package.
DEMO_WEIGHTS = "weights/apfi_small_celeba_faces128.safetensors"
#: Model size used when a weights file does not record its training size.
DEFAULT_SIZE = 256
#: Larger images are refused.
MAX_SIDE = 8192
MAX_PIXELS = 50_000_000
#: Face crop framing relative to the Haar cascade's box (see the module docstring).
FACE_CROP_SCALE = 1.6
FACE_CENTER_Y = 0.46
#: Detection runs on a copy whose longer side is at most this (upscaled 2x below 320 px).
DETECT_MAX_SIDE = 1024

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_PathLike = (str, os.PathLike)


class WeightsNotFoundError(CheckpointError):
    """The requested weights file (or the bundled demo weights) is not there."""


class InpaintWarning(UserWarning):
    """Something about an input was handled in a way the caller may not expect."""


@dataclass
class InpaintInfo:
    """What :class:`Inpainter` did with one image.

    ``mode``: ``"face"`` (a detected face was cropped), ``"aligned"``, ``"no_face"`` (no face
    near the hole: a crop around the hole was inpainted) or ``"empty_mask"`` (nothing done).
    ``crop``: (left, top, right, bottom) in image pixels of the region given to the model
    (may reach outside the image; that part is edge-replicated). ``face``: the chosen
    detector box (x, y, w, h). ``hole_fraction``: share of the image's pixels in the hole.
    ``precision``: what the model ran in (``"bf16"``, ``"fp16"`` or ``"fp32"``); ``None`` when
    the model did not run (an empty mask).
    """

    mode: str
    size: tuple[int, int]  # (width, height) of the image
    crop: tuple[int, int, int, int] | None = None
    face: tuple[int, int, int, int] | None = None
    faces_detected: int = 0
    hole_fraction: float = 0.0
    mask_resized: bool = False
    precision: str | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Inputs: every kind of image becomes a canvas that can give back the same kind
# ---------------------------------------------------------------------------------------------


@dataclass
class _Canvas:
    """One image: its pixels in their own dtype, and how to rebuild the caller's kind."""

    pixels: np.ndarray  # (H, W, C), untouched input values
    ncolor: int  # 1 (grey) or 3 (RGB); a channel after them is alpha, never changed
    scale: float  # value of full intensity: 255, 65535 or 1.0
    rebuild: Callable[[np.ndarray], Any]
    name: str

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    def rgb(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """float32 (h, w, 3) in [0, 1] of ``box``, alpha composited onto white, edge padded."""
        x0, y0, x1, y1 = box
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x1, self.width), min(y1, self.height)
        f = self.pixels[cy0:cy1, cx0:cx1].astype(np.float32) / np.float32(self.scale)
        color = f[..., : self.ncolor]
        if self.ncolor == 1:
            color = np.repeat(color, 3, axis=2)
        if f.shape[2] > self.ncolor:
            a = f[..., self.ncolor : self.ncolor + 1]
            color = color * a + (1.0 - a)
        color = np.clip(color, 0.0, 1.0)
        pad = ((cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1), (0, 0))
        if any(p for pair in pad for p in pair):
            color = np.pad(color, pad, mode="edge")
        return color

    def grey_u8(self, max_side: int) -> tuple[np.ndarray, float]:
        """Greyscale uint8 copy for detection, and its scale relative to the image."""
        import cv2

        scale = min(1.0, max_side / max(self.width, self.height))
        if max(self.width, self.height) < 320:
            scale = 2.0
        a = self.pixels
        if a.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            a = a.astype(np.float32)
        if scale != 1.0:
            size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            a = cv2.resize(a, size, interpolation=interp)
            if a.ndim == 2:
                a = a[:, :, None]
        small = _Canvas(a, self.ncolor, self.scale, self.rebuild, self.name)
        rgb = small.rgb((0, 0, small.width, small.height))
        grey = np.rint(np.clip(rgb @ _LUMA, 0, 1) * 255).astype(np.uint8)
        return grey, scale

    def merged(self, new_rgb: np.ndarray, alpha: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        """A copy of the pixels with ``new_rgb`` blended in by ``alpha`` at ``origin``.

        Only pixels where ``alpha > 0`` are written; every other value is copied unchanged.
        """
        out = self.pixels.copy()
        x0, y0 = origin
        h, w = alpha.shape
        region = out[y0 : y0 + h, x0 : x0 + w, : self.ncolor]
        new = new_rgb if self.ncolor == 3 else (new_rgb @ _LUMA)[..., None]
        work = np.float64 if self.pixels.dtype == np.float64 else np.float32
        a = alpha[..., None].astype(work)
        old = region.astype(work) / work(self.scale)
        v = np.clip(old * (1 - a) + new.astype(work) * a, 0.0, 1.0)
        if np.issubdtype(out.dtype, np.integer):
            v = np.rint(v * self.scale)
        sel = alpha > 0
        region[sel] = v[sel].astype(out.dtype)
        return out


def _check_size(w: int, h: int, name: str) -> None:
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise InputError(
            f"{name} is {w}x{h} pixels; the limit is {MAX_SIDE} px on a side and "
            f"{MAX_PIXELS // 1_000_000} MP; downscale it first"
        )
    if w < 1 or h < 1:
        raise InputError(f"{name} is empty ({w}x{h} pixels)")


def open_image(path: str | os.PathLike, name: str = "image") -> Image.Image:
    """Open an image file upright (EXIF orientation applied), keeping its mode.

    Raises :class:`~facefill.data.ImageReadError` when it cannot be read and
    :class:`~facefill.errors.InputError` when it is larger than the limits.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            _check_size(im.width, im.height, f"{name} {path}")
            im.load()
            upright = ImageOps.exif_transpose(im)
            return upright.copy() if upright is im else upright
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"cannot read {name} {path}: {e}") from None


def _pil_canvas(im: Image.Image, name: str) -> _Canvas:
    _check_size(im.width, im.height, name)
    im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("RGB", "RGBA", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N"):
        im = im.convert("RGB")
    mode = im.mode
    if mode.startswith("I;16"):
        a = np.asarray(im).astype(np.uint16)[:, :, None]
        return _Canvas(a, 1, 65535.0, lambda p: Image.fromarray(p[:, :, 0]), name)
    if mode == "I":
        a = np.asarray(im, dtype=np.int32)[:, :, None]
        # 16-bit data decoded to 32-bit; values above 65535 are clipped where the fill goes.
        return _Canvas(a, 1, 65535.0, lambda p: Image.fromarray(p[:, :, 0]), name)
    a = np.asarray(im, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    ncolor = 1 if mode in ("L", "LA") else 3

    def rebuild(p: np.ndarray) -> Image.Image:
        return Image.fromarray(p[:, :, 0] if p.shape[2] == 1 else p)

    return _Canvas(a, ncolor, 255.0, rebuild, name)


def _array_scale(a: np.ndarray, name: str) -> float:
    if a.dtype == np.uint8:
        return 255.0
    if a.dtype == np.uint16:
        return 65535.0
    if a.dtype.kind == "f":
        if a.size and not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1):
            raise InputError(
                f"{name}: float arrays must hold values in [0, 1], got [{a.min():.3g}, "
                f"{a.max():.3g}]; divide 8-bit data by 255"
            )
        return 1.0
    raise InputError(f"{name}: dtype {a.dtype} is not supported; use uint8, uint16 or float in [0, 1]")


def _numpy_canvas(a: np.ndarray, name: str) -> _Canvas:
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
        raise InputError(
            f"{name}: expected an array (H, W) or (H, W, C) with C in 1-4, got shape {a.shape}"
        )
    _check_size(a.shape[1], a.shape[0], name)
    scale = _array_scale(a, name)
    two_d = a.ndim == 2
    pixels = a[:, :, None] if two_d else a
    ncolor = 1 if pixels.shape[2] <= 2 else 3

    def rebuild(p: np.ndarray) -> np.ndarray:
        return p[:, :, 0] if two_d else p

    return _Canvas(pixels, ncolor, scale, rebuild, name)


def _tensor_canvas(t: torch.Tensor, name: str) -> _Canvas:
    if t.dim() != 3 or t.shape[0] not in (1, 2, 3, 4):
        raise InputError(f"{name}: expected a tensor (C, H, W) with C in 1-4, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise InputError(f"{name}: tensors must be float in [0, 1], got dtype {t.dtype}; use t.float() / 255")
    dtype, device = t.dtype, t.device
    src = t.detach().cpu()
    if dtype in (torch.float16, torch.bfloat16):
        src = src.float()  # exact, and exactly undone by the cast back
    a = src.permute(1, 2, 0).numpy()
    canvas = _numpy_canvas(a, name)
    canvas.rebuild = lambda p: (
        torch.from_numpy(np.ascontiguousarray(p)).permute(2, 0, 1).to(device=device, dtype=dtype)
    )
    return canvas


def _canvas(x: Any, name: str) -> _Canvas:
    if isinstance(x, _PathLike):
        return _pil_canvas(open_image(x, "image"), f"{name} {x}")
    if isinstance(x, Image.Image):
        return _pil_canvas(x, name)
    if isinstance(x, np.ndarray):
        return _numpy_canvas(x, name)
    if isinstance(x, torch.Tensor):
        return _tensor_canvas(x, name)
    raise InputError(
        f"{name}: expected a path, PIL image, numpy array or torch tensor, got {type(x).__name__}"
    )


def _split_images(image: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """Items of a single or batched input, and how to pack the outputs like the input."""
    if isinstance(image, (list, tuple)):
        if not image:
            raise InputError("image is an empty list; pass at least one image")
        return list(image), list
    if isinstance(image, np.ndarray) and image.ndim == 4:
        if image.shape[0] == 0:
            raise InputError("image is an empty batch (N = 0)")
        return list(image), lambda outs: np.stack(outs)
    if isinstance(image, torch.Tensor) and image.dim() == 4:
        if image.shape[0] == 0:
            raise InputError("image is an empty batch (B = 0)")
        return list(image.unbind(0)), lambda outs: torch.stack(outs)
    return [image], lambda outs: outs[0]


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def _mask_values(x: Any, name: str) -> np.ndarray:
    """float32 (H, W) in [0, 1], before thresholding."""
    if isinstance(x, _PathLike):
        x = open_image(x, "mask")
    if isinstance(x, Image.Image):
        im = ImageOps.exif_transpose(x)
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode in ("LA", "PA", "RGBA"):
            alpha = np.asarray(im.getchannel("A"))
            if alpha.min() < 255:  # strokes painted on a transparent canvas
                return alpha.astype(np.float32) / 255.0
            im = im.convert("L")
        if im.mode == "I":
            x = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        elif im.mode in ("1", "L", "RGB", "F") or im.mode.startswith("I;16"):
            x = np.asarray(im)
        else:
            x = np.asarray(im.convert("L"))
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.dim() == 3 and t.shape[0] in (1, 3, 4):
            t = t.permute(1, 2, 0)
        x = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).numpy()
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name}: expected a path, PIL image, numpy array or torch tensor, got {type(x).__name__}")
    a = x
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[:, :, :1] if a.shape[2] == 1 else a[:, :, :3]
    elif a.ndim != 2:
        raise InputError(f"{name}: expected a mask (H, W), (H, W, C) or (1, H, W), got shape {x.shape}")
    if a.dtype == np.bool_ or (a.dtype.kind in "iu" and a.size and a.min() >= 0 and a.max() <= 1):
        scale = 1.0  # bool, or integers holding only 0 and 1
    else:
        scale = _array_scale(a, name)
    f = a.astype(np.float32)
    f = f[:, :, 0] if f.ndim == 3 and f.shape[2] == 1 else (f @ _LUMA if f.ndim == 3 else f)
    return f / np.float32(scale)


def _split_masks(mask: Any, n: int) -> list[Any]:
    if isinstance(mask, (list, tuple)):
        if len(mask) != n:
            raise InputError(f"mask: got {len(mask)} masks for {n} images")
        return list(mask)
    if isinstance(mask, np.ndarray):
        batched = mask.ndim == 4 or (mask.ndim == 3 and mask.shape[2] not in (1, 3, 4))
    elif isinstance(mask, torch.Tensor):
        batched = mask.dim() == 4 or (mask.dim() == 3 and mask.shape[0] not in (1, 3, 4))
    else:
        batched = False
    if batched:
        items = list(mask)
        if len(items) == 1:
            return items * n
        if len(items) != n:
            raise InputError(f"mask: batch of {len(items)} masks for {n} images")
        return items
    return [mask] * n


def read_mask(
    mask: Any,
    size: tuple[int, int] | None = None,
    *,
    invert: bool = False,
    threshold: float = 0.5,
    name: str = "mask",
) -> tuple[np.ndarray, bool]:
    """Binary hole map (H, W) bool, 1 = hole, and whether it had to be resized.

    ``size`` is the image's (width, height): a mask of another size is resized to it
    (bilinear, then thresholded) with a warning; an aspect ratio that differs by more than
    2 % is refused. Values above ``threshold`` are the hole (after ``invert``).
    """
    if not 0.0 <= threshold < 1.0:
        raise InputError(f"threshold must be in [0, 1), got {threshold}")
    m = _mask_values(mask, name)
    if invert:
        m = 1.0 - m
    resized = False
    if size is not None and (m.shape[1], m.shape[0]) != tuple(size):
        w, h = size
        mh, mw = m.shape
        if abs((mw / mh) / (w / h) - 1) > 0.02:
            raise InputError(
                f"{name} is {mw}x{mh} but the image is {w}x{h}: the aspect ratios differ; "
                "pass the mask drawn for this image"
            )
        warnings.warn(f"{name} is {mw}x{mh}, resized to the image's {w}x{h}", InpaintWarning, stacklevel=3)
        t = torch.from_numpy(np.ascontiguousarray(m))[None, None]
        down = mh > h or mw > w
        m = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=down)[0, 0].numpy()
        resized = True
    return m > threshold, resized


# ---------------------------------------------------------------------------------------------
# Faces
# ---------------------------------------------------------------------------------------------

_CASCADE = None


def _cascade():
    global _CASCADE
    if _CASCADE is None:
        import cv2

        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise CheckpointError(f"OpenCV's face cascade {path} could not be loaded")
        _CASCADE = cascade
    return _CASCADE


def detect_faces(grey: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in a greyscale uint8 image (OpenCV's frontal Haar cascade)."""
    import cv2

    eq = cv2.equalizeHist(grey)
    boxes = _cascade().detectMultiScale(eq, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    return [tuple(int(v) for v in b) for b in boxes]


def _face_square(face: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = face
    side = max(1, round(FACE_CROP_SCALE * w))
    left = math.floor(x + w / 2 - side / 2 + 0.5)
    top = math.floor(y + h / 2 - FACE_CENTER_Y * side + 0.5)
    return left, top, left + side, top + side


def _rect_gap(a: Sequence[int], b: Sequence[int]) -> float:
    dx = max(a[0] - b[2], b[0] - a[2], 0)
    dy = max(a[1] - b[3], b[1] - a[3], 0)
    return math.hypot(dx, dy)


def _square_around(box: Sequence[int], side: int) -> tuple[int, int, int, int]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left, top = math.floor(cx - side / 2 + 0.5), math.floor(cy - side / 2 + 0.5)
    return left, top, left + side, top + side


# ---------------------------------------------------------------------------------------------
# The inpainter
# ---------------------------------------------------------------------------------------------


@dataclass
class _Job:
    canvas: _Canvas
    info: InpaintInfo
    crop: tuple[int, int, int, int]
    model_hw: tuple[int, int]
    alpha: np.ndarray | None = None  # blend weights over `region`
    region: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) inside the image
    model_hole: np.ndarray | None = None  # bool over `region`
    result: np.ndarray | None = None  # float32 (h, w, 3) over `region`


class Inpainter:
    """Fill holes in face photos with a facefill generator.

    Build it with :meth:`from_pretrained` (a weights file, or the bundled demo weights) or
    directly from a generator: ``Inpainter(model, size=256)``. Call it as
    ``inpainter(image, mask, ...)``; see the module docstring for what it accepts, how faces
    are handled and what it decides for unusual inputs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        size: int = DEFAULT_SIZE,
        device: str | torch.device | None = None,
        batch_size: int = 8,
        meta: dict[str, str] | None = None,
        precision: str | None = "auto",
    ) -> None:
        self.device = resolve_device(device)
        #: The autocast dtype (``None``: float32) and its name, from ``precision``.
        self.dtype = resolve_precision(precision, self.device)
        self.precision = precision_name(self.dtype)
        self.model = prepare_model(model.to(self.device).eval(), self.dtype)
        stride = int(getattr(model, "stride", 1))
        self.stride = stride
        self.size = max(stride, -(-int(size) // stride) * stride)
        self.batch_size = batch_size
        self.meta = dict(meta or {})
        self.last_info: list[InpaintInfo] = []
        params = inspect.signature(getattr(model, "predict", model.forward)).parameters
        self._takes_cycles = "cycles" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        *,
        expected_sha256: str | None = None,
        batch_size: int = 8,
        precision: str | None = "auto",
    ) -> "Inpainter":
        """Load a facefill weights file (``path=None``: the bundled demo weights).

        The model's working size is the training size recorded in the file
        (``train_config.data.size``), else 256. Raises :class:`WeightsNotFoundError` when
        the file is missing and :class:`~facefill.checkpoint.CheckpointError` when it is not
        a facefill safetensors file or fails its sha256. ``precision``: ``"auto"``, ``"bf16"``,
        ``"fp32"`` (or ``"fp16"`` on CUDA), refused with an :class:`InputError` before the load.
        """
        if path is None:
            res = resources.files("facefill").joinpath(DEMO_WEIGHTS)
            if not res.is_file():
                raise WeightsNotFoundError(
                    f"the demo weights are not bundled with this installation of facefill "
                    f"(facefill/{DEMO_WEIGHTS}); pass a weights file, e.g. "
                    "Inpainter.from_pretrained('runs/faces/apfi_small.safetensors') or --weights FILE"
                )
            with resources.as_file(res) as p:
                return cls.from_pretrained(
                    p, device, expected_sha256=expected_sha256, batch_size=batch_size, precision=precision
                )
        path = Path(path)
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file {path} does not exist")
        resolve_precision(precision, resolve_device(device))  # refuse a bad device or precision before the load
        model, meta = load_weights(path, expected_sha256=expected_sha256)
        if not isinstance(model, InpaintingGenerator):
            raise CheckpointError(f"{path} holds a {meta.get('model')!r} model, not an inpainting generator")
        return cls(model, size=_train_size(meta), device=device, batch_size=batch_size, meta=meta, precision=precision)

    # -- the call ---------------------------------------------------------------------------

    def __call__(
        self,
        image: Any,
        mask: Any,
        *,
        cycles: int | None = None,
        seed: int | None = None,
        invert_mask: bool = False,
        aligned: bool = False,
        dilate: int = 0,
        feather: int = 3,
        threshold: float = 0.5,
        return_info: bool = False,
    ) -> Any:
        """Inpaint ``image`` where ``mask`` is 1 (white); returns the input's kind.

        Args:
            image: path, PIL image, numpy array, tensor, a list of them, or a batch.
            mask: one mask (used for every image), a list, or a batch; same kinds.
            cycles: APFI cycles at inference (default: the model's own).
            seed: seeds any randomness of the model (APFI has none).
            invert_mask: the mask's black (0) is the hole.
            aligned: the image is already an aligned face crop; skip face detection.
            dilate: grow the hole by this many pixels before inpainting.
            feather: blend over this many pixels outside the (grown) hole; 0 = hard edge.
            threshold: mask values above it are the hole.
            return_info: also return a list of :class:`InpaintInfo`.
        """
        for name, v in (("dilate", dilate), ("feather", feather)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise InputError(f"{name} must be a whole number of pixels >= 0, got {v!r}")
        if cycles is not None:
            if isinstance(cycles, bool) or not isinstance(cycles, (int, np.integer)) or cycles < 1:
                raise InputError(f"cycles must be a whole number >= 1, got {cycles!r}")
            if not self._takes_cycles:
                raise InputError(f"cycles: {type(self.model).__name__} has no cycle count")
        items, pack = _split_images(image)
        masks = _split_masks(mask, len(items))
        jobs = []
        for i, (item, m) in enumerate(zip(items, masks)):
            name = "image" if len(items) == 1 else f"image[{i}]"
            jobs.append(self._plan(item, m, name, aligned, int(dilate), int(feather), invert_mask, threshold))
        self._run([j for j in jobs if j.region is not None], cycles, seed)
        outs = []
        for job in jobs:
            c = job.canvas
            if job.region is None:
                outs.append(c.rebuild(c.pixels.copy()))
            else:
                outs.append(c.rebuild(c.merged(job.result, job.alpha, job.region[:2])))
        self.last_info = [j.info for j in jobs]
        result = pack(outs)
        return (result, self.last_info) if return_info else result

    # -- planning: mask, blend weights, crop ------------------------------------------------

    def _plan(self, item, mask, name, aligned, dilate, feather, invert, threshold) -> _Job:
        canvas = _canvas(item, name)
        W, H = canvas.width, canvas.height
        hole, resized = read_mask(mask, (W, H), invert=invert, threshold=threshold, name=f"mask of {name}")
        info = InpaintInfo(mode="empty_mask", size=(W, H), mask_resized=resized)
        count = int(hole.sum())
        info.hole_fraction = count / hole.size
        if count == 0:
            msg = f"the mask of {canvas.name} has no hole; the image is returned unchanged"
            info.notes.append(msg)
            warnings.warn(msg, InpaintWarning, stacklevel=3)
            return _Job(canvas, info, (0, 0, W, H), (0, 0))
        if count == hole.size:
            raise InputError(
                f"the mask of {canvas.name} covers the whole image: there is nothing to condition on"
            )
        region, model_hole, alpha = _blend_region(hole, dilate, feather)
        job = _Job(canvas, info, (0, 0, W, H), (0, 0), alpha=alpha, region=region, model_hole=model_hole)
        if aligned:
            info.mode = "aligned"
            job.crop = (0, 0, W, H)
            scale = self.size / min(W, H)
            job.model_hw = (self._fit(H * scale), self._fit(W * scale))
        else:
            job.crop = self._face_crop(canvas, hole, region, info)
            job.model_hw = (self.size, self.size)
        info.crop = job.crop
        return job

    def _fit(self, v: float) -> int:
        return max(self.stride, round(v / self.stride) * self.stride)

    def _face_crop(self, canvas: _Canvas, hole: np.ndarray, region, info: InpaintInfo):
        x0, y0, x1, y1 = region
        side = max(x1 - x0, y1 - y0)
        margin = max(8, round(0.125 * side))
        context = (x0 - margin, y0 - margin, x1 + margin, y1 + margin)
        face = self._find_face(canvas, hole, region, info)
        if face is not None:
            sq = _face_square(face)
            u = (min(sq[0], context[0]), min(sq[1], context[1]), max(sq[2], context[2]), max(sq[3], context[3]))
            if u == sq:
                return sq
            return _square_around(u, max(u[2] - u[0], u[3] - u[1]))
        W, H = canvas.width, canvas.height
        crop_side = max(2 * side, side + 2 * margin, min(self.size, max(W, H)))
        left, top, right, bottom = _square_around(region, crop_side)
        # Keep the square inside the photo where it fits: more real context, less padding.
        if crop_side <= W:
            left = min(max(left, 0), W - crop_side)
        if crop_side <= H:
            top = min(max(top, 0), H - crop_side)
        info.mode = "no_face"
        msg = f"no face found near the hole in {canvas.name}; inpainted a square around the hole"
        info.notes.append(msg)
        warnings.warn(msg, InpaintWarning, stacklevel=4)
        logger.info(msg)
        return left, top, left + crop_side, top + crop_side

    def _find_face(self, canvas: _Canvas, hole: np.ndarray, region, info: InpaintInfo):
        grey, scale = canvas.grey_u8(DETECT_MAX_SIDE)
        faces = self._faces_near(detect_faces(grey), scale, hole, region)
        if not faces[1]:
            # The hole may cover what the detector needs: fill it roughly and look again.
            import cv2

            small = cv2.resize(hole.astype(np.uint8), (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_NEAREST)
            small = cv2.dilate(small, np.ones((3, 3), np.uint8))
            filled = cv2.inpaint(grey, small, 3, cv2.INPAINT_TELEA)
            faces = self._faces_near(detect_faces(filled), scale, hole, region)
        all_faces, chosen = faces
        info.faces_detected = len(all_faces)
        if chosen is None:
            return None
        info.mode = "face"
        info.face = chosen
        return chosen

    @staticmethod
    def _faces_near(boxes, scale, hole, region):
        faces = [
            (round(x / scale), round(y / scale), max(1, round(w / scale)), max(1, round(h / scale)))
            for x, y, w, h in boxes
        ]
        H, W = hole.shape
        best, best_key = None, None
        for f in faces:
            sq = _face_square(f)
            cx0, cy0, cx1, cy1 = max(sq[0], 0), max(sq[1], 0), min(sq[2], W), min(sq[3], H)
            inside = int(hole[cy0:cy1, cx0:cx1].sum()) if cx0 < cx1 and cy0 < cy1 else 0
            gap = _rect_gap(sq, region)
            if inside == 0 and gap > 0.5 * (sq[2] - sq[0]):
                continue
            key = (inside, -gap)
            if best_key is None or key > best_key:
                best, best_key = f, key
        return faces, best

    # -- running the model ------------------------------------------------------------------

    def _run(self, jobs: list[_Job], cycles: int | None, seed: int | None) -> None:
        groups: dict[tuple[int, int], list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.model_hw, []).append(job)
        kwargs = {} if cycles is None else {"cycles": int(cycles)}
        rng = contextlib.nullcontext()
        if seed is not None:
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            rng = torch.random.fork_rng(devices=devices)
        with rng, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(int(seed))
            for hw, group in groups.items():
                for start in range(0, len(group), self.batch_size):
                    chunk = group[start : start + self.batch_size]
                    images, holes = zip(*(self._model_input(j, hw) for j in chunk))
                    image, hole = torch.cat(images).to(self.device), torch.cat(holes).to(self.device)
                    out = run_generator(self.model, image, hole, self.dtype, **kwargs)
                    # The composite again, in float32: the known pixels are the input's whatever
                    # the model did in reduced precision.
                    out = torch.where(hole > 0.5, out, image)
                    for j, o in zip(chunk, out.cpu()):
                        j.info.precision = self.precision
                        self._paste(j, o)

    def _model_input(self, job: _Job, hw: tuple[int, int]):
        x0, y0, x1, y1 = job.crop
        rgb = torch.from_numpy(job.canvas.rgb(job.crop)).permute(2, 0, 1)[None]
        # The hole over the crop, edge-padded like the pixels: where a hole touches the
        # photo's border, its replicated copies outside the photo are hole too.
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x1, job.canvas.width), min(y1, job.canvas.height)
        hole = np.zeros((cy1 - cy0, cx1 - cx0), dtype=np.float32)
        rx0, ry0, rx1, ry1 = job.region
        hole[ry0 - cy0 : ry1 - cy0, rx0 - cx0 : rx1 - cx0] = job.model_hole
        hole = np.pad(hole, ((cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1)), mode="edge")
        hole_t = torch.from_numpy(hole)[None, None]
        if (y1 - y0, x1 - x0) != hw:
            down = hw[0] < y1 - y0 or hw[1] < x1 - x0
            rgb = F.interpolate(rgb, size=hw, mode="bilinear", align_corners=False, antialias=down)
            # Bilinear weights are non-negative: any model pixel touched by the hole is a hole,
            # so no known model pixel is computed from hole content.
            hole_t = F.interpolate(hole_t, size=hw, mode="bilinear", align_corners=False, antialias=down)
            hole_t = (hole_t > 1e-6).float()
        return rgb.clamp(0, 1).contiguous(), hole_t

    def _paste(self, job: _Job, out: torch.Tensor) -> None:
        x0, y0, x1, y1 = job.crop
        if tuple(out.shape[1:]) != (y1 - y0, x1 - x0):
            down = out.shape[1] > y1 - y0 or out.shape[2] > x1 - x0
            size = (y1 - y0, x1 - x0)
            out = F.interpolate(out[None], size=size, mode="bicubic", align_corners=False, antialias=down)[0]
        rx0, ry0, rx1, ry1 = job.region
        out = out[:, ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0].clamp(0, 1)
        job.result = out.permute(1, 2, 0).numpy()


def _blend_region(hole: np.ndarray, dilate: int, feather: int):
    """Region (x0, y0, x1, y1) holding every changed pixel, the grown hole and the blend weights."""
    H, W = hole.shape
    ys, xs = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
    reach = dilate + feather + 1 if (dilate or feather) else 0
    x0, y0 = max(int(xs[0]) - reach, 0), max(int(ys[0]) - reach, 0)
    x1, y1 = min(int(xs[-1]) + 1 + reach, W), min(int(ys[-1]) + 1 + reach, H)
    sub = hole[y0:y1, x0:x1]
    if not reach:
        return (x0, y0, x1, y1), sub.copy(), sub.astype(np.float32)
    import cv2

    # Euclidean distance of every pixel to the nearest hole pixel (0 inside the hole).
    dist = cv2.distanceTransform((~sub).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    grown = dist <= dilate
    if feather:
        # Linear ramp from 1 at the grown hole to 1 / (feather + 1) at `feather` pixels out.
        alpha = np.clip(1.0 - (dist - dilate) / (feather + 1), 0.0, 1.0).astype(np.float32)
        alpha[grown] = 1.0
        alpha[dist > dilate + feather] = 0.0
    else:
        alpha = grown.astype(np.float32)
    ys, xs = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    tight = (x0 + int(xs[0]), y0 + int(ys[0]), x0 + int(xs[-1]) + 1, y0 + int(ys[-1]) + 1)
    sl = np.s_[tight[1] - y0 : tight[3] - y0, tight[0] - x0 : tight[2] - x0]
    return tight, grown[sl].copy(), alpha[sl].copy()


def _train_size(meta: dict[str, str]) -> int:
    try:
        cfg = json.loads(meta.get("train_config", "{}"))
        size = int(cfg.get("data", {}).get("size", DEFAULT_SIZE))
    except (ValueError, TypeError, AttributeError):
        return DEFAULT_SIZE
    return size if size > 0 else DEFAULT_SIZE
