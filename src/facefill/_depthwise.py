"""A depthwise convolution whose weight gradient is fast on the CPU.

APFI identifies areas with depthwise 7x7 partial convs (``SeparablePartialConv``). On the CPU,
PyTorch's oneDNN backend computes their forward and input gradient with its depthwise kernels,
but for the weight gradient of a channels_last input it picks a generic grouped-conv kernel:
with (8, 32, 64, 64) features (APFI small at 128 px) the forward takes 0.6-0.8 ms and the
weight gradient about 9 ms in fp32 and 11 ms in bf16 on this project's 2-core Zen 4, over a third
of the generator's whole backward pass in bf16, and slower in bf16 than in fp32.

The weight gradient of a depthwise conv is, channel by channel, the correlation of the padded
input with the output gradient, summed over the batch:

    dW[c, i, j] = sum_{b, h, w} x_pad[b, c, h*s + i*d, w*s + j*d] * g[b, c, h, w]

(s the stride, d the dilation). That is itself a depthwise convolution *forward*, with the
roles turned: one image whose B*C channels are the (batch, channel) pairs of ``x_pad``, each
channel convolved with its own (H_out, W_out) kernel ``g[b, c]`` dilated by s at stride d,
giving a (K_h, K_w) output per pair; the sum over the batch follows. oneDNN runs that forward
with its fast depthwise kernel. Forward and backward together, ``python
benchmarks/depthwise_grad.py`` (``benchmarks/results/depthwise-grad-2026-12-06.md``): APFI small
at 128 px 11.4 -> 7.1 ms in fp32 and 11.9 -> 4.6 ms in bf16; the paper preset at 256 px
67.6 -> 45.6 and 95.9 -> 29.0 ms.

The input gradient has the same trouble, mildly for APFI's kernels and badly for dilated ones,
and the same cure: at stride 1 it is a depthwise conv forward of the output gradient with the
kernel turned by 180 degrees (:func:`depthwise_input_grad`).

:func:`depthwise_conv2d` uses both where they pay (CPU, a gradient wanted, zero padding) and is
plain ``F.conv2d`` everywhere else (GPU, inference, tracing, ONNX export, the ``meta`` device).
Under CPU autocast it casts as autocast casts a conv (input and weight to the autocast dtype)
and runs in that dtype, so its outputs and gradients have the dtypes and layouts of the plain
conv's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

__all__ = ["depthwise_conv2d", "depthwise_input_grad", "depthwise_weight_grad"]

_Pair = tuple[int, int]


def depthwise_weight_grad(
    x: torch.Tensor, grad: torch.Tensor, kernel_size: _Pair, stride: _Pair, padding: _Pair, dilation: _Pair
) -> torch.Tensor:
    """The gradient (C, 1, K_h, K_w) of a depthwise conv's weight, from its input ``x``
    (B, C, H, W) and output gradient ``grad`` (B, C, H_out, W_out): a depthwise conv forward
    over the B*C (batch, channel) pairs, summed over the batch in float32 (float64 for float64) and returned in
    ``x``'s dtype."""
    b, c, h, w = x.shape
    (kh, kw), (ph, pw) = kernel_size, padding
    # x_pad as one channels_last image of B*C channels: (Hp, Wp, B, C) in memory.
    pairs = x.new_zeros(h + 2 * ph, w + 2 * pw, b, c)
    pairs[ph : ph + h, pw : pw + w] = x.permute(2, 3, 0, 1)
    pairs = pairs.view(1, h + 2 * ph, w + 2 * pw, b * c).permute(0, 3, 1, 2)
    kernels = grad.reshape(b * c, 1, *grad.shape[2:])
    corr = F.conv2d(pairs, kernels, None, stride=dilation, dilation=stride, groups=b * c)
    corr = corr[:, :, :kh, :kw]  # a stride that does not divide the input leaves a margin
    total = torch.float64 if x.dtype == torch.float64 else torch.float32
    return corr.reshape(b, c, kh, kw).sum(0, dtype=total).view(c, 1, kh, kw).to(x.dtype)


def depthwise_input_grad(
    grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: _Pair, padding: _Pair, dilation: _Pair
) -> torch.Tensor:
    """The gradient of a depthwise conv's input ``x``, from its output gradient ``grad``.

    At stride 1 it is the depthwise conv of ``grad`` with the kernel turned by 180 degrees and
    padded by ``dilation * (K - 1) - padding``, which oneDNN runs with its fast forward kernel;
    its own backward-data kernel is a little slower for APFI's undilated 7x7 ((8, 32, 64, 64)
    channels_last features on the 2-core Zen 4: 1.5 -> 1.0 ms in bf16, 1.0 -> 0.8 ms in fp32) and
    much slower for a dilated one (dilation 2: 19.4 -> 1.4 ms, 9.1 -> 0.7 ms). Other strides, and a
    padding wider than the kernel's reach, go to ``aten.convolution_backward``."""
    (kh, kw), (ph, pw), (dh, dw) = weight.shape[2:], padding, dilation
    turned = (dh * (kh - 1) - ph, dw * (kw - 1) - pw)
    if tuple(stride) == (1, 1) and min(turned) >= 0:
        return F.conv2d(grad, weight.flip(2, 3), None, 1, turned, dilation, weight.shape[0])
    return torch.ops.aten.convolution_backward(
        grad, x, weight, None, stride, padding, dilation, False, [0, 0], weight.shape[0],
        [True, False, False],
    )[0]


class _DepthwiseConv2d(torch.autograd.Function):
    """``F.conv2d(x, weight, groups=C)``, its input gradient from :func:`depthwise_input_grad`,
    its weight gradient from :func:`depthwise_weight_grad`."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation)
        return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable  # no second derivative: refused, not wrong
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conf
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = depthwise_input_grad(grad, x, weight, stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(x, grad, tuple(weight.shape[2:]), stride, padding, dilation)
        return grad_x, grad_w, None, None, None


def depthwise_conv2d(
    x: torch.Tensor, weight: torch.Tensor, stride=1, padding=0, dilation=1
) -> torch.Tensor:
    """``F.conv2d(x, weight, None, stride, padding, dilation, groups=C)`` for a depthwise
    ``weight`` (C, 1, K_h, K_w) without bias, with the fast CPU weight gradient where a
    gradient is wanted (see the module's docstring); identical values either way."""
    fast = (
        x.device.type == "cpu"
        and x.dim() == 4
        and weight.requires_grad
        and torch.is_grad_enabled()
        and not isinstance(padding, str)
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.onnx.is_in_onnx_export()
    )
    if not fast:
        return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])
    if torch.is_autocast_enabled("cpu"):  # what autocast does to a conv's operands
        dtype = torch.get_autocast_dtype("cpu")
        x, weight = (t.to(dtype) if t.dtype != torch.float64 else t for t in (x, weight))
    with torch.autocast("cpu", enabled=False):
        return _DepthwiseConv2d.apply(x, weight, _pair(stride), _pair(padding), _pair(dilation))
