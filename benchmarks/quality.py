"""Quality at equal budget: train every named model the same way, evaluate all on one mask list.

Each model is trained by the real trainer for the same number of steps (the budget) on the
``train.txt`` split of ``../shared/data/faces128`` at ``--size``, from the same config
(``configs/apfi_faces_cpu.yaml``: batch 8, Adam 2e-4, the paper's loss weights with the
SN-PatchGAN, VGG16 at the training size), with only ``model.generator``/``model.preset``
changed, so the comparison isolates the architecture. Then every model is evaluated with
``facefill.evaluate`` on the ``test.txt`` split against one seeded mask manifest (the
paper's bins), generated once into the work folder and verified by sha256 on every use.

    python benchmarks/quality.py                                   # apfi and rfr, 64 px
    python benchmarks/quality.py --models apfi rfr --size 64 --steps 1000 --seed 0

Writes ``benchmarks/results/quality-<date>.json`` shaped
``{"models": {"apfi": {"bins": {...}, ...}, ...}, "budget": .., "size": .., "seed": .., "command": ..}``
and the same as a Markdown table. Wall-clock training time is recorded per model too.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import time
from pathlib import Path

import torch

from facefill.bench import command_line, write_report
from facefill.config import load_config
from facefill.data import read_id_list
from facefill.evaluate import evaluate
from facefill.masks import generate_binned_masks, load_manifest
from facefill.models import create_model, list_models, model_entry
from facefill.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/faces128"
PAPER_BINS = "0.1-0.2,0.3-0.4,0.5-0.6"


def make_manifest(folder: Path, size: int, per_bin: int, seed: int) -> Path:
    manifest = folder / "manifest.json"
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        if (meta.get("size"), meta.get("per_bin"), meta.get("seed")) == (size, per_bin, seed):
            load_manifest(manifest, verify=True)  # refuses a modified set
            return manifest
    generate_binned_masks(folder, size=size, per_bin=per_bin, seed=seed, bins=PAPER_BINS, overwrite=True)
    return manifest


def train_one(name: str, args: argparse.Namespace, out: Path) -> tuple[Trainer, float]:
    overrides = [
        f"model.generator={name}",
        f"model.preset={args.preset}",
        f"data.root={args.data.resolve()}",
        f"data.size={args.size}",
        f"train.iterations={args.steps}",
        "train.finetune_iterations=0",
        f"train.seed={args.seed}",
        f"train.save_every={args.steps}",
        "train.val_every=0",
        f"train.image_every={max(args.steps // 5, 1)}",
        "data.val_count=0",
    ]
    cfg = load_config(args.config, overrides + list(args.set))
    trainer = Trainer(cfg, out, resume=(out / "checkpoints").is_dir() and not args.fresh)
    record = out / "train_seconds.json"
    if trainer.step >= trainer.total_steps and record.is_file():  # finished earlier: reuse
        return trainer, json.loads(record.read_text())["seconds"]
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    record.write_text(json.dumps({"seconds": seconds}) + "\n")
    return trainer, seconds


def to_markdown(report: dict) -> str:
    bins = list(next(iter(report["models"].values()))["bins"])
    head = "| model | params | train s |" + "".join(f" PSNR {b} | SSIM {b} | L1 {b} |" for b in bins)
    lines = [
        f"# Quality at equal budget, {report['date']}",
        "",
        f"{report['budget']}; {report['size']}x{report['size']}; "
        f"test images: {report['test_images']}; masks: {report['manifest']['path']} (seed {report['seed']}).",
        f"Command: `{report['command']}`",
        "",
        head,
        "|---|---|---|" + "---|---|---|" * len(bins),
    ]
    for name, r in report["models"].items():
        cells = "".join(
            f" {r['bins'][b]['psnr']:.2f} | {r['bins'][b]['ssim']:.4f} | {r['bins'][b]['l1']:.4f} |" for b in bins
        )
        seconds = f"{r['train_seconds']:.0f}" if r["train_seconds"] else "–"
        lines.append(f"| {name} ({r['preset']}) | {r['params'] / 1e6:.2f} M | {seconds} |{cells}")
    lines += [
        "",
        "PSNR in dB (higher is better), SSIM (higher), L1 mean absolute error in [0,1] units (lower).",
        "Train s is wall-clock on a shared machine, for orientation only; the budget is the step count.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["apfi", "rfr", "telea"])
    p.add_argument("--preset", default="small")
    p.add_argument("--size", type=int, default=64, help="training and evaluation size (64 or 128 on CPU)")
    p.add_argument("--steps", type=int, default=1000, help="the budget: training steps per model")
    p.add_argument("--seed", type=int, default=0, help="training seed and mask seed")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--config", type=Path, default=ROOT / "configs/apfi_faces_cpu.yaml")
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides for every model")
    p.add_argument("--workdir", type=Path, default=ROOT / "runs/quality")
    p.add_argument("--fresh", action="store_true", help="retrain even if a finished run exists")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = p.parse_args(argv)
    unknown = [m for m in args.models if m not in list_models("generator")]
    if unknown:
        p.error(f"unknown model(s) {unknown}; registered: {list_models('generator')}")
    if not os.environ.get("FACEFILL_VGG16"):
        shared = ROOT.parent / "shared/weights/vgg16_imagenet_caffe.safetensors"
        if shared.is_file():
            os.environ["FACEFILL_VGG16"] = str(shared)
    torch.manual_seed(args.seed)

    test_ids = read_id_list(args.data / "test.txt")
    work = args.workdir / f"{args.size}px-{args.steps}steps-seed{args.seed}"
    # The mask set is small and committed (benchmarks/masks/), so anyone can evaluate on it.
    masks = ROOT / "benchmarks/masks" / f"{args.size}px-seed{args.seed}-n{len(test_ids)}"
    manifest = make_manifest(masks, args.size, per_bin=len(test_ids), seed=args.seed)

    models = {}
    for name in args.models:
        if not model_entry(name).trainable:  # classical methods: nothing to train
            print(f"== {name}: no training (classical method); evaluating", flush=True)
            generator, seconds = create_model(name, args.preset), 0.0
        else:
            print(f"== {name}: training {args.steps} steps at {args.size}px", flush=True)
            generator, seconds = train_one(name, args, work / name)
            generator = generator.g_raw
            print(f"== {name}: evaluating", flush=True)
        result = evaluate(generator, args.data, manifest, out_dir=work / name / "eval")
        models[name] = {
            "preset": args.preset,
            "params": sum(p.numel() for p in generator.parameters()),
            "train_seconds": seconds,
            "bins": result["bins"],
        }
        print(json.dumps(models[name]["bins"], indent=2), flush=True)

    batch = load_config(args.config, list(args.set)).train.batch_size
    date = _dt.date.today().isoformat()
    report = {
        "date": date,
        "models": models,
        "budget": f"{args.steps} training steps of batch {batch} per trained model (same config, seed and data order)",
        "steps": args.steps,
        "size": args.size,
        "seed": args.seed,
        "data": str(args.data),
        "test_images": len(test_ids),
        "manifest": {"path": str(manifest.relative_to(ROOT)) if manifest.is_relative_to(ROOT) else str(manifest),
                     "bins": PAPER_BINS, "per_bin": len(test_ids)},
        "config": str(args.config.relative_to(ROOT)) if args.config.resolve().is_relative_to(ROOT) else str(args.config),
        "torch": torch.__version__,
        "command": command_line(argv),
    }
    json_path, md_path = write_report(args.out, f"quality-{date}", report, to_markdown(report))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
