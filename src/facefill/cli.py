"""The ``facefill`` command: a thin layer over the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
import typer
from rich.table import Table

from . import cost as _cost
from ._console import console, fail, precision_option
from .errors import FacefillError
from .data_cli import prepare_celeba
from .evaluate_cli import evaluate_cmd
from .export_cli import export_cmd
from .inpaint_cli import inpaint_cmd
from .masks_cli import masks_app
from .models import create_model, list_models, list_presets, model_entry
from .serve_cli import serve_cmd

app = typer.Typer(
    help="facefill: face inpainting with the APFI generator and its peers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("models")
def models_cmd() -> None:
    """List the registered models and their presets."""
    table = Table("model", "kind", "presets", "summary")
    for name in list_models():
        e = model_entry(name)
        table.add_row(name, e.kind, ", ".join(e.presets), e.summary)
    console.print(table)


@app.command("info")
def info_cmd(
    model: str = typer.Argument(..., help="registered model name, e.g. apfi"),
    preset: str = typer.Option("paper", "--preset", "-p", help="model preset"),
    size: int = typer.Option(256, "--size", help="square input size in pixels"),
    against: Optional[str] = typer.Option(
        "rfr", "--against", help="model (paper preset) to compare with in the same run; '' for none"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Parameters and FLOPs per image, by part, counted with torch.utils.flop_counter."""
    if model not in list_models():
        fail(f"unknown model {model!r}; available: {', '.join(list_models())}")
    if preset not in list_presets(model):
        fail(f"unknown preset {preset!r} for {model}; available: {', '.join(list_presets(model))}")
    if size <= 0:
        fail(f"--size must be positive, got {size}")
    with torch.device("meta"):
        stride = getattr(create_model(model, preset), "stride", 1)
    if size % stride:
        fail(f"--size must be a multiple of {stride} for {model}, got {size}")
    result = _cost.count_cost(model, preset, size)
    reference = None
    if against and against != model:
        if against not in list_models():
            fail(f"unknown model {against!r} for --against; available: {', '.join(list_models())}")
        reference = _cost.count_cost(against, "paper", size)
    if as_json:
        out = result.as_dict()
        if reference is not None:
            out["against"] = reference.as_dict()
            out["params_ratio"] = result.params / reference.params
            out["flops_ratio"] = result.flops / reference.flops
        typer.echo(json.dumps(out, indent=2))
        return
    table = Table(
        "part", "params", "GFLOP (all calls)", "calls", "GFLOP / call",
        title=f"{model} ({preset}) at {size}x{size}, per image",
    )
    for p in result.parts:
        table.add_row(
            p.name, f"{p.params / 1e6:.3f} M", f"{p.flops / 1e9:.2f}", str(p.calls),
            f"{p.flops_per_call / 1e9:.2f}",
        )
    table.add_row("total", f"{result.params / 1e6:.3f} M", f"{result.flops / 1e9:.2f}", "", "", style="bold")
    console.print(table)
    if reference is not None:
        console.print(
            f"{against} (paper) at {size}x{size}: {reference.params / 1e6:.2f} M params, "
            f"{reference.flops / 1e9:.1f} GFLOP -> {model}/{against}: params "
            f"{result.params / reference.params:.3f}x, FLOPs {result.flops / reference.flops:.3f}x",
            highlight=False,
        )
    console.print(
        "FLOPs: torch.utils.flop_counter, 2 per multiply-accumulate of convs and matmuls; "
        "element-wise ops are not counted.",
        style="dim",
        highlight=False,
    )


@app.command("train")
def train_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (see configs/)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder: weights, checkpoints, logs"),
    overrides: list[str] = typer.Option([], "--set", help="override a config key: section.key=value"),
    resume: bool = typer.Option(False, "--resume", help="continue from the newest checkpoint in --out"),
) -> None:
    """Train a generator with its critic and losses (one process, or many under torchrun)."""
    import logging

    from .config import load_config
    from .train import Trainer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config, overrides)
        trainer = Trainer(cfg, out, resume=resume)
        trainer.fit()
    except FacefillError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted; continue with --resume")
    console.print(f"done: {trainer.step} steps; weights and checkpoints in {out}", highlight=False)


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("facefill-demo"), "--out", "-o", help="folder for demo_compare.png and friends"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="generator weights (default: the bundled demo weights)"),
    seed: int = typer.Option(0, "--seed", help="seed of the generated hole"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: CUDA when available)"),
    precision: str = precision_option(),
) -> None:
    """Inpaint a bundled public-domain face (NASA's astronaut portrait) with a generated hole."""
    from .demo import run_demo
    from .photo import box_text

    try:
        r = run_demo(out, weights=weights, seed=seed, device=device, precision=precision)
    except FacefillError as e:
        fail(str(e))
    x0, y0, x1, y1 = r.face_box
    console.print(
        f"inpainted the astronaut's face (crop {box_text((x0, y0, x1 - x0, y1 - y0))}, hole {r.hole_ratio:.1%} of it) "
        f"with {r.weights} in {r.seconds:.1f} s ({r.precision})"
    )
    console.print(f"face crop: PSNR {r.psnr:.2f} dB, SSIM {r.ssim:.4f}, L1 in the hole {r.hole_l1:.4f}")
    t = r.telea
    console.print(f"OpenCV Telea, same hole: PSNR {t['psnr']:.2f} dB, SSIM {t['ssim']:.4f}, L1 in the hole {t['hole_l1']:.4f}")
    if r.saturated:
        console.print("[yellow]warning:[/yellow] the fill has a flat saturated (white or black) block in the hole")
    for f in r.files:
        console.print(f"wrote {f}")


app.command("prepare-celeba")(prepare_celeba)
app.command("evaluate")(evaluate_cmd)
app.command("export")(export_cmd)
app.command("inpaint")(inpaint_cmd)
app.command("serve")(serve_cmd)
app.add_typer(masks_app, name="masks", help="Generate, verify and load irregular hole masks.")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
