"""Inpainting real photos: detection, alignment, paste-back and the :class:`Inpainter` front.

- :mod:`.images`: every input kind as a :class:`~.images.Canvas`; :func:`open_image`.
- :mod:`.masks`: :func:`read_mask`, the grown and feathered hole.
- :mod:`.detect`: YuNet faces with five landmarks; :func:`find_faces`, those near a hole.
- :mod:`.align`: the five-point template, the similarity warp in and back.
- :mod:`.paste`: which face owns which hole pixel, the classical fill off the faces, the blend.
- :mod:`.inpainter`: :class:`Inpainter`.
- :mod:`.report`: what it reports (:class:`InpaintInfo`, :class:`FaceInfo`).
"""

from .align import TEMPLATE, face_transform, warp_back, warp_in
from .detect import Face, detect_faces, find_faces
from .images import MAX_PIXELS, MAX_SIDE, box_text, compare_strip, open_image
from .inpainter import (
    BACKGROUNDS,
    DEMO_WEIGHTS,
    MAX_CYCLES,
    FaceInfo,
    Inpainter,
    InpaintInfo,
    WeightsNotFoundError,
)
from .masks import InpaintWarning, read_mask

__all__ = [
    "Inpainter", "InpaintInfo", "FaceInfo", "InpaintWarning", "WeightsNotFoundError", "DEMO_WEIGHTS", "MAX_CYCLES",
    "BACKGROUNDS", "MAX_SIDE", "MAX_PIXELS", "Face", "TEMPLATE", "detect_faces", "find_faces", "face_transform",
    "warp_in", "warp_back", "open_image", "read_mask", "compare_strip", "box_text",
]
