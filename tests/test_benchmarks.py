"""The benchmark scripts' argument handling (their measurements are run by hand, not here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from facefill import bench

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_cost_measures_a_model_whose_stride_exceeds_the_size_at_its_smallest_size():
    cost = _script("cost")
    args = cost.parse_args(["--quick", "--preset", "paper", "--sizes", "64", "--models", "apfi,pconv", "--reference", ""])
    assert args.sizes_by_model == {"apfi": [64], "pconv": [128]}
    assert args.train_size_by_model == {"apfi": 32, "pconv": 128}
    assert args.size_notes == [
        "pconv: 64 is not a multiple of its stride 128; measured at 128",
        "pconv: 32 is not a multiple of its stride 128; measured at 128",
    ]
    assert cost.measured_sizes(args) == [64, 128]
    assert args.dtypes == {"fp32": None, "bf16": torch.bfloat16}


def test_cost_modes_are_every_precision_in_every_layout_and_compile_only_when_asked():
    cost = _script("cost")
    names = [m.name for m in cost.parse_args(["--quick"]).modes]
    assert names == ["fp32", "fp32_cl", "bf16", "bf16_cl"]
    names = [m.name for m in cost.parse_args(["--quick", "--compile", "--precisions", "fp32"]).modes]
    assert names == ["fp32", "fp32_cl", "fp32_cl_compile"]
    with pytest.raises(SystemExit):
        cost.parse_args(["--quick", "--layouts", "nchw"])


def _quick_cost(tmp_path, *extra):
    import json

    cost = _script("cost")
    assert cost.main(["--quick", "--reference", "", "--out", str(tmp_path), *extra]) == 0
    (path,) = tmp_path.glob("cost-*-quick.json")
    return json.loads(path.read_text()), path.with_suffix(".md").read_text()


def test_cost_quick_runs_end_to_end_with_every_precision_mode_and_the_pair_ratio(tmp_path):
    # PConv small has stride 32: --sizes 16 is measured at 32 and the report says so
    report, md = _quick_cost(tmp_path, "--models", "apfi,lama,pconv", "--sizes", "16,32")
    B = report["settings"]["batch"]
    assert report["settings"]["sizes_by_model"]["pconv"] == [32]
    assert "Note: pconv: 16 is not a multiple of its stride 32; measured at 32." in md
    limits = report["machine"]["cpu_limits"]
    assert set(limits) == {"fp32", "bf16"} and all(e["limit_gflops_per_s"] > 0 for e in limits.values())
    assert report["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    apfi = report["models"]["apfi"]
    for mode in ("fp32", "fp32_cl", "bf16", "bf16_cl"):
        for S in (16, 32):
            assert apfi[f"cpu_{mode}_latency_{S}_ms"] > 0
            assert apfi[f"cpu_{mode}_latency_{S}_b{B}_ms_per_image"] > 0
            frac = apfi[f"cpu_{mode}_frac_of_limit_{S}_b{B}"]
            gflops = apfi[f"cpu_{mode}_gflops_per_s_{S}_b{B}"]
            assert abs(frac - gflops / limits[mode.split("_")[0]]["limit_gflops_per_s"]) < 1e-9
        assert f"| apfi | {mode} |" in md
    ratio = report["pairs"]["apfi/lama"]["32"]["bf16_cl"]
    lama = report["models"]["lama"]
    assert abs(ratio["b1"] - apfi["cpu_bf16_cl_latency_32_ms"] / lama["cpu_bf16_cl_latency_32_ms"]) < 1e-9
    assert "Latency apfi/lama, same mode" in md and "params (M) | GFLOP/img" in md
    if not torch.cuda.is_available():
        assert "CUDA is not available" in report["gpu"]["skipped"]


def test_cost_compile_that_fails_is_reported_as_not_available(tmp_path, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("inductor exploded\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    report, md = _quick_cost(tmp_path, "--models", "apfi", "--precisions", "fp32", "--layouts", "channels_last", "--compile")
    apfi = report["models"]["apfi"]
    assert apfi["cpu_fp32_cl_compile_32_na"] == "n/a: RuntimeError: inductor exploded"
    assert apfi["cpu_fp32_cl_latency_32_ms"] > 0  # the other modes still ran
    assert "| apfi | fp32_cl_compile | n/a: RuntimeError: inductor exploded |" in md


def test_cost_gpu_section_runs_the_same_modes_on_whatever_device_it_is_given():
    # the CUDA-only parts (device name, peak memory) are skipped off CUDA; the modes, limits,
    # pairs and the table are the same code the GPU runs
    cost = _script("cost")
    args = cost.parse_args(["--quick", "--models", "apfi,lama", "--reference", "", "--gpu-precisions", "fp32"])
    section = cost.measure_device(args.model_names, args, torch.device("cpu"))
    assert section["mode_list"] == ["fp32", "fp32_cl"]
    assert section["models"]["apfi"]["gpu_fp32_cl_latency_32_ms"] > 0
    assert section["models"]["apfi"]["gpu_best_32_b2"] in ("fp32", "fp32_cl")
    assert set(section["pairs"]["apfi/lama"]["32"]) == {"fp32", "fp32_cl"}
    result = {"machine": {**bench.machine_info(), "cpu_limits": {}}, "models": {}, "pairs": {}, "gpu": section,
              "date": "today", "command": "python benchmarks/cost.py"}
    md = cost.markdown(result, args)
    assert "### 32x32, GPU" in md and "| apfi | fp32_cl |" in md.split("## GPU")[1]


def test_cost_refuses_an_unknown_precision(capsys):
    cost = _script("cost")
    with pytest.raises(SystemExit):
        cost.parse_args(["--quick", "--precisions", "fp32,nosuch"])
    assert "precision must be one of" in capsys.readouterr().err


def test_the_reports_say_whether_bf16_is_native(monkeypatch):
    monkeypatch.setenv("FACEFILL_NATIVE_BF16", "1")
    assert bench.cpu_bf16_statement().startswith("this CPU computes bf16 natively")
    monkeypatch.setenv("FACEFILL_NATIVE_BF16", "0")
    info = bench.machine_info()
    assert info["cpu_native_bf16"] is False and "emulates" in info["cpu_bf16"]
    assert "FACEFILL_NATIVE_BF16" in info["cpu_bf16"]


def test_committed_results_record_no_absolute_paths():
    import json as _json
    import re
    from pathlib import Path as _Path

    def strings(x):
        if isinstance(x, dict):
            for v in x.values():
                yield from strings(v)
        elif isinstance(x, list):
            for v in x:
                yield from strings(v)
        elif isinstance(x, str):
            yield x

    results = _Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    for f in sorted(results.glob("*.json")):
        machine_path = re.compile(r"(?:^|[\s'\"\[=])/[\w.-]+/")  # /work/..., '/tmp/x', root=/data/...
        absolute = [s for s in strings(_json.loads(f.read_text())) if machine_path.search(s)]
        assert absolute == [], f"{f.name} records machine paths: {absolute[:3]}"


def test_photo_latency_quick_splits_the_call_into_the_network_and_the_overhead(tmp_path):
    import json

    import facefill.photo.inpainter as front

    photo_latency = _script("photo_latency")
    before = front.run_generator
    assert photo_latency.main(["--quick", "--out", str(tmp_path)]) == 0
    assert front.run_generator is before, "the timing wrappers must be removed"
    (report,) = [json.loads(p.read_text()) for p in tmp_path.glob("photo-latency-*-quick.json")]
    med = report["median_ms"]
    assert report["mode"] == "face" and report["faces"] == 1
    assert med["network"] > 0 and med["detection"] > 0 and med["blend"] > 0 and report["blend"] == "poisson"
    total, network, overhead = (report["samples_ms"][k] for k in ("total", "network", "overhead"))
    assert all(abs(t - n - o) < 1e-2 for t, n, o in zip(total, network, overhead))


def test_onnx_speed_quick_measures_each_variant_against_pytorch_fp32(tmp_path):
    import json

    pytest.importorskip("onnxruntime")
    onnx_speed = _script("onnx_speed")
    assert onnx_speed.main(["--quick", "--out", str(tmp_path)]) == 0
    (report,) = [json.loads(p.read_text()) for p in tmp_path.glob("onnx-*-quick.json")]
    assert report["weights"].startswith("the bundled demo weights")
    acc = report["accuracy_vs_pytorch_fp32"]
    assert acc["onnxruntime-fp32"]["max_abs_diff"] < 1e-4
    for variant in ("onnxruntime-int8-dynamic", "onnxruntime-fp16"):  # built here, or said why not
        name = variant.removeprefix("onnxruntime-")
        assert variant in acc or report["not_available"][name].startswith("n/a: ")
    for a in acc.values():  # outside the hole every variant copies the known pixels
        assert a["psnr_hole_db"] <= a["psnr_db"]
    assert report["not_available"]["bf16"].startswith("n/a: ")


def test_profile_apfi_splits_the_forward_into_the_networks_parts(tmp_path):
    import json

    profile = _script("profile_apfi")
    argv = ["--preset", "small", "--sizes", "32", "--batches", "1,3", "--repeats", "1", "--warmup", "0",
            "--out", str(tmp_path)]
    assert profile.main(argv) == 0
    (report,) = [json.loads(p.read_text()) for p in tmp_path.glob("apfi-profile-*.json")]
    one, three = report["runs"]
    assert (one["batch"], three["batch"]) == (1, 3)
    parts = one["parts"]
    cycles = 6  # the small preset's default
    assert parts["KCA (scores, softmax, blend, 1x1)"]["calls"] == cycles
    assert parts["area identification: depthwise 7x7 partial conv"]["calls"] == 2 * cycles
    assert parts["input layer: 7x7 partial conv"]["calls"] == 1
    assert parts["decoders: 4x4 transposed convs"]["calls"] == 3 * cycles + 4
    assert 0 <= one["glue_ms"] < one["profiled_ms"]
    assert sum(p["ms"] for p in parts.values()) <= one["profiled_ms"] + 1e-6
    assert "| glue |" in next(tmp_path.glob("apfi-profile-*.md")).read_text()


def test_quality_records_an_ablation_row_with_its_cycles_at_inference_and_reuses_the_run(tmp_path, faces, capsys):
    quality = _script("quality")
    config = tmp_path / "tiny_shared.yaml"  # a shared recipe small enough to train in seconds
    config.write_text(
        "model: {generator: apfi, preset: small, generator_args: {width: 8, reasoning: [8, 16, 16],"
        " unet: [8, 16, 16], cycles: 2}, discriminator: patchgan, discriminator_preset: small,"
        " discriminator_args: {width: 8}}\n"
        "data: {root: unused, size: 32, workers: 0, val_count: 0}\n"
        "loss: {recipe: apfi, vgg_weights: random, resize: null}\n"
        "train: {batch_size: 2, iterations: 2, device: cpu, amp: fp32, log_every: 1, image_every: 0, val_every: 0}\n"
    )
    argv = ["--model", "apfi", "--recipe", "shared", "--config", str(config), "--variant", "kca=false",
            "--no-critic", "--eval-cycles", "1-3", "--steps", "2", "--batch", "2", "--size", "32",
            "--data", str(faces), "--workdir", str(tmp_path / "runs"), "--masks-dir", str(tmp_path / "masks"),
            "--out", str(tmp_path / "results")]
    quality.main(argv)
    (path,) = (tmp_path / "results/study").glob("*.json")
    row = json.loads(path.read_text())
    assert row["preset"] == "small[kca=false]"
    assert row["recipe"] == "shared-tiny_shared-nocritic: apfi"  # the config's name, and no critic
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.endswith("-shared-tiny_shared-nocritic-kca=false")
    assert row["commit"] == (run / "apfi/commit.txt").read_text().strip()
    assert sorted(row["inference_cycles"][faces.name], key=int) == ["1", "2", "3"]
    assert row["trained_cycles"] == 2
    md = (tmp_path / "results/study.md").read_text()
    assert "| apfi (small[kca=false]) | shared-tiny_shared-nocritic: apfi |" in md
    assert "Cycles at inference: apfi (small[kca=false])" in md and "| 2 * |" in md
    seconds = row["train_seconds"]
    assert "training 2 steps" in capsys.readouterr().out
    quality.main(argv)  # the finished run is evaluated again, not trained again
    assert json.loads(path.read_text())["train_seconds"] == seconds
    assert "a finished run of 2 steps" in capsys.readouterr().out
    # The same weights with Poisson-blended fills: a row of its own, from the same run.
    quality.main(argv + ["--blend", "poisson"])
    assert "a finished run of 2 steps" in capsys.readouterr().out
    (blended,) = [p for p in (tmp_path / "results/study").glob("*.json") if p != path]
    brow = json.loads(blended.read_text())
    assert brow["recipe"] == "shared-tiny_shared-nocritic+poisson: apfi" and brow["train_seconds"] == seconds
    assert brow["bins"] != row["bins"] and (run / "apfi/eval-poisson" / faces.name / "metrics.json").is_file()
    assert json.loads((run / "apfi/eval-poisson" / faces.name / "metrics.json").read_text())["blend"] == "poisson"


@pytest.mark.parametrize("extra,message", [
    (["--variant", "no_such_arg=1"], "unknown argument(s) no_such_arg"),
    (["--variant", "kca"], "expected KEY=VALUE"),
    (["--model", "telea", "--no-critic"], "telea is not trained"),
    (["--model", "telea", "--blend", "poisson"], "--blend do not apply"),
    (["--eval-cycles", "0-2"], "cycles"),
])
def test_quality_refuses_a_bad_ablation_before_training(tmp_path, faces, capsys, extra, message):
    quality = _script("quality")
    argv = ["--model", "apfi", "--data", str(faces), "--workdir", str(tmp_path / "runs"),
            "--masks-dir", str(tmp_path / "masks"), "--out", str(tmp_path / "results"), *extra]
    if "--model" in extra:
        argv = argv[2:]
    with pytest.raises(SystemExit) as exit_:
        quality.main(argv)
    assert exit_.value.code != 0
    assert message in capsys.readouterr().err + str(exit_.value.code)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "masks").exists()


def test_quality_judges_a_second_training_seed_on_the_first_seeds_masks(tmp_path, faces):
    quality = _script("quality")
    argv = ["--model", "telea", "--size", "32", "--data", str(faces), "--workdir", str(tmp_path / "runs"),
            "--masks-dir", str(tmp_path / "masks"), "--out", str(tmp_path / "results")]
    quality.main(argv + ["--seed", "3"])  # a training seed: the evaluation masks stay seed 0's
    (row,) = [json.loads(p.read_text()) for p in (tmp_path / "results/study").glob("*.json")]
    assert row["seed"] == 3 and row["masks"].startswith("32px-seed0-")
    quality.main(argv + ["--mask-seed", "2"])  # another mask set only when asked for
    assert sorted(p.name.split("-n")[0] for p in (tmp_path / "masks").iterdir()) == ["32px-seed0", "32px-seed2"]


def test_depthwise_grad_times_both_paths_for_both_presets_and_precisions(tmp_path):
    _script("depthwise_grad").main(["--repeats", "1", "--out", str(tmp_path)])
    (path,) = tmp_path.glob("depthwise-grad-*.json")
    runs = json.loads(path.read_text())["runs"]
    assert [(r["channels"], r["dtype"]) for r in runs] == [(32, "float32"), (32, "bfloat16"), (64, "float32"), (64, "bfloat16")]
    for r in runs:
        assert r["speedup"] == pytest.approx(r["onednn_fwd_bwd_ms"] / r["facefill_fwd_bwd_ms"])
    assert "| APFI paper, 256 px, batch 6 (6, 64, 128, 128) | bfloat16 |" in next(tmp_path.glob("depthwise-grad-*.md")).read_text()


def test_style_gram_times_both_paths_and_reports_precision_against_float64(tmp_path):
    _script("style_gram").main(
        ["--repeats", "1", "--batch", "1", "--images", "2", "--vgg", "", "--data", str(tmp_path / "none"), "--out", str(tmp_path)]
    )
    (path,) = tmp_path.glob("style-gram-*.json")
    report = json.loads(path.read_text())
    assert [r["dtype"] for r in report["time"]] == ["float32", "bfloat16"]
    assert report["features"] == "random VGG16 weights, random images"
    assert len(report["precision"]) == 6  # two fills x three taps
    for row in report["precision"]:
        assert abs(row["gram_difference_rel_error"]) < 1e-3 and abs(row["two_grams_rel_error"]) < 1e-5
    assert "| close fill | relu3_3 |" in next(tmp_path.glob("style-gram-*.md")).read_text()


def _tiny_train_config(tmp_path, faces):
    """A training config small enough for a test: a narrow APFI and critic at 32 px, random VGG."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "model: {generator: apfi, preset: small, generator_args: {width: 8, reasoning: [8, 16, 16],"
        " unet: [8, 16, 16], cycles: 2}, discriminator: patchgan, discriminator_preset: small,"
        " discriminator_args: {width: 8}}\n"
        f"data: {{root: {faces}, size: 32, workers: 0, val_count: 0}}\n"
        "loss: {vgg_weights: random, resize: null}\n"
        "train: {batch_size: 2, iterations: 10, device: cpu}\n"
    )
    return config


def test_train_throughput_interleaves_the_precisions_step_by_step(tmp_path, faces, monkeypatch):
    throughput = _script("train_throughput")
    assert throughput.round_order(["a", "b"], 0) == ["a", "b"]
    assert throughput.round_order(["a", "b"], 1) == ["b", "a"]  # ABBA: each goes first once in two rounds
    config = _tiny_train_config(tmp_path, faces)
    order = []
    step = throughput._Run.step
    monkeypatch.setattr(throughput._Run, "step", lambda self, timed: (order.append((self.precision, timed)), step(self, timed)))
    argv = ["--configs", str(config), "--precisions", "fp32,fp32", "--steps", "2", "--warmup", "1",
            "--loader-batches", "1", "--out", str(tmp_path / "out")]
    throughput.main(argv)
    assert [t for _, t in order] == [False, False, True, True, True, True]
    (path,) = (tmp_path / "out").glob("train-*.json")
    runs = json.loads(path.read_text())["runs"]
    assert [r["order"] for r in runs] == ["interleaved", "interleaved"]
    assert all(len(r["step_s"]) == r["timed_steps"] == 2 for r in runs)
    assert runs[0]["step_s_median"] == pytest.approx(sum(runs[0]["step_s"]) / 2)
    order.clear()
    throughput.main(argv + ["--sequential"])
    runs = json.loads(path.read_text())["runs"]
    assert [r["order"] for r in runs] == ["sequential", "sequential"] and len(order) == 6


def test_train_throughput_profiles_each_precision_after_the_timed_steps(tmp_path, faces, monkeypatch):
    throughput = _script("train_throughput")
    config = _tiny_train_config(tmp_path, faces)
    order = []
    step = throughput._Run.step
    monkeypatch.setattr(throughput._Run, "step", lambda self, timed: (order.append((self.precision, timed)), step(self, timed)))
    throughput.main(["--configs", str(config), "--precisions", "fp32,bf16", "--steps", "2", "--warmup", "0",
                     "--loader-batches", "1", "--profile-steps", "2", "--out", str(tmp_path / "out")])
    # the two timed rounds first, then two profiled steps of each run, untimed
    assert order[:4] == [("fp32", True), ("bf16", True), ("bf16", True), ("fp32", True)]
    assert order[4:] == [("fp32", False)] * 2 + [("bf16", False)] * 2
    (path,) = (tmp_path / "out").glob("train-*.json")
    runs = json.loads(path.read_text())["runs"]
    assert all(len(r["step_s"]) == 2 for r in runs)  # the profiled steps are not in the timing
    for r in runs:
        profile = r["profile_ms_per_step"]
        assert any("conv" in name for name in profile) and all(ms >= 0 for ms in profile.values())
        assert list(profile.values()) == sorted(profile.values(), reverse=True)
    md = next((tmp_path / "out").glob("train-*.md")).read_text()
    table = md.split("## Where a step's time goes: ")[1].splitlines()
    rows = [line.split(" | ") for line in table if line.startswith("| ") and not line.startswith("| operator")]
    total = next(r for r in rows if r[0] == "| **total**")
    assert float(total[1]) == pytest.approx(sum(runs[0]["profile_ms_per_step"].values()), abs=0.06)
    assert float(total[2]) == pytest.approx(sum(runs[1]["profile_ms_per_step"].values()), abs=0.06)
    assert len(rows) == min(15, len(set(runs[0]["profile_ms_per_step"]) | set(runs[1]["profile_ms_per_step"]))) + 2
