"""A comparison that fills up over runs: one stored row per trained model, tables by budget.

``benchmarks/quality.py`` trains and evaluates one model per invocation and stores the result
as one JSON file (a *row*) under ``benchmarks/results/study/``, keyed by everything that makes
two numbers comparable: model, preset, recipe, data, size, steps, batch, seed, the evaluation
masks and the git commit that produced it. :func:`render` then builds the tables: rows share
a table only when they share the *setting* (:data:`SETTING`: data, size, steps, batch, masks),
so a row trained at another budget, size or on other data is always in a table of its own,
under a heading that states its setting; each test set (data folder) a setting was evaluated
on gets its own table. Within a table the commit is a column, and a row whose commit is not
the setting's reference commit (the one most rows there have) is marked ``†`` with a
footnote: code may have changed between the two.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "KEY", "SETTING", "MARK", "git_commit", "row_name", "save_row", "load_rows", "test_sets", "reference_commit",
    "by_setting", "row_order", "setting_title", "render", "variant_preset", "render_cycles", "ablation_groups",
    "render_ablations", "split_preset", "NO_CRITIC", "POISSON",
]

#: What identifies a row; a second run with the same key replaces the first.
KEY = ("model", "preset", "recipe", "data", "size", "steps", "batch", "seed", "masks", "commit")
#: What rows must share to be in one table.
SETTING = ("data", "size", "steps", "batch", "masks")
MARK = "†"
#: The end of a recipe's name when its ablation dropped the critic (``quality.py --no-critic``).
NO_CRITIC = "-nocritic"
#: What a row's recipe name ends with when its fills were Poisson-blended (facefill.blend): the
#: same trained weights as the row without it, evaluated with ``blend="poisson"``.
POISSON = "+poisson"


#: Paths whose changes do not make a checkout's code differ from its commit: the study's own
#: outputs (study.md and its plots are re-rendered by every row, and are tracked) and the
#: Markdown documentation.
NOT_CODE = ("benchmarks/results", "*.md")


def git_commit(root: Path, ignore: Iterable[str] = NOT_CODE) -> str:
    """The commit of ``root``'s checkout, ``-dirty`` appended when tracked files differ from it
    (changes under the ``ignore`` pathspecs, results and documentation, do not count)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short=12", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in ignore)).strip()
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


def variant_preset(preset: str, variant: Mapping[str, Any]) -> str:
    """A row's preset with the generator arguments an ablation changes: ``small[kca=false]``.

    The preset is part of :data:`KEY`, so an ablation never replaces, nor reads as, its base row.
    """
    if not variant:
        return preset
    def text(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return f"{preset}[{','.join(f'{k}={text(v)}' for k, v in sorted(variant.items()))}]"


def split_preset(preset: str) -> tuple[str, str]:
    """A row's preset as (base preset, ablation): ``small[kca=false]`` -> ``("small", "kca=false")``,
    ``small`` -> ``("small", "")`` (the inverse of :func:`variant_preset`)."""
    base, _, variant = str(preset).partition("[")
    return base, variant[:-1] if variant.endswith("]") else variant


def _setting(row: Mapping[str, Any]) -> tuple:
    return tuple(row[k] for k in SETTING)


def test_sets(row: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A row's bins per test set: ``{folder name: {bin: metrics}}``.

    ``benchmarks/quality.py`` stores every folder's bins under ``test_sets`` and the first
    folder's again as ``bins``; a row without ``test_sets`` has only ``bins``, which are then
    the first data folder's (``data`` names the folders joined by ``+``).
    """
    if row.get("test_sets"):
        return dict(row["test_sets"])
    return {str(row["data"]).split("+")[0]: row["bins"]}


def by_setting(rows: Iterable[Mapping[str, Any]]) -> list[tuple[dict[str, Any], list[Mapping[str, Any]]]]:
    """Rows by setting, sorted by it: ``[(setting as a dict, its rows), ...]``."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        _check(row)
        groups.setdefault(_setting(row), []).append(row)
    return [(dict(zip(SETTING, s)), groups[s]) for s in sorted(groups, key=lambda s: tuple(map(str, s)))]


def reference_commit(members: Iterable[Mapping[str, Any]]) -> str:
    """The commit most rows of one setting have; any other is marked :data:`MARK`."""
    return Counter(r["commit"] for r in members).most_common(1)[0][0]


def setting_title(s: Mapping[str, Any]) -> str:
    return f"{s['steps']} steps of batch {s['batch']} at {s['size']}x{s['size']} on {s['data']}"


def _set_names(members: Iterable[Mapping[str, Any]]) -> list[str]:
    """The test sets of one setting's rows: in the order of their rows, first row first."""
    return list(dict.fromkeys(name for r in members for name in test_sets(r)))


def render(rows: Iterable[Mapping[str, Any]], bins: Iterable[str] | None = None) -> str:
    """Markdown: one table per setting and test set, its heading naming both; off-commit rows marked.

    Each test set (data folder) a row was evaluated on is its own table; a row without that
    set shows ``–`` there. Columns per bin: PSNR, SSIM, L1, and the hole-gradient ratio and
    the SFace identity where any row of the table has them.
    """
    out: list[str] = []
    for s, members in by_setting(rows):
        reference = reference_commit(members)
        for name in _set_names(members):
            per_row = [(r, test_sets(r).get(name) or {}) for r in members]
            table_bins = list(bins) if bins is not None else list(dict.fromkeys(b for _, t in per_row for b in t))
            metrics = [m for m in _METRICS if m[0] in ("psnr", "ssim", "l1")
                       or any(m[0] in (t.get(b) or {}) for _, t in per_row for b in table_bins)]
            out += [
                f"## {name} test set: {setting_title(s)}",
                "",
                f"Masks: {s['masks']}. Reference commit: {reference}.",
                "",
                "| model | recipe | seed | commit |" + "".join(f" {m[1]} {b} |" for b in table_bins for m in metrics),
                "|---|---|---|---|" + "---:|" * len(metrics) * len(table_bins),
            ]
            marked = False
            for r, t in sorted(per_row, key=lambda rt: row_order(rt[0])):
                off = r["commit"] != reference
                marked |= off
                cells = "".join(_cell(t.get(b), key, fmt) for b in table_bins for key, _, fmt in metrics)
                out.append(
                    f"| {r['model']} ({r['preset']}) | {r['recipe']} | {r['seed']} | "
                    f"{r['commit']}{' ' + MARK if off else ''} |{cells}"
                )
            if marked:
                out += ["", f"{MARK} trained and evaluated at another commit than the reference: the code may differ."]
            out.append("")
    return "\n".join(out)


def row_order(row: Mapping[str, Any]) -> tuple[str, ...]:
    """How rows are listed within a table or plot: by model, preset, recipe, seed."""
    return tuple(str(row[k]) for k in ("model", "preset", "recipe", "seed"))


#: The columns of a bin: (metric key, heading, format); grad ratio and identity only where present.
_METRICS = (("psnr", "PSNR", ".2f"), ("ssim", "SSIM", ".4f"), ("l1", "L1", ".4f"),
            ("grad_ratio", "grad ratio", ".2f"), ("identity", "identity", ".4f"))


def _cell(m: Mapping[str, Any] | None, key: str, fmt: str) -> str:
    value = (m or {}).get(key)
    return " – |" if value is None else f" {value:{fmt}} |"


def render_cycles(rows: Iterable[Mapping[str, Any]]) -> str:
    """Markdown: for each row evaluated at several cycle counts (``inference_cycles``, the
    paper's Table 5 at inference), one table per test set: a line per count, PSNR/SSIM/L1 per bin.

    The row's trained count (its preset's) is marked ``*``; every line is the same weights.
    """
    out: list[str] = []
    for r in sorted((r for r in rows if r.get("inference_cycles")), key=row_order):
        trained = r.get("trained_cycles")
        for name, per_count in r["inference_cycles"].items():
            counts = sorted(per_count, key=int)
            bins = list(dict.fromkeys(b for c in counts for b in per_count[c]))
            metrics = [m for m in _METRICS if m[0] in ("psnr", "ssim", "l1")]
            out += [
                f"## Cycles at inference: {r['model']} ({r['preset']}), {name} test set",
                "",
                f"One set of weights ({r['recipe']}; {setting_title(r)}; commit {r['commit']}), run with "
                f"each cycle count on the same images and masks ({r['masks']})"
                + (f"; it was trained at {trained} (*)." if trained else "."),
                "",
                "| cycles |" + "".join(f" {m[1]} {b} |" for b in bins for m in metrics),
                "|---|" + "---:|" * len(metrics) * len(bins),
            ]
            for c in counts:
                cells = "".join(_cell(per_count[c].get(b), key, fmt) for b in bins for key, _, fmt in metrics)
                out.append(f"| {c}{' *' if trained is not None and int(c) == int(trained) else ''} |{cells}")
            out.append("")
    return "\n".join(out)


def _recipe_key(row: Mapping[str, Any]) -> str:
    """The recipe's name without the loss description: ``shared-apfi_study_tuned-nocritic``."""
    return str(row["recipe"]).split(":")[0].strip()


def _change(base: Mapping[str, Any], row: Mapping[str, Any]) -> str | None:
    """What ``row`` changes from ``base`` in one setting, or ``None`` when it is not its ablation.

    An ablation is the base model with generator arguments over its preset (``small[kca=false]``,
    same recipe), the base without its critic (recipe ``<base's>-nocritic``), the base's own
    weights with Poisson-blended fills (recipe ``<base's>+poisson``), or another model trained
    with the base's recipe (RFR-Net under APFI's, as the paper's Table 1), each at the base's
    seed; or the base itself trained with another seed, whose differences are the run-to-run
    spread the other rows' differences are to be read against.
    """
    preset, variant = split_preset(row["preset"])
    if row["seed"] != base["seed"]:
        same = (row["model"], row["preset"], row["recipe"]) == (base["model"], base["preset"], base["recipe"])
        return f"seed {row['seed']} (run-to-run spread)" if same else None
    if row["model"] == base["model"]:
        if variant and preset == base["preset"] and row["recipe"] == base["recipe"]:
            return variant
        if not variant and preset == base["preset"] and _recipe_key(row) == _recipe_key(base) + NO_CRITIC:
            return "no critic"
        if not variant and preset == base["preset"] and _recipe_key(row) == _recipe_key(base) + POISSON:
            return "Poisson-blended fills (same weights)"
        return None
    if not variant and _recipe_key(row) == _recipe_key(base):
        return f"model {row['model']} ({row['preset']})"
    return None


def ablation_groups(rows: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], list[tuple[str, Mapping[str, Any]]]]]:
    """``[(base row, [(change, row), ...]), ...]``: each base row of a setting with the rows that
    change one thing from it (:func:`_change`), for bases with at least one ablation of their own
    model (a base row is one without generator arguments and with its critic, at the lowest
    seed it was trained with)."""
    return [group for _, members in by_setting(rows) for group in _groups_of(members)]


def _groups_of(members: list[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], list[tuple[str, Mapping[str, Any]]]]]:
    """:func:`ablation_groups` of the rows of ONE setting."""
    groups = []
    ordered = sorted(members, key=row_order)
    first_seed: dict[tuple, int] = {}  # a base trained with several seeds is based at its lowest
    for r in ordered:
        what = (r["model"], r["preset"], r["recipe"])
        first_seed[what] = min(int(r["seed"]), first_seed.get(what, int(r["seed"])))
    for base in ordered:
        if split_preset(base["preset"])[1] or _recipe_key(base).endswith((NO_CRITIC, POISSON)):
            continue
        if int(base["seed"]) != first_seed[base["model"], base["preset"], base["recipe"]]:
            continue
        changed = [(c, r) for r in ordered if r is not base and (c := _change(base, r)) is not None]
        if any(r["model"] == base["model"] for _, r in changed):
            groups.append((base, changed))
    return groups


def _delta(value: float | None, base: float | None, fmt: str) -> str:
    if value is None:
        return " – |"
    if base is None:
        return f" {value:{fmt}} |"
    return f" {value:{fmt}} ({value - base:+{fmt}}) |"


def render_ablations(rows: Iterable[Mapping[str, Any]]) -> str:
    """Markdown: the paper's ablations (Table 1; Table 5's trained cycle counts) from the rows.

    One table per base row (:func:`ablation_groups`) and test set: the base, then each row that
    changes one thing from it, with its parameters, GFLOP per image and, per bin, PSNR and SSIM
    with the difference to the base in brackets. Rows share the base's setting by construction;
    a row at another commit than the setting's reference is marked :data:`MARK`.
    """
    out: list[str] = []
    for _, members in by_setting(rows):
        reference = reference_commit(members)
        out += _render_groups(_groups_of(members), reference)
    return "\n".join(out)


def _render_groups(groups: list, reference: str) -> list[str]:
    """The Markdown lines of one setting's ablation tables (:func:`render_ablations`)."""
    out: list[str] = []
    for base, changed in groups:
        for name, base_bins in test_sets(base).items():
            bins = list(base_bins)
            out += [
                f"## Ablations of {base['model']} ({base['preset']}), {name} test set: {setting_title(base)}",
                "",
                f"Recipe {base['recipe']}; masks {base['masks']}. Each row changes one thing from the "
                "first; brackets: the difference to it.",
                "",
                "| change | commit | params (M) | GFLOP |" + "".join(f" PSNR {b} | SSIM {b} |" for b in bins),
                "|---|---|---:|---:|" + "---:|---:|" * len(bins),
            ]
            marked = False
            for change, r in [("— (base)", base), *changed]:
                got = test_sets(r).get(name) or {}
                off = r["commit"] != reference
                marked |= off
                params = f"{r['params'] / 1e6:.2f}" if r.get("params") else "–"
                gflops = f"{r['gflops']:.2f}" if r.get("gflops") is not None else "–"
                cells = "".join(
                    _delta((got.get(b) or {}).get(k), None if r is base else base_bins[b].get(k), fmt)
                    for b in bins for k, fmt in (("psnr", ".2f"), ("ssim", ".4f"))
                )
                out.append(f"| {change} | {r['commit']}{' ' + MARK if off else ''} | {params} | {gflops} |{cells}")
            if marked:
                out += ["", f"{MARK} trained and evaluated at another commit than the reference: the code may differ."]
            out.append("")
    return out
