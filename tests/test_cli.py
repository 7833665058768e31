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
