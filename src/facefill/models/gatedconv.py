"""DeepFill v2 (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019).

A two-stage generator built only from gated convolutions (:class:`facefill.layers.GatedConv2d`:
ELU features times a sigmoid gate), and its critic, SN-PatchGAN.

- Coarse network: the image with the hole zeroed (in the [-1, 1] range of the released code,
  so the hole reads as mid-grey), a channel of ones and the mask; a 5x5 gated conv, two
  stride-2 downsamplings, dilated gated convs with rates 2, 4, 8, 16, and two upsamplings
  (nearest x2 then a gated conv); a plain 3x3 conv and tanh give the coarse image.
- Refinement network, fed the coarse result composited into the known pixels: a dilated-conv
  branch ("hallucination") and a contextual-attention branch
  (:class:`ContextualAttention`), both at 1/4 resolution; their features are concatenated
  and decoded as in the coarse network.

Widths follow the released code: ``width`` (its ``cnum``, 48 in the paper) is the output
count of each gated layer's convolution, half of which gates the other half, so a layer
named ``c`` channels there returns ``c / 2`` features. The ``paper`` preset has 4,052,478
parameters (the paper quotes 4.1 M). ``tanh`` outputs are mapped to [0, 1] (``(t + 1) / 2``).
Initialisation deviates from the released code (TensorFlow's Glorot uniform), which makes
the signal vanish through a stage's 16 gated layers; see :meth:`DeepFillV2.reset_parameters`.

Deviations, each on purpose: the attention uses every sample's own mask (the released code
takes the batch's first mask), marks a background position as a hole when any pixel of its
footprint is one (max-pooling the mask, not nearest subsampling), soft-maxes over the
background positions only (hole positions get exactly zero weight; the released code keeps
them, at score 0, inside the softmax and zeroes them afterwards) and propagates attention
over a true 3x3 spatial neighbourhood (the released code's reshape trick wraps around at row
ends).

Resampling deviates too, documented rather than matched: the release resizes through
neuralgym's ``resize``, passing ``tf.image.resize_nearest_neighbor`` (the wrapper's default
would be bilinear) with TF1's ``align_corners=True``, for the x2 upsamplings and for the
1/rate downscaling of foreground, background and mask in the attention. Aligned corners
sample pixel ``round(i (H_in - 1) / (H_out - 1))``, so the first and the last pixel are both
kept; ours are torch's nearest upsampling (pixel ``floor(i / 2)``, each pixel repeated
twice) and strided slicing ``[::rate]`` (pixels 0, rate, 2 rate, ...), with max-pooling for
the mask as said above. The sizes and every parameter are the same; the picked pixels
differ by at most one position, towards the far edge. We keep torch's convention because
it is the one every other model here uses and it exports to ONNX as a plain ``Resize``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from ..layers import GatedConv2d, snconv2d
from .base import InpaintingGenerator, check_int
from .registry import register_model

__all__ = ["ContextualAttention", "DeepFillV2", "SNPatchGAN"]


# -- contextual attention ----------------------------------------------------------------


class ContextualAttention(nn.Module):
    """Contextual attention (DeepFill v1, CVPR 2018; reused by v2), batched.

    ``forward(f, b, mask) -> y`` with ``f`` (foreground) and ``b`` (background) features of
    shape (B, C, H, W), H and W multiples of ``rate``, and ``mask`` (B, 1, h, w) binary,
    1 = hole, at any resolution that is a multiple of H / rate. Steps:

    1. ``f`` and ``b`` are subsampled by ``rate``; the ``patch`` x ``patch`` patches of the
       subsampled ``b`` (stride 1), normalised to unit L2 norm, are the kernels with which
       every foreground patch is correlated: a cosine-like score per (background, foreground)
       pair, computed for the whole batch by one batched matrix product.
    2. ``fuse``: the score of a pair is summed with those of the pairs shifted together by
       each offset of a ``fuse_k`` x ``fuse_k`` window (attention propagation).
    3. Background positions whose ``patch`` window touches the hole are masked out; a softmax
       with ``scale`` over the remaining background positions gives the weights.
    4. The output is the weighted sum of the raw ``2 rate`` x ``2 rate`` background patches
       of ``b`` at full resolution (a transposed convolution with stride ``rate``), divided
       by the 4 patches that overlap at every pixel.

    ``return_attention=True`` also returns the weights (B, L, H / rate, W / rate), ``L`` the
    background positions in row-major order; they sum to 1 over ``L`` at every foreground
    position, or are all zero where no background position is valid (then ``y`` is zero).
    """

    def __init__(
        self,
        patch: int = 3,
        rate: int = 2,
        fuse_k: int = 3,
        scale: float = 10.0,
        fuse: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("patch", patch), ("fuse_k", fuse_k)):
            if not isinstance(value, int) or value < 1 or value % 2 == 0:
                raise InputError(f"{name} must be a positive odd int, got {value!r}")
        check_int("rate", rate)
        self.patch, self.rate, self.fuse_k = patch, rate, fuse_k
        self.scale, self.fuse = float(scale), fuse

    def _fuse(self, scores: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Sum each (background q, foreground p) score over (q + d, p + d), d in the window."""
        b = scores.shape[0]
        p = self.fuse_k // 2
        s = F.pad(scores.view(b, h, w, h, w), (p, p) * 4)
        out = torch.zeros_like(scores).view(b, h, w, h, w)
        for dy in range(2 * p + 1):
            for dx in range(2 * p + 1):
                out = out + s[:, dy : dy + h, dx : dx + w, dy : dy + h, dx : dx + w]
        return out.reshape(b, h * w, h * w)

    def forward(
        self,
        f: torch.Tensor,
        b: torch.Tensor,
        mask: torch.Tensor,
        return_attention: bool = False,
    ):
        if f.shape != b.shape:
            raise InputError(f"f and b must have the same shape, got {tuple(f.shape)} and {tuple(b.shape)}")
        n, c, H, W = b.shape
        r = self.rate
        if H % r or W % r:
            raise InputError(f"feature height and width must be multiples of rate={r}, got {H}x{W}")
        h, w = H // r, W // r
        k, pad = self.patch, self.patch // 2

        # 1. Cosine scores of every foreground patch against every background patch.
        fs, bs = f[:, :, ::r, ::r], b[:, :, ::r, ::r]
        keys = F.unfold(bs, k, padding=pad).float()  # (B, C k k, L)
        keys = keys / keys.norm(dim=1, keepdim=True).clamp_min(1e-4)
        queries = F.unfold(fs, k, padding=pad).float()  # (B, C k k, N)
        scores = torch.bmm(keys.transpose(1, 2), queries).float()  # (B, L, N), fp32 under autocast

        # 2. Attention propagation.
        if self.fuse and self.fuse_k > 1:
            scores = self._fuse(scores, h, w)

        # 3. Softmax over the valid background positions only.
        hole = F.adaptive_max_pool2d(mask.float(), (h, w))
        hole = F.max_pool2d(hole, k, 1, pad)  # a background patch touching the hole
        valid = (hole == 0).flatten(1).unsqueeze(2)  # (B, L, 1)
        logits = (scores * self.scale).masked_fill(~valid, -1e9)
        attention = torch.softmax(logits, dim=1) * valid  # all zero when nothing is valid

        # 4. Paste the raw (2 rate x 2 rate) background patches with these weights.
        raw_k = 2 * r
        before, after = r // 2, r - r // 2
        padded = F.pad(b, (before, after, before, after))
        raw = F.unfold(padded, raw_k, stride=r)  # (B, C 4r^2, L)
        cols = torch.bmm(raw, attention.to(raw.dtype))  # (B, C 4r^2, N)
        y = F.fold(cols, (H + r, W + r), raw_k, stride=r)
        y = y[:, :, before : before + H, before : before + W] / 4.0
        if return_attention:
            return y, attention.view(n, h * w, h, w)
        return y


# -- the generator -----------------------------------------------------------------------


_GATED_GAIN = 2.5


def _gated(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1, act=None) -> GatedConv2d:
    return GatedConv2d(cin, cout, kernel, stride, dilation=dilation, activation=act)


class _Up(nn.Sequential):
    """Nearest-neighbour x2, then a 3x3 gated conv (the released code's ``gen_deconv``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2.0, mode="nearest"), _gated(cin, cout))


def _dilated(c: int) -> list[nn.Module]:
    return [_gated(c, c, dilation=d) for d in (2, 4, 8, 16)]


def _decoder(cin: int, w: int) -> nn.Sequential:
    """Two 3x3 gated convs at 1/4, two upsamplings, a narrow gated conv, a plain 3x3 conv."""
    return nn.Sequential(
        _gated(cin, 4 * w), _gated(4 * w, 4 * w),
        _Up(4 * w, 2 * w), _gated(2 * w, 2 * w),
        _Up(2 * w, w), _gated(w, w // 2),
        nn.Conv2d(w // 2, 3, 3, 1, 1), nn.Tanh(),
    )


@register_model(
    "gatedconv",
    kind="generator",
    presets={"paper": {"width": 48}, "small": {"width": 24}},
    summary="DeepFill v2 (ICCV 2019): gated convs, coarse-to-fine, contextual attention",
)
class DeepFillV2(InpaintingGenerator):
    """DeepFill v2 generator. ``G(image, mask) -> output`` as every facefill generator.

    ``image`` (B, 3, H, W) in [0, 1], ``mask`` (B, 1, H, W) binary with 1 = hole; H and W
    multiples of ``stride = 8`` (two stride-2 downsamplings, then the attention's rate 2).
    ``G(image, mask, return_parts=True)`` gives ``{"raw": refined, "coarse": coarse,
    "output": composite}``, ``raw`` and ``coarse`` being predictions in [0, 1] for every
    pixel (what the DeepFill loss needs).

    Args:
        width: the released code's ``cnum`` (48 in the paper); gated layers return
            ``width / 2``, ``width``, ``2 width`` features at full, 1/2 and 1/4 resolution.
            A multiple of 4.
        attention_rate: subsampling of the features before patch matching (2 in the paper).
        softmax_scale: the attention's softmax scale (10 in the paper).
        fuse: attention propagation (on in the paper).
    """

    stride = 8

    def __init__(
        self,
        width: int = 48,
        attention_rate: int = 2,
        softmax_scale: float = 10.0,
        fuse: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 4 or width % 4:
            raise InputError(f"width must be a positive multiple of 4, got {width!r}")
        self.stride = 4 * attention_rate
        w = width // 2  # features returned by a layer of `width` conv channels
        self.coarse = nn.Sequential(
            _gated(5, w, 5),
            _gated(w, 2 * w, stride=2), _gated(2 * w, 2 * w),
            _gated(2 * w, 4 * w, stride=2), _gated(4 * w, 4 * w), _gated(4 * w, 4 * w),
            *_dilated(4 * w),
            _decoder(4 * w, w),
        )
        self.hallucinate = nn.Sequential(
            _gated(3, w, 5),
            _gated(w, w, stride=2), _gated(w, 2 * w),
            _gated(2 * w, 2 * w, stride=2), _gated(2 * w, 4 * w), _gated(4 * w, 4 * w),
            *_dilated(4 * w),
        )
        self.attend_in = nn.Sequential(
            _gated(3, w, 5),
            _gated(w, w, stride=2), _gated(w, 2 * w),
            _gated(2 * w, 4 * w, stride=2), _gated(4 * w, 4 * w),
            _gated(4 * w, 4 * w, act=nn.ReLU()),
        )
        self.attention = ContextualAttention(3, attention_rate, 3, softmax_scale, fuse)
        self.attend_out = nn.Sequential(_gated(4 * w, 4 * w), _gated(4 * w, 4 * w))
        self.refine = _decoder(8 * w, w)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Gated convs: N(0, (2.5 / sqrt(fan_in))^2), measured to keep the activations' scale
        through the 16 gated layers of a stage (Glorot, the released code's, shrinks it ~1e6
        times at that depth: ELU times a sigmoid gate loses most of the variance). The two
        RGB output convs: Glorot uniform, so the first predictions start near mid-grey.
        Biases zero."""
        gated = {id(m.conv) for m in self.modules() if isinstance(m, GatedConv2d)}
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if id(m) in gated:
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    nn.init.normal_(m.weight, 0.0, _GATED_GAIN / fan_in**0.5)
                else:
                    nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def parts(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        hole = mask > 0.5
        m = hole.to(image.dtype)
        x = (image * 2 - 1).masked_fill(hole, 0.0)  # [-1, 1], hole at 0 as the released code
        coarse = self.coarse(torch.cat([x, torch.ones_like(m), m], dim=1))
        pasted = torch.where(hole, coarse.to(x.dtype), x)
        att = self.attend_out(self.attention(*(self.attend_in(pasted),) * 2, m))
        refined = self.refine(torch.cat([self.hallucinate(pasted), att], dim=1))
        coarse01 = ((coarse + 1) / 2).to(image.dtype)
        raw = ((refined + 1) / 2).to(image.dtype)
        return {"raw": raw, "coarse": coarse01, "output": torch.where(hole, raw, image)}


# -- the critic --------------------------------------------------------------------------


@register_model(
    "sn_patchgan",
    kind="discriminator",
    presets={"paper": {"width": 64}, "small": {"width": 32}},
    summary="SN-PatchGAN (DeepFill v2): six 5x5 stride-2 spectrally normalised convs",
)
class SNPatchGAN(nn.Module):
    """DeepFill v2's critic: every element of its output feature map is a score.

    Six 5x5 stride-2 convolutions (``width`` x 1, 2, 4, 4, 4, 4 channels: 64 ... 256 in the
    paper), each spectrally normalised and followed by LeakyReLU(0.2), the last one
    included, as in the released code. ``D(image, mask)``: image (B, 3, H, W) in [0, 1]
    (mapped to the released code's [-1, 1] inside), mask (B, 1, H, W), 1 = hole; returns
    (B, 4 width, ceil(H / 64), ceil(W / 64)) unbounded scores for the hinge loss.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        check_int("width", width)
        channels = [4] + [width * m for m in (1, 2, 4, 4, 4, 4)]
        layers: list[nn.Module] = []
        for cin, cout in zip(channels, channels[1:]):
            layers += [snconv2d(cin, cout, 5, 2, 2), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)

    @staticmethod
    def example_inputs(image: torch.Tensor, mask: torch.Tensor) -> tuple:
        """The arguments of one typical call (what facefill.cost counts)."""
        return image, mask

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if mask is None or mask.shape[1] != 1 or mask.shape[2:] != image.shape[2:]:
            raise InputError("sn_patchgan needs the (B, 1, H, W) hole mask of the image it scores")
        return self.net(torch.cat([image * 2 - 1, mask.to(image.dtype)], dim=1))
