"""Classical (non-learned) inpainting baselines: OpenCV's ``cv2.inpaint``.

- ``telea``: Telea, "An Image Inpainting Technique Based on the Fast Marching Method"
  (J. Graphics Tools, 2004), ``cv2.INPAINT_TELEA``.
- ``ns``: Bertalmio, Bertozzi & Sapiro, "Navier-Stokes, Fluid Dynamics, and Image and
  Video Inpainting" (CVPR 2001), ``cv2.INPAINT_NS``.

They are generators like any other (``G(image, mask)``, composited, known pixels
bit-identical) so that the evaluation and benchmarks treat them the same way, but they
have no parameters: ``trainable = False`` (also ``model_entry(name).trainable``) tells a
trainer to refuse them and a benchmark to skip the training columns.

Conversion, per image: the [0, 1] image becomes uint8 as ``round(255 * x)`` (values
outside [0, 1] are clipped first), the hole mask uint8 {0, 255}; ``cv2.inpaint`` runs on
the CPU; its uint8 result, divided by 255, fills the hole. Hole pixels therefore hold
multiples of 1/255 and equal OpenCV's own output exactly. The output has no gradient.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import InputError
from .base import InpaintingGenerator
from .registry import register_model

__all__ = ["OpenCVInpainting", "TeleaInpainting", "NavierStokesInpainting"]

# OpenCV's documentation example uses a radius of 3; both presets keep it.
_PRESETS = {"paper": {"radius": 3.0}, "small": {"radius": 3.0}}


class OpenCVInpainting(InpaintingGenerator):
    """``cv2.inpaint`` with the method ``flag`` of the subclass, per image on the CPU.

    Args:
        radius: ``inpaintRadius`` of ``cv2.inpaint``, in pixels (default 3): the
            neighbourhood of known pixels that each hole pixel is computed from.
    """

    stride = 1
    trainable = False
    flag: int

    def __init__(self, radius: float = 3.0) -> None:
        super().__init__()
        if not radius > 0:
            raise InputError(f"radius must be a positive number of pixels, got {radius!r}")
        self.radius = float(radius)

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if image.device.type == "meta":  # shape inference (facefill info): no work to count
            return torch.empty_like(image)
        pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        pixels = pixels.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
        holes = ((mask.detach() > 0.5).to(torch.uint8) * 255)[:, 0].cpu().numpy()
        filled = np.stack(
            [
                cv2.inpaint(
                    np.ascontiguousarray(p), np.ascontiguousarray(h), self.radius, self.flag
                )
                for p, h in zip(pixels, holes)
            ]
        )
        out = torch.from_numpy(filled).permute(0, 3, 1, 2).float() / 255
        return out.to(device=image.device, dtype=image.dtype)


@register_model(
    "telea",
    kind="generator",
    presets=_PRESETS,
    summary="OpenCV inpainting, Telea's fast marching method (no training)",
)
class TeleaInpainting(OpenCVInpainting):
    """``cv2.inpaint(..., cv2.INPAINT_TELEA)`` as a facefill generator (see module doc)."""

    flag = cv2.INPAINT_TELEA


@register_model(
    "ns",
    kind="generator",
    presets=_PRESETS,
    summary="OpenCV inpainting, Navier-Stokes based (no training)",
)
class NavierStokesInpainting(OpenCVInpainting):
    """``cv2.inpaint(..., cv2.INPAINT_NS)`` as a facefill generator (see module doc)."""

    flag = cv2.INPAINT_NS
