"""Quality at equal budget: train every named model, evaluate all on one mask list.

Each model is trained by the real trainer for the same number of steps (the budget), batch
size, seed and data order on the ``train.txt`` split of ``../shared/data/faces128`` at
``--size``. ``--recipe own`` (default) trains each method with its own published objective,
critic and optimiser: its config ``configs/<model>_faces_cpu.yaml`` (APFI: the paper's losses
and SN-PatchGAN; PConv and RFR-Net: the PConv loss, no GAN; DeepFill v2, EdgeConnect, LaMa:
theirs). ``--recipe shared`` trains every model from ``configs/apfi_faces_cpu.yaml`` with only
``model.generator`` changed, which isolates the architecture. Classical methods (Telea, NS)
are evaluated without training; GFP-GAN (``--gfpgan PATH``) runs its pretrained prior, as it
cannot be trained here. Then every model is evaluated with ``facefill.evaluate`` on the
``test.txt`` split against one seeded, committed mask manifest (the paper's bins), verified
by sha256 on every use. Finished training runs in ``--workdir`` are reused.

    python benchmarks/quality.py                                   # every peer, 64 px
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
from pathlib import Path

import torch

from facefill.bench import command_line, repo_path, train_or_reuse, write_report
from facefill.config import load_config
from facefill.cost import count_cost
from facefill.data import read_id_list
from facefill.evaluate import evaluate
from facefill.masks import generate_binned_masks, load_manifest
from facefill.errors import InputError
from facefill.models import create_model, list_models, model_entry
from facefill.models.gfpgan import GFPGANInpainting
from facefill.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/faces128"
PAPER_BINS = "0.1-0.2,0.3-0.4,0.5-0.6"
DEFAULT_MODELS = ["apfi", "rfr", "pconv", "gatedconv", "edgeconnect", "lama", "telea", "ns"]


def model_config(name: str, args: argparse.Namespace) -> Path:
    """The config a model trains from: its own (``--recipe own``) or APFI's for all."""
    if args.recipe == "shared":
        return args.config
    path = ROOT / "configs" / f"{name}_faces_cpu.yaml"
    if not path.is_file():
        raise SystemExit(f"{name} has no config {path.relative_to(ROOT)}; use --recipe shared")
    return path


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
        f"train.batch_size={args.batch}",
        f"train.save_every={args.steps}",
        "train.val_every=0",
        f"train.image_every={max(args.steps // 5, 1)}",
        "data.val_count=0",
    ]
    cfg = load_config(model_config(name, args), overrides + list(args.set))
    return train_or_reuse(cfg, out, fresh=args.fresh)


def trained(name: str) -> bool:
    """True for the registered models this script trains (and which have a config)."""
    return name in list_models("generator") and model_entry(name).trainable


def to_markdown(report: dict) -> str:
    bins = list(next(iter(report["models"].values()))["bins"])
    head = "| model | recipe | params | GFLOP/img | train s |" + "".join(f" PSNR {b} | SSIM {b} | L1 {b} |" for b in bins)
    lines = [
        f"# Quality at equal budget, {report['date']}",
        "",
        f"{report['budget']}; {report['size']}x{report['size']}; "
        f"test images: {report['test_images']}; masks: {report['manifest']['path']} (seed {report['seed']}).",
        f"Command: `{report['command']}`",
        "",
        head,
        "|---|---|---|---|---|" + "---|---|---|" * len(bins),
    ]
    for name, r in report["models"].items():
        cells = "".join(
            f" {r['bins'][b]['psnr']:.2f} | {r['bins'][b]['ssim']:.4f} | {r['bins'][b]['l1']:.4f} |" for b in bins
        )
        seconds = f"{r['train_seconds']:.0f}" if r["train_seconds"] else "–"
        gflops = f"{r['gflops']:.2f}" if r.get("gflops") is not None else "–"
        lines.append(
            f"| {name} ({r['preset']}) | {r['recipe']} | {r['params'] / 1e6:.2f} M | {gflops} | {seconds} |{cells}"
        )
    for name, why in report.get("skipped", {}).items():
        lines.append(f"| {name} | not run: {why} |")
    lines += [
        "",
        "PSNR in dB (higher is better), SSIM (higher), L1 mean absolute error in [0,1] units (lower).",
        "GFLOP/img: one generator forward at the evaluation size (facefill.cost; critics and losses not counted).",
        "Train s is wall-clock on a shared machine, for orientation only; the budget is the step count.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--recipe", choices=["own", "shared"], default="own",
                   help="own: each method's published objective (its config); shared: APFI's for all")
    p.add_argument("--batch", type=int, default=8, help="batch size of every trained model")
    p.add_argument("--gfpgan", type=Path, default=None,
                   help="GFPGANv1.4.pth: add GFP-GAN (pretrained, needs `pip install gfpgan`)")
    p.add_argument("--preset", default="small")
    p.add_argument("--size", type=int, default=64, help="training and evaluation size (64 or 128 on CPU)")
    p.add_argument("--steps", type=int, default=1000, help="the budget: training steps per model")
    p.add_argument("--seed", type=int, default=0, help="training seed and mask seed")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--config", type=Path, default=ROOT / "configs/apfi_faces_cpu.yaml",
                   help="the config of every model with --recipe shared")
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
    if args.recipe == "shared":
        work = work.with_name(work.name + "-shared-recipe")
    # The mask set is small and committed (benchmarks/masks/), so anyone can evaluate on it.
    masks = ROOT / "benchmarks/masks" / f"{args.size}px-seed{args.seed}-n{len(test_ids)}"
    manifest = make_manifest(masks, args.size, per_bin=len(test_ids), seed=args.seed)

    models, skipped, names = {}, {}, list(args.models)
    if args.gfpgan is not None:
        try:
            gfpgan = GFPGANInpainting.from_weights(args.gfpgan)
            names.append("gfpgan")
        except InputError as e:
            skipped["gfpgan"] = str(e)
            print(f"== gfpgan skipped: {e}", flush=True)
    for name in names:
        if name == "gfpgan":
            print("== gfpgan: pretrained prior, no training; evaluating", flush=True)
            result = evaluate(gfpgan, args.data, manifest, out_dir=work / name / "eval")
            models[name] = {"preset": "GFPGANv1-clean", "recipe": "pretrained (TencentARC)",
                            "params": sum(p.numel() for p in gfpgan.parameters()), "gflops": None,
                            "train_seconds": 0.0, "bins": result["bins"]}
            continue
        if not model_entry(name).trainable:  # classical methods: nothing to train
            print(f"== {name}: no training (classical method); evaluating", flush=True)
            generator, seconds, recipe = create_model(name, args.preset), 0.0, "none (classical)"
        else:
            print(f"== {name}: training {args.steps} steps at {args.size}px", flush=True)
            trainer, seconds = train_one(name, args, work / name)
            generator = trainer.inference_model  # the exported weights: the EMA's when there is one
            recipe = trainer.cfg.loss.recipe + ("" if trainer.d_raw is None else f" + {trainer.cfg.model.discriminator}")
            print(f"== {name}: evaluating", flush=True)
        result = evaluate(generator, args.data, manifest, out_dir=work / name / "eval")
        models[name] = {
            "preset": args.preset,
            "recipe": recipe,
            "params": sum(p.numel() for p in generator.parameters()),
            "gflops": count_cost(name, args.preset, args.size).flops / 1e9,
            "train_seconds": seconds,
            "bins": result["bins"],
        }
        print(json.dumps(models[name]["bins"], indent=2), flush=True)

    date = _dt.date.today().isoformat()
    report = {
        "date": date,
        "models": models,
        "budget": f"{args.steps} training steps of batch {args.batch} per trained model (same seed and data order)",
        "recipe": args.recipe,
        "skipped": skipped,
        "steps": args.steps,
        "size": args.size,
        "seed": args.seed,
        "data": repo_path(args.data, ROOT),
        "test_images": len(test_ids),
        "manifest": {"path": repo_path(manifest, ROOT),
                     "bins": PAPER_BINS, "per_bin": len(test_ids)},
        "configs": {n: str(model_config(n, args).relative_to(ROOT)) for n in models if trained(n)},
        "torch": torch.__version__,
        "command": command_line(argv),
    }
    name = f"quality-{date}" + ("-shared-recipe" if args.recipe == "shared" else "")
    json_path, md_path = write_report(args.out, name, report, to_markdown(report))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
