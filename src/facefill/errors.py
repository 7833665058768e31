"""Typed exceptions of facefill's public API, and the one wording of an operating-system error
(:func:`describe_os_error`) that the CLI's error boundary and the library's messages share."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class FacefillError(Exception):
    """Base class of every error facefill raises on purpose."""


class InputError(FacefillError, ValueError):
    """An argument has the wrong type, shape, dtype or values.

    The message names the argument, what was expected and what was given.
    """


class ConfigError(InputError):
    """A training config holds a value facefill cannot train with.

    The message names the key (``section.name``), the value given and what is allowed.
    """


_OS_ADVICE = {
    errno.EROFS: "read-only file system; choose a folder you can write to",
    errno.EACCES: "permission denied; choose a path you may use or change its permissions",
    errno.EPERM: "operation not permitted; choose a path you may use or change its permissions",
    errno.ENOSPC: "no space left on the device; free some space or choose another folder",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another folder",
    errno.ENOENT: "no such file or folder; check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "is a folder, a file was expected; name a file",
    errno.EEXIST: "already exists; choose another path or move it away",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or use fewer workers",
}


def os_reason(e: OSError) -> str:
    """What went wrong in an operating-system error and what to do, without the path."""
    advice = _OS_ADVICE.get(e.errno) if e.errno is not None else None
    return advice or (e.strerror or str(e) or type(e).__name__)


def describe_os_error(e: OSError) -> str:
    """One line for an operating-system error: the path it concerns, what went wrong, what to do.

    A temporary file or folder of an atomic write (``.name.XXXX.tmp``, ``.name.partial-XXXX``) is
    reported as the folder it was made in, which is what the user named.
    """
    advice = _OS_ADVICE.get(e.errno) if e.errno is not None else None
    reason = os_reason(e)
    if e.filename is None:
        return f"{reason}" if advice else f"{type(e).__name__}: {reason}"
    path = Path(os.fsdecode(e.filename))
    if path.name.startswith(".") and (path.name.endswith(".tmp") or ".partial-" in path.name):
        return f"cannot write in {path.parent}: {reason}"
    where = f"{path}" + (f" -> {os.fsdecode(e.filename2)}" if e.filename2 is not None else "")
    return f"{where}: {reason}"
