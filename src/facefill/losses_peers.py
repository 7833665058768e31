"""Training losses of the peer methods facefill compares with (SPEC §6).

:class:`PConvLoss` is the loss of Liu et al. (ECCV 2018), with the paper's definitions and
weights; RFR-Net's official recipe uses the same terms and weights (SPEC §6). With ``M`` the
valid map (1 = known), ``I_out`` the raw prediction, ``I_comp`` the composite (``I_out`` in
the hole, the ground truth elsewhere) and ``N`` the number of elements of an image
(``C H W``), per image and averaged over the batch:

- ``valid`` (x1): ``|M (I_out - I_gt)|_1 / N``; ``hole`` (x6): ``|(1 - M)(I_out - I_gt)|_1 / N``;
- ``perceptual`` (x0.05): sum over the VGG16 taps ``pool1, pool2, pool3`` of the mean absolute
  difference of the features, for ``I_out`` (``perceptual_out``) and ``I_comp``
  (``perceptual_comp``);
- ``style`` (x120): sum over the same taps of the mean absolute difference of the Gram
  matrices ``F F^T / (C H W)`` (the paper's ``1/C^2 |K (F^T F - ...)|_1``), for ``I_out``
  (``style_out``) and ``I_comp`` (``style_comp``);
- ``tv`` (x0.1): the paper's total variation of ``I_comp`` on ``P``, the hole dilated by one
  pixel (3x3): the absolute differences of horizontally and vertically adjacent pixels
  that both lie in ``P``, summed over channels and divided by ``N``.

The paper runs VGG on the image as is (512x512); ``resize`` (default None) can resize it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import InputError
from .losses import _check_layers, _check_pair, _check_resize, gram_difference, loss_config, vgg_features
from .vgg import VGG16Features

__all__ = ["PCONV_WEIGHTS", "PConvLoss", "dilate", "hole_total_variation"]

PCONV_WEIGHTS = {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style": 120.0, "tv": 0.1}


def dilate(mask: torch.Tensor, pixels: int = 1) -> torch.Tensor:
    """Binary dilation of a (B, 1, H, W) mask by a (2p+1) x (2p+1) square."""
    return F.max_pool2d(mask, 2 * pixels + 1, stride=1, padding=pixels)


def hole_total_variation(image: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Sum of |differences| of adjacent pixel pairs inside ``region``, divided by ``image.numel()``.

    ``image`` (B, C, H, W); ``region`` (B, 1, H, W) binary: a pair counts when both of its
    pixels are in the region. Float32; the paper's L_tv, averaged over the batch.
    """
    x, r = image.float(), region.float()
    horizontal = (x[..., :, 1:] - x[..., :, :-1]).abs() * (r[..., :, 1:] * r[..., :, :-1])
    vertical = (x[..., 1:, :] - x[..., :-1, :]).abs() * (r[..., 1:, :] * r[..., :-1, :])
    return (horizontal.sum() + vertical.sum()) / x.numel()


def _check_mask(mask: torch.Tensor, image: torch.Tensor) -> None:
    expected = (image.shape[0], 1, *image.shape[2:])
    if tuple(mask.shape) != expected:
        raise InputError(
            f"mask must have shape {expected} (B, 1, H, W; 1 = hole), got {tuple(mask.shape)}"
        )


class PConvLoss(nn.Module):
    """The PConv loss ``valid + 6 hole + 0.05 perceptual + 120 style + 0.1 tv`` (module doc).

    ``forward(raw, target, mask) -> (total, logs)``: ``raw`` is the generator's prediction for
    every pixel (``G(image, mask, return_raw=True)[1]``; the composite is built here),
    ``target`` the ground truth (detached), both (B, 3, H, W) in [0, 1]; ``mask`` (B, 1, H, W),
    1 = hole. ``total`` is the weighted float32 sum; ``logs`` maps each enabled term
    (``valid``, ``hole``, ``perceptual_out``, ``perceptual_comp``, ``style_out``,
    ``style_comp``, ``tv``) to its unweighted, detached value, and
    ``total == sum(self.weights[k] * logs[k])``. A weight of 0 switches a term off.
    """

    CONFIG_KEYS = ("valid", "hole", "perceptual", "style", "tv", "layers", "resize")

    def __init__(
        self,
        vgg: VGG16Features | None = None,
        *,
        valid: float = PCONV_WEIGHTS["valid"],
        hole: float = PCONV_WEIGHTS["hole"],
        perceptual: float = PCONV_WEIGHTS["perceptual"],
        style: float = PCONV_WEIGHTS["style"],
        tv: float = PCONV_WEIGHTS["tv"],
        layers: Sequence[str] = ("pool1", "pool2", "pool3"),
        resize: int | None = None,
    ) -> None:
        super().__init__()
        given = {"valid": valid, "hole": hole, "perceptual": perceptual, "style": style, "tv": tv}
        for name, w in given.items():
            if not w >= 0:
                raise InputError(f"loss weight {name} must be >= 0, got {w}")
        self.term_weights = {k: float(w) for k, w in given.items()}
        self.layers = _check_layers(layers, "layers")
        self.resize = _check_resize(resize)
        self.vgg: VGG16Features | None = None
        if perceptual > 0 or style > 0:
            self.vgg = vgg if vgg is not None else VGG16Features.from_pretrained()

    @property
    def weights(self) -> dict[str, float]:
        """Weight of every logged term, by its log name (enabled terms only)."""
        w = self.term_weights
        out = {k: w[k] for k in ("valid", "hole")}
        for term in ("perceptual", "style"):
            out[f"{term}_out"] = out[f"{term}_comp"] = w[term]
        out["tv"] = w["tv"]
        return {k: v for k, v in out.items() if v > 0}

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | Any, vgg: VGG16Features | None = None
    ) -> PConvLoss:
        """Build from a mapping (or dataclass) with keys among :attr:`CONFIG_KEYS`, plus
        ``vgg_weights`` (a path, None for the default search, ``"random"`` for tests)."""
        config, vgg = loss_config(config, vgg, cls.CONFIG_KEYS, PCONV_WEIGHTS, "PConv loss")
        return cls(vgg, **config)

    def forward(
        self, raw: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        _check_pair(raw, target)
        _check_mask(mask, raw)
        target = target.detach().float()
        raw = raw.float()
        hole = mask.detach().float()
        comp = hole * raw + (1.0 - hole) * target
        values: dict[str, torch.Tensor] = {}
        w = self.weights
        if "valid" in w:
            values["valid"] = ((1.0 - hole) * (raw - target)).abs().mean()
        if "hole" in w:
            values["hole"] = (hole * (raw - target)).abs().mean()
        if self.vgg is not None and any(k in w for k in ("perceptual_out", "style_out")):
            both = vgg_features(self.vgg, torch.cat([raw, comp]), self.layers, self.resize)
            with torch.no_grad():
                tf = vgg_features(self.vgg, target, self.layers, self.resize)
            for name, k in (("out", 0), ("comp", 1)):
                feats = {n: f.chunk(2)[k] for n, f in both.items()}
                if "perceptual_out" in w:
                    values[f"perceptual_{name}"] = sum(
                        (feats[n].float() - tf[n].float()).abs().mean() for n in self.layers
                    )
                if "style_out" in w:
                    values[f"style_{name}"] = sum(
                        gram_difference(feats[n], tf[n]).abs().mean()
                        for n in self.layers
                    )
        if "tv" in w:
            values["tv"] = hole_total_variation(comp, dilate(hole))
        total = torch.zeros((), device=raw.device)
        for k, v in values.items():
            total = total + w[k] * v
        return total, {k: v.detach() for k, v in values.items()}
