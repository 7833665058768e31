"""Training recipes: every method's objective through the one trainer (facefill.recipes)."""

import json

import pytest
import torch

from facefill.config import load_config
from facefill.errors import ConfigError, FacefillError, InputError
from facefill.losses_peers import PConvLoss
from facefill.recipes import create_recipe, list_recipes
from facefill.train import Trainer
from facefill.vgg import VGG16Features

from helpers import square_mask
from test_train import tiny  # the tiny APFI config

PCONV = [
    "model.generator=pconv",
    "model.generator_args={width: 8, layers: 3}",
    "model.discriminator=none",
    "loss.recipe=pconv",
    "loss.resize=null",
    "loss.args={hole: 6.0, tv: 0.1}",
]


def _no_vgg():
    raise AssertionError("VGG16 was loaded though no term needs it")


def test_recipes_are_registered_and_unknown_names_refused():
    assert {"apfi", "pconv"} <= set(list_recipes())
    with pytest.raises(InputError, match="unknown loss.recipe 'nope'; available: .*apfi.*pconv"):
        create_recipe("nope", {}, _no_vgg)


def test_recipes_refuse_terms_they_do_not_have_and_load_vgg_only_when_needed():
    with pytest.raises(InputError, match=r"loss.recipe=pconv has no term or setting \['adv'\]"):
        create_recipe("pconv", {"adv": 0.1}, _no_vgg)
    with pytest.raises(InputError, match=r"loss.recipe=apfi has no term or setting \['tv'\]"):
        create_recipe("apfi", {"tv": 0.1}, _no_vgg)
    # None means "the recipe's published value"; zero weights switch VGG off entirely.
    recipe = create_recipe("pconv", {"perceptual": 0, "style": 0, "l1": None, "resize": None}, _no_vgg)
    assert recipe.weights == {"valid": 1.0, "hole": 6.0, "tv": 0.1}
    apfi = create_recipe("apfi", {"perceptual": 0.0, "style": 0.0, "adv": None}, _no_vgg)
    assert apfi.weights == {"l1": 1.0, "adv": 0.05} and apfi.uses_critic
    apfi = create_recipe("apfi", {"perceptual": 0.0, "style": 0.0, "ssim": 0.5}, _no_vgg)
    assert apfi.weights == {"l1": 1.0, "adv": 0.05, "ssim": 0.5}
    apfi = create_recipe("apfi", {"perceptual": 0.0, "style": 0.0, "gradient": 2.0}, _no_vgg)
    assert apfi.weights == {"l1": 1.0, "adv": 0.05, "gradient": 2.0}


@pytest.mark.parametrize("name", ["apfi", "pconv", "lama", "edgeconnect"])
@pytest.mark.parametrize("resize", [None, 32])
def test_resize_null_means_as_is_not_the_recipes_default(name, resize):
    # None drops a weight back to its published value, but loss.resize=null is a setting of
    # its own: VGG on the image as is (APFI's default is 224, which costs ~12x at 64 px).
    vgg = VGG16Features.random(seed=0)
    recipe = create_recipe(name, {"resize": resize}, lambda: vgg)
    inner = getattr(recipe, "loss", recipe)
    assert inner.resize == resize
    for bad in (0, True, 2.5):
        with pytest.raises(InputError, match="resize must be a positive int or None"):
            create_recipe(name, {"resize": bad}, lambda: vgg)


def test_pconv_recipe_loss_is_pconvloss_on_the_raw_output():
    vgg = VGG16Features.random(seed=0)
    recipe = create_recipe("pconv", {"resize": None}, lambda: vgg)
    g = torch.Generator().manual_seed(0)
    target, raw = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    mask = square_mask(16, 4, 4, 6, batch=2)
    comp = torch.where(mask.bool(), raw, target)
    total, logs = recipe.generator_loss(None, target, mask, {"raw": raw, "output": comp})
    want, want_logs = PConvLoss(vgg)(raw, target, mask)
    assert total == want and logs.keys() == want_logs.keys()
    torch.testing.assert_close(total, sum(recipe.weights[k] * v for k, v in logs.items()))


def test_critic_and_recipe_must_agree(faces, tmp_path):
    with pytest.raises(InputError, match="trains without a critic; set model.discriminator=none"):
        Trainer(tiny(faces, *PCONV, "model.discriminator=patchgan"), tmp_path)
    with pytest.raises(InputError, match="trains against a critic; set model.discriminator"):
        Trainer(tiny(faces, "model.discriminator=none"), tmp_path)
    with pytest.raises(ConfigError, match=r"config key loss\.args\.style is a setting of its own: set loss\.style instead"):
        Trainer(tiny(faces, *PCONV[:-1], "loss.args={style: 1.0}"), tmp_path)


def test_pconv_trains_without_a_critic_and_resumes_exactly(faces, tmp_path):
    straight = Trainer(tiny(faces, *PCONV, "train.iterations=4"), tmp_path / "a")
    assert straight.d_raw is None and straight.opt_d is None
    straight.fit()
    first = Trainer(tiny(faces, *PCONV, "train.iterations=2", "train.save_every=2"), tmp_path / "b")
    first.fit()
    state = torch.load(tmp_path / "b/checkpoints/step_00000002.pt", weights_only=False)
    assert state["discriminator"] is None and state["opt_d"] is None
    resumed = Trainer(tiny(faces, *PCONV, "train.iterations=4"), tmp_path / "b", resume=True)
    assert resumed.step == 2
    resumed.fit()
    for k, v in straight.g_raw.state_dict().items():
        assert torch.equal(v, resumed.g_raw.state_dict()[k]), k
    rows = [json.loads(r) for r in (tmp_path / "a/log.jsonl").read_text().splitlines() if '"loss"' in r]
    assert len(rows) == 4 and "d_loss" not in rows[-1]
    assert {"valid", "hole", "perceptual_out", "perceptual_comp", "style_out", "style_comp", "tv"} <= rows[-1].keys()
    assert all(v == v and abs(v) < float("inf") for r in rows for v in r.values() if isinstance(v, float))
    # A checkpoint trained without a critic does not resume under a recipe with one.
    with pytest.raises(FacefillError, match="was trained with no critic"):
        Trainer(tiny(faces, "model.generator=pconv", "model.generator_args={width: 8, layers: 3}",
                     "train.iterations=4"), tmp_path / "b", resume=True)


def test_rfr_trains_under_its_official_recipe(faces, tmp_path):
    cfg = tiny(faces, "model.generator=rfr", "model.generator_args={width: 8, cycles: 2}",
               "model.discriminator=none", "loss.recipe=pconv", "loss.resize=null", "train.iterations=2",
               "train.val_every=0")
    trainer = Trainer(cfg, tmp_path)
    before = [p.detach().clone() for p in trainer.g_raw.parameters()]
    trainer.fit()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.g_raw.parameters()))


@pytest.mark.parametrize("name", ["pconv", "rfr"])
def test_published_cpu_configs_load(name):
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}_faces_cpu.yaml")
    assert cfg.model.generator == name and cfg.loss.recipe == "pconv" and cfg.model.discriminator is None  # "none" reads as null
    assert (cfg.train.lr, cfg.train.finetune_lr) == (2e-4, 5e-5) and cfg.loss.args["hole"] == 6.0


@pytest.mark.parametrize("name", list_recipes())
def test_every_declared_loss_arg_is_one_the_recipe_takes(name):
    """A recipe's ARGS (what the config check allows) and its from_config (what it builds from)
    name the same keys: each declared key gets past from_config's own key check."""
    from facefill.recipes.base import _RECIPES

    declared = _RECIPES[name].ARGS
    for key in declared:
        try:
            create_recipe(name, {key: object(), "perceptual": 0.0, "style": 0.0}, _no_vgg)
        except Exception as e:  # the sentinel value itself may be refused, its key may not
            assert "has no term or setting" not in str(e), e
