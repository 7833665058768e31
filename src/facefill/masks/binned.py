"""Ratio-binned evaluation sets: :func:`generate_binned_masks` writes one folder per hole-ratio
bin with a ``manifest.json`` (parameters, ratios, sha256) that :func:`load_manifest` checks."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw

from ..errors import FacefillError, InputError
from .generator import _DRAW, DEFAULT_MIX, MaskParams, PresetMix, _check_size, _pick, _seed_sequence, parse_preset_mix

DEFAULT_BINS: tuple[tuple[float, float], ...] = ((0.1, 0.2), (0.3, 0.4), (0.5, 0.6))
NVIDIA_BINS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6),
)
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "facefill-masks/1"


class MaskGenerationError(FacefillError):
    """No mask with a hole ratio inside the requested bin was found within the attempt budget."""


class ManifestError(FacefillError):
    """A mask manifest is unreadable, or the files it lists are missing or were modified."""


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
