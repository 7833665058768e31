import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from facefill import InputError, create_model
from facefill.config import load_config
from facefill.models.lama import FFC, FourierUnit, LaMaDiscriminator, LaMaGenerator
from facefill.models.patchgan import PatchGAN
from facefill.recipes import create_recipe
from facefill.recipes.lama import LaMaRecipe, nonsaturating_critic_loss
from facefill.train import Trainer
from facefill.vgg import VGG16Features

from helpers import square_mask

# -- Fast Fourier convolution ------------------------------------------------------------


def test_fourier_unit_sees_the_whole_image_in_one_layer_on_odd_sizes():
    fu = FourierUnit(4, 4).eval()
    x = torch.rand(1, 4, 15, 17)
    y = fu(x)
    assert y.shape == x.shape
    poked = x.clone()
    poked[..., 0, 0] += 1.0
    change = (fu(poked) - y).abs().amax(dim=1)[0]
    # The far corner and the centre move; a 3x3 conv's output there could not.
    assert change[14, 16] > 1e-4 and change[7, 8] > 1e-4
    assert (change > 1e-6).float().mean() > 0.9


def test_fourier_unit_with_identity_weights_returns_a_positive_constant():
    # rfft2 (ortho) of a constant c is c*sqrt(HW) at DC and 0 elsewhere; ReLU keeps it and
    # irfft2 (ortho) gives back c, scaled only by the eval BatchNorm's 1/sqrt(1 + eps).
    fu = FourierUnit(2, 2).eval()
    with torch.no_grad():
        fu.conv.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
    x = torch.full((1, 2, 7, 9), 0.5)
    torch.testing.assert_close(fu(x), x / math.sqrt(1 + fu.bn.eps))


def test_ffc_splits_channels_and_its_global_path_is_global():
    ffc = FFC(16, ratio_global=0.75).eval()
    assert (ffc.local_channels, ffc.global_channels) == (4, 12)
    xl, xg = torch.rand(1, 4, 11, 13), torch.rand(1, 12, 11, 13)
    yl, yg = ffc(xl, xg)
    assert yl.shape == xl.shape and yg.shape == xg.shape
    assert (yl >= 0).all() and (yg >= 0).all()  # BN + ReLU per part
    poked = xg.clone()
    poked[..., 0, 0] += 1.0
    _, yg2 = ffc(xl, poked)
    assert (yg2 - yg).abs()[..., 10, 12].amax() > 1e-4  # far from the poke, one layer
    with pytest.raises(InputError, match="ratio_global"):
        FFC(16, ratio_global=1.0)


# -- Generator and critic ----------------------------------------------------------------


def test_generator_presets_parameter_counts_and_stride():
    with torch.device("meta"):
        models = {p: create_model("lama", p) for p in ("paper", "big", "small")}
    counts = {p: sum(t.numel() for t in g.parameters()) for p, g in models.items()}
    assert counts["paper"] == 27_048_835  # published: LaMa-Fourier 27 M
    assert counts["big"] == 50_975_875  # published: Big LaMa 51 M
    assert counts["small"] < 1_000_000
    g = create_model("lama", "paper", blocks=0)
    assert g.stride == 8 and g.global_channels == 384
    with pytest.raises(InputError, match="multiples of 8"):
        create_model("lama", "small")(torch.rand(1, 3, 36, 36), torch.zeros(1, 1, 36, 36))


def test_generator_raw_prediction_is_in_unit_range_and_composited():
    g = create_model("lama", "small", width=8, blocks=1).eval()
    image, mask = torch.rand(2, 3, 32, 40), square_mask(32, 4, 4, 12, batch=2)
    mask = F.pad(mask, (0, 8))
    parts = g(image, mask, return_parts=True)
    assert parts["raw"].shape == image.shape
    assert 0 <= parts["raw"].min() and parts["raw"].max() <= 1
    assert torch.equal(parts["output"][mask.expand_as(image) == 0], image[mask.expand_as(image) == 0])
    assert isinstance(g, LaMaGenerator)


def test_critic_returns_scores_and_features():
    with torch.device("meta"):
        n = sum(t.numel() for t in create_model("lama_d", "paper").parameters())
    assert n == 6_960_961
    d = create_model("lama_d", "paper").eval()
    scores, feats = d(torch.rand(1, 3, 64, 64))
    assert scores.shape == (1, 1, 7, 7)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 4
    with pytest.raises(InputError, match="critic takes"):
        d(torch.rand(1, 4, 64, 64))


# -- Recipe --------------------------------------------------------------------------------


class _SumCritic(nn.Module):
    """Stub critic: scores = channel sum (full resolution), features = [x]."""

    def forward(self, x):
        return x.sum(1, keepdim=True), [x]


def test_known_pixel_l1_and_optional_hole_l1_by_hand():
    recipe = LaMaRecipe(None, perceptual=0, adv=0, fm=0, l1_hole=2.0)
    assert not recipe.uses_critic
    image = torch.zeros(1, 3, 4, 4)
    raw = torch.full((1, 3, 4, 4), 0.5)
    raw[..., :2, :] = 0.25  # the hole (top half)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    total, logs = recipe.generator_loss(None, image, mask, {"raw": raw, "output": raw})
    # Mean over all 48 elements: known half contributes 0.5 * 24 / 48, hole half 0.25 * 24 / 48.
    assert logs["l1"].item() == pytest.approx(0.25)
    assert logs["l1_hole"].item() == pytest.approx(0.125)
    assert total.item() == pytest.approx(10 * 0.25 + 2 * 0.125)
    assert recipe.weights == {"l1": 10.0, "l1_hole": 2.0}


def test_critic_loss_mask_as_fake_target_and_r1_by_hand():
    recipe = LaMaRecipe(None, perceptual=0)
    image = torch.zeros(2, 3, 4, 4)
    raw = torch.full((2, 3, 4, 4), 1 / 3)  # stub scores: 1 everywhere
    mask = torch.zeros(2, 1, 4, 4)
    mask[..., :, :2] = 1  # left half is hole
    d_loss, logs = recipe.critic_loss(_SumCritic(), image, mask, {"raw": raw})
    sp = F.softplus
    real = math.log(2)  # softplus(-0)
    fake = 0.5 * (sp(torch.tensor(1.0)) + sp(torch.tensor(-1.0))).item()
    r1 = 3 * 4 * 4  # d(sum of channel sums)/dx = 1 everywhere: squared norm 48 per sample
    assert logs["real"].item() == pytest.approx(real)
    assert logs["fake"].item() == pytest.approx(fake)
    assert logs["r1"].item() == pytest.approx(r1)
    assert d_loss.item() == pytest.approx(real + fake + 0.001 * r1)

    total, logs = recipe.generator_loss(_SumCritic(), image, mask, {"raw": raw, "output": raw})
    assert logs["adv"].item() == pytest.approx(sp(torch.tensor(-1.0)).item())
    assert logs["fm"].item() == pytest.approx(1 / 9)
    assert logs["l1"].item() == pytest.approx(0.5 * (1 / 3))
    assert total.item() == pytest.approx(sum(recipe.weights[k] * v.item() for k, v in logs.items()))


def test_mask_is_downsampled_to_the_score_map():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :4] = 1  # left half hole -> left two columns of a 4x4 map
    right = torch.full((1, 1, 4, 4), 20.0)
    right[..., :, :2] = -20.0  # the critic calls the hole fake and the rest real
    _, fake_right = nonsaturating_critic_loss(torch.zeros(1, 1, 4, 4), right, mask)
    _, fake_wrong = nonsaturating_critic_loss(torch.zeros(1, 1, 4, 4), -right, mask)
    assert fake_right.item() < 1e-6 and fake_wrong.item() == pytest.approx(20.0, abs=1e-6)


@pytest.fixture(scope="module")
def vgg():
    return VGG16Features.random(seed=0)


def test_all_terms_total_weights_and_perceptual_form(vgg):
    recipe = LaMaRecipe(vgg)
    critic = create_model("lama_d", "small", width=8, layers=2)
    image, mask = torch.rand(2, 3, 32, 32), square_mask(32, 8, 8, 12, batch=2)
    raw = torch.rand(2, 3, 32, 32).requires_grad_(True)
    critic.eval().requires_grad_(False)  # as the trainer's frozen critic
    total, logs = recipe.generator_loss(critic, image, mask, {"raw": raw, "output": raw})
    assert recipe.weights == {"l1": 10.0, "perceptual": 30.0, "adv": 10.0, "fm": 100.0}
    assert set(logs) == set(recipe.weights)
    torch.testing.assert_close(total.detach(), sum(recipe.weights[k] * v for k, v in logs.items()))
    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    pf, tf = vgg(raw.detach(), layers), vgg(image, layers)
    expected = sum((pf[n] - tf[n]).square().mean() for n in layers)  # summed over layers, as ResNetPL
    torch.testing.assert_close(logs["perceptual"], expected)
    (_, fake_feats), (_, real_feats) = critic(raw.detach()), critic(image)
    fm = sum((f - r).square().mean() for f, r in zip(fake_feats, real_feats)) / len(fake_feats)
    torch.testing.assert_close(logs["fm"], fm)  # feature matching: mean over layers, as LaMa
    total.backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()
    critic.train().requires_grad_(True)
    d_loss, d_logs = recipe.critic_loss(critic, image, mask, {"raw": raw.detach()})
    d_loss.backward()
    assert set(d_logs) == {"real", "fake", "r1"}
    assert all(p.grad is not None for p in critic.parameters())


def test_from_config_checks_keys_and_loads_vgg_only_when_needed(vgg):
    calls = []

    def load_vgg():
        calls.append(1)
        return vgg

    recipe = create_recipe("lama", {"perceptual": 0, "l1": 5, "fm": 1, "r1": 0, "resize": None}, load_vgg)
    assert calls == [] and recipe.weights == {"l1": 5.0, "adv": 10.0, "fm": 1.0} and recipe.r1 == 0
    create_recipe("lama", {"l1_hole": 1.0}, load_vgg)
    assert calls == [1]
    with pytest.raises(InputError, match="no term or setting \\['tv'\\].*l1_hole, fm, r1"):
        create_recipe("lama", {"tv": 0.1}, load_vgg)
    with pytest.raises(InputError, match="no style term"):
        create_recipe("lama", {"style": 120.0}, load_vgg)
    with pytest.raises(InputError, match="non-saturating"):
        create_recipe("lama", {"adv_kind": "hinge"}, load_vgg)
    with pytest.raises(InputError, match="must be a number >= 0"):
        create_recipe("lama", {"fm": -1.0, "perceptual": 0}, load_vgg)
    with pytest.raises(InputError, match="model.discriminator=lama_d"):
        recipe.check_models(create_model("lama", "small"), PatchGAN(width=8))
    recipe.check_models(create_model("lama", "small"), LaMaDiscriminator(width=8, layers=2))


# -- Training through facefill's trainer --------------------------------------------------

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lama_faces_cpu.yaml"
TINY = [
    "model.generator_args={width: 8, blocks: 1}",
    "model.discriminator_args={width: 8, layers: 2}",
    "data.size=32",
    "data.workers=0",
    "data.val_count=2",
    "loss.vgg_weights=random",
    "train.batch_size=2",
    "train.log_every=1",
    "train.val_every=0",
    "train.image_every=0",
    "train.device=cpu",
]


def _config(faces, *extra):
    return load_config(CONFIG, TINY + [f"data.root={faces}", *extra])


def test_config_is_lamas_published_setup(faces):
    cfg = _config(faces)
    assert (cfg.model.generator, cfg.model.discriminator, cfg.loss.recipe) == ("lama", "lama_d", "lama")
    assert (cfg.train.lr, cfg.train.d_lr) == (1e-3, 1e-4)
    assert (cfg.loss.l1, cfg.loss.adv, cfg.loss.perceptual) == (10.0, 10.0, 30.0)
    assert cfg.loss.args == {"l1_hole": 0.0, "fm": 100.0, "r1": 0.001}


def test_two_trainer_steps_then_resume(faces, tmp_path):
    trainer = Trainer(_config(faces, "train.iterations=2", "train.save_every=2"), tmp_path)
    # Parameters, not state_dicts: BatchNorm's running statistics move on every forward.
    g0 = [p.detach().clone() for p in trainer.g_raw.parameters()]
    d0 = [p.detach().clone() for p in trainer.d_raw.parameters()]
    trainer.fit()
    rows = [json.loads(r) for r in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [r for r in rows if r["kind"] == "loss"]
    assert len(losses) == 2
    for key in ("l1", "perceptual", "adv", "fm", "total", "d_loss", "d_real", "d_fake", "d_r1"):
        assert math.isfinite(losses[-1][key]), key
    for before, net in ((g0, trainer.g_raw), (d0, trainer.d_raw)):
        assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))

    resumed = Trainer(_config(faces, "train.iterations=3", "train.save_every=2"), tmp_path, resume=True)
    assert resumed.step == 2
    for k, v in trainer.g_raw.state_dict().items():
        assert torch.equal(v, resumed.g_raw.state_dict()[k]), k
    resumed.fit()
    assert resumed.step == 3
    rows = [json.loads(r) for r in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "loss"] == [1, 2, 3]


def test_generator_convs_reflect_pad_as_the_release():
    # FFCResNetGenerator (advimman/lama ffc.py): padding_type="reflect" for the downsampling
    # and FFC convs, ReflectionPad2d(3) before the 7x7 convs; only the transposed convs zero-pad.
    g = create_model("lama", "small", width=4, blocks=1)
    for name, m in g.named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1):
            assert m.padding == (0, 0) or m.padding_mode == "reflect", name
    pads = [m for m in g.encoder if isinstance(m, torch.nn.ReflectionPad2d)]
    assert len(pads) == 1 and pads[0].padding == (3, 3, 3, 3)
    # The first downsampling against a reference from torch primitives: reflect, then conv.
    down = [m for m in g.encoder if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)][0]
    x = torch.rand(1, down.in_channels, 16, 16)
    reference = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), down.weight, stride=2)
    assert torch.allclose(down(x), reference, atol=1e-6)
    assert not torch.allclose(down(x), F.conv2d(x, down.weight, stride=2, padding=1), atol=1e-4)
