"""Command-line front end of :mod:`facefill.data` (registered as ``facefill prepare-celeba``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import data as _data
from ._console import error_boundary

_out = Console(highlight=False)


@error_boundary  # also where a test registers the function by itself
def prepare_celeba(
    src: Path = typer.Option(
        ..., "--src", help="CelebA folder holding img_celeba/ + list_bbox_celeba.txt, or img_align_celeba/"
    ),
    out: Path = typer.Option(..., "--out", help="output folder (created; empty, or an earlier run to resume)"),
    size: int = typer.Option(256, "--size", help="side of the square output images in pixels"),
    test_count: int = typer.Option(1000, "--test-count", help="number of images in test.txt"),
    seed: int = typer.Option(0, "--seed", help="seed of the test/train split"),
    layout: str = typer.Option("auto", "--layout", help="auto, wild (img_celeba + boxes) or align"),
    box_scale: float = typer.Option(
        1.0, "--box-scale", help="wild layout: crop side = box_scale x max(box width, height)"
    ),
    image_format: str = typer.Option("png", "--format", help="png (lossless) or jpg (quality 95)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="worker processes (default: all CPUs)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into a non-empty or differently prepared folder"),
) -> None:
    """Crop and resize CelebA into a dataset folder with train.txt, test.txt and prepare.json."""
    result = _data.prepare_celeba(
        src, out, size=size, test_count=test_count, seed=seed, workers=workers, layout=layout,
        box_scale=box_scale, image_format=image_format, overwrite=overwrite, progress=True,
    )
    _out.print(result.summary(), soft_wrap=True)
