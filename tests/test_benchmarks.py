"""The benchmark scripts' argument handling (their measurements are run by hand, not here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from facefill import bench

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cost_quick_measures_a_model_whose_stride_exceeds_the_size_at_its_smallest_size():
    cost = _script("cost")
    args = cost.parse_args(["--quick", "--models", "apfi,pconv", "--reference", ""])
    assert args.sizes_by_model == {"apfi": [64], "pconv": [128]}
    assert args.train_size_by_model == {"apfi": 64, "pconv": 128}
    assert args.size_notes == ["pconv: 64 is not a multiple of its stride 128; measured at 128"]
    assert cost.measured_sizes(args) == [64, 128]
    assert args.dtypes == {"fp32": None, "bf16": torch.bfloat16}


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
    assert med["network"] > 0 and med["detection"] > 0
    total, network, overhead = (report["samples_ms"][k] for k in ("total", "network", "overhead"))
    assert all(abs(t - n - o) < 1e-2 for t, n, o in zip(total, network, overhead))
