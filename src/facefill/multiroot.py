"""Training data over several image folders, and the trainer's validation images.

- :class:`MultiRootDataset` puts several :class:`~facefill.data.ImageFolderDataset` (one per
  folder, all at one size) end to end. Each folder keeps its own ``train.txt`` / ``test.txt``;
  item ``i`` is the ``i``-th of the concatenation, and its flip and augmentation are drawn from
  (seed, epoch, ``i``) with the *global* ``i``, so one folder behaves exactly like its
  ``ImageFolderDataset``. :attr:`~MultiRootDataset.counts` says how many images each folder
  gave.
- :func:`validation_set` builds the images the trainer validates on: the held-out part of every
  folder's training split when ``holdout > 0`` (:func:`facefill.data.carve_holdout`), else each
  folder's ``val_split``; :meth:`~MultiRootDataset.round_robin` interleaves the folders so that a
  small validation batch still sees every one.
"""

from __future__ import annotations

import bisect
import logging
import operator
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from .data import DatasetError, ImageFolderDataset, PathLike
from .errors import FacefillError, InputError

__all__ = ["MultiRootDataset", "validation_set"]

logger = logging.getLogger("facefill.data")


class MultiRootDataset(torch.utils.data.Dataset):
    """Several image folders as one dataset, indexed ``0 .. sum(len) - 1`` folder after folder.

    ``MultiRootDataset(datasets)`` joins built datasets; :meth:`from_roots` builds one
    :class:`~facefill.data.ImageFolderDataset` per folder with the same arguments. Items are
    float32 (3, size, size) in [0, 1]. Every folder must have the same ``size``; a folder listed
    twice is refused.
    """

    def __init__(self, datasets: Sequence[ImageFolderDataset]) -> None:
        datasets = list(datasets)
        if not datasets:
            raise InputError("MultiRootDataset needs at least one dataset")
        if len({ds.size for ds in datasets}) > 1:
            raise InputError(f"every folder must be served at one size, got {[ds.size for ds in datasets]}")
        seen: dict[Path, Path] = {}
        for ds in datasets:
            key = ds.root.resolve()
            if key in seen:
                raise DatasetError(f"data folder {ds.root} is listed twice (as {seen[key]} and {ds.root})")
            seen[key] = ds.root
        self.datasets = datasets
        self.size = datasets[0].size
        self.epoch = 0
        self._starts: list[int] = []
        self._ends: list[int] = []
        total = 0
        for ds in datasets:
            self._starts.append(total)
            total += len(ds)
            self._ends.append(total)

    @classmethod
    def from_roots(cls, roots: Union[PathLike, Sequence[PathLike]], size: int, **kwargs) -> "MultiRootDataset":
        """One :class:`~facefill.data.ImageFolderDataset` ``(root, size, **kwargs)`` per folder.

        A missing folder, one without images, or one without the split file raises
        :class:`~facefill.data.DatasetError` naming that folder.
        """
        if isinstance(roots, (str, Path)):
            roots = [roots]
        roots = list(roots)
        if not roots:
            raise DatasetError("no data folder given; expected one folder or a list of folders")
        return cls([ImageFolderDataset(root, size, **kwargs) for root in roots])

    @property
    def counts(self) -> dict[str, int]:
        """Images per folder, ``{str(root): n}`` in folder order."""
        return {str(ds.root): len(ds) for ds in self.datasets}

    def describe(self) -> str:
        """One line for logs, e.g. ``"850 images (/data/a: 786 of train (64 held out,
        holdout_seed 0); /data/b: 64 held out of train (holdout_seed 0))"``."""

        def part(ds: ImageFolderDataset) -> str:
            split = ds.split or "all images"
            if not ds.holdout:
                return f"{ds.root}: {len(ds)} of {split}"
            if ds.part == "holdout":
                return f"{ds.root}: {len(ds)} held out of {split} (holdout_seed {ds.holdout_seed})"
            return f"{ds.root}: {len(ds)} of {split} ({ds.holdout} held out, holdout_seed {ds.holdout_seed})"

        return f"{len(self)} images ({'; '.join(part(ds) for ds in self.datasets)})"

    def __len__(self) -> int:
        return self._ends[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """``(folder number, index within that folder)`` of global item ``index``."""
        n = len(self)
        index = operator.index(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        k = bisect.bisect_right(self._ends, index)
        return k, index - self._starts[k]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose flips and augmentation ``__getitem__`` applies."""
        for ds in self.datasets:
            ds.set_epoch(epoch)
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> torch.Tensor:
        k, j = self.locate(index)
        return self.datasets[k].get(j, key=self._starts[k] + j)

    def round_robin(self) -> list[int]:
        """Every global index once, the folders taken in turn: with folders of 3 and 1 images,
        ``[0, 3, 1, 2]`` (first of each, then the second of each, ...)."""
        order = []
        for j in range(max(len(ds) for ds in self.datasets)):
            order.extend(start + j for start, ds in zip(self._starts, self.datasets) if j < len(ds))
        return order


def validation_set(
    roots: Union[PathLike, Sequence[PathLike]],
    size: int,
    *,
    split: Optional[str] = "train",
    val_split: Optional[str] = "test",
    holdout: int = 0,
    holdout_seed: int = 0,
) -> MultiRootDataset:
    """The images the trainer validates on, unflipped and unaugmented.

    With ``holdout > 0``: the ``holdout`` images :func:`~facefill.data.carve_holdout` takes out of
    each folder's ``split`` (the ones training does not see). Otherwise each folder's
    ``val_split``; a folder without that list falls back to its ``split`` with a warning.
    Take the first ``n`` of :meth:`MultiRootDataset.round_robin` for a batch of ``n``.
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    if holdout:
        return MultiRootDataset.from_roots(
            roots, size, split=split, flip=False, holdout=holdout, holdout_seed=holdout_seed, part="holdout"
        )
    parts = []
    for root in roots:
        try:
            parts.append(ImageFolderDataset(root, size, split=val_split, flip=False))
        except FacefillError as e:
            logger.warning("no validation split in %s (%s); validating on its first training images", root, e)
            parts.append(ImageFolderDataset(root, size, split=split, flip=False))
    return MultiRootDataset(parts)
