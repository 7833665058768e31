"""The process around a run: the training device, the DDP rank, the RNG states a checkpoint
saves, SIGTERM as an interrupt, and small helpers of the loop (due steps, image grids, YAML)."""

from __future__ import annotations

import os
import random
import signal
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .._device import resolve_device
from ..errors import ConfigError, InputError


_TRAIN_DEVICES = ("cpu", "cuda", "mps")


def _train_device(name: str) -> torch.device:
    """``train.device`` as a device that exists here and can train."""
    try:
        device = resolve_device(name)
    except InputError as e:
        raise ConfigError(f"train.device: {e}") from None
    if device.type not in _TRAIN_DEVICES:
        raise ConfigError(f"train.device={name!r} cannot train; use one of {', '.join(_TRAIN_DEVICES)} (or cuda:N)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"train.device={name!r}: this machine has {torch.cuda.device_count()} CUDA devices (cuda:0 ...)")
    return device


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    py = state["python"]
    random.setstate((py[-2], tuple(py[:-2]), py[-1]))


def image_grid(*rows: torch.Tensor, limit: int = 4) -> torch.Tensor:
    """(3, n*H, k*W) grid: one row per sample, one column per tensor (masks shown grey-level)."""
    cols = [t[:limit].detach().float().cpu().clamp(0, 1).expand(-1, 3, -1, -1) for t in rows]
    return torch.cat([torch.cat(list(c), dim=1) for c in cols], dim=2)

def _every(interval: int, step: int, last: int) -> bool:
    """Whether ``step`` is due for something done every ``interval`` steps (0: only at ``last``)."""
    return (interval > 0 and step % interval == 0) or step == last


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt, as SIGINT does (main thread only): the run stops the
    same way, an unfinished checkpoint write removes its temporary file, the CLI says how to
    continue."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)
