"""Alignment: a face's five landmarks onto the canonical template, the crop warped in and back.

:data:`TEMPLATE` is where the five landmarks sit in the crops the demo weights were trained on
(fractions of the crop side, (x, y)), measured with :func:`measure_template` and
``benchmarks/face_template.py``. :func:`face_transform` estimates the similarity transform
(rotation, uniform scale, shift; ``cv2.estimateAffinePartial2D``) that takes a face's landmarks
onto the template at the model's size; :func:`warp_in` cuts the aligned crop out of a photo,
:func:`warp_back` brings a crop's pixels back into a region of the photo (the inverse warp).
Pixel coordinates follow OpenCV: pixel (x, y) is at integer (x, y).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from .images import Canvas

__all__ = [
    "TEMPLATE", "FRAMING_TOLERANCE", "face_transform", "template_points", "warp_in", "warp_back",
    "crop_scale", "crop_corners", "crop_landmarks", "framing_error", "measure_template",
]

#: Mean landmark positions (x, y as fractions of the crop side; right eye, left eye, nose,
#: right and left mouth corner as seen) that YuNet finds on the prepared training crops of
#: the demo weights: data/celeba128 (850 train crops, ``facefill prepare-celeba`` align layout:
#: the centre square of img_align_celeba) and shared/data/faces128 (316 train crops, 1.8 x
#: dlib's box, eyes at 40 %), pooled as the trainer pools them (concatenated); YuNet found a
#: face in all 1,166. The two sets are framed differently (eyes at y = 0.52 and 0.39, eye
#: distance 0.21 and 0.25 of the side); the template is their pooled mean.
#: Reproduce with ``python benchmarks/face_template.py`` (writes benchmarks/results/face_template.json).
TEMPLATE = np.array(
    [[0.3888, 0.4843], [0.6132, 0.4842], [0.4961, 0.6122], [0.4056, 0.7071], [0.5981, 0.7110]],
    dtype=np.float32,
)
#: Mean distance (fraction of the crop side) between a crop's landmarks and the template above
#: which a crop passed as ``aligned=True`` is "far from the training framing". Every training
#: crop is within 0.123 of the template (99th percentile 0.113, median 0.042; see
#: face_template.json); a face taking up a third of the picture is about 0.2 away.
FRAMING_TOLERANCE = 0.15


def template_points(size: int) -> np.ndarray:
    """The template in pixels of a ``size`` x ``size`` crop, (5, 2) float32."""
    return (TEMPLATE * np.float32(size)).astype(np.float32)


def _least_squares_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Closed-form similarity (Umeyama without reflection) from ``src`` to ``dst`` points."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    den = float((a**2).sum()) or 1.0
    c = float((a * b).sum()) / den  # s cos
    s = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()) / den  # s sin
    R = np.array([[c, -s], [s, c]])
    t = md - R @ ms
    return np.hstack([R, t[:, None]])


def face_transform(landmarks: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity matrix taking image pixels to the ``size`` px aligned crop of a face."""
    import cv2

    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    dst = template_points(size)
    M, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if M is None or not np.isfinite(M).all():  # degenerate points: the plain least-squares fit
        M = _least_squares_similarity(src.astype(np.float64), dst.astype(np.float64))
    return M.astype(np.float64)


def crop_scale(M: np.ndarray) -> float:
    """Image pixels per crop pixel (> 1: the face is larger than the model's size)."""
    return 1.0 / math.hypot(M[0, 0], M[1, 0])


def _inverse(M: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.invertAffineTransform(M)


def crop_corners(M: np.ndarray, width: int, height: int | None = None) -> np.ndarray:
    """The crop's four corners (its outer pixel edges) in image pixels, (4, 2)."""
    inv = _inverse(M)
    w, h = width - 0.5, (width if height is None else height) - 0.5
    c = np.array([[-0.5, -0.5], [w, -0.5], [w, h], [-0.5, h]], dtype=np.float64)
    return c @ inv[:, :2].T + inv[:, 2]


def warp_in(
    canvas: Canvas, hole: np.ndarray, M: np.ndarray, width: int, height: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The crop (height, width, 3) float32 that ``M`` cuts from the photo, and its hole
    (height, width) float32 in {0, 1}; ``hole`` is the photo's (H, W) bool hole map.

    Only the part of the photo under the crop is read. Outside the photo the pixels are
    edge-replicated (as in the training crops), and so is the hole: a hole on the border is a
    hole in its replicated copies too. A crop pixel is a hole where any photo pixel it is
    interpolated from is, so no known crop pixel is computed from hole content. Faces larger
    than the crop are shrunk with area averaging first (no aliasing).
    """
    import cv2

    H, W = hole.shape
    height = width if height is None else height
    corners = crop_corners(M, width, height)
    x0 = max(int(math.floor(corners[:, 0].min())) - 2, 0)
    y0 = max(int(math.floor(corners[:, 1].min())) - 2, 0)
    x1 = min(int(math.ceil(corners[:, 0].max())) + 3, W)
    y1 = min(int(math.ceil(corners[:, 1].max())) + 3, H)
    if x1 <= x0 or y1 <= y0:  # the crop is off the photo: the nearest edge pixels
        x0, x1 = (min(max(x0, 0), W - 1), min(max(x0, 0), W - 1) + 1)
        y0, y1 = (min(max(y0, 0), H - 1), min(max(y0, 0), H - 1) + 1)
    rgb = canvas.rgb((x0, y0, x1, y1))
    sub_hole = hole[y0:y1, x0:x1].astype(np.float32)
    # crop = M @ (sub * f + offset): fold the offset (and a pre-shrink by f) into the matrix.
    fx = fy = 1.0
    s = crop_scale(M)
    if s > 1.5:
        w, h = max(1, round((x1 - x0) / s)), max(1, round((y1 - y0) / s))
        fx, fy = (x1 - x0) / w, (y1 - y0) / h
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        sub_hole = cv2.resize(sub_hole, (w, h), interpolation=cv2.INTER_AREA)
    A = M[:, :2] @ np.diag([fx, fy])
    t = M[:, :2] @ np.array([x0, y0], dtype=np.float64) + M[:, 2]
    Ms = np.hstack([A, t[:, None]])
    flags = cv2.INTER_LINEAR
    crop = cv2.warpAffine(rgb, Ms, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    crop_hole = cv2.warpAffine(sub_hole, Ms, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return np.clip(crop, 0.0, 1.0), (crop_hole > 1e-6).astype(np.float32)


def warp_back(crop: np.ndarray, M: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """The crop's pixels at the photo pixels of ``region`` (x0, y0, x1, y1): (h, w, C) float32."""
    import cv2

    x0, y0, x1, y1 = region
    # region pixel (u, v) is photo pixel (u + x0, v + y0), which is crop point M @ that.
    t = M[:, :2] @ np.array([x0, y0], dtype=np.float64) + M[:, 2]
    Mr = np.hstack([M[:, :2], t[:, None]])
    flags = (cv2.INTER_CUBIC if crop_scale(M) > 1 else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(np.ascontiguousarray(crop), Mr, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    if out.ndim == 2:
        out = out[:, :, None]
    return np.clip(out, 0.0, 1.0)


def crop_coords(M: np.ndarray, region: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Crop coordinates (u, v) of every photo pixel of ``region``, two (h, w) arrays."""
    x0, y0, x1, y1 = region
    ys, xs = np.mgrid[y0:y1, x0:x1]
    u = M[0, 0] * xs + M[0, 1] * ys + M[0, 2]
    v = M[1, 0] * xs + M[1, 1] * ys + M[1, 2]
    return u, v


def framing_error(landmarks: np.ndarray) -> float:
    """Mean distance of a crop's landmarks (fractions of its side) from the template."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return float(np.linalg.norm(pts - TEMPLATE, axis=1).mean())


# ------------------------------------------------------------------------- measuring the template


def crop_landmarks(a: np.ndarray) -> np.ndarray | None:
    """Landmarks (5, 2), fractions of the side, of the face nearest the centre of a crop
    (uint8 RGB (H, W, 3); not square: of its centre square), or ``None`` without a face."""
    import cv2

    from .detect import detect_faces

    h0, w0 = a.shape[:2]
    side = min(h0, w0)
    # Training crops are tight: give the detector room (edge-replicated, as the crops' own
    # padding) and a 256 px view.
    pad = side // 4
    big = cv2.copyMakeBorder(np.ascontiguousarray(a), pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    zoom = 256 / max(big.shape[:2])
    big = cv2.resize(big, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    faces = detect_faces(big)
    if not faces:
        return None
    centre = np.array([big.shape[1] / 2, big.shape[0] / 2])
    best = min(faces, key=lambda f: np.linalg.norm(np.array(f.box[:2]) + np.array(f.box[2:]) / 2 - centre))
    offset = np.float32([pad + (w0 - side) / 2, pad + (h0 - side) / 2])
    return (best.landmarks / zoom - offset) / side


def _crop_landmarks(path: Path) -> np.ndarray | None:
    from PIL import Image

    with Image.open(path) as im:
        return crop_landmarks(np.asarray(im.convert("RGB")))


def _rounded(points: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 4) for v in p] for p in points]


def measure_template(folders: Iterable[str | Path], split: str = "train.txt") -> dict:
    """Run YuNet on every crop listed in each folder's ``split`` file (or every PNG/JPEG
    in it), and return the mean landmarks (the template), per folder and pooled, with the
    spread of each crop's :func:`framing_error`-style distance from the pooled mean.

    Only numbers come back; no pixel of the crops is kept.
    """
    per: dict[str, np.ndarray] = {}
    missed: dict[str, int] = {}
    for folder in map(Path, folders):
        listed = folder / split
        if listed.is_file():
            ids = [s.strip() for s in listed.read_text().splitlines() if s.strip()]
            paths = [p for i in ids for p in [folder / f"{i}.png", folder / f"{i}.jpg"] if p.is_file()]
        else:
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        found = [lm for lm in map(_crop_landmarks, paths)]
        per[folder.name] = np.array([lm for lm in found if lm is not None])
        missed[folder.name] = sum(lm is None for lm in found)
    pooled = np.concatenate(list(per.values()))
    mean = pooled.mean(0)
    dist = np.linalg.norm(pooled - mean, axis=2).mean(1)
    return {
        "template": _rounded(mean),
        "per_folder": {k: {"crops": int(len(v)) + missed[k], "with_face": int(len(v)), "mean": _rounded(v.mean(0))}
                       for k, v in per.items()},
        "distance_from_template": {q: round(float(np.percentile(dist, p)), 4)
                                   for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
    }
