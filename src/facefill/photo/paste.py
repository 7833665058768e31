"""Paste-back: which face owns which hole pixel, the classical fill off the faces, the blend.

A hole pixel belongs to the face whose aligned crop holds it inside a margin of
``TERRITORY_MARGIN`` of the crop side (where the model has context all round); where several
crops hold it, to the face whose crop centre is nearest in crop units. Hole pixels that no
face owns are the *background*, filled by OpenCV's Telea (or Navier-Stokes) method, the
classical fill made for smooth, textureless regions, after the faces are pasted, so it
continues their fill. Every write goes through :meth:`Canvas.merged`: pixels at blend weight 0
are never touched.
"""

from __future__ import annotations

import numpy as np

from .align import crop_coords
from .images import Canvas

__all__ = ["owners", "classical_fill", "CLASSICAL", "TERRITORY_MARGIN", "TELEA_RADIUS"]

#: Share of the crop side on each border of an aligned crop that is context only.
TERRITORY_MARGIN = 0.1
#: ``cv2.inpaint``'s radius: OpenCV's documented example, and facefill's registered telea model.
TELEA_RADIUS = 3.0
CLASSICAL = ("telea", "ns")


def owners(transforms: list[np.ndarray], size: int, region: tuple[int, int, int, int], where: np.ndarray) -> np.ndarray:
    """For each pixel of ``region`` (x0, y0, x1, y1), the index of the face that owns it, or -1.

    ``where`` (h, w) bool: the pixels to assign (the others are -1).
    """
    h, w = where.shape
    best = np.full((h, w), np.inf)
    owner = np.full((h, w), -1, dtype=np.int32)
    lo, hi = TERRITORY_MARGIN * size, (1 - TERRITORY_MARGIN) * size
    for k, M in enumerate(transforms):
        u, v = crop_coords(M, region)
        inside = where & (u >= lo) & (u <= hi) & (v >= lo) & (v <= hi)
        d = np.maximum(np.abs(u - size / 2), np.abs(v - size / 2))
        take = inside & (d < best)
        owner[take] = k
        best[take] = d[take]
    return owner


def classical_fill(
    canvas: Canvas, pixels: np.ndarray, hole: np.ndarray, method: str = "telea"
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """``cv2.inpaint`` of ``hole`` (H, W) bool in ``pixels`` (the canvas's pixels so far).

    Runs on the hole's bounding box plus the method's reach only, in 8-bit RGB (alpha onto
    white, as the model sees it). Returns the fill (h, w, 3) float32 over that box and the box,
    or ``None`` when the hole is empty.
    """
    import cv2

    ys, xs = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
    if not len(ys):
        return None
    reach = int(TELEA_RADIUS) + 2
    H, W = hole.shape
    box = (max(int(xs[0]) - reach, 0), max(int(ys[0]) - reach, 0), min(int(xs[-1]) + 1 + reach, W),
           min(int(ys[-1]) + 1 + reach, H))
    view = Canvas(pixels, canvas.ncolor, canvas.scale, canvas.rebuild, canvas.name)
    rgb = np.rint(view.rgb(box) * 255).astype(np.uint8)
    sub = hole[box[1] : box[3], box[0] : box[2]].astype(np.uint8)
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    filled = cv2.inpaint(rgb, sub, TELEA_RADIUS, flag)
    return filled.astype(np.float32) / 255.0, box
