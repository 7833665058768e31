"""The depthwise conv with the CPU weight gradient (``facefill._depthwise``) and the allocator
setting (``facefill._memory.retain_freed_memory``): both exist for training speed on the CPU, so
what is tested is that they change nothing else."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from facefill._depthwise import depthwise_conv2d, depthwise_weight_grad
from facefill.layers import PartialConv2d

# kernel, stride, padding, dilation, input size: square and not, strides that do not divide the
# input (the correlation's margin is cut), dilation, no padding.
CASES = [
    (7, 1, 3, 1, (9, 11)),
    (3, 2, 1, 1, (9, 10)),
    (3, 1, 2, 2, (8, 8)),
    (5, 2, 0, 1, (12, 9)),
    ((3, 5), (1, 2), (1, 2), (2, 1), (10, 11)),
    (7, 1, 6, 2, (10, 9)),  # dilated, stride 1: input gradient as a turned-kernel forward
    ((3, 5), 1, (2, 1), (2, 1), (7, 9)),  # the same, rectangular
    (3, 1, 3, 1, (6, 7)),  # padding beyond the kernel's reach: input gradient from aten
]


def _kernel(k):
    return (k, k) if isinstance(k, int) else k


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("k, s, p, d, size", CASES)
def test_gradients_are_exact(k, s, p, d, size, layout):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    w = torch.randn(3, 1, *_kernel(k), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: depthwise_conv2d(a, b, s, p, d), (x, w))
    ours = depthwise_conv2d(x, w, s, p, d)
    plain = F.conv2d(x, w, None, s, p, d, 3)
    assert ours.grad_fn.name() == "_DepthwiseConv2dBackward"  # the fast path was taken
    assert torch.equal(ours, plain)
    g = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(plain, (x, w), g)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_weight_grad_is_the_correlation_by_hand():
    # dW[c, i, j] = sum_{b, h, w} x_pad[b, c, h*s + i*d, w*s + j*d] * g[b, c, h, w]
    torch.manual_seed(1)
    x, s, p, d, k = torch.randn(2, 2, 7, 6, dtype=torch.float64), 2, 1, 2, 3
    hout = (7 + 2 * p - d * (k - 1) - 1) // s + 1
    wout = (6 + 2 * p - d * (k - 1) - 1) // s + 1
    g = torch.randn(2, 2, hout, wout, dtype=torch.float64)
    xp = F.pad(x, (p, p, p, p))
    expect = torch.zeros(2, 1, k, k, dtype=torch.float64)
    for i in range(k):
        for j in range(k):
            window = xp[:, :, i * d : i * d + s * (hout - 1) + 1 : s, j * d : j * d + s * (wout - 1) + 1 : s]
            expect[:, 0, i, j] = (window * g).sum((0, 2, 3))
    torch.testing.assert_close(depthwise_weight_grad(x, g, (k, k), (s, s), (p, p), (d, d)), expect)


def test_bf16_autocast_matches_the_plain_conv_in_dtype_and_layout():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 20, 20).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(16, 1, 7, 7, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = depthwise_conv2d(x, w, 1, 3, 1)
        plain = F.conv2d(x, w, None, 1, 3, 1, 16)
    assert ours.dtype == plain.dtype == torch.bfloat16
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours, plain)  # the same bf16 operands through the same forward kernel
    g = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(plain, (x, w), g)):
        assert a.dtype == b.dtype == torch.float32
        for layout in (torch.contiguous_format, torch.channels_last):
            assert a.is_contiguous(memory_format=layout) == b.is_contiguous(memory_format=layout)
        torch.testing.assert_close(a, b, rtol=0.02, atol=0.02 * b.abs().max().item())


def test_plain_conv_where_no_weight_gradient_is_wanted():
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    w = torch.randn(4, 1, 3, 3)
    assert depthwise_conv2d(x, w, 1, 1, 1).grad_fn.name() == "ConvolutionBackward0"  # frozen weight
    w.requires_grad_()
    with torch.no_grad():
        assert depthwise_conv2d(x, w, 1, 1, 1).grad_fn is None
    meta = depthwise_conv2d(x.to("meta"), w.to("meta"), 1, 1, 1)  # shapes only (facefill._memory)
    assert meta.shape == (1, 4, 8, 8)


def test_depthwise_partial_conv_takes_it_and_dense_ones_do_not():
    torch.manual_seed(0)
    dw = PartialConv2d(6, 6, 7, 1, 3, groups=6, bias=False)
    dense = PartialConv2d(6, 6, 3, 1, 1, bias=False)
    x, valid = torch.randn(2, 6, 12, 12), (torch.rand(2, 1, 12, 12) > 0.3).float()
    y, _ = dw(x, valid)
    assert y.grad_fn.next_functions[0][0].name() == "_DepthwiseConv2dBackward"
    (grad,) = torch.autograd.grad(y.sum(), dw.weight)
    ref = F.conv2d(x * valid, dw.weight, None, 1, 3, 1, 6)
    (ref_grad,) = torch.autograd.grad((ref * dw.update_mask(valid)[1]).sum(), dw.weight)
    torch.testing.assert_close(grad, ref_grad)
    y, _ = dense(x, valid)
    assert y.grad_fn.next_functions[0][0].name() == "ConvolutionBackward0"


def test_retain_freed_memory_keeps_a_freed_large_block_in_the_heap():
    # In a child process: the setting is process-wide and cannot be undone.
    code = textwrap.dedent(
        """
        import ctypes, torch
        from facefill._memory import retain_freed_memory

        class Info(ctypes.Structure):  # glibc's struct mallinfo2
            _fields_ = [(n, ctypes.c_size_t) for n in
                        ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                         "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = Info
        big = 64 << 20
        t = torch.empty(big, dtype=torch.uint8).fill_(1)
        mapped = libc.mallinfo2().hblkhd  # served by mmap: counted as mapped
        del t
        assert retain_freed_memory()
        t = torch.empty(big, dtype=torch.uint8).fill_(1)
        info = libc.mallinfo2()
        assert mapped >= big and info.hblkhd < big, (mapped, info.hblkhd)  # now from the heap
        del t
        assert libc.mallinfo2().fordblks >= big  # freed, and kept for the next step
        print("ok")
        """
    )
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc only")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
