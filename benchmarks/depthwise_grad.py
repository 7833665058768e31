"""The weight gradient of APFI's depthwise 7x7 convs on the CPU: oneDNN's against facefill's.

APFI identifies areas with depthwise 7x7 partial convs at half the input's resolution, twice a
cycle. For a channels_last input oneDNN computes their weight gradient with a generic
grouped-conv kernel, several times slower than the forward; ``facefill._depthwise`` computes it
as a depthwise forward over the (batch, channel) pairs instead. This times, for the shapes of
both presets' training configs, in fp32 and bf16:

- forward: ``F.conv2d`` alone;
- oneDNN: ``F.conv2d`` and its backward for input and weight (PyTorch's own path);
- facefill: ``facefill._depthwise.depthwise_conv2d`` and the same backward;

each the median of ``--repeats`` calls after a warm-up, in one process, alternating, with
malloc retaining freed memory as the trainer has it (``facefill._memory.retain_freed_memory``).

    python benchmarks/depthwise_grad.py                      # writes benchmarks/results/depthwise-grad-<date>.*
    python benchmarks/depthwise_grad.py --repeats 5 --out /tmp/dw
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

import torch
import torch.nn.functional as F

from facefill._depthwise import depthwise_conv2d
from facefill._memory import retain_freed_memory
from facefill.bench import command_line, machine_info, report_header, time_fn, write_report

ROOT = Path(__file__).resolve().parents[1]
# (what, batch, channels, side): APFI small at 128 px (configs/apfi_faces_*.yaml) and the paper
# preset at 256 px (configs/apfi_celeba256.yaml), features at half the input's side.
SHAPES = [("APFI small, 128 px, batch 8", 8, 32, 64), ("APFI paper, 256 px, batch 6", 6, 64, 128)]


def measure(batch: int, channels: int, side: int, dtype: torch.dtype, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, side, side, generator=gen).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(channels, 1, 7, 7, generator=gen).to(dtype).requires_grad_()
    g = torch.randn(batch, channels, side, side, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)

    def forward():
        with torch.no_grad():
            F.conv2d(x, w, None, 1, 3, 1, channels)

    def onednn():
        torch.autograd.grad(F.conv2d(x, w, None, 1, 3, 1, channels), (x, w), g)

    def ours():
        torch.autograd.grad(depthwise_conv2d(x, w, 1, 3, 1), (x, w), g)

    times = {"forward": [], "onednn": [], "facefill": []}
    for _ in range(3):  # alternate, so that drift on a shared machine hits all three alike
        for name, fn in (("forward", forward), ("onednn", onednn), ("facefill", ours)):
            times[name].append(time_fn(fn, repeats, warmup=1).median * 1e3)
    ms = {k: min(v) for k, v in times.items()}
    return {
        "batch": batch, "channels": channels, "side": side, "dtype": str(dtype).removeprefix("torch."),
        "forward_ms": ms["forward"], "onednn_fwd_bwd_ms": ms["onednn"], "facefill_fwd_bwd_ms": ms["facefill"],
        "speedup": ms["onednn"] / ms["facefill"],
    }


def to_markdown(report: dict) -> str:
    lines = report_header("Depthwise 7x7 conv, forward and backward on the CPU", report) + [
        "channels_last input, padding 3, input and weight gradients; ms, the best of three medians; malloc "
        + ("retaining freed memory, as the trainer has it." if report["malloc_retains_freed_memory"] else "as the system has it."),
        "",
        "| shape | dtype | forward | oneDNN fwd+bwd | facefill fwd+bwd | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['what']} ({r['batch']}, {r['channels']}, {r['side']}, {r['side']}) | {r['dtype']} | "
            f"{r['forward_ms']:.2f} | {r['onednn_fwd_bwd_ms']:.2f} | {r['facefill_fwd_bwd_ms']:.2f} | {r['speedup']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    retained = retain_freed_memory()
    runs = []
    for what, batch, channels, side in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            r = {"what": what, **measure(batch, channels, side, dtype, args.repeats)}
            print(r, flush=True)
            runs.append(r)
    date = _dt.date.today().isoformat()
    report = {
        "date": date, "command": command_line(argv), "machine": machine_info(), "malloc_retains_freed_memory": retained,
        "runs": runs,
    }
    json_path, md_path = write_report(args.out, f"depthwise-grad-{date}", report, to_markdown(report))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
