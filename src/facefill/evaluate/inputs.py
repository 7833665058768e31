"""What an evaluation runs on: the generator (a module or a weights file), its device and cycle
counts, the mask manifest and its bins, the test images, and how images and masks pair."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn as nn

from .._device import resolve_device
from ..checkpoint import load_weights, sha256_file
from ..data import ImageFolderDataset, PathLike, load_image
from ..errors import FacefillError, InputError
from ..limits import check_cycles_bound
from ..masks import DEFAULT_BINS, MANIFEST_NAME, bin_name, load_manifest, parse_bins
from ..models import InpaintingGenerator, model_entry

Generator = Union[nn.Module, Callable[..., torch.Tensor]]

#: The bins the paper reports (Tables 2-4), by name.
PAPER_BINS: tuple[str, ...] = tuple(bin_name(lo, hi) for lo, hi in DEFAULT_BINS)

PAIRING_RULE = (
    "image i (data order) gets mask i mod n of each bin (n masks in manifest-path order); "
    "fewer masks than images are reused cyclically"
)


class EvaluationError(InputError):
    """An evaluation cannot run as asked: unknown bin, unsupported ``cycles``, bad image size,
    a generator of the wrong kind or one that returns malformed output."""


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


