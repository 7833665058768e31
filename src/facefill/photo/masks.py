"""Masks: what the caller drew becomes a boolean hole map; the hole grown and feathered.

:func:`read_mask` reads any mask kind (white = hole, ``invert`` for black), resizes a mask of
another size with a warning, and thresholds it. :func:`blend_region` grows the hole by
``dilate`` and ramps the blend weights over ``feather`` pixels: every pixel it leaves at weight
0 comes back bit-identical.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..errors import InputError
from .images import LUMA, _PathLike, _array_scale, open_image

__all__ = ["read_mask", "split_masks", "blend_region", "mask_bbox", "InpaintWarning"]


class InpaintWarning(UserWarning):
    """Something about an input was handled in a way the caller may not expect."""


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
        if x.device.type == "meta":
            raise InputError(f"{name} is a tensor on the meta device, which holds no values; pass a cpu or cuda tensor")
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
        raise InputError(
            f"{name}: expected a mask (H, W), (H, W, C) with C 1, 3 or 4, or a tensor (1, H, W); got shape {tuple(x.shape)}"
        )
    if a.dtype == np.bool_ or (a.dtype.kind in "iu" and a.size and a.min() >= 0 and a.max() <= 1):
        scale = 1.0  # bool, or integers holding only 0 and 1
    else:
        scale = _array_scale(a, name)
    f = a.astype(np.float32)
    f = f[:, :, 0] if f.ndim == 3 and f.shape[2] == 1 else (f @ LUMA if f.ndim == 3 else f)
    return f / np.float32(scale)


def split_masks(mask: Any, n: int) -> list[Any]:
    if isinstance(mask, (list, tuple)):
        if len(mask) != n:
            raise InputError(f"mask: got {len(mask)} masks for {n} images")
        return list(mask)
    # A 3-D array is one mask (H, W, C) when its last axis can be a channel axis (at most 4;
    # a wrong count is refused by name later), else a batch (N, H, W). A 3-D tensor is one
    # mask (C, H, W) for C in 1, 3, 4, else a batch (N, H, W).
    if isinstance(mask, np.ndarray):
        batched = mask.ndim == 4 or (mask.ndim == 3 and mask.shape[2] > 4)
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




def blend_region(hole: np.ndarray, dilate: int, feather: int):
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


def mask_bbox(sel: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) bounding the True pixels of ``sel`` (H, W), shifted by ``origin``; None if none."""
    ys, xs = np.nonzero(sel.any(axis=1))[0], np.nonzero(sel.any(axis=0))[0]
    if not len(ys):
        return None
    ox, oy = origin
    return ox + int(xs[0]), oy + int(ys[0]), ox + int(xs[-1]) + 1, oy + int(ys[-1]) + 1
