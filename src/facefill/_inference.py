"""Running a generator at an inference precision: what :class:`~facefill.inpaint.Inpainter`,
:func:`~facefill.evaluate.evaluate` and the benchmarks share.

The precision itself is read by :func:`facefill._device.resolve_precision` (a dtype, or ``None``
for float32). Under a reduced precision the model and its inputs are channels_last (the layout
oneDNN's bf16 convolutions and cuDNN's tensor cores want), and so they are at float32 for a
generator whose ``channels_last_fp32`` says it runs faster that way (APFI). The forward runs under
:func:`facefill._device.autocast`, and the output comes back as float32. The inputs stay float32:
autocast casts inside the convolutions, so a generator's own composite
(``where(hole, raw, image)``) still copies the known pixels from the float32 image, and callers
re-apply the composite in float32 anyway.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

from ._device import autocast

__all__ = ["prepare_model", "run_generator", "uses_channels_last"]


def uses_channels_last(model: Any, dtype: torch.dtype | None) -> bool:
    """Whether ``model`` runs channels_last: under a reduced precision, and at float32 for a
    generator that says it is faster so (``channels_last_fp32``, e.g. APFI)."""
    return dtype is not None or bool(getattr(model, "channels_last_fp32", False))


def prepare_model(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """``model`` in place, channels_last where :func:`uses_channels_last` says so."""
    if uses_channels_last(model, dtype):
        model.to(memory_format=torch.channels_last)
    return model


def run_generator(
    generator: Callable[..., Any], image: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype | None, **kwargs: Any
) -> Any:
    """``generator(image, mask, **kwargs)`` under autocast to ``dtype``; a tensor output as float32.

    ``dtype=None`` is a plain float32 call. Not composited here: the caller owns the composite.
    """
    if uses_channels_last(generator, dtype):
        image = image.contiguous(memory_format=torch.channels_last)
        mask = mask.contiguous(memory_format=torch.channels_last)
    with autocast(image.device, dtype):
        out = generator(image, mask, **kwargs)
    if isinstance(out, torch.Tensor) and out.is_floating_point():
        out = out.float().contiguous()
    return out
