"""What :func:`facefill.evaluate.evaluate` writes: the per-bin tables and the sample grids.

``metrics.md``, ``metrics.csv`` and ``metrics.json`` (each written atomically, the JSON last) and
``samples_<bin>.png``; :func:`result_table` gives ``metrics.md`` and ``facefill evaluate`` the same
headings and cells.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Optional

import torch
from PIL import Image

from ..checkpoint import atomic_write
from ..metrics import SATURATED_SIDE, SATURATED_TOLERANCE

__all__ = ["TABLE_LEGEND", "file_names", "grid_rows", "result_table", "write_outputs"]

# The columns of the per-bin tables (metrics.md, metrics.csv, `facefill evaluate`) after bin and n:
# (key, heading, format).
_COLUMNS = (
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("l1", "L1", "{:.4f}"),
    ("grad", "grad", "{:.4f}"),
    ("grad_gt", "grad GT", "{:.4f}"),
    ("grad_ratio", "grad ratio", "{:.3f}"),
    ("saturated", "sat.", "{}"),
)

#: What the hole diagnostics in the tables mean, printed under them.
TABLE_LEGEND = (
    "grad: mean Sobel gradient of the luma in the hole (grad GT: of the ground truth; grad ratio "
    f"below 1: a blurrier fill); sat.: images with a flat white or black {SATURATED_SIDE}x"
    f"{SATURATED_SIDE} block in the hole that the ground truth does not have (within "
    f"{SATURATED_TOLERANCE} levels of 255, or of 0)"
)


def grid_rows(image: torch.Tensor, mask: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """(k, 4, 3, H, W) on the CPU: masked input (holes white) | mask | output | ground truth."""
    masked = torch.where(mask > 0.5, torch.ones_like(image), image)
    return torch.stack([masked, mask.expand_as(image), out, image], dim=1).float().cpu()


def _grid_png(rows: torch.Tensor, gap: int = 2) -> bytes:
    k, cols, _, h, w = rows.shape
    canvas = torch.ones(3, k * h + (k - 1) * gap, cols * w + (cols - 1) * gap)
    for r in range(k):
        for c in range(cols):
            y, x = r * (h + gap), c * (w + gap)
            canvas[:, y : y + h, x : x + w] = rows[r, c]
    array = (canvas.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _sample_name(key: tuple, ablation: bool) -> str:
    c, b = key
    return f"samples_{b}_cycles{c}.png" if ablation else f"samples_{b}.png"


#: The metrics files an evaluation writes into its folder, beside its ``samples_*.png`` grids.
METRICS_FILES = ("metrics.json", "metrics.md", "metrics.csv")


def file_names(grids: dict, ablation: bool) -> list[str]:
    return list(METRICS_FILES) + [_sample_name(k, ablation) for k in grids]


def _rows(result: dict) -> list[tuple[Optional[str], str, dict]]:
    """``(cycles or None, bin, metrics)`` for every row of the tables."""
    if "bins" in result:
        return [(None, b, m) for b, m in result["bins"].items()]
    return [(c, b, m) for c, v in result["cycles"].items() for b, m in v["bins"].items()]


def _extras(rows: list[tuple[Optional[str], str, dict]]) -> list[str]:
    return [k for k in ("lpips", "fid", "identity") if any(k in m for _, _, m in rows)]


def result_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """The headings and the text cells of the per-bin table of a result, as ``metrics.md`` and
    ``facefill evaluate`` show it (a cycles column first in an ablation; "–" where a value is
    missing or undefined, such as ``grad_ratio`` on a flat ground truth)."""
    rows = _rows(result)
    extras = _extras(rows)
    ablation = "bins" not in result
    head = (["cycles"] if ablation else []) + ["bin", "n"] + [h for _, h, _ in _COLUMNS] + [k.upper() for k in extras]
    cells = [
        ([c] if ablation else []) + [f"({b.replace('-', ', ')}]", str(v["n"])]
        + [_cell(v.get(k), fmt) for k, _, fmt in _COLUMNS] + [_cell(v.get(k), "{:.4f}") for k in extras]
        for c, b, v in rows
    ]
    return head, cells


def _cell(value: Any, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def _markdown(result: dict) -> str:
    head, cells = result_table(result)
    ablation = "bins" not in result
    m = result["model"]
    title = f"{m['name']}" + (f" ({m['preset']})" if m.get("preset") else "")
    lines = [
        f"# {title} on {result['data']['root']} ({result['data']['images']} images, {result['size']}x{result['size']})",
        "",
        f"Masks: {result['manifest']['path']} (sha256 {result['manifest']['sha256'][:12]}, seed "
        f"{result['manifest']['seed']}); cycles: {'see table' if ablation else result['cycles']}"
        + ("; fills Poisson-blended (facefill.blend)." if result.get("blend", "none") != "none" else "."),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i < (2 if ablation else 1) else "---:" for i in range(len(head))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    lines += ["", TABLE_LEGEND]
    for note in result["notes"]:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def _csv(result: dict) -> str:
    rows = _rows(result)
    extras = _extras(rows)
    columns = ["psnr", "ssim", "l1", "hole_ratio", "grad", "grad_gt", "grad_ratio", "saturated"] + extras
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["cycles", "bin", "n"] + columns)
    default = result["cycles"] if "bins" in result else None
    for c, b, v in rows:
        writer.writerow(
            [c if c is not None else ("" if default is None else default), b, v["n"]]
            + ["" if v.get(k) is None else repr(v[k]) for k in columns]
        )
    return buf.getvalue()


def write_outputs(out: Path, result: dict, grids: dict, ablation: bool) -> None:
    """Every file atomically; ``metrics.json`` last, so its presence means a complete set."""
    for key, rows in grids.items():
        data = _grid_png(rows)
        atomic_write(out / _sample_name(key, ablation), lambda tmp, d=data: Path(tmp).write_bytes(d))
    clean = json.loads(json.dumps(result))
    for name, text in (
        ("metrics.md", _markdown(clean)),
        ("metrics.csv", _csv(clean)),
        ("metrics.json", json.dumps(clean, indent=2) + "\n"),
    ):
        atomic_write(out / name, lambda tmp, t=text: Path(tmp).write_text(t, encoding="utf-8"))

