"""Start-up time of the command line: ``facefill --help``, ``facefill models`` and ``facefill demo``.

Each command runs as a fresh process (``python -m facefill ...``), as a user types it, and its
wall time is measured from the parent; the median of ``--runs`` runs is reported, after one
untimed run that warms the file cache. Targets (issue 16): ``--help`` and ``models`` under
0.5 s, ``demo`` (bundled weights, end to end) under 1.5 s. The load average before and after is
recorded, and each process's CPU time (user + system) beside its wall time: on a busy machine
the wall times are longer than on a quiet one, the CPU times much less so. The report ends with
the demo's breakdown: one more fresh process that times each import the command meets (facefill's
CLI, numpy and Pillow, torch, matplotlib where installed, torchmetrics, OpenCV, the rest of
facefill) and then the run itself, wall and CPU seconds each.

    python benchmarks/startup.py            # writes benchmarks/results/startup-<date>.json/.md
    python benchmarks/startup.py --runs 3 --out /tmp/startup
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"help": 0.5, "models": 0.5, "demo": 1.5}


def wall_time(args: list[str], env: dict[str, str], module: bool = True) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one ``python -m facefill ARGS`` process
    (``module=False``: ``python ARGS``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = [sys.executable, *(["-m", "facefill"] if module else []), *args]
    subprocess.run(command, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def child_env() -> dict[str, str]:
    """The environment of the measured processes: this checkout's facefill first on the path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def measure(runs: int) -> dict[str, dict]:
    env = child_env()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"help": ["--help"], "models": ["models"], "demo": ["demo", "--out", tmp, "--device", "cpu", "--overwrite"]}
        for name, args in commands.items():
            wall_time(args, env)  # warm the file cache
            timed = [wall_time(args, env) for _ in range(runs)]
            times = [w for w, _ in timed]
            median = statistics.median(times)
            results[name] = {
                "command": "facefill " + " ".join(a if a != tmp else "TMP" for a in args),
                "median_s": round(median, 3), "min_s": round(min(times), 3), "max_s": round(max(times), 3),
                "cpu_median_s": round(statistics.median(c for _, c in timed), 3),
                "runs": runs, "target_s": TARGETS[name], "meets_target": median < TARGETS[name],
            }
            print(
                f"{results[name]['command']}: median {median:.3f} s wall, {results[name]['cpu_median_s']:.3f} s CPU "
                f"(target < {TARGETS[name]} s)", flush=True,
            )
    return results


# Run in a fresh process: where `facefill demo`'s time goes, in the order the command meets it.
# matplotlib is not a facefill dependency; torchmetrics imports it when it is installed.
_BREAKDOWN = r"""
import json, sys, tempfile, time
stages, last = [], [time.perf_counter(), time.process_time()]
def lap(name):
    now = [time.perf_counter(), time.process_time()]
    stages.append({"stage": name, "wall_s": round(now[0] - last[0], 3), "cpu_s": round(now[1] - last[1], 3)})
    last[:] = now
import facefill.cli; lap("import facefill.cli (typer, rich)")
import numpy, PIL.Image; lap("import numpy, Pillow")
import torch; lap("import torch")
try:
    import matplotlib.pyplot; lap("import matplotlib (torchmetrics imports it when installed)")
except ImportError:
    pass
import torchmetrics; lap("import torchmetrics")
import cv2; lap("import OpenCV")
from facefill.demo import run_demo; lap("import the rest of facefill.demo")
with tempfile.TemporaryDirectory() as tmp:
    r = run_demo(tmp, device="cpu")
    lap("run_demo")
stages[-1]["of_which_inpainting_s"] = round(r.seconds, 3)  # load weights, detect, inpaint
print(json.dumps(stages))
"""


def breakdown(env: dict[str, str]) -> list[dict]:
    """Wall and CPU seconds of each stage of the demo in one fresh process (imports, then the run)."""
    out = subprocess.run([sys.executable, "-c", _BREAKDOWN], check=True, capture_output=True, text=True, env=env)
    stages = json.loads(out.stdout.strip().splitlines()[-1])
    wall, cpu = wall_time(["-c", "pass"], env, module=False)
    return [{"stage": "start Python", "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}] + stages


def to_markdown(report: dict) -> str:
    lines = [
        f"# Start-up of the command line, {report['date']}",
        "",
        f"Fresh `python -m facefill` processes, wall time from the parent, median of {report['runs']} runs "
        f"after one untimed run; {report['cpu']}, {report['cpus']} CPUs, load average "
        f"{report['load_before']} before and {report['load_after']} after.",
        "",
        "| command | median wall (s) | min | max | median CPU (s) | target (s) | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["commands"].values():
        lines.append(
            f"| `{r['command']}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {r['cpu_median_s']:.3f} "
            f"| < {r['target_s']} "
            f"| {'yes' if r['meets_target'] else 'no'} |"
        )
    if report.get("demo_breakdown"):
        lines += [
            "",
            "Where `facefill demo`'s time goes (one fresh process, stages in order; wall and CPU seconds):",
            "",
            "| stage | wall (s) | CPU (s) |",
            "|---|---|---|",
        ]
        for st in report["demo_breakdown"]:
            extra = f" (inpainting {st['of_which_inpainting_s']:.3f} s of it)" if "of_which_inpainting_s" in st else ""
            lines.append(f"| {st['stage']}{extra} | {st['wall_s']:.3f} | {st['cpu_s']:.3f} |")
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="timed runs per command (median reported)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for the result files")
    p.add_argument("--note", default="", help="a sentence for the report, e.g. what else ran on the machine")
    args = p.parse_args(argv)
    import platform

    sys.path.insert(0, str(ROOT / "src"))
    from facefill.bench import command_line, cpu_model, write_report

    load_before = [round(x, 2) for x in os.getloadavg()]
    commands = measure(args.runs)
    demo_breakdown = breakdown(child_env())
    for st in demo_breakdown:
        print(f"  {st['stage']}: {st['wall_s']:.3f} s wall, {st['cpu_s']:.3f} s CPU", flush=True)
    report = {
        "date": _dt.date.today().isoformat(),
        "commands": commands,
        "demo_breakdown": demo_breakdown,
        "runs": args.runs,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "note": args.note,
        "command": command_line(argv),
    }
    json_path, md_path = write_report(args.out, f"startup-{report['date']}", report, to_markdown(report))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
