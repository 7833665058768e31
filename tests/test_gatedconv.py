"""DeepFill v2: contextual attention, the gated two-stage generator, SN-PatchGAN, its recipe."""

import json
import math

import pytest
import torch
import torch.nn as nn

from facefill import InputError, create_model
from facefill.config import load_config
from facefill.layers import GatedConv2d
from facefill.models.gatedconv import ContextualAttention, DeepFillV2, SNPatchGAN
from facefill.recipes import create_recipe
from facefill.recipes.deepfill import DeepFillRecipe
from facefill.train import Trainer

from helpers import square_mask

# -- contextual attention ----------------------------------------------------------------


def _copied_features(seed=0):
    """(1, 8, 32, 32) random features whose top-left 16x16 block is a copy of the bottom-right one."""
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(1, 8, 32, 32, generator=g)
    b[..., :16, :16] = b[..., 16:, 16:]
    return b


def test_attention_places_its_weight_on_the_copied_region_and_none_on_the_hole():
    b = _copied_features()
    mask = square_mask(32, 4, 4, 8)  # hole: pixels 4..11, i.e. cells 2..5 of the 16x16 grid
    att = ContextualAttention(patch=3, rate=2, fuse_k=3, scale=10.0)
    y, weights = att(b, b, mask, return_attention=True)
    assert y.shape == b.shape and weights.shape == (1, 256, 16, 16)
    grid = weights[0].view(16, 16, 16, 16)  # (bg y, bg x, fg y, fg x)
    for py in range(2, 6):
        for px in range(2, 6):
            w = grid[:, :, py, px]
            assert w[py + 8, px + 8] > 0.9  # the copy of this hole cell
            assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-5)
    # Background cells whose 3x3 window touches the hole (cells 1..6) get exactly zero.
    assert torch.all(grid[1:7, 1:7] == 0)
    assert torch.all(grid[7:, 7:] >= 0) and grid[7:, 7:].sum() > 0
    # Reconstruction: the hole's features are (nearly) the copied ones.
    torch.testing.assert_close(y[..., 6:10, 6:10], b[..., 22:26, 22:26], atol=0.05, rtol=0.05)


def test_attention_is_batched_per_sample_and_safe_without_background():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(3, 4, 16, 16, generator=g)
    mask = torch.cat([square_mask(16, 2, 2, 6), square_mask(16, 8, 4, 6), torch.ones(1, 1, 16, 16)])
    att = ContextualAttention()
    y, w = att(f, f, mask, return_attention=True)
    for i in range(3):
        yi, wi = att(f[i : i + 1], f[i : i + 1], mask[i : i + 1], return_attention=True)
        torch.testing.assert_close(y[i : i + 1], yi, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(w[i : i + 1], wi)
    assert not torch.equal(w[0], w[1])  # each sample uses its own mask
    assert torch.all(w[2] == 0) and torch.all(y[2] == 0)  # all hole: nothing to copy, finite
    unfused = ContextualAttention(fuse=False)(f, f, mask)
    assert torch.isfinite(unfused).all() and not torch.allclose(unfused, y)
    with pytest.raises(InputError, match="multiples of rate"):
        att(f[..., :15], f[..., :15], mask)


# -- generator ---------------------------------------------------------------------------


def test_paper_preset_parameters_stride_and_layers():
    with torch.device("meta"):
        paper, small = create_model("gatedconv", "paper"), create_model("gatedconv", "small")
    assert sum(p.numel() for p in paper.parameters()) == 4_052_478  # paper: 4.1 M
    assert sum(p.numel() for p in small.parameters()) == 1_017_954
    assert paper.stride == small.stride == 8
    gated = [m for m in paper.modules() if isinstance(m, GatedConv2d)]
    plain = [m for m in paper.modules() if isinstance(m, nn.Conv2d) and not any(m is g.conv for g in gated)]
    # coarse 16, dilated branch 10, attention branch 6 + 2, merged decoder 6; 2 RGB output convs
    assert len(gated) == 16 + 10 + 8 + 6 and len(plain) == 2
    assert gated[0].conv.in_channels == 5 and gated[0].conv.kernel_size == (5, 5)
    assert gated[0].conv.out_channels == 48  # cnum channels, half of them gates
    rates = [m.conv.dilation[0] for m in paper.coarse.modules() if isinstance(m, GatedConv2d)]
    assert [r for r in rates if r > 1] == [2, 4, 8, 16]
    with pytest.raises(InputError, match="multiple of 4"):
        DeepFillV2(width=30)


def test_parts_are_two_stages_in_unit_range_and_a_composite():
    g = create_model("gatedconv", "small", width=8).eval()
    image = torch.rand(2, 3, 32, 40)
    mask = torch.zeros(2, 1, 32, 40)
    mask[0, :, 4:16, 4:16] = 1
    mask[1, :, 16:26, 20:38] = 1
    parts = g(image, mask, return_parts=True)
    assert set(parts) == {"raw", "coarse", "output"}
    for v in parts.values():
        assert v.shape == image.shape and 0 <= v.min() and v.max() <= 1
    assert not torch.allclose(parts["coarse"], parts["raw"])
    assert torch.equal(parts["output"], torch.where(mask.bool(), parts["raw"], image))
    # The refinement sees the coarse result, and only inside the hole.
    with torch.no_grad():
        g.coarse[-1][-2].bias.add_(0.5)
    again = g(image, mask, return_parts=True)
    assert not torch.allclose(again["raw"], parts["raw"], atol=1e-4)
    assert (again["coarse"] - parts["coarse"]).abs().min() > 0.05


# -- critic ------------------------------------------------------------------------------


def test_sn_patchgan_layers_parameters_and_score_map():
    with torch.device("meta"):
        paper = create_model("sn_patchgan", "paper")
    convs = [m for m in paper.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 256, 256]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    assert all(hasattr(c, "parametrizations") for c in convs)  # spectral norm on every conv
    assert convs[0].in_channels == 4  # image + mask
    assert sum(p.numel() for p in paper.parameters()) == (
        4 * 64 * 25 + 64 + 64 * 128 * 25 + 128 + 128 * 256 * 25 + 256 + 3 * (256 * 256 * 25 + 256)
    )
    d = SNPatchGAN(width=4)
    image, mask = torch.rand(2, 3, 128, 64), square_mask(64, 8, 8, 16, batch=2).repeat(1, 1, 2, 1)
    scores = d(image, mask)
    assert scores.shape == (2, 16, 2, 1)
    assert not torch.equal(scores, d(image, torch.zeros_like(mask)))  # the mask is an input
    with pytest.raises(InputError, match="hole mask"):
        d(image, None)


# -- recipe ------------------------------------------------------------------------------


class _FirstChannel(nn.Module):
    """Stub critic: the scores are the image's first channel (mask checked, unused)."""

    def forward(self, image, mask):
        assert mask.shape == (image.shape[0], 1, *image.shape[2:])
        return image[:, :1]


def _no_vgg():
    raise AssertionError("DeepFill v2 has no VGG term")


def _parts():
    shape = (1, 3, 4, 4)
    return {
        "coarse": torch.full(shape, 0.5),
        "raw": torch.full(shape, 0.25),
        "output": torch.full(shape, 0.75),
    }


@pytest.mark.parametrize("l1,adv,want", [(None, None, 0.75), (1.0, 0.5, 0.375)])
def test_losses_on_a_hand_built_example(l1, adv, want):
    recipe = create_recipe("deepfill", {"l1": l1, "adv": adv, "resize": 224}, _no_vgg)
    image, mask = torch.zeros(1, 3, 4, 4), square_mask(4, 1, 1, 2)
    total, logs = recipe.generator_loss(_FirstChannel(), image, mask, _parts())
    assert {k: float(v) for k, v in logs.items()} == {"l1_coarse": 0.5, "l1_refined": 0.25, "adv": -0.75}
    # (0.5 + 0.25) l1 - 0.75 adv
    assert math.isclose(float(total), want, abs_tol=1e-6) and total.dtype == torch.float32
    assert math.isclose(float(total), sum(recipe.weights[k] * float(logs[k]) for k in logs), abs_tol=1e-6)
    assert set(recipe.weights) == set(logs)
    d_loss, d_logs = recipe.critic_loss(_FirstChannel(), image, mask, _parts())
    # relu(1 - 0) on real zeros + relu(1 + 0.75) on the composite
    assert math.isclose(float(d_loss), 2.75)
    assert {k: float(v) for k, v in d_logs.items()} == {"real": 1.0, "fake": 1.75}


def test_recipe_config_refuses_vgg_terms_and_other_gans():
    for key in ("perceptual", "style", "tv"):
        with pytest.raises(InputError, match=f"no term or setting.*{key}.*takes l1, adv"):
            create_recipe("deepfill", {key: 0.1}, _no_vgg)
    with pytest.raises(InputError, match="hinge"):
        create_recipe("deepfill", {"adv_kind": "wgan"}, _no_vgg)
    no_gan = create_recipe("deepfill", {"adv": 0.0}, _no_vgg)
    assert not no_gan.uses_critic and no_gan.weights == {"l1_coarse": 2.0, "l1_refined": 2.0}
    total, logs = no_gan.generator_loss(None, torch.zeros(1, 3, 4, 4), square_mask(4, 1, 1, 2), _parts())
    assert set(logs) == {"l1_coarse", "l1_refined"} and math.isclose(float(total), 1.5)
    # the released 1:1 on [-1, 1] images: L1 counts twice on facefill's [0, 1] images
    assert DeepFillRecipe().weights == {"l1_coarse": 2.0, "l1_refined": 2.0, "adv": 1.0}


# -- training ----------------------------------------------------------------------------

TINY = [
    "model.generator_args={width: 8}",
    "model.discriminator_args={width: 4}",
    "data.size=64",  # at 32 px most masks leave the attention no background to copy
    "data.workers=0",
    "data.val_count=2",
    "loss.vgg_weights=random",
    "train.batch_size=2",
    "train.log_every=1",
    "train.image_every=0",
    "train.val_every=0",
    "train.device=cpu",
    "train.amp=fp32",
]


def _config(faces, *extra):
    return load_config("configs/gatedconv_faces_cpu.yaml", TINY + [f"data.root={faces}", *extra])


def test_config_is_the_published_recipe():
    cfg = load_config("configs/gatedconv_faces_cpu.yaml", [])
    assert (cfg.model.generator, cfg.model.preset, cfg.model.discriminator) == ("gatedconv", "small", "sn_patchgan")
    assert cfg.loss.recipe == "deepfill" and cfg.loss.perceptual is None and cfg.loss.style is None
    assert cfg.train.lr == cfg.train.d_lr == 1e-4 and tuple(cfg.train.betas) == (0.5, 0.999)
    assert cfg.data.size == 128


def test_two_trainer_steps_then_resume(faces, tmp_path):
    first = Trainer(_config(faces, "train.iterations=2", "train.save_every=2"), tmp_path)
    g0 = {k: v.clone() for k, v in first.g_raw.state_dict().items()}
    d0 = {k: v.clone() for k, v in first.d_raw.state_dict().items()}
    first.fit()
    rows = [json.loads(r) for r in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [r for r in rows if r["kind"] == "loss"]
    assert len(losses) == 2
    for key in ("l1_coarse", "l1_refined", "adv", "total", "d_loss", "d_real", "d_fake"):
        assert math.isfinite(losses[-1][key]), key
    assert not torch.equal(first.g_raw.coarse[0].conv.weight, g0["coarse.0.conv.weight"])
    assert not torch.equal(first.g_raw.refine[0].conv.weight, g0["refine.0.conv.weight"])
    assert not torch.equal(first.g_raw.attend_in[0].conv.weight, g0["attend_in.0.conv.weight"])
    key = "net.0.parametrizations.weight.original"
    assert not torch.equal(first.d_raw.state_dict()[key], d0[key])

    resumed = Trainer(_config(faces, "train.iterations=3", "train.save_every=2"), tmp_path, resume=True)
    assert resumed.step == 2
    for k, v in first.g_raw.state_dict().items():
        assert torch.equal(resumed.g_raw.state_dict()[k], v), k
    resumed.fit()
    assert resumed.step == 3
    steps = [json.loads(r)["step"] for r in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert 3 in steps
