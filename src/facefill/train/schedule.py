"""The schedules of a run: the learning-rate shape (:func:`lr_shape`, warm-up then decay, for
``LambdaLR``) and the generator's EMA (:func:`ema_with_warmup`, for ``AveragedModel``)."""

from __future__ import annotations

import math
import warnings

import torch

from ..errors import ConfigError


LR_DECAYS = ("none", "cosine", "linear")


def _check_schedule(t) -> None:
    if t.lr_decay not in LR_DECAYS:
        raise ConfigError(f"train.lr_decay must be one of {', '.join(LR_DECAYS)}, got {t.lr_decay!r}")
    for name in ("lr_warmup", "lr_decay_start", "critic_start"):
        if getattr(t, name) < 0:
            raise ConfigError(f"train.{name} must be >= 0, got {getattr(t, name)}")
    if not 0 < t.lr_warmup_factor <= 1 or not 0 <= t.lr_min_factor <= 1:
        raise ConfigError(
            f"train.lr_warmup_factor must be in (0, 1] and train.lr_min_factor in [0, 1], got "
            f"{t.lr_warmup_factor} and {t.lr_min_factor}"
        )
    if not 0 <= t.ema_decay < 1:
        raise ConfigError(f"train.ema_decay must be in [0, 1) (0: no EMA), got {t.ema_decay}")


def lr_shape(t, *, finetune: bool):
    """The learning-rate factor as a function of the step, for
    :class:`torch.optim.lr_scheduler.LambdaLR`.

    Linear warm-up from ``lr_warmup_factor`` to 1 over ``lr_warmup`` steps; then ``lr_decay``
    from ``max(lr_warmup, lr_decay_start)`` to ``lr_min_factor`` at ``iterations``; during
    fine-tuning (``finetune=True``, the generator) ``finetune_lr / lr``. A plain function (not a
    callable object, whose attributes LambdaLR would save and restore): the schedule always
    follows the current config, and the scheduler's saved state is its step count.
    """
    warmup, warmup_factor = int(t.lr_warmup), float(t.lr_warmup_factor)
    decay, min_factor = t.lr_decay, float(t.lr_min_factor)
    decay_start, end = max(warmup, int(t.lr_decay_start)), int(t.iterations)
    tune = float(t.finetune_lr) / float(t.lr) if finetune and t.lr > 0 else None

    def factor(step: int) -> float:
        if step >= end and tune is not None:
            return tune
        if step < warmup:
            return warmup_factor + (1 - warmup_factor) * step / warmup
        if decay == "none" or step < decay_start:
            return 1.0
        x = min(1.0, (step - decay_start) / max(1, end - decay_start))
        shape = 0.5 * (1 + math.cos(math.pi * x)) if decay == "cosine" else 1 - x
        return min_factor + (1 - min_factor) * shape

    return factor


def _jump(sched: torch.optim.lr_scheduler.LRScheduler, step: int) -> None:
    """Put a scheduler at ``step``: its count and its optimiser's learning rates."""
    sched.last_epoch = step - 1
    with warnings.catch_warnings():  # "step() before optimizer.step()": deliberate here
        warnings.simplefilter("ignore", UserWarning)
        sched.step()


def ema_with_warmup(decay: float):
    """A ``multi_avg_fn`` for :class:`torch.optim.swa_utils.AveragedModel`: an exponential moving
    average whose decay at update ``n`` is ``min(decay, (1 + n) / (10 + n))``, so the first
    updates follow the weights closely instead of averaging in the random initialisation."""

    @torch.no_grad()
    def update(ema_params, params, num_averaged):
        n = int(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(ema_params[0]):
            torch._foreach_lerp_(ema_params, params, 1 - d)
        else:  # integer buffers (BatchNorm's batch count): follow the model
            for e, p in zip(ema_params, params):
                e.copy_(p)

    return update

