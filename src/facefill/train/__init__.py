"""The training loop: one trainer for every registered generator and discriminator.

Single process on CPU or one GPU, or many processes through ``torchrun`` (DDP: the same
config, data sharded per rank by a step-indexed sampler, gradients averaged, only rank 0
logs and saves). What is minimised is the config's recipe (``loss.recipe``, see
:mod:`facefill.recipes`): each step the critic, when the recipe has one, is updated on real
and (detached) inpainted images, then the generator on the recipe's weighted terms.

Reproducibility: every sample (which image, its flip, its mask) is a function of the seed
and the global sample position, so a run resumed from a checkpoint sees exactly the data it
would have seen, and with the optimiser and RNG states restored it follows the same loss
curve (bit for bit on CPU).

Files: :mod:`.trainer` (the :class:`Trainer` and its loop), :mod:`.state` (checkpoints, resume,
weights), :mod:`.sampling` (:class:`StepSampler`,
:class:`InpaintingPairs`), :mod:`.schedule` (learning rate and EMA), :mod:`.runtime` (device,
ranks, RNG states, signals).
"""

from .sampling import InpaintingPairs, StepSampler
from .schedule import LR_DECAYS, ema_with_warmup, lr_shape
from .trainer import Trainer, TrainingError

__all__ = ["Trainer", "TrainingError", "StepSampler", "InpaintingPairs", "lr_shape", "ema_with_warmup", "LR_DECAYS"]
