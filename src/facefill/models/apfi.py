"""APFI: asymmetric periodic feature inference (Li, Zhang, Li, 2022).

A cyclic progressive inpainting generator. Data flow (H x W input, hole mask m):

1. input layer: a 7x7 stride-2 partial conv lifts the masked image to ``width`` channels
   at H/2 x W/2, with the valid map of what it could see;
2. the APFI module, applied ``cycles`` times with one set of weights:
   area identification (two depthwise-separable 7x7 partial convs: the valid region grows
   by 6 half-resolution pixels a cycle, and the new ring is what this cycle fills) ->
   asymmetric feature reasoning (gated-conv encoder, plain transposed-conv decoder with
   skip concatenations) with knowledge consistent attention at H/8 -> features zeroed
   outside the region known so far;
3. feature merging: mask-weighted average of the input layer's and every cycle's features;
4. a U-Net over the merged, hole-free map: gated-conv encoder to H/16, two parallel
   dilated-conv branches (dilation 2 and 4) at the bottom, a decoder with skip
   connections back to full resolution, where the known pixels join before the RGB head.

Design choice (where the paper's "lighter computation" is won). RFR-Net spends ~80 % of
its FLOPs inside the recurrence at half resolution: two dense 7x7 partial convs at 64
channels (13 GFLOP a cycle at 256x256) and a reasoning block that runs at 512 channels
(27 GFLOP a cycle). APFI keeps what makes the recurrence work, the 7x7 reach of area
identification (so the hole closes at the same speed, 12 px of the input per cycle) and
KCA at H/8, but (a) makes area identification depthwise-separable (NVIDIA renormalisation
on the depthwise 7x7 part, a 1x1 mix after it) and (b) narrows the reasoning block to
64-128-192 channels, since it runs six times. The saved budget goes to the part that
runs once, the U-Net. The numbers are in the README and ``facefill info apfi``.
Measured at the study's ablation budget (``small``, 2,000 steps of batch 8 at 128 px,
``benchmarks/results/study.md``): dense identification (``separable=False``) costs 2.85x the
FLOPs and scored 0.2-0.4 dB and 0.01-0.03 SSIM lower; a plain reasoning bottom
(``reasoning_dilation=1``) scored level with the dilated one; reasoning widths 1.5x
``small``'s (48-96-144, 1.5x the FLOPs) scored 0.3-0.5 dB lower on CelebA and level on faces128.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import FeatureMerge, GatedConv2d, KnowledgeConsistentAttention, PartialConv2d
from .base import InpaintingGenerator
from .registry import register_model

__all__ = ["APFIGenerator", "APFIModule"]


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


def _gated(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> GatedConv2d:
    return GatedConv2d(cin, cout, 3, stride, dilation=dilation, activation=_act())


def _plain(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """A plain 3x3 conv and LeakyReLU: the ablation of a gated encoder (``gated_unet=False``)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), _act())


def _dense_identify(channels: int, kernel_size: int) -> PartialConv2d:
    """A dense k x k partial conv, RFR-Net's area identification (``separable=False``)."""
    return PartialConv2d(channels, channels, kernel_size, 1, kernel_size // 2, bias=False)


def _cat_in_layout(parts: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Channel concatenation in ``like``'s memory layout: torch.cat gives a contiguous result
    when one input is a 1-channel map (both layouts at once), and a contiguous input sends the
    next conv of a channels_last model to a slow path."""
    x = torch.cat(parts, dim=1)
    if not like.is_contiguous():
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _up(cin: int, cout: int) -> nn.Sequential:
    """Plain decoder step: 4x4 stride-2 transposed conv, BN, LeakyReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), _act()
    )


class SeparablePartialConv(nn.Module):
    """Depthwise k x k partial conv (NVIDIA renormalisation) then a 1x1 channel mix.

    Returns ``(features, new_valid)``; features are zero outside ``new_valid``.
    """

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.depthwise = PartialConv2d(
            channels, channels, kernel_size, 1, kernel_size // 2, groups=channels, bias=False
        )
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)

    def update_mask(self, valid: torch.Tensor) -> torch.Tensor:
        return self.depthwise.update_mask(valid)[0]

    def forward(self, x, valid, *, masked: bool = False):
        x, valid = self.depthwise(x, valid, masked=masked)
        return self.pointwise(x), valid


class APFIModule(nn.Module):
    """One cycle: area identification, asymmetric feature reasoning with KCA.

    ``forward(x, valid, state) -> (features, new_valid, state)`` at the half-resolution
    feature size; ``state`` carries KCA's scores from cycle to cycle (None without KCA).

    Ablations (the study's, ``benchmarks/quality.py --variant``): ``kca=False`` drops the
    attention; ``separable=False`` identifies areas with two dense partial convs, as RFR-Net;
    ``reasoning_dilation=1`` makes the reasoning bottom a plain 3x3 gated conv.
    """

    def __init__(
        self, width: int, reasoning: tuple[int, int, int], kernel_size: int = 7,
        *, kca: bool = True, separable: bool = True, reasoning_dilation: int = 2,
    ) -> None:
        super().__init__()
        r1, r2, r3 = reasoning
        self.width, self.reasoning = width, (r1, r2, r3)
        layer = SeparablePartialConv if separable else _dense_identify
        self.identify = nn.ModuleList([layer(width, kernel_size), layer(width, kernel_size)])
        self.identify_norm = nn.BatchNorm2d(width)
        # Asymmetric reasoning: gated convs encode, plain transposed convs decode.
        self.enc = nn.ModuleList([_gated(width, r1, 2), _gated(r1, r2, 2), _gated(r2, r3, 2)])
        self.bottom = _gated(r3, r3, dilation=reasoning_dilation)
        self.dec = nn.ModuleList([_up(r3 + r3, r2), _up(r2 + r2, r1), _up(r1 + r1, width)])
        self.att = KnowledgeConsistentAttention(r2) if kca else None

    def channel_groups(self) -> dict[str, tuple]:
        """Output and input channel groups of each layer whose width follows ``reasoning``, for
        :func:`facefill.models.widen.widen_into`. KCA compares whole feature vectors, so the
        decoder step that feeds it starts its new channels silent."""
        (r1, r2, r3), w = self.reasoning, self.width
        groups: dict[str, tuple] = {
            "enc.0.conv": ((r1, r1), (w,)),
            "enc.1.conv": ((r2, r2), (r1,)),
            "enc.2.conv": ((r3, r3), (r2,)),
            "bottom.conv": ((r3, r3), (r3,)),
            "dec.0.0": ((r2,), (r3, r3)),
            "dec.0.1": ((r2,), None, "silent") if self.att is not None else ((r2,), None),
            "dec.1.0": ((r1,), (r2, r2)),
            "dec.1.1": ((r1,), None),
            "dec.2.0": ((w,), (r1, r1)),
            "dec.2.1": ((w,), None),
        }
        if self.att is not None:
            groups["att.combine"] = ((r2,), (r2, r2))
        return groups

    def update_mask(self, valid: torch.Tensor) -> torch.Tensor:
        for layer in self.identify:
            if isinstance(layer, PartialConv2d):  # the dense ablation: (valid, ratio)
                valid = layer.update_mask(valid)[0]
            else:
                valid = layer.update_mask(valid)
        return valid

    def forward(self, x, valid, state=None):
        # ``x`` comes zero outside ``valid`` (from the input layer or the previous cycle), and
        # each separable layer keeps it so (no bias), so the partial convs skip the masking.
        for layer in self.identify:
            x, valid = layer(x, valid, masked=True)
        x = F.leaky_relu(self.identify_norm(x), 0.2) * valid
        skips = [x]
        for enc in self.enc:
            skips.append(enc(skips[-1]))
        h = self.bottom(skips[-1])
        for i, dec in enumerate(self.dec):
            h = dec(torch.cat([h, skips[-1 - i]], dim=1))
            if i == 0 and self.att is not None:
                h, state = self.att(h, valid, state)
        return h * valid, valid, state


class InputLayer(nn.Module):
    """7x7 stride-2 partial conv, BN, ReLU: (masked image, valid) -> (features, valid)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.pconv = PartialConv2d(3, width, 7, 2, 3, bias=False)
        self.norm = nn.BatchNorm2d(width)

    def update_mask(self, valid: torch.Tensor) -> torch.Tensor:
        return self.pconv.update_mask(valid)[0]

    def forward(self, image, valid):
        x, valid = self.pconv(image, valid)
        return F.relu(self.norm(x)) * valid, valid


class DualDilatedBottom(nn.Module):
    """Two parallel dilated-conv branches (dilation 2 and 4), concatenated, 1x1 fused."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2

        def branch(d: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(channels, half, 3, 1, d, dilation=d), _act(),
                nn.Conv2d(half, half, 3, 1, d, dilation=d), _act(),
            )

        self.branch_a = branch(2)
        self.branch_b = branch(4)
        self.fuse = nn.Sequential(nn.Conv2d(2 * half, channels, 1), _act())

    def forward(self, x):
        return self.fuse(torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)) + x


class UNetGenerator(nn.Module):
    """U-Net over the merged half-resolution features; returns RGB in [0, 1] at full size.

    Encoder: gated convs (H/2 -> H/16; plain convs with ``gated=False``, the ablation).
    Bottom: :class:`DualDilatedBottom`. Decoder: transposed convs with skip concatenations up
    to H/2, one more to H, where the masked image and the hole mask are concatenated before a
    3x3 conv head.

    ``mirror=True`` (our extension, not the paper's): the first encoder conv also reads the
    merged map mirrored left-right and the known fraction of each 2x2 input block, as it is and
    mirrored, so a face's other side is a 3x3 neighbourhood away rather than half the image.
    """

    def __init__(self, width: int, widths: tuple[int, int, int], *, gated: bool = True, mirror: bool = False) -> None:
        super().__init__()
        u1, u2, u3 = widths
        self.width, self.widths, self.gated, self.mirror = width, (u1, u2, u3), gated, mirror
        down = _gated if gated else _plain
        self.mirror_channels = width + 2 if mirror else 0
        self.enc = nn.ModuleList([down(width + self.mirror_channels, u1, 2), down(u1, u2, 2), down(u2, u3, 2)])
        self.bottom = DualDilatedBottom(u3)
        self.dec = nn.ModuleList([_up(u3 + u3, u2), _up(u2 + u2, u1), _up(u1 + u1, width)])
        self.to_full = _up(width + width, width // 2)
        self.head = nn.Sequential(
            nn.Conv2d(width // 2 + 4, width // 2, 3, 1, 1), _act(),
            nn.Conv2d(width // 2, 3, 3, 1, 1),
        )

    def channel_groups(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...] | None]]:
        """Output and input channel groups of each layer whose width follows ``widths``, for
        :func:`facefill.models.widen.widen_into` (a gated conv's output is (feature, gate); a
        decoder step reads (upsampled, skip); the bottom's fuse reads its two branches; the
        first encoder conv reads (merged, mirror inputs), the second group empty without
        ``mirror``, so weights trained without it load into a mirrored U-Net unchanged)."""
        (u1, u2, u3), w, h = self.widths, self.width, self.widths[2] // 2
        enc = "conv" if self.gated else "0"
        pair = 2 if self.gated else 1
        return {
            f"enc.0.{enc}": ((u1,) * pair, (w, self.mirror_channels)),
            f"enc.1.{enc}": ((u2,) * pair, (u1,)),
            f"enc.2.{enc}": ((u3,) * pair, (u2,)),
            "bottom.branch_a.0": ((h,), (u3,)),
            "bottom.branch_a.2": ((h,), (h,)),
            "bottom.branch_b.0": ((h,), (u3,)),
            "bottom.branch_b.2": ((h,), (h,)),
            "bottom.fuse.0": ((u3,), (h, h)),
            "dec.0.0": ((u2,), (u3, u3)),
            "dec.0.1": ((u2,), None),
            "dec.1.0": ((u1,), (u2, u2)),
            "dec.1.1": ((u1,), None),
            "dec.2.0": ((w,), (u1, u1)),
            "dec.2.1": ((w,), None),
        }

    def forward(self, merged, masked_image, mask):
        x = merged
        if self.mirror:
            known = F.avg_pool2d(1.0 - mask, 2).to(merged.dtype)
            x = _cat_in_layout([merged, merged.flip(-1), known, known.flip(-1)], like=merged)
        skips = [merged, self.enc[0](x)]
        for enc in self.enc[1:]:
            skips.append(enc(skips[-1]))
        h = self.bottom(skips[-1])
        for i, dec in enumerate(self.dec):
            h = dec(torch.cat([h, skips[-1 - i]], dim=1))
        h = self.to_full(torch.cat([h, merged], dim=1))
        # The float32 inputs join in h's dtype (bf16 under autocast), not h in theirs.
        x = _cat_in_layout([h, masked_image.to(h.dtype), mask.to(h.dtype)], like=h)
        return torch.sigmoid(self.head(x))


@register_model(
    "apfi",
    kind="generator",
    presets={
        "paper": {
            "width": 64,
            "reasoning": (64, 128, 192),
            "unet": (128, 256, 256),
            "cycles": 6,
        },
        "small": {
            "width": 32,
            "reasoning": (32, 64, 96),
            "unet": (64, 128, 128),
            "cycles": 6,
        },
    },
    summary="APFI cyclic progressive generator (the paper's network)",
)
class APFIGenerator(InpaintingGenerator):
    """The APFI generator. ``G(image, mask, cycles=None) -> output``.

    ``image`` (B, 3, H, W) float in [0, 1]; ``mask`` (B, 1, H, W) binary, 1 = hole; H and
    W multiples of 16. Returns the composited output (known pixels bit-identical).

    Args:
        width: channels of the half-resolution features that cycle through the module.
        reasoning: encoder widths of the feature-reasoning block (H/4, H/8, H/16); KCA
            runs at H/8 on the second.
        unet: encoder widths of the U-Net (H/4, H/8, H/16).
        cycles: default number of APFI cycles (the paper's best is 6). The weights are
            shared, so ``G(image, mask, cycles=n)`` may use another count at inference.
        kernel_size: kernel of the area-identification partial convs (the valid region
            grows by ``2 * (kernel_size // 2)`` half-resolution pixels a cycle).
        kca: knowledge consistent attention in the reasoning block (False: the ablation
            "without KCA").
        gated_unet: gated convs in the U-Net's encoder, as the paper (False: plain convs,
            the ablation "without the gated encoder").
        separable: depthwise-separable area identification, our choice (False: two dense
            partial convs, as RFR-Net).
        reasoning_dilation: dilation of the gated conv at the bottom of the reasoning block,
            our choice (the paper does not say; 1: a plain 3x3, the ablation).
        mirror: the U-Net's first conv also sees the merged features mirrored left-right
            and where the input was known (see :class:`UNetGenerator`); our extension for
            roughly frontal, centred faces, off in both presets (the paper's network).
    """

    stride = 16
    #: Faster in channels_last at float32 too (oneDNN's depthwise and 1x1 convs, and KCA
    #: reads it without a copy); the inference paths put the model and inputs in that layout.
    channels_last_fp32 = True
    #: At inference a batch runs in chunks whose half-resolution feature map stays within
    #: this many bytes (cache-sized: at 256 px the paper preset's map is 4 MiB an image, and
    #: on a 2-core EPYC a batch of 8 ran 1.6x slower per image than chunks of 2, as its maps
    #: spilled out of the caches). Training and export see the whole batch; 0 switches it off.
    inference_chunk_bytes = 8 * 2**20
    #: What ``facefill._inference.compile_generator`` compiles: the forward of one chunk.
    compile_target = "_predict"

    def __init__(
        self,
        width: int = 64,
        reasoning: tuple[int, int, int] = (64, 128, 192),
        unet: tuple[int, int, int] = (128, 256, 256),
        cycles: int = 6,
        kernel_size: int = 7,
        kca: bool = True,
        gated_unet: bool = True,
        separable: bool = True,
        reasoning_dilation: int = 2,
        mirror: bool = False,
    ) -> None:
        super().__init__()
        if cycles < 1:
            raise ValueError(f"cycles must be >= 1, got {cycles}")
        if reasoning_dilation < 1:
            raise ValueError(f"reasoning_dilation must be >= 1, got {reasoning_dilation}")
        self.cycles = cycles
        self.input_layer = InputLayer(width)
        self.apfi = APFIModule(
            width, tuple(reasoning), kernel_size, kca=kca, separable=separable, reasoning_dilation=reasoning_dilation
        )
        self.merge = FeatureMerge(masked=True)  # every cycle's features are zero outside its map
        self.unet = UNetGenerator(width, tuple(unet), gated=gated_unet, mirror=mirror)

    def encoder_batchnorms(self) -> list[nn.Module]:
        return [self.input_layer.norm, self.apfi.identify_norm]

    def valid_maps(self, mask: torch.Tensor, cycles: int | None = None) -> list[torch.Tensor]:
        """Valid maps (B, 1, H/2, W/2) after the input layer and after each cycle.

        The same mask updates the forward pass uses; map ``i`` is what cycle ``i`` knows.
        """
        cycles = self.cycles if cycles is None else cycles
        v = self.input_layer.update_mask(1.0 - mask)
        maps = [v]
        for _ in range(cycles):
            v = self.apfi.update_mask(v)
            maps.append(v)
        return maps

    def _chunk(self, image: torch.Tensor) -> int:
        """Images per inference chunk for this input (the whole batch when not chunking)."""
        b, _, h, w = image.shape
        if (
            self.training or torch.is_grad_enabled() or not self.inference_chunk_bytes
            # tracing covers torch.onnx.export's TorchScript exporter; is_compiling, torch.export
            # (asking torch.onnx itself would import it into every first inference)
            or torch.jit.is_tracing() or torch.compiler.is_compiling()
        ):
            return b
        per_image = self.input_layer.pconv.out_channels * (h // 2) * (w // 2) * image.element_size()
        return max(1, min(b, self.inference_chunk_bytes // per_image))

    def predict(self, image, mask, cycles: int | None = None):
        cycles = self.cycles if cycles is None else cycles
        if cycles < 1:
            raise ValueError(f"cycles must be >= 1, got {cycles}")
        chunk = self._chunk(image)
        if chunk < len(image):  # every image is independent at inference (BatchNorm in eval)
            return torch.cat([
                self._predict(image[i : i + chunk], mask[i : i + chunk], cycles)
                for i in range(0, len(image), chunk)
            ])
        return self._predict(image, mask, cycles)

    def _predict(self, image, mask, cycles: int):
        x, v = self.input_layer(image, 1.0 - mask)
        features, valids, state = [x], [v], None
        for _ in range(cycles):
            x, v, state = self.apfi(x, v, state)
            features.append(x)
            valids.append(v)
        merged = self.merge(features, valids)
        return self.unet(merged, image, mask)
