"""Image-quality metrics on composited outputs, wrapped once around torchmetrics.

All take ``pred`` and ``target`` float tensors (B, 3, H, W) in [0, 1] and return one value
per image (B,): PSNR in dB with data range 1 (identical images give ``max_psnr``, not inf),
SSIM with torchmetrics' defaults (11x11 Gaussian window, sigma 1.5, computed per RGB channel
and averaged, data range 1), and the mean absolute error.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

__all__ = ["psnr", "ssim", "l1_error", "MAX_PSNR"]

MAX_PSNR = 100.0  # reported for identical images, where PSNR is infinite


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
