"""Cost of every registered generator: parameters, FLOPs, latency per precision mode, memory, training rate.

For each generator (``facefill.list_models(kind="generator")``) at each size, with one preset:

* parameters and GFLOP per image (``facefill.cost.count_cost``, on the meta device);
* CPU latency of ``inpaint`` in eval mode under ``torch.inference_mode``: median of
  ``--repeats`` timed calls after ``--warmup`` untimed ones, at batch 1 and at ``--batch``
  (reported per image), in each *mode*: every precision of ``--precisions`` (fp32; bf16 under
  ``torch.autocast``) in every layout of ``--layouts`` (contiguous, channels_last), and with
  ``--compile`` the channels_last mode of each precision under ``torch.compile`` (a mode that
  cannot compile is reported as "n/a: <reason>", never fatal);
* achieved GFLOP/s (FLOPs / latency) and its fraction of this machine's limit in the same
  precision, measured in the same run: the faster layout of a 3x3 128->128 convolution (and,
  for the record, a large matrix product); whether the CPU computes bf16 natively
  (AVX512-BF16 / AMX) or torch emulates it (then bf16 is many times slower than fp32);
* latency ratios of ``--pairs`` (``apfi/lama``: APFI over LaMa-Fourier) in the same mode;
* peak resident-memory increase of one batch-1 fp32 forward, in a fresh subprocess per model
  and size (method in ``facefill.bench.peak_forward_rss``);
* training images/s of the generator alone: forward, L1 on the hole, backward, Adam step, at
  ``--train-size`` with batch ``--train-batch`` (median step time after a warm-up step);
* every metric as a ratio to ``--reference`` (``rfr``), measured in the same run.

On a CUDA machine a GPU section runs the same modes on the GPU (``--gpu-precisions``: fp32 and
AMP in bf16 and fp16, CUDA synchronised around every timed call) against the GPU's own
conv/matmul limits, with GPU peak memory and bf16 training images/s. Without CUDA the section
is skipped with a note.

    python benchmarks/cost.py                          # all generators, paper preset, 256 and 128
    python benchmarks/cost.py --models apfi,lama --sizes 256 --compile
    python benchmarks/cost.py --quick --out /tmp/cost # smoke test: small preset, 32 px, 1 repeat

A size that is not a multiple of a model's stride (64 for PConv ``paper``, stride 128) is
replaced, for that model only, by the next multiple of its stride, and the report says so.

Run it on a quiet machine: other processes on the cores skew every timing (the 1-minute load
average at the start is recorded). Writes ``<out>/cost-<YYYY-MM-DD>.json`` and ``.md`` for the
paper presets, ``cost-<date>-<preset>.*`` for another preset (``cost-<date>-quick.*`` with
``--quick``), so a ``small`` report never replaces the paper one of the same day.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from facefill import bench
from facefill._device import PRECISIONS, precision_name, resolve_precision
from facefill._inference import compile_unavailable
from facefill.cost import count_cost
from facefill.models import create_model, list_models, list_presets, model_entry

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = {"contiguous": False, "channels_last": True}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Mode:
    """How a model is run: a precision (autocast dtype, ``None`` for fp32), a layout, compiled or not."""

    precision: str
    dtype: torch.dtype | None
    channels_last: bool
    compile: bool = False

    @property
    def name(self) -> str:
        return self.precision + ("_cl" if self.channels_last else "") + ("_compile" if self.compile else "")

    def describe(self, device: str = "cpu") -> str:
        how = "plain float32" if self.dtype is None else f"torch.autocast({device!r}, {precision_name(self.dtype)})"
        how += ", model and inputs channels_last" if self.channels_last else ", contiguous"
        return how + (", the network under torch.compile with inductor freezing (facefill._inference.compile_generator; compiled in the warm-up calls)" if self.compile else "")


def build_modes(dtypes: dict[str, torch.dtype | None], layouts: list[bool], compile: bool) -> list[Mode]:
    """Every precision in every layout; with ``compile``, each precision's last layout compiled too."""
    modes = [Mode(p, d, cl) for p, d in dtypes.items() for cl in layouts]
    if compile:
        modes += [Mode(p, d, layouts[-1], compile=True) for p, d in dtypes.items()]
    return modes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="comma-separated generators (default: every registered one)")
    p.add_argument("--preset", default=None, help="model preset (default: paper; small with --quick)")
    p.add_argument("--sizes", default=None, help="comma-separated square sizes (default: 256,128; 32 with --quick)")
    p.add_argument("--batch", type=int, default=8, help="the larger batch timed besides batch 1 (default: 8)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (default: 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before each measurement (default: 2)")
    p.add_argument("--train-size", type=int, default=128, help="image size of the training step (default: 128)")
    p.add_argument("--train-batch", type=int, default=4, help="batch of the training step (default: 4)")
    p.add_argument("--train-steps", type=int, default=3, help="timed training steps (default: 3)")
    p.add_argument("--reference", default="rfr", help="model every ratio is taken against; '' for none (default: rfr)")
    p.add_argument(
        "--pairs", default="apfi/lama",
        help="comma-separated A/B latency ratios reported per mode (default: apfi/lama); '' for none",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU section even when CUDA is available")
    p.add_argument("--precisions", default="fp32,bf16", help="CPU precisions (default: fp32,bf16)")
    p.add_argument(
        "--layouts", default="contiguous,channels_last",
        help="memory layouts each precision runs in (default: contiguous,channels_last)",
    )
    p.add_argument(
        "--compile", action="store_true",
        help="also time each precision channels_last under torch.compile (slow to warm up; needs a C++ compiler on CPU)",
    )
    p.add_argument("--gpu-precisions", default="fp32,bf16,fp16", help="GPU precisions (AMP; default: fp32,bf16,fp16)")
    p.add_argument(
        "--quick", action="store_true",
        help="smoke test: small preset, size 32, batch 2, 1 repeat, 1 warm-up, small limit kernels, "
        "no memory subprocesses, 1 training step at 32",
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results", help="output folder (default: benchmarks/results)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or "32"
        args.batch, args.repeats, args.warmup = 2, 1, 1
        args.train_size, args.train_batch, args.train_steps = 32, 2, 1
        args.no_memory = True
        args.preset = args.preset or "small"
    args.preset, args.sizes = args.preset or "paper", args.sizes or "256,128"
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
    args.pair_list = []
    for pair in (x.strip() for x in args.pairs.split(",") if x.strip()):
        a, _, b = pair.partition("/")
        if not a or not b or a not in generators or b not in generators:
            p.error(f"--pairs: {pair!r} is not A/B of two registered generators")
        args.pair_list.append((a, b))  # reported where both were measured
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
    args.dtypes = _precisions(p, "--precisions", args.precisions, "cpu")
    layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    if not layouts or any(x not in LAYOUTS for x in layouts):
        p.error(f"--layouts must name some of {', '.join(LAYOUTS)}, got {args.layouts!r}")
    args.layout_flags = list(dict.fromkeys(LAYOUTS[x] for x in layouts))
    args.modes = build_modes(args.dtypes, args.layout_flags, args.compile)
    gpu = [x.strip() for x in args.gpu_precisions.split(",") if x.strip()]
    if not gpu or any(x not in PRECISIONS or x == "auto" for x in gpu):
        p.error(f"--gpu-precisions must name some of fp32, bf16, fp16, got {args.gpu_precisions!r}")
    args.gpu_precision_names = gpu
    for flag in ("batch", "repeats", "train_batch", "train_steps"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def _precisions(p: argparse.ArgumentParser, flag: str, text: str, device: str) -> dict[str, torch.dtype | None]:
    """``{"fp32": None, "bf16": torch.bfloat16, ...}`` from a comma-separated list, read as facefill reads them."""
    dtypes: dict[str, torch.dtype | None] = {}
    try:
        for name in (t.strip() for t in text.split(",") if t.strip()):
            dtype = resolve_precision(name, device)
            dtypes[precision_name(dtype)] = dtype
    except ValueError as e:
        p.error(f"{flag}: {e}")
    if not dtypes:
        p.error(f"{flag} names no precision")
    return dtypes


def fit_size(size: int, stride: int) -> int:
    """``size``, or the next multiple of ``stride`` when it is not one."""
    return -(-size // stride) * stride


def fresh(name: str, preset: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, preset)


# --- latency per mode ------------------------------------------------------------------------


def time_modes(
    model: torch.nn.Module, name: str, size: int, gflop: float, modes: list[Mode], limits: dict[str, Any],
    args, device: torch.device, prefix: str,
) -> tuple[dict[str, Any], dict[str, list]]:
    """Latency, GFLOP/s and fraction of the machine's limit of ``model`` at ``size`` in each mode.

    Keys are ``<prefix>_<mode>_...``; a compiled mode that fails is ``<prefix>_<mode>_<size>_na``
    ("n/a: reason"). Any other failure is a bug and raises.
    """
    row: dict[str, Any] = {}
    samples: dict[str, list] = {}
    B, S = args.batch, size
    unavailable = compile_unavailable(device) if any(m.compile for m in modes) else None
    for mode in modes:
        key = f"{prefix}_{mode.name}"
        if mode.compile and unavailable:
            row[f"{key}_{S}_na"] = f"n/a: {unavailable}"
            continue
        warm = max(args.warmup, 2) if mode.compile else args.warmup  # compilation happens in the first call
        kw = dict(device=device, autocast_dtype=mode.dtype, channels_last=mode.channels_last, compile=mode.compile)
        log(f"  {prefix} {name} {S}x{S} {mode.name}: batch 1 and {B}")
        try:
            t1 = bench.inference_latency(model, S, 1, args.repeats, warm, **kw)
            tb = bench.inference_latency(model, S, B, args.repeats, warm, **kw)
        except Exception as e:
            if not mode.compile:
                raise
            row[f"{key}_{S}_na"] = f"n/a: {bench.one_line_error(e)}"
            log(f"    {row[f'{key}_{S}_na']}")
            continue
        finally:
            if mode.compile:
                torch._dynamo.reset()
        per1, perb = t1.median, tb.median / B
        limit = limits[mode.precision]["limit_gflops_per_s"]
        row[f"{key}_latency_{S}_ms"] = per1 * 1e3
        row[f"{key}_latency_{S}_b{B}_ms_per_image"] = perb * 1e3
        row[f"{key}_gflops_per_s_{S}"] = gflop / per1
        row[f"{key}_gflops_per_s_{S}_b{B}"] = gflop / perb
        row[f"{key}_frac_of_limit_{S}"] = gflop / per1 / limit
        row[f"{key}_frac_of_limit_{S}_b{B}"] = gflop / perb / limit
        samples[f"{key}_latency_{S}_ms"] = t1.ms()
        samples[f"{key}_latency_{S}_b{B}_ms_per_image"] = tb.ms(per=B)
    base = row.get(f"{prefix}_fp32_latency_{S}_b{B}_ms_per_image")
    for mode in modes:
        lat = row.get(f"{prefix}_{mode.name}_latency_{S}_b{B}_ms_per_image")
        if base and lat:
            row[f"{prefix}_{mode.name}_speedup_over_fp32_{S}_b{B}"] = base / lat
    return row, samples


def machine_limits(dtypes: dict[str, torch.dtype | None], layouts: list[bool], args, device: torch.device) -> dict[str, Any]:
    """Per precision: a large matmul and the 3x3 128->128 conv in each layout; the limit is the faster conv.

    The conv is the yardstick (the models are convolutional); the matmul is recorded beside it.
    """
    n = 8192 if device.type == "cuda" else 2048
    conv_batch, conv_size, reps = 8, 64, max(args.repeats, 3)
    if args.quick:  # emulated bf16 runs a contiguous 3x3 conv at ~0.1 GFLOP/s: keep the smoke test short
        n, conv_batch, conv_size, reps = 256, 1, 16, 1
    out: dict[str, Any] = {}
    for prec, dtype in dtypes.items():
        dt = dtype or torch.float32
        log(f"{device.type} limit {prec}: matmul {n}^3, conv 3x3 128->128 at {conv_size}x{conv_size}, batch {conv_batch}")
        entry: dict[str, Any] = {"matmul": bench.matmul_throughput(n, reps, args.warmup, device, dt)}
        for cl in layouts:
            entry["conv_cl" if cl else "conv"] = bench.conv_throughput(
                conv_batch, 128, conv_size, 3, reps, args.warmup, device, dt, channels_last=cl
            )
        best = max((k for k in ("conv", "conv_cl") if k in entry), key=lambda k: entry[k]["gflops_per_s"])
        entry["limit_gflops_per_s"] = entry[best]["gflops_per_s"]
        entry["limit"] = entry[best]["what"]
        out[prec] = entry
    return out


def add_pairs(models: dict[str, dict], args, modes: list[Mode], prefix: str) -> dict[str, Any]:
    """``{"apfi/lama": {"<size>": {"<mode>": {"b1": ratio, "b<B>": ratio}}}}``: A's latency over B's, same mode."""
    B, out = args.batch, {}
    for a, b in args.pair_list:
        if a not in models or b not in models:
            continue
        by_size: dict[str, Any] = {}
        for S in set(args.sizes_by_model[a]) & set(args.sizes_by_model[b]):
            cell: dict[str, Any] = {}
            for mode in modes:
                ratios = {}
                for tag, rest in (("b1", f"latency_{S}_ms"), (f"b{B}", f"latency_{S}_b{B}_ms_per_image")):
                    x, y = (models[m].get(f"{prefix}_{mode.name}_{rest}") for m in (a, b))
                    if x and y:
                        ratios[tag] = x / y
                if ratios:
                    cell[mode.name] = ratios
            by_size[str(S)] = cell
        out[f"{a}/{b}"] = by_size
    return out


# --- CPU -------------------------------------------------------------------------------------


def measure_cpu(name: str, args, machine: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list]]:
    row: dict[str, Any] = {"preset": args.preset}
    samples: dict[str, list] = {}
    model = fresh(name, args.preset)
    cpu = torch.device("cpu")
    for S in args.sizes_by_model[name]:
        cost = count_cost(name, args.preset, S)
        row["params"] = cost.params
        row[f"gflops_{S}"] = cost.flops / 1e9
        timed, raw = time_modes(model, name, S, cost.flops / 1e9, args.modes, machine["cpu_limits"], args, cpu, "cpu")
        row.update(timed)
        samples.update(raw)
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


def measure_device(names: list[str], args, dev: torch.device) -> dict[str, Any]:
    """The GPU section on ``dev``: the CPU's modes in the GPU's precisions, with CUDA synchronised."""
    dtypes = {}
    for p in args.gpu_precision_names:
        dtype = resolve_precision(p, dev)
        dtypes[precision_name(dtype)] = dtype
    modes = build_modes(dtypes, args.layout_flags, args.compile)
    section: dict[str, Any] = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev),
        "note": "fp32 runs torch's defaults (TF32 off for matmuls, allowed in cuDNN convolutions); "
        "bf16/fp16 are torch.autocast (AMP)",
        "modes": {m.name: m.describe(dev.type) for m in modes},
        "limits": machine_limits(dtypes, args.layout_flags, args, dev),
        "models": {},
    }
    samples: dict[str, Any] = {}
    B = args.batch
    for name in names:
        row: dict[str, Any] = {}
        model = fresh(name, args.preset)
        for S in args.sizes_by_model[name]:
            gflop = count_cost(name, args.preset, S).flops / 1e9
            timed, raw = time_modes(model, name, S, gflop, modes, section["limits"], args, dev, "gpu")
            row.update(timed)
            samples[name] = {**samples.get(name, {}), **raw}
            lat = {m.name: row[f"gpu_{m.name}_latency_{S}_b{B}_ms_per_image"] for m in modes
                   if f"gpu_{m.name}_latency_{S}_b{B}_ms_per_image" in row}
            if lat:
                row[f"gpu_best_{S}_b{B}"] = min(lat, key=lat.get)
            if dev.type == "cuda":
                row[f"gpu_peak_mem_bf16_{S}_mb"] = gpu_peak_memory(model, S, dev)
        T, TB = args.train_size_by_model[name], args.train_batch
        log(f"  gpu {name}: training steps bf16 at {T}x{T}, batch {TB}")
        if model_entry(name).trainable:
            tt = bench.train_step_rate(fresh(name, args.preset), T, TB, max(args.train_steps, 5), 2, dev, torch.bfloat16, True)
            row[f"gpu_train_images_per_s_bf16_{T}"] = TB / tt.median
        del model
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        section["models"][name] = row
    section["pairs"] = add_pairs(section["models"], args, modes, "gpu")
    section["mode_list"] = [m.name for m in modes]
    section["samples"] = samples
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


def pct(v: Any) -> str:
    return "–" if v is None else f"{v:.1%}"


def measured_sizes(args) -> list[int]:
    """Every size some model was measured at, requested sizes first."""
    return list(dict.fromkeys(S for sizes in args.sizes_by_model.values() for S in sizes))


def limits_lines(limits: dict[str, Any]) -> list[str]:
    lines = []
    for prec, e in limits.items():
        convs = "; ".join(f"{e[k]['what']}: {e[k]['gflops_per_s']:.1f}" for k in ("conv", "conv_cl") if k in e)
        lines.append(
            f"- {prec}: limit **{e['limit_gflops_per_s']:.1f} GFLOP/s** (the faster conv) — {convs}; "
            f"matmul {e['matmul']['what']}: {e['matmul']['gflops_per_s']:.1f}"
        )
    return lines


def latency_table(rows: dict[str, dict], modes: list[str], S: int, B: int, prefix: str) -> list[str]:
    """One row per model and mode: latency, GFLOP/s, % of the precision's limit, speed-up over fp32."""
    lines = [
        f"| model | mode | latency b1 (ms) | latency b{B} (ms/img) | GFLOP/s b1 | GFLOP/s b{B} | "
        f"% of limit b1 | % of limit b{B} | vs fp32 (b{B}) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        for mode in modes:
            def k(rest: str, r=r, mode=mode) -> Any:
                return r.get(f"{prefix}_{mode}_{rest}")

            na = r.get(f"{prefix}_{mode}_{S}_na")
            if na:
                lines.append(f"| {name} | {mode} | {na} | | | | | | |")
                continue
            lines.append(
                f"| {name} | {mode} | {fmt(k(f'latency_{S}_ms'))} | {fmt(k(f'latency_{S}_b{B}_ms_per_image'))} | "
                f"{fmt(k(f'gflops_per_s_{S}'))} | {fmt(k(f'gflops_per_s_{S}_b{B}'))} | "
                f"{pct(k(f'frac_of_limit_{S}'))} | {pct(k(f'frac_of_limit_{S}_b{B}'))} | "
                f"{fmt(k(f'speedup_over_fp32_{S}_b{B}'))} |"
            )
    return lines


def pairs_lines(pairs: dict[str, Any], S: int, B: int) -> list[str]:
    lines = []
    for pair, by_size in pairs.items():
        cells = by_size.get(str(S))
        if not cells:
            continue
        lines += [
            "", f"Latency {pair}, same mode (below 1: {pair.split('/')[0]} is faster):", "",
            f"| mode | b1 | b{B} |", "|---|---|---|",
        ]
        lines += [f"| {mode} | {fmt(c.get('b1'))} | {fmt(c.get(f'b{B}'))} |" for mode, c in cells.items()]
    return lines


def markdown(result: dict[str, Any], args) -> str:
    m, models, B = result["machine"], result["models"], args.batch
    ref = args.reference
    modes = [mode.name for mode in args.modes]
    lines = [
        f"# facefill cost benchmark, {result['date']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} logical CPUs, CPU capability {m['cpu_capability']}, "
        f"torch {m['torch']} with {m['torch_num_threads']} threads, Python {m['python']}, load average "
        f"{fmt(m.get('load_average_1min'))} at the start; GPU: {m.get('gpu', 'none')}.",
        f"Preset `{args.preset}`; latency = median of {args.repeats} calls after {args.warmup} "
        f"warm-up calls (eval, `torch.inference_mode`, `model.inpaint`, a centred square hole of "
        f"1/4 of the area); batch {B} is reported per image.",
        "",
        f"CPU bf16: {m['cpu_bf16']}.",
        "",
        "Modes:",
        "",
    ] + [f"- `{mode.name}`: {mode.describe()}" for mode in args.modes] + [
        "",
        "The machine's limit in each precision, same run (a model's GFLOP/s is given as a % of its precision's limit):",
        "",
    ] + limits_lines(m["cpu_limits"]) + [""]
    lines += [f"Note: {n}." for n in args.size_notes] + ([""] if args.size_notes else [])
    for S in measured_sizes(args):
        rows = {name: r for name, r in models.items() if f"gflops_{S}" in r}
        lines += [
            f"## {S}x{S}", "",
            "| model | params (M) | GFLOP/img | peak mem b1 fp32 (MB) |", "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {r['params'] / 1e6:.2f} | {fmt(r[f'gflops_{S}'], 4)} | {fmt(r.get(f'peak_mem_{S}_mb'))} |"
            for name, r in rows.items()
        ]
        lines += ["", "CPU latency:", ""] + latency_table(rows, modes, S, B, "cpu")
        lines += pairs_lines(result["pairs"], S, B)
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
                    f"{fmt(q.get(f'cpu_fp32_latency_{S}_ms'))} | {fmt(q.get(f'cpu_fp32_latency_{S}_b{B}_ms_per_image'))} | "
                    f"{fmt(q.get(f'cpu_fp32_gflops_per_s_{S}_b{B}'))} | {fmt(q.get(f'peak_mem_{S}_mb'))} |"
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
        return "\n".join(lines) + "\n"
    lines += [f"{gpu['device']}; {gpu['note']}.", "", "Modes:", ""]
    lines += [f"- `{k}`: {v}" for k, v in gpu["modes"].items()]
    lines += ["", "Limits, same run:", ""] + limits_lines(gpu["limits"])
    for S in measured_sizes(args):
        rows = {name: r for name, r in gpu["models"].items() if S in args.sizes_by_model[name]}
        lines += ["", f"### {S}x{S}, GPU", ""] + latency_table(rows, gpu["mode_list"], S, B, "gpu")
        lines += pairs_lines(gpu["pairs"], S, B)
        lines += ["", f"| model | fastest mode (b{B}) | peak mem bf16 b1 (MB) |", "|---|---|---|"]
        lines += [
            f"| {name} | {r.get(f'gpu_best_{S}_b{B}', '–')} | {fmt(r.get(f'gpu_peak_mem_bf16_{S}_mb'))} |"
            for name, r in rows.items()
        ]
    lines += ["", f"| model | size | train images/s bf16 (batch {TB}) |", "|---|---|---|"]
    for name, r in gpu["models"].items():
        T = args.train_size_by_model[name]
        lines.append(f"| {name} | {T} | {fmt(r.get(f'gpu_train_images_per_s_bf16_{T}'))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    date = _dt.date.today().isoformat()
    machine = bench.machine_info()
    log(f"machine: {machine['cpu_model']} ({machine['cpu_capability']}), torch {machine['torch']}, "
        f"{machine['torch_num_threads']} threads")
    log(f"CPU bf16: {machine['cpu_bf16']}")
    machine["cpu_limits"] = machine_limits(args.dtypes, args.layout_flags, args, torch.device("cpu"))
    models: dict[str, dict] = {}
    samples: dict[str, dict] = {}
    for name in args.model_names:
        log(f"{name} ({args.preset})")
        models[name], samples[name] = measure_cpu(name, args, machine)
    pairs = add_pairs(models, args, args.modes, "cpu")
    if args.reference:
        add_ratios(models, args.reference)
    gpu = measure_gpu(args.model_names, args)
    if args.reference and "models" in gpu:
        add_ratios(gpu["models"], args.reference)
    result = {
        "models": models,
        "pairs": pairs,
        "machine": machine,
        "gpu": gpu,
        "settings": {
            "preset": args.preset, "sizes": args.size_list, "sizes_by_model": args.sizes_by_model,
            "size_notes": args.size_notes, "precisions": list(args.dtypes),
            "modes": {mode.name: mode.describe() for mode in args.modes}, "compile": args.compile,
            "batch": args.batch, "repeats": args.repeats, "warmup": args.warmup, "train_size": args.train_size,
            "train_size_by_model": args.train_size_by_model,
            "train_batch": args.train_batch, "train_steps": args.train_steps,
            "reference": args.reference or None, "pairs": [f"{a}/{b}" for a, b in args.pair_list],
            "quick": args.quick,
        },
        "samples": samples,
        "date": date,
        "command": bench.command_line(argv),
    }
    # The paper presets' report is cost-<date>; another preset's is cost-<date>-<preset>.
    stem = f"cost-{date}" + ("-quick" if args.quick else "" if args.preset == "paper" else f"-{args.preset}")
    json_path, md_path = bench.write_report(args.out, stem, result, markdown(result, args))
    log(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
