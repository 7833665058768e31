"""``facefill serve``: the inpainting web page (Gradio), on this machine by default.

Gradio is imported only when the command runs, so ``facefill --help`` and the other commands
stay fast and work without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._console import fail, precision_option
from .errors import FacefillError

__all__ = ["serve_cmd"]


def serve_cmd(
    weights: Optional[Path] = typer.Option(
        None, "--weights", "-w", help="facefill weights (.safetensors); default: the bundled demo weights"
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; 0.0.0.0 for every interface"),
    port: int = typer.Option(7860, "--port", help="port to listen on"),
    device: Optional[str] = typer.Option(
        None, "--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if present)"
    ),
    precision: str = precision_option(),
) -> None:
    """Serve a web page to inpaint photos: upload, paint the hole, press Inpaint."""
    if not 0 < port < 65536:
        fail(f"--port must be in 1-65535, got {port}")
    from .serve import serve

    try:
        serve(weights, host=host, port=port, device=device, precision=precision)
    except FacefillError as e:
        fail(str(e))
