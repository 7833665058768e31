"""GFP-GAN (Wang et al., "Towards Real-World Blind Face Restoration with Generative Facial
Prior", CVPR 2021) as an inpainting peer, through the ``gfpgan`` package.

GFP-GAN restores degraded faces; it is not an inpainting network and cannot be trained here:
its StyleGAN2 prior comes only with TencentARC's released weights (``GFPGANv1.3.pth`` /
``GFPGANv1.4.pth``, the "clean" architecture), which facefill cannot download. The APFI paper
compares with it anyway, so this adapter lets a user who has the weights (and
``pip install gfpgan``, which brings basicsr and torchvision) put it in the same table:

1. the hole is pre-filled with OpenCV's Telea inpainting (so GFP-GAN sees a degraded face
   rather than a black square; the paper does not say how it fed the hole, this is our
   choice and it favours GFP-GAN over a zero fill);
2. the pre-filled image is resized to GFP-GAN's 512x512 aligned-face input (bilinear with
   antialiasing), mapped to [-1, 1] and restored by ``GFPGANv1Clean``, called directly (not
   through ``GFPGANer``, whose face helper downloads detection weights at start-up); faces128
   and CelebA crops are aligned faces, GFPGANer's ``has_aligned=True`` path;
3. the result is resized back and composited: known pixels are returned unchanged.

``GFPGANInpainting.from_weights(path)`` (or ``$FACEFILL_GFPGAN``); without the package or
the file it raises :class:`GFPGANUnavailable` saying which of the two is missing and how to
get it. It is not in the model registry (no presets to build without the weights), but it is
an :class:`InpaintingGenerator` like any other, so ``facefill.evaluate`` and
``benchmarks/quality.py --gfpgan PATH`` take it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from .base import InpaintingGenerator
from .classical import TeleaInpainting

__all__ = ["GFPGANInpainting", "GFPGANUnavailable", "GFPGAN_ARGS"]

# GFPGANer's arguments for arch="clean", channel_multiplier=2 (v1.3 and v1.4 weights).
GFPGAN_ARGS = dict(
    out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
    fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
    sft_half=True,
)
ENV = "FACEFILL_GFPGAN"


class GFPGANUnavailable(InputError):
    """GFP-GAN cannot run here: its weights file or the ``gfpgan`` package is missing."""


def _network_class() -> type[nn.Module]:
    try:
        from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean
    except ImportError as e:
        raise GFPGANUnavailable(
            f"GFP-GAN needs the gfpgan package ({e}); install it with `pip install gfpgan` "
            "(it brings basicsr and torchvision) or leave GFP-GAN out"
        ) from None
    return GFPGANv1Clean


class GFPGANInpainting(InpaintingGenerator):
    """GFP-GAN behind ``G(image, mask)`` (module doc). Build with :meth:`from_weights`."""

    stride = 1
    trainable = False
    size = 512

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.eval()
        self.prefill = TeleaInpainting()

    @classmethod
    def from_weights(cls, path: str | os.PathLike | None = None) -> GFPGANInpainting:
        """Load TencentARC's ``GFPGANv1.3.pth``/``GFPGANv1.4.pth`` (``params_ema`` inside)."""
        path = path or os.environ.get(ENV)
        if not path:
            raise GFPGANUnavailable(
                "GFP-GAN needs its pretrained weights (GFPGANv1.4.pth from TencentARC/GFPGAN's "
                f"releases), which facefill cannot download: pass the file's path or set {ENV}"
            )
        path = Path(path)
        if not path.is_file():
            raise GFPGANUnavailable(f"GFP-GAN weights file {path} does not exist; pass the path of GFPGANv1.4.pth")
        network = _network_class()(**GFPGAN_ARGS)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 (pickle/zip errors of many kinds)
            raise GFPGANUnavailable(f"{path} is not a PyTorch weights file ({type(e).__name__}); "
                                    "pass GFPGANv1.4.pth") from None
        if isinstance(state, dict):
            state = state.get("params_ema", state.get("params", state))
        try:
            network.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise GFPGANUnavailable(
                f"{path} does not fit GFP-GAN's clean architecture (v1.3/v1.4): "
                f"{str(e).splitlines()[0]}"
            ) from None
        for p in network.parameters():
            p.requires_grad_(False)
        return cls(network)

    @torch.no_grad()
    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        filled = self.prefill(image.float().cpu(), mask.float().cpu()).to(image.device)
        x = F.interpolate(filled, size=(self.size, self.size), mode="bilinear",
                          align_corners=False, antialias=True)
        restored = self.network(x * 2 - 1, return_rgb=False, randomize_noise=False)[0]
        restored = ((restored.float() + 1) / 2).clamp(0, 1)
        return F.interpolate(restored, size=(h, w), mode="bilinear", align_corners=False,
                             antialias=(h < self.size))
