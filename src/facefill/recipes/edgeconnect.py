"""EdgeConnect's objective (Nazeri et al. 2019) in the four training modes of the release.

EdgeConnect trains an edge generator G1 against an edge critic and an image generator G2
against an image critic (generator ``edgeconnect``, critic ``edgeconnect_d``). The released
code (``knazeri/edge-connect``, ``src/edge_connect.py``) trains them in one of four modes,
here ``loss.args.mode``:

1. the edge model: G1 and the edge critic only;
2. the inpainting model on ground-truth edges: G2 and the image critic only, G2's edge
   input being the Canny edges of the whole ground truth;
3. the inpainting model on the edge model's edges: G2 and the image critic only, G1 fixed,
   G2's edge input G1's prediction in the hole (detached);
4. joint: all four networks in one step, G2 on G1's prediction in the hole *without*
   detaching it, so that G2's losses reach G1 as well as G1's own (the release sums both
   gradients into G1's update).

The paper's schedule is 1, then 2, then 3 (or 4) starting from the previous stage's weights
(``train.init_weights``). The default is **mode 4**: it is the only released mode that
trains both generators in one run, so the only one that gives a usable inpainter to a user
training from scratch at a small budget (mode 2 or 3 alone leaves G1 at its random
initialisation, mode 1 leaves G2 there). A frozen network has ``requires_grad`` off (set by
:meth:`EdgeConnectRecipe.check_models`), so its parameters and its optimiser state stay as
they are; a critic out of the mode is not evaluated.

Published choices followed: the edge stage minimises ``edge_adv·Ladv + fm·Lfm`` (1 and 10),
the non-saturating adversarial loss of the critic on ``[gray, G1's raw edges]`` plus feature
matching, the L1 distance between the critic's activations (four hidden layers and the
output, each a mean, summed) on the fake and the real pair ``[gray, Canny(gray)]``, the real
edges being Canny (sigma 2) of the whole ground truth, computed here without gradient. The
image stage minimises ``l1·L1 + adv·Ladv + perceptual·Lperc + style·Lstyle`` (1, 0.1, 0.1,
250) on G2's raw output: L1 over all pixels divided by the hole fraction of the batch (as
the official code), perceptual as the L1 distance of VGG activations (mean per layer,
summed), style as the L1 distance of Gram matrices ``F F^T / (C H W)`` of the hole-masked
output and target (``output * mask`` vs ``image * mask``). Each critic minimises
``(BCE(real, 1) + BCE(fake, 0)) / 2``; the critic loss is their sum (logged as
``d_edge``/``d_image``). VGG sees the raw [0, 1] image in the official code (torchvision's
VGG19 without ImageNet normalisation): ``configs/edgeconnect_faces_cpu.yaml`` sets
``loss.vgg_input: raw``, which the trainer's VGG loader applies to this recipe's VGG.
Deviations: (1) the published critics end in a sigmoid and use BCE; ours return logits and
use BCE-with-logits, the same objective without the sigmoid's saturation in float32/bf16;
(2) the paper's VGG19 taps (perceptual relu1_1..relu5_1, style relu2_2/relu3_4/relu4_4/relu5_2)
are replaced by the nearest taps of facefill's VGG16, which stops at conv4_3: perceptual
relu1_2, relu2_2, relu3_3, relu4_3; style relu2_2, relu3_3, relu4_3 (no fifth block);
(3) G1's input edges are Canny of the known pixels only (see
:mod:`facefill.models.edgeconnect`), while the targets are Canny of the whole ground truth,
as published; the targets use the generator's own Canny settings
(:meth:`EdgeConnectRecipe.check_models` copies them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..edges import canny, rgb_to_gray
from ..errors import InputError
from ..losses import _check_resize, gram_difference, vgg_features
from .base import Recipe, choice_arg, given_settings, register_recipe, weight_arg

__all__ = ["EdgeConnectRecipe", "EDGECONNECT_WEIGHTS", "MODES", "DEFAULT_MODE", "PERCEPTUAL_LAYERS", "STYLE_LAYERS"]

EDGECONNECT_WEIGHTS = {
    "edge_adv": 1.0,
    "fm": 10.0,
    "l1": 1.0,
    "adv": 0.1,
    "perceptual": 0.1,
    "style": 250.0,
}
# VGG16 stand-ins for the paper's VGG19 taps (see the module doc).
PERCEPTUAL_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
STYLE_LAYERS = ("relu2_2", "relu3_3", "relu4_3")
_ADV_KINDS = ("bce", "nsgan")
#: The released training modes (``MODEL`` in the official config): what each one trains.
MODES = {1: ("edge",), 2: ("image",), 3: ("image",), 4: ("edge", "image")}
#: G2's edge input in training, per mode (see facefill.models.edgeconnect).
EDGE_SOURCE = {1: "predicted", 2: "truth", 3: "predicted", 4: "joint"}
DEFAULT_MODE = 4
_STAGE_TERMS = {"edge": ("edge_adv", "fm"), "image": ("l1", "adv", "perceptual", "style")}
_KEYS = (*EDGECONNECT_WEIGHTS, "adv_kind", "resize", "mode")


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    logits = logits.float()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


@register_recipe
class EdgeConnectRecipe(Recipe):
    """EdgeConnect's two-stage objective (see the module doc for every term and mode).

    Config: ``loss.l1``, ``loss.adv``, ``loss.perceptual``, ``loss.style``, ``loss.resize``
    (VGG input size; null runs VGG on the image as is, as published), ``loss.adv_kind``
    (only ``bce``); ``loss.args`` takes ``edge_adv``, ``fm`` and ``mode`` (1-4, default 4).
    Only the terms of the stages the mode trains are computed. Needs ``parts`` with
    ``"raw"`` and ``"edges"`` (the ``edgeconnect`` generator) and the ``edgeconnect_d``
    critic, called as ``critic(x, which)``.
    """

    name = "edgeconnect"
    ARGS = {
        "edge_adv": weight_arg(),
        "fm": weight_arg(),
        "mode": choice_arg(
            *MODES, note="1 edge model, 2 inpainting model on ground-truth edges, 3 inpainting model on the "
            "edge model's edges, 4 joint",
        ),
    }
    uses_critic = True

    def __init__(
        self,
        vgg: nn.Module | None = None,
        *,
        edge_adv: float = EDGECONNECT_WEIGHTS["edge_adv"],
        fm: float = EDGECONNECT_WEIGHTS["fm"],
        l1: float = EDGECONNECT_WEIGHTS["l1"],
        adv: float = EDGECONNECT_WEIGHTS["adv"],
        perceptual: float = EDGECONNECT_WEIGHTS["perceptual"],
        style: float = EDGECONNECT_WEIGHTS["style"],
        resize: int | None = None,
        adv_kind: str = "bce",
        mode: int = DEFAULT_MODE,
    ) -> None:
        super().__init__()
        if isinstance(mode, bool) or mode not in MODES:
            raise InputError(
                f"loss.args.mode for edgeconnect must be 1 (edge model), 2 (inpainting model on "
                f"ground-truth edges), 3 (inpainting model on the edge model's edges) or 4 (joint), "
                f"got {mode!r}"
            )
        self.mode = int(mode)
        self.stages = MODES[self.mode]
        self._weights = {
            "edge_adv": float(edge_adv), "fm": float(fm), "l1": float(l1), "adv": float(adv),
            "perceptual": float(perceptual), "style": float(style),
        }
        for k, w in self._weights.items():
            if not w >= 0:
                raise InputError(f"loss weight {k} must be >= 0, got {w}")
        if adv_kind not in _ADV_KINDS:
            raise InputError(
                f"loss.adv_kind for edgeconnect must be one of {_ADV_KINDS} (its critics are "
                f"non-saturating GANs), got {adv_kind!r}"
            )
        uses_vgg = "image" in self.stages and (perceptual > 0 or style > 0)
        if uses_vgg and vgg is None:
            raise InputError("the perceptual and style terms need a VGG16 (vgg=...)")
        self.vgg = vgg if uses_vgg else None
        self.resize = _check_resize(resize)
        self.canny_settings = {"sigma": 2.0, "low": 0.1, "high": 0.2}

    @classmethod
    def from_config(cls, loss: Mapping[str, Any], load_vgg: Callable[[], nn.Module]) -> EdgeConnectRecipe:
        config = given_settings(cls.name, loss, _KEYS, "edge_adv and fm under loss.args")
        weights = {**EDGECONNECT_WEIGHTS, **{k: config[k] for k in EDGECONNECT_WEIGHTS if k in config}}
        image_stage = "image" in MODES.get(config.get("mode", DEFAULT_MODE), ("image",))
        vgg = load_vgg() if image_stage and (weights["perceptual"] > 0 or weights["style"] > 0) else None
        return cls(vgg, **config)

    def check_models(self, generator: nn.Module, critic: nn.Module | None) -> None:
        from ..models.edgeconnect import EdgeConnectCritics, EdgeConnectGenerator

        super().check_models(generator, critic)
        if not isinstance(generator, EdgeConnectGenerator):
            raise InputError(
                f"loss.recipe=edgeconnect trains the edgeconnect generator (edges, then image); "
                f"got {type(generator).__name__}: set model.generator=edgeconnect"
            )
        if not isinstance(critic, EdgeConnectCritics):
            raise InputError(
                f"loss.recipe=edgeconnect needs its edge and image critics; got "
                f"{type(critic).__name__}: set model.discriminator=edgeconnect_d"
            )
        self.canny_settings = {"sigma": generator.sigma, "low": generator.low, "high": generator.high}
        # What the mode trains: the rest is frozen (no gradient, so no update and no
        # optimiser state); G2's edge input is the mode's.
        generator.edge_source = EDGE_SOURCE[self.mode]
        generator.edge_generator.requires_grad_("edge" in self.stages)
        generator.image_generator.requires_grad_("image" in self.stages)
        critic.edge.requires_grad_("edge" in self.stages)
        critic.image.requires_grad_("image" in self.stages)

    def _critic_call(self, critic, edge_input, image_input):
        """``(edge_result, image_result)`` of the critics the mode trains (``None`` for the other)."""
        if self.stages == ("edge", "image"):  # one forward over both: DDP sees every parameter once
            return critic((edge_input, image_input), "both")
        if self.stages == ("edge",):
            return critic(edge_input, "edge"), None
        return None, critic(image_input, "image")

    def edge_targets(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gray, Canny(gray))`` of the whole ground truth, without gradient."""
        gray = rgb_to_gray(image.detach().float())
        return gray, canny(gray, None, **self.canny_settings)

    def critic_loss(self, critic, image, mask, parts):
        gray, edges = self.edge_targets(image)
        real_pair = torch.cat([gray, edges], 1)
        fake_pair = torch.cat([gray, parts["edges"].to(gray.dtype)], 1)
        results = self._critic_call(
            critic, torch.cat([real_pair, fake_pair]), torch.cat([image, parts["raw"].to(image.dtype)])
        )
        terms = {}
        for name, result in zip(("edge", "image"), results):
            if result is not None:
                real, fake = result[0].chunk(2)
                terms[name] = (_bce(real, True) + _bce(fake, False)) / 2
        return sum(terms.values()), {k: v.detach() for k, v in terms.items()}

    def generator_loss(self, critic, image, mask, parts):
        if critic is None:
            raise InputError("loss.recipe=edgeconnect needs its critics (model.discriminator=edgeconnect_d)")
        w = {k: v for k, v in self.weights.items()}
        target = image.detach().float()
        raw = parts["raw"].float()
        gray, edges = self.edge_targets(image)
        terms: dict[str, torch.Tensor] = {}
        edge_result, image_result = self._critic_call(critic, torch.cat([gray, parts["edges"].float()], 1), raw)
        if w.get("edge_adv", 0) > 0:
            terms["edge_adv"] = _bce(edge_result[0], True)
        if w.get("fm", 0) > 0:
            with torch.no_grad():
                _, real_feats = critic(torch.cat([gray, edges], 1), "edge")
            terms["fm"] = sum(
                (f.float() - r.float()).abs().mean() for f, r in zip(edge_result[1], real_feats)
            )
        if w.get("l1", 0) > 0:
            hole_fraction = mask.float().mean().clamp_min(1.0 / mask.numel())
            terms["l1"] = (raw - target).abs().mean() / hole_fraction
        if w.get("adv", 0) > 0:
            terms["adv"] = _bce(image_result[0], True)
        if self.vgg is not None:
            terms.update(self._vgg_terms(raw, target, mask.float()))
        total = torch.zeros((), device=image.device)
        for k, v in terms.items():
            total = total + w[k] * v
        return total, {k: v.detach() for k, v in terms.items()}

    def _vgg_terms(self, raw, target, mask) -> dict[str, torch.Tensor]:
        w, out = self._weights, {}
        if w["perceptual"] > 0:
            pf = vgg_features(self.vgg, raw, PERCEPTUAL_LAYERS, self.resize)
            with torch.no_grad():
                tf = vgg_features(self.vgg, target, PERCEPTUAL_LAYERS, self.resize)
            out["perceptual"] = sum(
                (pf[n].float() - tf[n].float()).abs().mean() for n in PERCEPTUAL_LAYERS
            )
        if w["style"] > 0:
            pf = vgg_features(self.vgg, raw * mask, STYLE_LAYERS, self.resize)
            with torch.no_grad():
                tf = vgg_features(self.vgg, target * mask, STYLE_LAYERS, self.resize)
            out["style"] = sum(
                gram_difference(pf[n], tf[n]).abs().mean() for n in STYLE_LAYERS
            )
        return out

    @property
    def weights(self) -> dict[str, float]:
        """The weights of the terms the mode computes (the stages it trains), those above 0."""
        active = {k for stage in self.stages for k in _STAGE_TERMS[stage]}
        return {k: v for k, v in self._weights.items() if v > 0 and k in active}

