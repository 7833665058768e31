"""RFR-Net (Li et al., "Recurrent Feature Reasoning for Image Inpainting", CVPR 2020).

The layers follow the official release (``modules/RFRNet.py``): two 7x7 partial convs lift
the image to half resolution; the recurrent block applies two 7x7 partial convs (area
identification) and the feature-reasoning encoder-decoder with KCA, six times with shared
weights; the per-cycle features are merged by a mask-weighted average; a transposed conv,
a partial conv over the image and a bottleneck produce RGB. Every encoder of the reasoning
block is Conv-BN-ReLU, the three strided ones and the three dilated ones, as in the
release. With ``width=64`` this is 31,224,065 parameters (31.2 M), the count of the official
layer definitions; ``tests/test_rfr.py`` derives it per block from those definitions. It is
the ablation reference of the APFI paper (Table 1) and the cost anchor of facefill's
benchmarks. Fine-tuning (``train.finetune_iterations``) keeps every BatchNorm of the network
in eval mode, as the official ``RFRNet.train(finetune=True)`` does
(:meth:`RFRNet.finetune_batchnorms`). Differences from the release, none of which changes
a parameter or a FLOP of the learned layers: the mask update sums a 1-channel valid map
instead of a per-channel one, KCA is batched and its state passed explicitly, and there
is no ``.cuda()``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import FeatureMerge, KnowledgeConsistentAttention, PartialConv2d
from .base import InpaintingGenerator
from .registry import register_model

__all__ = ["RFRNet", "RFRModule"]


def _block(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


class RFRModule(nn.Module):
    """The feature-reasoning encoder-decoder of RFR-Net, KCA after the third decoder."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        c1, c2, c3 = 2 * width, 4 * width, 8 * width
        self.enc = nn.ModuleList(
            [
                _block(nn.Conv2d(width, c1, 3, 2, 1, bias=False), nn.BatchNorm2d(c1), nn.ReLU()),
                _block(nn.Conv2d(c1, c2, 3, 2, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU()),
                _block(nn.Conv2d(c2, c3, 3, 2, 1, bias=False), nn.BatchNorm2d(c3), nn.ReLU()),
            ]
            + [
                _block(
                    nn.Conv2d(c3, c3, 3, 1, 2, dilation=2, bias=False),
                    nn.BatchNorm2d(c3),
                    nn.ReLU(),
                )
                for _ in range(3)
            ]
        )
        # Decoders dec_5, dec_4 (dilated convs), dec_3..dec_1 (transposed convs), each fed
        # the previous output concatenated with the encoder output of the same depth.
        self.dec = nn.ModuleList(
            [
                _block(
                    nn.Conv2d(2 * c3, c3, 3, 1, 2, dilation=2, bias=False),
                    nn.BatchNorm2d(c3),
                    nn.LeakyReLU(0.2),
                )
                for _ in range(2)
            ]
            + [
                _block(nn.ConvTranspose2d(2 * c3, c3, 4, 2, 1, bias=False), nn.BatchNorm2d(c3), nn.LeakyReLU(0.2)),
                _block(nn.ConvTranspose2d(c3 + c2, c2, 4, 2, 1, bias=False), nn.BatchNorm2d(c2), nn.LeakyReLU(0.2)),
                _block(nn.ConvTranspose2d(c2 + c1, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)),
            ]
        )
        self.att = KnowledgeConsistentAttention(c3)

    def forward(self, x, valid, state=None):
        skips = [x]
        for enc in self.enc:
            skips.append(enc(skips[-1]))
        h = skips.pop()
        for i, dec in enumerate(self.dec):
            h = dec(torch.cat([h, skips.pop()], dim=1))
            if i == 2:
                h, state = self.att(h, valid, state)
        return h, state


class _Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (expansion 4), as RFR-Net's tail uses it."""

    def __init__(self, inplanes: int, planes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
            nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4),
        )

    def forward(self, x):
        return F.relu(self.body(x) + x)


class _InputLayer(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.pconv1 = PartialConv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.pconv2 = PartialConv2d(width, width, 7, 1, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, image, valid):
        x, v = self.pconv1(image, valid)
        x, v = self.pconv2(F.relu(self.bn1(x)), v)
        return F.relu(self.bn2(x)), v


class _Recurrent(nn.Module):
    """One recurrence: area identification (two 7x7 pconvs) then feature reasoning."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.pconv1 = PartialConv2d(width, width, 7, 1, 3, bias=False)
        self.pconv2 = PartialConv2d(width, width, 7, 1, 3, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.reasoning = RFRModule(width)

    def forward(self, x, valid, state):
        x, valid = self.pconv1(x, valid)
        x, valid = self.pconv2(x, valid)
        x = F.leaky_relu(self.bn(x))
        x, state = self.reasoning(x, valid, state)
        return x * valid, valid, state


@register_model(
    "rfr",
    kind="generator",
    presets={"paper": {"width": 64, "cycles": 6}, "small": {"width": 16, "cycles": 6}},
    summary="RFR-Net (CVPR 2020), the ablation reference and cost anchor",
)
class RFRNet(InpaintingGenerator):
    """RFR-Net generator. ``G(image, mask) -> output`` as every facefill generator.

    Args:
        width: channels of the half-resolution features (64 in the paper); the reasoning
            block uses 2x, 4x and 8x this.
        cycles: recurrences of the shared block (6 in the paper); ``G(..., cycles=n)``
            overrides it for one call.
    """

    stride = 16

    def __init__(self, width: int = 64, cycles: int = 6) -> None:
        super().__init__()
        self.cycles = cycles
        self.input_layer = _InputLayer(width)
        self.recurrent = _Recurrent(width)
        self.merge = FeatureMerge()
        self.up = _block(nn.ConvTranspose2d(width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width))
        self.tail_pconv = PartialConv2d(width + 3, 32, 3, 1, 1, bias=False)
        self.tail_bottleneck = _Bottleneck(32, 8)
        self.out = nn.Conv2d(64, 3, 3, 1, 1, bias=False)

    def encoder_batchnorms(self) -> list[nn.Module]:
        """The BatchNorms of the reasoning encoder (enc_1..enc_6)."""
        enc = self.recurrent.reasoning.enc
        return [m for m in enc.modules() if isinstance(m, nn.BatchNorm2d)]

    def finetune_batchnorms(self) -> list[nn.Module]:
        """Every BatchNorm of the network: the official ``RFRNet.train(finetune=True)`` puts
        all of them in eval mode, not only the encoder's as PConv does."""
        return [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]

    def predict(self, image, mask, cycles: int | None = None):
        cycles = self.cycles if cycles is None else cycles
        valid = 1.0 - mask
        x, v = self.input_layer(image, valid)
        features, valids, state = [x], [v], None
        for _ in range(cycles):
            x, v, state = self.recurrent(x, v, state)
            features.append(x)
            valids.append(v)
        merged = self.merge(features, valids)
        up = F.leaky_relu(self.up(merged))
        up_valid = F.interpolate(v, scale_factor=2.0, mode="nearest")
        tail_valid = torch.cat(
            [valid.expand(-1, 3, -1, -1), up_valid.expand(-1, up.shape[1], -1, -1)], dim=1
        )
        t, _ = self.tail_pconv(torch.cat([image, up], dim=1), tail_valid)
        t = F.leaky_relu(t)
        return self.out(torch.cat([t, self.tail_bottleneck(t)], dim=1))
