"""Image folders: :func:`scan_images`, split lists, :func:`carve_holdout` and the
:class:`ImageFolderDataset` with its seeded flips and augmentation (:func:`flip_decision`)."""

from __future__ import annotations

import hashlib
import logging
import operator
import os
import posixpath
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ..augment import Augment
from ..errors import InputError
from .errors import DatasetError, ImageReadError
from .images import IMAGE_EXTENSIONS, PathLike, _check_positive_int, center_crop_resize, load_image

logger = logging.getLogger("facefill.data")




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

