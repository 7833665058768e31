"""The one reading of a user's ``device`` argument, for the library's entry points."""

from __future__ import annotations

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
