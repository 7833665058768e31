"""facefill: face inpainting with the APFI generator and its peers.

Images are float tensors in [0, 1], (B, 3, H, W); masks are (B, 1, H, W) with
1 = hole. Every generator is called ``G(image, mask) -> output`` and returns a
composite in which the known pixels are unchanged.

``Inpainter``, ``create_model``, ``list_models`` and ``list_presets`` are imported on first use
(PEP 562), so ``import facefill`` -- and the command line's start-up -- does not import torch.
"""

from __future__ import annotations

from typing import Any

from .errors import FacefillError, InputError

__version__ = "0.1.0"

__all__ = ["FacefillError", "InputError", "Inpainter", "create_model", "list_models", "list_presets"]

_LAZY = {
    "Inpainter": "facefill.photo",
    "create_model": "facefill.models",
    "list_models": "facefill.models",
    "list_presets": "facefill.models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'facefill' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
