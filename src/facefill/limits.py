"""Documented upper bounds on what facefill accepts, shared by the API, the CLI and the web page.

They exist so that a typo (``--cycles 1000000``, ``--size 100000``) is refused at once with a
one-line message instead of running for hours or until the kernel's out-of-memory killer
stops it. Importing this module is cheap (no torch), so the command line can check arguments
before loading anything.
"""

from __future__ import annotations

__all__ = ["MAX_CYCLES", "MAX_SIZE", "check_cycles_bound", "check_size_bound"]

#: Most refinement cycles a cyclic generator (APFI, RFR-Net) runs per call. The paper's
#: ablation stops at 8 and the published models use 6; 64 leaves room for experiments while
#: keeping one call bounded (about 10x the default's time).
MAX_CYCLES = 64

#: Largest square side, in pixels, that evaluation and training accept (``--size``,
#: ``data.size``). APFI ``paper`` at 2048x2048 needs about 20 GB of activations per image in
#: fp32 on CPU; larger sizes exhaust an ordinary machine's memory.
MAX_SIZE = 2048


def _at_most(value: int, limit: int, name: str, unit: str, advice: str) -> int:
    from .errors import InputError

    if value > limit:
        raise InputError(f"{name}: at most {limit} {unit} (facefill.limits), got {value}; {advice}")
    return value


def check_cycles_bound(cycles: int, name: str = "cycles") -> int:
    """``cycles`` if it is at most :data:`MAX_CYCLES`; else :class:`~facefill.errors.InputError`."""
    return _at_most(cycles, MAX_CYCLES, name, "cycles per run", "the published models use 6")


def check_size_bound(size: int, name: str = "size") -> int:
    """``size`` if it is at most :data:`MAX_SIZE`; else :class:`~facefill.errors.InputError`."""
    return _at_most(
        size, MAX_SIZE, name, "pixels a side", "larger images exhaust memory: resize them or pass a smaller size"
    )
