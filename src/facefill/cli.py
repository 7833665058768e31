"""The ``facefill`` command: a thin layer over the library.

Start-up is kept short (``facefill --help`` and ``facefill models`` in well under a second):
nothing here imports torch, Gradio or OpenCV at module level. The commands that live in the
``*_cli`` modules are loaded only when they run or their own help is asked for (see
:class:`_LazyGroup`), and every command runs inside :func:`~facefill._console.error_boundary`,
so a :class:`~facefill.errors.FacefillError` or an operating-system error (read-only folder,
disk full, missing path) ends in one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from ._console import blend_option, console, error_boundary, fail, overwrite_option, precision_option, refuse_existing

# name -> (module, attribute, one-line help shown in ``facefill --help``). The attribute is a
# command function or a Typer sub-app; its own docstring/help is what ``facefill NAME --help``
# shows (tests/test_cli.py checks the two agree).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "prepare-celeba": (
        "facefill.data_cli", "prepare_celeba",
        "Crop and resize CelebA into a dataset folder with train.txt, test.txt and prepare.json.",
    ),
    "evaluate": (
        "facefill.evaluate_cli", "evaluate_cmd",
        "Evaluate a generator per hole-ratio bin on fixed masks (PSNR, SSIM, L1, hole gradient, "
        "saturated blocks on the composite).",
    ),
    "export": (
        "facefill.export_cli", "export_cmd",
        "Export a generator to ONNX (dynamic batch, fixed size) and check it against PyTorch.",
    ),
    "inpaint": (
        "facefill.inpaint_cli", "inpaint_cmd",
        "Inpaint the holes of a face photo (or a folder of them); white in the mask = hole.",
    ),
    "serve": ("facefill.serve_cli", "serve_cmd", "Serve a web page to inpaint photos: upload, paint the hole, press Inpaint."),
    "masks": ("facefill.masks_cli", "masks_app", "Generate and verify seeded irregular-mask sets (white = hole)."),
}


def load_command(name: str) -> Any:
    """The click command ``name`` of :data:`LAZY_COMMANDS`, imported now, inside the error boundary."""
    module, attr, _ = LAZY_COMMANDS[name]
    target = getattr(importlib.import_module(module), attr)
    if isinstance(target, typer.Typer):
        for info in target.registered_commands:
            if info.callback is not None and not getattr(info.callback, "__facefill_boundary__", False):
                info.callback = error_boundary(info.callback)
        command = typer.main.get_command(target)
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        wrapped = target if getattr(target, "__facefill_boundary__", False) else error_boundary(target)
        single.command(name)(wrapped)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyGroup(TyperGroup):
    """The top-level group: commands of :data:`LAZY_COMMANDS` are imported on first use.

    Listing them in ``facefill --help`` needs only their name and one-line help, which come
    from the table; running one, or asking for its own help, imports its module.
    """

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return names + [n for n in LAZY_COMMANDS if n not in names]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # the overview: name and one line, nothing imported
            return TyperCommand(cmd_name, help=LAZY_COMMANDS[cmd_name][2])
        self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=_LazyGroup,
    help="facefill: face inpainting with the APFI generator and its peers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@command(name)``: register a command of this module inside the error boundary."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        app.command(name)(error_boundary(fn))
        return fn

    return register


@command("models")
def models_cmd() -> None:
    """List the registered models and their presets."""
    from rich.table import Table

    from ._catalog import CATALOG  # the registry's listing without importing torch

    table = Table("model", "kind", "presets", "summary")
    for e in CATALOG:
        table.add_row(e.name, e.kind, ", ".join(e.presets), e.summary)
    console.print(table)


@command("info")
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
    from ._catalog import CATALOG

    presets = {e.name: e.presets for e in CATALOG}  # checked before torch is imported
    if model not in presets:
        fail(f"unknown model {model!r}; available: {', '.join(presets)}")
    if preset not in presets[model]:
        fail(f"unknown preset {preset!r} for {model}; available: {', '.join(presets[model])}")
    if size <= 0:
        fail(f"--size must be positive, got {size}")
    if against and against != model and against not in presets:
        fail(f"unknown model {against!r} for --against; available: {', '.join(presets)}")
    import torch
    from rich.table import Table

    from . import cost as _cost
    from .models import create_model

    with torch.device("meta"):
        stride = getattr(create_model(model, preset), "stride", 1)
    if size % stride:
        fail(f"--size must be a multiple of {stride} for {model}, got {size}")
    result = _cost.count_cost(model, preset, size)
    reference = None
    if against and against != model:
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


@command("train")
def train_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (see configs/)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder: weights, checkpoints, logs"),
    overrides: list[str] = typer.Option([], "--set", help="override a config key: section.key=value"),
    resume: bool = typer.Option(False, "--resume", help="continue from the newest checkpoint in --out"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="start over in an --out that holds another run (deletes its checkpoints and log)"
    ),
) -> None:
    """Train a generator with its critic and losses (one process, or many under torchrun)."""
    import logging

    from .config import load_config
    from .train import Trainer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    trainer = None
    try:  # facefill's own errors and OS errors: the error boundary every command runs in
        cfg = load_config(config, overrides)
        trainer = Trainer(cfg, out, resume=resume, overwrite=overwrite)
        trainer.fit()
    except KeyboardInterrupt:  # SIGINT, and SIGTERM during fit
        at = f" at step {trainer.step}" if trainer is not None else ""
        fail(f"interrupted{at}; continue with --resume")
    console.print(f"done: {trainer.step} steps; weights and checkpoints in {out}", highlight=False)


@command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("facefill-demo"), "--out", "-o", help="folder for demo_compare.png and friends"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="generator weights (default: the bundled demo weights)"),
    seed: int = typer.Option(0, "--seed", help="seed of the generated hole"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: CUDA when available)"),
    precision: str = precision_option(),
    blend: str = blend_option(),
    overwrite: bool = overwrite_option("the demo's files in --out from an earlier run"),
) -> None:
    """Inpaint a bundled public-domain face (NASA's astronaut portrait) with a generated hole."""
    from .demo import DEMO_FILES, run_demo
    from .photo import box_text

    if not overwrite:
        refuse_existing((out / name for name in DEMO_FILES), "--out")
    r = run_demo(out, weights=weights, seed=seed, device=device, precision=precision, blend=blend)
    x0, y0, x1, y1 = r.face_box
    console.print(
        f"inpainted the astronaut's face (crop {box_text((x0, y0, x1 - x0, y1 - y0))}, hole {r.hole_ratio:.1%} of it) "
        f"with {r.weights} in {r.seconds:.1f} s ({r.precision}" + (f", {r.blend} blend)" if r.blend != "none" else ")")
    )
    console.print(f"face crop: PSNR {r.psnr:.2f} dB, SSIM {r.ssim:.4f}, L1 in the hole {r.hole_l1:.4f}")
    t = r.telea
    console.print(f"OpenCV Telea, same hole: PSNR {t['psnr']:.2f} dB, SSIM {t['ssim']:.4f}, L1 in the hole {t['hole_l1']:.4f}")
    if r.saturated:
        console.print("[yellow]warning:[/yellow] the fill has a flat saturated (white or black) block in the hole")
    for f in r.files:
        console.print(f"wrote {f}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
