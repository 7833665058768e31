"""``facefill export``: a generator's weights file to an ONNX graph, verified with onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._console import console, fail, overwrite_option, refuse_existing


def export_cmd(
    weights: Path = typer.Option(..., "--weights", "-w", help="facefill weights (.safetensors) of a generator"),
    out: Path = typer.Option(..., "--out", "-o", help="the .onnx file to write"),
    fmt: str = typer.Option("onnx", "--format", "-f", help="export format (onnx)"),
    size: int = typer.Option(256, "--size", help="square input size baked into the graph, in pixels"),
    cycles: Optional[int] = typer.Option(None, "--cycles", help="cycles of a cyclic generator; default: the model's"),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (13-20)"),
    overwrite: bool = overwrite_option("an --out file that exists"),
) -> None:
    """Export a generator to ONNX (dynamic batch, fixed size) and check it against PyTorch."""
    if fmt.lower() != "onnx":
        fail(f"unknown --format {fmt!r}; supported: onnx")
    for given in (weights, weights.with_suffix(".json")):  # the weights and their card are inputs
        if out.resolve() == given.resolve():
            fail(f"--out {out} is an input (the weights{' card' if given != weights else ''}); name a new .onnx file")
    if not overwrite:
        refuse_existing([out], "--out")
    from . import export as _export
    from .checkpoint import load_weights
    from .models import model_entry

    model, meta = load_weights(weights)
    if model_entry(meta["model"]).kind != "generator":
        fail(f"{weights} holds a {meta['model']} {model_entry(meta['model']).kind}; only generators can be exported")
    _export.require_onnx()
    result = _export.export_onnx(model, out, size=size, opset=opset, cycles=cycles)
    cycles_note = ""
    if result.cycles is not None:
        cycles_note = f", {result.cycles} cycle{'s' if result.cycles != 1 else ''}"
    console.print(
        f"wrote {result.path}: {result.model} ({meta['preset']}) at {size}x{size}{cycles_note}, "
        f"opset {result.opset}, dynamic batch; onnxruntime vs PyTorch max abs diff "
        f"{result.max_abs_diff:.2e} (limit {result.atol:g}); sha256 {result.sha256[:12]}",
        highlight=False,
        soft_wrap=True,
    )
