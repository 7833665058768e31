"""Reading mask images: :func:`read_mask` (one file, either polarity, resized then binarised)
and :class:`MaskFolder`, a folder such as the NVIDIA/PConv set served with NVIDIA's training
augmentation (dilation, rotation, cropping)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageFilter

from ..errors import InputError
from .generator import _check_size, _seed_sequence, hole_ratio

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


class MaskPolarityError(InputError):
    """Mask images whose hole ratios say they are stored with the other polarity."""


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
