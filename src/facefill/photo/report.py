"""What :class:`~facefill.photo.inpainter.Inpainter` reports about each image: :class:`InpaintInfo`,
and a :class:`FaceInfo` for every face it found."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import align
from .detect import Face

__all__ = ["FaceInfo", "InpaintInfo", "face_info"]


@dataclass
class FaceInfo:
    """One face YuNet found in an image.

    ``box``: (x, y, w, h) in image pixels. ``landmarks``: five (x, y) points (right eye, left
    eye, nose tip, right and left mouth corner, as seen). ``score``: the detector's confidence.
    ``mode``: ``"inpainted"`` (the hole touches it: it was filled in its aligned crop) or
    ``"untouched"``. ``crop``: the four corners (x, y) of its aligned crop in image pixels.
    ``scale``: image pixels per model pixel of that crop (> 1: a face larger than the model).
    """

    box: tuple[int, int, int, int]
    landmarks: list[tuple[float, float]]
    score: float
    mode: str = "untouched"
    crop: list[tuple[float, float]] = field(default_factory=list)
    scale: float = 1.0


@dataclass
class InpaintInfo:
    """What :class:`Inpainter` did with one image.

    ``mode``: ``"face"`` (every hole pixel was filled in a face's aligned crop), ``"aligned"``
    (the image is a face crop), ``"telea"`` / ``"ns"`` (the hole touches no face: the classical
    fill), ``"no_face"`` (``background="model"`` and no face: a square around the hole through
    the model), ``"face+telea"`` / ``"face+ns"`` / ``"face+no_face"`` (part on faces, the rest
    by the background method), or ``"empty_mask"`` (nothing done).
    ``faces``: every detected face (:class:`FaceInfo`), with its own mode. ``face``: the box
    (x, y, w, h) of the first inpainted face; ``crop``: (left, top, right, bottom) bounding the
    region given to the model for it (or for the aligned image, or the background square).
    ``hole_fraction``: share of the image's pixels in the hole. ``precision``: what the model
    ran in; ``blend``: how its fill was blended in (``"poisson"`` or ``"none"``); both ``None``
    when it did not run.
    """

    mode: str
    size: tuple[int, int]  # (width, height) of the image
    crop: tuple[int, int, int, int] | None = None
    face: tuple[int, int, int, int] | None = None
    faces_detected: int = 0
    hole_fraction: float = 0.0
    mask_resized: bool = False
    precision: str | None = None
    blend: str | None = None
    faces: list[FaceInfo] = field(default_factory=list)
    background: str | None = None  # the method that filled the part of the hole off every face
    notes: list[str] = field(default_factory=list)


def face_info(face: Face, M: np.ndarray, size: int) -> FaceInfo:
    """The :class:`FaceInfo` of a face whose aligned crop is ``M`` at the model's ``size``."""
    x, y, w, h = face.box
    return FaceInfo(
        box=(round(x), round(y), round(w), round(h)),
        landmarks=[(round(float(px), 1), round(float(py), 1)) for px, py in face.landmarks],
        score=round(face.score, 3),
        crop=[(round(float(px), 1), round(float(py), 1)) for px, py in align.crop_corners(M, size)],
        scale=round(align.crop_scale(M), 3),
    )
