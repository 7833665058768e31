"""The trainer's state: what a checkpoint holds, resuming from one, starting the generator
from a weights file, and writing the training state and the inference weights.

:class:`TrainerState` is a part of :class:`facefill.train.Trainer`, which builds the models,
optimisers, schedulers and EMA these methods read and write.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from .. import checkpoint as ckpt
from ..config import config_to_dict
from ..errors import FacefillError, InputError
from ..models.widen import widen_into
from .runtime import _rng_state, _set_rng_state, _yaml
from .schedule import _jump

log = logging.getLogger("facefill.train")


class TrainerState:
    """Checkpoint and weights I/O of :class:`facefill.train.Trainer` (see there)."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "generator": self.g_raw.state_dict(),
            "discriminator": self.d_raw.state_dict() if self.d_raw is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "sched_g": self.sched_g.state_dict(),  # for the record: resume rebuilds it from the step
            "sched_d": self.sched_d.state_dict() if self.sched_d is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "nonfinite_total": self.nonfinite_total,
            "train_seconds": self.train_seconds,
            "config": json.dumps(config_to_dict(self.cfg)),
        }

    def _read_resume_state(self) -> tuple[Path, dict[str, Any]]:
        path = ckpt.latest_checkpoint(self.out / "checkpoints")
        if path is None:
            raise FacefillError(f"--resume: no checkpoint in {self.out / 'checkpoints'}; start without --resume")
        return path, ckpt.load_training_state(path)

    def _resume(self, path: Path, state: dict[str, Any]) -> None:
        if (state.get("discriminator") is None) != (self.d_raw is None):
            has = "no critic" if state.get("discriminator") is None else "a critic"
            raise FacefillError(
                f"{path} was trained with {has}, this config's recipe differs "
                "(model.discriminator); resume with the config of that run"
            )
        try:
            self._load_state(path, state)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:  # another run's or a damaged state
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise FacefillError(
                f"{path} does not fit this config's run ({reason}); resume with the config of that run"
            ) from None
        if self.rank == 0:
            log.info("resumed from %s at step %d", path, self.step)

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.g_raw.load_state_dict(state["generator"])
        if self.d_raw is not None:
            self.d_raw.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
        # The learning rate at the resumed step comes from this config's schedule (which may
        # run longer than the saved one's), not from the optimiser's saved value.
        for sched in (self.sched_g, self.sched_d):
            if sched is not None:
                _jump(sched, int(state["step"]))
        if self.ema is not None:
            if state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            else:
                log.warning("%s has no EMA; the EMA starts from the resumed weights", path)
                self.ema.module.load_state_dict(self.g_raw.state_dict())
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))  # 0 in checkpoints from before it was kept
        if self.world == 1:
            _set_rng_state(state["rng"])

    def _init_from(self, path: str) -> None:
        """Start the generator (and its EMA) from a facefill weights file of the same model."""
        model, meta = ckpt.load_weights(path)
        m = self.cfg.model
        if meta.get("model") != m.generator:
            raise FacefillError(
                f"train.init_weights={path} holds a {meta.get('model')} generator, this config trains "
                f"{m.generator}; give weights of the same model"
            )
        if self.cfg.train.init_widen:
            try:
                widen_into(model, self.g_raw)
            except InputError as e:
                raise FacefillError(f"train.init_weights={path} cannot be widened into this config's generator: {e}") from None
        else:
            try:
                self.g_raw.load_state_dict(model.state_dict())
            except RuntimeError as e:
                raise FacefillError(
                    f"train.init_weights={path} does not fit this config's generator: {str(e).splitlines()[0]}"
                    " (a narrower generator of the same model loads with train.init_widen=true)"
                ) from None
        if self.ema is not None:
            self.ema.module.load_state_dict(self.g_raw.state_dict())
        if self.rank == 0:
            log.info("generator initialised from %s (trained %s steps)", path, meta.get("step", "?"))

    @property
    def inference_model(self) -> torch.nn.Module:
        """The generator whose weights are exported and validated: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.g_raw

    def save(self) -> None:
        """Write the training state and the inference weights (rank 0; both atomic).

        Raises:
            CheckpointError: a write failed (disk full, permissions); the message says from
                which checkpoint ``--resume`` continues.
        """
        if self.rank != 0:
            return
        t, m = self.cfg.train, self.cfg.model
        try:
            ckpt.save_training_state(self.out / "checkpoints", self.step, self.state_dict(), t.keep_last)
            ckpt.save_weights(
                self.inference_model,
                self.out / f"{m.generator}_{m.preset}.safetensors",
                extra={"step": self.step, "ema": t.ema_decay > 0, "train_config": config_to_dict(self.cfg, relative_to=Path.cwd())},
            )
        except ckpt.CheckpointError as e:
            last = ckpt.latest_checkpoint(self.out / "checkpoints")
            then = f"continue from {last.name} with --resume" if last else "start the run again"
            raise ckpt.CheckpointError(f"step {self.step}: {e}; free space there (or fix its permissions), then {then}") from e

    def _prepare_out(self) -> None:
        """Rank 0, as ``fit`` starts: the folder, the old run's files deleted (``overwrite``),
        temporary files of an interrupted write removed, the resolved config written."""
        self.out.mkdir(parents=True, exist_ok=True)
        for old in self._old_run:
            old.unlink(missing_ok=True)
        if self._old_run:
            log.info("--overwrite: deleted %d files of the previous run in %s", len(self._old_run), self.out)
        self._old_run = []
        stale = [*(self.out / "checkpoints").glob(".step_*.pt.*.tmp"), *self.out.glob(".*.safetensors.*.tmp"),
                 *self.out.glob(".*.json.*.tmp")]
        for tmp in stale:
            tmp.unlink(missing_ok=True)
        if stale:
            log.info("removed %d temporary files of an interrupted write: %s", len(stale), ", ".join(p.name for p in stale))
        (self.out / "config.yaml").write_text(_yaml(config_to_dict(self.cfg)))
