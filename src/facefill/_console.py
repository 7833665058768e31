"""The console every CLI module prints to, its one-line error exit, the error boundary every
command runs inside, and the options several commands share."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from .errors import describe_os_error

console = Console()

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    """Print ``error: message`` on one line (markup escaped, never wrapped) and exit 2."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


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


def blend_option(default: str = "poisson") -> Any:
    """The ``--blend`` option of the commands that inpaint (read by :func:`facefill.blend.check_blend`)."""
    return typer.Option(
        default, "--blend",
        help="poisson: the model's fill blended in the gradient domain (its detail, the colours around the hole); "
        "none: the plain composite (the papers' protocol)",
    )


def overwrite_option(what: str = "an output file that exists") -> Any:
    """The ``--overwrite`` option of every command that writes files: without it, ``what`` is refused."""
    return typer.Option(False, "--overwrite", help=f"replace {what} (refused without it)")


def refuse_existing(paths: Iterable[Path], option: str = "-o") -> None:
    """Fail, before any work, when one of ``paths`` exists: nothing a user had is replaced
    unless ``--overwrite`` says so."""
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more of its outputs)" if len(existing) > 1 else ""
        fail(f"{existing[0]} exists{more}; pass --overwrite to replace it, or choose another {option}")
