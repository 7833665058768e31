"""The one reading of a user's ``device`` and ``precision`` arguments, for the library's entry
points (trainer, Inpainter, evaluate, serve, demo, benchmarks), and the one way to leave autocast
for float32 work."""

from __future__ import annotations

import logging
import os
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


# ----------------------------------------------------------------------------- precision

PRECISIONS = ("auto", "bf16", "fp16", "fp32")

_native_bf16_cache: bool | None = None
_noted: set[str] = set()


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), checked once.

    Without it torch emulates bf16 on the CPU, which is several times *slower* than float32
    (measured on an AVX2-only EPYC: a 3x3 conv at 17 GFLOP/s in bf16 against 168 in fp32).
    ``FACEFILL_NATIVE_BF16=0`` / ``1`` overrides the check (tests, odd hypervisors).
    """
    global _native_bf16_cache
    forced = os.environ.get("FACEFILL_NATIVE_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    if _native_bf16_cache is None:
        checks = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        found = False
        for check in checks:
            try:
                found = found or bool(check and check())
            except Exception:  # a private check that changed; treat as absent
                pass
        _native_bf16_cache = found
    return _native_bf16_cache


def _note_once(key: str, message: str, level: int = logging.WARNING) -> None:
    if key not in _noted:
        _noted.add(key)
        logging.getLogger("facefill").log(level, message)


def resolve_precision(precision: str | None, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means plain float32.

    - ``"auto"`` / ``None``: bf16 on a CUDA GPU that supports it and on a CPU with native bf16
      (:func:`native_bf16_cpu`); float32 elsewhere, with a one-line note (INFO) the first time.
    - ``"bf16"``: bf16 wherever asked; on a CPU without native bf16 it runs (emulated, slow)
      with a one-line warning the first time.
    - ``"fp16"``: CUDA only (a CPU has no fast float16 path).
    - ``"fp32"``: float32.

    Raises:
        InputError: an unknown name, or fp16 off CUDA.
    """
    if precision is None:
        precision = "auto"
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = torch.device(device).type
    if precision == "fp32":
        return None
    if precision == "fp16":
        if kind != "cuda":
            raise InputError(f"precision fp16 needs a CUDA device, not {kind}; use bf16 or fp32")
        return torch.float16
    if kind == "cuda":
        if precision == "auto" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if kind != "cpu":  # mps, meta: no bf16 autocast we rely on
        return None
    if native_bf16_cpu():
        return torch.bfloat16
    if precision == "auto":
        # INFO: the expected outcome on such a CPU (the trainer's log shows it; a plain
        # `facefill inpaint` does not print it on every run, its output names the precision).
        _note_once("auto", "precision auto: float32, this CPU has no native bf16 (bf16 would be emulated and slower)", logging.INFO)
        return None
    _note_once("bf16", "precision bf16: this CPU has no native bf16; it runs emulated, several times slower than fp32")
    return torch.bfloat16


def precision_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> AbstractContextManager:
    """Autocast to ``dtype`` on ``device`` (from :func:`resolve_precision`); ``None``: nothing."""
    kind = torch.device(device).type
    if dtype is None or not torch.amp.is_autocast_available(kind):
        return nullcontext()
    return torch.autocast(kind, dtype=dtype)
