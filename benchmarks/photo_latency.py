"""What :class:`facefill.Inpainter` adds to the network's own time on a real-size photo.

A 1920x1280 photo (the bundled public-domain astronaut's head pasted onto a smooth
background, the face about 140 px wide) with one face-sized hole over the eyes and nose goes
through ``Inpainter(photo, hole)`` with the bundled demo weights. Each call is timed whole and
in parts, in the same call: the network (``run_generator`` without the blend), the Poisson
blend of its fill (``facefill.blend``, the default), face detection (``find_faces``), the warp
in and back (``align.warp_in`` / ``warp_back``) and the rest (reading the mask, growing and
feathering the hole, ownership, the composite). The overhead is the call minus the network. Median of ``--repeats`` calls after ``--warmup`` untimed ones.

    python benchmarks/photo_latency.py                 # writes benchmarks/results/photo-latency-<date>.json, .md
    python benchmarks/photo_latency.py --quick --out /tmp/p   # smoke test: 2 calls, a 960x640 photo

Target (issue 14): overhead <= 50 ms on this CPU. Run it on a quiet machine: the load average
at the start is in the report.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from facefill import bench
from facefill.demo import sample_image
from facefill.models import base as model_base
from facefill.photo import Inpainter, align, detect
from facefill.photo import inpainter as front

ROOT = Path(__file__).resolve().parents[1]
# YuNet's landmarks on the bundled astronaut (right eye, left eye, nose, mouth corners).
ASTRO_LM = np.array([(200.2, 101.7), (246.9, 102.4), (220.0, 124.4), (199.1, 142.9), (239.7, 143.7)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1280)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="smoke test: 960x640, 2 calls, 1 warm-up")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = p.parse_args(argv)
    if args.quick:
        args.width, args.height, args.repeats, args.warmup = 960, 640, 2, 1
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    return args


def make_photo(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The photo and its hole: the astronaut's head (1.2x) at the photo's left third."""
    y, x = np.mgrid[0:height, 0:width]
    photo = (np.stack([x / width, y / height, 1 - x / width], axis=2) * 60 + [110, 120, 130]).astype(np.uint8)
    head = np.asarray(sample_image())[0:260, 90:350]
    M = cv2.getRotationMatrix2D((130, 130), 0, 1.2)
    M[:, 2] += np.array([width / 3, height / 2]) - 130
    inside = cv2.warpAffine(np.full(head.shape[:2], 255, np.uint8), M, (width, height)) == 255
    photo[inside] = cv2.warpAffine(head, M, (width, height))[inside]
    lm = (ASTRO_LM - [90, 0]) @ M[:, :2].T + M[:, 2]
    eye = np.linalg.norm(lm[1] - lm[0])
    hole = np.zeros((height, width), np.uint8)
    (x0, y0), (x1, y1) = lm[0] - [0.8 * eye, 0.6 * eye], lm[1] + [0.8 * eye, 1.0 * eye]
    hole[int(y0) : int(y1), int(x0) : int(x1)] = 255
    return photo, hole


class Clock:
    """Time spent in wrapped functions, per name, for one call at a time."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._wrapped: list[tuple[object, str, object]] = []

    def restore(self) -> None:
        for owner, attr, fn in reversed(self._wrapped):
            setattr(owner, attr, fn)
        self._wrapped.clear()

    def wrap(self, owner, attr: str, name: str) -> None:
        fn = getattr(owner, attr)
        self._wrapped.append((owner, attr, fn))

        def timed(*a, **kw):
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.spent[name] += time.perf_counter() - start

        setattr(owner, attr, timed)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = bench.machine_info()
    inp = Inpainter.from_pretrained(device="cpu")
    photo, hole = make_photo(args.width, args.height)
    clock = Clock()
    clock.wrap(front, "run_generator", "network")
    clock.wrap(model_base, "poisson_blend", "blend")  # runs inside run_generator
    clock.wrap(front, "find_faces", "detection")
    clock.wrap(align, "warp_in", "warp_in")
    clock.wrap(align, "warp_back", "warp_back")
    samples: dict[str, list[float]] = defaultdict(list)
    info = None
    try:
        for i in range(args.warmup + args.repeats):
            clock.spent.clear()
            start = time.perf_counter()
            _, infos = inp(photo, hole, return_info=True)
            total = time.perf_counter() - start
            info = infos[0]
            if i < args.warmup:
                continue
            spent = dict(clock.spent)
            spent["network"] -= spent.get("blend", 0.0)  # the network's own time
            samples["total"].append(total)
            for name in ("network", "blend", "detection", "warp_in", "warp_back"):
                samples[name].append(spent.get(name, 0.0))
            samples["overhead"].append(total - spent["network"])
            samples["rest"].append(total - sum(spent.values()))
    finally:
        clock.restore()
    med = {k: round(statistics.median(v) * 1e3, 2) for k, v in samples.items()}
    date = _dt.date.today().isoformat()
    report = {
        "photo": f"{args.width}x{args.height}",
        "hole_fraction": round(float(info.hole_fraction), 5),
        "mode": info.mode,
        "faces": len(info.faces),
        "model_size": inp.size,
        "precision": inp.precision,
        "blend": inp.blend,
        "median_ms": med,
        "target_overhead_ms": 50,
        "overhead_within_target": med["overhead"] <= 50,
        "samples_ms": {k: [round(x * 1e3, 3) for x in v] for k, v in samples.items()},
        "repeats": args.repeats,
        "warmup": args.warmup,
        "detect_max_side": detect.DETECT_MAX_SIDE,
        "machine": machine,
        "date": date,
        "command": bench.command_line(argv),
    }
    rows = [("the whole call", "total"), ("the network (run_generator, without the Poisson blend)", "network"),
            ("**overhead** (call - network)", "overhead"), ("  Poisson blend of the fill (facefill.blend)", "blend"),
            ("  face detection (YuNet)", "detection"), ("  warp in", "warp_in"), ("  warp back", "warp_back"),
            ("  the rest (mask, feathering, composite)", "rest")]
    md = "\n".join([
        f"# Inpainter overhead on a {args.width}x{args.height} photo, {date}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"One face ({info.mode}), a hole of {100 * info.hole_fraction:.2f} % of the photo, the bundled demo weights at "
        f"{inp.size} px in {inp.precision}; {machine['cpu_model']}, {machine['torch_num_threads']} torch threads, load "
        f"average {machine.get('load_average_1min', float('nan')):.2f} at the start. Median of {args.repeats} calls "
        f"after {args.warmup} warm-up calls.",
        "",
        "| part | ms |",
        "|---|---|",
        *[f"| {label} | {med[key]:.1f} |" for label, key in rows],
        "",
        f"Target: overhead <= 50 ms ({'met' if report['overhead_within_target'] else 'not met'}).",
        "",
    ])
    stem = f"photo-latency-{date}" + ("-quick" if args.quick else "")
    json_path, md_path = bench.write_report(args.out, stem, report, md)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
