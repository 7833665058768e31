"""A comparison that fills up over runs: one stored row per trained model, tables by budget.

``benchmarks/quality.py`` trains and evaluates one model per invocation and stores the result
as one JSON file (a *row*) under ``benchmarks/results/study/``, keyed by everything that makes
two numbers comparable: model, preset, recipe, data, size, steps, batch, seed, the evaluation
masks and the git commit that produced it. :func:`render` then builds the tables: rows share
a table only when they share the *setting* (:data:`SETTING`: data, size, steps, batch, masks),
so a row trained at another budget, size or on other data is always in a table of its own,
under a heading that states its setting. Within a table the commit is a column, and a row
whose commit is not the table's reference commit (the one most rows there have) is marked
``†`` with a footnote: code may have changed between the two.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["KEY", "SETTING", "git_commit", "row_name", "save_row", "load_rows", "render"]

#: What identifies a row; a second run with the same key replaces the first.
KEY = ("model", "preset", "recipe", "data", "size", "steps", "batch", "seed", "masks", "commit")
#: What rows must share to be in one table.
SETTING = ("data", "size", "steps", "batch", "masks")
MARK = "†"


def git_commit(root: Path) -> str:
    """The commit of ``root``'s checkout, ``-dirty`` appended when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short=12", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def _check(row: Mapping[str, Any]) -> None:
    missing = [k for k in KEY if k not in row]
    if missing or "bins" not in row:
        raise ValueError(f"a study row needs {', '.join(KEY)} and bins; missing {missing or ['bins']}")


def row_name(row: Mapping[str, Any]) -> str:
    """The file name of a row: every key field, in order, made safe for a path."""
    _check(row)
    text = "_".join(f"{row[k]}" for k in KEY)
    return re.sub(r"[^A-Za-z0-9.+_-]+", "-", text).strip("-") + ".json"


def save_row(folder: Path, row: Mapping[str, Any]) -> Path:
    """Write ``row`` as ``folder/<row_name>.json`` (atomically); return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / row_name(row)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(row), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_rows(folder: Path) -> list[dict[str, Any]]:
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    for row in rows:
        _check(row)
    return rows


def _setting(row: Mapping[str, Any]) -> tuple:
    return tuple(row[k] for k in SETTING)


def render(rows: Iterable[Mapping[str, Any]], bins: Iterable[str] | None = None) -> str:
    """Markdown: one table per setting, its heading naming it; off-commit rows marked ``†``."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        _check(row)
        groups.setdefault(_setting(row), []).append(row)
    out: list[str] = []
    for setting, members in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        s = dict(zip(SETTING, setting))
        reference = Counter(r["commit"] for r in members).most_common(1)[0][0]
        table_bins = list(bins) if bins is not None else list(members[0]["bins"])
        with_id = any("identity" in (r["bins"].get(b) or {}) for r in members for b in table_bins)
        per_bin = 4 if with_id else 3
        out += [
            f"## {s['steps']} steps of batch {s['batch']} at {s['size']}x{s['size']} on {s['data']}",
            "",
            f"Masks: {s['masks']}. Reference commit: {reference}.",
            "",
            "| model | recipe | seed | commit |"
            + "".join(f" PSNR {b} | SSIM {b} | L1 {b} |" + (f" identity {b} |" if with_id else "") for b in table_bins),
            "|---|---|---|---|" + "---:|" * per_bin * len(table_bins),
        ]
        marked = False
        for r in sorted(members, key=lambda r: (r["model"], r["preset"], r["recipe"], r["seed"])):
            off = r["commit"] != reference
            marked |= off
            cells = "".join(_metric_cells(r["bins"].get(b), with_id) for b in table_bins)
            out.append(
                f"| {r['model']} ({r['preset']}) | {r['recipe']} | {r['seed']} | "
                f"{r['commit']}{' ' + MARK if off else ''} |{cells}"
            )
        if marked:
            out += ["", f"{MARK} trained and evaluated at another commit than the reference: the code may differ."]
        out.append("")
    return "\n".join(out)


def _metric_cells(m: Mapping[str, Any] | None, with_id: bool) -> str:
    if m is None:
        return " – |" * (4 if with_id else 3)
    cells = f" {m['psnr']:.2f} | {m['ssim']:.4f} | {m['l1']:.4f} |"
    if with_id:
        cells += f" {m['identity']:.4f} |" if m.get("identity") is not None else " – |"
    return cells
