"""APFI's objective (the paper, §1.2–1.4): L1 + perceptual + style + adversarial, on the
composite, against a spectrally normalised PatchGAN critic (hinge by default)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn

from ..diffaug import POLICIES, diff_augment, parse_policy
from ..losses import PAPER_WEIGHTS, GeneratorLoss
from ..vgg import TAPS
from .base import Arg, Recipe, choice_arg, given_settings, layers_arg, register_recipe, weight_arg

__all__ = ["APFIRecipe"]


@register_recipe
class APFIRecipe(Recipe):
    """``l1·L1 + perceptual·Lper + style·Lstyle + adv·Ladv`` on ``parts["output"]``.

    The critic scores real images and (detached) composites in one batch; its loss is
    :meth:`facefill.losses.AdversarialLoss.discriminator_loss`. ``loss.args.critic_augment``
    (for example ``translation,cutout``) passes everything the critic sees, in its update and
    in the generator's adversarial term, through :func:`facefill.diffaug.diff_augment`. Weights default to
    :data:`facefill.losses.PAPER_WEIGHTS`. ``loss.args.ssim`` (default 0, not in the paper) adds
    ``ssim·(1 - SSIM)`` on the same output (:class:`facefill.losses.SSIMLoss`), ``loss.args.gradient``
    (default 0, not in the paper either) the gradient difference loss
    (:class:`facefill.losses.GradientLoss`). Also the recipe RFR-Net and APFI share in
    ``benchmarks/quality.py``'s first tables.
    """

    name = "apfi"
    ARGS = {
        "perceptual_layers": layers_arg(TAPS),
        "style_layers": layers_arg(TAPS),
        "style_criterion": choice_arg("l1", "mse"),
        "ssim": weight_arg("SSIM weight"),
        "gradient": weight_arg("gradient difference loss weight"),
        "critic_augment": Arg(
            lambda v: isinstance(v, str) and all(p.strip() in POLICIES for p in v.split(",") if p.strip()),
            f"a comma-separated list of DiffAugment policies from {', '.join(POLICIES)} "
            "(e.g. 'translation,cutout'), or null for none",
        ),
    }
    uses_critic = True
    critic_free_phase = True

    def __init__(self, loss: GeneratorLoss, critic_augment: str | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.critic_augment = parse_policy(critic_augment)
        if loss.adv.weight <= 0:
            self.uses_critic = False

    @classmethod
    def from_config(cls, loss: Mapping[str, Any], load_vgg: Callable[[], nn.Module]) -> APFIRecipe:
        config = given_settings(
            cls.name, loss, (*GeneratorLoss.CONFIG_KEYS, "critic_augment"),
            "critic_augment: DiffAugment policy for the critic's inputs, e.g. translation,cutout",
        )
        augment = config.pop("critic_augment", None)
        weights = {**PAPER_WEIGHTS, **{k: config[k] for k in PAPER_WEIGHTS if k in config}}
        vgg = load_vgg() if weights["perceptual"] > 0 or weights["style"] > 0 else None
        return cls(GeneratorLoss(vgg, **config), augment)

    def _judge(self, critic, images):
        return critic(diff_augment(images, self.critic_augment) if self.critic_augment else images).float()

    def critic_loss(self, critic, image, mask, parts):
        scores = self._judge(critic, torch.cat([image, parts["output"]]))
        d_loss = self.loss.adv.discriminator_loss(*scores.chunk(2))
        return d_loss, {}

    def generator_loss(self, critic, image, mask, parts):
        """``critic=None`` (before ``train.critic_start``): the terms without the adversarial one."""
        fake = parts["output"]
        judged = critic is not None and self.loss.adv.weight > 0
        scores = self._judge(critic, fake) if judged else None
        return self.loss(fake.float(), image, scores, adversarial=judged)

    @property
    def weights(self) -> dict[str, float]:
        lo = self.loss
        w = {"l1": lo.l1.weight, "adv": lo.adv.weight, "ssim": lo.ssim.weight, "gradient": lo.gradient.weight}
        if lo.perceptual is not None:
            w["perceptual"] = lo.perceptual.weight
        if lo.style is not None:
            w["style"] = lo.style.weight
        return {k: v for k, v in w.items() if v > 0}
