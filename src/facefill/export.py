"""Export a generator to ONNX and check the exported graph against onnxruntime.

The graph is ``inpaint(image, mask) -> output`` with facefill's conventions: ``image``
(B, 3, S, S) float in [0, 1], ``mask`` (B, 1, S, S) binary with 1 = hole, ``output`` the
composite (known pixels bit-identical to ``image``; not Poisson-blended, :mod:`facefill.blend`
runs outside the network). The spatial size is fixed at export
(``size``); the batch dimension is dynamic. The number of cycles of a cyclic generator
(APFI, RFR-Net) is fixed at export too: ``cycles=None`` keeps the model's default.

Exporter: torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). It
needs only the ``onnx`` package, works offline, exports facefill's generators in seconds and
supports opsets up to 20. The torch.export-based exporter also handles these models, but
needs ``onnxscript``, takes several times longer and produces opset 18 or newer only.

The file is written to a temporary name beside ``path``, checked with ``onnx.checker``, run
by onnxruntime on a seeded random image and mask (batch 1 and batch 2) and compared with
PyTorch; only when the largest absolute difference is within ``atol`` is it renamed over
``path``. ``onnx`` and ``onnxruntime`` are optional: ``pip install "facefill[export]"``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import atomic_write, sha256_file
from .errors import FacefillError, InputError
from .limits import check_cycles_bound, check_size_bound
from .models.base import InpaintingGenerator

__all__ = [
    "ExportError", "ExportResult", "InpaintGraph", "export_onnx", "require_onnx", "verification_inputs",
    "verify_onnx",
]

MIN_OPSET, MAX_OPSET = 13, 20  # what torch's TorchScript exporter and these models support
INSTALL_HINT = 'pip install "facefill[export]"'


class ExportError(FacefillError):
    """A model could not be exported, or the exported graph disagrees with PyTorch."""


@dataclass
class ExportResult:
    path: Path
    model: str
    opset: int
    size: int
    cycles: int | None
    dynamic_batch: bool
    max_abs_diff: float  # onnxruntime vs PyTorch, over the verification batches
    atol: float
    sha256: str

    def as_dict(self) -> dict:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def require_onnx() -> tuple[ModuleType, ModuleType]:
    """Import and return ``(onnx, onnxruntime)``, or raise :class:`ExportError` saying how to install them."""
    missing, modules = [], []
    for name in ("onnx", "onnxruntime"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ExportError(f"ONNX export needs {' and '.join(missing)}, which {verb} not installed: {INSTALL_HINT}")
    return modules[0], modules[1]


class InpaintGraph(nn.Module):
    """``forward(image, mask) -> generator.inpaint(image, mask[, cycles])``: what gets exported."""

    def __init__(self, generator: InpaintingGenerator, cycles: int | None = None) -> None:
        super().__init__()
        self.generator = generator
        self.kwargs = {} if cycles is None else {"cycles": cycles}

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generator.inpaint(image, mask, **self.kwargs)


def _model_name(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return config["name"] if config else type(model).__name__


def _check_arguments(model: nn.Module, size: int, opset: int, cycles: int | None) -> None:
    if not isinstance(model, InpaintingGenerator):
        raise InputError(
            f"model must be a facefill generator (InpaintingGenerator), got {type(model).__name__}"
        )
    stride = model.stride
    if size <= 0 or size % stride:
        raise InputError(f"size must be a positive multiple of {stride} for {_model_name(model)}, got {size}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(f"opset must be between {MIN_OPSET} and {MAX_OPSET}, got {opset}")
    if cycles is not None:
        if "cycles" not in inspect.signature(model.predict).parameters:
            raise InputError(f"cycles is not an argument of {_model_name(model)}; leave it unset")
        if cycles < 1:
            raise InputError(f"cycles must be >= 1, got {cycles}")
        check_cycles_bound(cycles)
    check_size_bound(size)


def verification_inputs(size: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random image and a blocky random hole mask (about 40 % holes), both (B, ., S, S)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g)
    cell = max(1, size // 8)
    coarse = (torch.rand(batch, 1, -(-size // cell), -(-size // cell), generator=g) < 0.4).float()
    mask = F.interpolate(coarse, scale_factor=cell, mode="nearest")[..., :size, :size].contiguous()
    return image, mask


def verify_onnx(
    path: str | Path, graph: nn.Module, size: int, batches: tuple[int, ...] = (1, 2), seed: int = 0
) -> float:
    """Largest absolute difference between onnxruntime (CPU) and ``graph`` over seeded inputs."""
    _, ort = require_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for i, batch in enumerate(batches):
        image, mask = verification_inputs(size, batch, seed + i)
        with torch.inference_mode():
            expected = graph(image, mask).numpy()
        got = session.run(["output"], {"image": image.numpy(), "mask": mask.numpy()})[0]
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime returned shape {got.shape}, PyTorch {expected.shape}")
        worst = max(worst, float(abs(got - expected).max()))
    return worst


def export_onnx(
    model: InpaintingGenerator,
    path: str | Path,
    size: int = 256,
    opset: int = 17,
    cycles: int | None = None,
    *,
    dynamic_batch: bool = True,
    atol: float = 1e-4,
) -> ExportResult:
    """Export ``model.inpaint`` to ONNX at ``path`` (atomically) and verify it with onnxruntime.

    Args:
        model: a facefill generator (e.g. from :func:`facefill.checkpoint.load_weights`);
            exported in eval mode on the CPU, its own mode and device are left as they were.
        path: the ``.onnx`` file to write; its folder is created if needed.
        size: the fixed height and width of the exported graph (a multiple of ``model.stride``).
        opset: ONNX opset, 13 to 20.
        cycles: cycles of a cyclic generator baked into the graph; None keeps the model's.
        dynamic_batch: export the batch dimension as dynamic (``"batch"``) rather than 1.
        atol: largest accepted absolute difference between onnxruntime and PyTorch.

    Raises :class:`ExportError` when ``onnx``/``onnxruntime`` are missing, the exporter fails,
    or the outputs differ by more than ``atol`` (``path`` is then left as it was), and
    :class:`~facefill.errors.InputError` for bad arguments.
    """
    _check_arguments(model, size, opset, cycles)
    onnx, _ = require_onnx()
    name = _model_name(model)
    config = getattr(model, "config", None) or {}
    was_training = model.training
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    model.eval().cpu()
    graph = InpaintGraph(model, cycles).eval()
    image, mask = verification_inputs(size, 1)
    used_cycles = cycles if cycles is not None else getattr(model, "cycles", None)
    result: dict = {}

    def write(tmp: str) -> None:
        axes = {k: {0: "batch"} for k in ("image", "mask", "output")} if dynamic_batch else None
        try:
            with warnings.catch_warnings(), torch.no_grad():
                # The TorchScript exporter warns that it is deprecated and that Python
                # numbers (kernel sizes, channel counts) become constants: both expected.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    graph, (image, mask), tmp,
                    input_names=["image", "mask"], output_names=["output"],
                    opset_version=opset, dynamic_axes=axes, do_constant_folding=True,
                    dynamo=False,
                )
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ExportError(f"torch.onnx.export failed for {name} at {size}x{size}, opset {opset}: {first}") from None
        proto = onnx.load(tmp)
        proto.doc_string = (
            f"facefill {name}: output = inpaint(image, mask); image (B,3,{size},{size}) float in "
            f"[0,1], mask (B,1,{size},{size}) binary with 1 = hole; known pixels are returned unchanged"
        )
        meta = {
            "facefill.model": name,
            "facefill.preset": str(config.get("preset", "")),
            "facefill.kwargs": json.dumps(config.get("kwargs", {})),
            "facefill.cycles": "" if used_cycles is None else str(used_cycles),
            "facefill.size": str(size),
            "facefill.mask": "1 = hole",
        }
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        try:
            onnx.checker.check_model(proto)
        except Exception as e:
            raise ExportError(f"the exported graph of {name} is not valid ONNX: {str(e).splitlines()[0]}") from None
        onnx.save(proto, tmp)
        diff = verify_onnx(tmp, graph, size, (1, 2) if dynamic_batch else (1,))
        if not diff <= atol:
            raise ExportError(
                f"onnxruntime output of {name} differs from PyTorch by {diff:.3g} (> {atol:g}); "
                f"nothing written to {path}"
            )
        result["diff"] = diff

    try:
        atomic_write(path, write)
    finally:
        model.to(device).train(was_training)
    path = Path(path)
    return ExportResult(
        path=path, model=name, opset=opset, size=size, cycles=used_cycles,
        dynamic_batch=dynamic_batch, max_abs_diff=result["diff"], atol=atol,
        sha256=sha256_file(path),
    )
