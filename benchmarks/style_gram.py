"""The style loss's Gram differences on the CPU: two float32 Grams against ``gram_difference``.

The style loss only uses ``G(pred) - G(target)``. ``facefill.losses.gram_difference`` computes it
as the symmetric part of ``(A + B)(A - B)^T``, one product in the features' own dtype whose
rounding is relative to the difference; the path before it cast both maps to float32 and took two
float32 Grams (``gram_matrix(a) - gram_matrix(b)``). This reports, for the three style taps of
APFI small's training at 128 px and batch 8 (relu1_2, relu2_2, relu3_3, channels_last):

- time: forward and backward (an L1 of the difference, gradient for the prediction only), each
  path the median of ``--repeats`` calls after a warm-up, alternating, in fp32 and bf16, with malloc
  retaining freed memory as the trainer has it;
- precision: the L1 style value of bf16 VGG16 features (bf16 autocast, as training runs) by each
  path, and by rounding two bf16 Grams, against float64 arithmetic on the same bf16 features. The
  features are VGG16's (``--vgg`` or ``$FACEFILL_VGG16``) of the first ``--images`` faces of
  ``--data`` with a centre hole refilled twice: coarsely (the hole's mean colour plus noise) and
  closely (0.97x the truth plus 1 % noise, a late-training fill). Without weights or images,
  random VGG16 weights or random images, and the report says so.

    python benchmarks/style_gram.py                       # writes benchmarks/results/style-gram-<date>.*
    python benchmarks/style_gram.py --repeats 3 --out /tmp/sg
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
from pathlib import Path

import torch

from facefill._memory import retain_freed_memory
from facefill.bench import command_line, machine_info, report_header, repo_path, time_fn, write_report
from facefill.data import image_to_tensor, load_image, scan_images
from facefill.losses import gram_difference, gram_matrix
from facefill.vgg import VGG16Features

ROOT = Path(__file__).resolve().parents[1]
TAPS = (("relu1_2", 64, 128), ("relu2_2", 128, 64), ("relu3_3", 256, 32))  # name, channels, side at 128 px


def two_grams(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return gram_matrix(a) - gram_matrix(b)


def measure_time(batch: int, dtype: torch.dtype, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    maps = []
    for _, c, side in TAPS:
        a = torch.rand(batch, c, side, side, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
        b = torch.rand(batch, c, side, side, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
        maps.append((a.requires_grad_(), b))

    def run(path):
        def fn():
            total = sum(path(a, b).abs().mean() for a, b in maps)
            torch.autograd.grad(total, [a for a, _ in maps])
        return fn

    times = {"two_grams": [], "gram_difference": []}
    for _ in range(3):  # alternate, so that drift on a shared machine hits both alike
        for name, path in (("two_grams", two_grams), ("gram_difference", gram_difference)):
            times[name].append(time_fn(run(path), repeats, warmup=1).median * 1e3)
    ms = {k: min(v) for k, v in times.items()}
    return {"dtype": str(dtype).removeprefix("torch."), "two_grams_ms": ms["two_grams"],
            "gram_difference_ms": ms["gram_difference"], "speedup": ms["two_grams"] / ms["gram_difference"]}


def load_faces(data: Path, count: int) -> tuple[torch.Tensor, str]:
    paths = scan_images(data)[:count] if data.is_dir() else []
    if not paths:
        return torch.rand(count, 3, 128, 128, generator=torch.Generator().manual_seed(0)), "random images"
    faces = torch.stack([image_to_tensor(load_image(p).resize((128, 128))) for p in paths])
    return faces, f"{len(paths)} faces of {repo_path(data, ROOT)}"


def measure_precision(vgg: VGG16Features, faces: torch.Tensor) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    n = faces.shape[0]
    hole = (slice(None), slice(None), slice(40, 90), slice(30, 100))
    fills = {
        "coarse fill": faces[hole].mean((2, 3), keepdim=True) + 0.05 * torch.randn(n, 3, 50, 70, generator=gen),
        "close fill": 0.97 * faces[hole] + 0.01 * torch.randn(n, 3, 50, 70, generator=gen),
    }
    vgg = vgg.eval().to(memory_format=torch.channels_last)
    taps = tuple(name for name, _, _ in TAPS)

    def features(images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return vgg(images.contiguous(memory_format=torch.channels_last), taps)

    tf = features(faces)
    rows = []
    for fill_name, fill in fills.items():
        pred = faces.clone()
        pred[hole] = fill.clamp(0, 1)
        pf = features(pred)
        for tap in taps:
            p, t = pf[tap], tf[tap]
            exact = (gram_matrix(p.double()) - gram_matrix(t.double())).abs().mean().item()
            values = {
                "two_grams": two_grams(p, t).abs().mean().item(),
                "gram_difference": gram_difference(p, t).abs().mean().item(),
                "bf16_grams": (gram_matrix(p).bfloat16().double() - gram_matrix(t).bfloat16().double()).abs().mean().item(),
            }
            rows.append({"fill": fill_name, "tap": tap, "exact": exact,
                         **{f"{k}_rel_error": v / exact - 1 for k, v in values.items()}})
    return rows


def to_markdown(report: dict) -> str:
    lines = report_header("Style loss Gram differences on the CPU", report) + [
        f"Time: forward and backward over relu1_2, relu2_2 and relu3_3 of batch {report['batch']} at 128 px "
        "(channels_last), ms, the best of three medians.",
        "",
        "| dtype | two float32 Grams | gram_difference | speed-up |",
        "|---|---|---|---|",
    ]
    for r in report["time"]:
        lines.append(f"| {r['dtype']} | {r['two_grams_ms']:.1f} | {r['gram_difference_ms']:.1f} | {r['speedup']:.2f}x |")
    lines += [
        "",
        f"Precision: relative error of the L1 style value against float64 on the same bf16 VGG16 features "
        f"({report['features']}).",
        "",
        "| fill | tap | float64 value | two float32 Grams | gram_difference | two bf16 Grams |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["precision"]:
        lines.append(
            f"| {r['fill']} | {r['tap']} | {r['exact']:.6f} | {r['two_grams_rel_error']:+.1e} | "
            f"{r['gram_difference_rel_error']:+.1e} | {r['bf16_grams_rel_error']:+.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/faces128")
    p.add_argument("--vgg", default=os.environ.get("FACEFILL_VGG16"), help="VGG16 weights (default $FACEFILL_VGG16)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.batch < 1 or args.images < 1:
        p.error("--repeats, --batch and --images must be at least 1")
    retained = retain_freed_memory()
    timing = [measure_time(args.batch, dtype, args.repeats) for dtype in (torch.float32, torch.bfloat16)]
    vgg = VGG16Features.from_pretrained(args.vgg) if args.vgg else VGG16Features.random(seed=0)
    faces, source = load_faces(args.data, args.images)
    features = f"{'VGG16 ' + repo_path(args.vgg, ROOT) if args.vgg else 'random VGG16 weights'}, {source}"
    date = _dt.date.today().isoformat()
    report = {
        "date": date, "command": command_line(argv), "machine": machine_info(), "malloc_retains_freed_memory": retained,
        "batch": args.batch, "time": timing, "features": features, "precision": measure_precision(vgg, faces),
    }
    json_path, md_path = write_report(args.out, f"style-gram-{date}", report, to_markdown(report))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
