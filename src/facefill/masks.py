"""Irregular hole masks: a seeded generator, ratio-binned evaluation sets and a folder loader.

Conventions: a mask array or tensor holds 1 where the hole is; a mask PNG is 8-bit grayscale with
white (255) = hole. The hole ratio of a mask is its fraction of hole pixels, and a mask belongs to
the bin ``(lo, hi]`` when ``lo < ratio <= hi``, as in the NVIDIA irregular-mask test set.

Three sources:

- :func:`random_mask` draws one free-form mask from a preset: random walks of thick lines with
  round joints (DeepFill v2, LaMa), blobs and boxes. ``thin`` is many narrow strokes, ``medium``
  fewer wider strokes with some boxes and blobs, ``thick`` few wide strokes with more boxes and
  blobs. :class:`MaskGenerator` wraps it as a training source whose sample ``index`` of ``epoch``
  depends on nothing but ``(seed, epoch, index)``.
- :func:`generate_binned_masks` writes a seeded evaluation set, one folder per hole-ratio bin, with
  a ``manifest.json`` (parameters, ratios, sha256) that :func:`load_manifest` checks.
- :class:`MaskFolder` reads existing mask images such as the NVIDIA/PConv set, of either polarity,
  with the training augmentation NVIDIA describe (dilation, rotation, cropping).

Every mask read from a file is resized first (area average when shrinking, bilinear when
enlarging), then binarised at 0.5, so its hole ratio is that of the mask at the target size.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from .errors import FacefillError, InputError

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_MIX",
    "IMAGE_EXTENSIONS",
    "MANIFEST_NAME",
    "NVIDIA_BINS",
    "PRESETS",
    "ManifestError",
    "MaskFolder",
    "MaskGenerationError",
    "MaskGenerator",
    "MaskParams",
    "MaskPolarityError",
    "bin_name",
    "generate_binned_masks",
    "get_preset",
    "hole_ratio",
    "load_manifest",
    "parse_bins",
    "parse_preset_mix",
    "random_mask",
    "read_mask",
]


class MaskGenerationError(FacefillError):
    """No mask with a hole ratio inside the requested bin was found within the attempt budget."""


class ManifestError(FacefillError):
    """A mask manifest is unreadable, or the files it lists are missing or were modified."""


class MaskPolarityError(InputError):
    """Mask images whose hole ratios say they are stored with the other polarity."""


# --------------------------------------------------------------------------- presets


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
DEFAULT_BINS: tuple[tuple[float, float], ...] = ((0.1, 0.2), (0.3, 0.4), (0.5, 0.6))
NVIDIA_BINS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6),
)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "facefill-masks/1"

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


# --------------------------------------------------------------------------- binned sets


def bin_name(lo: float, hi: float) -> str:
    """Folder name of the bin ``(lo, hi]``, e.g. ``0.1-0.2``."""
    fmt = lambda v: np.format_float_positional(v, trim="-")  # noqa: E731
    return f"{fmt(lo)}-{fmt(hi)}"


def parse_bins(bins: Union[str, Sequence[Sequence[float]]]) -> tuple[tuple[float, float], ...]:
    """Bins from ``"0.1-0.2,0.3-0.4"`` or ``[(0.1, 0.2), ...]``; each must have 0 <= lo < hi <= 1."""
    if isinstance(bins, str):
        pairs = []
        for item in bins.split(","):
            parts = item.strip().split("-")
            try:
                if len(parts) != 2:
                    raise ValueError
                pairs.append((float(parts[0]), float(parts[1])))
            except ValueError:
                raise InputError(
                    f"bins: malformed bin {item.strip()!r}; expected LO-HI such as 0.1-0.2"
                ) from None
    else:
        try:
            pairs = [(float(lo), float(hi)) for lo, hi in bins]
        except (TypeError, ValueError):
            raise InputError(f"bins must be (lo, hi) pairs of numbers, got {bins!r}") from None
    if not pairs:
        raise InputError("bins: no bins given")
    for lo, hi in pairs:
        if not (0.0 <= lo < hi <= 1.0):
            raise InputError(f"bins: bin ({lo:g}, {hi:g}] must satisfy 0 <= lo < hi <= 1")
    names = [bin_name(lo, hi) for lo, hi in pairs]
    if len(set(names)) != len(names):
        raise InputError(f"bins: each bin may appear once, got {', '.join(names)}")
    return tuple(pairs)


def _in_bin(holes: int, pixels: int, lo: float, hi: float) -> bool:
    return lo < holes / pixels <= hi


def _check_reachable(size: int, lo: float, hi: float) -> None:
    pixels = size * size
    k = math.floor(lo * pixels)
    while k / pixels <= lo:
        k += 1
    if not _in_bin(k, pixels, lo, hi):
        raise InputError(
            f"bins: no {size}x{size} mask has a hole ratio in ({lo:g}, {hi:g}]; widen the bin or raise the size"
        )


def _binned_mask(
    size: int, rng: np.random.Generator, p: MaskParams, lo: float, hi: float, max_shapes: int
) -> np.ndarray:
    """A mask of preset ``p`` whose hole ratio lies in ``(lo, hi]``, as uint8 {0, 1}.

    Adds one shape at a time until the ratio passes a target drawn uniformly in the bin (so the
    ratios spread over the bin rather than pile up at ``lo``). A shape that overshoots ``hi`` is
    undone, and later shapes are drawn smaller, so narrow or high bins are still reached quickly.
    """
    pixels = size * size
    weights = p.shape_weights()
    kinds = [k for k, w in weights.items() if w > 0]
    odds = np.array([weights[k] for k in kinds]) / sum(weights[k] for k in kinds)
    target = rng.uniform(lo, hi)
    img = Image.new("L", (size, size), 0)
    scale, overshoots = 1.0, 0
    for _ in range(max_shapes):
        trial = img.copy()
        kind = kinds[int(rng.choice(len(kinds), p=odds))] if len(kinds) > 1 else kinds[0]
        _DRAW[kind](ImageDraw.Draw(trial), size, rng, p, scale)
        arr = np.asarray(trial)
        holes = int(np.count_nonzero(arr))
        if holes / pixels > hi:
            scale *= 0.7
            overshoots += 1
            continue
        img = trial
        if _in_bin(holes, pixels, lo, hi) and (holes / pixels >= target or overshoots):
            return (arr > 0).astype(np.uint8)
    raise MaskGenerationError(
        f"no {p.name!r} mask with a hole ratio in ({lo:g}, {hi:g}] at {size}x{size} "
        f"after {max_shapes} shapes; widen the bin"
    )


def _png_bytes(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((mask * 255).astype(np.uint8)).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"output directory {out} is not empty; choose another or overwrite it")


def generate_binned_masks(
    out_dir: Union[str, os.PathLike],
    size: int,
    per_bin: int,
    seed: int,
    bins: Union[str, Sequence[Sequence[float]]] = DEFAULT_BINS,
    presets: PresetMix = DEFAULT_MIX,
    *,
    overwrite: bool = False,
    max_shapes: int = 5000,
    progress: Optional[Callable[[int, int], None]] = None,
) -> dict:
    """Write ``per_bin`` masks per hole-ratio bin and a manifest; return the manifest.

    Layout: ``out_dir/<lo>-<hi>/00000.png`` (8-bit grayscale, white = hole) and
    ``out_dir/manifest.json``. Mask ``i`` of bin ``(lo, hi]`` is drawn from a generator seeded
    by ``(seed, lo, hi, i)`` with a preset picked from ``presets``, so a bin holds the same masks
    whichever other bins are asked for, and the same arguments give byte-identical files.

    The set is written into a hidden sibling directory and renamed into place at the end, so a
    failure leaves no partial ``out_dir``. A non-empty ``out_dir`` is refused unless
    ``overwrite``; it is then replaced only once the new set is complete.

    ``progress(done, total)``, when given, is called after each mask (``total`` is
    ``per_bin * len(bins)``); the command line draws its progress bar with it.

    Raises:
        InputError: bad arguments, an unreachable bin, or a non-empty ``out_dir``.
        MaskGenerationError: a bin was not reached within ``max_shapes`` shapes for one mask.
    """
    out = Path(out_dir)
    size = _check_size(size)
    per_bin = _check_size(per_bin, "per_bin")
    _seed_sequence(seed)
    bins = parse_bins(bins)
    mixture = parse_preset_mix(presets)
    for lo, hi in bins:
        _check_reachable(size, lo, hi)
    _prepare_out_dir(out, overwrite)

    digits = max(5, len(str(per_bin - 1)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        files = []
        for lo, hi in bins:
            name = bin_name(lo, hi)
            (tmp / name).mkdir()
            bin_key = (round(lo * 1_000_000), round(hi * 1_000_000))
            for i in range(per_bin):
                rng = np.random.default_rng(np.random.SeedSequence([int(seed), *bin_key, i]))
                params = _pick(rng, mixture)
                mask = _binned_mask(size, rng, params, lo, hi, max_shapes)
                data = _png_bytes(mask)
                rel = f"{name}/{i:0{digits}d}.png"
                (tmp / rel).write_bytes(data)
                holes = int(mask.sum())
                files.append({
                    "path": rel, "bin": name, "ratio": holes / (size * size), "holes": holes,
                    "preset": params.name, "sha256": hashlib.sha256(data).hexdigest(),
                })
                if progress is not None:
                    progress(len(files), per_bin * len(bins))
        manifest = {
            "format": MANIFEST_FORMAT,
            "polarity": "white = hole",
            "seed": int(seed),
            "size": size,
            "per_bin": per_bin,
            "bins": [[lo, hi] for lo, hi in bins],
            "presets": {p.name: w for p, w in mixture},
            "generator": {p.name: asdict(p) for p, _ in mixture},
            "files": files,
        }
        text = json.dumps(manifest, indent=2) + "\n"
        (tmp / MANIFEST_NAME).write_text(text, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return json.loads(text)  # as written: lists, not tuples


def load_manifest(path: Union[str, os.PathLike], verify: bool = True) -> list[dict]:
    """The file entries of a mask manifest (``manifest.json`` or the folder holding it).

    Each entry is the manifest's dict (``path``, ``bin``, ``ratio``, ``holes``, ``preset``,
    ``sha256``) plus ``file``, the absolute path of the PNG. Missing files are always refused;
    with ``verify`` every file's sha256 is checked too.

    Raises:
        ManifestError: one line naming the manifest or the offending file.
    """
    path = Path(path)
    manifest_path = path / MANIFEST_NAME if path.is_dir() else path
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = manifest["files"]
        if not isinstance(entries, list):
            raise TypeError
    except FileNotFoundError:
        raise ManifestError(f"{manifest_path}: no such mask manifest") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{manifest_path}: not a mask manifest ({type(exc).__name__}: {exc})") from None
    root = manifest_path.parent.resolve()
    out = []
    for entry in entries:
        try:
            file = (root / entry["path"]).resolve()
            expected = entry["sha256"]
        except (KeyError, TypeError):
            raise ManifestError(f"{manifest_path}: malformed entry {entry!r}") from None
        if root not in file.parents:
            raise ManifestError(f"{manifest_path}: entry {entry['path']!r} points outside {root}")
        if not file.is_file():
            raise ManifestError(f"{file}: listed in {manifest_path} but missing")
        if verify:
            actual = hashlib.sha256(file.read_bytes()).hexdigest()
            if actual != expected:
                raise ManifestError(
                    f"{file}: sha256 {actual[:12]}... does not match {expected[:12]}... "
                    f"in {manifest_path}; the mask set was modified"
                )
        out.append({**entry, "file": str(file)})
    return out


# --------------------------------------------------------------------------- reading masks


def _read_hole_map(path: Path, invert: bool) -> np.ndarray:
    """Float32 HxW hole map in [0, 1] at the file's own resolution (1 = hole)."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                arr = np.asarray(img, dtype=np.float32)
                top = 65535.0 if img.mode.startswith("I") else 1.0
                arr = np.clip(arr / top, 0.0, 1.0)
            else:
                arr = np.asarray(img.convert("L"), dtype=np.float32)
                # Some sets store labels 0/1 in 8-bit PNGs; they would read as all-black.
                arr = arr if arr.max() > 1 else arr * 255.0
                arr /= 255.0
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read mask image {path}: {exc}") from None
    return 1.0 - arr if invert else arr


def _resize(hole_map: np.ndarray, size: int) -> np.ndarray:
    h, w = hole_map.shape
    if (h, w) == (size, size):
        return hole_map
    shrinking = size <= h and size <= w
    img = Image.fromarray(np.ascontiguousarray(hole_map, dtype=np.float32))
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return np.asarray(img.resize((size, size), resample), dtype=np.float32)


def read_mask(
    path: Union[str, os.PathLike], size: int | None = None, *, invert: bool = False
) -> torch.Tensor:
    """A mask image as a float ``(1, H, W)`` tensor in {0, 1}, 1 = hole.

    The file is white = hole (black = hole with ``invert``). With ``size`` it is resized to
    ``size x size`` first and binarised at 0.5 after, so thin strokes thinner than one target
    pixel vanish and the hole ratio is that of the resized mask.
    """
    hole_map = _read_hole_map(Path(path), invert)
    if size is not None:
        hole_map = _resize(hole_map, _check_size(size))
    return torch.from_numpy((hole_map > 0.5).astype(np.float32))[None]


def _list_images(root: Path) -> list[Path]:
    """Image files under ``root``, recursively, in sorted order; hidden entries are skipped."""
    files = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        hidden = any(part.startswith(".") for part in rel.parts)
        if p.suffix.lower() in IMAGE_EXTENSIONS and not hidden and p.is_file():
            files.append(p)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


class MaskFolder:
    """Mask images in a folder (recursively), e.g. the NVIDIA/PConv irregular-mask set.

    Copies of that set differ in polarity (PConv's own convention is 1 = valid, and some copies
    have black holes, others white), hence ``invert``: by default white = hole, with
    ``invert=True`` black = hole. On construction the median hole ratio of up to 50 files spread
    over the folder is checked; above 0.6 the polarity is almost surely wrong and
    :class:`MaskPolarityError` says which flag to use (``check_polarity=False`` skips this).

    ``sample(index, epoch)`` returns float ``(1, size, size)`` in {0, 1}, 1 = hole. With
    ``augment`` it applies the augmentation NVIDIA describe for training masks (random rotation,
    cropping and dilation, plus flips), seeded by ``(seed, epoch, index)`` only.
    """

    polarity_sample = 50
    polarity_limit = 0.6

    def __init__(
        self,
        root: Union[str, os.PathLike],
        size: int,
        invert: bool = False,
        augment: bool = False,
        seed: int = 0,
        *,
        check_polarity: bool = True,
    ) -> None:
        self.root = Path(root)
        self.size = _check_size(size)
        self.invert = bool(invert)
        self.augment = bool(augment)
        _seed_sequence(seed)
        self.seed = int(seed)
        if not self.root.is_dir():
            raise InputError(f"mask folder {self.root} does not exist or is not a directory")
        self.files = _list_images(self.root)
        if not self.files:
            raise InputError(
                f"mask folder {self.root} has no mask images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        if check_polarity:
            self._check_polarity()

    def _check_polarity(self) -> None:
        n = len(self.files)
        picks = np.unique(np.linspace(0, n - 1, min(n, self.polarity_sample)).round().astype(int))
        median = float(np.median([hole_ratio(self._plain(int(i))) for i in picks]))
        if median > self.polarity_limit:
            now, other = ("white", "black") if not self.invert else ("black", "white")
            raise MaskPolarityError(
                f"masks in {self.root} look inverted for invert={self.invert}: median hole ratio "
                f"{median:.2f} over {len(picks)} files > {self.polarity_limit} with {now} = hole; "
                f"if their holes are {other}, pass invert={not self.invert}"
            )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.sample(index)

    def _plain(self, index: int) -> np.ndarray:
        return _resize(_read_hole_map(self.files[index], self.invert), self.size) > 0.5

    def _augmented(self, index: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(_seed_sequence(self.seed, epoch, index))
        source = _read_hole_map(self.files[index], self.invert)
        h, w = source.shape
        img = Image.fromarray(np.ascontiguousarray(source, dtype=np.float32))
        img = img.rotate(rng.uniform(-180.0, 180.0), resample=Image.Resampling.BILINEAR, fillcolor=0.0)
        side = rng.uniform(0.5, 1.0) * min(h, w)
        left, top = rng.uniform(0, w - side), rng.uniform(0, h - side)
        img = img.crop((round(left), round(top), round(left + side), round(top + side)))
        flips = rng.random(2) < 0.5
        holes = _resize(np.asarray(img, dtype=np.float32), self.size) > 0.5
        holes = holes[:, ::-1] if flips[0] else holes
        holes = holes[::-1, :] if flips[1] else holes
        radius = int(rng.integers(0, max(1, round(self.size / 64)) + 1))
        if radius:
            dilated = Image.fromarray(np.ascontiguousarray(holes, dtype=np.uint8) * 255).filter(
                ImageFilter.MaxFilter(2 * radius + 1)
            )
            holes = np.asarray(dilated) > 0
        return holes

    def sample(self, index: int, epoch: int = 0) -> torch.Tensor:
        """Mask ``index`` (augmented for ``epoch`` when ``augment``), float ``(1, size, size)``."""
        valid = isinstance(index, (int, np.integer)) and not isinstance(index, bool)
        if not (valid and 0 <= index < len(self.files)):
            raise InputError(f"index must be an int in [0, {len(self.files)}), got {index!r}")
        holes = self._augmented(int(index), epoch) if self.augment else self._plain(int(index))
        return torch.from_numpy(np.ascontiguousarray(holes, dtype=np.float32))[None]

    def __repr__(self) -> str:
        return (
            f"MaskFolder({str(self.root)!r}, size={self.size}, invert={self.invert}, "
            f"augment={self.augment}, seed={self.seed}, files={len(self.files)})"
        )
