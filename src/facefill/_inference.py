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

:func:`compile_generator` puts a generator's network under ``torch.compile`` (inductor, with
freezing: the weights become constants, batch norms are folded into the convolutions and the
convolution weights are pre-packed for oneDNN). It is opt-in (``Inpainter(compile=True)``,
``facefill serve --compile``): the first call at each input shape compiles for tens of seconds,
so it pays only in a long-lived process. Where it cannot run it says why in one line and the
generator stays eager.
"""

from __future__ import annotations

import logging
import shutil
import sys
from typing import Any, Callable

import torch
import torch.nn as nn

from ._device import autocast

__all__ = [
    "compile_generator", "compile_unavailable", "prepare_model", "run_generator", "uncompile_generator",
    "uses_channels_last",
]

logger = logging.getLogger(__name__)


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


def compile_unavailable(device: torch.device | str) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here (checked before trying), or ``None``."""
    try:
        import torch._dynamo as dynamo
    except Exception as e:  # a torch built without dynamo
        return f"torch._dynamo does not import ({type(e).__name__}: {e})"
    if not dynamo.is_dynamo_supported():
        return f"torch.compile is not supported on Python {sys.version.split()[0]} with torch {torch.__version__}"
    if torch.device(device).type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "no C++ compiler on PATH (inductor's CPU backend compiles C++)"
    return None


def compile_generator(model: nn.Module, device: torch.device | str = "cpu", *, fallback: bool = True) -> str | None:
    """Compile ``model``'s network in place for inference; ``None`` when it did, else why not.

    What is compiled is the method named by the model's ``compile_target`` (default
    ``"predict"``; APFI names the per-chunk forward, so its batch splitting stays eager and one
    compiled graph serves every chunk), as an instance attribute that shadows the method: input
    checks, the composite and the Poisson blend (an iterative solver) stay eager. Inductor
    compiles with ``freezing``, which needs inference mode (``torch.inference_mode()`` or
    ``no_grad``) and takes the weights as they are now: load them before compiling.
    Compilation happens in the first call at each input shape; if it fails there, a one-line
    warning says so, the eager method is restored and the call runs eagerly (``fallback=False``,
    for benchmarks: the error is raised instead).
    """
    reason = compile_unavailable(device)
    if reason is not None:
        logger.warning("torch.compile unavailable, running eagerly: %s", reason)
        return reason
    name = getattr(model, "compile_target", "predict")
    eager = getattr(model, name)
    compiled = torch.compile(eager, dynamic=False)
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor import config as inductor_config

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            with inductor_config.patch(freezing=True):
                return compiled(*args, **kwargs)
        except TorchDynamoException as e:
            if not fallback:
                raise
            logger.warning("torch.compile failed, running eagerly: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
            model.__dict__.pop(name, None)
            return eager(*args, **kwargs)

    setattr(model, name, call)
    return None


def uncompile_generator(model: nn.Module) -> None:
    """Undo :func:`compile_generator` (the eager method again)."""
    model.__dict__.pop(getattr(model, "compile_target", "predict"), None)
