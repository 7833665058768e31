"""``facefill demo``: inpaint a bundled public-domain face with the bundled demo weights.

The sample is NASA's portrait of astronaut Eileen Collins (public domain; the image
scikit-image ships as ``astronaut``). Its face is found with the same detector the
:class:`~facefill.photo.Inpainter` uses (YuNet), a seeded free-form hole is drawn over the face
(hole ratio 15-30 % of the face crop), the photo is inpainted through the full photo
pipeline (detect, crop, inpaint at the model's size, paste back the hole only), and the
result is scored against the original on the face crop: PSNR, SSIM and the L1 error inside
the hole, beside OpenCV's Telea on the same hole (the classical method a learned fill has to
beat), and checked for flat saturated blocks in the hole. Nothing is downloaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import atomic_write
from .errors import InputError
from .photo import Inpainter, compare_strip, detect_faces
from .masks import random_mask
from .metrics import psnr, saturated_blocks, ssim
from .models import create_model

__all__ = ["DEMO_FILES", "DemoResult", "run_demo", "sample_image", "demo_mask"]

SAMPLE = "assets/astronaut.jpg"
# What run_demo writes into its folder: masked | result | original, the same with Telea, the
# result alone, the hole.
DEMO_FILES = ("demo_compare.png", "demo_vs_telea.png", "demo_output.png", "demo_mask.png")
HOLE_RANGE = (0.15, 0.30)
#: The scored face square relative to YuNet's box: the face and hair, the framing the Haar
#: cascade's 1.6 x box gave before (the astronaut's square: 146 px now, 149 px then).
FACE_SCALE = 1.6
FACE_CENTER_Y = 0.46


@dataclass
class DemoResult:
    out_dir: Path
    files: list[Path]
    face_box: tuple[int, int, int, int]
    hole_ratio: float
    psnr: float
    ssim: float
    hole_l1: float
    seconds: float
    weights: str
    precision: str  # what the model ran in: bf16, fp16 or fp32
    blend: str  # how the fill was blended in: poisson or none
    telea: dict[str, float]  # psnr, ssim, hole_l1 of OpenCV Telea on the same hole and crop
    saturated: bool  # the fill has an 8x8 hole block stuck at 0 or 255 where the photo is not


def sample_image() -> Image.Image:
    """The bundled sample photo (RGB, 512x512)."""
    with resources.files("facefill").joinpath(SAMPLE).open("rb") as f:
        return Image.open(f).convert("RGB")


def demo_mask(image: Image.Image, seed: int = 0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A seeded free-form hole over the largest detected face: (H, W) uint8 mask, face crop box
    (a square of ``FACE_SCALE`` x the detector's box width, box centre at ``FACE_CENTER_Y`` of its
    height, inside the photo)."""
    rgb = np.asarray(image.convert("RGB"))
    faces = detect_faces(rgb)
    if not faces:
        raise InputError("no face found in the demo image")
    bx, by, bw, bh = max(faces, key=lambda f: f.box[2] * f.box[3]).box
    side = round(FACE_SCALE * bw)  # the face and its hair, not the background around it
    x0, y0 = round(bx + bw / 2 - side / 2), round(by + bh / 2 - FACE_CENTER_Y * side)
    x1, y1 = x0 + side, y0 + side
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    side = min(x1 - x0, y1 - y0)
    x1, y1 = x0 + side, y0 + side
    rng = np.random.default_rng(seed)
    for _ in range(1000):  # the first seeded draw whose hole ratio is in HOLE_RANGE
        hole = random_mask(side, rng, "medium")
        if HOLE_RANGE[0] <= hole.mean() <= HOLE_RANGE[1]:
            break
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = hole
    return mask, (x0, y0, x1, y1)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 255  # a copy: PIL arrays are read-only


def run_demo(
    out_dir: str | Path = "facefill-demo",
    weights: str | Path | None = None,
    seed: int = 0,
    device: str | None = None,
    precision: str | None = "auto",
    blend: str = "poisson",
) -> DemoResult:
    """Inpaint the sample face; write ``demo_compare.png`` (masked | result | original),
    ``demo_vs_telea.png`` (masked | result | OpenCV Telea | original), ``demo_output.png`` and
    ``demo_mask.png``.

    ``precision``: ``"auto"``, ``"bf16"`` or ``"fp32"``; ``blend``: ``"poisson"`` or ``"none"``;
    both as for :class:`~facefill.inpaint.Inpainter`.
    """
    start = time.perf_counter()
    inpainter = Inpainter.from_pretrained(weights, device=device, precision=precision, blend=blend)
    image = sample_image()
    mask, (x0, y0, x1, y1) = demo_mask(image, seed)
    output = inpainter(image, Image.fromarray(mask * 255), feather=0)
    seconds = time.perf_counter() - start

    original = np.asarray(image)
    result = np.asarray(output.convert("RGB"))
    crop = (slice(y0, y1), slice(x0, x1))
    a, b = _tensor(result[crop]), _tensor(original[crop])
    hole = torch.from_numpy(mask[crop].astype(bool))
    hole_l1 = float((a - b).abs()[0].permute(1, 2, 0)[hole].mean())

    with torch.no_grad():
        filled = create_model("telea")(_tensor(original), torch.from_numpy(mask)[None, None].float())
    telea = (filled[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    t = _tensor(telea[crop])
    telea_scores = {
        "psnr": float(psnr(t, b)[0]), "ssim": float(ssim(t, b)[0]),
        "hole_l1": float((t - b).abs()[0].permute(1, 2, 0)[hole].mean()),
    }
    saturated = bool(saturated_blocks(a, b, hole[None, None].float())[0])

    compare = compare_strip(original, mask, result)
    versus = compare_strip(original, mask, result, telea)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, array in zip(DEMO_FILES, (compare, versus, result, mask * 255)):
        path = out / name
        # zlib level 3, not Pillow's 6: the same pixels, ~8 % larger files, a fifth of a second
        # less of the demo's start-to-end time (four PNGs of up to 2048x512)
        atomic_write(path, lambda tmp, a=array: Image.fromarray(a).save(tmp, format="PNG", compress_level=3))
        files.append(path)
    return DemoResult(
        out_dir=out,
        files=files,
        face_box=(x0, y0, x1, y1),
        hole_ratio=float(hole.float().mean()),
        psnr=float(psnr(a, b)[0]),
        ssim=float(ssim(a, b)[0]),
        hole_l1=hole_l1,
        seconds=seconds,
        weights=str(weights) if weights else "bundled demo weights",
        precision=inpainter.precision,
        blend=inpainter.blend,
        telea=telea_scores,
        saturated=saturated,
    )
