"""LaMa (Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier
Convolutions", WACV 2022): a ResNet-style generator of fast Fourier convolutions.

Fast Fourier convolution (FFC, Chi et al. 2020), :class:`FFC`: the channels are split into
a *local* part and a *global* part (``ratio_global`` of them; 0.75 in LaMa's blocks).
Local->local, local->global and global->local are ordinary 3x3 convolutions; global->global
goes through a :class:`SpectralTransform` (1x1 conv halving the channels + BN + ReLU, a
:class:`FourierUnit` with a residual skip around it, then a 1x1 conv). The Fourier unit takes
``torch.fft.rfft2`` (norm ``"ortho"``), stacks the real and imaginary parts as channels,
applies a 1x1 conv + BN + ReLU in the frequency domain and returns with ``irfft2`` to the
input's size: every output pixel sees the whole image after one layer, on any H x W (odd
sizes included). Each part then gets its own BatchNorm and ReLU.

Generator (:class:`LaMaGenerator`): masked image and mask (4 channels) -> reflect-padded
7x7 conv -> ``downsamplings`` stride-2 3x3 reflect-padded convs (BN + ReLU; widths double up to 512) ->
``blocks`` FFC residual blocks (two FFC-BN-ReLU layers each, reflect padding, residual per
part) -> as many 3x3 transposed convs (BN + ReLU) -> reflect-padded 7x7 conv to RGB ->
sigmoid. The last downsampling writes its output already split 1:3 into local and global
channels (LaMa's "ratio_gout" of that layer), which is the same as one conv split by
channel. Parameter counts (BatchNorm included, counted here): ``paper`` (LaMa-Fourier,
9 blocks) 27.05 M, published "27 M"; ``big`` (Big LaMa, 18 blocks) 50.98 M, published
"51 M". Local Fourier units (LFU, FFC's optional extra branch) are off, as in LaMa's
released configurations. The critic is :class:`LaMaDiscriminator` (pix2pix's
NLayerDiscriminator as LaMa uses it); the objective is :mod:`facefill.recipes.lama`.
Padding follows the release (``FFCResNetGenerator``, ``padding_type="reflect"``): every
spatial conv of the generator reflect-pads (the 7x7 convs through ``ReflectionPad2d``, the
downsampling and FFC convs through ``padding_mode``); only the transposed convs of the
decoder zero-pad, as there.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._device import autocast_off
from ..errors import InputError
from .base import InpaintingGenerator, check_int
from .registry import register_model

__all__ = ["FFC", "FourierUnit", "LaMaDiscriminator", "LaMaGenerator", "SpectralTransform"]


class FourierUnit(nn.Module):
    """Pointwise conv in the 2-D frequency domain: (B, C, H, W) -> (B, C_out, H, W).

    ``rfft2`` (ortho) -> real and imaginary parts as 2C channels -> 1x1 conv + BN + ReLU ->
    back to complex -> ``irfft2`` to the input's H x W. Runs in float32 (the FFT under
    half-precision autocast is restricted to power-of-two sizes on CUDA).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * in_channels, 2 * out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(2 * out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        with autocast_off(x.device):
            spec = torch.fft.rfft2(x.float(), norm="ortho")  # (B, C, H, W // 2 + 1)
            y = torch.cat([spec.real, spec.imag], dim=1)
            y = F.relu(self.bn(self.conv(y)))
            real, imag = y.chunk(2, dim=1)
            return torch.fft.irfft2(torch.complex(real, imag), s=(h, w), norm="ortho")


class SpectralTransform(nn.Module):
    """FFC's global->global path: 1x1 conv to ``out // 2`` + BN + ReLU, ``y + FU(y)``, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = max(out_channels // 2, 1)
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True)
        )
        self.fourier = FourierUnit(mid, mid)
        self.expand = nn.Conv2d(mid, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        return self.expand(y + self.fourier(y).to(y.dtype))


class FFC(nn.Module):
    """Fast Fourier convolution with BN + ReLU per part: ``(x_local, x_global) -> same``.

    ``channels`` in and out, ``int(channels * ratio_global)`` of them global. Convs are 3x3,
    stride 1, ``padding_mode`` padded, without bias (BatchNorm follows). ``x_global`` is
    (B, channels_global, H, W); any H x W works.
    """

    def __init__(self, channels: int, ratio_global: float = 0.75, padding_mode: str = "reflect") -> None:
        super().__init__()
        if not 0.0 < ratio_global < 1.0:
            raise InputError(f"ratio_global must be in (0, 1), got {ratio_global!r}")
        self.global_channels = cg = int(channels * ratio_global)
        self.local_channels = cl = channels - cg
        if cg < 1 or cl < 1:
            raise InputError(
                f"{channels} channels at ratio_global={ratio_global} leave an empty local or global part"
            )

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, 3, 1, 1, bias=False, padding_mode=padding_mode)

        self.l2l, self.l2g, self.g2l = conv(cl, cl), conv(cl, cg), conv(cg, cl)
        self.g2g = SpectralTransform(cg, cg)
        self.bn_local, self.bn_global = nn.BatchNorm2d(cl), nn.BatchNorm2d(cg)

    def forward(self, x_local: torch.Tensor, x_global: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y_local = self.l2l(x_local) + self.g2l(x_global)
        y_global = self.l2g(x_local) + self.g2g(x_global)
        return F.relu(self.bn_local(y_local)), F.relu(self.bn_global(y_global))


class FFCResBlock(nn.Module):
    """Two FFC layers and a residual connection on each part."""

    def __init__(self, channels: int, ratio_global: float) -> None:
        super().__init__()
        self.ffc1 = FFC(channels, ratio_global)
        self.ffc2 = FFC(channels, ratio_global)

    def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        y_local, y_global = self.ffc2(*self.ffc1(*x))
        return x[0] + y_local, x[1] + y_global


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int, padding: int) -> list[nn.Module]:
    # Reflect padding as the release: its FFC convs, the downsampling ones included, pad with
    # padding_type="reflect" (saicinpainting/training/modules/ffc.py).
    conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False, padding_mode="reflect")
    return [conv, nn.BatchNorm2d(cout), nn.ReLU(True)]


@register_model(
    "lama",
    kind="generator",
    presets={
        "paper": {"width": 64, "downsamplings": 3, "blocks": 9},
        "big": {"width": 64, "downsamplings": 3, "blocks": 18},
        "small": {"width": 16, "downsamplings": 3, "blocks": 2},
    },
    summary="LaMa (WACV 2022): fast Fourier convolution ResNet, large masks",
)
class LaMaGenerator(InpaintingGenerator):
    """LaMa generator. ``G(image, mask) -> output`` as every facefill generator.

    ``image`` (B, 3, H, W) in [0, 1], ``mask`` (B, 1, H, W) binary with 1 = hole; H and W
    multiples of ``stride = 2 ** downsamplings`` (8). The network sees the zero-filled
    image and the mask (4 channels); the raw prediction is a sigmoid, in [0, 1].

    Args:
        width: channels of the first conv (64 in LaMa); each downsampling doubles it, up
            to ``max_width``.
        downsamplings: stride-2 convs before the FFC blocks (3).
        blocks: FFC residual blocks (9 for LaMa-Fourier, 18 for Big LaMa).
        ratio_global: share of global (spectral) channels in the blocks (0.75).
        max_width: channel cap (512).
    """

    stride = 8

    def __init__(
        self,
        width: int = 64,
        downsamplings: int = 3,
        blocks: int = 9,
        ratio_global: float = 0.75,
        max_width: int = 512,
    ) -> None:
        super().__init__()
        check_int("width", width)
        check_int("downsamplings", downsamplings)
        check_int("blocks", blocks, 0)
        check_int("max_width", max_width)
        if not isinstance(ratio_global, (int, float)) or not 0.0 < ratio_global < 1.0:
            raise InputError(f"ratio_global must be in (0, 1), got {ratio_global!r}")
        self.stride = 2**downsamplings
        widths = [min(width * 2**i, max_width) for i in range(downsamplings + 1)]
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), *_conv_bn_relu(4, width, 7, 1, 0)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += _conv_bn_relu(cin, cout, 3, 2, 1)
        self.encoder = nn.Sequential(*layers)
        bottom = widths[-1]
        self.global_channels = int(bottom * ratio_global)
        if not 1 <= self.global_channels < bottom:
            raise InputError(f"{bottom} channels at ratio_global={ratio_global} leave an empty part")
        self.blocks = nn.Sequential(*(FFCResBlock(bottom, ratio_global) for _ in range(blocks)))
        layers = []
        for cin, cout in zip(widths[:0:-1], widths[-2::-1]):
            layers += [
                nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, 7)]
        self.decoder = nn.Sequential(*layers)

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.encoder(torch.cat([image, mask.to(image.dtype)], dim=1))
        cl = x.shape[1] - self.global_channels
        x_local, x_global = self.blocks((x[:, :cl], x[:, cl:]))
        return torch.sigmoid(self.decoder(torch.cat([x_local, x_global], dim=1)))


@register_model(
    "lama_d",
    kind="discriminator",
    presets={
        "paper": {"width": 64, "layers": 4},
        "small": {"width": 16, "layers": 3},
    },
    summary="LaMa's critic: PatchGAN (NLayerDiscriminator) with BatchNorm, returns features",
)
class LaMaDiscriminator(nn.Module):
    """pix2pix's NLayerDiscriminator as LaMa trains it: ``D(x) -> (scores, features)``.

    ``x`` (B, 3, H, W) in [0, 1]. A 4x4 stride-2 conv + LeakyReLU(0.2), then ``layers - 1``
    4x4 stride-2 convs and one 4x4 stride-1 conv, each with BatchNorm and LeakyReLU(0.2)
    (widths doubling up to 8 x ``width``), then a 4x4 conv to one channel. All pad by 2.
    ``scores`` is the (B, 1, h, w) map of unbounded logits (64x64 input, paper preset:
    7x7); ``features`` the list of every layer's activation before the last conv, for
    feature matching.

    The critic has BatchNorm: facefill's trainer calls it in eval mode (running statistics)
    while computing the generator's loss; see :mod:`facefill.recipes.lama`.
    """

    def __init__(self, width: int = 64, layers: int = 4) -> None:
        super().__init__()
        check_int("width", width)
        check_int("layers", layers)
        stages: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, width, 4, 2, 2), nn.LeakyReLU(0.2, True))]
        c = width
        for i in range(1, layers + 1):
            cout = min(c * 2, width * 8)
            stride = 2 if i < layers else 1
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c, cout, 4, stride, 2, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.LeakyReLU(0.2, True),
                )
            )
            c = cout
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(c, 1, 4, 1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InputError(f"the critic takes (B, 3, H, W) images, got shape {tuple(x.shape)}")
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return self.head(x), features
