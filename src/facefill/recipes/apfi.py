"""APFI's objective (the paper, §1.2–1.4): L1 + perceptual + style + adversarial, on the
composite, against a spectrally normalised PatchGAN critic (hinge by default)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn

from ..losses import PAPER_WEIGHTS, GeneratorLoss
from .base import Recipe, given_settings, register_recipe

__all__ = ["APFIRecipe"]


@register_recipe
class APFIRecipe(Recipe):
    """``l1·L1 + perceptual·Lper + style·Lstyle + adv·Ladv`` on ``parts["output"]``.

    The critic scores real images and (detached) composites in one batch; its loss is
    :meth:`facefill.losses.AdversarialLoss.discriminator_loss`. Weights default to
    :data:`facefill.losses.PAPER_WEIGHTS`. Also the recipe RFR-Net and APFI share in
    ``benchmarks/quality.py``'s first tables.
    """

    name = "apfi"
    uses_critic = True

    def __init__(self, loss: GeneratorLoss) -> None:
        super().__init__()
        self.loss = loss
        if loss.adv.weight <= 0:
            self.uses_critic = False

    @classmethod
    def from_config(cls, loss: Mapping[str, Any], load_vgg: Callable[[], nn.Module]) -> APFIRecipe:
        config = given_settings(cls.name, loss, GeneratorLoss.CONFIG_KEYS)
        weights = {**PAPER_WEIGHTS, **{k: config[k] for k in PAPER_WEIGHTS if k in config}}
        vgg = load_vgg() if weights["perceptual"] > 0 or weights["style"] > 0 else None
        return cls(GeneratorLoss(vgg, **config))

    def critic_loss(self, critic, image, mask, parts):
        scores = critic(torch.cat([image, parts["output"]])).float()
        d_loss = self.loss.adv.discriminator_loss(*scores.chunk(2))
        return d_loss, {}

    def generator_loss(self, critic, image, mask, parts):
        fake = parts["output"]
        scores = critic(fake).float() if critic is not None and self.loss.adv.weight > 0 else None
        return self.loss(fake.float(), image, scores)

    @property
    def weights(self) -> dict[str, float]:
        lo = self.loss
        w = {"l1": lo.l1.weight, "adv": lo.adv.weight}
        if lo.perceptual is not None:
            w["perceptual"] = lo.perceptual.weight
        if lo.style is not None:
            w["style"] = lo.style.weight
        return {k: v for k, v in w.items() if v > 0}
