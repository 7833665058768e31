"""The console every CLI module prints to, its one-line error exit, the error boundary every
command runs inside, and the options several commands share."""

from __future__ import annotations

import errno
import functools
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

console = Console()

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    """Print ``error: message`` on one line (markup escaped, never wrapped) and exit 2."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


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


def error_boundary(command: F) -> F:
    """Run a CLI command so that every :class:`~facefill.errors.FacefillError`, every
    operating-system error (read-only folder, disk full, missing path, permissions) and running
    out of memory ends in one ``error:`` line and exit code 2, never a traceback.

    ``cli.py`` applies it to every command where it registers them. Errors that are none of
    these are bugs and keep their traceback.
    """
    from .errors import FacefillError

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FacefillError as e:
            fail(str(e))
        except OSError as e:
            fail(describe_os_error(e))
        except MemoryError:
            fail("out of memory; use a smaller --size or --batch-size, or a machine with more memory")

    run.__facefill_boundary__ = True  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


def precision_option() -> Any:
    """The ``--precision`` option every inference command takes (read by ``_device.resolve_precision``)."""
    return typer.Option(
        "auto", "--precision",
        help="auto, bf16 or fp32 (fp16: CUDA only); auto = bf16 where the GPU or CPU computes it natively, "
        "else fp32",
    )
