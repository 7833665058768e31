"""Training losses of the paper (§1.2–1.4): L1, VGG16 perceptual and style, adversarial;
and an SSIM term the paper does not have (off by default).

Each term is an ``nn.Module`` with an explicit ``weight`` (BasicSR style). ``forward``
returns the *weighted* value, the one that goes into a total; the named methods
(``distance``, ``from_features``, ``generator_loss``, ``discriminator_loss``) return
*unweighted* values. :class:`GeneratorLoss` composes the generator's terms from a config
and logs each term unweighted beside the weighted total.

Images are (B, 3, H, W) RGB in [0, 1]. Every loss is a float32 scalar, also under bf16 /
fp16 autocast: VGG runs in the autocast dtype, feature differences are taken in float32,
and the style loss's Gram differences come out in float32 with autocast switched off, from one
product in the features' dtype whose rounding is relative to the difference
(:func:`gram_difference`).

Reductions, with the paper's weights (0.05 perceptual, 120 style, 1 L1, 0.05 adversarial):

- perceptual: per layer, the mean squared difference of the feature maps (the paper's
  ``||phi(gt) - phi(out)||^2 / (C H W)``, averaged over the batch), summed over layers.
- style: per layer, Gram matrices ``G = F F^T / (C H W)`` of the (C, H*W) feature map, then
  the **mean absolute difference** over the C x C entries (``criterion="l1"``), summed over
  layers. The weight 120 (with 0.05 for perceptual) comes from PConv (Liu et al. 2018), whose
  style term is the L1 norm of the normalised Gram difference divided by C^2, and RFR-Net's
  official code, which the paper builds on, computes exactly this mean. The paper writes a
  squared L2 norm. Gram entries are small (~0.01-0.1), so squaring changes the scale a lot: on six
  face crops with a blurred patch (calibrated ImageNet VGG16, 224x224) the L1 mean is 0.024,
  the squared mean 0.00057 (40x smaller; the weight 120 would leave the term nearly inert)
  and the squared sum over the C x C entries 16 (660x larger). ``criterion="mse"`` gives the
  squared mean for those who want the literal formula.
- ssim (not in the paper; weight 0 unless set): ``1 - SSIM(pred, target)``, SSIM as
  :func:`facefill.metrics.ssim` scores it (torchmetrics, 11x11 Gaussian window, sigma 1.5, data
  range 1, averaged over the batch), in float32 with autocast off. On a composite the known
  pixels agree exactly, so only windows that reach into the hole contribute.
- gradient (not in the paper; weight 0 unless set): the gradient difference loss of Mathieu et
  al. (ICLR 2016) with alpha 1, ``mean | |dx pred| - |dx target| | + mean | |dy pred| - |dy
  target| |`` over the RGB channels, dx and dy the differences of horizontal and vertical
  neighbours, in float32. It compares edge strength pixel by pixel, not edge sign. An edge drawn
  where the ground truth has none costs as much as one missing where it has one, so where the
  network cannot know where an edge goes the term favours none: measured on the demo recipe
  (``benchmarks/results/demo-weights-2026-12-06b``) it smooths the fills, like more SSIM or
  less style.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from ._device import autocast_off
from .errors import InputError
from .vgg import TAPS, VGG16Features

__all__ = [
    "PAPER_WEIGHTS",
    "AdversarialLoss",
    "GeneratorLoss",
    "GradientLoss",
    "L1Loss",
    "PerceptualLoss",
    "SSIMLoss",
    "StyleLoss",
    "gram_difference",
    "gram_matrix",
    "vgg_features",
]


# The paper's loss weights (§2.2), on torchvision's VGG16 activation scale.
PAPER_WEIGHTS = {"l1": 1.0, "perceptual": 0.05, "style": 120.0, "adv": 0.05}


def _rows(feat: torch.Tensor) -> bool:
    """Whether ``feat`` is read as (B, H*W, C) rows (channels_last) rather than (B, C, H*W)."""
    return not feat.is_contiguous() and feat.is_contiguous(memory_format=torch.channels_last)


def _flat(feat: torch.Tensor, rows: bool) -> torch.Tensor:
    """(B, C, H, W) as a view: (B, H*W, C) for ``rows``, else (B, C, H*W)."""
    b, c, h, w = feat.shape
    return feat.permute(0, 2, 3, 1).reshape(b, h * w, c) if rows else feat.reshape(b, c, h * w)


def _channel_product(x: torch.Tensor, y: torch.Tensor, rows: bool) -> torch.Tensor:
    """``X Y^T`` over the channels, (B, C, C), of two maps flattened by :func:`_flat`."""
    return torch.bmm(x.transpose(1, 2), y) if rows else torch.bmm(x, y.transpose(1, 2))


def _map_grad(flat: torch.Tensor, sym: torch.Tensor, shape: torch.Size, rows: bool) -> torch.Tensor:
    """``sym F`` for a symmetric (B, C, C) ``sym`` and a map flattened by :func:`_flat`, returned
    as (B, C, H, W) in the map's layout."""
    b, c, h, w = shape
    if rows:
        return torch.bmm(flat, sym).reshape(b, h, w, c).permute(0, 3, 1, 2)
    return torch.bmm(sym, flat).reshape(b, c, h, w)


class _Gram(torch.autograd.Function):
    """``G = F F^T / n`` and its gradient ``(dG + dG^T) F / n``, in the features' own layout.

    channels_last features (what the trainers use) are read as (B, H*W, C) and contiguous ones as
    (B, C, H*W), both views without a copy, and the gradient comes back in the same layout.
    Autograd's own backward of ``bmm(F, F^T)`` runs two bmms and, for channels_last features, a
    layout copy; this one runs one bmm, since G is symmetric. On the 2-core Zen 4 CPU a Gram of
    (8, 64, 128, 128) features with its backward took 2.2-2.7x less time for channels_last
    features and 1.5x less for contiguous ones, bf16 and fp32 alike. bf16 / fp16 features are
    upcast before the product, so G is computed in float32 (float64 stays float64); the gradient
    is computed in the features' own dtype, the dtype it is returned in (a bf16 matmul
    accumulates in float32), which spares a float32 copy of the features kept for the backward
    and a float32 product: with bf16 (8, 64, 128, 128) features, 19 -> 12 ms for the Gram and
    its backward.
    """

    @staticmethod
    def forward(ctx, feat: torch.Tensor) -> torch.Tensor:
        b, c, h, w = feat.shape
        rows = _rows(feat)
        with autocast_off(feat.device):
            flat = _flat(feat, rows)
            ctx.save_for_backward(flat)  # in the features' dtype: the backward runs in it
            ctx.meta = (feat.shape, rows)
            if flat.dtype != torch.float64:
                flat = flat.float()
            return _channel_product(flat, flat, rows).div_(c * h * w)

    @staticmethod
    @torch.autograd.function.once_differentiable  # no second derivative: refused, not wrong
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors
        shape, rows = ctx.meta
        with autocast_off(grad.device):
            sym = (grad + grad.transpose(1, 2)).div_(shape[1:].numel()).to(flat.dtype)
            return _map_grad(flat, sym, shape, rows)


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) float32 Gram matrix ``F F^T / (C H W)``, autocast off.

    float64 features give a float64 Gram (for gradient checks).
    """
    return _Gram.apply(feat)


class _GramDifference(torch.autograd.Function):
    """``G(A) - G(B)`` of two feature maps, as one product: with ``S = A + B`` and ``D = A - B``,
    ``A A^T - B B^T = (S D^T + D S^T) / 2``, so the difference is the symmetric part of ``S D^T``.

    This matters for bf16 features. The style loss uses only the difference, which is usually
    much smaller than either Gram; computed this way its rounding error is relative to the difference
    itself (a bf16 matmul accumulates in float32 and rounds its result once), not to the Grams.
    Casting both maps to float32 for two float32 Grams, as :func:`gram_matrix` does, costs a
    float32 copy of each map and two float32 products. The result is float32 (float64 for
    float64 features). The gradient is ``(dG + dG^T) A / n`` and ``-(dG + dG^T) B / n``, in each
    map's own dtype and layout, as :class:`_Gram`'s.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        rows = _rows(a)
        layout = torch.channels_last if rows else torch.contiguous_format
        with autocast_off(a.device):
            dtype = torch.promote_types(a.dtype, b.dtype)
            fa = _flat(a.to(dtype).contiguous(memory_format=layout), rows)
            fb = _flat(b.to(dtype).contiguous(memory_format=layout), rows)
            ctx.save_for_backward(fa if a.requires_grad else None, fb if b.requires_grad else None)
            ctx.meta = (a.shape, rows, a.dtype, b.dtype)
            sd = _channel_product(fa + fb, fa - fb, rows)
            sd = sd.double() if dtype == torch.float64 else sd.float()
            return (sd + sd.transpose(1, 2)).div_(2 * a.shape[1:].numel())

    @staticmethod
    @torch.autograd.function.once_differentiable  # no second derivative: refused, not wrong
    def backward(ctx, grad: torch.Tensor):
        fa, fb = ctx.saved_tensors
        shape, rows, a_dtype, b_dtype = ctx.meta
        with autocast_off(grad.device):
            sym = (grad + grad.transpose(1, 2)).div_(shape[1:].numel())
            grad_a = None if fa is None else _map_grad(fa, sym.to(fa.dtype), shape, rows).to(a_dtype)
            grad_b = None if fb is None else _map_grad(fb, sym.neg().to(fb.dtype), shape, rows).to(b_dtype)
            return grad_a, grad_b


def gram_difference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``gram_matrix(pred) - gram_matrix(target)``, (B, C, C) float32, autocast off, computed
    as one product whose rounding is relative to the difference (see :class:`_GramDifference`).

    The two maps must have the same shape; float64 maps give a float64 result.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise InputError(
            f"gram_difference needs two (B, C, H, W) maps of one shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    return _GramDifference.apply(pred, target)


def vgg_features(
    vgg: VGG16Features, x: torch.Tensor, layers: Iterable[str], resize: int | None
) -> dict[str, torch.Tensor]:
    """Taps of ``x`` after a bilinear resize to ``resize`` x ``resize`` (None: as is)."""
    if resize is not None and tuple(x.shape[-2:]) != (resize, resize):
        x = F.interpolate(
            x, size=(resize, resize), mode="bilinear", align_corners=False, antialias=False
        )
    return vgg(x, tuple(layers))


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise InputError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )


def _check_layers(layers: Sequence[str], what: str) -> tuple[str, ...]:
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    if not layers or any(n not in TAPS for n in layers):
        raise InputError(f"{what} must be a non-empty subset of {tuple(TAPS)}, got {layers}")
    return layers


def _check_resize(resize: int | None) -> int | None:
    if resize is not None and (not isinstance(resize, int) or isinstance(resize, bool) or resize < 1):
        raise InputError(f"resize must be a positive int or None, got {resize!r}")
    return resize


def loss_config(
    config: Any, vgg: VGG16Features | None, keys: Sequence[str], defaults: Mapping[str, float], what: str
) -> tuple[dict[str, Any], VGG16Features | None]:
    """Check a loss config (mapping or dataclass) against ``keys``; load VGG16 when needed.

    ``vgg_weights`` names the VGG16 file when ``vgg`` is not given: a path, None for the default
    search, ``"random"`` for random weights (tests only). Returns the config without it.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise InputError(f"config must be a mapping or a dataclass, got {type(config).__name__}")
    config = dict(config)
    weights = config.pop("vgg_weights", None)
    unknown = sorted(set(config) - set(keys))
    if unknown:
        raise InputError(f"unknown {what} config keys {unknown}; known: {[*keys, 'vgg_weights']}")
    needs_vgg = any(config.get(k, defaults[k]) > 0 for k in ("perceptual", "style"))
    if vgg is None and needs_vgg:
        if weights == "random":
            warnings.warn("perceptual and style losses use random VGG16 weights (tests only)")
            vgg = VGG16Features.random(seed=0)
        else:
            vgg = VGG16Features.from_pretrained(weights)
    return config, vgg


class _PixelLoss(nn.Module):
    """A weighted distance between two images: ``forward`` is ``weight * distance``."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * self.distance(pred, target)


class L1Loss(_PixelLoss):
    """Mean absolute difference over all pixels: ``weight * mean|pred - target|``."""

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unweighted mean absolute difference, float32."""
        _check_pair(pred, target)
        return (pred.float() - target.float()).abs().mean()


class SSIMLoss(_PixelLoss):
    """Structural dissimilarity ``weight * (1 - SSIM(pred, target))`` (see the module doc)."""

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unweighted ``1 - mean SSIM``, float32; 0 for identical images."""
        _check_pair(pred, target)
        with autocast_off(pred.device):
            value = structural_similarity_index_measure(
                pred.float(), target.float(), data_range=1.0, reduction="elementwise_mean"
            )
        return 1.0 - value


class GradientLoss(_PixelLoss):
    """Gradient difference loss ``weight * GDL(pred, target)`` (see the module doc)."""

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unweighted mean difference of the absolute neighbour differences, float32; 0 for
        identical images and for images that differ by a constant."""
        _check_pair(pred, target)
        p, t = pred.float(), target.float()
        dx = ((p[..., :, 1:] - p[..., :, :-1]).abs() - (t[..., :, 1:] - t[..., :, :-1]).abs()).abs()
        dy = ((p[..., 1:, :] - p[..., :-1, :]).abs() - (t[..., 1:, :] - t[..., :-1, :]).abs()).abs()
        return dx.mean() + dy.mean()


class _VGGTapLoss(nn.Module):
    """Shared call of the VGG-based losses: taps of both images, then ``from_features``."""

    vgg: VGG16Features
    layers: tuple[str, ...]
    resize: int | None
    weight: float

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        pf = vgg_features(self.vgg, pred, self.layers, self.resize)
        tf = vgg_features(self.vgg, target, self.layers, self.resize)
        return self.weight * self.from_features(pf, tf)


class PerceptualLoss(_VGGTapLoss):
    """VGG16 feature-reconstruction loss: sum over ``layers`` of the mean squared
    difference of the taps (normalised by C·H·W and averaged over the batch).

    Both images are resized to ``resize`` x ``resize`` first (bilinear, no antialias; the
    paper's 224; None keeps the input size).
    """

    def __init__(
        self,
        vgg: VGG16Features,
        layers: Sequence[str] = ("relu3_3",),
        resize: int | None = 224,
        weight: float = 0.05,
    ) -> None:
        super().__init__()
        self.vgg = vgg
        self.layers = _check_layers(layers, "layers")
        self.resize = _check_resize(resize)
        self.weight = float(weight)

    def from_features(
        self, pred_feats: Mapping[str, torch.Tensor], target_feats: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Unweighted loss from precomputed taps (dicts holding at least ``self.layers``)."""
        total = torch.zeros((), device=pred_feats[self.layers[0]].device)
        for name in self.layers:
            total = total + (pred_feats[name].float() - target_feats[name].float()).square().mean()
        return total


class StyleLoss(_VGGTapLoss):
    """Gram-matrix style loss: sum over ``layers`` of the mean absolute (``criterion="l1"``,
    default) or mean squared (``"mse"``) difference between the Gram matrices
    ``F F^T / (C H W)`` of the two images' taps (:func:`gram_difference`, float32). Resizing as
    :class:`PerceptualLoss`.
    """

    def __init__(
        self,
        vgg: VGG16Features,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
        resize: int | None = 224,
        weight: float = 120.0,
        criterion: str = "l1",
    ) -> None:
        super().__init__()
        if criterion not in ("l1", "mse"):
            raise InputError(f"criterion must be 'l1' or 'mse', got {criterion!r}")
        self.vgg = vgg
        self.layers = _check_layers(layers, "layers")
        self.resize = _check_resize(resize)
        self.weight = float(weight)
        self.criterion = criterion

    def from_features(
        self, pred_feats: Mapping[str, torch.Tensor], target_feats: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Unweighted loss from precomputed taps (dicts holding at least ``self.layers``)."""
        total = torch.zeros((), device=pred_feats[self.layers[0]].device)
        for name in self.layers:
            diff = gram_difference(pred_feats[name], target_feats[name])
            total = total + (diff.abs() if self.criterion == "l1" else diff.square()).mean()
        return total


class AdversarialLoss(nn.Module):
    """Critic objectives for unbounded score maps (e.g. PatchGAN's (B, 1, h, w)).

    - ``"hinge"`` (default): D minimises ``mean(relu(1 - real)) + mean(relu(1 + fake))``.
    - ``"wgan"``: D minimises ``mean(fake) - mean(real)`` (no clipping or penalty; the
      Lipschitz bound comes only from the critic's spectral norm).

    For both, G minimises ``-mean(fake)``. Hinge is the default: it is the Wasserstein
    critic objective with the margin that SN-GAN and SN-PatchGAN (DeepFill v2) pair with
    spectral normalisation; the margin stops D from driving scores without bound, while the
    generator's objective is the same as WGAN's, as the paper's "Wasserstein-based" asks.

    ``forward(fake_scores)`` = ``weight * generator_loss(fake_scores)``.
    ``discriminator_loss`` is unweighted: the critic trains on it alone, under its own
    optimiser (as BasicSR's GAN loss does).
    """

    KINDS = ("hinge", "wgan")

    def __init__(self, kind: str = "hinge", weight: float = 0.05) -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise InputError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        self.weight = float(weight)

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        """Unweighted generator loss ``-mean(D(fake))``, float32."""
        return -fake_scores.float().mean()

    def discriminator_loss(
        self, real_scores: torch.Tensor, fake_scores: torch.Tensor
    ) -> torch.Tensor:
        """Unweighted critic loss on scores of real and (detached) generated images."""
        real, fake = real_scores.float(), fake_scores.float()
        if self.kind == "hinge":
            return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
        return fake.mean() - real.mean()

    def forward(self, fake_scores: torch.Tensor) -> torch.Tensor:
        return self.weight * self.generator_loss(fake_scores)


class GeneratorLoss(nn.Module):
    """The generator's total loss ``l1·L1 + perceptual·Lper + style·Lstyle + adv·Ladv``,
    plus ``ssim·(1 - SSIM)`` where ``ssim > 0`` and ``gradient·GDL`` where ``gradient > 0`` (neither
    the paper's; both off by default).

    ``forward(pred, target, fake_scores=None) -> (total, logs)``: ``pred`` is the
    generator's output, ``target`` the ground truth (detached: it never receives gradient),
    both (B, 3, H, W) in [0, 1]; ``fake_scores`` is the discriminator's output on ``pred``,
    required when ``adv > 0``. ``total`` is the weighted float32 sum; ``logs`` maps each
    enabled term (``"l1"``, ``"ssim"``, ``"gradient"``, ``"perceptual"``, ``"style"``, ``"adv"``) to its *unweighted*,
    detached value. A weight of 0 switches a term off: it is neither computed nor logged.

    Perceptual and style share one VGG pass per image (pred with grad, target without),
    over the union of their layers, at one ``resize``. With ``vgg=None`` and a VGG term
    enabled the extractor comes from :meth:`VGG16Features.from_pretrained`, which raises
    :class:`facefill.vgg.VGGWeightsNotFound` rather than falling back to random weights.
    """

    CONFIG_KEYS = (
        "l1",
        "perceptual",
        "style",
        "adv",
        "perceptual_layers",
        "style_layers",
        "resize",
        "style_criterion",
        "adv_kind",
        "ssim",
        "gradient",
    )

    def __init__(
        self,
        vgg: VGG16Features | None = None,
        *,
        l1: float = PAPER_WEIGHTS["l1"],
        perceptual: float = PAPER_WEIGHTS["perceptual"],
        style: float = PAPER_WEIGHTS["style"],
        adv: float = PAPER_WEIGHTS["adv"],
        perceptual_layers: Sequence[str] = ("relu3_3",),
        style_layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
        resize: int | None = 224,
        style_criterion: str = "l1",
        adv_kind: str = "hinge",
        ssim: float = 0.0,
        gradient: float = 0.0,
    ) -> None:
        super().__init__()
        terms = (
            ("l1", l1), ("perceptual", perceptual), ("style", style), ("adv", adv), ("ssim", ssim),
            ("gradient", gradient),
        )
        for name, w in terms:
            if w < 0:
                raise InputError(f"loss weight {name} must be >= 0, got {w}")
        self.resize = _check_resize(resize)
        self.l1 = L1Loss(l1)
        self.ssim = SSIMLoss(ssim)
        self.gradient = GradientLoss(gradient)
        self.adv = AdversarialLoss(adv_kind, adv)
        self.vgg: VGG16Features | None = None
        self.perceptual: PerceptualLoss | None = None
        self.style: StyleLoss | None = None
        if perceptual > 0 or style > 0:
            self.vgg = vgg if vgg is not None else VGG16Features.from_pretrained()
        if perceptual > 0:
            self.perceptual = PerceptualLoss(self.vgg, perceptual_layers, resize, perceptual)
        if style > 0:
            self.style = StyleLoss(self.vgg, style_layers, resize, style, style_criterion)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | Any, vgg: VGG16Features | None = None
    ) -> GeneratorLoss:
        """Build from a mapping (or dataclass) whose keys are among :attr:`CONFIG_KEYS`.

        ``vgg_weights`` (optional) names the VGG16 file when ``vgg`` is not given: a path, or
        None for the default search; ``"random"`` gives random weights, for tests only.
        """
        config, vgg = loss_config(config, vgg, cls.CONFIG_KEYS, PAPER_WEIGHTS, "loss")
        return cls(vgg, **config)

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        fake_scores: torch.Tensor | None = None,
        *,
        adversarial: bool = True,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``adversarial=False`` leaves the adversarial term out (a phase before the critic joins)."""
        _check_pair(pred, target)
        target = target.detach()
        total = torch.zeros((), device=pred.device)
        logs: dict[str, torch.Tensor] = {}

        def add(name: str, weight: float, value: torch.Tensor) -> None:
            nonlocal total
            total = total + weight * value
            logs[name] = value.detach()

        if self.l1.weight > 0:
            add("l1", self.l1.weight, self.l1.distance(pred, target))
        if self.ssim.weight > 0:
            add("ssim", self.ssim.weight, self.ssim.distance(pred, target))
        if self.gradient.weight > 0:
            add("gradient", self.gradient.weight, self.gradient.distance(pred, target))
        if self.vgg is not None:
            terms = [t for t in (self.perceptual, self.style) if t is not None]
            layers = [n for n in TAPS if any(n in t.layers for t in terms)]
            pf = vgg_features(self.vgg, pred, layers, self.resize)
            tf = vgg_features(self.vgg, target, layers, self.resize)
            if self.perceptual is not None:
                add("perceptual", self.perceptual.weight, self.perceptual.from_features(pf, tf))
            if self.style is not None:
                add("style", self.style.weight, self.style.from_features(pf, tf))
        if self.adv.weight > 0 and adversarial:
            if fake_scores is None:
                raise InputError(
                    "fake_scores (the discriminator's output on pred) is required when the "
                    "adv weight is > 0; set adv=0 to train without the adversarial term"
                )
            add("adv", self.adv.weight, self.adv.generator_loss(fake_scores))
        return total, logs
