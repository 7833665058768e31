import importlib.util
import sys

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import facefill
from facefill.checkpoint import save_weights
from facefill.cli import app
from facefill.errors import InputError
from facefill.export import ExportError, export_onnx, require_onnx

from helpers import square_mask

runner = CliRunner()
needs_ort = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnx/onnxruntime not installed (pip install 'facefill[export]')",
)
SIZE = 64
TINY = {
    "apfi": {"width": 16, "reasoning": (16, 32, 48), "unet": (32, 48, 64), "cycles": 2},
    "rfr": {"width": 8, "cycles": 2},
    "apfi-mirror": {"width": 16, "reasoning": (16, 32, 48), "unet": (32, 48, 64), "cycles": 2, "mirror": True},
}


def _trained_looking(name: str) -> torch.nn.Module:
    """A tiny generator whose BatchNorm statistics are not the defaults (as after training)."""
    g = facefill.create_model(name.split("-")[0], "small", **TINY[name])
    g.train()
    with torch.no_grad():
        for _ in range(2):
            g(torch.rand(2, 3, SIZE, SIZE), square_mask(SIZE, 16, 8, 24, batch=2))
    return g.eval()


def _run_onnx(path, image, mask):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["output"], {"image": image.numpy(), "mask": mask.numpy()})[0])


@needs_ort
@pytest.mark.parametrize("name", ["apfi", "rfr", "apfi-mirror"])
def test_onnx_matches_pytorch_and_keeps_known_pixels(name, tmp_path):
    g = _trained_looking(name).train()
    result = export_onnx(g, tmp_path / f"{name}.onnx", size=SIZE, cycles=1)  # exports in eval mode
    assert g.training  # and gives the model back as it was
    g.eval()
    assert result.max_abs_diff <= 1e-4 and result.cycles == 1 and result.path.is_file()
    # Independent inputs, batch 3 (the batch dimension is dynamic), a hole the export never saw.
    image = torch.rand(3, 3, SIZE, SIZE)
    mask = torch.zeros(3, 1, SIZE, SIZE)
    mask[0, :, 8:40, 8:56] = 1
    mask[1, :, 30:64, 0:20] = 1
    mask[2] = (torch.rand(1, SIZE, SIZE) > 0.7).float()
    got = _run_onnx(result.path, image, mask)
    with torch.no_grad():
        expected = g(image, mask, cycles=1)
        default_cycles = g(image, mask)
    assert (got - expected).abs().max().item() <= 1e-4
    assert (got - default_cycles).abs().max().item() > 1e-4  # cycles=1 was baked in, not 2
    known = mask.expand_as(image) == 0
    assert torch.equal(got[known], image[known])  # bit-identical, not just close


def test_bad_arguments_are_refused_before_exporting(tmp_path):
    g = facefill.create_model("rfr", "small", **TINY["rfr"])
    for kwargs, message in [
        ({"size": 72}, "multiple of 16"),
        ({"size": 64, "opset": 9}, "opset must be between"),
        ({"size": 64, "cycles": 0}, "cycles must be >= 1"),
    ]:
        with pytest.raises(InputError, match=message):
            export_onnx(g, tmp_path / "x.onnx", **kwargs)
    with pytest.raises(InputError, match="facefill generator"):
        export_onnx(facefill.create_model("patchgan", "small"), tmp_path / "x.onnx", size=64)
    assert not (tmp_path / "x.onnx").exists()


@needs_ort
def test_failed_verification_leaves_the_previous_file(tmp_path):
    g = facefill.create_model("rfr", "small", width=8, cycles=1).eval()
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(g, target, size=SIZE, atol=-1.0)  # no difference can pass
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary left behind


@needs_ort
def test_cli_exports_weights_file(tmp_path):
    g = facefill.create_model("apfi", "small", **{**TINY["apfi"], "cycles": 1})
    weights = save_weights(g, tmp_path / "apfi_small.safetensors")
    out = tmp_path / "out" / "apfi.onnx"
    result = runner.invoke(app, ["export", "--weights", str(weights), "--format", "onnx", "-o", str(out), "--size", "64"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "max abs diff" in result.output and "1 cycle," in result.output
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["facefill.model"] == "apfi" and meta["facefill.mask"] == "1 = hole"


def test_cli_refuses_files_that_are_not_facefill_weights(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    critic = save_weights(facefill.create_model("patchgan", "small"), tmp_path / "patchgan.safetensors")
    cases = [
        (foreign, "not a facefill weights file"),
        (garbage, "not a safetensors weights file"),
        (tmp_path / "missing.safetensors", "does not exist"),
        (critic, "only generators can be exported"),
    ]
    for path, message in cases:
        result = runner.invoke(app, ["export", "--weights", str(path), "-o", str(tmp_path / "x.onnx")])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["export", "--weights", str(critic), "-o", "x.onnx", "--format", "tflite"])
    assert result.exit_code == 2 and "supported: onnx" in result.output
    assert not (tmp_path / "x.onnx").exists()


def test_missing_onnxruntime_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(ExportError, match=r'pip install "facefill\[export\]"'):
        require_onnx()
    weights = save_weights(facefill.create_model("rfr", "small", width=8), tmp_path / "rfr.safetensors")
    result = runner.invoke(app, ["export", "--weights", str(weights), "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2
    assert 'pip install "facefill[export]"' in result.output
    assert len(result.output.strip().splitlines()) == 1
