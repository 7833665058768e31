"""Canny edge detection in torch, batched, with an optional known-pixel mask.

:func:`canny` follows scikit-image's ``feature.canny`` for float images, the detector
EdgeConnect (Nazeri et al. 2019) trains on:

1. Gaussian smoothing (``sigma``, kernel truncated at 4 sigma, zero padding) normalised by
   the smoothed mask: ``G(x * valid) / G(valid)``, so pixels outside ``valid`` (and beyond
   the border) never enter the smoothed values;
2. Sobel gradients (the unnormalised ``[1, 2, 1] x [-1, 0, 1]`` kernels, edge-replicated
   border) and their magnitude;
3. non-maximum suppression: the gradient direction falls in one of four 45-degree sectors,
   and a pixel survives when its magnitude is at least the magnitude interpolated between
   the two neighbours ahead along the gradient and strictly above the two behind (the
   strict side breaks ties, so a step lying between two pixel columns, whose magnitude is
   the same on both, gives a one-pixel line; scikit-image keeps both);
4. double threshold on the magnitude (``low``/``high``, scikit-image's defaults for
   float images 0.1 and 0.2) and hysteresis: weak pixels join an edge when they connect
   (8-neighbourhood) to a strong one, computed by iterating a 3x3 max-pool restricted to
   the weak pixels until nothing changes or ``max_steps`` iterations (default H + W).

Edges are kept only on the known region eroded by one pixel (3x3, the image border counts
as unknown), so with ``valid`` the result does not depend on what lies outside it:
scikit-image's ``canny(image, mask=...)``, which EdgeConnect uses at test time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._device import autocast_off
from .errors import InputError

__all__ = ["canny", "rgb_to_gray", "GRAY_WEIGHTS"]

# ITU-R BT.709 luma, scikit-image's ``rgb2gray`` (the grayscale EdgeConnect feeds its
# edge generator).
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)


def rgb_to_gray(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) luma with scikit-image's weights."""
    if image.dim() != 4 or image.shape[1] != 3:
        raise InputError(f"image must be (B, 3, H, W), got shape {tuple(image.shape)}")
    w = image.new_tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)
    return (image * w).sum(1, keepdim=True)


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with zero padding, truncated at 4 sigma (SciPy's default)."""
    radius = int(4.0 * sigma + 0.5)
    if radius < 1:
        return x
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(x, k.view(1, 1, -1, 1), padding=(radius, 0))


def _shift(x: torch.Tensor, di: int, dj: int) -> torch.Tensor:
    """``out[..., i, j] = x[..., i + di, j + dj]``, zero outside the image."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1))
    return p[..., 1 + di : 1 + di + h, 1 + dj : 1 + dj + w]


def _non_maximum(gi: torch.Tensor, gj: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
    """Boolean map of pixels whose magnitude is a maximum along the gradient direction."""
    ai, aj = gi.abs(), gj.abs()
    si = torch.where(gi >= 0, 1, -1)
    sj = torch.where(gj >= 0, 1, -1)
    rows_major = ai >= aj  # the gradient points more along the rows (i) than the columns
    w = torch.where(rows_major, aj / ai.clamp_min(1e-12), ai / aj.clamp_min(1e-12))
    ahead = torch.zeros_like(mag)
    behind = torch.zeros_like(mag)
    # Four sectors: major axis (i or j) x whether the minor step goes the same way (si == sj).
    for major_i in (True, False):
        for same in (True, False):
            sector = (rows_major == major_i) & ((si == sj) == same)
            for s in (1, -1):  # the two half-planes of the major step
                pos = sector & ((si if major_i else sj) == s)
                m = 1 if same else -1  # minor step relative to the major one
                if major_i:
                    a1, a2 = _shift(mag, s, 0), _shift(mag, s, s * m)
                    b1, b2 = _shift(mag, -s, 0), _shift(mag, -s, -s * m)
                else:
                    a1, a2 = _shift(mag, 0, s), _shift(mag, s * m, s)
                    b1, b2 = _shift(mag, 0, -s), _shift(mag, -s * m, -s)
                ahead = torch.where(pos, (1 - w) * a1 + w * a2, ahead)
                behind = torch.where(pos, (1 - w) * b1 + w * b2, behind)
    # Ties within float noise (a symmetric step gives equal magnitudes on both sides of it,
    # up to rounding): the pixel behind wins, the one ahead is dropped.
    tol = 1e-4
    return (mag >= ahead * (1 - tol)) & (mag > behind * (1 + tol)) & (mag > 0)


def _hysteresis(strong: torch.Tensor, weak: torch.Tensor, max_steps: int) -> torch.Tensor:
    """Grow ``strong`` through 8-connected ``weak`` pixels (both float {0, 1} maps)."""
    edges = strong
    step, check_every = 0, 4  # compare only every few steps: each check syncs a GPU
    while step < max_steps:
        previous = edges
        for _ in range(min(check_every, max_steps - step)):
            edges = F.max_pool2d(edges, 3, 1, 1) * weak
            step += 1
        if torch.equal(edges, previous):
            break
    return edges


def canny(
    gray: torch.Tensor,
    valid: torch.Tensor | None = None,
    sigma: float = 2.0,
    low: float = 0.1,
    high: float = 0.2,
    max_steps: int | None = None,
) -> torch.Tensor:
    """Binary Canny edge map of a batch of grayscale images (see the module doc).

    Args:
        gray: (B, 1, H, W) float, values in [0, 1] (thresholds refer to that scale).
        valid: optional (B, 1, H, W) map, 1 = known pixel; edges are found from and kept
            on the known region only (eroded by one pixel), never depending on the rest.
        sigma: Gaussian smoothing (EdgeConnect uses 2; scikit-image's default is 1).
        low, high: hysteresis thresholds on the Sobel gradient magnitude.
        max_steps: cap on hysteresis propagation steps (default H + W).

    Returns:
        (B, 1, H, W) float tensor of 0s and 1s, no gradient.
    """
    if not isinstance(gray, torch.Tensor) or gray.dim() != 4 or gray.shape[1] != 1:
        shape = tuple(gray.shape) if isinstance(gray, torch.Tensor) else type(gray).__name__
        raise InputError(f"gray must be a (B, 1, H, W) tensor, got {shape}")
    if not gray.is_floating_point():
        raise InputError(f"gray must be floating point in [0, 1], got dtype {gray.dtype}")
    if valid is not None and valid.shape != gray.shape:
        raise InputError(
            f"valid must have gray's shape {tuple(gray.shape)}, got {tuple(valid.shape)}"
        )
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise InputError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if not 0 <= low <= high:
        raise InputError(f"thresholds must satisfy 0 <= low <= high, got low={low}, high={high}")
    h, w = gray.shape[-2:]
    # float32 throughout, also under autocast: thresholds and ties need the precision.
    with torch.no_grad(), autocast_off(gray.device):
        x = gray.float()
        known = torch.ones_like(x) if valid is None else (valid > 0.5).float()
        smoothed = _gaussian(x * known, sigma) / (_gaussian(known, sigma) + 1e-12)
        p = F.pad(smoothed, (1, 1, 1, 1), mode="replicate")
        sobel_j = x.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        kernels = torch.stack([sobel_j.t(), sobel_j]).unsqueeze(1)  # (2, 1, 3, 3): d/di, d/dj
        gi, gj = F.conv2d(p, kernels).unbind(1)
        gi, gj = gi.unsqueeze(1), gj.unsqueeze(1)
        mag = torch.sqrt(gi * gi + gj * gj)
        # Erode the known region by one pixel; the border counts as unknown.
        eroded = -F.max_pool2d(-F.pad(known, (1, 1, 1, 1)), 3, 1, 0)
        maxima = _non_maximum(gi, gj, mag) & (eroded > 0.5)
        weak = (maxima & (mag >= low)).float()
        strong = weak * (mag >= high)
        edges = _hysteresis(strong, weak, (h + w) if max_steps is None else max_steps)
    return edges.to(gray.dtype)
