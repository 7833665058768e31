"""Building blocks shared by facefill's networks.

Inside these layers masks are *valid* maps (1 = known pixel), the convention of the
partial-convolution paper; the public generator API uses hole masks (1 = missing) and
converts once at its entrance.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ._depthwise import depthwise_conv2d

__all__ = [
    "PartialConv2d",
    "GatedConv2d",
    "FeatureMerge",
    "KnowledgeConsistentAttention",
    "snconv2d",
]

_Pair = int | tuple[int, int]


class PartialConv2d(nn.Conv2d):
    """Partial convolution with NVIDIA's semantics (Liu et al., ECCV 2018).

    ``forward(x, valid) -> (y, new_valid)``. ``valid`` is (B, 1, H, W), broadcast over the
    input channels, or (B, C_in, H, W) for per-channel maps. The convolution sees
    ``x * valid``; each output is rescaled by ``window size / valid inputs in the window``
    (window size = ``mask channels * kh * kw``), the bias is added after rescaling, and
    outputs whose window holds no valid input are zero. ``new_valid`` (B, 1, H', W') is 1
    wherever the window touched a valid input. Any kernel size, stride, padding, dilation
    and group count; runs wherever ``nn.Conv2d`` does.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Pair,
        stride: _Pair = 1,
        padding: _Pair = 0,
        dilation: _Pair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )
        self.register_buffer(
            "_window", torch.ones(1, 1, *self.kernel_size), persistent=False
        )

    def _conv_forward(self, x, weight, bias):
        # A depthwise layer (APFI's area identification) takes the fast CPU weight gradient.
        if self.groups == self.in_channels == self.out_channels and bias is None and self.padding_mode == "zeros":
            return depthwise_conv2d(x, weight, self.stride, self.padding, self.dilation)
        return super()._conv_forward(x, weight, bias)

    def update_mask(self, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(new_valid, ratio)`` for a valid map, without touching features."""
        with torch.no_grad():
            channels = valid.shape[1]
            # Valid inputs per window: the channel sum under a 1-channel window of ones
            # (a fixed-shape kernel, so the layer exports to ONNX with a dynamic batch).
            count = F.conv2d(
                valid.sum(1, keepdim=True), self._window.to(valid.dtype), None,
                self.stride, self.padding, self.dilation,
            )
            new_valid = count.clamp(0, 1)
            size = float(channels * self.kernel_size[0] * self.kernel_size[1])
            ratio = size / (count + 1e-8) * new_valid
        return new_valid, ratio

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, valid: torch.Tensor, *, masked: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``masked=True`` says ``x`` is already zero wherever ``valid`` is 0 (a binary map
        broadcast over the channels), so the input masking, a full pass over ``x``, is skipped."""
        new_valid, ratio = self.update_mask(valid)
        raw = self._conv_forward(x if masked else x * valid, self.weight, None)
        out = raw * ratio
        if self.bias is not None:
            out = (out + self.bias.view(1, -1, 1, 1)) * new_valid
        return out, new_valid


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al., ICCV 2019): ``act(feature) * sigmoid(gate)``.

    One convolution produces both halves, so the cost is a single conv with twice the
    output channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels, 2 * out_channels, kernel_size, stride, padding, dilation
        )
        self.activation = activation if activation is not None else nn.ELU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature, gate = self.conv(x).chunk(2, dim=1)
        return self.activation(feature) * torch.sigmoid(gate)


class KnowledgeConsistentAttention(nn.Module):
    """Knowledge consistent attention (KCA) of RFR-Net (Li et al., CVPR 2020).

    Every position attends to all positions. Keys (and values) are the L2-normalised
    feature vectors; raw query features are scored against them, the scores are summed
    over each query's ``propagate`` x ``propagate`` neighbourhood and soft-maxed over all
    key positions. From the second cycle on, the scores are blended with the previous
    cycle's where the query was already known:
    ``s = (s_prev * m_prev + s_now * |lam|) / (m_prev + |lam|)``, ``lam`` learnable.
    The attended feature is concatenated with the input and reduced by a 1x1 conv.

    The cross-cycle state is passed explicitly: ``forward(x, valid, state)`` returns
    ``(out, new_state)``; a generator starts every forward call with ``state=None``, so
    nothing leaks between calls, batches or threads.
    """

    def __init__(self, channels: int, propagate: int = 3) -> None:
        super().__init__()
        self.propagate = propagate
        self.ratio = nn.Parameter(torch.ones(1))
        self.combine = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(
        self,
        x: torch.Tensor,
        valid: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, c, h, w = x.shape
        n = h * w
        if valid.shape[-2:] != (h, w):
            valid = F.interpolate(valid, size=(h, w), mode="nearest")
        query = x
        if self.propagate > 1:
            # The neighbourhood sum of the scores (RFR's ones-kernel conv, zero padded) is
            # linear in the query, so it is taken over the C query channels rather than
            # the N score maps: the same numbers, N / C times less work.
            p = self.propagate
            query = F.avg_pool2d(x, p, 1, p // 2, count_include_pad=True) * (p * p)
        # Positions by channels, (B, N, C): a view of a channels_last tensor, so nothing
        # is copied when the network runs in that layout.
        feats = x.permute(0, 2, 3, 1).reshape(b, n, c)
        keys = feats / (feats.square().sum(2, keepdim=True) + 1e-7).sqrt()
        # Scores (B, query, key): the softmax over keys runs along contiguous memory.
        scores = torch.bmm(query.permute(0, 2, 3, 1).reshape(b, n, c), keys.transpose(1, 2))
        scores = torch.softmax(scores, dim=2)
        if state is not None:
            # The state holds them as the (B, key, H, W) view of that storage.
            prev_scores, prev_valid = state
            prev_scores = prev_scores.flatten(2).transpose(1, 2)
            prev_valid = prev_valid.flatten(2).transpose(1, 2)  # (B, query, 1)
            lam = self.ratio.abs() + 1e-7
            # (prev * m + now * lam) / (m + lam), as one pass: now + m / (m + lam) * (prev - now).
            weight = (prev_valid / (prev_valid + lam)).to(scores.dtype)  # autocast: bf16 scores
            scores = torch.lerp(scores, prev_scores.to(scores.dtype), weight)
        attended = torch.bmm(scores, keys).view(b, h, w, c).permute(0, 3, 1, 2)  # channels_last
        if x.is_contiguous():  # keep a contiguous network contiguous (mixed layouts cost copies)
            attended = attended.contiguous()
        out = self.combine(torch.cat([attended, x], dim=1))
        return out, (scores.transpose(1, 2).view(b, n, h, w), valid)


class FeatureMerge(nn.Module):
    """Mask-weighted average per pixel and channel: ``sum(f_i v_i) / (sum(v_i) + eps)``.

    ``masked=True``: every feature map is already zero where its (binary) valid map is, so
    ``f_i v_i = f_i`` and the products, a full pass over each feature map, are skipped.
    """

    def __init__(self, masked: bool = False) -> None:
        super().__init__()
        self.masked = masked

    def forward(self, features: list[torch.Tensor], valids: list[torch.Tensor]) -> torch.Tensor:
        num = features[0] if self.masked else features[0] * valids[0]
        den = valids[0]
        for f, v in zip(features[1:], valids[1:]):
            num = num + (f if self.masked else f * v)
            den = den + v
        return num / (den + 1e-7)


def snconv2d(*args, **kwargs) -> nn.Module:
    """``nn.Conv2d`` under spectral normalisation (torch's parametrization)."""
    return spectral_norm(nn.Conv2d(*args, **kwargs))
