"""Differentiable augmentation of the critic's inputs (DiffAugment, Zhao et al., NeurIPS 2020).

A critic trained on about a thousand images memorises them and stops giving the generator a
useful signal. DiffAugment applies the same family of random, *differentiable* transforms to
every image the critic sees, real and generated alike, in its own update and in the
generator's adversarial term, so the critic cannot tell them apart by memory while the
generator still receives gradients through the transform.

``diff_augment(x, "color,translation,cutout")``: ``x`` (B, C, H, W); each sample draws its own
parameters from torch's global generator (so a run's RNG state, saved in its checkpoints,
makes a resumed run draw the same ones). The three policies follow the paper's defaults:

- ``color``: brightness shift in [-0.5, 0.5), saturation factor in [0, 2), contrast factor in
  [0.5, 1.5), each per sample;
- ``translation``: a shift of up to 1/8 of the side in each direction, zero-filled;
- ``cutout``: one zeroed square of half the side at a random place.

The images are not clamped: the critic sees the transformed values as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import InputError

__all__ = ["POLICIES", "diff_augment", "parse_policy"]

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; ``None`` or ``""``: no augmentation."""
    if policy is None or policy == "":
        return ()
    if not isinstance(policy, str):
        raise InputError(f"critic augmentation must be a comma-separated string of {POLICIES}, got {policy!r}")
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise InputError(f"unknown critic augmentation {unknown}; choose from {', '.join(POLICIES)}")
    return names


def _color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    rand = lambda: torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype)
    x = x + (rand() - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand() * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand() + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(
        torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij"
    )
    # Pad by one pixel of zeros and read every output pixel from (y - dy, x - dx), clamped
    # onto the zero border where it falls outside.
    ys = (gy.unsqueeze(0) - dy + 1).clamp(0, h + 1)
    xs = (gx.unsqueeze(0) - dx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))
    flat = padded.flatten(2)  # (B, C, (H+2)(W+2))
    index = (ys * (w + 2) + xs).flatten(1).unsqueeze(1).expand(-1, x.shape[1], -1)
    return flat.gather(2, index).view_as(x)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    gy = torch.arange(h, device=x.device).view(1, h, 1)
    gx = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - ch // 2, cx - cw // 2  # the square may reach past the border
    inside = (gy >= top) & (gy < top + ch) & (gx >= left) & (gx < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: str | tuple[str, ...] | None) -> torch.Tensor:
    """Apply ``policy`` (names from :data:`POLICIES`, in that order) to a batch, differentiably."""
    names = parse_policy(policy) if not isinstance(policy, tuple) else policy
    for name in POLICIES:
        if name in names:
            x = _OPS[name](x)
    return x
