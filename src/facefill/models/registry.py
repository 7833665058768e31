"""Model registry: every network is a typed constructor plus named presets."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

__all__ = ["register_model", "create_model", "list_models", "list_presets", "ModelEntry"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # "generator" or "discriminator"
    cls: type[nn.Module]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: str = ""
    # False for models without learned weights (OpenCV's inpainting): nothing to train or
    # fine-tune. Read from the class attribute ``trainable`` (default True).
    trainable: bool = True


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, kind: str, presets: dict[str, dict[str, Any]], summary: str = ""
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register ``cls`` under ``name`` with its presets.

    Every model has at least the presets ``paper`` (the published configuration at
    256x256) and ``small`` (trains on CPU at 64-128 px).
    """
    missing = {"paper", "small"} - presets.keys()
    if missing:
        raise ValueError(f"model {name!r} lacks the presets {sorted(missing)}")

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        trainable = bool(getattr(cls, "trainable", True))
        _REGISTRY[name] = ModelEntry(name, kind, cls, presets, summary, trainable)
        return cls

    return wrap


def _entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        ) from None


def list_models(kind: str | None = None) -> list[str]:
    """Names of the registered models, optionally only ``"generator"``/``"discriminator"``."""
    return sorted(n for n, e in _REGISTRY.items() if kind is None or e.kind == kind)


def list_presets(name: str) -> list[str]:
    return list(_entry(name).presets)


def model_entry(name: str) -> ModelEntry:
    return _entry(name)


def create_model(name: str, preset: str = "paper", **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` from ``preset``, with keyword ``overrides``.

    The resolved arguments are kept on the model as ``model.config`` (name, preset,
    kwargs), which is what weight files record.
    """
    entry = _entry(name)
    if preset not in entry.presets:
        raise ValueError(
            f"unknown preset {preset!r} for model {name!r}; available: "
            f"{', '.join(entry.presets)}"
        )
    params = inspect.signature(entry.cls.__init__).parameters
    valid = [p for p in params if p != "self"]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown argument(s) {', '.join(unknown)} for model {name!r}; valid: "
            f"{', '.join(valid)}"
        )
    kwargs = {**entry.presets[preset], **overrides}
    model = entry.cls(**kwargs)
    model.config = {"name": name, "preset": preset, "kwargs": kwargs}
    return model
