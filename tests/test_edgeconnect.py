"""EdgeConnect: Canny in torch, the two generators and two critics, the joint recipe."""

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from facefill import InputError, create_model
from facefill.config import load_config
from facefill.edges import canny, rgb_to_gray
from facefill.recipes.edgeconnect import EDGECONNECT_WEIGHTS, EdgeConnectRecipe
from facefill.train import Trainer
from facefill.vgg import VGG16Features

from helpers import square_mask

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "edgeconnect_faces_cpu.yaml"


def _smooth(size=48, seed=0, channels=3):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, channels, 5, 5, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


# -- Canny -------------------------------------------------------------------------------


def test_vertical_step_gives_one_thin_line_at_the_step_and_constant_gives_none():
    step = torch.zeros(2, 1, 32, 32)
    step[..., 16:] = 1.0
    edges = canny(step)
    assert edges.dtype == torch.float32 and set(edges.unique().tolist()) <= {0.0, 1.0}
    rows = edges[0, 0, 1:-1]  # the image border is never an edge (eroded, as scikit-image)
    assert rows.sum(1).tolist() == [1.0] * 30  # one pixel per row ...
    assert set(rows.nonzero()[:, 1].tolist()) == {15}  # ... all on the step
    assert edges[0, 0, 0].sum() == 0 and edges[0, 0, -1].sum() == 0
    assert torch.equal(canny(step.transpose(2, 3)), edges.transpose(2, 3))  # rotation-consistent
    assert canny(torch.full((1, 1, 32, 32), 0.37)).sum() == 0
    # A faint step (magnitude below the low threshold) gives nothing; sigma 2 smooths a
    # unit step to a Sobel peak of ~1.6, so 0.05 contrast (~0.08) is under low = 0.1.
    assert canny(step * 0.05).sum() == 0


def test_hysteresis_keeps_weak_pixels_only_when_connected_to_strong_ones():
    # A ramp-contrast step: contrast rises along the rows, so the edge is weak at the top.
    x = torch.zeros(1, 1, 40, 40)
    contrast = torch.linspace(0.04, 0.3, 40).view(40, 1)
    x[0, 0, :, 20:] = contrast
    full = canny(x)[0, 0].amax(1).bool()  # rows holding an edge
    # Magnitudes are ~8 * contrast / (sqrt(2 pi) sigma) = 1.6 * contrast: weak (>= 0.1) from
    # contrast ~0.065, strong (>= 0.2) from ~0.13: the weak part survives through hysteresis.
    strong_only = canny(x, low=0.2, high=0.2)[0, 0].amax(1).bool()
    assert full.sum() > strong_only.sum() > 0
    assert (full | strong_only).equal(full)
    assert not full[:4].any()  # below the low threshold: never an edge
    # With no strong pixel at all (peak magnitude ~0.19 < high), weak pixels do not survive.
    assert canny(x * 0.4).sum() == 0 and canny(x * 0.4, high=0.1).sum() > 0


def test_canny_ignores_unknown_pixels_and_keeps_edges_on_the_eroded_known_region():
    gray = _smooth(48, 1, channels=1)
    gray[..., :, 24:] += 0.5
    valid = 1 - square_mask(48, 10, 12, 20)
    a = canny(gray.clamp(0, 1), valid)
    other = torch.where(valid.bool(), gray, torch.rand(1, 1, 48, 48))
    assert torch.equal(a, canny(other.clamp(0, 1), valid))
    eroded = -torch.nn.functional.max_pool2d(-valid, 3, 1, 1)
    assert a.sum() > 0 and (a * (1 - eroded)).sum() == 0
    # Without the mask the hole's random content does create edges inside it.
    assert (canny(other.clamp(0, 1)) * (1 - valid)).sum() > 0


def test_canny_agrees_with_opencv_on_a_shape_image():
    img = np.zeros((64, 64), np.uint8)
    cv2.rectangle(img, (10, 12), (44, 50), 200, -1)
    cv2.circle(img, (42, 20), 11, 90, -1)
    cv2.line(img, (5, 58), (58, 40), 255, 2)
    ours = canny(torch.from_numpy(img).float().div(255)[None, None], sigma=1.0)[0, 0].numpy() > 0
    ref = cv2.Canny(img, 50, 100, L2gradient=True) > 0
    near = lambda m: cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # noqa: E731
    assert ref.sum() > 150
    assert (ref & near(ours)).sum() / ref.sum() >= 0.9  # cv2's edges found by ours within 1 px
    assert (ours & near(ref)).sum() / ours.sum() >= 0.9  # and ours are cv2's


def test_canny_refuses_bad_inputs():
    with pytest.raises(InputError, match="gray must be"):
        canny(torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError, match="valid must have"):
        canny(torch.rand(1, 1, 8, 8), torch.ones(1, 1, 4, 4))
    with pytest.raises(InputError, match="low <= high"):
        canny(torch.rand(1, 1, 8, 8), low=0.3, high=0.2)


# -- generator and critics ---------------------------------------------------------------


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_paper_presets_parameter_counts_and_structure():
    with torch.device("meta"):
        g, d = create_model("edgeconnect", "paper"), create_model("edgeconnect_d", "paper")
    # Published: ~10.8 M per generator, ~22 M for the pair (SPEC §6).
    assert round(_count(g.edge_generator) / 1e6, 2) == 10.76
    assert round(_count(g.image_generator) / 1e6, 2) == 10.77
    assert round(_count(g) / 1e6, 2) == 21.53
    assert round(_count(d.edge) / 1e6, 2) == 2.76 and round(_count(d.image) / 1e6, 2) == 2.76
    assert g.stride == 4 and len(g.edge_generator.blocks) == 8
    convs = lambda net: [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]  # noqa: E731
    sn = lambda m: hasattr(m, "parametrizations")  # noqa: E731
    e_convs, i_convs = convs(g.edge_generator), convs(g.image_generator)
    assert [sn(m) for m in e_convs] == [True] * (len(e_convs) - 1) + [False]  # all but the last
    assert not any(sn(m) for m in i_convs)
    assert e_convs[0].in_channels == 3 and i_convs[0].in_channels == 4
    assert e_convs[0].kernel_size == (7, 7) and e_convs[-1].out_channels == 1 and i_convs[-1].out_channels == 3
    assert g.edge_generator.blocks[0].body[1].dilation == (2, 2)
    assert all(sn(m) for m in convs(d))
    assert d.edge.layers[0][0].in_channels == 2 and d.image.layers[0][0].in_channels == 3


def test_parts_edges_are_masked_canny_and_g2_sees_g1_in_the_hole_only():
    torch.manual_seed(0)
    g = create_model("edgeconnect", "small", width=4, blocks=1)
    image, mask = _smooth(32, 2), square_mask(32, 8, 6, 14)
    parts = g(image, mask, return_parts=True)
    assert set(parts) == {"raw", "output", "edges", "edges_in", "edges_merged", "gray"}
    hole = mask.bool()
    gray = rgb_to_gray(image.masked_fill(hole, 0))
    assert torch.equal(parts["edges_in"], canny(gray, 1 - mask, sigma=2.0))
    assert torch.equal(parts["gray"], gray.masked_fill(hole, 1.0))
    merged = parts["edges_merged"]
    assert torch.equal(merged[hole], parts["edges"][hole].detach())
    assert torch.equal(merged[~hole], parts["edges_in"][~hole])
    assert 0 <= parts["raw"].min() and parts["raw"].max() <= 1
    assert 0 <= parts["edges"].min() and parts["edges"].max() <= 1
    assert torch.equal(parts["output"], torch.where(hole, parts["raw"], image))
    # Joint training (the default, mode 4): G2's losses reach G1 through its edges.
    parts["raw"].mean().backward()
    assert any(p.grad.any() for p in g.edge_generator.parameters())
    assert any(p.grad.any() for p in g.image_generator.parameters())
    # Modes 1 and 3, and inference: G1's edges are a constant for G2's losses.
    g.zero_grad(set_to_none=True)
    g.edge_source = "predicted"
    parts = g(image, mask, return_parts=True)
    parts["raw"].mean().backward(retain_graph=True)
    assert all(p.grad is None for p in g.edge_generator.parameters())
    parts["edges"].mean().backward()  # G1's own losses do reach it
    assert any(p.grad.any() for p in g.edge_generator.parameters())
    # Mode 2: G2 trains on the Canny edges of the whole ground truth; eval always uses G1's.
    g.edge_source = "truth"
    truth = g(image, mask, return_parts=True)["edges_merged"]
    assert torch.equal(truth, canny(rgb_to_gray(image), None, sigma=2.0))
    assert torch.equal(g.eval()(image, mask, return_parts=True)["edges_merged"], merged)
    g.train()
    with pytest.raises(InputError, match="at least 16x16"):
        g.inpaint(torch.rand(1, 3, 12, 12), torch.zeros(1, 1, 12, 12))


def test_g1_spectral_norm_iterates_once_per_weight_update():
    torch.manual_seed(0)
    g = create_model("edgeconnect", "small", width=4, blocks=1).train()
    image, mask = _smooth(32, 5), square_mask(32, 4, 4, 12)
    first = g(image, mask)
    assert torch.equal(g(image, mask), first)  # same weights: same output, also in training
    conv = g.edge_generator.encoder[1]
    u = conv.parametrizations.weight[0]._u.clone()
    with torch.no_grad():
        conv.parametrizations.weight.original.mul_(1.5)  # an optimiser step, in place
    again = g(image, mask)
    assert not torch.equal(conv.parametrizations.weight[0]._u, u)  # one power-iteration step
    # W / sigma(W) is scale-free: the normalised weight (hence the output) barely moves.
    assert (again - first).abs().max() < 1e-3
    w = conv.weight.detach().flatten(1)
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_critics_return_logits_and_five_features_and_both_equals_separate_calls():
    torch.manual_seed(0)
    d = create_model("edgeconnect_d", "small", width=4).eval()
    e, x = torch.rand(2, 2, 64, 64), torch.rand(2, 3, 64, 64)
    logits, feats = d(e, "edge")
    assert logits.shape == (2, 1, 6, 6) and len(feats) == 5 and feats[-1] is logits
    assert [f.shape[1] for f in feats] == [4, 8, 16, 32, 1]
    (le, _), (li, _) = d((e, x), "both")
    assert torch.equal(le, logits) and torch.equal(li, d(x, "image")[0])
    assert logits.min() < 0  # logits, not sigmoid probabilities
    with pytest.raises(InputError, match="which must be one of"):
        d(x, "rgb")


# -- recipe ------------------------------------------------------------------------------


class _StubCritic(nn.Module):
    """Logits ``c`` everywhere; the input itself is the one feature map."""

    def __init__(self, c=0.0):
        super().__init__()
        self.c = c

    def forward(self, x, which):
        if which == "both":
            return self(x[0], "edge"), self(x[1], "image")
        logits = torch.full_like(x[:, :1, :4, :4], self.c) + 0 * x.mean()
        return logits, [x]


def _const_parts(edges=0.25, raw=0.5, size=16):
    return {"raw": torch.full((2, 3, size, size), raw), "edges": torch.full((2, 1, size, size), edges)}


def test_recipe_terms_on_hand_built_inputs():
    recipe = EdgeConnectRecipe(perceptual=0, style=0)
    image = torch.full((2, 3, 16, 16), 0.3)  # constant: Canny of the target is empty
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., :8, :8] = 1.0  # hole fraction 1/4
    total, logs = recipe.generator_loss(_StubCritic(0.0), image, mask, _const_parts())
    assert logs["edge_adv"].item() == pytest.approx(math.log(2))  # BCE(0 logits, real)
    assert logs["adv"].item() == pytest.approx(math.log(2))
    # fm: the feature is [gray, edges]; gray matches, edges 0.25 vs 0 -> mean 0.125.
    assert logs["fm"].item() == pytest.approx(0.125)
    assert logs["l1"].item() == pytest.approx(0.2 / 0.25)  # L1 over all pixels / hole fraction
    assert total.item() == pytest.approx(math.log(2) + 10 * 0.125 + 0.8 + 0.1 * math.log(2))
    d_loss, d_logs = recipe.critic_loss(_StubCritic(2.0), image, mask, _const_parts())
    bce = lambda z, y: math.log1p(math.exp(-z)) if y else math.log1p(math.exp(z))  # noqa: E731
    assert d_logs["edge"].item() == pytest.approx((bce(2, 1) + bce(2, 0)) / 2)
    assert d_loss.item() == pytest.approx(bce(2, 1) + bce(2, 0))


@pytest.fixture(scope="module")
def vgg():
    return VGG16Features.random(seed=0)


def test_total_is_the_weighted_sum_and_style_sees_only_the_hole(vgg):
    recipe = EdgeConnectRecipe(vgg)
    assert recipe.weights == EDGECONNECT_WEIGHTS
    torch.manual_seed(0)
    critic = create_model("edgeconnect_d", "small", width=4)
    image, mask = _smooth(32, 3), square_mask(32, 4, 4, 16)
    parts = {"raw": _smooth(32, 4), "edges": torch.rand(1, 1, 32, 32)}
    total, logs = recipe.generator_loss(critic, image, mask, parts)
    assert set(logs) == set(recipe.weights)
    assert total.item() == pytest.approx(sum(recipe.weights[k] * logs[k].item() for k in logs), rel=1e-6)
    assert all(v.item() > 0 for v in logs.values())
    # Changing the prediction outside the hole changes perceptual, not style (masked).
    moved = {**parts, "raw": torch.where(mask.bool(), parts["raw"], 1 - parts["raw"])}
    _, logs2 = recipe.generator_loss(critic, image, mask, moved)
    assert logs2["style"].item() == pytest.approx(logs["style"].item(), rel=1e-5)
    assert logs2["perceptual"].item() != pytest.approx(logs["perceptual"].item(), rel=1e-3)


def test_from_config_checks_keys_kind_models_and_loads_vgg_only_when_needed():
    def no_vgg():
        raise AssertionError("VGG loaded although perceptual and style are 0")

    recipe = EdgeConnectRecipe.from_config(
        {"perceptual": 0, "style": 0, "fm": 5.0, "resize": None, "adv_kind": "bce"}, no_vgg
    )
    assert recipe.weights == {"edge_adv": 1.0, "fm": 5.0, "l1": 1.0, "adv": 0.1}
    with pytest.raises(InputError, match="has no term or setting \\['hole'\\]"):
        EdgeConnectRecipe.from_config({"hole": 6.0}, no_vgg)
    with pytest.raises(InputError, match="adv_kind"):
        EdgeConnectRecipe.from_config({"perceptual": 0, "style": 0, "adv_kind": "hinge"}, no_vgg)
    g, d = create_model("edgeconnect", "small", sigma=1.5), create_model("edgeconnect_d", "small")
    recipe.check_models(g, d)
    assert recipe.canny_settings["sigma"] == 1.5
    with pytest.raises(InputError, match="model.discriminator=edgeconnect_d"):
        recipe.check_models(g, create_model("patchgan", "small"))
    with pytest.raises(InputError, match="model.generator=edgeconnect"):
        recipe.check_models(create_model("pconv", "small"), d)


# -- training ----------------------------------------------------------------------------


def _tiny(faces, *extra):
    return load_config(CONFIG, [
        "model.generator_args={width: 4, blocks: 1}", "model.discriminator_args={width: 4}",
        "data.size=32", "data.workers=0", "data.val_count=2", f"data.root={faces}",
        "loss.vgg_weights=random", "train.batch_size=2", "train.device=cpu", "train.amp=fp32",
        "train.val_every=0", "train.image_every=0", "train.log_every=1", *extra,
    ])


def test_config_is_the_published_recipe():
    cfg = load_config(CONFIG)
    assert (cfg.model.generator, cfg.model.discriminator, cfg.loss.recipe) == ("edgeconnect", "edgeconnect_d", "edgeconnect")
    assert (cfg.train.lr, cfg.train.d_lr, tuple(cfg.train.betas)) == (1e-4, 1e-5, (0.0, 0.9))
    assert (cfg.loss.l1, cfg.loss.adv, cfg.loss.perceptual, cfg.loss.style) == (1.0, 0.1, 0.1, 250.0)
    assert cfg.loss.args == {"edge_adv": 1.0, "fm": 10.0, "mode": 4} and cfg.loss.resize is None
    assert cfg.loss.vgg_input == "raw"  # the official code's VGG19 sees [0, 1] (tests/test_vgg_conventions.py)


def test_two_trainer_steps_update_all_four_networks_and_resume(faces, tmp_path):
    trainer = Trainer(_tiny(faces, "train.iterations=2", "train.save_every=2"), tmp_path)
    # Parameters, not state_dicts: spectral norm's power-iteration vectors move on every forward.
    parameters = lambda: {
        **{k: p.detach().clone() for k, p in trainer.g_raw.named_parameters()},
        **{f"d.{k}": p.detach().clone() for k, p in trainer.d_raw.named_parameters()},
    }
    before = parameters()
    trainer.fit()
    after = parameters()
    for net in ("edge_generator.", "image_generator.", "d.edge.", "d.image."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net)), net
    rows = [json.loads(r) for r in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [r for r in rows if r["kind"] == "loss"]
    assert len(losses) == 2
    for key in ("edge_adv", "fm", "l1", "adv", "perceptual", "style", "total", "d_loss", "d_edge", "d_image"):
        assert math.isfinite(losses[-1][key]), key
    resumed = Trainer(_tiny(faces, "train.iterations=3", "train.save_every=2"), tmp_path, resume=True)
    assert resumed.step == 2
    for k, v in trainer.g_raw.state_dict().items():
        assert torch.equal(v, resumed.g_raw.state_dict()[k])
    resumed.fit()
    assert resumed.step == 3
    assert len([r for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if r["kind"] == "loss"]) == 3


# -- the released training modes ---------------------------------------------------------

# What each released mode (knazeri/edge-connect, src/edge_connect.py) updates.
MODE_TRAINS = {
    1: {"edge_generator", "d.edge"},
    2: {"image_generator", "d.image"},
    3: {"image_generator", "d.image"},
    4: {"edge_generator", "image_generator", "d.edge", "d.image"},
}


def _parameters(trainer):
    named = [(f"g.{n}", p) for n, p in trainer.g_raw.named_parameters()]
    named += [(f"d.{n}", p) for n, p in trainer.d_raw.named_parameters()]
    return {n: p.detach().clone() for n, p in named}


def _net(name):
    parts = name.split(".")
    return parts[1] if parts[0] == "g" else f"d.{parts[1]}"


@pytest.mark.parametrize("mode", [1, 2, 3, 4])
def test_each_released_mode_updates_exactly_its_networks(faces, tmp_path, mode):
    trainer = Trainer(_tiny(faces, "train.iterations=2", "train.save_every=2",
                            f"loss.args={{edge_adv: 1.0, fm: 10.0, mode: {mode}}}"), tmp_path)
    before = _parameters(trainer)
    trainer.fit()
    after = _parameters(trainer)
    moved = {_net(n) for n in before if not torch.equal(before[n], after[n])}
    assert moved == MODE_TRAINS[mode]
    # Every parameter of a trained network moves or at least gets a gradient path; the rest none.
    for n, p in [*trainer.g_raw.named_parameters(), *(("d." + k, v) for k, v in trainer.d_raw.named_parameters())]:
        net = _net(n if n.startswith("d.") else f"g.{n}")
        assert p.requires_grad == (net in MODE_TRAINS[mode]), n
    losses = [json.loads(r) for r in (tmp_path / "log.jsonl").read_text().splitlines()]
    logged = {k for r in losses if r["kind"] == "loss" for k in r}
    assert ({"edge_adv", "fm", "d_edge"} <= logged) == (mode in (1, 4))
    assert ({"l1", "adv", "perceptual", "style", "d_image"} <= logged) == (mode != 1)


def test_mode_2_feeds_g2_ground_truth_edges_and_mode_is_checked(faces, tmp_path):
    trainer = Trainer(_tiny(faces, "train.iterations=1", "loss.args={mode: 2}"), tmp_path)
    assert trainer.g_raw.edge_source == "truth" and trainer.recipe.weights.keys() == {"l1", "adv", "perceptual", "style"}
    for bad in (0, 5, "joint", True):
        with pytest.raises(InputError, match="mode for edgeconnect must be 1"):
            EdgeConnectRecipe(perceptual=0, style=0, mode=bad)

    def no_vgg():
        raise AssertionError("mode 1 trains no image stage: no VGG")

    assert EdgeConnectRecipe.from_config({"mode": 1}, no_vgg).weights == {"edge_adv": 1.0, "fm": 10.0}
