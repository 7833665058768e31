"""EdgeConnect (Nazeri et al., "EdgeConnect: Generative Image Inpainting with Adversarial
Edge Learning", 2019): an edge generator draws the missing edges, an image generator
fills the hole guided by them; each has its own 70x70 PatchGAN.

Both generators share one architecture: a 7x7 conv behind 3-pixel reflection padding, two
4x4 stride-2 convs (``width`` x 1, 2, 4 channels), ``blocks`` residual blocks (3x3 conv with
dilation 2, 3x3 conv, reflection padding), two 4x4 stride-2 transposed convs and a 7x7 conv
to the output; instance normalisation (no affine parameters) and ReLU after every hidden
layer. The edge generator G1 takes (masked grayscale, masked Canny edges, mask), has
spectral norm on every conv but the last (as published) and ends in a sigmoid; the image
generator G2 takes (masked RGB, edge map) with G1's prediction in the hole and the known
edges outside, has no spectral norm and ends in ``(tanh + 1) / 2`` (the published head,
output in [0, 1]). Hole pixels are filled with 1 (white) before entering either network,
as in the published code. Convs followed by instance norm have no bias (the published
code keeps some of them; instance norm removes them anyway); the last conv has one.

Parameters (``paper``: width 64, 8 blocks, dilation 2): G1 10.76 M, G2 10.77 M, 21.53 M in
all, against the quoted ≈10.8 M per generator and ≈22 M for the pair. The two critics
(``edgeconnect_d``) are 2.76 M each.

Spectral norm is facefill's own parametrization (``_SpectralNorm``): the same ``W / sigma``
with one power-iteration step in training mode, but taken once per weight update instead
of once per forward pass, so that two forwards with the same weights agree (torch's
version changes its estimate on every training-mode call).

G2's edge input follows :attr:`EdgeConnectGenerator.edge_source`, which the training recipe
sets from its mode (:mod:`facefill.recipes.edgeconnect`, the released ``MODEL`` 1-4): in
eval mode, and when training modes 1 and 3, G2 sees G1's prediction in the hole as a
constant (detached); in mode 4 (joint) G2's losses also reach G1 through that input, as in
the released joint training, whose inpainting loss is not detached from the edge model;
in mode 2 G2 trains on the Canny edges of the whole ground truth.

Deviation: the published training feeds G1 the Canny edges of the *whole* ground truth,
masked afterwards, and uses ``canny(..., mask=known)`` only at test time. Here the
generator computes Canny itself from the known pixels only (:func:`facefill.edges.canny`
with ``valid``), in training and at test alike, so that the hole content can never leak
into the prediction and training sees exactly the test-time input; outside the hole G2
likewise sees these known-region edges where the release gives it the full image's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

from .._device import autocast_off
from ..edges import canny, rgb_to_gray
from ..errors import InputError
from .base import InpaintingGenerator, check_int
from .registry import register_model

__all__ = ["EdgeConnectGenerator", "EdgeConnectCritics", "EdgeConnectNet", "PatchCritic"]

# Smallest side: the bottleneck (side / 4) must outlast the residual blocks' 2-pixel
# reflection padding.
_MIN_SIDE = 16


class _SpectralNorm(nn.Module):
    """Spectral normalisation ``W / sigma(W)`` whose power iteration (one step, in training
    mode) runs once per *weight update* rather than once per forward pass.

    torch's own parametrization iterates on every training-mode forward, so two forwards
    with the same weights give different outputs; here the step runs only when the weight
    changed since the last one (its in-place version counter moved: optimiser steps,
    ``load_state_dict``). With one generator forward per training step, as facefill's
    trainer does, the two are the same; repeated forwards are deterministic.
    """

    def __init__(self, weight: torch.Tensor, dim: int) -> None:
        super().__init__()
        self.dim = dim
        mat = self._matrix(weight.detach())
        h, w = mat.shape
        self.register_buffer("_u", weight.new_empty(h))
        self.register_buffer("_v", weight.new_empty(w))
        self._seen_version: int | None = None
        if weight.device.type != "meta":  # meta tensors hold no values to iterate on
            with torch.no_grad():
                self._u.copy_(F.normalize(self._u.normal_(), dim=0, eps=1e-12))
                self._v.copy_(F.normalize(self._v.normal_(), dim=0, eps=1e-12))
            self._power_iteration(mat, 15)

    def _matrix(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.movedim(self.dim, 0).flatten(1)

    @torch.no_grad()
    def _power_iteration(self, mat: torch.Tensor, steps: int) -> None:
        for _ in range(steps):
            self._v.copy_(F.normalize(mat.t() @ self._u, dim=0, eps=1e-12))
            self._u.copy_(F.normalize(mat @ self._v, dim=0, eps=1e-12))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.device.type == "meta":  # shapes only (parameter counts): nothing to scale
            return weight
        # In float32 under autocast too: a bf16 ``mat @ v`` cannot meet the float32 ``u`` in a dot,
        # and sigma scales every weight of the conv.
        with autocast_off(weight.device):
            mat = self._matrix(weight)
            if self.training and weight._version != self._seen_version:
                self._power_iteration(mat.detach(), 1)
                self._seen_version = weight._version
            # Clones: autograd keeps u and v, which the next power iteration overwrites.
            sigma = torch.dot(self._u.clone(), mat @ self._v.clone())
            return weight / sigma


def _conv(sn: bool, *args: Any, transpose: bool = False, **kwargs: Any) -> nn.Module:
    conv = (nn.ConvTranspose2d if transpose else nn.Conv2d)(*args, **kwargs)
    if sn:  # transposed convs keep their output channels in dim 1
        norm = _SpectralNorm(conv.weight, 1 if transpose else 0)
        parametrize.register_parametrization(conv, "weight", norm)
    return conv


class _ResidualBlock(nn.Module):
    """``x + IN(conv3x3(ReLU(IN(conv3x3_dilated(x)))))`` with reflection padding."""

    def __init__(self, channels: int, dilation: int, sn: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(dilation),
            _conv(sn, channels, channels, 3, dilation=dilation, bias=False),
            nn.InstanceNorm2d(channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            _conv(sn, channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class EdgeConnectNet(nn.Module):
    """One EdgeConnect generator: (B, cin, H, W) -> (B, cout, H, W) pre-activation logits.

    H and W multiples of 4 and at least 16.
    """

    def __init__(
        self, cin: int, cout: int, width: int, blocks: int, dilation: int, sn: bool
    ) -> None:
        super().__init__()
        w1, w2, w4 = width, 2 * width, 4 * width

        def down(a: int, b: int, k: int, s: int, p: int) -> list[nn.Module]:
            return [_conv(sn, a, b, k, s, p, bias=False), nn.InstanceNorm2d(b), nn.ReLU()]

        def up(a: int, b: int) -> list[nn.Module]:
            conv = _conv(sn, a, b, 4, 2, 1, bias=False, transpose=True)
            return [conv, nn.InstanceNorm2d(b), nn.ReLU()]

        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3), *down(cin, w1, 7, 1, 0), *down(w1, w2, 4, 2, 1), *down(w2, w4, 4, 2, 1)
        )
        self.blocks = nn.Sequential(*(_ResidualBlock(w4, dilation, sn) for _ in range(blocks)))
        self.decoder = nn.Sequential(
            *up(w4, w2), *up(w2, w1), nn.ReflectionPad2d(3), nn.Conv2d(w1, cout, 7)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.blocks(self.encoder(x)))


@register_model(
    "edgeconnect",
    kind="generator",
    presets={
        "paper": {"width": 64, "blocks": 8, "dilation": 2},
        "small": {"width": 16, "blocks": 4, "dilation": 2},
    },
    summary="EdgeConnect (2019): edge generator, then image generator guided by its edges",
)
class EdgeConnectGenerator(InpaintingGenerator):
    """EdgeConnect's two generators. ``G(image, mask) -> output`` as every facefill generator.

    ``image`` (B, 3, H, W) in [0, 1], ``mask`` (B, 1, H, W) binary with 1 = hole; H and W
    multiples of ``stride = 4``, at least 16. ``G(image, mask, return_parts=True)`` gives:

    - ``"raw"``: G2's image for every pixel, (B, 3, H, W) in [0, 1];
    - ``"output"``: the composite (known pixels bit-identical);
    - ``"edges"``: G1's edge probability for every pixel, (B, 1, H, W) in [0, 1];
    - ``"edges_in"``: the Canny edges of the known region, G1's input (no gradient);
    - ``"edges_merged"``: G2's edge input: ``edges`` in the hole and ``edges_in`` outside,
      detached from G1 except under ``edge_source="joint"`` in training; under
      ``edge_source="truth"`` in training, the Canny edges of the whole ``image``;
    - ``"gray"``: the masked grayscale (hole = 1), G1's input.

    Args:
        width: channels of the first layer (64 published); the bottleneck has 4x.
        blocks: residual blocks per generator (8 published).
        dilation: dilation of the residual blocks' first conv (2 published).
        sigma, low, high: the Canny detector's smoothing and thresholds (EdgeConnect's
            sigma 2, scikit-image's float thresholds 0.1 / 0.2).

    ``edge_source`` (not a constructor argument: the training recipe sets it, see the module
    doc) is one of :attr:`EDGE_SOURCES` and matters in training mode only.
    """

    stride = 4
    EDGE_SOURCES = ("joint", "predicted", "truth")
    edge_source: str = "joint"

    def __init__(
        self,
        width: int = 64,
        blocks: int = 8,
        dilation: int = 2,
        sigma: float = 2.0,
        low: float = 0.1,
        high: float = 0.2,
    ) -> None:
        super().__init__()
        check_int("width", width)
        check_int("blocks", blocks, 0)
        check_int("dilation", dilation)
        self.sigma, self.low, self.high = float(sigma), float(low), float(high)
        self.edge_generator = EdgeConnectNet(3, 1, width, blocks, dilation, sn=True)
        self.image_generator = EdgeConnectNet(4, 3, width, blocks, dilation, sn=False)

    def parts(self, image: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
        if kwargs:
            raise InputError(f"edgeconnect takes no extra arguments, got {sorted(kwargs)}")
        if min(image.shape[-2:]) < _MIN_SIDE:
            raise InputError(
                f"edgeconnect needs images of at least {_MIN_SIDE}x{_MIN_SIDE}, got "
                f"{image.shape[-2]}x{image.shape[-1]}"
            )
        hole = mask > 0.5
        known = (~hole).to(image.dtype)
        hole_f = hole.to(image.dtype)
        gray = rgb_to_gray(image.masked_fill(hole, 0.0))
        edges_in = canny(gray, known, self.sigma, self.low, self.high)
        gray = gray.masked_fill(hole, 1.0)
        edges = torch.sigmoid(self.edge_generator(torch.cat([gray, edges_in, hole_f], 1)))
        source = self.edge_source if self.training else "predicted"
        if source not in self.EDGE_SOURCES:
            raise InputError(f"edge_source must be one of {self.EDGE_SOURCES}, got {source!r}")
        if source == "truth":
            merged = canny(rgb_to_gray(image), None, self.sigma, self.low, self.high)
        else:
            merged = torch.where(hole, edges if source == "joint" else edges.detach(), edges_in)
        rgb = image.masked_fill(hole, 1.0)
        raw = (torch.tanh(self.image_generator(torch.cat([rgb, merged], 1))) + 1) / 2
        return {
            "raw": raw,
            "output": torch.where(hole, raw, image),
            "edges": edges,
            "edges_in": edges_in,
            "edges_merged": merged,
            "gray": gray,
        }


class PatchCritic(nn.Module):
    """EdgeConnect's 70x70 PatchGAN: three 4x4 stride-2 convs, two 4x4 stride-1 convs,
    spectral norm on all, LeakyReLU(0.2), no bias (as published).

    ``forward(x) -> (logits (B, 1, h, w), [five feature maps, the logits last])``.
    """

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        plan = [(cin, width, 2), (width, 2 * width, 2), (2 * width, 4 * width, 2), (4 * width, 8 * width, 1)]
        self.layers = nn.ModuleList(
            nn.Sequential(_conv(True, a, b, 4, s, 1, bias=False), nn.LeakyReLU(0.2))
            for a, b, s in plan
        )
        self.head = _conv(True, 8 * width, 1, 4, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        logits = self.head(x)
        return logits, feats + [logits]


@register_model(
    "edgeconnect_d",
    kind="discriminator",
    presets={"paper": {"width": 64}, "small": {"width": 32}},
    summary="EdgeConnect's two SN-PatchGANs: edges (with grayscale) and images",
)
class EdgeConnectCritics(nn.Module):
    """EdgeConnect's edge critic (input: grayscale and edges, 2 channels) and image critic
    (input: RGB), both :class:`PatchCritic`.

    ``D(x, which)``: ``which="edge"`` scores x (B, 2, H, W) = [gray, edges];
    ``which="image"`` scores x (B, 3, H, W); each returns ``(logits, features)``.
    ``which="both"`` takes ``x = (edge_input, image_input)`` and returns
    ``((edge_logits, edge_features), (image_logits, image_features))``: a single forward
    that uses every parameter, which is what DDP needs from one backward pass.

    The published critics end in a sigmoid and train with BCE (the non-saturating GAN);
    these return logits, to be paired with BCE-with-logits: the same objective, computed
    without the sigmoid's saturation.
    """

    WHICH = ("edge", "image", "both")

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        check_int("width", width)
        self.edge = PatchCritic(2, width)
        self.image = PatchCritic(3, width)

    @staticmethod
    def example_inputs(image: torch.Tensor, mask: torch.Tensor) -> tuple:
        """The arguments of one typical call (what facefill.cost counts): both critics, as in
        a training step."""
        edge_input = torch.cat([image[:, :1], mask], dim=1)  # [gray, edges]: any 2 channels
        return (edge_input, image), "both"

    def forward(self, x: Any, which: str) -> Any:
        if which == "edge":
            return self.edge(x)
        if which == "image":
            return self.image(x)
        if which == "both":
            edge_x, image_x = x
            return self.edge(edge_x), self.image(image_x)
        raise InputError(f"which must be one of {self.WHICH}, got {which!r}")
