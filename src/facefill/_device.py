"""The one reading of a user's ``device`` argument, for the library's entry points, and the one
way to leave autocast for float32 work."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from .errors import InputError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``: CUDA when available, else CPU; otherwise the named device, which must exist here.

    Raises:
        InputError: not a torch device, or CUDA / MPS asked for where it is not available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise InputError(f"device {device!r} is not a torch device ({e}); use e.g. cpu, cuda or cuda:1") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was requested but CUDA is not available here; use cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} was requested but MPS is not available here; use cpu")
    return dev


def autocast_off(device: torch.device | str) -> AbstractContextManager:
    """A context with autocast switched off on ``device``, for work that needs float32.

    Where torch has no autocast for the device (``meta``, on which FLOPs are counted) there is
    nothing to switch off, and the context does nothing.
    """
    kind = torch.device(device).type
    return torch.autocast(kind, enabled=False) if torch.amp.is_autocast_available(kind) else nullcontext()
