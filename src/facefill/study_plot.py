"""Quality per cost of the study: PSNR in one bin against GFLOP per image and CPU latency.

One PNG per setting of :mod:`facefill.study` (rows share a plot only where they share a
table: the same data, size, steps, batch and masks), two panels: the PSNR of each model in
the 0.3-0.4 bin (:data:`PLOT_BIN`) against its GFLOP per image (:func:`facefill.cost.count_cost`
at the rows' model, preset and size) and against its CPU latency. Every row is a point per
test set (data folder), one marker per folder, labelled with the model; a row from another
commit than the setting's reference is labelled ``†``, as in the table.

The latency comes from a cost report of ``benchmarks/cost.py`` (:func:`latest_cost_file`:
the newest ``cost-<YYYY-MM-DD>[-<preset>].json`` of the rows' preset, never a ``-quick`` one):
its fp32, batch-1 ``cpu_fp32_latency_<size>_ms`` (``cpu_latency_<size>_ms`` in reports before
2026-12-01), only where the report measured the rows' preset at the rows' size.
A point without it is left out of that panel and the caption says which and why; nothing is
estimated. Drawing needs matplotlib (``pip install "facefill[bench]"``); :func:`cost_points`,
which decides what is plotted, does not.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from . import study
from .errors import InputError

__all__ = [
    "PLOT_BIN", "Point", "CostPoints", "latest_cost_file", "load_cost", "cost_points", "plot_status", "plot_name",
    "plot_cost", "render_plots",
]

#: The hole-ratio bin whose PSNR is plotted (the paper's middle bin).
PLOT_BIN = "0.3-0.4"
# cost-<date>.json is a report of the paper presets, cost-<date>-<preset>.json of another preset.
_COST_FILE = re.compile(r"cost-\d{4}-\d{2}-\d{2}(?:-(?P<preset>(?!quick)[a-z0-9_]+))?\.json")
_MARKERS = ("o", "s", "^", "D", "v", "P")


@dataclass(frozen=True)
class Point:
    """One row on one test set; ``None`` where that cost is not known (left out of its panel)."""

    label: str
    test_set: str
    psnr: float
    gflops: Optional[float]
    latency_ms: Optional[float]


@dataclass
class CostPoints:
    """What one plot shows: its setting, reference commit, points, and what was left out."""

    setting: dict[str, Any]
    reference: str
    points: list[Point] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one sentence each
    marked: bool = False  # a point from another commit than the reference
    latency_source: str = ""


def latest_cost_file(folder: Path, preset: str = "paper") -> Optional[Path]:
    """The newest full cost report of ``preset`` in ``folder`` (``cost-<YYYY-MM-DD>.json`` for
    the paper presets, ``cost-<YYYY-MM-DD>-<preset>.json`` otherwise, never a ``-quick`` one);
    ``None`` if there is none."""
    def of_preset(p: Path) -> bool:
        m = _COST_FILE.fullmatch(p.name)
        return m is not None and (m["preset"] or "paper") == preset
    found = sorted(p for p in Path(folder).glob("cost-*.json") if of_preset(p))
    return found[-1] if found else None


@lru_cache(maxsize=None)
def _counted_gflops(model: str, preset: str, size: int) -> Optional[float]:
    from .cost import count_cost

    try:
        return count_cost(model, preset, size).flops / 1e9
    except ValueError:  # not a registered model or preset (GFP-GAN's pretrained prior)
        return None


def _row_gflops(row: Mapping[str, Any]) -> Optional[float]:
    counted = _counted_gflops(row["model"], row["preset"], int(row["size"]))
    return counted if counted is not None else row.get("gflops")


def _latency(cost: Optional[Mapping[str, Any]], row: Mapping[str, Any]) -> tuple[Optional[float], str]:
    """The report's fp32 batch-1 latency for the row, or ``None`` and why not."""
    if cost is None:
        return None, ""
    preset = cost.get("settings", {}).get("preset")
    if preset != row["preset"]:
        if study.split_preset(row["preset"])[0] == preset:  # an ablation: its own network, not timed
            return None, f"it measured the {preset} preset, not its ablations"
        return None, f"it measured the {preset} preset"
    measured = cost.get("models", {}).get(row["model"], {})
    # cost.py names it per precision mode since 2026-12-01; the reports before, plain.
    value = measured.get(f"cpu_fp32_latency_{row['size']}_ms", measured.get(f"cpu_latency_{row['size']}_ms"))
    return (None, f"it has no {row['size']} px latency for the model") if value is None else (float(value), "")


def cost_points(
    rows: Iterable[Mapping[str, Any]],
    cost: Optional[Mapping[str, Any]] = None,
    cost_name: str = "",
    *,
    bin: str = PLOT_BIN,
    gflops: Callable[[Mapping[str, Any]], Optional[float]] = _row_gflops,
) -> CostPoints:
    """The points of one plot from the rows of ONE setting; rows of several are refused.

    ``cost`` is a parsed cost report (``benchmarks/cost.py``'s JSON), ``cost_name`` the name
    the caption gives it. ``gflops(row)`` defaults to :func:`facefill.cost.count_cost` at the
    row's model, preset and size (the row's stored ``gflops`` where the model is not
    registered). Raises :class:`~facefill.errors.InputError` when the rows span more than one
    setting: a row trained at another budget, size, data or with other masks is never drawn
    beside them.
    """
    groups = study.by_setting(rows)
    if len(groups) != 1:
        raise InputError(
            f"a quality-per-cost plot takes the rows of one setting ({', '.join(study.SETTING)}); "
            f"these have {len(groups)}: " + "; ".join(study.setting_title(s) for s, _ in groups)
        )
    (setting, members), = groups
    reference = study.reference_commit(members)
    out = CostPoints(setting, reference, latency_source=cost_name or "no cost report")
    def kind(r: Mapping[str, Any]) -> str:  # "own", "shared", "none (classical)", "pretrained (...)"
        return str(r["recipe"]).split(":")[0]

    # A label names what tells two rows of the same model apart: preset, recipe kind, seed.
    varies = {
        (m, k): len({str(f(r)) for r in members if r["model"] == m}) > 1
        for m in {r["model"] for r in members}
        for k, f in (("preset", lambda r: r["preset"]), ("recipe", kind), ("seed", lambda r: r["seed"]))
    }
    no_gflops, no_latency, no_bin = [], {}, []
    for row in sorted(members, key=study.row_order):
        off = row["commit"] != reference
        out.marked |= off
        m = row["model"]
        label = m + "".join([
            f" {row['preset']}" if varies[m, "preset"] else "",
            f" {kind(row)}" if varies[m, "recipe"] else "",
            f" seed {row['seed']}" if varies[m, "seed"] else "",
            f" {study.MARK}" if off else "",
        ])
        g = gflops(row)
        latency, why = _latency(cost, row)
        if g is None:
            no_gflops.append(label)
        if latency is None:
            no_latency.setdefault(why, []).append(label)
        for name, bins in study.test_sets(row).items():
            psnr = (bins.get(bin) or {}).get("psnr")
            if psnr is None:
                no_bin.append(f"{label} on {name}")
                continue
            out.points.append(Point(label, name, float(psnr), g, latency))
    if no_bin:
        out.notes.append(f"No {bin} bin, so not plotted: {', '.join(no_bin)}.")
    if no_gflops:
        out.notes.append(f"Left out of the GFLOP panel (not a registered model): {', '.join(no_gflops)}.")
    for why, labels in no_latency.items():
        source = out.latency_source + (f": {why}" if why else "")
        out.notes.append(f"Left out of the latency panel ({source}): {', '.join(labels)}.")
    return out


def plot_status() -> Optional[str]:
    """``None`` when plots can be drawn, else one line saying why not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return 'quality-per-cost plot skipped: it needs matplotlib (pip install "facefill[bench]")'
    return None


def plot_name(setting: Mapping[str, Any]) -> str:
    """The PNG name of a setting's plot: every setting field, made safe for a path."""
    text = f"{setting['data']}_{setting['size']}px_{setting['steps']}x{setting['batch']}_{setting['masks']}"
    return re.sub(r"[^A-Za-z0-9.+_-]+", "-", text).strip("-") + ".png"


def _caption(cp: CostPoints) -> str:
    lines = [
        f"PSNR in the {PLOT_BIN} bin. GFLOP per image: facefill.cost.count_cost at "
        f"{cp.setting['size']} px. CPU latency: fp32, batch 1, from {cp.latency_source}.",
        *cp.notes,
    ]
    if cp.marked:
        lines.append(f"{study.MARK} trained and evaluated at another commit than the reference ({cp.reference}).")
    return "\n".join(textwrap.fill(line, 150) for line in lines)


def plot_cost(cp: CostPoints, path: Path) -> Path:
    """Draw ``cp`` (from :func:`cost_points`) as a PNG at ``path`` with matplotlib's Agg backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    caption = _caption(cp)
    lines = caption.count("\n") + 1
    height = 5.0 + 0.14 * lines  # inches: the panels keep their height, the caption gets its own
    fig = Figure(figsize=(12, height), dpi=110)
    FigureCanvasAgg(fig)
    panels = fig.subplots(1, 2, sharey=True)
    sets = list(dict.fromkeys(p.test_set for p in cp.points))
    for ax, attr, xlabel in (
        (panels[0], "gflops", f"GFLOP per image at {cp.setting['size']} px"),
        (panels[1], "latency_ms", f"CPU latency, ms (fp32, batch 1; {cp.latency_source})"),
    ):
        shown = [p for p in cp.points if getattr(p, attr) is not None]
        for i, name in enumerate(sets):
            mine = [p for p in shown if p.test_set == name]
            ax.scatter([getattr(p, attr) for p in mine], [p.psnr for p in mine],
                       marker=_MARKERS[i % len(_MARKERS)], color=f"C{i}", label=f"{name} test set", zorder=3)
        if attr == "latency_ms" and shown and min(p.latency_ms for p in shown) > 0:
            from matplotlib.ticker import FuncFormatter

            ax.set_xscale("log")  # plain numbers (2, 5, 10, 20, 50), not crowded 3x10^0 labels
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(
                lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""
            ))
        if not shown:
            ax.text(0.5, 0.5, "no point: see the caption", transform=ax.transAxes, ha="center", va="center")
        else:
            _right_margin(ax, 0.3)  # room for the labels of the rightmost points
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    panels[0].set_ylabel(f"PSNR (dB), {PLOT_BIN} hole bin")
    if sets:
        panels[0].legend(loc="best", fontsize=8)
    s = cp.setting
    title = f"Quality per cost: {study.setting_title(s)}; masks {s['masks']}; reference commit {cp.reference}"
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, 0.08 / height, caption, fontsize=7.5, va="bottom", ha="left")
    fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.5 / height, bottom=(0.75 + 0.14 * lines) / height)
    for ax, attr in ((panels[0], "gflops"), (panels[1], "latency_ms")):  # once the layout is final
        _annotate(ax, [(getattr(p, attr), p.psnr, p.label) for p in cp.points if getattr(p, attr) is not None])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _right_margin(ax: Any, share: float) -> None:
    """Widen ``ax``'s x range so its last ``share`` of width is free (in the axis' own scale)."""
    lo, hi = ax.get_xlim()
    if ax.get_xscale() == "log":
        a, b = math.log10(lo), math.log10(hi)
        ax.set_xlim(lo, 10 ** (a + (b - a) / (1 - share)))
    else:
        ax.set_xlim(lo, lo + (hi - lo) / (1 - share))


def _annotate(ax: Any, items: list[tuple[float, float, str]], size: float = 8.0) -> None:
    """Label each point ``(x, y, text)`` beside it, moving a label down while it would overlap
    one placed before (points drawn at one spot, as two classical rows at 0 GFLOP, stay legible)."""
    px_per_pt = ax.figure.dpi / 72
    height = size * 1.3 * px_per_pt  # a label's height in pixels
    placed: list[tuple[float, float, float]] = []  # (left, bottom, right) in pixels
    for x, y, text in sorted(items, key=lambda it: (-it[1], it[0])):
        px, py = ax.transData.transform((x, y))
        left = px + 4 * px_per_pt  # the label starts 4 points right of the point, 3 above it
        right = left + 0.6 * size * len(text) * px_per_pt
        bottom = py + 3 * px_per_pt
        while any(left < r and right > lft and abs(bottom - b) < height for lft, b, r in placed):
            bottom -= height
        placed.append((left, bottom, right))
        ax.annotate(text, (x, y), textcoords="offset points", fontsize=size, xytext=(4, (bottom - py) / px_per_pt))


def load_cost(path: Optional[Path]) -> Optional[dict]:
    """A cost report's JSON, or ``None`` for no path."""
    return None if path is None else json.loads(Path(path).read_text())


def render_plots(rows: Iterable[Mapping[str, Any]], folder: Path, cost_path: Optional[Path], *, link: str = "") -> str:
    """One PNG per setting in ``folder`` (others there removed); the Markdown that shows them.

    ``link`` is the folder as the Markdown refers to it (relative to where it is written).
    Without matplotlib no PNG is written and each section says so in one line.
    """
    folder = Path(folder)
    cost, cost_name = load_cost(cost_path), (Path(cost_path).name if cost_path is not None else "")
    skipped = plot_status()
    written: set[Path] = set()
    out: list[str] = []
    for setting, members in study.by_setting(rows):
        cp = cost_points(members, cost, cost_name)
        name = plot_name(setting)
        out += [f"## Quality per cost: {study.setting_title(setting)}", "",
                f"Masks: {setting['masks']}. Reference commit: {cp.reference}.", ""]
        if skipped:
            out.append(f"Not drawn: {skipped}.")
        else:
            written.add(plot_cost(cp, folder / name))
            href = f"{link.rstrip('/')}/{name}" if link else name
            out.append(f"![PSNR in the {PLOT_BIN} bin against GFLOP per image and CPU latency]({href})")
        out += ["", _caption(cp).replace("\n", " "), ""]
    if not skipped and folder.is_dir():
        for stale in set(folder.glob("*.png")) - written:
            stale.unlink()
    return "\n".join(out)
