"""Face image datasets: robust image loading, image folders, and CelebA preparation.

Images are returned as float32 tensors in [0, 1], shaped (3, H, W), RGB.

Three parts:

- :func:`load_image` decodes one file to an 8-bit RGB ``PIL.Image`` whatever its mode
  (alpha, palette, 16-bit, CMYK, EXIF rotation).
- :class:`ImageFolderDataset` serves a folder tree of images, optionally restricted to the ids
  listed in ``<root>/train.txt`` or ``<root>/test.txt``, at a fixed square size, with a
  horizontal flip and augmentation (:mod:`facefill.augment`) that are pure functions of
  (seed, epoch, index). :func:`carve_holdout` takes a seeded, fixed part of a split out for
  validation; the dataset serves either part.
- :func:`prepare_celeba` turns a CelebA download into such a folder: square face crops at
  ``size`` x ``size`` saved as PNG (or JPEG), ``train.txt`` / ``test.txt`` and ``prepare.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import operator
import os
import posixpath
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .augment import Augment
from .errors import FacefillError, InputError

logger = logging.getLogger("facefill.data")

PathLike = Union[str, "os.PathLike[str]"]

#: File extensions (lower case) that count as images when scanning folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

# Pillow's LANCZOS with reducing_gap: for large downscales Pillow first shrinks by an integer
# factor with a box filter, then finishes with LANCZOS; at a gap of 3 the result is visually
# identical to a pure LANCZOS resize and several times faster on 1024 px sources.
_RESAMPLE = Image.Resampling.LANCZOS
_REDUCING_GAP = 3.0

_WHITE = (255, 255, 255)


class DatasetError(FacefillError):
    """A dataset folder, list file or source layout is missing, empty or malformed.

    The message names the path and says what was expected.
    """


class ImageReadError(DatasetError):
    """One image file cannot be opened or decoded. The message names the file."""


# ---------------------------------------------------------------------------------------------
# Decoding and resizing single images
# ---------------------------------------------------------------------------------------------


def load_image(path: PathLike) -> Image.Image:
    """Decode ``path`` to an 8-bit RGB image, upright and without alpha.

    - EXIF orientation is applied (``ImageOps.exif_transpose``).
    - Transparency (RGBA, LA, PA, palette images with a transparent colour) is alpha-composited
      onto white, the convention of the faces128 data and of most face cut-outs.
    - 16-bit greyscale (``I;16*``) and 32-bit integer (``I``) images are read as 16-bit data and
      scaled by 255/65535, so 65535 becomes 255 rather than everything above 255 being clipped.
      (Pillow decodes 16-bit RGB PNGs to 8-bit RGB itself, keeping the high byte.)
    - Greyscale, bilevel, CMYK, YCbCr and other modes are converted to RGB by Pillow.

    Raises :class:`ImageReadError`, naming the file, when it is missing or cannot be decoded.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            upright = ImageOps.exif_transpose(im)
            rgb = _to_rgb(upright)
            if rgb is im:  # detach from the file before the context manager closes it
                rgb = im.copy()
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        # SyntaxError: some Pillow plugins raise it for malformed headers.
        raise ImageReadError(f"cannot read image {path}: {e}") from e
    return rgb


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    elif mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
        mode = "RGBA"
    elif mode in ("L", "1", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        white = Image.new("RGBA", im.size, _WHITE + (255,))
        return Image.alpha_composite(white, im).convert("RGB")
    if mode.startswith("I"):
        # 16-bit data (I;16, I;16B, ...; older Pillow decodes 16-bit PNGs to "I").
        a = np.asarray(im, dtype=np.float64)
        a = np.clip(a, 0, 65535) * (255.0 / 65535.0)
        grey = np.rint(a).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))
    return im.convert("RGB")


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop ``img`` to a square of its shorter side, then resize to ``size`` x ``size``.

    The crop's left/top offset is ``(longer - shorter) // 2``. Resizing uses Pillow's LANCZOS
    with ``reducing_gap=3`` and sees only the cropped square.
    """
    _check_positive_int(size, "size")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if (w, h) == (size, size):
        return img
    if w != h:
        # Crop first: resize(box=...) would let the filter reach pixels outside the square.
        img = img.crop((left, top, left + side, top + side))
    return img.resize((size, size), _RESAMPLE, reducing_gap=_REDUCING_GAP)


def face_box_crop(
    img: Image.Image, box: Sequence[int], size: int, box_scale: float = 1.0
) -> Image.Image:
    """Square crop around a face box ``(x, y, width, height)``, resized to ``size`` x ``size``.

    The rule (used for CelebA's ``list_bbox_celeba.txt``): side = round(box_scale x
    max(width, height)), centred on the box centre, with the top-left corner rounded half up
    to whole pixels. Where the square leaves the image it is padded by edge replication,
    so faces near the border keep their size and position instead of being shifted or
    surrounded by black bars. Raises :class:`DatasetError` if the square misses the image.
    """
    _check_positive_int(size, "size")
    if not box_scale > 0:
        raise InputError(f"box_scale must be positive, got {box_scale!r}")
    x, y, bw, bh = (float(v) for v in box)
    if bw <= 0 or bh <= 0:
        raise InputError(f"box width and height must be positive, got {tuple(box)!r}")
    side = max(1, _round_half_up(box_scale * max(bw, bh)))
    left = _round_half_up(x + bw / 2 - side / 2)
    top = _round_half_up(y + bh / 2 - side / 2)
    w, h = img.size
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, w), min(top + side, h)
    if x0 >= x1 or y0 >= y1:
        raise DatasetError(
            f"face box {tuple(box)} (crop square {left},{top} side {side}) lies outside the "
            f"{w}x{h} image"
        )
    crop = img.crop((x0, y0, x1, y1))
    pad = ((y0 - top, top + side - y1), (x0 - left, left + side - x1), (0, 0))
    if any(p for pair in pad for p in pair):
        crop = Image.fromarray(np.pad(np.asarray(crop), pad, mode="edge"))
    return crop.resize((size, size), _RESAMPLE, reducing_gap=_REDUCING_GAP)


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB ``PIL.Image`` -> float32 tensor (3, H, W) in [0, 1]."""
    a = np.asarray(img.convert("RGB") if img.mode != "RGB" else img, dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous().float().div_(255.0)


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------


def scan_images(root: PathLike) -> list[Path]:
    """All image files under ``root``, recursively, sorted by relative POSIX path.

    Extensions are matched case-insensitively against :data:`IMAGE_EXTENSIONS`. Files and
    folders whose names start with "." are ignored (temporary files, macOS ``._*`` resource
    forks). Symlinked sub-folders are not followed. Raises :class:`DatasetError` when ``root``
    is missing, is not a folder, is empty, or holds no images.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is not a folder")
    found: list[tuple[str, Path]] = []
    others = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append((p.relative_to(root).as_posix(), p))
            else:
                others += 1
    exts = ", ".join(IMAGE_EXTENSIONS)
    if not found and not others:
        raise DatasetError(f"dataset folder {root} is empty; expected image files ({exts})")
    if not found:
        raise DatasetError(
            f"dataset folder {root} has {others} files but no images; expected files ending in {exts}"
        )
    if others:
        logger.info("%s: ignored %d non-image files", root, others)
    found.sort(key=lambda t: t[0])
    return [p for _, p in found]


def _image_id(rel: str) -> str:
    return posixpath.splitext(rel)[0]


def read_id_list(path: PathLike) -> list[str]:
    """Ids from a split file: one per line; blank lines and lines starting with "#" are skipped.

    Entries are normalised to POSIX relative paths ("./a\\b.png" -> "a/b.png").
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read split list {path}: {e}") from e
    ids = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        ids.append(posixpath.normpath(entry.replace("\\", "/")))
    return ids


def carve_holdout(ids: Sequence[str], count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split ``ids`` into ``(rest, held)``: ``count`` of them held out, the others kept.

    The rule: rank the ids by the sha256 of ``"<seed>:<id>"`` (a seeded permutation that depends
    on the ids themselves, not on their order in the list; equal ids are ranked by position) and
    hold out the first ``count``. Both parts keep the order of ``ids``; they never overlap and
    together are ``ids``. The same ids and seed give the same parts on every call, machine and
    Python version, and adding or removing other ids moves at most the ids displaced from (or
    into) the first ``count`` ranks.

    >>> carve_holdout(["a", "b", "c", "d"], 1, seed=0)
    (['a', 'b', 'c'], ['d'])
    """
    held = _held_positions(ids, count, seed)
    rest = [v for i, v in enumerate(ids) if i not in held]
    return rest, [v for i, v in enumerate(ids) if i in held]


def _check_holdout(count: object, seed: object) -> None:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise InputError(f"holdout must be a non-negative integer, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"holdout_seed must be an integer, got {seed!r}")


def _held_positions(ids: Sequence[str], count: int, seed: int) -> set[int]:
    _check_holdout(count, seed)
    if count > len(ids):
        raise InputError(f"holdout {count} exceeds the {len(ids)} ids to carve it from")
    rank = sorted(
        range(len(ids)), key=lambda i: (hashlib.sha256(f"{int(seed)}:{ids[i]}".encode()).digest(), i)
    )
    return set(rank[: int(count)])


class ImageFolderDataset(torch.utils.data.Dataset):
    """Square face images from a folder tree, as float32 tensors (3, size, size) in [0, 1].

    Files: every image under ``root`` (see :func:`scan_images`), sorted by relative path. An
    image's *id* is its relative POSIX path without the extension (``a/b/0001.png`` ->
    ``a/b/0001``).

    Splits: with ``split="train"`` (or any other name) only the files listed in
    ``<root>/<split>.txt`` are used, in the list's order. Entries are ids, or relative paths
    with the extension (useful when two files share an id). A listed entry that matches no
    file, matches several, or appears twice is an error, so a benchmark never silently runs
    on a different set. ``split=None`` uses every image.

    Holdout: with ``holdout=k`` the split's ids are divided by :func:`carve_holdout` (``k`` ids,
    ``holdout_seed``) and ``part="rest"`` serves the others (for training), ``part="holdout"``
    the ``k`` held out (for validation and ``facefill evaluate --holdout k``), both in list
    order. The carving sees the whole split list, before ``verify`` drops unreadable files, so
    the held-out ids are the same with and without ``verify``. ``k`` must be smaller than the
    split.

    Geometry: non-square images are centre-cropped to a square of their shorter side, then
    resized to ``size`` with LANCZOS (``reducing_gap=3``); see :func:`center_crop_resize`.

    Flip: with ``flip=True`` item ``i`` is mirrored left-right iff a 64-bit hash of
    (seed, epoch, i) has its top bit set, so each item flips with probability 1/2, and the
    same (seed, epoch) gives the same flips in any process, on any worker or rank, and after
    a resume. Call :meth:`set_epoch` before iterating each epoch. (DataLoader workers copy
    the dataset when they start, so with ``persistent_workers=True`` the epoch they see is the
    one set when they were created.)

    Augmentation: ``augment`` (an :class:`~facefill.augment.Augment`) zooms, shifts and
    jitters colours after the flip, drawn from the same (seed, epoch, index); ``None`` or all
    amplitudes 0 leave the image untouched.

    Unreadable images: by default files are not decoded up front (decoding 200k images takes
    minutes). An image that fails to decode in ``__getitem__`` is replaced by the next readable
    index (i+1, i+2, ... wrapping), which depends only on which files are bad, so the
    substitution is deterministic; the flip is still decided by the original index. The bad
    path is logged once and recorded in :attr:`bad_paths` of *this process* (DataLoader
    workers keep their own copies). With ``verify=True`` every image is decoded once at
    construction and the bad ones are dropped from :attr:`paths` before anything is served.
    Either way :attr:`num_skipped` counts the unreadable files found so far.
    """

    def __init__(
        self,
        root: PathLike,
        size: int,
        split: Optional[str] = None,
        flip: bool = True,
        seed: int = 0,
        *,
        verify: bool = False,
        holdout: int = 0,
        holdout_seed: int = 0,
        part: str = "rest",
        augment: Optional[Augment] = None,
    ) -> None:
        _check_positive_int(size, "size")
        if split is not None and (
            not isinstance(split, str) or not split or "/" in split or "\\" in split or split.startswith(".")
        ):
            raise InputError(f"split must be None or a list name such as 'train' or 'test', got {split!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"seed must be an integer, got {seed!r}")
        _check_holdout(holdout, holdout_seed)
        if part not in ("rest", "holdout"):
            raise InputError(f"part must be 'rest' or 'holdout', got {part!r}")
        if part == "holdout" and not holdout:
            raise InputError("part='holdout' needs holdout > 0, the number of images held out")
        if augment is not None and not isinstance(augment, Augment):
            raise InputError(f"augment must be a facefill.augment.Augment or None, got {type(augment).__name__}")
        self.root = Path(root)
        self.size = int(size)
        self.split = split
        self.flip = bool(flip)
        self.seed = int(seed)
        self.epoch = 0
        self.augment = augment if augment is not None and augment.enabled else None
        paths = scan_images(self.root)
        if split is not None:
            paths = self._select_split(paths, split)
        self.holdout, self.holdout_seed, self.part = int(holdout), int(holdout_seed), part
        if holdout:
            paths = self._carve(paths)
        self.bad_paths: list[Path] = []
        if verify:
            paths = self._verify(paths)
        self.paths: list[Path] = paths
        self.ids: list[str] = [_image_id(p.relative_to(self.root).as_posix()) for p in paths]
        logger.info(
            "%s%s: %d images%s%s", self.root, f" ({split})" if split else "", len(paths),
            f", {part} of holdout {self.holdout}" if self.holdout else "",
            f", {len(self.bad_paths)} unreadable skipped" if self.bad_paths else "",
        )

    def _carve(self, paths: list[Path]) -> list[Path]:
        if self.holdout >= len(paths):
            where = f"{self.root}" + (f" ({self.split}.txt)" if self.split else "")
            raise DatasetError(
                f"{where}: holdout {self.holdout} must be less than its {len(paths)} images, "
                f"so that some remain for training"
            )
        ids = [_image_id(p.relative_to(self.root).as_posix()) for p in paths]
        held = _held_positions(ids, self.holdout, self.holdout_seed)
        keep = self.part == "holdout"
        return [p for i, p in enumerate(paths) if (i in held) == keep]

    def _select_split(self, paths: list[Path], split: str) -> list[Path]:
        list_file = self.root / f"{split}.txt"
        if not list_file.is_file():
            raise DatasetError(
                f"split {split!r} asked for but {list_file} does not exist; expected a list of "
                f"image ids (relative paths without extension), one per line"
            )
        by_rel: dict[str, Path] = {}
        by_id: dict[str, list[Path]] = {}
        for p in paths:
            rel = p.relative_to(self.root).as_posix()
            by_rel[rel] = p
            by_id.setdefault(_image_id(rel), []).append(p)
        entries = read_id_list(list_file)
        if not entries:
            raise DatasetError(f"split list {list_file} lists no ids")
        selected: list[Path] = []
        missing, ambiguous, seen, dup = [], [], set(), []
        for e in entries:
            if e in by_rel:
                p = by_rel[e]
            elif len(by_id.get(e, ())) == 1:
                p = by_id[e][0]
            elif e in by_id:
                ambiguous.append(e)
                continue
            else:
                missing.append(e)
                continue
            if p in seen:
                dup.append(e)
                continue
            seen.add(p)
            selected.append(p)
        problems = []
        if missing:
            problems.append(f"{len(missing)} ids match no image (e.g. {missing[0]!r})")
        if ambiguous:
            problems.append(
                f"{len(ambiguous)} ids match several files (e.g. {ambiguous[0]!r}; give the extension)"
            )
        if dup:
            problems.append(f"{len(dup)} entries repeat an image (e.g. {dup[0]!r})")
        if problems:
            raise DatasetError(f"split list {list_file}: " + "; ".join(problems))
        return selected

    def _verify(self, paths: list[Path]) -> list[Path]:
        good = []
        for p in paths:
            try:
                load_image(p)
            except ImageReadError as e:
                logger.warning("skipping unreadable image: %s", e)
                self.bad_paths.append(p)
            else:
                good.append(p)
        if not good:
            raise DatasetError(f"dataset folder {self.root}: none of the {len(paths)} images can be read")
        if self.bad_paths:
            logger.warning("%s: skipped %d unreadable images", self.root, len(self.bad_paths))
        return good

    @property
    def num_skipped(self) -> int:
        """Unreadable files found so far (at construction with ``verify=True``, else lazily)."""
        return len(self.bad_paths)

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose flips ``__getitem__`` applies."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise InputError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)

    def is_flipped(self, index: int) -> bool:
        """Whether item ``index`` is mirrored in the current epoch."""
        return self.flip and flip_decision(self.seed, self.epoch, index)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.get(index)

    def get(self, index: int, *, key: Optional[int] = None) -> torch.Tensor:
        """Item ``index`` with its flip and augmentation drawn for (seed, epoch, ``key``).

        ``key`` defaults to ``index``; a dataset over several folders passes its global index
        (see :class:`facefill.multiroot.MultiRootDataset`).
        """
        index = self._check_index(index)
        a = self.load_array(index)
        key = index if key is None else operator.index(key)
        if self.flip and flip_decision(self.seed, self.epoch, key):
            a = np.ascontiguousarray(a[:, ::-1])
        if self.augment is not None:
            a = self.augment.apply(a, self.seed, self.epoch, key)
        return torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)

    def load_array(self, index: int) -> np.ndarray:
        """Item ``index`` decoded, cropped and resized: (size, size, 3) uint8, before the flip."""
        img = self._load_with_fallback(self._check_index(index))
        return np.array(center_crop_resize(img, self.size), dtype=np.uint8)

    def _check_index(self, index: int) -> int:
        n = len(self.paths)
        index = operator.index(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        return index

    def _load_with_fallback(self, index: int) -> Image.Image:
        n = len(self.paths)
        for k in range(n):
            p = self.paths[(index + k) % n]
            if p in self.bad_paths:
                continue
            try:
                return load_image(p)
            except ImageReadError as e:
                self.bad_paths.append(p)
                logger.warning(
                    "skipping unreadable image (%d so far in this process): %s", len(self.bad_paths), e
                )
        raise DatasetError(f"dataset folder {self.root}: none of the {n} images can be read")


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def flip_decision(seed: int, epoch: int, index: int) -> bool:
    """Deterministic fair coin for (seed, epoch, index): SplitMix64 chained over the three."""
    h = _splitmix64(int(seed) & _MASK64)
    h = _splitmix64(h ^ (int(epoch) & _MASK64))
    h = _splitmix64(h ^ (int(index) & _MASK64))
    return bool(h >> 63)


# ---------------------------------------------------------------------------------------------
# CelebA preparation
# ---------------------------------------------------------------------------------------------

CELEBA_BBOX_HEADER = ("image_id", "x_1", "y_1", "width", "height")
_WILD_DIRS = ("img_celeba", "Img/img_celeba")
_ALIGN_DIRS = ("img_align_celeba", "Img/img_align_celeba")
_BBOX_FILES = ("list_bbox_celeba.txt", "Anno/list_bbox_celeba.txt")
_FORMATS = {"png": ".png", "jpg": ".jpg"}
_SETTINGS_MARKER = ".prepare-settings.json"
_TMP_TAG = ".tmp-"


@dataclass
class PrepareResult:
    """What :func:`prepare_celeba` did; also written to ``out/prepare.json``."""

    out: str
    layout: str
    size: int
    seed: int
    format: str
    crop_rule: str
    listed: int
    written: int
    reused: int
    failed: int
    train: int
    test: int
    failed_examples: list[str] = field(default_factory=list)

    def summary(self) -> str:
        s = (
            f"{self.written + self.reused} images ({self.layout}, {self.size}x{self.size} {self.format}) "
            f"in {self.out}: {self.train} train, {self.test} test"
        )
        if self.reused:
            s += f", {self.reused} reused from an earlier run"
        if self.failed:
            s += f", {self.failed} unreadable skipped"
        return s


def read_celeba_bboxes(path: PathLike) -> dict[str, tuple[int, int, int, int]]:
    """Parse CelebA's ``list_bbox_celeba.txt``: ``{image_id: (x_1, y_1, width, height)}``.

    Line 1 is the number of rows, line 2 the header ``image_id x_1 y_1 width height``, then
    one whitespace-separated row per image. Any malformed row (wrong field count, non-integer,
    non-positive size, repeated id, id with a path), a bad header or a row count that differs
    from line 1 raises :class:`DatasetError` with the number of bad rows and the first one.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read CelebA bbox file {path}: {e}") from e
    if len(lines) < 2:
        raise DatasetError(f"CelebA bbox file {path} is too short: expected a count line, a header and rows")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DatasetError(
            f"CelebA bbox file {path}: line 1 should be the number of images, got {lines[0].strip()[:40]!r}"
        ) from None
    if tuple(lines[1].split()) != CELEBA_BBOX_HEADER:
        raise DatasetError(
            f"CelebA bbox file {path}: line 2 should be the header {' '.join(CELEBA_BBOX_HEADER)!r}, "
            f"got {lines[1].strip()[:60]!r}"
        )
    boxes: dict[str, tuple[int, int, int, int]] = {}
    bad: list[int] = []
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 5:
                raise ValueError
            name = parts[0]
            x, y, w, h = (int(v) for v in parts[1:])
            if w <= 0 or h <= 0 or name in boxes or "/" in name or "\\" in name:
                raise ValueError
        except ValueError:
            bad.append(lineno)
            continue
        boxes[name] = (x, y, w, h)
    if bad:
        first = lines[bad[0] - 1].strip()[:60]
        raise DatasetError(
            f"CelebA bbox file {path}: {len(bad)} malformed rows (first: line {bad[0]}: {first!r}); "
            f"expected 'image_id x_1 y_1 width height' with integers and positive width and height"
        )
    if len(boxes) != count:
        raise DatasetError(f"CelebA bbox file {path}: line 1 says {count} images but {len(boxes)} rows follow")
    return boxes


def _find_dir(src: Path, candidates: Iterable[str]) -> Optional[Path]:
    for c in candidates:
        d = src / c
        if d.is_dir():
            # Some mirrors (e.g. the Kaggle zip) nest the folder in a folder of the same name.
            nested = d / d.name
            if nested.is_dir() and not any(_is_image_name(n) for n in os.listdir(d)):
                return nested
            return d
    return None


def _find_file(src: Path, candidates: Iterable[str]) -> Optional[Path]:
    for c in candidates:
        if (src / c).is_file():
            return src / c
    return None


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _crop_rule(layout: str, box_scale: float, size: int) -> str:
    if layout == "wild":
        return (
            f"square of side round({box_scale:g} * max(width, height)) centred on the "
            f"list_bbox_celeba.txt box, top-left rounded half up, edge-replicated where it leaves "
            f"the image, LANCZOS to {size}x{size}"
        )
    return (
        f"centre square of the shorter side (178x178 for 178x218, offset ((w-s)//2, (h-s)//2)), "
        f"LANCZOS to {size}x{size}"
    )


def _prepare_one(task: tuple) -> tuple[str, Optional[str]]:
    """Worker: crop, resize and write one image; returns (id, error message or None)."""
    image_id, src_path, dst_path, box, size, box_scale, fmt = task
    try:
        img = load_image(src_path)
        if box is None:
            out = center_crop_resize(img, size)
        else:
            out = face_box_crop(img, box, size, box_scale)
    except DatasetError as e:
        return image_id, str(e)
    dst = Path(dst_path)
    tmp = dst.with_name(f".{dst.stem}{_TMP_TAG}{os.getpid()}{dst.suffix}")
    try:
        if fmt == "png":
            # Level 3 is about 5x faster than the default 6 on 256 px faces, for ~8% more bytes.
            out.save(tmp, format="PNG", compress_level=3)
        else:
            out.save(tmp, format="JPEG", quality=95, subsampling=0)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return image_id, None


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}{_TMP_TAG}{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def prepare_celeba(
    src: PathLike,
    out: PathLike,
    size: int = 256,
    test_count: int = 1000,
    seed: int = 0,
    workers: Optional[int] = None,
    *,
    layout: str = "auto",
    box_scale: float = 1.0,
    image_format: str = "png",
    overwrite: bool = False,
    progress: bool = False,
) -> PrepareResult:
    """Turn a CelebA download into a facefill dataset folder.

    Layouts found under ``src`` (also under ``src/Img`` and ``src/Anno``, as in the official
    archive):

    - ``"wild"``: ``img_celeba/*.jpg`` with ``list_bbox_celeba.txt``. Each image is cropped by
      :func:`face_box_crop`: a square of side round(box_scale x max(w, h)) centred on the box,
      edge-padded where it leaves the image. CelebA's boxes already run from about the hairline
      to the chin and are taller than wide, so the default ``box_scale=1.0`` ("crop by the
      box", as the paper says) keeps the whole face and adds a little cheek and ear context
      at the sides.
    - ``"align"``: ``img_align_celeba/*.jpg`` (178x218): centre square crop, then resize.

    ``layout="auto"`` takes "wild" when its images and box file are both present, else
    "align". Every image listed (wild) or found (align) must exist; the bbox file must be
    well-formed; otherwise :class:`DatasetError`. Images that fail to decode are skipped,
    counted and logged.

    Output: ``out/<id>.png`` (lossless by default, because the test images are the ground truth
    of PSNR/SSIM/FID and JPEG artefacts would enter it; ``image_format="jpg"`` writes quality-95,
    4:4:4 JPEGs at about a quarter of the size), where ``<id>`` is the CelebA file stem.
    Each image is written to a hidden temporary name and renamed, so a crash leaves no
    half-written image. ``out/test.txt`` holds ``test_count`` ids: the first ones in a
    permutation of all candidate ids drawn from ``numpy.random.default_rng(seed)`` that were
    written successfully, so the choice does not depend on worker timing and hardly on
    decode failures. ``out/train.txt`` holds the rest; both are sorted. ``out/prepare.json``
    records the settings and counts.

    Re-running into the same ``out`` with the same settings resumes: images already there
    are kept. ``out`` must otherwise be empty or absent, unless ``overwrite=True``.

    ``workers``: processes for decoding and encoding (default: all CPUs; 0 or 1 runs in this
    process). ``progress``: show a rich progress bar on stderr.
    """
    _check_positive_int(size, "size")
    if isinstance(test_count, bool) or not isinstance(test_count, (int, np.integer)) or test_count < 0:
        raise InputError(f"test_count must be a non-negative integer, got {test_count!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if layout not in ("auto", "wild", "align"):
        raise InputError(f"layout must be 'auto', 'wild' or 'align', got {layout!r}")
    if image_format not in _FORMATS:
        raise InputError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    if not (isinstance(box_scale, (int, float)) and math.isfinite(box_scale) and box_scale > 0):
        raise InputError(f"box_scale must be a positive number, got {box_scale!r}")
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InputError(f"workers must be a non-negative integer, got {workers!r}")

    src, out = Path(src), Path(out)
    layout, tasks_in = _celeba_sources(src, layout)
    ext = _FORMATS[image_format]
    if test_count > len(tasks_in):
        raise InputError(f"test_count {test_count} exceeds the {len(tasks_in)} images found in {src}")

    settings = {
        "layout": layout, "size": int(size), "box_scale": float(box_scale) if layout == "wild" else None,
        "format": image_format,
    }
    existing = _prepare_out_dir(out, settings, overwrite)

    tasks, reused = [], []
    for image_id, path, box in tasks_in:
        dst = out / f"{image_id}{ext}"
        if not overwrite and dst.name in existing:
            reused.append(image_id)
            continue
        tasks.append((image_id, str(path), str(dst), box, int(size), float(box_scale), image_format))

    failures: dict[str, str] = {}
    for image_id, err in _run_tasks(tasks, workers, progress):
        if err is not None:
            failures[image_id] = err
    for image_id, err in sorted(failures.items())[:10]:
        logger.warning("skipped %s: %s", image_id, err)
    if failures:
        logger.warning("%s: skipped %d unreadable images", src, len(failures))

    all_ids = sorted(image_id for image_id, _, _ in tasks_in)
    ok = set(all_ids) - set(failures)
    if test_count > len(ok):
        raise DatasetError(
            f"only {len(ok)} of {len(all_ids)} images could be prepared, fewer than test_count {test_count}"
        )
    order = np.random.default_rng(int(seed)).permutation(len(all_ids))
    test_ids = set()
    for i in order:
        if len(test_ids) == test_count:
            break
        if all_ids[i] in ok:
            test_ids.add(all_ids[i])
    train = sorted(ok - test_ids)
    test = sorted(test_ids)
    _write_text_atomic(out / "train.txt", "".join(f"{i}\n" for i in train))
    _write_text_atomic(out / "test.txt", "".join(f"{i}\n" for i in test))

    result = PrepareResult(
        out=str(out), layout=layout, size=int(size), seed=int(seed), format=image_format,
        crop_rule=_crop_rule(layout, box_scale, size), listed=len(all_ids),
        written=len(tasks) - len(failures), reused=len(reused), failed=len(failures),
        train=len(train), test=len(test),
        failed_examples=[f"{k}: {v}" for k, v in sorted(failures.items())[:20]],
    )
    record = {"source": str(src.resolve()), "test_count": int(test_count), **asdict(result)}
    record["box_scale"] = settings["box_scale"]
    _write_text_atomic(out / "prepare.json", json.dumps(record, indent=2) + "\n")
    return result


def _celeba_sources(
    src: Path, layout: str
) -> tuple[str, list[tuple[str, Path, Optional[tuple[int, int, int, int]]]]]:
    """Detect the layout; return it and (id, image path, box or None) for every image."""
    if not src.exists():
        raise DatasetError(f"CelebA folder {src} does not exist")
    if not src.is_dir():
        raise DatasetError(f"CelebA path {src} is not a folder")
    wild_dir, bbox_file = _find_dir(src, _WILD_DIRS), _find_file(src, _BBOX_FILES)
    align_dir = _find_dir(src, _ALIGN_DIRS)
    if layout == "auto":
        if wild_dir is not None and bbox_file is not None:
            layout = "wild"
        elif align_dir is not None:
            layout = "align"
        elif wild_dir is not None:
            raise DatasetError(
                f"{src} has img_celeba/ but no list_bbox_celeba.txt (looked in {src} and {src / 'Anno'})"
            )
        else:
            raise DatasetError(
                f"{src} holds no CelebA layout: expected img_celeba/ with list_bbox_celeba.txt, "
                f"or img_align_celeba/"
            )
    if layout == "wild":
        if wild_dir is None or bbox_file is None:
            raise DatasetError(
                f"{src}: layout 'wild' needs img_celeba/ and list_bbox_celeba.txt; found "
                f"{'img_celeba/' if wild_dir else 'no img_celeba/'} and "
                f"{'the bbox file' if bbox_file else 'no bbox file'}"
            )
        boxes = read_celeba_bboxes(bbox_file)
        present = set(os.listdir(wild_dir))
        missing = sorted(name for name in boxes if name not in present)
        if missing:
            raise DatasetError(
                f"{bbox_file} lists {len(missing)} images missing from {wild_dir} (e.g. {missing[0]})"
            )
        unlisted = sum(1 for n in present if _is_image_name(n) and n not in boxes)
        if unlisted:
            logger.info("%s: %d images not in the bbox file are ignored", wild_dir, unlisted)
        items = [(posixpath.splitext(n)[0], wild_dir / n, boxes[n]) for n in sorted(boxes)]
    else:
        if align_dir is None:
            raise DatasetError(f"{src}: layout 'align' needs an img_align_celeba/ folder")
        names = sorted(n for n in os.listdir(align_dir) if _is_image_name(n))
        if not names:
            raise DatasetError(f"{align_dir} holds no images; expected CelebA's aligned 178x218 JPEGs")
        items = [(posixpath.splitext(n)[0], align_dir / n, None) for n in names]
    ids = [i for i, _, _ in items]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{src}: several image files share a name stem; ids would collide")
    return layout, items


def _prepare_out_dir(out: Path, settings: dict, overwrite: bool) -> set[str]:
    """Create ``out``; check it is ours to write; return the names of files already there."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"output path {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    names = set()
    for name in os.listdir(out):
        if _TMP_TAG in name and name.startswith("."):
            (out / name).unlink(missing_ok=True)  # debris of a crashed run
        else:
            names.add(name)
    marker = out / _SETTINGS_MARKER
    if names and not overwrite:
        if _SETTINGS_MARKER not in names:
            raise DatasetError(
                f"output folder {out} is not empty and was not made by prepare-celeba; "
                f"choose an empty folder or pass overwrite"
            )
        try:
            previous = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DatasetError(f"cannot read {marker}: {e}") from e
        if previous != settings:
            raise DatasetError(
                f"output folder {out} was prepared with other settings ({previous}); "
                f"choose another folder or pass overwrite"
            )
    _write_text_atomic(marker, json.dumps(settings, sort_keys=True) + "\n")
    return names


def _run_tasks(tasks: list[tuple], workers: int, progress: bool):
    bar = None
    if progress:
        from rich.console import Console
        from rich.progress import Progress

        bar = Progress(console=Console(stderr=True), transient=False)
    pool = None
    try:
        if workers > 1 and len(tasks) > 1:
            pool = multiprocessing.Pool(min(workers, len(tasks)))
            results = pool.imap_unordered(_prepare_one, tasks, chunksize=16)
        else:
            results = map(_prepare_one, tasks)
        if bar is not None:
            bar.start()
            job = bar.add_task("preparing CelebA", total=len(tasks))
        for r in results:
            if bar is not None:
                bar.advance(job)
            yield r
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        if bar is not None:
            bar.stop()
        if pool is not None:
            pool.terminate()
