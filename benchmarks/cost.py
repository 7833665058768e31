"""Cost of every registered generator: parameters, FLOPs, CPU latency, memory, training rate.

For each generator (``facefill.list_models(kind="generator")``) at each size, with one preset:

* parameters and GFLOP per image (``facefill.cost.count_cost``, on the meta device);
* CPU latency of ``inpaint`` in eval mode under ``torch.inference_mode``: median of
  ``--repeats`` timed calls after ``--warmup`` untimed ones, at batch 1 and at ``--batch``
  (reported per image), in each of ``--precisions`` (fp32, and bf16 autocast with the model
  and inputs channels_last), side by side, with bf16's speed-up over fp32;
* achieved GFLOP/s (FLOPs / latency) and its fraction of what this machine reaches on a large
  matrix product and on a 3x3 128->128 convolution in the same precision (and layout),
  measured in the same run; whether the CPU computes bf16 natively (AVX512-BF16 / AMX) or
  torch emulates it (then bf16 is several times slower than fp32);
* peak resident-memory increase of one batch-1 forward, in a fresh subprocess per model and
  size (method in ``facefill.bench.peak_forward_rss``);
* training images/s of the generator alone: forward, L1 on the hole, backward, Adam step, at
  ``--train-size`` with batch ``--train-batch`` (median step time after a warm-up step);
* every metric as a ratio to ``--reference`` (``rfr``), measured in the same run.

On a CUDA machine a GPU section adds latency in fp32, in bf16 autocast with channels_last,
and with ``torch.compile`` on top, GPU peak memory, bf16 training images/s and the GPU's own
matmul/conv throughput. Without CUDA the section is skipped with a note.

    python benchmarks/cost.py                          # all generators, paper preset, 256 and 128
    python benchmarks/cost.py --models apfi --sizes 256 --repeats 10
    python benchmarks/cost.py --quick --out /tmp/cost # smoke test: 64 px, 1 repeat

A size that is not a multiple of a model's stride (``--quick``'s 64 for PConv, stride 128) is
replaced, for that model only, by the next multiple of its stride, and the report says so.

Run it on a quiet machine: other processes on the cores skew every timing (the 1-minute load
average at the start is recorded). Writes ``<out>/cost-<YYYY-MM-DD>.json`` and ``.md``
(``cost-<date>-quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path
from typing import Any

import torch

from facefill import bench
from facefill._device import precision_name, resolve_precision
from facefill.cost import count_cost
from facefill.models import create_model, list_models, list_presets, model_entry

ROOT = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="comma-separated generators (default: every registered one)")
    p.add_argument("--preset", default="paper", help="model preset (default: paper)")
    p.add_argument("--sizes", default="256,128", help="comma-separated square sizes (default: 256,128)")
    p.add_argument("--batch", type=int, default=8, help="the larger batch timed besides batch 1 (default: 8)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (default: 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before each measurement (default: 2)")
    p.add_argument("--train-size", type=int, default=128, help="image size of the training step (default: 128)")
    p.add_argument("--train-batch", type=int, default=4, help="batch of the training step (default: 4)")
    p.add_argument("--train-steps", type=int, default=3, help="timed training steps (default: 3)")
    p.add_argument("--reference", default="rfr", help="model every ratio is taken against; '' for none (default: rfr)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU section even when CUDA is available")
    p.add_argument(
        "--precisions", default="fp32,bf16",
        help="CPU inference precisions timed side by side (default: fp32,bf16; bf16 runs channels_last)",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: size 64, batch 2, 1 repeat, 1 warm-up, 1 training step at 64")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results", help="output folder (default: benchmarks/results)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.batch, args.repeats, args.warmup = "64", 2, 1, 1
        args.train_size, args.train_batch, args.train_steps = 64, 2, 1
    generators = list_models(kind="generator")
    names = generators if args.models is None else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in generators]
    if unknown:
        p.error(f"unknown generator(s) {', '.join(unknown)}; available: {', '.join(generators)}")
    if args.reference:
        if args.reference not in generators:
            p.error(f"--reference {args.reference!r} is not a registered generator; available: {', '.join(generators)}")
        if args.reference not in names:
            names.append(args.reference)  # ratios need the reference measured in the same run
    for m in names:
        if args.preset not in list_presets(m):
            p.error(f"model {m} has no preset {args.preset!r}; available: {', '.join(list_presets(m))}")
    args.model_names = names
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if any(s <= 0 for s in args.size_list + [args.train_size]):
        p.error(f"sizes must be positive, got --sizes {args.sizes} --train-size {args.train_size}")
    args.sizes_by_model, args.train_size_by_model, args.size_notes = {}, {}, []
    for m in names:
        with torch.device("meta"):
            stride = getattr(create_model(m, args.preset), "stride", 1)
        args.sizes_by_model[m] = list(dict.fromkeys(fit_size(s, stride) for s in args.size_list))
        args.train_size_by_model[m] = fit_size(args.train_size, stride)
        for s in dict.fromkeys(args.size_list + [args.train_size]):
            if fit_size(s, stride) != s:
                args.size_notes.append(f"{m}: {s} is not a multiple of its stride {stride}; measured at {fit_size(s, stride)}")
    try:
        args.dtypes = {}
        for name in (t.strip() for t in args.precisions.split(",") if t.strip()):
            dtype = resolve_precision(name, "cpu")
            args.dtypes[precision_name(dtype)] = dtype
    except ValueError as e:
        p.error(f"--precisions: {e}")
    if not args.dtypes:
        p.error("--precisions names no precision")
    for flag in ("batch", "repeats", "train_batch", "train_steps"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def fit_size(size: int, stride: int) -> int:
    """``size``, or the next multiple of ``stride`` when it is not one."""
    return -(-size // stride) * stride


def cpu_key(precision: str, rest: str) -> str:
    """``cpu_<rest>`` for fp32 (the keys of earlier reports), ``cpu_<precision>_<rest>`` otherwise."""
    return f"cpu_{rest}" if precision == "fp32" else f"cpu_{precision}_{rest}"


def fresh(name: str, preset: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, preset)


# --- CPU -------------------------------------------------------------------------------------


def measure_cpu(name: str, args, machine: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list]]:
    row: dict[str, Any] = {"preset": args.preset}
    samples: dict[str, list] = {}
    B = args.batch
    model = fresh(name, args.preset)
    for S in args.sizes_by_model[name]:
        cost = count_cost(name, args.preset, S)
        row["params"] = cost.params
        gflop = cost.flops / 1e9
        row[f"gflops_{S}"] = gflop
        for prec, dtype in args.dtypes.items():
            matmul = machine[cpu_key(prec, "matmul")]["gflops_per_s"]
            conv = machine[cpu_key(prec, "conv")]["gflops_per_s"]
            layout = dict(autocast_dtype=dtype, channels_last=dtype is not None)
            log(f"  {name} {S}x{S} {prec}: latency batch 1")
            t1 = bench.inference_latency(model, S, 1, args.repeats, args.warmup, **layout)
            log(f"  {name} {S}x{S} {prec}: latency batch {B}")
            tb = bench.inference_latency(model, S, B, args.repeats, args.warmup, **layout)
            per1, perb = t1.median, tb.median / B
            row[cpu_key(prec, f"latency_{S}_ms")] = per1 * 1e3
            row[cpu_key(prec, f"latency_{S}_b{B}_ms_per_image")] = perb * 1e3
            row[cpu_key(prec, f"gflops_per_s_{S}")] = gflop / per1
            row[cpu_key(prec, f"gflops_per_s_{S}_b{B}")] = gflop / perb
            row[cpu_key(prec, f"frac_of_matmul_{S}")] = gflop / per1 / matmul
            row[cpu_key(prec, f"frac_of_conv_{S}")] = gflop / per1 / conv
            row[cpu_key(prec, f"frac_of_matmul_{S}_b{B}")] = gflop / perb / matmul
            row[cpu_key(prec, f"frac_of_conv_{S}_b{B}")] = gflop / perb / conv
            samples[cpu_key(prec, f"latency_{S}_ms")] = t1.ms()
            samples[cpu_key(prec, f"latency_{S}_b{B}_ms_per_image")] = tb.ms(per=B)
            if prec != "fp32" and "fp32" in args.dtypes:
                row[cpu_key(prec, f"speedup_over_fp32_{S}_b{B}")] = (
                    row[f"cpu_latency_{S}_b{B}_ms_per_image"] / row[cpu_key(prec, f"latency_{S}_b{B}_ms_per_image")]
                )
        if not args.no_memory:
            log(f"  {name} {S}x{S}: peak memory (subprocess)")
            mem = bench.peak_forward_rss(name, args.preset, S, 1, torch.get_num_threads())
            row[f"peak_mem_{S}_mb"] = mem["increase_mb"]
            machine.setdefault("peak_memory_method", mem["method"])
    T, TB = args.train_size_by_model[name], args.train_batch
    log(f"  {name}: training steps at {T}x{T}, batch {TB} (fp32)")
    if model_entry(name).trainable:
        tt = bench.train_step_rate(fresh(name, args.preset), T, TB, args.train_steps, warmup=1)
        row[f"train_images_per_s_{T}"] = TB / tt.median
        samples[f"train_step_{T}_b{TB}_ms"] = tt.ms()
    else:
        row[f"train_images_per_s_{T}"] = None  # nothing to train (classical method)
    return row, samples


def cpu_throughput(args) -> dict[str, Any]:
    """The machine's matmul and 3x3-conv GFLOP/s on the CPU in each precision (bf16: conv channels_last)."""
    n, conv_batch = (512, 2) if args.quick else (2048, 8)
    out: dict[str, Any] = {}
    for prec, dtype in args.dtypes.items():
        log(f"machine throughput {prec}: matmul {n}^3 and conv 3x3 128->128 at 64x64, batch {conv_batch}")
        dt = dtype or torch.float32
        out[cpu_key(prec, "matmul")] = bench.matmul_throughput(n, max(args.repeats, 3), args.warmup, dtype=dt)
        out[cpu_key(prec, "conv")] = bench.conv_throughput(
            conv_batch, 128, 64, 3, max(args.repeats, 3), args.warmup, dtype=dt, channels_last=dtype is not None
        )
    return out


# --- GPU -------------------------------------------------------------------------------------


def gpu_peak_memory(model: torch.nn.Module, size: int, dev: torch.device) -> float:
    """MiB allocated at the peak of one bf16 channels_last batch-1 forward, beyond weights and inputs."""
    model.eval().to(dev, memory_format=torch.channels_last)
    image, mask = bench.bench_inputs(1, size, dev)
    image, mask = (t.contiguous(memory_format=torch.channels_last) for t in (image, mask))
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16):
        model.inpaint(image, mask)
    torch.cuda.synchronize(dev)
    peak = torch.cuda.max_memory_allocated(dev) - base
    model.to(memory_format=torch.contiguous_format)
    return peak / 2**20


def measure_gpu(names: list[str], args) -> dict[str, Any]:
    if args.no_gpu:
        return {"skipped": "--no-gpu given"}
    if not torch.cuda.is_available():
        return {"skipped": "CUDA is not available on this machine; the GPU section needs an NVIDIA GPU"}
    return measure_device(names, args, torch.device("cuda"))


def measure_device(names: list[str], args, dev: torch.device, compile: bool = True) -> dict[str, Any]:
    """The GPU section on ``dev``; ``compile=False`` leaves out the torch.compile variant."""
    bf16 = torch.bfloat16
    section: dict[str, Any] = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev),
        "settings": {
            "fp32": "fp32, contiguous, torch's defaults (TF32 off for matmuls, allowed in cuDNN convolutions)",
            "bf16_cl": "torch.autocast bf16 + channels_last",
            "bf16_cl_compile": "bf16 + channels_last + torch.compile(model.inpaint), default mode; "
            "compilation happens in the warm-up calls",
        },
        "matmul_fp32": bench.matmul_throughput(8192, args.repeats, args.warmup, dev, torch.float32),
        "matmul_bf16": bench.matmul_throughput(8192, args.repeats, args.warmup, dev, bf16),
        "conv_bf16_cl": bench.conv_throughput(8, 128, 64, 3, args.repeats, args.warmup, dev, bf16, channels_last=True),
        "models": {},
    }
    peak = section["conv_bf16_cl"]["gflops_per_s"]
    B = args.batch
    for name in names:
        row: dict[str, Any] = {}
        model = fresh(name, args.preset)
        for S in args.sizes_by_model[name]:
            gflop = count_cost(name, args.preset, S).flops / 1e9
            variants = {
                "fp32": dict(autocast_dtype=None, channels_last=False),
                "bf16_cl": dict(autocast_dtype=bf16, channels_last=True),
                "bf16_cl_compile": dict(autocast_dtype=bf16, channels_last=True, compile=True),
            }
            if not compile:
                del variants["bf16_cl_compile"]
            for key, kw in variants.items():
                log(f"  GPU {name} {S}x{S} {key}")
                warm = max(args.warmup, 3) if kw.get("compile") else args.warmup
                try:
                    t1 = bench.inference_latency(model, S, 1, args.repeats, warm, dev, **kw)
                    tb = bench.inference_latency(model, S, B, args.repeats, warm, dev, **kw)
                except Exception as e:  # torch.compile can fail on a new model: record, go on
                    row[f"gpu_{key}_{S}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    continue
                row[f"gpu_latency_{key}_{S}_ms"] = t1.median * 1e3
                row[f"gpu_latency_{key}_{S}_b{B}_ms_per_image"] = tb.median / B * 1e3
                row[f"gpu_frac_of_conv_bf16_{key}_{S}_b{B}"] = gflop / (tb.median / B) / peak
            torch._dynamo.reset()
            timed = {k: row[f"gpu_latency_{k}_{S}_b{B}_ms_per_image"] for k in variants if f"gpu_latency_{k}_{S}_b{B}_ms_per_image" in row}
            if timed:
                row[f"gpu_best_{S}_b{B}"] = min(timed, key=timed.get)
            row[f"gpu_peak_mem_bf16_{S}_mb"] = gpu_peak_memory(model, S, dev)
        T, TB = args.train_size_by_model[name], args.train_batch
        log(f"  GPU {name}: training steps bf16 at {T}x{T}, batch {TB}")
        if model_entry(name).trainable:
            tt = bench.train_step_rate(fresh(name, args.preset), T, TB, max(args.train_steps, 5), 2, dev, bf16, True)
            row[f"gpu_train_images_per_s_bf16_{T}"] = TB / tt.median
        del model
        torch.cuda.empty_cache()
        section["models"][name] = row
    return section


# --- ratios, output --------------------------------------------------------------------------

_NOT_RATIOS = ("preset", "gpu_best_")


def add_ratios(models: dict[str, dict], reference: str) -> None:
    """Add ``ratio_to_<reference>``: every numeric metric divided by the reference's."""
    key = f"ratio_to_{reference}"
    ref = models.get(reference)
    if not ref:
        return
    for row in models.values():
        row[key] = {
            k: v / ref[k]
            for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            and not k.startswith(_NOT_RATIOS) and isinstance(ref.get(k), (int, float)) and ref[k]
        }


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def measured_sizes(args) -> list[int]:
    """Every size some model was measured at, requested sizes first."""
    return list(dict.fromkeys(S for sizes in args.sizes_by_model.values() for S in sizes))


def markdown(result: dict[str, Any], args) -> str:
    m, models, B = result["machine"], result["models"], args.batch
    ref = args.reference
    lines = [
        f"# facefill cost benchmark, {result['date']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} logical CPUs, torch {m['torch']} with "
        f"{m['torch_num_threads']} threads, Python {m['python']}, load average "
        f"{fmt(m.get('load_average_1min'))} at the start; GPU: {m.get('gpu', 'none')}.",
        f"Preset `{args.preset}`; latency = median of {args.repeats} calls after {args.warmup} "
        f"warm-up calls (eval, `torch.inference_mode`, `model.inpaint`, a centred square hole of "
        f"1/4 of the area); batch {B} is reported per image.",
        "",
        f"CPU bf16: {m['cpu_bf16']}.",
        "",
        "Machine throughput (CPU, same run; in each precision the layout its models run in):",
        "",
    ]
    for prec in args.dtypes:
        for what in ("matmul", "conv"):
            t = m[cpu_key(prec, what)]
            lines.append(f"- {prec}: {'matmul ' if what == 'matmul' else ''}{t['what']}: **{t['gflops_per_s']:.1f} GFLOP/s**")
    lines += [
        "",
        "In the tables, each precision's GFLOP/s is a fraction of the matmul and conv above in the same "
        "precision; bf16 runs under autocast with the model and inputs channels_last; \"vs fp32\" is fp32's "
        f"latency at batch {B} divided by the row's (above 1: faster than fp32). Peak memory is measured in fp32.",
        "",
    ] + [f"Note: {n}." for n in args.size_notes] + ([""] if args.size_notes else [])
    for S in measured_sizes(args):
        rows = {name: r for name, r in models.items() if f"gflops_{S}" in r}
        lines += [
            f"## {S}x{S}, CPU",
            "",
            f"| model | precision | params (M) | GFLOP/img | latency b1 (ms) | latency b{B} (ms/img) | vs fp32 | "
            f"GFLOP/s b1 | GFLOP/s b{B} | of matmul (b{B}) | of conv (b{B}) | peak mem b1 (MB) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in rows.items():
            for prec in args.dtypes:
                def k(rest: str, r=r, prec=prec) -> Any:
                    return r.get(cpu_key(prec, rest))

                speedup = 1.0 if prec == "fp32" else k(f"speedup_over_fp32_{S}_b{B}")
                lines.append(
                    f"| {name} | {prec} | {r['params'] / 1e6:.2f} | {fmt(r[f'gflops_{S}'], 4)} | "
                    f"{fmt(k(f'latency_{S}_ms'))} | {fmt(k(f'latency_{S}_b{B}_ms_per_image'))} | {fmt(speedup)} | "
                    f"{fmt(k(f'gflops_per_s_{S}'))} | {fmt(k(f'gflops_per_s_{S}_b{B}'))} | "
                    f"{k(f'frac_of_matmul_{S}_b{B}'):.1%} | {k(f'frac_of_conv_{S}_b{B}'):.1%} | "
                    f"{fmt(r.get(f'peak_mem_{S}_mb')) if prec == 'fp32' else '–'} |"
                )
        if ref in rows and "fp32" in args.dtypes:
            lines += [
                "",
                f"Ratio to {ref}, fp32 (lower is cheaper; for GFLOP/s higher is better used hardware):",
                "",
                f"| model | params | GFLOP | latency b1 | latency b{B} | GFLOP/s b{B} | peak mem |",
                "|---|---|---|---|---|---|---|",
            ]
            for name, r in rows.items():
                q = r.get(f"ratio_to_{ref}", {})
                lines.append(
                    f"| {name} | {fmt(q.get('params'))} | {fmt(q.get(f'gflops_{S}'))} | "
                    f"{fmt(q.get(f'cpu_latency_{S}_ms'))} | {fmt(q.get(f'cpu_latency_{S}_b{B}_ms_per_image'))} | "
                    f"{fmt(q.get(f'cpu_gflops_per_s_{S}_b{B}'))} | {fmt(q.get(f'peak_mem_{S}_mb'))} |"
                )
        lines.append("")
    TB = args.train_batch
    lines += [
        f"## Training step, CPU (fp32, batch {TB})",
        "",
        "Generator alone: forward, L1 on the hole, backward, Adam step; median of "
        f"{args.train_steps} steps after 1 warm-up step. No critic, no VGG losses (see "
        "`benchmarks/train_throughput.py` for the full training step, in fp32 and bf16).",
        "",
        f"| model | size | images/s | ratio to {ref or '–'} |",
        "|---|---|---|---|",
    ]
    for name, r in models.items():
        T = args.train_size_by_model[name]
        lines.append(
            f"| {name} | {T} | {fmt(r[f'train_images_per_s_{T}'])} | "
            f"{fmt(r.get(f'ratio_to_{ref}', {}).get(f'train_images_per_s_{T}'))} |"
        )
    if "peak_memory_method" in m:
        lines += ["", f"Peak memory: {m['peak_memory_method']}"]
    lines += ["", "## GPU", ""]
    gpu = result["gpu"]
    if "skipped" in gpu:
        lines.append(f"Skipped: {gpu['skipped']}.")
    else:
        lines += [
            f"{gpu['device']}: matmul fp32 {gpu['matmul_fp32']['gflops_per_s']:.0f} GFLOP/s, bf16 "
            f"{gpu['matmul_bf16']['gflops_per_s']:.0f} GFLOP/s; {gpu['conv_bf16_cl']['what']}: "
            f"{gpu['conv_bf16_cl']['gflops_per_s']:.0f} GFLOP/s.",
            "",
        ]
        for k, v in gpu["settings"].items():
            lines.append(f"- `{k}`: {v}")
        lines += [
            "",
            f"| model | size | fp32 b1 (ms) | bf16+CL b1 | +compile b1 | fp32 b{B} (ms/img) | bf16+CL b{B} | "
            f"+compile b{B} | best | peak mem bf16 b1 (MB) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in gpu["models"].items():
            for S in args.sizes_by_model[name]:
                cells = [fmt(r.get(f"gpu_latency_{k}_{S}_ms")) for k in ("fp32", "bf16_cl", "bf16_cl_compile")]
                cells += [fmt(r.get(f"gpu_latency_{k}_{S}_b{B}_ms_per_image")) for k in ("fp32", "bf16_cl", "bf16_cl_compile")]
                lines.append(
                    f"| {name} | {S} | " + " | ".join(cells)
                    + f" | {r.get(f'gpu_best_{S}_b{B}', '–')} | {fmt(r.get(f'gpu_peak_mem_bf16_{S}_mb'))} |"
                )
        lines += ["", f"| model | size | train images/s bf16 (batch {TB}) |", "|---|---|---|"]
        for name, r in gpu["models"].items():
            T = args.train_size_by_model[name]
            lines.append(f"| {name} | {T} | {fmt(r.get(f'gpu_train_images_per_s_bf16_{T}'))} |")
        errors = [f"{n}: {k} {v}" for n, r in gpu["models"].items() for k, v in r.items() if k.endswith("_error")]
        if errors:
            lines += ["", "Failed variants: " + "; ".join(errors)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    date = _dt.date.today().isoformat()
    machine = bench.machine_info()
    log(f"machine: {machine['cpu_model']}, torch {machine['torch']}, {machine['torch_num_threads']} threads")
    log(f"CPU bf16: {machine['cpu_bf16']}")
    machine.update(cpu_throughput(args))
    models: dict[str, dict] = {}
    samples: dict[str, dict] = {}
    for name in args.model_names:
        log(f"{name} ({args.preset})")
        models[name], samples[name] = measure_cpu(name, args, machine)
    if args.reference:
        add_ratios(models, args.reference)
    gpu = measure_gpu(args.model_names, args)
    if args.reference and "models" in gpu:
        add_ratios(gpu["models"], args.reference)
    result = {
        "models": models,
        "machine": machine,
        "gpu": gpu,
        "settings": {
            "preset": args.preset, "sizes": args.size_list, "sizes_by_model": args.sizes_by_model,
            "size_notes": args.size_notes, "precisions": list(args.dtypes), "batch": args.batch,
            "repeats": args.repeats, "warmup": args.warmup, "train_size": args.train_size,
            "train_size_by_model": args.train_size_by_model,
            "train_batch": args.train_batch, "train_steps": args.train_steps,
            "reference": args.reference or None, "quick": args.quick,
        },
        "samples": samples,
        "date": date,
        "command": bench.command_line(),
    }
    stem = f"cost-{date}" + ("-quick" if args.quick else "")
    json_path, md_path = bench.write_report(args.out, stem, result, markdown(result, args))
    log(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
