"""CPU latency of a generator in PyTorch and in onnxruntime, same weights, same inputs.

Exports the model with ``facefill.export.export_onnx`` (verified against PyTorch, max abs
difference reported), then times batch-1 inference of both on the CPU: PyTorch ``inpaint``
in eval mode under ``torch.inference_mode``; onnxruntime's ``CPUExecutionProvider`` with all
graph optimisations and as many intra-op threads as torch uses. Median of ``--repeats``
calls after ``--warmup`` untimed ones, interleaved (one PyTorch call, one onnxruntime call)
so that a change in machine load hits both alike.

    python benchmarks/onnx_speed.py                              # apfi, paper preset, 256x256
    python benchmarks/onnx_speed.py --model rfr --repeats 20
    python benchmarks/onnx_speed.py --quick --out /tmp/onnx      # smoke test: small, 64 px

Needs ``pip install "facefill[export]"``. Run it on a quiet machine. Writes
``<out>/onnx-<YYYY-MM-DD>.json`` and ``.md`` (``onnx-<date>-quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from facefill import bench
from facefill.errors import FacefillError
from facefill.export import export_onnx, require_onnx
from facefill.models import create_model, list_models

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="apfi", choices=list_models(kind="generator"))
    p.add_argument("--preset", default="paper")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--cycles", type=int, default=None, help="cycles baked into the graph (default: the model's)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="smoke test: small preset, 64 px, 2 repeats, 1 warm-up")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = p.parse_args(argv)
    if args.quick:
        args.preset, args.size, args.repeats, args.warmup = "small", 64, 2, 1
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        _, ort = require_onnx()
    except FacefillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    machine = bench.machine_info()
    machine["onnxruntime"] = ort.__version__
    torch.manual_seed(0)
    model = create_model(args.model, args.preset).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.model}.onnx"
        t0 = time.perf_counter()
        exported = export_onnx(model, path, size=args.size, opset=args.opset, cycles=args.cycles)
        export_s = time.perf_counter() - t0
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        onnx_mb = path.stat().st_size / 2**20
    image, mask = bench.bench_inputs(1, args.size)
    feed = {"image": image.numpy(), "mask": mask.numpy()}
    kwargs = {} if args.cycles is None else {"cycles": args.cycles}

    def run_torch():
        with torch.inference_mode():
            return model.inpaint(image, mask, **kwargs)

    def run_ort():
        return session.run(["output"], feed)[0]

    for _ in range(args.warmup):
        run_torch()
        run_ort()
    times = {"pytorch": [], "onnxruntime": []}
    for _ in range(args.repeats):
        for key, fn in (("pytorch", run_torch), ("onnxruntime", run_ort)):
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    diff = float(abs(run_ort() - run_torch().numpy()).max())
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    date = _dt.date.today().isoformat()
    result = {
        "model": args.model,
        "preset": args.preset,
        "size": args.size,
        "cycles": exported.cycles,
        "opset": args.opset,
        "batch": 1,
        "threads": threads,
        "pytorch_latency_ms": med["pytorch"],
        "onnxruntime_latency_ms": med["onnxruntime"],
        "speedup_onnxruntime": med["pytorch"] / med["onnxruntime"],
        "max_abs_diff_export_check": exported.max_abs_diff,
        "max_abs_diff_bench_input": diff,
        "export_seconds": export_s,
        "onnx_file_mb": onnx_mb,
        "samples_ms": {k: [round(x * 1e3, 4) for x in v] for k, v in times.items()},
        "repeats": args.repeats,
        "warmup": args.warmup,
        "machine": machine,
        "date": date,
        "command": bench.command_line(),
    }
    stem = f"onnx-{date}" + ("-quick" if args.quick else "")
    md = "\n".join([
        f"# PyTorch vs onnxruntime, CPU, {date}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{args.model} ({args.preset}) at {args.size}x{args.size}, {exported.cycles} cycles, batch 1, "
        f"opset {args.opset}; {machine['cpu_model']}, {threads} threads, torch {machine['torch']}, "
        f"onnxruntime {machine['onnxruntime']}, load average {machine.get('load_average_1min', float('nan')):.2f} "
        f"at the start. Median of {args.repeats} interleaved calls after {args.warmup} warm-up calls.",
        "",
        "| runtime | latency (ms) |",
        "|---|---|",
        f"| PyTorch (eval, inference_mode) | {med['pytorch']:.1f} |",
        f"| onnxruntime (CPUExecutionProvider, ORT_ENABLE_ALL) | {med['onnxruntime']:.1f} |",
        "",
        f"onnxruntime / PyTorch speed-up: **{result['speedup_onnxruntime']:.2f}x**. Outputs agree to "
        f"{max(diff, exported.max_abs_diff):.1e} (max abs difference). Export took {export_s:.1f} s; "
        f"the graph is {onnx_mb:.1f} MB.",
        "",
    ])
    bench.write_report(args.out, stem, result, md)
    print(f"pytorch {med['pytorch']:.1f} ms, onnxruntime {med['onnxruntime']:.1f} ms, max abs diff {diff:.1e}; "
          f"wrote {args.out / (stem + '.json')} and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
