"""Image-quality metrics on composited outputs, wrapped once around torchmetrics.

All take ``pred`` and ``target`` float tensors (B, 3, H, W) in [0, 1] and return one value
per image (B,): PSNR in dB with data range 1 (identical images give ``max_psnr``, not inf),
SSIM with torchmetrics' defaults (11x11 Gaussian window, sigma 1.5, computed per RGB channel
and averaged, data range 1), and the mean absolute error.

Two diagnostics of the hole, which take the mask too ((B, 1, H, W), 1 = hole):
:func:`hole_gradient` (how much texture the fill has; a blurry fill has less than the ground
truth) and :func:`saturated_blocks` (flat white or black blocks a generator got stuck at).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

__all__ = ["psnr", "ssim", "l1_error", "hole_gradient", "saturated_blocks", "MAX_PSNR", "SATURATED_SIDE", "SATURATED_TOLERANCE"]

MAX_PSNR = 100.0  # reported for identical images, where PSNR is infinite
SATURATED_SIDE = 8  # side of the smallest flat block saturated_blocks counts
# How far (uint8 levels, in some channel) the ground truth must be from 0 or 255 for a stuck
# pixel to count: a near-white background (JPEG leaves it at 252-254) filled pure white is right.
SATURATED_TOLERANCE = 8


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"pred and target must both be (B, C, H, W) of one shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    _check(pred, target)
    pred, target = pred.float().clamp(0, 1), target.float()
    values = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return values.nan_to_num(posinf=MAX_PSNR).clamp(max=MAX_PSNR)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    _check(pred, target)
    return structural_similarity_index_measure(
        pred.float().clamp(0, 1), target.float(), data_range=1.0, reduction="none"
    )


def l1_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    _check(pred, target)
    return (pred.float() - target.float()).abs().flatten(1).mean(1)


def _check_mask(image: torch.Tensor, mask: torch.Tensor) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(image.shape)}")
    b, _, h, w = image.shape
    if tuple(mask.shape) != (b, 1, h, w):
        raise ValueError(f"mask must be (B, 1, H, W) = {(b, 1, h, w)}, got {tuple(mask.shape)}")


def hole_gradient(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean Sobel gradient magnitude of the luma inside the hole, per image (B,).

    Luma ``0.299 R + 0.587 G + 0.114 B`` of ``image`` in [0, 1]; 3x3 Sobel (unnormalised:
    ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` and its transpose) on the whole image with
    reflect padding; ``sqrt(gx^2 + gy^2)`` averaged over the pixels where ``mask > 0.5``.
    An image without hole pixels gives 0. Compare a method's composite with the ground truth's
    value: a ratio below 1 means a smoother (blurrier) fill.

    >>> flat = torch.full((1, 3, 8, 8), 0.5)
    >>> hole_gradient(flat, torch.ones(1, 1, 8, 8)).tolist()
    [0.0]
    """
    _check_mask(image, mask)
    x = image.float()
    luma = F.pad(0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3], (1, 1, 1, 1), mode="reflect")[:, 0]
    # Separable Sobel: a central difference, then (1, 2, 1) across it. Differences first make a
    # flat neighbourhood give exactly 0 (a 3x3 convolution leaves float rounding there).
    dx = luma[:, :, 2:] - luma[:, :, :-2]  # (B, H + 2, W)
    dy = luma[:, 2:, :] - luma[:, :-2, :]  # (B, H, W + 2)
    gx = dx[:, :-2] + 2 * dx[:, 1:-1] + dx[:, 2:]
    gy = dy[:, :, :-2] + 2 * dy[:, :, 1:-1] + dy[:, :, 2:]
    magnitude = (gx * gx + gy * gy).sqrt()
    hole = (mask[:, 0] > 0.5).float()
    return (magnitude * hole).flatten(1).sum(1) / hole.flatten(1).sum(1).clamp(min=1)


def saturated_blocks(
    output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, side: int = SATURATED_SIDE,
    tolerance: int = SATURATED_TOLERANCE,
) -> torch.Tensor:
    """Whether each image's output has a flat saturated block in the hole (B,) bool.

    Both images are quantised to uint8 (``round(clamp(x, 0, 1) * 255)``). A pixel is *stuck
    white* when it is in the hole, the output is (255, 255, 255) and the ground truth is not;
    *stuck black* likewise with (0, 0, 0). An image counts when it has a ``side`` x ``side``
    square (default 8) of stuck-white pixels, or one of stuck-black pixels. White hair or a
    black background that really is there does not count, nor does a smaller speck.
    """
    _check_mask(output, mask)
    if output.shape != target.shape:
        raise ValueError(f"output and target must have one shape, got {tuple(output.shape)} and {tuple(target.shape)}")
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ValueError(f"side must be a positive int, got {side!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or not 0 <= tolerance < 255:
        raise ValueError(f"tolerance must be an int in [0, 255), got {tolerance!r}")
    out = output.float().clamp(0, 1).mul(255).round()
    gt = target.float().clamp(0, 1).mul(255).round()
    hole = mask[:, 0] > 0.5
    found = torch.zeros(output.shape[0], dtype=torch.bool, device=output.device)
    if min(output.shape[-2:]) < side:
        return found
    for level in (0.0, 255.0):
        stuck = hole & (out == level).all(1) & ((gt - level).abs().amax(1) > tolerance)
        # a side x side square of stuck pixels <=> the window's minimum is 1
        full = -F.max_pool2d(-stuck.float().unsqueeze(1), side, stride=1)
        found |= full.flatten(1).amax(1) > 0.5
    return found
