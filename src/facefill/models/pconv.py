"""PConv U-Net (Liu et al., "Image Inpainting for Irregular Holes Using Partial
Convolutions", ECCV 2018).

A U-Net whose every convolution is a partial convolution (NVIDIA's renormalisation,
:class:`facefill.layers.PartialConv2d`):

- encoder: ``layers`` stride-2 partial convs, kernels 7, 5, 5, 3, 3, ..., channels
  ``width`` x 1, 2, 4, 8, 8, ... (64-128-256-512-512-... in the paper), BatchNorm on all
  but the first, ReLU;
- decoder, from the bottom up: nearest-neighbour x2 upsampling of the features *and* of
  their valid map, concatenation with the encoder features of the same resolution *and*
  their valid map (so the partial conv sees a per-channel mask, as in the paper), a 3x3
  partial conv, BatchNorm and LeakyReLU(0.2); the last step concatenates the input image
  and its mask and maps to 3 channels without BatchNorm.

The paper's network has 8 layers at 512x512 (32.86 M parameters counted here, BatchNorm
included; 32.8 M is the figure usually quoted). The ``paper`` preset is the 7-layer version
that the widely used PyTorch reimplementation trains at 256x256 (25.78 M parameters,
bottleneck at 2x2; it also runs on 128x128 crops); ``paper512`` is the published 8-layer
one (stride 256). Convolutions followed by BatchNorm have no bias. The paper's last layer has no activation (its images are normalised with the
ImageNet statistics); ours are in [0, 1], so by default a sigmoid bounds the raw prediction
to the image range (``out_activation="none"`` gives the literal layer). Fine-tuning freezes
the encoder's BatchNorm (:meth:`PConvUNet.encoder_batchnorms`). The loss of the paper is
:class:`facefill.losses_peers.PConvLoss`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from ..layers import PartialConv2d
from .base import InpaintingGenerator, check_int
from .registry import register_model

__all__ = ["PConvUNet"]

_ACTIVATIONS = ("sigmoid", "none")


def _kernel(index: int) -> int:
    """The paper's encoder kernel sizes: 7, 5, 5, then 3."""
    return (7, 5, 5)[index] if index < 3 else 3


class _EncoderLayer(nn.Module):
    """Stride-2 partial conv, BatchNorm (optional), ReLU: (x, valid) -> (x, valid)."""

    def __init__(self, cin: int, cout: int, kernel: int, batchnorm: bool) -> None:
        super().__init__()
        self.conv = PartialConv2d(cin, cout, kernel, 2, kernel // 2, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(cout) if batchnorm else nn.Identity()

    def forward(self, x, valid):
        x, valid = self.conv(x, valid)
        return F.relu(self.bn(x)), valid


class _DecoderLayer(nn.Module):
    """Upsample x2 (nearest), concatenate the skip, 3x3 partial conv, BN + LeakyReLU."""

    def __init__(self, cin: int, cskip: int, cout: int, last: bool) -> None:
        super().__init__()
        self.conv = PartialConv2d(cin + cskip, cout, 3, 1, 1, bias=last)
        self.bn = nn.Identity() if last else nn.BatchNorm2d(cout)
        self.last = last

    def forward(self, x, valid, skip, skip_valid):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        valid = F.interpolate(valid, scale_factor=2.0, mode="nearest")
        # Per-channel valid map of the concatenation (expanded views: no copy).
        cat_valid = torch.cat(
            [valid.expand(-1, x.shape[1], -1, -1), skip_valid.expand(-1, skip.shape[1], -1, -1)],
            dim=1,
        )
        x, valid = self.conv(torch.cat([x, skip], dim=1), cat_valid)
        if not self.last:
            x = F.leaky_relu(self.bn(x), 0.2)
        return x, valid


class _Encoder(nn.Module):
    """Encoder layers; returns the input and every layer's (features, valid), top first."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _EncoderLayer(channels[i], channels[i + 1], _kernel(i), batchnorm=i > 0)
            for i in range(len(channels) - 1)
        )

    def forward(self, image, valid):
        levels = [(image, valid)]
        for layer in self.layers:
            levels.append(layer(*levels[-1]))
        return levels


class _Decoder(nn.Module):
    """``layers[j]`` brings level j+1 up to level j, skipping in level j's features."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _DecoderLayer(channels[j + 1], channels[j], channels[j] if j else 3, last=j == 0)
            for j in range(len(channels) - 1)
        )

    def forward(self, levels):
        x, valid = levels[-1]
        for j in reversed(range(len(self.layers))):
            x, valid = self.layers[j](x, valid, *levels[j])
        return x


@register_model(
    "pconv",
    kind="generator",
    presets={
        "paper": {"width": 64, "layers": 7},
        "paper512": {"width": 64, "layers": 8},
        "small": {"width": 16, "layers": 5},
    },
    summary="PConv U-Net (ECCV 2018), partial convolutions, no GAN",
)
class PConvUNet(InpaintingGenerator):
    """PConv U-Net generator. ``G(image, mask) -> output`` as every facefill generator.

    ``image`` (B, 3, H, W) in [0, 1], ``mask`` (B, 1, H, W) binary with 1 = hole; H and W
    multiples of ``stride = 2 ** layers``. ``G(image, mask, return_raw=True)`` returns
    ``(composite, raw)``, ``raw`` being the prediction for every pixel, which the paper's
    loss needs.

    Args:
        width: channels of the first encoder layer (64 in the paper); deeper layers use
            2x, 4x and then 8x this.
        layers: encoder (and decoder) layers: 8 in the paper (at 512x512); 7 in the
            common 256x256 reimplementation, our ``paper`` preset.
        out_activation: ``"sigmoid"`` (default; output in [0, 1]) or ``"none"`` (the
            paper's linear last layer).
    """

    stride = 2**7  # of the default ``layers``; instances set their own

    def __init__(self, width: int = 64, layers: int = 7, out_activation: str = "sigmoid") -> None:
        super().__init__()
        check_int("width", width)
        check_int("layers", layers)
        if out_activation not in _ACTIVATIONS:
            raise InputError(
                f"out_activation must be one of {_ACTIVATIONS}, got {out_activation!r}"
            )
        self.stride = 2**layers
        self.out_activation = out_activation
        channels = [3] + [width * min(2**i, 8) for i in range(layers)]
        self.encoder = _Encoder(channels)
        self.decoder = _Decoder(channels)

    def encoder_batchnorms(self) -> list[nn.Module]:
        """As the paper's fine-tuning: every BatchNorm of the encoder."""
        return [m for m in self.encoder.modules() if isinstance(m, nn.BatchNorm2d)]

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.decoder(self.encoder(image, 1.0 - mask))
        return torch.sigmoid(x) if self.out_activation == "sigmoid" else x
