"""Photos in, photos out: every image kind a caller may hold becomes a :class:`Canvas`.

A canvas keeps the input's own pixels (uint8, uint16, float; grey, RGB, with or without alpha)
and knows how to give back the caller's kind (path -> PIL image, PIL, numpy, tensor) with only
the filled pixels changed. Also here: :func:`open_image` (EXIF-upright), the size limits, and
how results are shown (:func:`compare_strip`, :func:`box_text`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..data import ImageReadError
from ..errors import InputError

__all__ = ["Canvas", "open_image", "to_canvas", "split_images", "compare_strip", "box_text", "MAX_SIDE", "MAX_PIXELS", "LUMA"]

#: Larger images are refused.
MAX_SIDE = 8192
MAX_PIXELS = 50_000_000

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_PathLike = (str, os.PathLike)

@dataclass
class Canvas:
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

    def rgb_u8(self, max_side: int) -> tuple[np.ndarray, float]:
        """uint8 RGB copy (alpha onto white) for detection, longer side at most ``max_side``,
        and its scale relative to the image."""
        import cv2

        scale = min(1.0, max_side / max(self.width, self.height))
        a = self.pixels
        if a.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            a = a.astype(np.float32)
        if scale != 1.0:
            size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
            a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
            if a.ndim == 2:
                a = a[:, :, None]
        small = Canvas(a, self.ncolor, self.scale, self.rebuild, self.name)
        rgb = small.rgb((0, 0, small.width, small.height))
        return np.rint(rgb * 255).astype(np.uint8), scale

    def merged(self, new_rgb: np.ndarray, alpha: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        """A copy of the pixels with ``new_rgb`` blended in by ``alpha`` at ``origin``."""
        out = self.pixels.copy()
        self.blend_into(out, new_rgb, alpha, origin)
        return out

    def blend_into(self, out: np.ndarray, new_rgb: np.ndarray, alpha: np.ndarray, origin: tuple[int, int]) -> None:
        """Blend ``new_rgb`` (h, w, 3) float in [0, 1] into ``out`` (pixels like this canvas's)
        by ``alpha`` (h, w) at ``origin`` (x, y), in place.

        Only pixels where ``alpha > 0`` are written; every other value is left as it was.
        """
        x0, y0 = origin
        h, w = alpha.shape
        region = out[y0 : y0 + h, x0 : x0 + w, : self.ncolor]
        new = new_rgb if self.ncolor == 3 else (new_rgb @ LUMA)[..., None]
        work = np.float64 if self.pixels.dtype == np.float64 else np.float32
        sel = alpha > 0
        a = alpha[sel][:, None].astype(work)
        old = region[sel].astype(work) / work(self.scale)
        v = np.clip(old * (1 - a) + new[sel].astype(work) * a, 0.0, 1.0)
        if np.issubdtype(out.dtype, np.integer):
            v = np.rint(v * self.scale)
        region[sel] = v.astype(out.dtype)


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


def _pil_canvas(im: Image.Image, name: str) -> Canvas:
    _check_size(im.width, im.height, name)
    im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode == "F":  # converting it would clip its floats to 0-255: a black or white image
        raise InputError(
            f"{name}: 32-bit float images (mode F) are not supported; save it as 8- or 16-bit, "
            "or pass a float array in [0, 1] to the Python API"
        )
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
        return Canvas(a, 1, 65535.0, lambda p: Image.fromarray(p[:, :, 0]), name)
    if mode == "I":
        a = np.asarray(im, dtype=np.int32)[:, :, None]
        # 16-bit data decoded to 32-bit; values above 65535 are clipped where the fill goes.
        return Canvas(a, 1, 65535.0, lambda p: Image.fromarray(p[:, :, 0]), name)
    a = np.asarray(im, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    ncolor = 1 if mode in ("L", "LA") else 3

    def rebuild(p: np.ndarray) -> Image.Image:
        return Image.fromarray(p[:, :, 0] if p.shape[2] == 1 else p)

    return Canvas(a, ncolor, 255.0, rebuild, name)


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


def _numpy_canvas(a: np.ndarray, name: str) -> Canvas:
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

    return Canvas(pixels, ncolor, scale, rebuild, name)


def _tensor_canvas(t: torch.Tensor, name: str) -> Canvas:
    if t.dim() != 3 or t.shape[0] not in (1, 2, 3, 4):
        raise InputError(f"{name}: expected a tensor (C, H, W) with C in 1-4, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise InputError(f"{name}: tensors must be float in [0, 1], got dtype {t.dtype}; use t.float() / 255")
    if t.device.type == "meta":
        raise InputError(f"{name} is a tensor on the meta device, which holds no values; pass a cpu or cuda tensor")
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


def to_canvas(x: Any, name: str) -> Canvas:
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


def split_images(image: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
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




#: White columns between the panels of a comparison strip.
STRIP_GAP = 8


def compare_strip(original: np.ndarray, hole: np.ndarray, *results: np.ndarray) -> np.ndarray:
    """The comparison strip of ``facefill inpaint --compare`` and ``facefill demo``: the masked
    photo (hole painted white) | each result | the original, uint8 RGB (H, W, 3) arrays side
    by side with white gaps."""
    masked = original.copy()
    masked[hole.astype(bool)] = 255
    gap = np.full((original.shape[0], STRIP_GAP, 3), 255, np.uint8)
    panels = [masked, *results, original]
    return np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)


def box_text(box: tuple[int, int, int, int]) -> str:
    """A face box (x, y, w, h) in the one labelled form facefill prints: ``x=.. y=.. w=.. h=..``."""
    x, y, w, h = (int(round(v)) for v in box)
    return f"x={x} y={y} w={w} h={h}"
