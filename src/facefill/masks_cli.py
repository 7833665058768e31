"""``facefill masks ...``: generate and check seeded irregular-mask sets.

Errors (a :class:`~facefill.errors.FacefillError`, a read-only or full folder) become one line and
exit code 2 in :func:`~facefill._console.error_boundary`, applied here so that ``masks_app`` used
on its own behaves as under ``facefill masks``."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import masks as _masks
from ._console import console, error_boundary, fail

masks_app = typer.Typer(
    help="Generate and verify seeded irregular-mask sets (white = hole).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@masks_app.command("generate")
@error_boundary
def generate_cmd(
    out: Path = typer.Option(..., "--out", help="output folder; one subfolder per bin and manifest.json"),
    size: int = typer.Option(256, "--size", help="square mask size in pixels"),
    per_bin: int = typer.Option(..., "--per-bin", help="masks per bin"),
    seed: int = typer.Option(0, "--seed", help="seed; the same arguments give byte-identical files"),
    bins: str = typer.Option(
        ",".join(_masks.bin_name(lo, hi) for lo, hi in _masks.DEFAULT_BINS),
        "--bins",
        help="comma-separated hole-ratio bins LO-HI, each meaning (LO, HI]",
    ),
    preset: str = typer.Option(
        ",".join(_masks.DEFAULT_MIX),
        "--preset",
        help="preset or mixture of thin, medium, thick, e.g. 'thin:1,thick:2'"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", "--force", help="replace a non-empty --out"),
) -> None:
    """Write PER_BIN masks per hole-ratio bin, with a manifest of ratios and sha256."""
    parsed_bins = _masks.parse_bins(bins)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        fail(f"--out {out} exists and is not empty; pass --overwrite to replace it")
    with Progress(
        TextColumn("generating masks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    ) as bar:
        task = bar.add_task("masks", total=per_bin * len(parsed_bins))
        manifest = _masks.generate_binned_masks(
            out, size, per_bin, seed, parsed_bins, preset, overwrite=overwrite,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    by_bin: dict[str, list[float]] = defaultdict(list)
    for entry in manifest["files"]:
        by_bin[entry["bin"]].append(entry["ratio"])
    table = Table(
        "bin", "masks", "mean ratio", "min", "max",
        title=f"{len(manifest['files'])} masks, {size}x{size}, seed {seed} -> {out}",
    )
    for name, ratios in by_bin.items():
        table.add_row(
            f"({name.replace('-', ', ')}]", str(len(ratios)), f"{sum(ratios) / len(ratios):.4f}",
            f"{min(ratios):.4f}", f"{max(ratios):.4f}",
        )
    console.print(table)
    console.print(f"manifest: {escape(str(out / _masks.MANIFEST_NAME))}", highlight=False, soft_wrap=True)


@masks_app.command("verify")
@error_boundary
def verify_cmd(
    path: Path = typer.Argument(..., help="mask set folder or its manifest.json"),
) -> None:
    """Check that every mask listed in a manifest exists and has its recorded sha256."""
    entries = _masks.load_manifest(path, verify=True)
    bins = sorted({e["bin"] for e in entries})
    console.print(
        f"ok: {len(entries)} masks in {len(bins)} bins ({', '.join(bins)}) match the manifest", highlight=False
    )
