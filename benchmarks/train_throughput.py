"""Training throughput: images/s of full training steps, and of the data loader alone.

Runs the real trainer (``facefill.train.Trainer``) built from a config: generator,
SN-PatchGAN critic, L1 + perceptual + style + adversarial losses with the VGG16 weights,
one critic and one generator update per step. The first ``--warmup`` steps are not timed.
The data loader is timed on its own over the same sampler, batch size and worker count,
and must deliver more images/s than the step consumes.

    python benchmarks/train_throughput.py                      # CPU config + paper config, fp32 and bf16
    python benchmarks/train_throughput.py --configs configs/apfi_faces_cpu.yaml --steps 20
    python benchmarks/train_throughput.py --quick --out /tmp/train   # smoke test: CPU config, 2 steps
    python benchmarks/train_throughput.py --configs configs/apfi_faces_cpu.yaml --profile-steps 3
                                                                     # + each operator's time, fp32 beside bf16

Every config is measured in each of ``--precisions`` (default ``fp32,bf16``) in the same run,
through the config override ``train.amp=<precision>``; the trainer applies it
(``facefill._device.resolve_precision``, channels_last as the config says), and the report
gives the precision and layout the trainer actually ran, images/s of each and bf16's ratio to
fp32. The precisions of a config are measured interleaved: one trainer per precision, a step of
each in turn, the order reversed every other round (ABBA), so that this shared machine's drift,
which moved a step by 5-12 % between runs of the same code, falls on both alike and cancels in
the ratio; ``--sequential`` measures them one after the other instead. On a CPU without native
bf16 (no AVX512-BF16 / AMX; the report says which) bf16 is emulated and several times slower:
``--precisions fp32`` skips it.

The paper config (APFI paper preset, 256x256, batch 6, VGG at 224) needs CelebA; without
it, ``--data`` (default: ../shared/data/faces128) stands in, upscaled to 256. The images'
content does not change the cost of a step. The estimate for the paper's schedule (450k
steps x batch 6) follows from the measured steady-state rate.

Writes ``benchmarks/results/train-<date>.json`` and ``.md`` (``train-<date>-quick.*`` with
``--quick``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from facefill._device import native_bf16_cpu, precision_name
from facefill.bench import command_line, cpu_bf16_statement, cpu_model, repo_path, sync, write_report
from facefill.config import load_config
from facefill.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = [ROOT / "configs/apfi_faces_cpu.yaml", ROOT / "configs/apfi_celeba256.yaml"]
DEFAULT_DATA = ROOT.parent / "shared/data/faces128"


class _Run:
    """One config in one precision: its trainer, its batch stream, and the times of its steps."""

    def __init__(self, path: Path, precision: str, args: argparse.Namespace, tmp: str) -> None:
        overrides = [
            "data.val_count=0", "train.log_every=1000000", "train.image_every=0", "train.val_every=0",
            f"train.amp={precision}",
        ]
        if args.device:
            overrides.append(f"train.device={args.device}")
        cfg = load_config(path, overrides)
        self.stand_in = args.data_always or not cfg.data.roots or not all(Path(r).is_dir() for r in cfg.data.roots)
        if self.stand_in:
            cfg = load_config(path, overrides + [f"data.root={args.data.resolve()}"])
        self.path, self.precision, self.cfg = path, precision, cfg
        self.trainer = Trainer(cfg, tmp)
        self.batches = self.trainer._loader()
        self.times: list[float] = []

    def step(self, timed: bool) -> None:
        trainer = self.trainer
        trainer._phase()
        image, mask = next(self.batches)
        sync(trainer.device)
        t0 = time.perf_counter()
        values = trainer.train_step(image, mask)
        sync(trainer.device)
        if timed:
            self.times.append(time.perf_counter() - t0)
        if values is None:
            raise RuntimeError(f"{self.path.name}: non-finite loss while benchmarking")
        trainer.step += 1

    def profile(self, n_steps: int) -> dict[str, float]:
        """``n_steps`` more steps under ``torch.profiler``: each operator's self time, ms per step
        (self times do not overlap, so they sum to the profiled step). Not part of the timing."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:  # host time; on a GPU, launches and syncs
            for _ in range(n_steps):
                self.step(timed=False)
        per_op = {event.key: event.self_cpu_time_total / 1000 / n_steps for event in prof.key_averages()}  # one per key
        return dict(sorted(per_op.items(), key=lambda kv: -kv[1]))

    def loader_seconds(self, n_batches: int) -> float:
        """The data loader alone, same sampler / batch / workers, first batch excluded (ends the run's steps)."""
        self.batches = None
        loader = self.trainer._loader()
        next(loader)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            next(loader)
        return (time.perf_counter() - t0) / n_batches

    def result(self, loader_s: float, order: str) -> dict:
        cfg, trainer, times = self.cfg, self.trainer, self.times
        device = trainer.device
        batch = cfg.train.batch_size
        ran = precision_name(getattr(trainer, "amp_dtype", None))
        step_s = statistics.median(times)
        path = self.path
        result = {
            "config": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
            "model": f"{cfg.model.generator} ({cfg.model.preset}) + {cfg.model.discriminator} ({cfg.model.discriminator_preset})",
            "size": cfg.data.size,
            "batch_size": batch,
            "vgg_resize": cfg.loss.resize,
            "device": str(device),
            "precision_requested": self.precision,
            "precision": ran,
            "channels_last": bool(getattr(trainer, "channels_last", False)),
            "data": [repo_path(r, ROOT) for r in cfg.data.roots],
            "data_stand_in": self.stand_in,
            "workers": cfg.data.workers,
            "order": order,
            "timed_steps": len(times),
            "step_s": times,
            "step_s_median": step_s,
            "step_s_min": min(times),
            "step_s_max": max(times),
            "train_images_per_s": batch / step_s,
            "loader_images_per_s": batch / loader_s,
            "loader_over_step": (batch / loader_s) / (batch / step_s),
            "iterations": cfg.train.iterations,
            "schedule_hours": cfg.train.iterations * step_s / 3600,
        }
        if cfg.train.finetune_iterations:
            result["schedule_with_finetune_hours"] = (cfg.train.iterations + cfg.train.finetune_iterations) * step_s / 3600
        if ran != self.precision:
            result["note"] = f"train.amp={self.precision} ran in {ran} on {device} (what this trainer does with it there)"
        return result


def round_order(names: list, i: int) -> list:
    """Round ``i`` of an interleaved measurement: the runs in order, reversed every other round.

    Over two rounds every run goes first once and last once (ABBA for two), so a drift of the
    machine's speed within the measurement falls on all runs alike.
    """
    return list(names) if i % 2 == 0 else list(reversed(names))


def _measure_together(path: Path, group: list[tuple[str, str]], args: argparse.Namespace, tmp: str, order: str) -> list[dict]:
    """The ``(folder name, precision)`` runs of ``group`` stepped in turn; their trainers go on return."""
    runs = [_Run(path, precision, args, str(Path(tmp) / name)) for name, precision in group]
    steps = args.steps if runs[0].trainer.device.type == "cpu" else args.gpu_steps
    for i in range(args.warmup + steps):
        for run in round_order(runs, i):
            run.step(timed=i >= args.warmup)
    profiles = [run.profile(args.profile_steps) if args.profile_steps else None for run in runs]
    for run in runs:  # no other run's loader workers beside the one being timed
        run.batches = None
    loader_s = [run.loader_seconds(args.loader_batches) for run in runs]
    results = [run.result(seconds, order) for run, seconds in zip(runs, loader_s)]
    for result, profile in zip(results, profiles):
        if profile is not None:
            result["profile_ms_per_step"] = profile
    return results


def measure_config(path: Path, precisions: list[str], args: argparse.Namespace) -> list[dict]:
    """Every precision of one config: interleaved step by step (default), or one after the other
    (``--sequential``: the same measurement, one precision at a time)."""
    order = "sequential" if args.sequential else "interleaved"
    named = [(f"{i}-{precision}", precision) for i, precision in enumerate(precisions)]
    groups = [[one] for one in named] if args.sequential else [named]
    with tempfile.TemporaryDirectory() as tmp:
        return [r for group in groups for r in _measure_together(path, group, args, tmp, order)]


def add_ratios(runs: list[dict]) -> None:
    """``vs_fp32``: each run's images/s over the fp32 run of the same config (1 for fp32 itself)."""
    fp32 = {r["config"]: r["train_images_per_s"] for r in runs if r["precision_requested"] == "fp32"}
    for r in runs:
        if r["config"] in fp32:
            r["vs_fp32"] = r["train_images_per_s"] / fp32[r["config"]]


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# Training throughput, {report['date']}",
        "",
        f"Machine: {m['cpu']} ({m['torch_threads']} torch threads), {m.get('gpu') or 'no GPU'}; torch {m['torch']}.",
        f"CPU bf16: {m['cpu_bf16']}.",
        f"Command: `{report['command']}`",
        "",
        "precision: what the trainer ran (requested with `train.amp`; CL = channels_last); vs fp32: the run's "
        "train images/s over the fp32 run of the same config (above 1: faster).",
        "",
        "| config | model | size | batch | device | precision | train img/s | vs fp32 | s/step | loader img/s | "
        "loader / step | schedule |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        sched = f"{r['iterations']:,} it: {r['schedule_hours']:.1f} h"
        if "schedule_with_finetune_hours" in r:
            sched += f" (+ fine-tune: {r['schedule_with_finetune_hours']:.1f} h)"
        data = " (stand-in data)" if r["data_stand_in"] else ""
        precision = r["precision"] + (" CL" if r["channels_last"] else "")
        if r["precision_requested"] != r["precision"]:
            precision += f" (asked {r['precision_requested']})"
        vs = f"{r['vs_fp32']:.2f}" if "vs_fp32" in r else "–"
        lines.append(
            f"| {r['config']}{data} | {r['model']} | {r['size']} | {r['batch_size']} | {r['device']} | "
            f"{precision} | {r['train_images_per_s']:.2f} | {vs} | {r['step_s_median']:.3f} | "
            f"{r['loader_images_per_s']:.1f} | {r['loader_over_step']:.1f}x | {sched} |"
        )
    lines += ["", *report.get("notes", []), *[f"Note: {r['note']}." for r in report["runs"] if "note" in r]]
    lines += profile_markdown(report["runs"])
    return "\n".join(lines) + "\n"


def profile_markdown(runs: list[dict], top: int = 15) -> list[str]:
    """Per config, the operators' self time per step in fp32 and in bf16 side by side (``--profile-steps``)."""
    lines: list[str] = []
    by_config: dict[str, dict[str, dict]] = {}
    for r in runs:
        if "profile_ms_per_step" in r:
            by_config.setdefault(r["config"], {})[r["precision_requested"]] = r["profile_ms_per_step"]
    for config, prof in by_config.items():
        if not {"fp32", "bf16"} <= prof.keys():
            continue
        fp32, bf16 = prof["fp32"], prof["bf16"]
        names = sorted(set(fp32) | set(bf16), key=lambda k: -max(fp32.get(k, 0.0), bf16.get(k, 0.0)))
        shown = names[:top]
        lines += [
            "", f"## Where a step's time goes: {config}", "",
            "Operators' self CPU time under torch.profiler (ms per step; profiling slows a step, so "
            "read the ratios, not the totals). fp32 / bf16 above 1: faster in bf16.", "",
            "| operator | fp32 ms | bf16 ms | fp32 / bf16 |", "|---|---:|---:|---:|",
        ]
        rows = [(k, fp32.get(k, 0.0), bf16.get(k, 0.0)) for k in shown]
        rest = [(fp32.get(k, 0.0), bf16.get(k, 0.0)) for k in names[top:]]
        rows.append(("(all other operators)", sum(a for a, _ in rest), sum(b for _, b in rest)))
        rows.append(("**total**", sum(fp32.values()), sum(bf16.values())))
        for name, a, b in rows:
            ratio = f"{a / b:.2f}" if b > 0 else "–"
            lines.append(f"| {name} | {a:.1f} | {b:.1f} | {ratio} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", type=Path, default=DEFAULT_CONFIGS)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="stand-in images when a config's data.root is missing")
    p.add_argument("--data-always", action="store_true", help="use --data for every config")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the trainer's choice)")
    p.add_argument("--steps", type=int, default=10, help="timed steps on CPU")
    p.add_argument("--gpu-steps", type=int, default=100, help="timed steps on a GPU")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--loader-batches", type=int, default=30)
    p.add_argument("--precisions", default="fp32,bf16", help="train.amp values measured for every config (default: fp32,bf16)")
    p.add_argument("--sequential", action="store_true",
                   help="measure the precisions one after the other (default: interleaved step by step)")
    p.add_argument("--profile-steps", type=int, default=0,
                   help="after the timing, profile this many more steps of each run and report the "
                        "operators' time per precision side by side (0: no profile)")
    p.add_argument("--quick", action="store_true", help="smoke test: the CPU config only, 1 warm-up and 2 timed steps, 3 loader batches")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = p.parse_args(argv)
    if args.quick:
        args.configs, args.steps, args.gpu_steps, args.warmup, args.loader_batches = DEFAULT_CONFIGS[:1], 2, 2, 1, 3
    if args.profile_steps < 0:
        p.error(f"--profile-steps must be 0 or more, got {args.profile_steps}")
    precisions = [t.strip() for t in args.precisions.split(",") if t.strip()]
    if not precisions:
        p.error("--precisions names no precision")
    if not os.environ.get("FACEFILL_VGG16"):
        shared = ROOT.parent / "shared/weights/vgg16_imagenet_caffe.safetensors"
        if shared.is_file():
            os.environ["FACEFILL_VGG16"] = str(shared)

    runs = []
    for path in args.configs:
        print(f"measuring {path} with train.amp={','.join(precisions)} ...", flush=True)
        for r in measure_config(path.resolve(), precisions, args):
            print(json.dumps({k: v for k, v in r.items() if k != "step_s"}, indent=2), flush=True)
            runs.append(r)
    add_ratios(runs)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    date = _dt.date.today().isoformat()
    report = {
        "date": date,
        "command": command_line(argv),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "gpu": gpu,
            "cpu_native_bf16": native_bf16_cpu(),
            "cpu_bf16": cpu_bf16_statement(),
        },
        "runs": runs,
        "notes": [
            "Steps: one critic and one generator update each; losses L1 + perceptual + style (VGG16) + hinge adversarial.",
            "s/step is the median over the timed steps after warm-up; the loader is timed alone over the same sampler.",
            "Order: one precision after the other (--sequential)." if args.sequential else
            "Order: the precisions of a config interleaved, a step of each in turn, the order reversed every other "
            "round (ABBA), so that the machine's drift falls on both alike.",
            "Schedule: the config's iterations at the measured rate (the paper's 450k x 6 for the paper config).",
        ],
    }
    stem = f"train-{date}" + ("-quick" if args.quick else "")
    json_path, md_path = write_report(args.out, stem, report, to_markdown(report))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
