"""Typed training configuration: dataclasses, loadable from YAML, overridable by ``key=value``.

A config file holds sections (``model``, ``data``, ``masks``, ``loss``, ``train``) whose keys
are the fields below; ``--set train.batch_size=4`` overrides one. A key whose value is itself a
group of settings (``data.augment``) takes a mapping (``--set data.augment={scale: 0.1}``) or one
setting at a time (``--set data.augment.scale=0.1``). Unknown sections or keys are refused with
the list of valid ones. The resolved config is saved with every checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from .augment import Augment
from .errors import ConfigError, InputError, os_reason

__all__ = [
    "TrainConfig", "load_config", "apply_overrides", "config_to_dict", "config_from_dict", "check_config",
]


@dataclass
class ModelSection:
    generator: str = "apfi"
    preset: str = "paper"
    generator_args: dict = field(default_factory=dict)  # overrides of the preset
    discriminator: str | None = "patchgan"  # none / null: the recipe trains without a critic
    discriminator_preset: str = "paper"
    discriminator_args: dict = field(default_factory=dict)


@dataclass
class DataSection:
    """Training images. ``root`` is one folder or a list of folders (YAML list; on the command
    line ``data.root=[a,b]``), each with its own ``train.txt`` / ``test.txt``.

    Validation: with ``holdout > 0``, that many images per folder are carved out of ``split``
    (:func:`facefill.data.carve_holdout`, seeded by ``holdout_seed``, not by ``train.seed``);
    training uses the rest and validation the held-out ones, interleaved across folders,
    instead of ``val_split``. ``facefill evaluate --split train --holdout N`` evaluates on
    exactly those images.
    """

    root: str | list[str] = ""
    size: int = 256
    split: str | None = "train"  # uses root/train.txt when present
    val_split: str | None = "test"
    val_count: int = 16  # fixed validation subset
    holdout: int = 0  # per folder, images of `split` kept out of training for validation
    holdout_seed: int = 0
    flip: bool = True
    augment: Augment = field(default_factory=Augment)  # scale / shift / color, all 0: off
    workers: int = 2

    @property
    def roots(self) -> list[str]:
        """``root`` as a list of folders (empty when unset)."""
        if isinstance(self.root, str):
            return [self.root] if self.root else []
        return list(self.root)


@dataclass
class MaskSection:
    source: str = "generate"  # "generate" (on the fly) or "folder" (NVIDIA irregular masks)
    preset: str = "medium"  # thin / medium / thick for "generate"
    root: str | None = None  # mask folder for "folder"
    invert: bool = False  # folder polarity: True if black = hole
    augment: bool = True  # NVIDIA's dilation / rotation / crop for "folder"


@dataclass
class LossSection:
    """The training objective: a recipe (facefill.recipes) and its weights.

    ``recipe`` names the method's published objective (``apfi``, ``pconv``, ``deepfill``,
    ``edgeconnect``, ``lama``). The four common weights default to ``None``: the recipe's
    published value. Terms only some recipes have (PConv's ``hole``/``tv``, EdgeConnect's
    feature matching, ...) go in ``args``; a recipe refuses terms it does not have.
    """

    recipe: str = "apfi"
    adv: float | None = None
    perceptual: float | None = None
    style: float | None = None
    l1: float | None = None
    adv_kind: str | None = None  # apfi: hinge (default) or wgan
    args: dict = field(default_factory=dict)  # recipe-specific terms and settings
    vgg_weights: str | None = None  # path; None: $FACEFILL_VGG16 or torchvision's cache; "random": tests only
    resize: int | None = 224  # VGG input size for perceptual/style (APFI: 224; null: as is)
    # What VGG16 is fed: "imagenet" (mean/std normalised, torchvision's convention) or "raw"
    # ([0, 1] as if normalised, what RFR-Net's official code feeds it; both terms ~15x smaller).
    vgg_input: str = "imagenet"


@dataclass
class TrainSection:
    batch_size: int = 6  # per process
    iterations: int = 450_000
    lr: float = 4e-4
    d_lr: float = 4e-4
    betas: tuple[float, float] = (0.9, 0.999)
    finetune_iterations: int = 0  # after `iterations`: lr = finetune_lr, encoder BN frozen
    finetune_lr: float = 1e-5
    seed: int = 0
    # auto: bf16 on a GPU and on a CPU with native bf16, fp32 elsewhere; bf16 / fp16 (CUDA) / fp32
    amp: str = "auto"
    channels_last: bool = True
    # CPU only: glibc's malloc keeps freed memory for the next step instead of unmapping every
    # large tensor and faulting its pages back in (facefill._memory.retain_freed_memory; a step of
    # configs/apfi_faces_cpu.yaml 12 % faster in bf16, 22 % in fp32). The process keeps its peak
    # memory until it exits.
    retain_memory: bool = True
    # Learning-rate schedule (torch.optim.lr_scheduler.LambdaLR, stepped every step): a linear
    # warm-up from lr_warmup_factor x lr over lr_warmup steps, then lr_decay ("none", "cosine",
    # "linear") from step lr_decay_start (0: right after the warm-up) down to lr_min_factor x lr at
    # `iterations`; the critic follows the same shape from d_lr. Fine-tuning runs at finetune_lr.
    lr_warmup: int = 0
    lr_warmup_factor: float = 0.01
    lr_decay: str = "none"
    lr_decay_start: int = 0
    lr_min_factor: float = 0.0
    # EMA of the generator (torch.optim.swa_utils.AveragedModel): 0 switches it off; with it on,
    # the exported weights and the validation are the EMA's. Warm-up: the decay used at update n
    # is min(ema_decay, (1 + n) / (10 + n)).
    ema_decay: float = 0.0
    # Before this step the critic is neither trained nor asked (reconstruction terms only).
    critic_start: int = 0
    # What the losses and the critic see: "none", the plain composite (the papers' protocol), or
    # "poisson", the fill Poisson-blended into the known pixels as facefill's photo paths output
    # it (facefill.blend; exact gradient, two linear solves a step).
    blend: str = "none"
    # A facefill weights file the generator starts from (a fresh run, not a resume).
    init_weights: str | None = None
    # init_weights may hold a narrower generator of the same model (e.g. model.generator_args
    # {unet: [96, 192, 192]} over `small` weights): its channels are kept and the new ones are
    # read through zero weights at first, so training begins from the same outputs
    # (facefill.models.widen).
    init_widen: bool = False
    # Every N steps; 0: log_every / save_every only at the last step, image_every / val_every never.
    log_every: int = 50
    image_every: int = 1000
    val_every: int = 5000
    save_every: int = 5000
    keep_last: int = 3  # training states kept in checkpoints/ (at least 1)
    max_nonfinite: int = 5  # consecutive non-finite steps before the run stops
    device: str | None = None  # None: cuda if available, else cpu


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    masks: MaskSection = field(default_factory=MaskSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Coerce a YAML / command-line value to the field's annotated type."""
    union = get_origin(annotation) in (Union, UnionType)
    members = get_args(annotation) if union else (annotation,)
    optional = type(None) in members
    base = next(a for a in members if a is not type(None))
    if value is None or (optional and isinstance(value, str) and value.lower() in ("null", "none")):
        if optional:
            return None
        raise InputError(f"config key {key} may not be null")
    if list[str] in members:
        return _path_or_paths(value, key)
    if isinstance(value, str) and base is not str:  # a command-line value: parse as YAML
        value = yaml.safe_load(value)
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("true", "1", "yes", "on", "false", "0", "no", "off"):
                return text in ("true", "1", "yes", "on")
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        if base is str:
            return str(value)
        if get_origin(base) is tuple or base is tuple:
            return tuple(float(v) for v in value)
        if get_origin(base) is dict or base is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError):
        pass
    raise InputError(f"config key {key}: cannot read {value!r} as {annotation}")


def _path_or_paths(value: Any, key: str) -> str | list[str]:
    """A folder (a string) or a list of folders; a command-line ``[a, b]`` is read as YAML."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InputError(f"config key {key}: cannot read {value!r} as a YAML list of folders") from None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise InputError(
        f"config key {key}: expected a folder or a non-empty list of folders (quote names YAML "
        f"would read as numbers), got {value!r}"
    )


def _set_group(group: Any, sub: str, value: Any, key: str) -> Any:
    """A copy of the settings dataclass ``group`` with ``sub`` (or, without one, every key of
    the mapping ``value``) replaced."""
    hints = get_type_hints(type(group))
    if not sub:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                value = None
        if not isinstance(value, dict):
            raise InputError(f"config key {key} takes a mapping such as {{{', '.join(f'{k}: ...' for k in hints)}}}")
        for name, v in value.items():
            group = _set_group(group, str(name), v, f"{key}.{name}")
        return group
    if sub not in hints:
        prefix = key.rpartition(".")[0]
        raise InputError(
            f"unknown config key {key!r}; valid keys in {prefix}: {', '.join(f'{prefix}.{k}' for k in hints)}"
        )
    coerced = _coerce(value, hints[sub], key)
    try:
        return dataclasses.replace(group, **{sub: coerced})
    except InputError as e:  # the group's own check of the value
        raise InputError(f"config key {key}: {e}") from None


def _set(cfg: TrainConfig, key: str, value: Any) -> None:
    section_name, _, name = key.partition(".")
    name, _, sub = name.partition(".")
    sections = {f.name for f in dataclasses.fields(TrainConfig)}
    if section_name not in sections or not name:
        raise InputError(
            f"unknown config key {key!r}; keys are section.name with sections "
            f"{', '.join(sorted(sections))}"
        )
    section = getattr(cfg, section_name)
    hints = get_type_hints(type(section))
    if name not in hints:
        raise InputError(
            f"unknown config key {key!r}; valid keys in {section_name}: "
            f"{', '.join(f'{section_name}.{k}' for k in hints)}"
        )
    if dataclasses.is_dataclass(hints[name]):
        setattr(section, name, _set_group(getattr(section, name), sub, value, key))
    elif sub:
        raise InputError(f"unknown config key {key!r}: {section_name}.{name} has no sub-keys")
    else:
        setattr(section, name, _coerce(value, hints[name], key))


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig()
    if not isinstance(data, dict):
        raise InputError("a config must be a mapping of sections (model, data, masks, loss, train)")
    for section_name, values in data.items():
        if not isinstance(values, dict):
            raise InputError(f"config section {section_name!r} must be a mapping, got {values!r}")
        for name, value in values.items():
            _set(cfg, f"{section_name}.{name}", value)
    return cfg


#: The config's file and folder paths, (section, key): resolved against a config file's folder
#: when read, written relative to the working folder into exported weights.
PATH_KEYS = (("data", "root"), ("masks", "root"), ("loss", "vgg_weights"), ("train", "init_weights"))


def _convert_paths(value: str | list[str] | None, convert: Callable[[str], str]) -> str | list[str] | None:
    """``convert`` applied to a path value (each folder of a list); unset and ``"random"`` kept."""
    one = lambda v: convert(v) if v and v != "random" else v  # noqa: E731
    return [one(v) for v in value] if isinstance(value, list) else one(value)


def config_to_dict(cfg: TrainConfig, relative_to: str | Path | None = None) -> dict[str, Any]:
    """The config as plain data. ``relative_to`` (a folder) writes absolute paths relative to
    it, so that weights shared with their training config do not carry the machine's layout."""
    out = dataclasses.asdict(cfg)
    out["train"]["betas"] = list(out["train"]["betas"])
    if relative_to is not None:
        base = Path(relative_to).resolve()
        for section, key in PATH_KEYS:
            out[section][key] = _convert_paths(
                out[section][key], lambda v: os.path.relpath(v, base) if Path(v).is_absolute() else v
            )
    return out


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``section.key=value`` strings; non-string fields parse the value as YAML."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise InputError(f"override {item!r} must look like section.key=value")
        _set(cfg, key.strip(), raw.strip() or None)
    return cfg


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"config key {key}={value!r} is not allowed: {allowed}")


def check_config(cfg: TrainConfig) -> TrainConfig:
    """Refuse values no run can train with, each with the key, the value and what is allowed.

    Checks ranges (learning rates, betas, counts, intervals, ``data.size`` at most
    :data:`facefill.limits.MAX_SIZE`), the recipe's name and every ``loss.args`` key and value
    against what the recipe takes (:func:`facefill.recipes.check_loss_args`); model names and
    devices are checked by the trainer against what is registered and present, and whether
    ``data.size`` x ``train.batch_size`` fits in memory once the generator is built. Returns ``cfg``.

    Raises:
        ConfigError: the first bad value found.
    """
    t = cfg.train
    for key in ("lr", "d_lr", "finetune_lr"):
        value = getattr(t, key)
        if not (math.isfinite(value) and value > 0):
            raise _bad(f"train.{key}", value, "a finite number > 0")
    betas = tuple(t.betas)
    if len(betas) != 2 or not all(math.isfinite(b) and 0 <= b < 1 for b in betas):
        raise _bad("train.betas", list(betas), "two numbers in [0, 1), e.g. [0.9, 0.999]")
    minimum = {
        ("train", "batch_size"): 1, ("train", "iterations"): 1, ("train", "keep_last"): 1,
        ("train", "max_nonfinite"): 1, ("train", "finetune_iterations"): 0,
        ("train", "log_every"): 0, ("train", "image_every"): 0, ("train", "val_every"): 0,
        ("train", "save_every"): 0, ("data", "size"): 1, ("data", "workers"): 0,
        ("data", "val_count"): 0, ("data", "holdout"): 0,
    }
    notes = {
        "keep_last": " (the newest checkpoint is what --resume needs)",
        "log_every": " (0: only the last step)", "save_every": " (0: only the last step)",
        "image_every": " (0: never)", "val_every": " (0: never)",
    }
    for (section, key), low in minimum.items():
        value = getattr(getattr(cfg, section), key)
        if value < low:
            raise _bad(f"{section}.{key}", value, f"an integer >= {low}{notes.get(key, '')}")
    from .limits import MAX_SIZE

    if cfg.data.size > MAX_SIZE:
        raise _bad(
            "data.size", cfg.data.size,
            f"at most {MAX_SIZE} pixels a side (facefill.limits.MAX_SIZE); larger sizes exhaust memory, train at a smaller size",
        )
    from .blend import BLENDS

    if t.blend not in BLENDS:
        raise _bad("train.blend", t.blend, f"one of {', '.join(BLENDS)}")
    for key in ("adv", "perceptual", "style", "l1"):
        value = getattr(cfg.loss, key)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise _bad(f"loss.{key}", value, "a finite weight >= 0, or null for the recipe's own")
    for section, key in (("train", "seed"), ("data", "holdout_seed")):
        value = getattr(getattr(cfg, section), key)
        if not 0 <= value < 2**31:
            raise _bad(f"{section}.{key}", value, "an integer from 0 to 2**31 - 1")
    from .recipes import check_loss_args  # imports torch: only here, not for the CLI's start-up

    common = {f.name for f in dataclasses.fields(LossSection)} - {"args", "recipe"}
    check_loss_args(cfg.loss.recipe, cfg.loss.args, common)
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (or start from the defaults when ``path`` is None), then overrides.

    Relative ``data.root`` (each folder of a list) / ``masks.root`` / ``loss.vgg_weights``
    paths in a file are resolved against the file's folder.
    """
    cfg = TrainConfig()
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config file {path} is a folder; give a YAML file such as configs/apfi_faces_cpu.yaml")
        if not path.is_file():
            raise InputError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not a text (UTF-8 YAML) file; give a YAML config such as configs/apfi_faces_cpu.yaml") from None
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {os_reason(e)}") from None
        except yaml.YAMLError as e:
            raise InputError(f"config file {path} is not valid YAML: {e}".splitlines()[0]) from None
        cfg = config_from_dict(data)
        base = path.resolve().parent
        for section, key in PATH_KEYS:
            part = getattr(cfg, section)
            setattr(part, key, _convert_paths(
                getattr(part, key), lambda v: v if Path(v).is_absolute() else str((base / v).resolve())
            ))
    return apply_overrides(cfg, overrides or [])
