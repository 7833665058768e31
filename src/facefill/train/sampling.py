"""What a training step reads: :class:`StepSampler`, the endless step-indexed (and DDP-sharded)
sample stream, and :class:`InpaintingPairs`, images paired with masks by sample position."""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler


class StepSampler(Sampler[int]):
    """Endless, step-indexed sampler shared by single-process and DDP runs.

    The global sample stream is a fresh seeded permutation of the dataset every epoch.
    Global batch ``s`` holds positions ``[s*B*W, (s+1)*B*W)``; rank ``r`` takes its slice
    of ``B``. Yields ``epoch * n + index`` so the dataset can seed per-sample choices
    (flip, mask) with the epoch too. ``start_step`` resumes the stream exactly.
    """

    def __init__(self, n: int, batch: int, *, rank: int = 0, world: int = 1, seed: int = 0, start_step: int = 0):
        self.n, self.batch, self.rank, self.world = n, batch, rank, world
        self.seed, self.start_step = seed, start_step
        self._perm: tuple[int, torch.Tensor] | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1]

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            first = (step * self.world + self.rank) * self.batch
            for position in range(first, first + self.batch):
                epoch, i = divmod(position, self.n)
                yield epoch * self.n + int(self._permutation(epoch)[i])
            step += 1


class InpaintingPairs(Dataset):
    """(image, mask) pairs: an image dataset and a mask source, indexed ``epoch * n + i``."""

    def __init__(self, images, masks) -> None:
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(key, len(self.images))
        self.images.set_epoch(epoch)
        return self.images[i], self.masks.sample(i, epoch)

