"""PConv's objective (Liu et al. 2018), also RFR-Net's official recipe (SPEC §6): valid and
hole L1, perceptual and style on the raw output and the composite, hole total variation;
no critic. The loss itself is :class:`facefill.losses_peers.PConvLoss`. The two releases feed
VGG differently: NVIDIA's PConv loss normalises with ImageNet's mean/std (``loss.vgg_input:
imagenet``, the default), RFR-Net's code feeds the raw [0, 1] image (``configs/rfr_faces_cpu.yaml``
sets ``loss.vgg_input: raw``); the trainer's VGG loader applies the config's choice."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch.nn as nn

from ..losses_peers import PCONV_WEIGHTS, PConvLoss
from ..vgg import TAPS
from .base import Recipe, given_settings, layers_arg, register_recipe, weight_arg

__all__ = ["PConvRecipe"]


@register_recipe
class PConvRecipe(Recipe):
    """``valid + 6 hole + 0.05 perceptual + 120 style + 0.1 tv`` on ``parts["raw"]``.

    Config: ``loss.perceptual``, ``loss.style``, ``loss.resize``; ``loss.args`` takes
    ``valid``, ``hole``, ``tv`` and ``layers``. ``loss.l1`` and ``loss.adv`` are refused:
    PConv splits its L1 into valid and hole terms and has no adversary.
    """

    name = "pconv"
    ARGS = {"valid": weight_arg(), "hole": weight_arg(), "tv": weight_arg(), "layers": layers_arg(TAPS)}
    uses_critic = False

    def __init__(self, loss: PConvLoss) -> None:
        super().__init__()
        self.loss = loss

    @classmethod
    def from_config(cls, loss: Mapping[str, Any], load_vgg: Callable[[], nn.Module]) -> PConvRecipe:
        config = given_settings(cls.name, loss, PConvLoss.CONFIG_KEYS, "valid, hole, tv and layers under loss.args")
        weights = {**PCONV_WEIGHTS, **{k: config[k] for k in PCONV_WEIGHTS if k in config}}
        vgg = load_vgg() if weights["perceptual"] > 0 or weights["style"] > 0 else None
        return cls(PConvLoss(vgg, **config))

    def generator_loss(self, critic, image, mask, parts):
        return self.loss(parts["raw"], image, mask)

    @property
    def weights(self) -> dict[str, float]:
        return self.loss.weights
