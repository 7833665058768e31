import json

import pytest
from typer.testing import CliRunner

from facefill import list_models
from facefill.cli import app
from facefill.cost import count_cost

runner = CliRunner()


def test_rfr_count_matches_the_official_layers():
    rfr = count_cost("rfr", "paper", 256)
    assert abs(rfr.params - 31.2e6) < 0.05e6
    assert abs(rfr.flops - 256e9) < 1e9
    recurrent = next(p for p in rfr.parts if p.name == "recurrent")
    assert recurrent.calls == 6


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_is_counted_and_its_parts_add_up(name):
    # critics with their own call (sn_patchgan needs the mask, edgeconnect_d which critic)
    # and generators with data-dependent work (EdgeConnect's Canny, counted on the CPU)
    cost = count_cost(name, "small", 64)
    assert cost.params == sum(p.params for p in cost.parts) or not cost.parts
    assert cost.flops >= sum(p.flops for p in cost.parts)
    assert (cost.flops > 0) == (name not in ("telea", "ns"))


def test_edgeconnect_counts_both_generators_alike_and_the_critic_pair():
    g = {p.name: p for p in count_cost("edgeconnect", "paper", 256).parts}
    # the two generators are one architecture; G2 reads one input channel more
    assert 0.95 < g["edge_generator"].flops / g["image_generator"].flops <= 1.0
    d = {p.name: p for p in count_cost("edgeconnect_d", "paper", 256).parts}
    assert d["edge"].calls == d["image"].calls == 1


def test_info_reports_parts_and_meets_the_cost_targets():
    result = runner.invoke(app, ["info", "apfi", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    parts = {p["name"]: p for p in info["parts"]}
    assert list(parts) == ["input_layer", "apfi", "merge", "unet"]
    assert parts["apfi"]["calls"] == 6
    assert abs(sum(p["gflops"] for p in parts.values()) - info["gflops"]) < 1e-6
    assert abs(sum(p["params"] for p in parts.values()) - info["params"]) == 0
    assert info["against"]["model"] == "rfr"
    assert info["flops_ratio"] <= 0.5
    assert info["params_ratio"] <= 1 / 3


def test_info_table_and_cycles_scale_the_module_cost():
    result = runner.invoke(app, ["info", "apfi", "--preset", "small", "--size", "128"])
    assert result.exit_code == 0, result.output
    assert "apfi (small) at 128x128" in result.output and "rfr (paper)" in result.output
    six = count_cost("apfi", "small", 128)
    three = count_cost("apfi", "small", 128, cycles=3)
    per_cycle = next(p for p in six.parts if p.name == "apfi").flops_per_call
    assert abs((six.flops - three.flops) - 3 * per_cycle) < 1


def test_info_refuses_bad_arguments_in_one_line():
    for args, message in [
        (["info", "nope"], "unknown model 'nope'"),
        (["info", "apfi", "--preset", "huge"], "unknown preset 'huge'"),
        (["info", "apfi", "--size", "100"], "multiple of 16"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert message in result.output
        assert "Traceback" not in result.output


def test_models_lists_registry():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    for name in ("apfi", "rfr", "patchgan"):
        assert name in result.output


def test_catalog_lists_what_the_registry_holds():
    from facefill._catalog import CATALOG
    from facefill.models import model_entry

    assert [e.name for e in CATALOG] == list_models()
    for e in CATALOG:
        entry = model_entry(e.name)
        assert (e.kind, e.presets, e.summary) == (entry.kind, tuple(entry.presets), entry.summary), e.name


def test_lazy_commands_list_their_own_first_help_line():
    from facefill.cli import LAZY_COMMANDS, load_command

    for name, (_, _, short) in LAZY_COMMANDS.items():
        command = load_command(name)
        first_paragraph = " ".join((command.help or "").strip().split("\n\n")[0].split())
        assert first_paragraph == short, name
    masks = runner.invoke(app, ["masks", "--help"]).output
    assert "generate" in masks and "verify" in masks and "load" not in masks


def test_help_and_models_start_without_torch_gradio_or_opencv():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from facefill.cli import app\n"
        "for args in (['--help'], ['models']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "print(sorted(m for m in ('torch', 'gradio', 'cv2', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert "apfi" in out and "evaluate" in out


def test_error_boundary_turns_os_errors_into_one_line(tmp_path):
    import errno

    import typer

    from facefill._console import describe_os_error, error_boundary

    assert describe_os_error(OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".a.png.x1.tmp"))) == (
        f"cannot write in {tmp_path}: read-only file system; choose a folder you can write to"
    )
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/x/y")).startswith("/x/y: no space left")

    @error_boundary
    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out.png")

    with pytest.raises(typer.Exit) as e:
        full()
    assert e.value.exit_code == 2


@pytest.fixture
def cycle_count(monkeypatch) -> list[int]:
    """Calls of the APFI module, one per cycle, while a test runs; not those of the memory
    estimate's shapes-only pass on the meta device (facefill._memory), which computes nothing."""
    from facefill.models.apfi import APFIModule

    calls: list[int] = []
    forward = APFIModule.forward

    def counted(self, x, *a, **k):
        if x.device.type != "meta":
            calls.append(1)
        return forward(self, x, *a, **k)

    monkeypatch.setattr(APFIModule, "forward", counted)
    return calls


@pytest.mark.parametrize("cycles", [1, 3])
def test_inpaint_and_evaluate_run_exactly_the_cycles_asked_for(tmp_path, faces, cycle_count, cycles):
    import numpy as np
    from PIL import Image

    from facefill import create_model
    from facefill.checkpoint import save_weights
    from facefill.masks import generate_binned_masks

    model = create_model("apfi", preset="small", width=8, reasoning=(8, 16, 16), unet=(8, 16, 16), cycles=2)
    weights = save_weights(model, tmp_path / "w.safetensors", extra={"train_config": {"data": {"size": 48}}})
    hole = np.zeros((48, 48), np.uint8)
    hole[10:30, 10:30] = 255
    Image.fromarray(hole).save(tmp_path / "hole.png")
    face = sorted(faces.glob("*.png"))[0]
    result = runner.invoke(app, ["inpaint", str(face), "--mask", str(tmp_path / "hole.png"), "-o", str(tmp_path / "o.png"),
                                 "-w", str(weights), "--aligned", "--device", "cpu", "--cycles", str(cycles)])
    assert result.exit_code == 0, result.output
    assert len(cycle_count) == cycles  # one image, one forward pass, not the model's default 2
    generate_binned_masks(tmp_path / "masks", 48, 1, 0, "0.1-0.2")
    cycle_count.clear()
    result = runner.invoke(app, ["evaluate", "-w", str(weights), "-d", str(faces), "-m", str(tmp_path / "masks"),
                                 "-o", str(tmp_path / "ev"), "--cycles", str(cycles), "--samples", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(cycle_count) == cycles  # the two test images in one batch
