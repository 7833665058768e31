"""Start-up time of the command line: ``facefill --help``, ``facefill models`` and ``facefill demo``.

Each command runs as a fresh process (``python -m facefill ...``), as a user types it, and its
wall time is measured from the parent; the median of ``--runs`` runs is reported, after one
untimed run that warms the file cache. Targets (issue 16): ``--help`` and ``models`` under
0.5 s, ``demo`` (bundled weights, end to end) under 1.5 s. The load average before and after is
recorded, and each process's CPU time (user + system) beside its wall time: on a busy machine
the wall times are longer than on a quiet one, the CPU times much less so.

    python benchmarks/startup.py            # writes benchmarks/results/startup-<date>.json/.md
    python benchmarks/startup.py --runs 3 --out /tmp/startup
"""

from __future__ import annotations

import argparse
import datetime as _dt
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


def wall_time(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one ``python -m facefill ARGS`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facefill", *args], check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(runs: int) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"help": ["--help"], "models": ["models"], "demo": ["demo", "--out", tmp, "--device", "cpu"]}
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
    report = {
        "date": _dt.date.today().isoformat(),
        "commands": commands,
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
