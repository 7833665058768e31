"""Recipe ablation for APFI on small data: which objective gives fills that beat Telea.

Every variant trains APFI ``small`` at ``--size`` (64 or 128 px) from ``configs/apfi_faces_cpu.yaml`` for the same
number of steps, with the same seed, data order and masks, on the celeba + faces128 train
splits **minus a held-out validation part** (``data.holdout``, the same seeded carve per
folder), and is judged on that held-out part only, never on a test split. Each folder's
held-out images are scored on their own with the committed mask set of that size
(``benchmarks/masks/<size>px-seed0-n63``, the paper's bins), beside OpenCV's Telea on the same
pairs: PSNR, SSIM, L1, the Sobel-gradient ratio of the hole to the ground truth's (blur shows
as a ratio well below 1) and the count of images with a saturated 8x8 block in the hole.

    python benchmarks/recipe_ablation.py --size 64 --steps 400                  # every variant
    python benchmarks/recipe_ablation.py --size 128 --steps 400 --variants l1 raw-late-critic-aug

Finished runs in ``--workdir`` are reused (an interrupted one resumes from its checkpoint), so
the table can be filled over several runs. Writes
``benchmarks/results/recipe-ablation-<date>-<size>px-<steps>steps`` (.json and .md) with the command, the variants' overrides and every number.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
from pathlib import Path

from facefill.bench import command_line, train_or_reuse, write_report
from facefill.config import load_config
from facefill.evaluate import evaluate_sets
from facefill.models import create_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = [ROOT / "data/celeba128", ROOT.parent / "shared/data/faces128"]

def masks(size: int) -> Path:
    """The committed mask set at ``size`` (64 or 128 px)."""
    return ROOT / f"benchmarks/masks/{size}px-seed0-n63"

BINS = "0.1-0.2,0.3-0.4,0.5-0.6"

NO_CRITIC = ["loss.adv=0", "model.discriminator=none"]
# The tuned recipe's parts, each ablated on its own below.
RAW_VGG = ["loss.vgg_input=raw"]
LATE_CRITIC = ["train.critic_start={half}", "loss.args={{critic_augment: 'translation,cutout'}}"]
AUGMENT = ["data.augment={{scale: 0.1, shift: 0.05, color: 0.1}}"]
EMA = ["train.ema_decay=0.999"]

VARIANTS: dict[str, tuple[str, list[str]]] = {
    "paper": ("the paper's objective: L1 1, perceptual 0.05, style 120, adv 0.05; ImageNet-normalised VGG; critic from step 0", []),
    "l1": ("L1 only, no critic", ["loss.perceptual=0", "loss.style=0", *NO_CRITIC]),
    "paper-nostyle": ("the paper's without the style term", ["loss.style=0"]),
    "paper-nocritic": ("the paper's without the critic", NO_CRITIC),
    "raw": ("the paper's weights on raw [0, 1] VGG input (RFR-Net's official convention)", RAW_VGG),
    "raw-nocritic": ("raw VGG input, no critic", [*RAW_VGG, *NO_CRITIC]),
    "raw-late-critic": ("raw VGG input; the critic joins at half the steps, DiffAugment (translation, cutout)", [*RAW_VGG, *LATE_CRITIC]),
    "raw-late-critic-aug": ("as raw-late-critic, plus flips, scale 0.1, shift 0.05, colour 0.1 on the data", [*RAW_VGG, *LATE_CRITIC, *AUGMENT]),
    "raw-late-critic-aug-l1x6": ("as raw-late-critic-aug, with the hole L1 weighted 6 (RFR-Net's official hole weight; on the composite L1 is the hole L1)", [*RAW_VGG, *LATE_CRITIC, *AUGMENT, "loss.l1=6"]),
    "raw-late-critic-aug-style40": ("as raw-late-critic-aug, with the style weight 40 instead of 120 (style is about two thirds of the tuned objective)", [*RAW_VGG, *LATE_CRITIC, *AUGMENT, "loss.style=40"]),
    "raw-late-critic-aug-nostyle": ("as raw-late-critic-aug, without the style term", [*RAW_VGG, *LATE_CRITIC, *AUGMENT, "loss.style=0"]),
    "raw-late-critic-aug-ema": ("as raw-late-critic-aug, scored with the EMA (decay 0.999) of the generator", [*RAW_VGG, *LATE_CRITIC, *AUGMENT, *EMA]),
}


def overrides(name: str, args: argparse.Namespace) -> list[str]:
    roots = ", ".join(str(Path(r).resolve()) for r in args.data)
    common = [
        f"data.root=[{roots}]",
        f"data.holdout={args.holdout}",
        "data.val_count=0",
        "data.workers=1",
        f"data.size={args.size}",
        f"train.iterations={args.steps}",
        "train.finetune_iterations=0",
        f"train.seed={args.seed}",
        f"train.save_every={max(args.steps // 8, 1)}",
        "train.val_every=0",
        "train.image_every=0",
        "train.log_every=10",
        f"train.lr_warmup={min(100, args.steps // 10)}",
    ]
    return common + [o.format(half=args.steps // 2) for o in VARIANTS[name][1]] + list(args.set)


def train(name: str, args: argparse.Namespace) -> tuple[Path, float]:
    out = args.workdir / f"{args.size}px-{args.steps}" / name
    cfg = load_config(ROOT / "configs/apfi_faces_cpu.yaml", overrides(name, args))
    _, seconds = train_or_reuse(cfg, out)
    return out / "apfi_small.safetensors", seconds


def score(generator, args: argparse.Namespace) -> dict:
    results = evaluate_sets(
        generator, args.data, masks(args.size), None, bins=BINS, split="train", holdout=args.holdout,
        size=args.size, grid_count=0,
    )
    return {name: r["bins"] for name, r in results.items()}


def to_markdown(report: dict) -> str:
    sets = list(report["telea"])
    bins = BINS.split(",")
    lines = [
        f"# APFI recipe ablation on held-out train images, {report['date']}",
        "",
        f"APFI small, {report['size']} px, batch 8, {report['steps']} steps each (seed {report['seed']}), trained on the "
        f"train splits of {', '.join(sets)} minus {report['holdout']} held-out images per folder; scored on "
        f"those held-out images with {report['masks']}. Margins are to OpenCV Telea on the same pairs.",
        f"Command: `{report['command']}`",
        "",
        "| variant | set | " + " | ".join(f"PSNR {b} (vs Telea)" for b in bins) + " | L1 0.3-0.4 | SSIM 0.3-0.4 | grad ratio 0.3-0.4 | saturated (all bins) | train s |",
        "|---|---|" + "---|" * len(bins) + "---|---|---|---|---|",
    ]
    rows = [("telea", "OpenCV Telea", report["telea"], None)]
    rows += [(n, v["about"], v["sets"], v["train_seconds"]) for n, v in report["variants"].items()]
    for name, _, scores, seconds in rows:
        for s in sets:
            b = scores[s]
            t = report["telea"][s]
            psnr = " | ".join(
                f"{b[k]['psnr']:.2f}" + ("" if name == "telea" else f" ({b[k]['psnr'] - t[k]['psnr']:+.2f})") for k in bins
            )
            mid = b["0.3-0.4"]
            ratio = "–" if mid.get("grad_ratio") is None else f"{mid['grad_ratio']:.2f}"
            saturated = sum(b[k]["saturated"] for k in bins)
            secs = "–" if seconds is None else f"{seconds:.0f}"
            lines.append(
                f"| {name} | {s} | {psnr} | {mid['l1']:.4f} | {mid['ssim']:.4f} | {ratio} | {saturated} | {secs} |"
            )
    lines += ["", "Variants:", ""]
    for name, v in report["variants"].items():
        lines.append(f"- `{name}`: {v['about']}; overrides `{' '.join(v['overrides']) or '(none)'}`")
    lines += [
        "",
        "grad ratio: mean Sobel gradient magnitude of the fill inside the hole over the ground truth's "
        "(1 = as sharp as the truth; blur is below 1). saturated: images with an 8x8 hole block stuck at "
        "0 or 255 where the truth is not. Train s: wall-clock on a shared 2-core machine, for orientation.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128, choices=(64, 128))
    p.add_argument("--holdout", type=int, default=64, help="held-out validation images per folder")
    p.add_argument("--data", type=Path, nargs="+", default=DEFAULT_DATA)
    p.add_argument("--workdir", type=Path, default=ROOT / "runs/recipe-ablation")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    p.add_argument("--set", action="append", default=[], help="an extra override for every variant")
    args = p.parse_args(argv)
    os.environ.setdefault("FACEFILL_VGG16", str(ROOT.parent / "shared/weights/vgg16_imagenet_caffe.safetensors"))
    date = _dt.date.today().isoformat()
    report = {
        "date": date,
        "command": command_line(argv),
        "steps": args.steps,
        "seed": args.seed,
        "holdout": args.holdout,
        "size": args.size,
        "masks": str(masks(args.size).relative_to(ROOT)),
        "telea": score(create_model("telea"), args),
        "variants": {},
    }
    stem = f"recipe-ablation-{date}-{args.size}px-{args.steps}steps"
    for name in args.variants:
        weights, seconds = train(name, args)
        report["variants"][name] = {
            "about": VARIANTS[name][0],
            "overrides": [o.format(half=args.steps // 2) for o in VARIANTS[name][1]],
            "train_seconds": seconds,
            "sets": score(weights, args),
        }
        write_report(args.out, stem, report, to_markdown(report))  # after every variant
        print(f"{name}: done ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
