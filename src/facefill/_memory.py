"""How much memory a generator's activations take at a size, and how much a device has.

Used to refuse, before anything runs, a training ``data.size`` / ``train.batch_size`` or an
evaluation ``--size`` / ``--batch-size`` whose activations cannot fit, instead of running until
the kernel's out-of-memory killer stops the process.

The estimate runs the generator once on the ``meta`` device (shapes only: no memory, no
arithmetic, a fraction of a second at any size) at batch 1 and follows every tensor storage
its operators create, from its allocation until it is freed (``weakref.finalize``); the peak of
the live total is the estimate. With ``grad=True`` autograd keeps what the backward pass needs
alive, so the peak is that of a training forward. It counts the generator only: a training
step also runs the critic, VGG and the backward pass, so the true need is larger, and the
refusal errs on the side of letting a run start. Measured against the peak RSS of a real CPU
forward (``facefill.bench.peak_forward_rss``, README "Cost"), the inference estimate at 256x256
is 74 MiB for APFI (measured 76.5 MB), 52 for DeepFill v2 (51.8), 113 for RFR-Net (131).

A model whose forward depends on the values it computes (EdgeConnect's Canny) cannot run on
``meta``; it runs for real, once, at a small probe size, and its peak is scaled by the pixel
count, which is exact for a fully convolutional network.

:func:`retain_freed_memory` is the other side of memory on the CPU: how fast a training step
gets it (see its docstring).
"""

from __future__ import annotations

import ctypes
import os
import sys
import weakref
from pathlib import Path

import torch
import torch.nn as nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["forward_peak_bytes", "device_memory_bytes", "gib", "memory_shortfall", "retain_freed_memory"]

_PROBE = 64  # side of the real forward of a model that cannot run on meta


class _LiveStorages(TorchDispatchMode):
    """Peak total bytes of the tensor storages operators create while the mode is on."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._seen: set[int] = set()

    def _freed(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._seen.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in self._seen:  # a new storage, not a view or an in-place result
                    self._seen.add(key)
                    self.live += storage.nbytes()
                    weakref.finalize(storage, self._freed, key, storage.nbytes())
        self.peak = max(self.peak, self.live)
        return out


def _peak(model: nn.Module, size: int, device: torch.device, grad: bool, meta: bool, kwargs: dict) -> int:
    image = torch.zeros(1, 3, size, size, device=device)
    mask = torch.zeros(1, 1, size, size, device=device)
    mask[..., size // 4 : size - size // 4, size // 4 : size - size // 4] = 1.0
    state = None
    if meta:
        state = {
            name: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad and grad)
            for name, t in (*model.named_parameters(), *model.named_buffers())
        }
    kwargs = {**kwargs, "return_parts": True} if grad else kwargs
    with torch.set_grad_enabled(grad), _LiveStorages() as mode:
        if state is not None:
            out = functional_call(model, state, (image, mask), kwargs)
        else:
            out = model(image, mask, **kwargs)
        del out
    return mode.peak


def forward_peak_bytes(
    model: nn.Module, size: int, *, grad: bool, stride: int = 1, kwargs: dict | None = None
) -> int:
    """Peak bytes of the activations of one ``model(image, mask)`` at ``size`` x ``size``, batch 1.

    ``grad=True``: a training forward (``return_parts=True``, autograd keeping what the backward
    needs), else an inference forward. The model runs in eval mode (its training-mode state,
    BatchNorm statistics and power iterations, is left alone) and the global RNG is restored.
    ``stride``: the model's size multiple, for the probe of a model that cannot run on meta;
    ``kwargs``: more arguments of the call (``cycles``).
    """
    kwargs = dict(kwargs or {})
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            try:
                return _peak(model, size, torch.device("meta"), grad, True, kwargs)
            except (NotImplementedError, RuntimeError):  # value-dependent work: probe it for real
                probe = min(size, max(stride, -(-_PROBE // stride) * stride))
                device = next((p.device for p in model.parameters()), torch.device("cpu"))
                return _peak(model, probe, device, grad, False, kwargs) * size * size // (probe * probe)
    finally:
        model.train(was_training)


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2 ``memory.max`` or v1), if it has one."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def device_memory_bytes(device: torch.device) -> int | None:
    """The memory a process on ``device`` can use at most: a CUDA device's total memory, else
    the machine's physical memory (``os.sysconf``) or its cgroup's limit when that is lower;
    ``None`` when it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        physical = None
    limit = _cgroup_limit()
    known = [m for m in (physical, limit) if m]
    return min(known) if known else None


def gib(nbytes: float) -> str:
    """``nbytes`` as GiB with two significant decimals, for messages."""
    return f"{nbytes / 2**30:.2f} GiB" if nbytes < 100 * 2**30 else f"{nbytes / 2**30:,.0f} GiB"


def memory_shortfall(
    model: nn.Module, size: int, batch: int, device: torch.device, *, grad: bool, dtype: torch.dtype | None,
    what: str, size_key: str, batch_key: str, kwargs: dict | None = None,
) -> str | None:
    """Why ``batch`` images at ``size`` cannot fit in ``device``'s memory, as one line naming
    ``size_key`` and ``batch_key`` (``data.size``, ``--batch-size``), the estimate of ``what``
    ran (``the apfi generator's forward``), the memory and how many images fit; ``None`` when
    they fit or the memory cannot be told. A 16-bit ``dtype`` (autocast) halves the estimate.
    """
    available = device_memory_bytes(device)
    if available is None or batch < 1:
        return None
    stride = int(getattr(model, "stride", 1))
    per_image = forward_peak_bytes(model, size, grad=grad, stride=stride, kwargs=kwargs)
    if dtype in (torch.bfloat16, torch.float16):
        per_image //= 2  # 16-bit activations (a lower bound: some stay float32)
    if per_image * batch <= available:
        return None
    fits = available // max(per_image, 1)
    advice = (
        f"lower {batch_key} (at most {fits} fits at this size) or {size_key}" if fits
        else f"even one image does not fit: lower {size_key}"
    )
    return (
        f"{size_key}={size} with {batch_key}={batch} does not fit in memory: {what} needs "
        f"{gib(per_image)} of activations per image, {gib(per_image * batch)} in all, more than the "
        f"{gib(available)} of {device.type} memory here; {advice}"
    )


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse in this process; True where it did.

    glibc serves every block of 32 MiB or more (and smaller ones, below its adaptive
    threshold) with a fresh ``mmap`` and unmaps it on free, so a (8, 64, 128, 128) float32
    activation costs 8192 page faults, each zeroing a page, every time a training step
    allocates it: 13-15 ms to create such a tensor on the 2-core Zen 4, 2-4 ms once the memory
    is reused. This sets ``M_MMAP_MAX`` to 0 (large blocks come from the heap) and
    ``M_TRIM_THRESHOLD`` to 2 GiB (freed memory stays in the heap), what PyTorch's CPU tuning
    guide gets from jemalloc or tcmalloc via ``LD_PRELOAD``, without either. The process then
    keeps its peak memory until it exits. Process-wide and not undone; the trainer calls it on
    the CPU (``train.retain_memory``). A no-op returning False outside Linux with glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
