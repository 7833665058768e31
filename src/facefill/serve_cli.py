"""``facefill serve``: the inpainting web page (Gradio), on this machine by default.

Gradio is imported only when the command runs, so ``facefill --help`` and the other commands
stay fast and work without it. The arguments are checked here, before Gradio sees them: a host
that is not an address of this machine, a port out of range, an upload limit that is not a size.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from pathlib import Path
from typing import Optional

import typer

from ._console import blend_option, fail, precision_option

__all__ = ["serve_cmd", "check_host", "parse_file_size"]

_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)


def parse_file_size(text: str) -> int:
    """``"20mb"`` -> 20971520 bytes (units b, kb, mb, gb; 1 kb = 1024 b); ``"0"`` means no limit.

    Raises :class:`~facefill.errors.InputError` for anything else.
    """
    from .errors import InputError

    m = _SIZE.match(text)
    if not m:
        raise InputError(f"--max-file-size: cannot read {text!r}; expected e.g. 20mb, 500kb or 0 for no limit")
    unit = (m.group(2) or "b").lower()
    return int(m.group(1)) * 1024 ** ["b", "kb", "mb", "gb"].index(unit)


def check_host(host: str) -> None:
    """Raise :class:`~facefill.errors.InputError` unless ``host`` is an address this machine can
    listen on (an IP address of one of its interfaces, 0.0.0.0 / :: for all, or a name that
    resolves to one)."""
    from .errors import InputError

    try:
        infos = [(socket.AF_INET6 if ":" in host else socket.AF_INET, host)]
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", host) or host.replace(".", "").isdigit():
            raise InputError(f"--host {host!r} is not an IP address or a host name; e.g. 127.0.0.1 or 0.0.0.0") from None
        try:
            infos = [(i[0], i[4][0]) for i in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]
        except OSError:
            raise InputError(f"--host {host!r} does not resolve to an address; e.g. 127.0.0.1 or 0.0.0.0") from None
    for family, address in infos:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((address, 0))  # port 0: only whether the address is ours, not the port
                return
            except OSError as e:
                reason = e
    if getattr(reason, "errno", None) == errno.EADDRNOTAVAIL:
        raise InputError(
            f"--host {host} is not an address of this machine; use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        )
    raise InputError(f"--host {host}: cannot listen there ({reason}); use 127.0.0.1 or 0.0.0.0")


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
    blend: str = blend_option(),
    max_file_size: str = typer.Option(
        "20mb", "--max-file-size", help="largest upload accepted, e.g. 20mb, 500kb; 0 for no limit"
    ),
    compile: bool = typer.Option(
        False, "--compile", help="run the network under torch.compile: faster once warm, the first request compiles (tens of seconds)"
    ),
) -> None:
    """Serve a web page to inpaint photos: upload, paint the hole, press Inpaint."""
    if not 0 < port < 65536:
        fail(f"--port must be in 1-65535, got {port}")
    limit = parse_file_size(max_file_size)
    check_host(host)
    from .serve import serve

    serve(
        weights, host=host, port=port, device=device, precision=precision, blend=blend, max_file_size=limit or None,
        compile=compile,
    )
