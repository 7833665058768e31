"""Timing helpers shared by the benchmark scripts (``benchmarks/``): honest, small, reusable.

* :func:`time_fn`: median of ``repeats`` timed calls after ``warmup`` untimed ones, with the
  device synchronised around every call.
* :func:`inference_latency`, :func:`train_step_rate`: a generator's forward (``inpaint``,
  eval mode, ``torch.inference_mode``) and a training step (forward, L1 on the hole,
  backward, Adam step) on a seeded image with a centred square hole of a quarter of the area.
* :func:`matmul_throughput`, :func:`conv_throughput`: what this machine achieves on a large
  matrix product and on a typical 3x3 convolution, the yardsticks for a model's GFLOP/s.
* :func:`peak_forward_rss`: peak resident-memory increase of one forward pass, measured in a
  fresh subprocess (see its docstring for the method).
* :func:`train_or_reuse`: a training run that resumes from its checkpoints and is reused once
  finished, with its wall-clock seconds (the quality benchmarks' runs).
* :func:`machine_info`: torch version, threads, CPU model and capability, whether it has native bf16
  (:func:`cpu_bf16_statement`), GPU, date.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ._device import autocast, native_bf16_cpu
from ._inference import compile_generator, uncompile_generator
from .errors import FacefillError

__all__ = [
    "Timing",
    "bench_inputs",
    "conv_throughput",
    "cpu_bf16_statement",
    "cpu_model",
    "inference_latency",
    "machine_info",
    "matmul_throughput",
    "one_line_error",
    "peak_forward_rss",
    "time_fn",
    "train_or_reuse",
    "train_step_rate",
]


@dataclass
class Timing:
    """Wall-clock seconds of each timed call (warm-up calls excluded)."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    def ms(self, per: int = 1) -> list[float]:
        return [round(s * 1e3 / per, 4) for s in self.samples]


def sync(device: torch.device | str) -> None:
    """Wait for queued CUDA work on ``device`` (no-op on CPU), so a timer sees it finish."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: torch.device | str = "cpu") -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (``repeats`` >= 1)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    sync(device)
    timing = Timing()
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        timing.samples.append(time.perf_counter() - start)
    return timing


def one_line_error(error: BaseException, limit: int = 200) -> str:
    """``"<Type>: <first line>"`` of an exception, for a report cell that says why something did not run."""
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}{': ' + first[:limit] if first else ''}"


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran this script (``python script args...``), for result files."""
    return shlex.join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)])


def repo_path(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """``path`` relative to the repository ``root`` (``../shared/...`` for a folder beside it),
    for result files that are committed: they must not record one machine's absolute layout."""
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


def report_header(title: str, report: dict[str, Any]) -> list[str]:
    """A Markdown report's opening lines: ``# title, date``, the machine (``report["machine"]``
    from :func:`machine_info`) and the command (``report["command"]``), then a blank line."""
    m = report["machine"]
    return [
        f"# {title}, {report['date']}",
        "",
        f"Machine: {m['cpu_model']} ({m['torch_num_threads']} torch threads), torch {m['torch']}; {m['cpu_bf16']}.",
        f"Command: `{report['command']}`",
        "",
    ]


def write_report(out_dir: Path, stem: str, report: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``out_dir/stem.json`` (the report) and ``out_dir/stem.md``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path


def train_or_reuse(cfg: Any, out: Path, *, fresh: bool = False) -> tuple[Any, float]:
    """Train ``cfg`` into ``out`` and return ``(trainer, seconds)``.

    A run with checkpoints in ``out/checkpoints`` resumes (unless ``fresh``); a finished one is
    not trained again. ``seconds`` is the wall-clock time of the run's steps over every session
    it took (the trainer keeps it in its checkpoints, so a session that was stopped counts up
    to its last checkpoint), recorded in ``out/train_seconds.json`` when the run finishes.
    """
    from .train import Trainer

    record = out / "train_seconds.json"
    resume = not fresh and any((out / "checkpoints").glob("step_*.pt"))
    trainer = Trainer(cfg, out, resume=resume, overwrite=fresh)
    if resume and trainer.step >= trainer.total_steps and record.is_file():  # finished earlier
        return trainer, json.loads(record.read_text())["seconds"]
    trainer.fit()
    seconds = trainer.train_seconds
    record.write_text(json.dumps({"seconds": seconds}) + "\n")
    return trainer, seconds


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_bf16_statement() -> str:
    """Whether this CPU computes bf16 natively, in words for a report (and where that came from)."""
    if native_bf16_cpu():
        text = "this CPU computes bf16 natively (AVX512-BF16 or AMX)"
    else:
        text = "this CPU has no native bf16 (no AVX512-BF16 / AMX): torch emulates it, several times slower than fp32"
    if os.environ.get("FACEFILL_NATIVE_BF16") in ("0", "1"):
        text += " (as FACEFILL_NATIVE_BF16 says, not as checked)"
    return text


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch dispatches to: AVX2, AVX512, ...
        "cpu_native_bf16": native_bf16_cpu(),
        "cpu_bf16": cpu_bf16_statement(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    try:
        info["load_average_1min"] = os.getloadavg()[0]  # others' work on the machine skews timings
    except OSError:
        pass
    return info


def bench_inputs(batch: int, size: int, device: torch.device | str = "cpu", seed: int = 0):
    """Seeded image (B, 3, S, S) in [0, 1] and a centred square hole covering 1/4 of the area."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g)
    mask = torch.zeros(batch, 1, size, size)
    q = size // 4
    mask[..., q : size - q, q : size - q] = 1.0
    return image.to(device), mask.to(device)


def inference_latency(
    model: nn.Module,
    size: int,
    batch: int,
    repeats: int,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    compile: bool = False,
) -> Timing:
    """Time ``model.inpaint(image, mask)`` (the forward without input checks), eval mode;
    with ``compile``, its network under :func:`facefill._inference.compile_generator`.

    Each sample is one call on a batch of ``batch``; divide by ``batch`` for per-image time.
    """
    model.eval().to(device)
    image, mask = bench_inputs(batch, size, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=fmt)
        image = image.contiguous(memory_format=fmt)
        mask = mask.contiguous(memory_format=fmt)

    def run():
        with torch.inference_mode(), autocast(device, autocast_dtype):
            model.inpaint(image, mask)

    try:  # a failing torch.compile must not leave the model channels_last (or compiled) either
        if compile:
            reason = compile_generator(model, device, fallback=False)
            if reason is not None:
                raise RuntimeError(reason)
        return time_fn(run, repeats, warmup, device)
    finally:
        uncompile_generator(model)
        if channels_last:
            model.to(memory_format=torch.contiguous_format)


def train_step_rate(
    model: nn.Module,
    size: int,
    batch: int,
    steps: int,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> Timing:
    """Time training steps of the generator alone: forward, L1 on the hole, backward, Adam.

    The model is trained in place (train mode, its weights change); pass a fresh copy.
    No discriminator, no VGG losses: this isolates the generator's own training cost.
    """
    model.train().to(device)
    image, mask = bench_inputs(batch, size, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
        mask = mask.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    hole_pixels = mask.sum() * 3

    def step():
        with autocast(device, autocast_dtype):
            out = model.inpaint(image, mask)
        loss = ((out.float() - image).abs() * mask).sum() / hole_pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return time_fn(step, steps, warmup, device)


def matmul_throughput(
    n: int = 2048, repeats: int = 5, warmup: int = 2, device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """GFLOP/s of an ``n x n @ n x n`` product (2 n^3 FLOPs), median over ``repeats``."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=g).to(device, dtype)
    b = torch.rand(n, n, generator=g).to(device, dtype)
    t = time_fn(lambda: torch.mm(a, b), repeats, warmup, device)
    flops = 2 * n**3
    return {
        "what": f"{n}x{n} @ {n}x{n} {str(dtype).replace('torch.', '')}",
        "gflop": flops / 1e9,
        "median_ms": t.median * 1e3,
        "gflops_per_s": flops / t.median / 1e9,
    }


def conv_throughput(
    batch: int = 8, channels: int = 128, size: int = 64, kernel: int = 3, repeats: int = 5,
    warmup: int = 2, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> dict[str, Any]:
    """GFLOP/s of one ``kernel``x``kernel`` conv, ``channels`` -> ``channels``, padding keeps size."""
    conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False).to(device, dtype)
    x = torch.rand(batch, channels, size, size).to(device, dtype)
    if channels_last:
        conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            conv(x)

    t = time_fn(run, repeats, warmup, device)
    flops = 2 * batch * channels * channels * kernel * kernel * size * size
    return {
        "what": (
            f"conv {kernel}x{kernel} {channels}->{channels} at {size}x{size}, batch {batch}, "
            f"{str(dtype).replace('torch.', '')}{', channels_last' if channels_last else ''}"
        ),
        "gflop": flops / 1e9,
        "median_ms": t.median * 1e3,
        "gflops_per_s": flops / t.median / 1e9,
    }


# --- peak memory of a forward pass, in a fresh process -------------------------------------

_PEAK_METHOD = (
    "peak RSS increase of one forward (inpaint, eval, inference_mode) in a fresh Python process: "
    "model built and one warm-up forward run first (one-time allocations excluded), then the "
    "kernel's peak-RSS mark is reset (/proc/self/clear_refs) and VmHWM - VmRSS(before) is read "
    "after a second forward; glibc's mmap threshold is pinned at 128 KiB (MALLOC_MMAP_THRESHOLD_) "
    "so freed tensors return to the OS and the second forward cannot hide in memory the first "
    "one left cached. Includes activations, workspaces and the output; excludes weights and inputs."
)
_FALLBACK_METHOD = (
    "ru_maxrss after the forward minus ru_maxrss before it, in a fresh process after one warm-up "
    "forward (a lower bound: /proc/self/clear_refs was not available)"
)


def _status_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_child(spec: dict[str, Any]) -> dict[str, Any]:
    import resource

    from .models import create_model

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = create_model(spec["model"], spec["preset"], **spec.get("overrides", {})).eval()
    image, mask = bench_inputs(spec["batch"], spec["size"])
    with torch.inference_mode():
        model.inpaint(image, mask)
    gc.collect()
    before = _status_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        reset = _status_kb("VmHWM") is not None and before is not None
    except OSError:
        reset = False
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode():
        out = model.inpaint(image, mask)
    if reset:
        peak = _status_kb("VmHWM")
        increase_kb, method = peak - before, _PEAK_METHOD
    else:
        max_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        increase_kb, method = max_after - max_before, _FALLBACK_METHOD
    del out
    return {"increase_mb": increase_kb / 1024, "rss_before_mb": (before or 0) / 1024, "method": method}


def peak_forward_rss(
    name: str, preset: str, size: int, batch: int = 1, threads: int | None = None,
    overrides: dict[str, Any] | None = None, timeout: float = 900,
) -> dict[str, Any]:
    """Peak resident-memory increase (MiB) of one CPU forward of a registered generator.

    Runs in a fresh subprocess (``python -m facefill.bench``) so that nothing the caller has
    allocated or cached counts; returns ``{"increase_mb", "rss_before_mb", "method"}``.
    """
    spec = {
        "model": name, "preset": preset, "size": size, "batch": batch,
        "threads": threads or torch.get_num_threads(), "overrides": overrides or {},
    }
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    proc = subprocess.run(
        [sys.executable, "-m", "facefill.bench", json.dumps(spec)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FacefillError(f"memory measurement of {name} at {size} failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":  # the child of peak_forward_rss
    print(json.dumps(_peak_child(json.loads(sys.argv[1]))))
