"""Markovian (PatchGAN) discriminator with spectral normalisation on every conv."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import snconv2d
from .registry import register_model

__all__ = ["PatchGAN"]


@register_model(
    "patchgan",
    kind="discriminator",
    presets={
        "paper": {"width": 64, "layers": 3, "use_mask": False},
        "small": {"width": 32, "layers": 3, "use_mask": False},
    },
    summary="SN-PatchGAN: Markovian discriminator, spectral norm on every conv",
)
class PatchGAN(nn.Module):
    """Fully convolutional critic returning a (B, 1, h, w) map of patch scores.

    ``layers`` stride-2 4x4 convs (doubling width up to 8x), then two stride-1 4x4 convs:
    with ``layers=3`` each score sees a 70x70 patch (pix2pix's classic design) and a
    256x256 image gives a 30x30 map. Every conv is spectrally normalised
    (``torch.nn.utils.parametrizations.spectral_norm``), no other normalisation; the
    scores are unbounded (Wasserstein / hinge critic). ``use_mask=True`` also feeds the
    hole mask, as SN-PatchGAN (DeepFill v2) does.

    ``D(image, mask=None)``: image (B, 3, H, W) in [0, 1]; mask (B, 1, H, W), 1 = hole.
    """

    def __init__(self, width: int = 64, layers: int = 3, use_mask: bool = False) -> None:
        super().__init__()
        self.use_mask = use_mask
        cin = 4 if use_mask else 3
        blocks: list[nn.Module] = []
        c = width
        for i in range(layers):
            blocks += [snconv2d(cin, c, 4, 2, 1), nn.LeakyReLU(0.2)]
            cin, c = c, min(c * 2, width * 8)
        blocks += [snconv2d(cin, c, 4, 1, 1), nn.LeakyReLU(0.2), snconv2d(c, 1, 4, 1, 1)]
        self.net = nn.Sequential(*blocks)

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.use_mask:
            if mask is None:
                raise ValueError("mask is required: this discriminator was built with use_mask=True")
            image = torch.cat([image, mask], dim=1)
        return self.net(image)
