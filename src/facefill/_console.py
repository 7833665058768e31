"""The console every CLI module prints to, and its one-line error exit."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def fail(message: str) -> None:
    """Print ``error: message`` on one line (markup escaped, never wrapped) and exit 2."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)
