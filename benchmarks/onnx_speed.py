"""CPU latency and accuracy of a generator in PyTorch and in onnxruntime: fp32, int8, fp16.

Exports the model with ``facefill.export.export_onnx`` (verified against PyTorch, max abs
difference reported), then builds onnxruntime variants of the same graph:

* ``fp32``: the exported graph;
* ``int8-dynamic``: ``onnxruntime.quantization.quantize_dynamic``, int8 weights (QInt8),
  activations quantised per call;
* ``fp16``: ``onnxruntime.transformers.float16.convert_float_to_float16`` with float32 inputs
  and outputs (``keep_io_types``); a variant that cannot be built or run here is reported as
  "n/a: <reason>";
* ``bf16`` is not built: ONNX's Conv takes float16, float and double only, so a bfloat16 graph
  of these models is invalid. The script checks that with the installed onnxruntime on a
  one-Conv graph and reports what it said.

All run on the ``CPUExecutionProvider`` with all graph optimisations and as many intra-op
threads as torch. Latency at batch 1: median of ``--repeats`` calls after ``--warmup`` untimed
ones, PyTorch and every variant interleaved so that a change in machine load hits all alike.
Accuracy of every variant against PyTorch fp32 (``--weights``: a weights file or ``demo``;
default seeded random weights) on the bundled public-domain astronaut (resized
to the model's size) with a seeded free-form hole (``facefill.masks.random_mask``, ``--seed``):
max abs difference, PSNR of the whole output and PSNR inside the hole (outside it every variant
copies the known pixels, so the hole is where a variant can differ).

    python benchmarks/onnx_speed.py                              # apfi, paper preset, 256x256
    python benchmarks/onnx_speed.py --model rfr --repeats 20
    python benchmarks/onnx_speed.py --weights demo --size 128    # the bundled demo weights
    python benchmarks/onnx_speed.py --quick --out /tmp/onnx      # smoke test: demo weights, 64 px

Needs ``pip install "facefill[export]"``. Run it on a quiet machine. Writes
``<out>/onnx-<YYYY-MM-DD>.json`` and ``.md`` (``onnx-<date>-quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facefill import bench
from facefill._inference import prepare_model, run_generator, uses_channels_last
from facefill.errors import FacefillError
from facefill.export import export_onnx, require_onnx
from facefill.masks import random_mask
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
    p.add_argument(
        "--weights", default=None,
        help="a facefill weights file, or 'demo' for the bundled demo weights (APFI small); it sets the model "
        "and preset (default: --model/--preset with seeded random weights)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the hole of the accuracy input (default: 0)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for all (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="smoke test: the demo weights, 64 px, 2 repeats, 1 warm-up")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = p.parse_args(argv)
    if args.quick:
        args.preset, args.size, args.repeats, args.warmup = "small", 64, 2, 1
        args.weights = args.weights or "demo"
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    return args


def load_model(args) -> tuple[torch.nn.Module, str]:
    """The model to export and what its weights are; a weights file sets ``args.model`` and ``args.preset``."""
    if args.weights is None:
        torch.manual_seed(0)
        return create_model(args.model, args.preset).eval(), "seeded random initialisation (torch.manual_seed(0))"
    from importlib import resources

    from facefill.checkpoint import load_weights
    from facefill.photo import DEMO_WEIGHTS

    if args.weights == "demo":
        with resources.as_file(resources.files("facefill").joinpath(DEMO_WEIGHTS)) as path:
            model, meta = load_weights(path)
        name = f"the bundled demo weights (facefill/{DEMO_WEIGHTS})"
    else:
        model, meta = load_weights(args.weights)
        name = Path(args.weights).name
    args.model, args.preset = meta["model"], meta["preset"]
    return model.eval(), name


def astronaut_input(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled astronaut resized to ``size`` (1, 3, S, S) and a seeded free-form hole (1, 1, S, S)."""
    from PIL import Image

    from facefill.demo import sample_image

    rgb = np.asarray(sample_image().resize((size, size), Image.BICUBIC), dtype=np.float32) / 255
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()
    hole = random_mask(size, np.random.default_rng(seed), "medium")
    return image, torch.from_numpy(hole.astype(np.float32))[None, None]


def accuracy(got: np.ndarray, want: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """Max abs difference, PSNR of the whole image and inside the hole (values in [0, 1])."""
    diff = got.astype(np.float64) - want.astype(np.float64)

    def psnr(sq: np.ndarray) -> float:
        mse = float(sq.mean()) if sq.size else 0.0
        return math.inf if mse == 0 else 10 * math.log10(1 / mse)

    in_hole = np.broadcast_to(hole.astype(bool), diff.shape)
    return {
        "max_abs_diff": float(np.abs(diff).max()),
        "psnr_db": psnr(diff**2),
        "psnr_hole_db": psnr(diff[in_hole] ** 2),
    }


def bf16_graph_check(onnx, ort) -> str:
    """What the installed onnxruntime says to a one-Conv bfloat16 graph (why there is no bf16 variant)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [1, 8, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [1, 8, 8, 8])
    w = helper.make_tensor("w", TensorProto.BFLOAT16, [8, 8, 3, 3], [0] * (8 * 8 * 9))
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:
        return f"n/a: a bfloat16 Conv graph is refused by onnxruntime {ort.__version__}: {str(e).strip().splitlines()[0]}"
    return "n/a: onnxruntime accepts a bfloat16 Conv here, but onnx/onnxruntime ship no converter to build such a graph"


def build_variants(path: Path, onnx, ort, threads: int) -> tuple[dict[str, Any], dict[str, str], dict[str, float]]:
    """Sessions of each variant, "n/a" reasons of those that could not be built, each file's MB."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    files = {"fp32": path, "int8-dynamic": path.with_name("int8.onnx"), "fp16": path.with_name("fp16.onnx")}

    def int8() -> None:
        from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

        # onnxruntime's recommended pre-processing (shape inference, constant folding) first: the
        # exporter leaves some Conv weights behind ops that fold to constants, which
        # quantize_dynamic refuses ("Expected ... to be an initializer")
        prepared = path.with_name("prepared.onnx")
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(str(prepared), str(files["int8-dynamic"]), weight_type=QuantType.QInt8)

    def fp16() -> None:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(path)), keep_io_types=True), str(files["fp16"]))

    builders: dict[str, Callable[[], None]] = {"fp32": lambda: None, "int8-dynamic": int8, "fp16": fp16}
    sessions, missing, sizes = {}, {}, {}
    for name, build in builders.items():
        try:
            build()
            sessions[name] = ort.InferenceSession(str(files[name]), options, providers=["CPUExecutionProvider"])
            sizes[name] = files[name].stat().st_size / 2**20
        except Exception as e:
            if name == "fp32":
                raise
            missing[name] = f"n/a: {bench.one_line_error(e)}"
    missing["bf16"] = bf16_graph_check(onnx, ort)
    return sessions, missing, sizes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        onnx, ort = require_onnx()
    except FacefillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    machine = bench.machine_info()
    machine["onnxruntime"] = ort.__version__
    model, weights = load_model(args)
    image, mask = astronaut_input(args.size, args.seed)
    kwargs = {} if args.cycles is None else {"cycles": args.cycles}

    def run_torch():
        with torch.inference_mode():
            return model.inpaint(image, mask, **kwargs)

    # PyTorch as Inpainter and evaluate run it: the model's own layout (channels_last for APFI).
    served = prepare_model(copy.deepcopy(model), None)

    def run_torch_served():
        with torch.inference_mode():
            return run_generator(served, image, mask, None, **kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.model}.onnx"
        t0 = time.perf_counter()
        exported = export_onnx(model, path, size=args.size, opset=args.opset, cycles=args.cycles)
        export_s = time.perf_counter() - t0
        sessions, missing, file_mb = build_variants(path, onnx, ort, threads)
    feed = {"image": image.numpy(), "mask": mask.numpy()}
    runners: dict[str, Callable[[], Any]] = {"pytorch": run_torch}
    if uses_channels_last(served, None):
        runners["pytorch-channels_last"] = run_torch_served
    for name, session in sessions.items():
        runners[f"onnxruntime-{name}"] = lambda s=session: s.run(["output"], feed)[0]
    outputs: dict[str, Any] = {}
    for key, fn in list(runners.items()):  # warm-up, and drop a variant that builds but does not run
        try:
            for _ in range(max(args.warmup, 1)):
                outputs[key] = fn()
        except Exception as e:
            missing[key.removeprefix("onnxruntime-")] = f"n/a: {bench.one_line_error(e)}"
            del runners[key]
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.repeats):
        for key, fn in runners.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    want = outputs["pytorch"].numpy()
    acc = {k: accuracy(np.asarray(outputs[k]), want, mask.numpy()) for k in runners if k != "pytorch"}
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    date = _dt.date.today().isoformat()
    result = {
        "model": args.model,
        "preset": args.preset,
        "weights": weights,
        "size": args.size,
        "cycles": exported.cycles,
        "opset": args.opset,
        "batch": 1,
        "threads": threads,
        "latency_ms": med,
        "speedup_over_pytorch": {k: med["pytorch"] / v for k, v in med.items() if k != "pytorch"},
        "accuracy_vs_pytorch_fp32": acc,
        "not_available": missing,
        "onnx_file_mb": file_mb,
        "max_abs_diff_export_check": exported.max_abs_diff,
        "accuracy_input": f"bundled astronaut resized to {args.size}x{args.size}, random_mask seed {args.seed} (medium), "
        f"hole {float(mask.mean()):.1%}",
        "export_seconds": export_s,
        "samples_ms": {k: [round(x * 1e3, 4) for x in v] for k, v in times.items()},
        "repeats": args.repeats,
        "warmup": args.warmup,
        "machine": machine,
        "date": date,
        "command": bench.command_line(argv),
    }
    stem = f"onnx-{date}" + ("-quick" if args.quick else "")
    bench.write_report(args.out, stem, result, markdown(result, args))
    summary = ", ".join(f"{k} {v:.1f} ms" for k, v in med.items())
    print(f"{summary}; wrote {args.out / (stem + '.json')} and .md", file=sys.stderr)
    return 0


def markdown(result: dict[str, Any], args) -> str:
    m, med, acc = result["machine"], result["latency_ms"], result["accuracy_vs_pytorch_fp32"]
    lines = [
        f"# PyTorch vs onnxruntime, CPU, {result['date']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{args.model} ({args.preset}, {result['weights']}) at {args.size}x{args.size}, {result['cycles']} cycles, batch 1, "
        f"opset {args.opset}; {m['cpu_model']} ({m['cpu_capability']}), {result['threads']} threads, torch {m['torch']}, "
        f"onnxruntime {m['onnxruntime']}, load average {m.get('load_average_1min', float('nan')):.2f} "
        f"at the start. Median of {args.repeats} interleaved calls after {args.warmup} warm-up calls; "
        "onnxruntime's CPUExecutionProvider with ORT_ENABLE_ALL. Accuracy against PyTorch fp32 on "
        f"the {result['accuracy_input']}.",
        "",
        "| runtime | latency (ms) | speed-up over PyTorch | max abs diff | PSNR (dB) | PSNR in hole (dB) | file (MB) |",
        "|---|---|---|---|---|---|---|",
        f"| PyTorch fp32 (eval, inference_mode) | {med['pytorch']:.1f} | 1 | 0 | – | – | – |",
    ]
    for key, ms in med.items():
        if key == "pytorch":
            continue
        a, name = acc[key], key.removeprefix("onnxruntime-")
        if key == "pytorch-channels_last":
            lines.append(
                f"| PyTorch fp32, channels_last (as `Inpainter` runs it) | {ms:.1f} | "
                f"{result['speedup_over_pytorch'][key]:.2f}x | {a['max_abs_diff']:.1e} | {a['psnr_db']:.1f} | "
                f"{a['psnr_hole_db']:.1f} | – |"
            )
            continue
        lines.append(
            f"| onnxruntime {name} | {ms:.1f} | {result['speedup_over_pytorch'][key]:.2f}x | {a['max_abs_diff']:.1e} | "
            f"{a['psnr_db']:.1f} | {a['psnr_hole_db']:.1f} | {result['onnx_file_mb'].get(name, float('nan')):.1f} |"
        )
    for name, why in result["not_available"].items():
        lines.append(f"| onnxruntime {name} | {why} | | | | | |")
    lines += [
        "",
        f"The export check (`facefill export`'s verification against onnxruntime) agreed to "
        f"{result['max_abs_diff_export_check']:.1e}. Export took {result['export_seconds']:.1f} s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
