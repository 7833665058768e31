"""Where APFI's inference time goes, part by part, measured with ``torch.profiler`` on the CPU.

Every leaf part of the network is wrapped in a ``record_function`` range by forward hooks (the
depthwise 7x7 partial convs of area identification, their 1x1 mixes, the gated convs, the
transposed convs, BatchNorms, KCA, the merge, the U-Net's dual dilated bottom and its plain
convs); what runs outside them (concatenations, the masking products, activations called as
functions, the composite) is the "glue". The model runs as the inference paths run it
(``facefill._inference.prepare_model`` / ``run_generator``: channels_last where the model asks for
it, the precision's autocast), at each ``--sizes`` x ``--batches`` x ``--precisions``, after
warm-up calls, and each table reports the median forward time of ``--repeats`` unprofiled calls
beside the profiled breakdown. bf16 on a CPU without native bf16 is emulated (and says so).

    python benchmarks/profile_apfi.py                               # paper preset at 256 and 128, batch 1 and 8, fp32
    python benchmarks/profile_apfi.py --precisions fp32,bf16 --preset small --sizes 128
    python benchmarks/profile_apfi.py --src /tmp/old/src --out /tmp/old-profile   # another checkout's code, e.g.
                                                                    # `git worktree add /tmp/old <commit>`

Writes ``benchmarks/results/apfi-profile-<date>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--sizes", default="256,128")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--src", type=Path, default=None, help="import facefill from this src folder instead")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    return p.parse_args(argv)


def region_of(module, name: str, classes) -> str | None:
    """The report's name for a leaf part, or ``None`` for a container."""
    import torch.nn as nn

    if isinstance(module, classes["PartialConv2d"]):
        return "area identification: depthwise 7x7 partial conv" if module.groups > 1 else "input layer: 7x7 partial conv"
    if isinstance(module, classes["KnowledgeConsistentAttention"]):
        return "KCA (scores, softmax, blend, 1x1)"
    if isinstance(module, classes["GatedConv2d"]):
        return "gated convs (conv, gate)"
    if isinstance(module, classes["FeatureMerge"]):
        return "feature merge"
    if isinstance(module, classes["DualDilatedBottom"]):
        return "U-Net dual dilated bottom"
    if isinstance(module, nn.ConvTranspose2d):
        return "decoders: 4x4 transposed convs"
    if isinstance(module, nn.BatchNorm2d):
        return "BatchNorm"
    if isinstance(module, nn.Conv2d):
        return "area identification: 1x1 mix" if name.endswith("pointwise") else "U-Net head convs"
    if isinstance(module, (nn.LeakyReLU, nn.ReLU)):
        return "activations (modules)"
    return None


def instrument(model, classes) -> list:
    """Forward hooks that put each leaf part in a ``record_function`` range (outermost wins)."""
    import torch

    handles, labelled = [], []
    for name, module in model.named_modules():
        label = region_of(module, name, classes)
        if label is None or any(name.startswith(p + ".") for p in labelled):
            continue
        labelled.append(name)
        ranges: list = []

        def pre(m, args, label=label, ranges=ranges):
            r = torch.autograd.profiler.record_function(f"part: {label}")
            r.__enter__()
            ranges.append(r)

        def post(m, args, out, ranges=ranges):
            ranges.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


def profile_one(preset: str, size: int, batch: int, precision: str, args) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from facefill import layers
    from facefill._inference import prepare_model, run_generator
    from facefill.bench import bench_inputs, time_fn
    from facefill.models import create_model
    from facefill.models import apfi as apfi_mod

    classes = {
        "PartialConv2d": layers.PartialConv2d, "KnowledgeConsistentAttention": layers.KnowledgeConsistentAttention,
        "GatedConv2d": layers.GatedConv2d, "FeatureMerge": layers.FeatureMerge,
        "DualDilatedBottom": apfi_mod.DualDilatedBottom,
    }
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
    torch.manual_seed(0)
    model = prepare_model(create_model("apfi", preset).eval(), dtype)
    image, mask = bench_inputs(batch, size)
    call = lambda: run_generator(model, image, mask, dtype)  # noqa: E731
    with torch.inference_mode():
        timing = time_fn(call, args.repeats, args.warmup)
        handles = instrument(model, classes)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            call()
        for h in handles:
            h.remove()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3  # ms, the profiled call
    parts = {
        e.key[len("part: "):]: {"ms": e.cpu_time_total / 1e3, "calls": e.count}
        for e in events if e.key.startswith("part: ")
    }
    glue = total - sum(p["ms"] for p in parts.values())
    top = sorted((e for e in events if not e.key.startswith("part: ")), key=lambda e: -e.self_cpu_time_total)[:8]
    return {
        "preset": preset, "size": size, "batch": batch, "precision": precision,
        "median_ms_per_image": timing.median / batch * 1e3,
        "profiled_ms": total,
        "parts": dict(sorted(parts.items(), key=lambda kv: -kv[1]["ms"])),
        "glue_ms": glue,
        "top_ops": [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "calls": e.count} for e in top],
    }


def markdown(report: dict) -> str:
    lines = [
        f"# Where APFI's CPU inference time goes, {report['date']}", "",
        f"Machine: {report['machine']['cpu']}, torch {report['machine']['torch']}, "
        f"{report['machine']['threads']} threads. {report['machine']['bf16']}",
        f"Command: `{report['command']}`", "",
        "Each table: one profiled forward (torch.profiler, CPU) split into the network's parts; "
        "the glue is what runs outside them (concatenations, masking products, functional "
        "activations, the composite). The median is of unprofiled calls.", "",
    ]
    for r in report["runs"]:
        lines += [
            f"## {r['preset']} at {r['size']}x{r['size']}, batch {r['batch']}, {r['precision']}: "
            f"{r['median_ms_per_image']:.1f} ms per image (median)", "",
            "| part | ms | share | calls |", "|---|---|---|---|",
        ]
        for name, p in r["parts"].items():
            lines.append(f"| {name} | {p['ms']:.1f} | {p['ms'] / r['profiled_ms']:.0%} | {p['calls']} |")
        lines.append(f"| glue | {r['glue_ms']:.1f} | {r['glue_ms'] / r['profiled_ms']:.0%} | – |")
        lines += ["", "Top operators by self time: " + ", ".join(
            f"{o['op']} {o['self_ms']:.1f} ms ({o['calls']})" for o in r["top_ops"]) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.src is not None:
        sys.path.insert(0, str(args.src.resolve()))
    import torch

    from facefill import bench

    if args.threads:
        torch.set_num_threads(args.threads)
    date = _dt.date.today().isoformat()
    report = {
        "date": date, "command": bench.command_line(argv),
        "machine": {"cpu": bench.cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "bf16": bench.cpu_bf16_statement()},
        "runs": [],
    }
    for precision in args.precisions.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            for batch in (int(b) for b in args.batches.split(",")):
                run = profile_one(args.preset, size, batch, precision, args)
                report["runs"].append(run)
                print(f"{args.preset} {size} b{batch} {precision}: {run['median_ms_per_image']:.1f} ms/image", flush=True)
    json_path, md_path = bench.write_report(args.out, f"apfi-profile-{date}", report, markdown(report))
    print(f"wrote {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
