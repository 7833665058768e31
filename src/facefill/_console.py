"""The console every CLI module prints to, its one-line error exit and the options several share."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def fail(message: str) -> None:
    """Print ``error: message`` on one line (markup escaped, never wrapped) and exit 2."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def precision_option() -> Any:
    """The ``--precision`` option every inference command takes (read by ``_device.resolve_precision``)."""
    return typer.Option(
        "auto", "--precision",
        help="auto, bf16 or fp32 (fp16: CUDA only); auto = bf16 where the GPU or CPU computes it natively, "
        "else fp32",
    )
