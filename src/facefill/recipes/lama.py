"""LaMa's objective (Suvorov et al., WACV 2022), with LaMa-Fourier's published weights.

All terms are taken on the generator's raw prediction ``parts["raw"]`` (LaMa's
"predicted image"; the composite would zero the known-pixel L1): L1 on the known pixels
only, x10 (``l1``; the mean over *all* pixels of ``(1 - mask) * |raw - image|``, as LaMa's
masked L1, hole weight ``args.l1_hole`` = 0 by default, logged separately when > 0); a
non-saturating logistic adversarial term ``softplus(-D(raw))`` x10 (``adv``); feature
matching on every critic layer but the last, the mean over layers of the mean squared
difference between the critic's features of ``raw`` and of the real image, x100
(``args.fm``); and the perceptual term x30 (``perceptual``). The critic
(:class:`facefill.models.lama.LaMaDiscriminator`) minimises ``softplus(-D(real))`` plus, on
the detached raw prediction, LaMa's "mask as fake target": the hole cells of the score map
are pushed to fake (``softplus(D)``), the known cells to real (``softplus(-D)``), the mask
brought to the score map's size by nearest-neighbour interpolation; plus the R1 penalty
``mean_b ||d sum D(real) / d real||^2`` x0.001 (``args.r1``). Real and fake go through the
critic in separate calls (BatchNorm statistics per kind, as LaMa). Deviations: (1) LaMa's
high-receptive-field perceptual loss (HRFPL) uses a dilated ResNet-50 trained for ADE20k
segmentation, which cannot be had offline; we substitute VGG16 features (taps relu1_2,
relu2_2, relu3_3, relu4_3, at the training resolution unless ``loss.resize`` is set), in
HRFPL's form (per layer the mean squared feature difference, summed over the layers, as
LaMa's ``ResNetPL``; feature matching takes the mean over layers, as LaMa's) with the same
weight 30. The substitute's receptive field is smaller and its activation
scale differs from the ResNet's, so the effective strength of this term is not LaMa's.
(2) facefill's trainer freezes the critic in *eval mode* while computing the generator's
loss, so the critic's BatchNorm layers use their running statistics there (LaMa leaves the
critic in train mode, i.e. batch statistics of the fake batch); the adversarial and
feature-matching gradients the generator sees therefore come from the critic as evaluated
at test time, which is the consistent choice when real and fake features must be compared
in feature matching. (3) The R1 gradient is taken with ``torch.autograd.grad`` inside
autocast; under fp16 it may underflow (use bf16 or fp32, LaMa trained in fp32). Under DDP
it is a double backward through the wrapped critic; two CPU processes (gloo) keep identical
weights with it (``tests/test_train.py``), on GPUs (NCCL) it has not run yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from ..losses import _check_resize, vgg_features
from ..models.lama import LaMaDiscriminator
from ..vgg import TAPS
from .base import Recipe, given_settings, layers_arg, register_recipe, weight_arg

__all__ = ["LAMA_WEIGHTS", "LaMaRecipe"]

# LaMa-Fourier's published weights (generator terms) and R1 coefficient (critic).
LAMA_WEIGHTS = {"l1": 10.0, "l1_hole": 0.0, "perceptual": 30.0, "adv": 10.0, "fm": 100.0}
LAMA_R1 = 0.001
PERCEPTUAL_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def _squared_per_layer(pred: Sequence[torch.Tensor], target: Sequence[torch.Tensor]) -> torch.Tensor:
    """(layers,) float32 mean squared difference of two feature lists, one value per layer."""
    return torch.stack([(p.float() - t.float()).square().mean() for p, t in zip(pred, target, strict=True)])


def nonsaturating_critic_loss(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unweighted critic terms ``(real, fake)``, float32, with the mask as fake target.

    ``real = mean softplus(-D(real))``; ``fake = mean(m softplus(D(fake)) + (1 - m)
    softplus(-D(fake)))`` with ``m`` the hole mask (1 = hole) resized by nearest neighbour to
    the score map.
    """
    real, fake = real_scores.float(), fake_scores.float()
    hole = F.interpolate(mask.float(), size=fake.shape[-2:], mode="nearest")
    fake_term = hole * F.softplus(fake) + (1.0 - hole) * F.softplus(-fake)
    return F.softplus(-real).mean(), fake_term.mean()


@register_recipe
class LaMaRecipe(Recipe):
    """LaMa-Fourier's losses (see the module doc) against :class:`LaMaDiscriminator`.

    Config: ``loss.l1`` (10), ``loss.perceptual`` (30), ``loss.adv`` (10), ``loss.resize``
    (VGG input size; null = as is); ``loss.args`` takes ``l1_hole`` (0), ``fm`` (100), ``r1``
    (0.001) and ``perceptual_layers``. ``loss.style`` must be 0 or unset and
    ``loss.adv_kind`` ``nonsaturating`` or unset: LaMa has no style term and one GAN loss.
    With ``adv`` and ``fm`` both 0 the recipe trains without a critic. :attr:`weights`
    covers the generator's terms; the critic's R1 coefficient is :attr:`r1` (its logs
    ``real``, ``fake`` and ``r1`` are unweighted, ``d_loss = real + fake + r1 * penalty``).
    """

    name = "lama"
    ARGS = {
        "l1_hole": weight_arg(), "fm": weight_arg(), "r1": weight_arg("coefficient"),
        "perceptual_layers": layers_arg(TAPS),
    }
    uses_critic = True
    CONFIG_KEYS = (
        "l1", "l1_hole", "perceptual", "adv", "fm", "r1", "perceptual_layers", "resize", "style", "adv_kind",
    )

    def __init__(
        self,
        vgg: nn.Module | None = None,
        *,
        l1: float = LAMA_WEIGHTS["l1"],
        l1_hole: float = LAMA_WEIGHTS["l1_hole"],
        perceptual: float = LAMA_WEIGHTS["perceptual"],
        adv: float = LAMA_WEIGHTS["adv"],
        fm: float = LAMA_WEIGHTS["fm"],
        r1: float = LAMA_R1,
        perceptual_layers: Sequence[str] = PERCEPTUAL_LAYERS,
        resize: int | None = None,
    ) -> None:
        super().__init__()
        given = {"l1": l1, "l1_hole": l1_hole, "perceptual": perceptual, "adv": adv, "fm": fm, "r1": r1}
        for key, value in given.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InputError(f"loss weight {key} must be a number >= 0, got {value!r}")
        layers = (perceptual_layers,) if isinstance(perceptual_layers, str) else tuple(perceptual_layers)
        if not layers or any(n not in TAPS for n in layers):
            raise InputError(f"perceptual_layers must be a non-empty subset of {tuple(TAPS)}, got {layers}")
        if perceptual > 0 and vgg is None:
            raise InputError("the perceptual term needs a VGG16 feature extractor (vgg=None given)")
        self._weights = {k: float(given[k]) for k in LAMA_WEIGHTS}
        self.r1 = float(r1)
        self.perceptual_layers = layers
        self.resize = _check_resize(resize)
        self.vgg = vgg if perceptual > 0 else None
        self.uses_critic = adv > 0 or fm > 0

    @classmethod
    def from_config(cls, loss: Mapping[str, Any], load_vgg: Callable[[], nn.Module]) -> LaMaRecipe:
        config = given_settings(
            cls.name, loss, cls.CONFIG_KEYS, "l1_hole, fm, r1 and perceptual_layers under loss.args"
        )
        if config.pop("style", 0) != 0:
            raise InputError("loss.recipe=lama has no style term; leave loss.style unset or 0")
        kind = config.pop("adv_kind", "nonsaturating")
        if kind != "nonsaturating":
            raise InputError(
                f"loss.recipe=lama trains with the non-saturating GAN loss only; got adv_kind={kind!r}"
            )
        perceptual = config.get("perceptual", LAMA_WEIGHTS["perceptual"])
        vgg = load_vgg() if isinstance(perceptual, (int, float)) and perceptual > 0 else None
        return cls(vgg, **config)

    def check_models(self, generator: nn.Module, critic: nn.Module | None) -> None:
        super().check_models(generator, critic)
        if critic is not None and not isinstance(critic, LaMaDiscriminator):
            raise InputError(
                "loss.recipe=lama needs a critic that returns (scores, features) for feature "
                f"matching; set model.discriminator=lama_d (got {type(critic).__name__})"
            )

    @property
    def weights(self) -> dict[str, float]:
        """Weights of the generator's logged terms (those > 0): ``total = sum w[k] * logs[k]``."""
        return {k: w for k, w in self._weights.items() if w > 0}

    def critic_loss(self, critic, image, mask, parts):
        real = image.detach().requires_grad_(self.r1 > 0)
        real_scores, _ = critic(real)
        fake_scores, _ = critic(parts["raw"].detach())
        d_real, d_fake = nonsaturating_critic_loss(real_scores, fake_scores, mask)
        total, logs = d_real + d_fake, {"real": d_real.detach(), "fake": d_fake.detach()}
        if self.r1 > 0:
            (grad,) = torch.autograd.grad(real_scores.float().sum(), real, create_graph=True)
            penalty = grad.float().square().flatten(1).sum(1).mean()
            total = total + self.r1 * penalty
            logs["r1"] = penalty.detach()
        return total, logs

    def generator_loss(self, critic, image, mask, parts):
        raw, target = parts["raw"], image.detach()
        w = self._weights
        diff = (raw.float() - target.float()).abs()
        hole = mask.float()
        terms: dict[str, torch.Tensor] = {}
        if w["l1"] > 0:
            terms["l1"] = ((1.0 - hole) * diff).mean()
        if w["l1_hole"] > 0:
            terms["l1_hole"] = (hole * diff).mean()
        if self.vgg is not None:
            layers = [n for n in TAPS if n in self.perceptual_layers]
            pred_feats = vgg_features(self.vgg, raw, layers, self.resize)
            with torch.no_grad():
                target_feats = vgg_features(self.vgg, target, layers, self.resize)
            terms["perceptual"] = _squared_per_layer(
                [pred_feats[n] for n in layers], [target_feats[n] for n in layers]
            ).sum()
        if self.uses_critic:
            if critic is None:
                raise InputError("this LaMa recipe has adv or fm > 0 and needs the critic; got None")
            fake_scores, fake_feats = critic(raw)
            if w["adv"] > 0:
                terms["adv"] = F.softplus(-fake_scores.float()).mean()
            if w["fm"] > 0:
                with torch.no_grad():
                    _, real_feats = critic(target)
                terms["fm"] = _squared_per_layer(fake_feats, real_feats).mean()
        total = torch.zeros((), device=image.device)
        for key, value in terms.items():
            total = total + w[key] * value
        return total, {k: v.detach() for k, v in terms.items()}
