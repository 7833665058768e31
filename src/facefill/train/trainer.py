"""The :class:`Trainer`: builds models, losses and data from a config, runs the loop, validates
and logs; its checkpoints and resume are in :mod:`.state`."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from .. import checkpoint as ckpt
from ..blend import poisson_blend
from ..config import TrainConfig, check_config
from .._device import autocast, precision_name, resolve_precision
from .._memory import retain_freed_memory
from .._inference import run_generator
from ..errors import ConfigError, FacefillError, InputError, describe_os_error
from ..metrics import psnr, ssim
from .runtime import (
    _distributed,
    _every,
    _sigterm_as_interrupt,
    _train_device,
    image_grid,
)
from .sampling import InpaintingPairs, StepSampler
from .schedule import _check_schedule, _jump, ema_with_warmup, lr_shape
from .state import TrainerState

log = logging.getLogger("facefill.train")


class TrainingError(FacefillError):
    """The run cannot go on (for example, repeated non-finite losses)."""


class Trainer(TrainerState):
    """Builds models, losses, data and optimisers from a :class:`TrainConfig`; runs the loop.

    ``Trainer(cfg, out_dir, resume=False).fit()``. ``out_dir`` receives the inference
    weights (``<generator>_<preset>.safetensors`` + JSON card), ``checkpoints/`` with the
    last ``train.keep_last`` training states, ``config.yaml`` (resolved), ``log.jsonl``
    (every logged step) and ``tb/`` (TensorBoard).

    A fresh run (neither ``resume`` nor ``overwrite``) into a folder that holds another run's
    checkpoints is refused; ``overwrite=True`` deletes that run's checkpoints, log and
    TensorBoard events when :meth:`fit` starts. Nothing is written before :meth:`fit`.

    Raises:
        ConfigError: a config value no run can train with (see :func:`facefill.config.check_config`),
            an unknown model, preset, argument or device.
        FacefillError: ``out_dir`` is a file, or holds another run (see above).
    """

    def __init__(
        self, cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False
    ) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.rank, self.world, local_rank = _distributed()
        t = cfg.train
        check_config(cfg)
        _check_schedule(t)
        self._old_run = self._check_out(resume, overwrite)
        resumed = self._read_resume_state() if resume else None  # before the models: a bad file fails fast
        if t.device:
            self.device = _train_device(t.device)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
        self._own_group = self.world > 1 and not dist.is_initialized()
        if self._own_group:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        cuda = self.device.type == "cuda"
        try:
            self.amp_dtype = resolve_precision(t.amp, self.device)
        except InputError as e:
            raise FacefillError(f"train.amp: {e}") from None
        self.channels_last = t.channels_last and self.device.type in ("cuda", "cpu")
        if self.device.type == "cpu" and t.retain_memory and retain_freed_memory():
            log.debug("malloc retains freed memory (train.retain_memory)")

        self._seed(t.seed)
        self._build_models()
        self._build_losses()
        self._build_data()
        self.opt_g = torch.optim.Adam(self.g_raw.parameters(), lr=t.lr, betas=tuple(t.betas))
        self.opt_d = (
            torch.optim.Adam(self.d_raw.parameters(), lr=t.d_lr, betas=tuple(t.betas))
            if self.d_raw is not None
            else None
        )
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, lr_shape(t, finetune=True))
        self.sched_d = (
            torch.optim.lr_scheduler.LambdaLR(self.opt_d, lr_shape(t, finetune=False))
            if self.opt_d is not None
            else None
        )
        self.ema = None
        if t.ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel

            self.ema = AveragedModel(self.g_raw, multi_avg_fn=ema_with_warmup(t.ema_decay), use_buffers=True)
            self.ema.requires_grad_(False)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self.step = 0
        self.nonfinite_total = 0
        self.train_seconds = 0.0  # wall time of the steps so far, over every session of the run
        self._nonfinite_run = 0
        if resumed is not None:
            self._resume(*resumed)
        elif t.init_weights:
            self._init_from(t.init_weights)
        if self.rank == 0:
            log.info(
                "precision %s%s on %s", precision_name(self.amp_dtype),
                ", channels_last" if self.channels_last else "", self.device,
            )
        if self.world > 1:
            ids = [self.device.index] if cuda else None
            self.g = DDP(self.g_raw, device_ids=ids)
            self.d = DDP(self.d_raw, device_ids=ids) if self.d_raw is not None else None
        else:
            self.g, self.d = self.g_raw, self.d_raw
        self.writer = None

    # -- construction ---------------------------------------------------------------------
    def _check_out(self, resume: bool, overwrite: bool) -> list[Path]:
        """Refuse an output that cannot be a run folder; the files of another run in it, to be
        deleted when ``fit`` starts (``overwrite``), else none."""
        if self.out.exists() and not self.out.is_dir():
            raise FacefillError(f"--out {self.out} is an existing file, not a folder; give a folder for the run")
        existing = next(p for p in (self.out, *self.out.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise FacefillError(f"--out {self.out}: {existing} is a file, not a folder; give a folder for the run")
        if self.rank == 0 and not os.access(existing, os.W_OK | os.X_OK):  # worded as the error a write would raise
            code = errno.EROFS if os.statvfs(existing).f_flag & os.ST_RDONLY else errno.EACCES
            raise FacefillError(f"--out {self.out}: {describe_os_error(OSError(code, os.strerror(code), str(existing)))}")
        if resume and overwrite:
            raise FacefillError("--resume continues the run in --out and --overwrite deletes it; give one of them")
        if resume:
            return []
        old = sorted((self.out / "checkpoints").glob("step_*.pt"))
        if old and not overwrite:
            raise FacefillError(
                f"{self.out} holds another run's checkpoints (up to {old[-1].name}); continue it with "
                "--resume, start over with --overwrite (deletes them), or give a new --out"
            )
        if not old:
            return []
        return old + [p for p in (self.out / "log.jsonl",) if p.is_file()] + sorted((self.out / "tb").glob("events.out.tfevents.*"))

    def _seed(self, seed: int) -> None:
        random.seed(seed + self.rank)
        np.random.seed(seed + self.rank)
        torch.manual_seed(seed)  # same initial weights on every rank

    def _build_models(self) -> None:
        from ..models import create_model, list_models, model_entry

        m = self.cfg.model

        def build(key: str, preset_key: str, name: str, preset: str, args: dict, kind: str) -> torch.nn.Module:
            if name not in list_models(kind):
                raise ConfigError(f"model.{key}={name!r} is not a registered {kind}; available: {', '.join(list_models(kind))}")
            entry = model_entry(name)
            if not entry.trainable:
                raise ConfigError(
                    f"model.{key}={name} has nothing to train (a classical method); "
                    "evaluate it directly with facefill.evaluate"
                )
            if preset not in entry.presets:
                raise ConfigError(f"model.{preset_key}={preset!r}: {name} has the presets {', '.join(entry.presets)}")
            try:
                return create_model(name, preset, **args)
            except (ValueError, TypeError, RuntimeError) as e:  # unknown arguments, a constructor's own checks
                raise ConfigError(f"model.{key}_args={args}: {str(e).splitlines()[0]}") from None

        self.g_raw = build("generator", "preset", m.generator, m.preset, m.generator_args, "generator").to(self.device)
        size, stride = self.cfg.data.size, int(getattr(self.g_raw, "stride", 1))
        if size % stride:
            raise ConfigError(
                f"config key data.size={size} is not allowed for {m.generator}: a multiple of its stride {stride} "
                f"(e.g. {-(-size // stride) * stride})"
            )
        self._check_memory()
        self.d_raw = None
        if m.discriminator not in (None, "", "none"):
            self.d_raw = build(
                "discriminator", "discriminator_preset", m.discriminator, m.discriminator_preset,
                m.discriminator_args, "discriminator",
            )
            self.d_raw.to(self.device)
        if self.channels_last:
            for net in (self.g_raw, self.d_raw):
                if net is not None:
                    net.to(memory_format=torch.channels_last)

    def _check_memory(self) -> None:
        """Refuse a ``data.size`` x ``train.batch_size`` whose generator activations alone cannot
        fit in the device's memory (see :mod:`facefill._memory`: a lower bound of one step's need)."""
        from .._memory import memory_shortfall

        m = self.cfg.model
        problem = memory_shortfall(
            self.g_raw, self.cfg.data.size, self.cfg.train.batch_size, self.device, grad=True, dtype=self.amp_dtype,
            what=f"the {m.generator} ({m.preset}) generator's training forward alone",
            size_key="data.size", batch_key="train.batch_size",
        )
        if problem:
            raise ConfigError(f"config key {problem}")

    def _build_losses(self) -> None:
        from ..recipes import create_recipe
        from ..vgg import VGG16Features

        lc = self.cfg.loss

        def load_vgg() -> VGG16Features:
            if lc.vgg_weights == "random":
                log.warning("loss.vgg_weights=random: VGG16 losses use random weights (tests only)")
                return VGG16Features.random(seed=0).set_input_convention(lc.vgg_input).to(self.device)
            return VGG16Features.from_pretrained(lc.vgg_weights).set_input_convention(lc.vgg_input).to(self.device)

        # loss.args holds no common key and only what the recipe takes (check_config said so).
        common = {k: getattr(lc, k) for k in ("adv", "perceptual", "style", "l1", "adv_kind", "resize")}
        self.recipe = create_recipe(lc.recipe, {**common, **lc.args}, load_vgg).to(self.device)
        self.recipe.check_models(self.g_raw, self.d_raw)
        if self.cfg.train.critic_start > 0 and self.d_raw is not None and not self.recipe.critic_free_phase:
            raise FacefillError(
                f"train.critic_start: loss.recipe={lc.recipe} has no phase without its critic; "
                "set train.critic_start=0"
            )

    def _mask_source(self, seed: int, augment: bool):
        from ..masks import MaskFolder, MaskGenerator

        mc, size = self.cfg.masks, self.cfg.data.size
        if mc.source == "generate":
            return MaskGenerator(size, preset=mc.preset, seed=seed)
        if mc.source == "folder":
            if not mc.root:
                raise FacefillError("masks.source=folder needs masks.root, the folder of mask images")
            return MaskFolder(mc.root, size, invert=mc.invert, augment=augment, seed=seed)
        raise FacefillError(f"masks.source must be 'generate' or 'folder', got {mc.source!r}")

    def _build_data(self) -> None:
        from ..multiroot import MultiRootDataset, validation_set

        dc, t = self.cfg.data, self.cfg.train
        if not dc.roots:
            raise FacefillError(
                "data.root is not set: give the folder of training images (--set data.root=DIR) "
                "or a list of folders (--set data.root=[DIR1,DIR2])"
            )
        held = {"holdout": dc.holdout, "holdout_seed": dc.holdout_seed}
        images = MultiRootDataset.from_roots(
            dc.roots, dc.size, split=dc.split, flip=dc.flip, seed=t.seed, augment=dc.augment, part="rest", **held
        )
        self.data_counts = images.counts
        if self.rank == 0:
            log.info("training images: %s", images.describe())
        self.pairs = InpaintingPairs(images, self._mask_source(t.seed, self.cfg.masks.augment))
        self.val_batch = None
        if dc.val_count > 0 and self.rank == 0:
            val = validation_set(dc.roots, dc.size, split=dc.split, val_split=dc.val_split, **held)
            log.info("validation images: %s", val.describe())
            masks = self._mask_source(seed=12345, augment=False)
            order = val.round_robin()[: dc.val_count]
            self.val_batch = (
                torch.stack([val[i] for i in order]),
                torch.stack([masks.sample(i, 0) for i in range(len(order))]),
            )

    def _loader(self) -> Iterator:
        t = self.cfg.train
        sampler = StepSampler(
            len(self.pairs), t.batch_size, rank=self.rank, world=self.world, seed=t.seed, start_step=self.step
        )
        workers = self.cfg.data.workers
        loader = DataLoader(
            self.pairs, batch_size=t.batch_size, sampler=sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            # Its own generator: making the iterator draws a base seed, which must not come
            # from the global RNG that the recipe's random draws (DiffAugment) continue on a resume.
            generator=torch.Generator().manual_seed(t.seed * 1_000_003 + self.step),
        )
        return iter(loader)

    # -- the loop -------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.cfg.train.iterations + self.cfg.train.finetune_iterations

    def _phase(self) -> None:
        """Set train modes for the current step (the learning rate is the schedulers')."""
        t = self.cfg.train
        self.g.train()
        if self.d is not None:
            self.d.train()
        finetune = self.step >= t.iterations
        if finetune:
            for bn in self.g_raw.finetune_batchnorms():
                bn.eval()

    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    @property
    def critic_active(self) -> bool:
        """Whether the critic trains and judges at the current step (``train.critic_start``)."""
        return self.d is not None and self.step >= self.cfg.train.critic_start

    @contextmanager
    def _frozen_critic(self):
        """The raw critic in eval mode without gradients, for the generator's adversarial term."""
        if self.d_raw is None:
            yield None
            return
        was_training = self.d_raw.training
        # Each parameter's own flag comes back: a recipe may keep part of the critic frozen.
        flags = [p.requires_grad for p in self.d_raw.parameters()]
        self.d_raw.eval().requires_grad_(False)
        try:
            yield self.d_raw
        finally:
            self.d_raw.train(was_training)
            for p, flag in zip(self.d_raw.parameters(), flags):
                p.requires_grad_(flag)

    def _all_finite(self, *values: torch.Tensor) -> bool:
        flag = torch.tensor(float(all(torch.isfinite(v).all() for v in values)), device=self.device)
        if self.world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def train_step(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, float] | None:
        """One critic update (when the recipe has a critic) and one generator update;
        ``None`` when the step was skipped."""
        from ..recipes import detach_parts

        image = image.to(self.device, non_blocking=True)
        mask = mask.to(self.device, non_blocking=True)
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
            mask = mask.contiguous(memory_format=torch.channels_last)
        d_loss, d_terms = torch.zeros((), device=self.device), {}
        judged = self.critic_active
        with self._autocast():
            parts = self.g(image, mask, return_parts=True)
            if self.cfg.train.blend == "poisson":  # what inference outputs: the losses see it
                parts = {**parts, "output": poisson_blend(image, parts["raw"], mask)}
            if judged:
                d_loss, d_terms = self.recipe.critic_loss(self.d, image, mask, detach_parts(parts))
        with self._autocast(), self._frozen_critic() as critic:
            total, terms = self.recipe.generator_loss(critic if judged else None, image, mask, parts)
        self._last_batch = (image.detach(), mask.detach(), parts["output"].detach())
        if not self._all_finite(d_loss, total):
            if self.opt_d is not None:
                self.opt_d.zero_grad(set_to_none=True)
            self.opt_g.zero_grad(set_to_none=True)
            self.nonfinite_total += 1
            self._nonfinite_run += 1
            if self.rank == 0:
                log.warning("step %d: non-finite loss, step skipped (%d in a row)", self.step, self._nonfinite_run)
            if self._nonfinite_run >= self.cfg.train.max_nonfinite:
                raise TrainingError(
                    f"{self._nonfinite_run} non-finite losses in a row at step {self.step}; "
                    "lower train.lr, try train.amp=fp32, or check the data"
                )
            return None
        self._nonfinite_run = 0
        # The generator first: its loss went through the critic's current weights, which the
        # critic's step would change in place (only a spectral-norm critic recomputes them).
        # The critic's loss saw detached outputs, so the generator's step does not touch it.
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt_g)
        if self.ema is not None:
            self.ema.update_parameters(self.g_raw)
        if self.opt_d is not None and judged:
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(d_loss).backward()
            self.scaler.step(self.opt_d)
        self.scaler.update()
        out = {k: float(v) for k, v in terms.items()}
        out["total"] = float(total.detach())
        out["lr"] = self.opt_g.param_groups[0]["lr"]
        if judged:
            out["d_loss"] = float(d_loss.detach())
            out.update({f"d_{k}": float(v) for k, v in d_terms.items()})
        return out

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self.val_batch is None:
            return {}
        model = self.inference_model
        was_training = model.training
        model.eval()
        image, mask = (t.to(self.device) for t in self.val_batch)
        out = torch.cat([
            run_generator(model, image[i : i + 8], mask[i : i + 8], self.amp_dtype) for i in range(0, len(image), 8)
        ])
        model.train(was_training)
        self._val_out = (image, mask, out)
        return {"psnr": float(psnr(out, image).mean()), "ssim": float(ssim(out, image).mean())}

    def _log_val_images(self) -> None:
        """The last validation's first images to TensorBoard (rank 0): masked input, output, truth."""
        if self.rank != 0 or getattr(self, "_val_out", None) is None:
            return
        image, mask, out = self._val_out
        self.writer.add_image("val/masked|output|truth", image_grid(image * (1 - mask), out, image), self.step)

    def _log(self, values: dict[str, float], prefix: str) -> None:
        if self.rank != 0:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}/{k}", v, self.step)
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, "kind": prefix, **values}) + "\n")

    def fit(self) -> dict[str, float]:
        """Train until ``iterations + finetune_iterations`` steps; return the last logged losses.

        Under torchrun, the process group this trainer started is closed when ``fit`` returns."""
        from tqdm.auto import tqdm

        finished = False
        with _sigterm_as_interrupt():
            try:
                last = self._fit(tqdm)
                finished = True
                return last
            except OSError as e:  # log, events, config, data: the boundary's wording, and how to go on
                resume = ckpt.latest_checkpoint(self.out / "checkpoints") is not None
                raise TrainingError(describe_os_error(e) + (", then continue with --resume" if resume else "")) from e
            finally:
                self._leave_group(finished)

    def _leave_group(self, finished: bool) -> None:
        """Close the process group this trainer started. Left to the interpreter's exit, gloo's
        teardown can race the other rank's and abort the process ("terminate called without an
        active exception") after a run that succeeded. The barrier makes every rank done with its
        peers first; after a failure another rank may never reach it, so then it is skipped."""
        if not (self._own_group and dist.is_initialized()):
            return
        if finished:
            dist.barrier()
        dist.destroy_process_group()

    def _fit(self, tqdm) -> dict[str, float]:
        t = self.cfg.train
        if self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self._prepare_out()
            self.writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step)
        batches = self._loader()
        bar = tqdm(
            total=self.total_steps, initial=self.step, disable=self.rank != 0, unit="it",
            dynamic_ncols=True, desc="train",
        )
        last: dict[str, float] = {}
        start, before = time.perf_counter(), self.train_seconds
        try:
            while self.step < self.total_steps:
                self._phase()
                image, mask = next(batches)
                values = self.train_step(image, mask)
                self.step += 1
                for sched in (self.sched_g, self.sched_d):
                    if sched is not None:  # the critic's too, idle before critic_start
                        _jump(sched, self.step)
                bar.update(1)
                if values is not None:
                    last = values
                if values is not None and _every(t.log_every, self.step, self.total_steps):
                    self._log(values, "loss")
                    bar.set_postfix({k: f"{values[k]:.3f}" for k in ("total", "l1", "d_loss") if k in values})
                if self.rank == 0 and t.image_every and self.step % t.image_every == 0:
                    image, mask, fake = self._last_batch
                    grid = image_grid(image * (1 - mask), mask, fake, image)
                    self.writer.add_image("train/input|mask|output|truth", grid, self.step)
                if t.val_every and self.step % t.val_every == 0:
                    self._log(self.validate(), "val")
                    self._log_val_images()
                if _every(t.save_every, self.step, self.total_steps):
                    self.train_seconds = before + time.perf_counter() - start
                    self.save()
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.close()
        self.train_seconds = before + time.perf_counter() - start
        if self.rank == 0:
            log.info("step %d reached: %.1f s this session, %.1f s over every session of the run",
                     self.step, time.perf_counter() - start, self.train_seconds)
        return last


