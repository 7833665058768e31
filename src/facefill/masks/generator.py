"""Free-form hole masks: the ``thin`` / ``medium`` / ``thick`` presets, their drawing (strokes,
boxes, blobs), :func:`random_mask` and the seeded training source :class:`MaskGenerator`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import InputError


@dataclass(frozen=True)
class MaskParams:
    """Parameters of one free-form mask preset.

    Lengths, widths, sides and radii are fractions of the mask size, so a preset draws the same
    shapes at 64 and at 512 pixels. Pairs are inclusive ``(min, max)`` ranges, drawn uniformly.
    """

    name: str
    strokes: tuple[int, int]  # strokes per mask
    segments: tuple[int, int]  # straight segments per stroke
    length: tuple[float, float]  # segment length
    width: tuple[float, float]  # brush width, constant along a stroke
    max_turn: float  # largest change of heading between segments, radians
    box_proba: float  # chance that a mask has boxes at all
    boxes: tuple[int, int]
    box_side: tuple[float, float]
    blob_proba: float  # chance that a mask has blobs at all
    blobs: tuple[int, int]
    blob_radius: tuple[float, float]  # radius along the long axis

    def __post_init__(self) -> None:
        for field in ("strokes", "segments", "boxes", "blobs"):
            lo, hi = getattr(self, field)
            if not (0 <= lo <= hi):
                raise InputError(f"MaskParams.{field} must be 0 <= min <= max, got {(lo, hi)}")
        if self.segments[0] < 1:
            raise InputError(f"MaskParams.segments must start at 1 or more, got {self.segments}")
        for field in ("length", "width", "box_side", "blob_radius"):
            lo, hi = getattr(self, field)
            if not (0 < lo <= hi):
                raise InputError(f"MaskParams.{field} must be 0 < min <= max, got {(lo, hi)}")
        for field in ("box_proba", "blob_proba"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise InputError(f"MaskParams.{field} must be in [0, 1], got {getattr(self, field)}")
        if not self.max_turn >= 0:
            raise InputError(f"MaskParams.max_turn must be >= 0, got {self.max_turn}")
        if sum(self.shape_weights().values()) <= 0:
            raise InputError(f"MaskParams {self.name!r} draws no shapes at all")

    @property
    def mean_width(self) -> float:
        """Mean brush width of a stroke, as a fraction of the mask size."""
        return sum(self.width) / 2

    def shape_weights(self) -> dict[str, float]:
        """Expected number of strokes, boxes and blobs per mask.

        Binned generation draws one shape at a time with these odds, so a binned mask has the
        same mixture of shapes as a :func:`random_mask` of the preset.
        """
        return {
            "stroke": sum(self.strokes) / 2,
            "box": self.box_proba * sum(self.boxes) / 2,
            "blob": self.blob_proba * sum(self.blobs) / 2,
        }


# In the spirit of LaMa's thin/medium/thick configurations, as fractions of the size. Mean hole
# ratios (300 masks at 256 px): thin 0.16, medium 0.25, thick 0.40.
PRESETS: dict[str, MaskParams] = {
    "thin": MaskParams(
        name="thin", strokes=(4, 30), segments=(1, 5), length=(0.04, 0.2), width=(0.01, 0.045),
        max_turn=math.pi / 2, box_proba=0.0, boxes=(0, 0), box_side=(0.04, 0.2),
        blob_proba=0.0, blobs=(0, 0), blob_radius=(0.03, 0.1),
    ),
    "medium": MaskParams(
        name="medium", strokes=(1, 6), segments=(1, 5), length=(0.04, 0.4), width=(0.03, 0.2),
        max_turn=math.pi / 2, box_proba=0.3, boxes=(1, 3), box_side=(0.04, 0.2),
        blob_proba=0.3, blobs=(1, 2), blob_radius=(0.04, 0.12),
    ),
    "thick": MaskParams(
        name="thick", strokes=(1, 4), segments=(1, 4), length=(0.04, 0.6), width=(0.06, 0.35),
        max_turn=math.pi / 2, box_proba=0.5, boxes=(1, 3), box_side=(0.1, 0.35),
        blob_proba=0.6, blobs=(1, 3), blob_radius=(0.06, 0.18),
    ),
}

DEFAULT_MIX: tuple[str, ...] = ("thin", "medium", "thick")

PresetLike = Union[str, MaskParams]
PresetMix = Union[PresetLike, Sequence[PresetLike], Mapping[str, float]]


def get_preset(preset: PresetLike) -> MaskParams:
    """The :class:`MaskParams` of a preset name (``thin``, ``medium``, ``thick``), or ``preset``."""
    if isinstance(preset, MaskParams):
        return preset
    if isinstance(preset, str) and preset in PRESETS:
        return PRESETS[preset]
    raise InputError(f"unknown mask preset {preset!r}; available: {', '.join(PRESETS)}")


def parse_preset_mix(mix: PresetMix) -> list[tuple[MaskParams, float]]:
    """A mixture of presets as ``[(params, probability), ...]``.

    Accepts a preset name or :class:`MaskParams`, a sequence of them (equal odds), a mapping
    ``{name: weight}``, or a string such as ``"thin,medium"`` or ``"thin:1,thick:3"``.
    """
    if isinstance(mix, str):
        items: list[tuple[PresetLike, float]] = []
        for part in mix.split(","):
            name, _, weight = part.strip().partition(":")
            try:
                items.append((name.strip(), float(weight) if weight else 1.0))
            except ValueError:
                raise InputError(
                    f"presets: malformed weight in {part.strip()!r}; expected NAME or NAME:WEIGHT"
                ) from None
    elif isinstance(mix, MaskParams):
        items = [(mix, 1.0)]
    elif isinstance(mix, Mapping):
        items = [(k, float(v)) for k, v in mix.items()]
    elif isinstance(mix, Sequence):
        items = [(p, 1.0) for p in mix]
    else:
        raise InputError(
            f"presets must be a name, a list of names or a mapping of weights, got {type(mix).__name__}"
        )
    if not items:
        raise InputError("presets: the mixture is empty")
    resolved = [(get_preset(p), w) for p, w in items]
    names = [p.name for p, _ in resolved]
    if len(set(names)) != len(names):
        raise InputError(f"presets: each preset may appear once, got {', '.join(names)}")
    weights = [w for _, w in resolved]
    if any(not (w >= 0 and math.isfinite(w)) for w in weights) or sum(weights) <= 0:
        raise InputError(f"presets: weights must be finite, >= 0 and not all 0, got {weights}")
    total = sum(w for _, w in resolved)
    return [(p, w / total) for p, w in resolved]


def _pick(rng: np.random.Generator, mixture: list[tuple[MaskParams, float]]) -> MaskParams:
    if len(mixture) == 1:
        return mixture[0][0]
    return mixture[int(rng.choice(len(mixture), p=[w for _, w in mixture]))][0]


# --------------------------------------------------------------------------- drawing


def _draw_stroke(
    draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator, p: MaskParams, scale: float
) -> None:
    """A random walk of straight segments with round joints and caps.

    The walk bounces off the border instead of being clipped to it, so strokes do not pile up
    along the edges of the mask.
    """
    width = max(1.0, rng.uniform(*p.width) * size * scale)
    x, y = rng.uniform(0, size, 2)
    heading = rng.uniform(0, 2 * math.pi)
    points = [(x, y)]
    for _ in range(int(rng.integers(p.segments[0], p.segments[1] + 1))):
        heading += rng.uniform(-p.max_turn, p.max_turn)
        length = rng.uniform(*p.length) * size * scale
        x, y = x + length * math.cos(heading), y + length * math.sin(heading)
        if not 0 <= x <= size - 1:
            x = -x if x < 0 else 2 * (size - 1) - x
            heading = math.pi - heading
        if not 0 <= y <= size - 1:
            y = -y if y < 0 else 2 * (size - 1) - y
            heading = -heading
        x, y = min(max(x, 0.0), size - 1.0), min(max(y, 0.0), size - 1.0)
        points.append((x, y))
    draw.line(points, fill=255, width=max(1, round(width)))
    r = width / 2
    for px, py in points:
        draw.ellipse((px - r, py - r, px + r, py + r), fill=255)


def _draw_box(
    draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator, p: MaskParams, scale: float
) -> None:
    w, h = np.minimum(rng.uniform(*p.box_side, 2) * size * scale, size - 1)
    x0, y0 = rng.uniform(0, size - 1 - w), rng.uniform(0, size - 1 - h)
    draw.rectangle((x0, y0, x0 + max(w, 1.0), y0 + max(h, 1.0)), fill=255)


def _draw_blob(
    draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator, p: MaskParams, scale: float
) -> None:
    """A rotated ellipse whose outline wobbles with a few low harmonics."""
    cx, cy = rng.uniform(0, size, 2)
    radius = max(1.0, rng.uniform(*p.blob_radius) * size * scale)
    aspect = rng.uniform(0.4, 1.0)
    rotation = rng.uniform(0, math.pi)
    amplitudes = rng.uniform(0, 0.12, 3)
    phases = rng.uniform(0, 2 * math.pi, 3)
    phi = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    wobble = 1 + sum(a * np.cos(k * phi + ph) for k, a, ph in zip((2, 3, 4), amplitudes, phases))
    ex, ey = radius * wobble * np.cos(phi), radius * aspect * wobble * np.sin(phi)
    c, s = math.cos(rotation), math.sin(rotation)
    xs, ys = cx + c * ex - s * ey, cy + s * ex + c * ey
    draw.polygon(list(zip(xs.tolist(), ys.tolist())), fill=255)


_DRAW = {"stroke": _draw_stroke, "box": _draw_box, "blob": _draw_blob}


def _check_size(size: int, name: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise InputError(f"{name} must be a positive int, got {size!r}")
    return int(size)


def _check_rng(rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def random_mask(size: int, rng: np.random.Generator, preset: PresetLike = "medium") -> np.ndarray:
    """One free-form mask, ``(size, size)`` uint8 with 1 = hole.

    Draws a random number of strokes, then (with the preset's odds) boxes and blobs. The result
    depends only on the state of ``rng``.
    """
    size = _check_size(size)
    _check_rng(rng)
    p = get_preset(preset)
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(p.strokes[0], p.strokes[1] + 1))):
        _draw_stroke(draw, size, rng, p, 1.0)
    for kind, proba, count in (("box", p.box_proba, p.boxes), ("blob", p.blob_proba, p.blobs)):
        if proba > 0 and rng.random() < proba:
            for _ in range(int(rng.integers(count[0], count[1] + 1))):
                _DRAW[kind](draw, size, rng, p, 1.0)
    return (np.asarray(img) > 0).astype(np.uint8)


def hole_ratio(mask: Union[np.ndarray, torch.Tensor]) -> float:
    """Fraction of hole pixels (values > 0.5) of a mask array or tensor of any shape."""
    if isinstance(mask, torch.Tensor):
        return float((mask > 0.5).float().mean())
    return float((np.asarray(mask) > 0.5).mean())


def _seed_sequence(seed: int, *keys: int) -> np.random.SeedSequence:
    for name, value in (("seed", seed),) + tuple(zip(("epoch", "index"), keys)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError(f"{name} must be an int >= 0, got {value!r}")
    return np.random.SeedSequence([int(seed), *(int(k) for k in keys)])


class MaskGenerator:
    """On-the-fly free-form masks for training, addressable by ``(epoch, index)``.

    ``sample(index, epoch)`` seeds a fresh generator from ``(seed, epoch, index)``, so a sample
    does not depend on what was drawn before it: a resumed run sees the same masks, and DDP ranks
    that read disjoint indices draw disjoint masks.

    Args:
        size: side of the square masks in pixels.
        preset: a preset name or :class:`MaskParams`, a list of them (equal odds), a mapping
            ``{name: weight}`` or a string such as ``"thin:1,thick:2"``.
        seed: int >= 0.
    """

    def __init__(self, size: int, preset: PresetMix = "medium", seed: int = 0) -> None:
        self.size = _check_size(size)
        self.mixture = parse_preset_mix(preset)
        _seed_sequence(seed)
        self.seed = int(seed)

    def sample(self, index: int, epoch: int = 0) -> torch.Tensor:
        """Mask ``index`` of ``epoch``: float ``(1, size, size)`` in {0, 1}, 1 = hole."""
        rng = np.random.default_rng(_seed_sequence(self.seed, epoch, index))
        mask = random_mask(self.size, rng, _pick(rng, self.mixture))
        return torch.from_numpy(mask.astype(np.float32))[None]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.sample(index)

    def __repr__(self) -> str:
        mix = ", ".join(f"{p.name}: {w:.3g}" for p, w in self.mixture)
        return f"MaskGenerator(size={self.size}, preset={{{mix}}}, seed={self.seed})"

