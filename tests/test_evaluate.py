import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from facefill import create_model
from facefill.checkpoint import CheckpointError, save_weights
from facefill.cli import app
from facefill.data import DatasetError, ImageFolderDataset, carve_holdout
from facefill.evaluate import (
    PAPER_BINS,
    EvaluationError,
    evaluate,
    evaluate_sets,
    optional_metric_status,
    pair_masks,
    parse_cycles,
    set_names,
)
from facefill.multiroot import validation_set
from facefill.masks import ManifestError, generate_binned_masks, load_manifest, read_mask

runner = CliRunner()
SIZE = 32
TINY = {"width": 8, "reasoning": (8, 8, 8), "unet": (8, 8, 8), "cycles": 2}


def _images(folder, count, size, seed=0, value=None):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        if value is None:
            # smooth random colours, so SSIM and PSNR are not degenerate
            a = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
            img = Image.fromarray(a).resize((size, size), Image.Resampling.BILINEAR)
        else:
            img = Image.new("RGB", (size, size), (value,) * 3)
        img.save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = _images(root / "data", 5, SIZE)
    (data / "test.txt").write_text("004\n000\n002\n")  # 3 test images, list order is data order
    masks = root / "masks"
    generate_binned_masks(masks, SIZE, 2, seed=3)  # 2 masks per bin for 3 images: cycled
    weights = save_weights(create_model("apfi", "small", **TINY), root / "apfi_tiny.safetensors")
    return {"root": root, "data": data, "masks": masks, "weights": weights}


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------- pairing and small helpers


def test_pairing_rule_is_image_index_mod_mask_count():
    assert pair_masks(5, 3) == [0, 1, 2, 0, 1]
    assert pair_masks(2, 5) == [0, 1]  # extra masks unused
    assert pair_masks(0, 0) == []
    assert pair_masks(4, 1) == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="n_masks"):
        pair_masks(3, 0)


def test_parse_cycles_single_list_and_range():
    assert parse_cycles("6") == 6
    assert parse_cycles("1,2,4") == [1, 2, 4]
    assert parse_cycles("1-4") == [1, 2, 3, 4]
    for bad in ("0", "a", "2,2", "1-"):
        with pytest.raises(ValueError, match="cycles"):
            parse_cycles(bad)


def test_optional_metrics_say_what_is_missing():
    # This workplace has neither torchvision nor torch-fidelity weights; the reason names them.
    for name, needle in (("lpips", "alexnet"), ("fid", "inception")):
        reason = optional_metric_status(name)
        assert reason is None or (name.upper() in reason and needle in reason)


# ----------------------------------------------------------------- the evaluation


def test_known_fill_gives_hand_computed_metrics_on_the_documented_pairs(tmp_path, setup):
    # Grey images; the "method" fills every hole with grey + 0.1, so an image with hole ratio r
    # has L1 = 0.1 r and PSNR = 10 log10(1 / (0.01 r)), from the masks the rule pairs it with.
    data = _images(tmp_path / "grey", 3, SIZE, value=100)
    seen = []

    def fill(image, mask):
        seen.append(mask.clone())
        return torch.where(mask > 0.5, image + 0.1, image)

    result = evaluate(fill, data, setup["masks"], batch_size=2)
    assert list(result["bins"]) == list(PAPER_BINS)
    assert result["data"]["split"] is None and "no test.txt" in result["notes"][0]
    entries = load_manifest(setup["masks"])
    expected_calls = []
    for batch in ([0, 1], [2]):
        for b in PAPER_BINS:
            files = sorted((e for e in entries if e["bin"] == b), key=lambda e: e["path"])
            pairs = pair_masks(3, len(files))
            expected_calls.append(torch.stack([read_mask(files[pairs[i]]["file"], SIZE) for i in batch]))
    assert len(seen) == len(expected_calls)
    for got, want in zip(seen, expected_calls):
        assert torch.equal(got, want)
    for k, b in enumerate(PAPER_BINS):
        masks = torch.cat([expected_calls[k], expected_calls[len(PAPER_BINS) + k]])
        ratios = masks.flatten(1).double().mean(1)
        row = result["bins"][b]
        assert row["n"] == 3
        assert row["hole_ratio"] == pytest.approx(float(ratios.mean()))
        assert row["l1"] == pytest.approx(0.1 * float(ratios.mean()), abs=1e-6)
        want_psnr = float(np.mean([10 * math.log10(1 / (0.01 * r)) for r in ratios.tolist()]))
        assert row["psnr"] == pytest.approx(want_psnr, abs=1e-3)
        assert 0 < row["ssim"] < 1


def test_evaluating_twice_writes_identical_files(tmp_path, setup):
    a = evaluate(setup["weights"], setup["data"], setup["masks"], tmp_path / "a", batch_size=2)
    b = evaluate(setup["weights"], setup["data"], setup["masks"], tmp_path / "b", batch_size=2)
    assert a == b
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert sorted(a["files"]) == sorted(p.name for p in (tmp_path / "a").iterdir())
    assert a["data"]["split"] == "test" and a["data"]["images"] == 3
    assert a["manifest"]["seed"] == 3 and len(a["manifest"]["sha256"]) == 64
    assert a["model"]["name"] == "apfi" and a["cycles"] == TINY["cycles"]
    for row in a["bins"].values():
        assert all(math.isfinite(row[k]) for k in ("psnr", "ssim", "l1"))


def test_in_memory_model_matches_its_weights_file_and_keeps_its_mode(setup):
    from facefill.checkpoint import load_weights

    model, _ = load_weights(setup["weights"])
    model.train()
    in_memory = evaluate(model, setup["data"], setup["masks"], batch_size=2)
    from_file = evaluate(setup["weights"], setup["data"], setup["masks"], batch_size=2)
    assert model.training
    assert in_memory["bins"] == from_file["bins"]
    assert in_memory["model"]["state_sha256"] == from_file["model"]["state_sha256"]
    assert in_memory["files"] == [] and in_memory["model"]["weights"] is None


def test_tampered_mask_is_refused_before_anything_is_written(tmp_path, setup):
    masks = tmp_path / "masks"
    shutil.copytree(setup["masks"], masks)
    victim = sorted((masks / "0.3-0.4").glob("*.png"))[0]
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0x01  # one byte of the IEND chunk's CRC
    victim.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="sha256"):
        evaluate(setup["weights"], setup["data"], masks, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bins_selection_and_unknown_bin(tmp_path, setup):
    one = evaluate(setup["weights"], setup["data"], setup["masks"], bins="0.3-0.4")
    assert list(one["bins"]) == ["0.3-0.4"] and one["manifest"]["bins"] == {"0.3-0.4": 2}
    with pytest.raises(EvaluationError, match=r"bin 0\.2-0\.3 .*available: 0\.1-0\.2, 0\.3-0\.4, 0\.5-0\.6"):
        evaluate(setup["weights"], setup["data"], setup["masks"], bins="0.2-0.3")
    # default: the paper's bins that the manifest has, and only those
    other = tmp_path / "other"
    generate_binned_masks(other, SIZE, 1, seed=0, bins=((0.1, 0.2), (0.2, 0.3)))
    assert list(evaluate(setup["weights"], setup["data"], other)["bins"]) == ["0.1-0.2"]


def test_cycle_ablation_runs_every_count_on_the_same_pairs(tmp_path, setup):
    result = evaluate(setup["weights"], setup["data"], setup["masks"], tmp_path, cycles=[1, 3], bins="0.5-0.6")
    assert "bins" not in result and list(result["cycles"]) == ["1", "3"]
    one, three = (result["cycles"][c]["bins"]["0.5-0.6"] for c in ("1", "3"))
    assert one["hole_ratio"] == three["hole_ratio"] and one["n"] == three["n"] == 3
    assert one["psnr"] != three["psnr"]  # the count reaches the model
    single = evaluate(setup["weights"], setup["data"], setup["masks"], cycles=3, bins="0.5-0.6")
    assert single["cycles"] == 3 and single["bins"]["0.5-0.6"] == three
    assert {"samples_0.5-0.6_cycles1.png", "samples_0.5-0.6_cycles3.png"} <= set(result["files"])
    assert "| 3 | (0.5, 0.6] | 3 |" in (tmp_path / "metrics.md").read_text()


def test_cycles_refused_for_a_method_without_them(setup):
    def mean_fill(image, mask):
        return torch.where(mask > 0.5, image.mean(), image)

    with pytest.raises(EvaluationError, match="does not take a cycles argument"):
        evaluate(mean_fill, setup["data"], setup["masks"], cycles=2)
    assert evaluate(mean_fill, setup["data"], setup["masks"])["cycles"] is None


def test_image_size_must_fit_the_stride(tmp_path, setup):
    data = _images(tmp_path / "odd", 2, 40)
    with pytest.raises(EvaluationError, match="40 is not a multiple of 16"):
        evaluate(setup["weights"], data, setup["masks"])
    assert evaluate(setup["weights"], data, setup["masks"], size=32, bins="0.1-0.2")["size"] == 32


def test_a_size_and_batch_beyond_memory_are_refused_before_anything_runs(tmp_path, setup, monkeypatch):
    """The activation estimate (facefill._memory) against the device's memory, here made 2.5
    images' worth: a batch of 3 is refused, saying 2 fit; a batch of 2 runs."""
    import facefill._memory as memory

    model = create_model("apfi", "small", **TINY)
    per_image = memory.forward_peak_bytes(model, SIZE, grad=False, stride=model.stride)
    monkeypatch.setattr(memory, "device_memory_bytes", lambda device: int(per_image * 2.5))
    out = tmp_path / "out"
    with pytest.raises(EvaluationError, match=(
        r"^--size=32 with --batch-size=3 does not fit in memory: apfi's forward needs [\d.]+ GiB of activations "
        r"per image, [\d.]+ GiB in all, more than the [\d.]+ GiB of cpu memory here; lower --batch-size "
        r"\(at most 2 fits at this size\) or --size$"
    )):
        evaluate(setup["weights"], setup["data"], setup["masks"], out, batch_size=8, device="cpu", precision="fp32")
    assert not out.exists()
    result = evaluate(setup["weights"], setup["data"], setup["masks"], batch_size=2, bins="0.1-0.2", device="cpu",
                      precision="fp32")
    assert result["batch_size"] == 2


def test_generator_output_is_checked(setup):
    with pytest.raises(EvaluationError, match="NaN"):
        evaluate(lambda image, mask: image * float("nan"), setup["data"], setup["masks"])
    with pytest.raises(EvaluationError, match="shape"):
        evaluate(lambda image, mask: image[:, :1], setup["data"], setup["masks"])


def _has_square(hole: np.ndarray, side: int = 8) -> bool:
    h, w = hole.shape
    return any(hole[y : y + side, x : x + side].all() for y in range(h - side + 1) for x in range(w - side + 1))


def test_hole_gradient_and_saturated_blocks_per_bin(tmp_path, setup):
    # Identity fill: the composite is the ground truth, so grad == grad_gt, ratio exactly 1.
    same = evaluate(lambda image, mask: image, setup["data"], setup["masks"], out_dir=tmp_path / "same")
    for row in same["bins"].values():
        assert row["grad"] == row["grad_gt"] > 0 and row["grad_ratio"] == 1.0 and row["saturated"] == 0
    # A white fill on grey faces: flat, so grad_gt is 0 and the ratio undefined (null, "–", "");
    # every image whose hole holds an 8x8 square counts as saturated.
    data = _images(tmp_path / "grey", 3, SIZE, value=100)
    white = evaluate(lambda image, mask: torch.ones_like(image), data, setup["masks"], out_dir=tmp_path / "w")
    entries = load_manifest(setup["masks"])
    for b, row in white["bins"].items():
        files = sorted((e for e in entries if e["bin"] == b), key=lambda e: e["path"])
        holes = [read_mask(files[k]["file"], SIZE)[0].numpy() > 0.5 for k in pair_masks(3, len(files))]
        assert row["saturated"] == sum(_has_square(h) for h in holes)
        assert row["grad_gt"] == 0 and row["grad_ratio"] is None and row["grad"] > 0
    assert sum(row["saturated"] for row in white["bins"].values()) > 0
    saved = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert saved["bins"] == white["bins"]
    md = (tmp_path / "w" / "metrics.md").read_text()
    assert "| grad | grad GT | grad ratio | sat. |" in md and "| – |" in md and "Sobel" in md
    csv_rows = (tmp_path / "w" / "metrics.csv").read_text().splitlines()
    assert csv_rows[0].endswith("hole_ratio,grad,grad_gt,grad_ratio,saturated")
    assert csv_rows[1].split(",")[-2] == ""  # grad_ratio undefined


def test_holdout_evaluates_exactly_the_trainers_validation_images(tmp_path, setup):
    data = _images(tmp_path / "d", 8, SIZE, seed=4)
    (data / "train.txt").write_text("".join(f"{i:03d}\n" for i in range(7)))
    seen = []

    def record(image, mask):
        seen.append(image.clone())
        return image

    result = evaluate(record, data, setup["masks"], split="train", holdout=3, holdout_seed=5, bins="0.1-0.2")
    assert result["data"]["holdout"] == {"count": 3, "seed": 5, "part": "holdout", "of_split": "train"}
    assert result["data"]["images"] == 3 and "held out of train" in result["notes"][0]
    held = carve_holdout([f"{i:03d}" for i in range(7)], 3, seed=5)[1]
    assert ImageFolderDataset(data, SIZE, split="train", holdout=3, holdout_seed=5, part="holdout").ids == held
    val = validation_set(data, SIZE, split="train", holdout=3, holdout_seed=5)
    assert torch.equal(torch.cat(seen), torch.stack([val[i] for i in range(3)]))
    assert evaluate(record, data, setup["masks"], split="train", bins="0.1-0.2")["data"]["holdout"] is None
    with pytest.raises(DatasetError, match="holdout 7 must be less than its 7 images"):
        evaluate(record, data, setup["masks"], split="train", holdout=7)


def test_set_names_are_folder_names_disambiguated_by_the_parent(tmp_path):
    a, b, c = tmp_path / "x" / "faces", tmp_path / "y" / "faces", tmp_path / "celeba"
    assert set_names([c, a]) == ["celeba", "faces"]
    assert set_names([a, b, c]) == ["x_faces", "y_faces", "celeba"]
    with pytest.raises(EvaluationError, match="given twice"):
        set_names([a, tmp_path / "x" / ".." / "x" / "faces"])
    with pytest.raises(EvaluationError, match="would both be written to <out>/x_faces"):
        set_names([a, b, tmp_path / "z" / "x_faces"])


def test_several_sets_are_evaluated_each_on_its_own(tmp_path, setup):
    other = _images(tmp_path / "sets" / "other", 2, SIZE, seed=9)
    out = tmp_path / "out"
    results = evaluate_sets(setup["weights"], [setup["data"], other], setup["masks"], out, batch_size=2, grid_count=1)
    assert list(results) == ["data", "other"]
    alone = evaluate(setup["weights"], other, setup["masks"], batch_size=2, grid_count=1)
    assert results["other"]["bins"] == alone["bins"] and results["data"]["data"]["images"] == 3
    for name in ("data", "other"):
        assert json.loads((out / name / "metrics.json").read_text())["bins"] == results[name]["bins"]
    assert json.loads((out / "sets.json").read_text())["sets"] == {"data": str(setup["data"]), "other": str(other)}
    # a missing folder is found before anything is written
    with pytest.raises(DatasetError, match="nope"):
        evaluate_sets(setup["weights"], [setup["data"], tmp_path / "nope"], setup["masks"], tmp_path / "o2")
    assert not (tmp_path / "o2").exists()


# ----------------------------------------------------------------- the command


def test_cli_writes_tables_json_and_sample_grids(tmp_path, setup):
    out = tmp_path / "out"
    result = runner.invoke(app, [
        "evaluate", "--weights", str(setup["weights"]), "--data", str(setup["data"]),
        "--masks", str(setup["masks"]), "--out", str(out), "--device", "cpu", "--batch-size", "2",
    ])
    assert result.exit_code == 0, result.output
    assert "(0.3, 0.4]" in result.output and "PSNR" in result.output and str(out) in result.output
    names = {p.name for p in out.iterdir()}
    assert names == {"metrics.json", "metrics.md", "metrics.csv"} | {f"samples_{b}.png" for b in PAPER_BINS}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["bins"]) == set(PAPER_BINS)
    assert set(metrics["bins"]["0.1-0.2"]) >= {"psnr", "ssim", "l1", "n"}
    assert metrics["model"]["name"] == "apfi" and metrics["model"]["preset"] == "small"
    assert len(metrics["model"]["weights_sha256"]) == 64
    assert set(metrics["manifest"]) >= {"path", "sha256", "seed"}
    assert metrics["data"]["images"] == 3 and metrics["cycles"] == 2
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("cycles,bin,n,psnr,ssim,l1") and len(csv_lines) == 4
    assert "| bin | n | PSNR (dB) | SSIM | L1 |" in (out / "metrics.md").read_text()
    # grid: 3 rows (images) x 4 columns: masked input | mask | output | ground truth
    grid = np.asarray(Image.open(out / "samples_0.5-0.6.png"))
    assert grid.shape == (3 * SIZE + 2 * 2, 4 * SIZE + 3 * 2, 3)
    mask_tile = grid[:SIZE, SIZE + 2 : 2 * SIZE + 2]
    assert set(np.unique(mask_tile)) <= {0, 255} and mask_tile.max() == 255
    truth = np.asarray(Image.open(setup["data"] / "004.png").convert("RGB"))
    assert np.array_equal(grid[:SIZE, 3 * (SIZE + 2) :], truth)


def test_cli_evaluates_several_sets_and_a_holdout(tmp_path, setup):
    other = _images(tmp_path / "x" / "data", 2, SIZE, seed=9)  # the same folder name as setup's
    (other / "train.txt").write_text("000\n001\n")
    out = tmp_path / "out"
    common = ["--weights", str(setup["weights"]), "--masks", str(setup["masks"]), "--samples", "0", "--bins", "0.1-0.2"]
    result = runner.invoke(app, ["evaluate", *common, "--data", str(setup["data"]), "--data", str(other), "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 and "sets.json" in names and all(n.endswith("_data") for n in names if n != "sets.json")
    for name in names:
        if name != "sets.json":
            assert f"{name}: apfi (small)" in result.output  # one table per set
            assert (out / name / "metrics.csv").is_file()
    assert result.output.count("PSNR") == 2 and result.output.count("Sobel") == 1  # legend once
    held = runner.invoke(app, [
        "evaluate", *common, "--data", str(other), "--split", "train", "--holdout", "1", "--out", str(tmp_path / "h"),
    ])
    assert held.exit_code == 0, held.output
    assert "1 images at 32x32 (held out of train)" in held.output
    metrics = json.loads((tmp_path / "h" / "metrics.json").read_text())
    assert metrics["data"]["holdout"]["count"] == 1 and metrics["data"]["images"] == 1
    twice = runner.invoke(app, ["evaluate", *common, "--data", str(other), "--data", str(other), "--out", str(tmp_path / "t")])
    assert twice.exit_code == 2 and twice.output.strip().splitlines() == [f"error: test set {other} is given twice"]
    assert not (tmp_path / "t").exists()


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, setup):
    root = tmp_path_factory.mktemp("bad")
    foreign = root / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    critic = save_weights(create_model("patchgan", "small"), root / "patchgan.safetensors")
    tampered = root / "masks"
    shutil.copytree(setup["masks"], tampered)
    manifest = json.loads((tampered / "manifest.json").read_text())
    manifest["files"][0]["sha256"] = "0" * 64
    (tampered / "manifest.json").write_text(json.dumps(manifest))
    odd = _images(root / "odd", 2, 40)
    return {"foreign": foreign, "critic": critic, "tampered": tampered, "odd": odd, "root": root}


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing weights", "does not exist"),
        ("foreign weights", "not a facefill weights file"),
        ("critic weights", "not a generator"),
        ("tampered manifest", "the mask set was modified"),
        ("missing data", "dataset folder"),
        ("unknown bin", "available: 0.1-0.2, 0.3-0.4, 0.5-0.6"),
        ("bad cycles", "cycles"),
        ("stride", "not a multiple of 16"),
    ],
)
def test_cli_refuses_bad_input_in_one_line_without_writing(case, message, tmp_path, setup, bad_inputs):
    args = {"--weights": str(setup["weights"]), "--data": str(setup["data"]), "--masks": str(setup["masks"])}
    extra = []
    if case == "missing weights":
        args["--weights"] = str(tmp_path / "nope.safetensors")
    elif case == "foreign weights":
        args["--weights"] = str(bad_inputs["foreign"])
    elif case == "critic weights":
        args["--weights"] = str(bad_inputs["critic"])
    elif case == "tampered manifest":
        args["--masks"] = str(bad_inputs["tampered"])
    elif case == "missing data":
        args["--data"] = str(tmp_path / "nothing")
    elif case == "unknown bin":
        extra = ["--bins", "0.2-0.3"]
    elif case == "bad cycles":
        extra = ["--cycles", "0"]
    elif case == "stride":
        args["--data"] = str(bad_inputs["odd"])
    out = tmp_path / "out"
    cmd = ["evaluate", *[x for kv in args.items() for x in kv], "--out", str(out), *extra]
    result = runner.invoke(app, cmd)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_library_errors_are_typed(tmp_path, setup):
    with pytest.raises(CheckpointError):
        evaluate(tmp_path / "missing.safetensors", setup["data"], setup["masks"])
    with pytest.raises(DatasetError):
        evaluate(setup["weights"], tmp_path / "missing", setup["masks"])
    with pytest.raises(DatasetError, match="val.txt"):
        evaluate(setup["weights"], setup["data"], setup["masks"], split="val")


def test_cli_evaluates_a_classical_method_by_name(tmp_path, setup):
    out = tmp_path / "out"
    result = runner.invoke(app, [
        "evaluate", "--model", "telea", "--data", str(setup["data"]), "--masks", str(setup["masks"]),
        "--out", str(out), "--samples", "0",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["name"] == "telea" and metrics["model"]["weights"] is None
    # the same numbers as the library on the same model
    direct = evaluate(create_model("telea"), setup["data"], setup["masks"], grid_count=0)
    assert metrics["bins"] == direct["bins"]


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "pass --weights FILE"),
        (["--model", "apfi"], "apfi is trained: pass its weights with --weights"),
        (["--model", "nosuch"], "unknown --model 'nosuch'"),
        (["--model", "telea", "--weights", "x.safetensors"], "leave out --weights"),
        (["--model", "gfpgan"], "GFP-GAN needs its pretrained weights"),
    ],
)
def test_cli_model_option_refuses_what_it_cannot_run(args, message, tmp_path, setup, monkeypatch):
    monkeypatch.delenv("FACEFILL_GFPGAN", raising=False)
    out = tmp_path / "out"
    result = runner.invoke(app, [
        "evaluate", *args, "--data", str(setup["data"]), "--masks", str(setup["masks"]), "--out", str(out),
    ])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert not out.exists()
