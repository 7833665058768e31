"""Inpaint real photos: :class:`Inpainter`, the entry point the CLI and the web page call.

``Inpainter.from_pretrained(path)(image, mask)`` fills the hole of one image or a batch.
Everything a user may hold is accepted and given back in the same kind: a file path (given
back as a ``PIL.Image``), a ``PIL.Image``, a numpy array (H, W) or (H, W, C), uint8, uint16 or
float in [0, 1], a torch tensor (C, H, W) float in [0, 1]; a list of any of these, a batched
array (N, H, W, C) or a batched tensor (B, C, H, W).

How a photo is inpainted (``aligned=False``), the way face tools (facexlib, InsightFace) do it:

1. The mask is read (:func:`~facefill.photo.masks.read_mask`: values above ``threshold`` are
   the hole, white = hole, ``invert_mask=True`` for black), grown by ``dilate`` pixels and
   feathered over ``feather`` pixels. Pixels farther than ``dilate + feather`` from the hole
   come back bit-identical.
2. Faces are found with YuNet (box, five landmarks, score; :mod:`~facefill.photo.detect`).
   When none touches the hole, detection runs again with the hole pre-filled by Telea (the
   hole may hide what the detector needs).
3. Every face whose aligned crop holds part of the hole gets its own crop: the similarity
   transform that puts its landmarks on the training template (:mod:`~facefill.photo.align`),
   the crop warped in at the model's size, all crops of a call inpainted in batches, each
   fill warped back with the inverse transform and pasted over the part of the hole that
   face owns (:mod:`~facefill.photo.paste`).
4. The part of the hole that no face owns (a hole on the background, or all of it when no
   face is near) is filled by ``background``: ``"telea"`` (default) or ``"ns"``, OpenCV's
   classical methods, which beat a face model on plain surroundings; or ``"model"``, a square
   crop around it through the face model (the behaviour before YuNet; not what the model was
   trained on).
5. ``aligned=True`` skips detection: the image is already a face crop framed like the
   training faces; it is resized so its shorter side is the model's size and filled whole.

Likely mistakes give an :class:`InpaintWarning` (never on a proper aligned crop): a mask
covering more than half the image (inverted?), ``aligned=True`` on an image that is not square
or whose face is far from the training framing, a face much smaller than the model's size
(upsampled) or much larger (the fill will be soft).

Decisions, for the record:

- **Empty mask**: the input comes back unchanged (a copy), with a warning.
- **All-hole mask**: refused (:class:`~facefill.errors.InputError`).
- **Too large**: images over 8192 px on a side or 50 MP are refused; downscale them first.
- **Colour modes**: RGB stays RGB. RGBA / LA keep their alpha untouched; the model sees the
  colour composited onto white (as in training). Greyscale comes back greyscale (the fill is
  converted with ITU-R 601 luma). Palette images come back RGB (RGBA with transparency).
- **EXIF orientation** of paths and PIL images is applied first; the output is upright.
- ``seed``: APFI has no randomness at inference; the seed is accepted and, when given, the
  model runs under a forked, seeded torch RNG (the caller's global RNG is left as it was).
- ``cycles``: at most :data:`MAX_CYCLES`; the weights are shared across cycles, but each one
  costs a full pass.
- ``precision``: ``"auto"`` (bf16 where the hardware computes it natively, else float32),
  ``"bf16"``, ``"fp32"`` (``"fp16"``: CUDA only). The output is composited in float32.
- ``blend``: ``"poisson"`` (the default) blends the model's fill into each crop in the gradient
  domain (:mod:`facefill.blend`): its detail kept, its colour and brightness taken from the
  pixels around the hole; ``"none"`` is the plain composite. OpenCV's fills are never blended,
  nor is a model that is not a facefill ``InpaintingGenerator`` (it gives no raw prediction);
  ``info.blend`` says what was done.
- ``compile=True`` runs the network under ``torch.compile`` (inductor, with frozen weights;
  :func:`facefill._inference.compile_generator`): on a 2-core Zen 4 EPYC APFI's bf16 forward
  ran 1.3-2x faster (``benchmarks/cost.py --compile``). The first call at each batch shape
  compiles for tens of seconds, so it pays in a long-lived process (``facefill serve
  --compile``), not for one image. Where torch.compile cannot run, one warning says why and
  the model runs eagerly; ``inpainter.compiled`` says which.
- What happened to each image is in ``inpainter.last_info`` (a list of :class:`InpaintInfo`)
  and, with ``return_info=True``, returned as ``(result, infos)``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._device import precision_name, resolve_device, resolve_precision
from .._inference import compile_generator, prepare_model, run_generator
from ..blend import check_blend
from ..checkpoint import CheckpointError, load_weights
from ..errors import InputError
from ..models.base import InpaintingGenerator
from . import align, paste
from .detect import find_faces
from .images import Canvas, box_text, split_images, to_canvas
from .masks import InpaintWarning, blend_region, mask_bbox, read_mask, split_masks
from .report import FaceInfo, InpaintInfo, face_info

__all__ = ["Inpainter", "InpaintInfo", "FaceInfo", "InpaintWarning", "WeightsNotFoundError", "DEMO_WEIGHTS", "MAX_CYCLES"]

logger = logging.getLogger("facefill.inpaint")

#: The bundled demo weights, relative to the ``facefill`` package.
DEMO_WEIGHTS = "weights/apfi_small_celeba_faces128.safetensors"
#: Model size used when a weights file does not record its training size.
DEFAULT_SIZE = 256
#: The most APFI cycles a call may ask for (the paper's best is 6; each cycle is a full pass).
MAX_CYCLES = 64
#: A face this many times smaller or larger than the model's size gets a warning.
SCALE_WARN = 2.0
#: A mask covering more than this share of the image gets a warning (inverted?).
HOLE_WARN = 0.5
BACKGROUNDS = ("telea", "ns", "model")


class WeightsNotFoundError(CheckpointError):
    """The requested weights file (or the bundled demo weights) is not there."""


@dataclass
class _Crop:
    """One model input: an affine view of a photo, and the photo pixels its fill goes to."""

    M: np.ndarray  # 2x3, photo pixels -> crop pixels
    hw: tuple[int, int]  # crop (height, width)
    box: tuple[int, int, int, int]  # photo pixels (x0, y0, x1, y1) holding every pixel it writes
    weight: np.ndarray  # blend weights over `box`
    face: FaceInfo | None = None
    fill: np.ndarray | None = None  # (h, w, 3) float32 over `box`, after the run


@dataclass
class _Job:
    canvas: Canvas
    info: InpaintInfo
    crops: list[_Crop] = field(default_factory=list)
    grown: np.ndarray | None = None  # (H, W) bool: the hole the model sees
    background: np.ndarray | None = None  # (H, W) bool: hole pixels for the classical fill


def _warn(msg: str, info: InpaintInfo, level: int = 4) -> None:
    info.notes.append(msg)
    warnings.warn(msg, InpaintWarning, stacklevel=level)


def _whole_number(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
        bound = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        raise InputError(f"{name} must be a whole number {bound}, got {v!r}")
    return int(v)


def _device(device: str | torch.device | None) -> torch.device:
    dev = resolve_device(device)
    if dev.type == "meta":
        raise InputError("device 'meta' holds no values and cannot run a model; use cpu or cuda")
    return dev


def _box_transform(box: tuple[int, int, int, int], out_w: int, out_h: int) -> np.ndarray:
    """Photo -> crop matrix of a resize of ``box`` to out_w x out_h (pixel centres aligned)."""
    x0, y0, x1, y1 = box
    sx, sy = out_w / (x1 - x0), out_h / (y1 - y0)
    return np.array([[sx, 0, sx * (0.5 - x0) - 0.5], [0, sy, sy * (0.5 - y0) - 0.5]], dtype=np.float64)


def _square_around(box, side: int) -> tuple[int, int, int, int]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left, top = math.floor(cx - side / 2 + 0.5), math.floor(cy - side / 2 + 0.5)
    return left, top, left + side, top + side


class Inpainter:
    """Fill holes in face photos with a facefill generator.

    Build it with :meth:`from_pretrained` (a weights file, or the bundled demo weights) or
    directly from a generator: ``Inpainter(model, size=256)``. Call it as
    ``inpainter(image, mask, ...)``; see the module docstring for what it accepts, how faces
    are handled and what it decides for unusual inputs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        size: int = DEFAULT_SIZE,
        device: str | torch.device | None = None,
        batch_size: int = 8,
        meta: dict[str, str] | None = None,
        precision: str | None = "auto",
        blend: str = "poisson",
        compile: bool = False,
    ) -> None:
        self.blend = check_blend(blend)
        self.device = _device(device)
        #: The autocast dtype (``None``: float32) and its name, from ``precision``.
        self.dtype = resolve_precision(precision, self.device)
        self.precision = precision_name(self.dtype)
        self.model = prepare_model(model.to(self.device).eval(), self.dtype)
        #: Whether the network runs under torch.compile (asked for, and available here).
        self.compiled = bool(compile) and isinstance(model, InpaintingGenerator) and (
            compile_generator(self.model, self.device) is None
        )
        stride = int(getattr(model, "stride", 1))
        self.stride = stride
        self.size = max(stride, -(-_whole_number("size", size, 1) // stride) * stride)
        self.batch_size = _whole_number("batch_size", batch_size, 1)
        self.meta = dict(meta or {})
        self.last_info: list[InpaintInfo] = []
        params = inspect.signature(getattr(model, "predict", model.forward)).parameters
        self._takes_cycles = "cycles" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        *,
        expected_sha256: str | None = None,
        batch_size: int = 8,
        precision: str | None = "auto",
        blend: str = "poisson",
        compile: bool = False,
    ) -> "Inpainter":
        """Load a facefill weights file (``path=None``: the bundled demo weights).

        The model's working size is the training size recorded in the file
        (``train_config.data.size``), else 256. Raises :class:`WeightsNotFoundError` when
        the file is missing and :class:`~facefill.checkpoint.CheckpointError` when it is not
        a facefill safetensors file or fails its sha256. ``precision``: ``"auto"``, ``"bf16"``,
        ``"fp32"`` (or ``"fp16"`` on CUDA), refused with an :class:`InputError` before the load;
        ``blend``: ``"poisson"`` or ``"none"``; ``compile``: see the module docstring.
        """
        if path is None:
            res = resources.files("facefill").joinpath(DEMO_WEIGHTS)
            if not res.is_file():
                raise WeightsNotFoundError(
                    f"the demo weights are not bundled with this installation of facefill "
                    f"(facefill/{DEMO_WEIGHTS}); pass a weights file, e.g. "
                    "Inpainter.from_pretrained('runs/faces/apfi_small.safetensors') or --weights FILE"
                )
            with resources.as_file(res) as p:
                return cls.from_pretrained(
                    p, device, expected_sha256=expected_sha256, batch_size=batch_size, precision=precision,
                    blend=blend, compile=compile,
                )
        path = Path(path)
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file {path} does not exist")
        resolve_precision(precision, _device(device))  # refuse a bad device, precision or blend before the load
        check_blend(blend)
        model, meta = load_weights(path, expected_sha256=expected_sha256)
        if not isinstance(model, InpaintingGenerator):
            raise CheckpointError(f"{path} holds a {meta.get('model')!r} model, not an inpainting generator")
        return cls(
            model, size=_train_size(meta), device=device, batch_size=batch_size, meta=meta, precision=precision,
            blend=blend, compile=compile,
        )

    def warm_up(self, batch: int = 1) -> None:
        """Run the network once on a ``batch`` of the benchmarks' seeded inputs at the working
        size, so that a compiled network (``compile=True``) compiles now rather than in the
        first real call."""
        from ..bench import bench_inputs

        image, hole = bench_inputs(batch, self.size, self.device)
        with torch.inference_mode():
            run_generator(self.model, image, hole, self.dtype)

    # -- the call ---------------------------------------------------------------------------

    def __call__(
        self,
        image: Any,
        mask: Any,
        *,
        cycles: int | None = None,
        seed: int | None = None,
        invert_mask: bool = False,
        aligned: bool = False,
        dilate: int = 0,
        feather: int = 3,
        threshold: float = 0.5,
        background: str = "telea",
        blend: str | None = None,
        return_info: bool = False,
    ) -> Any:
        """Inpaint ``image`` where ``mask`` is 1 (white); returns the input's kind.

        Args:
            image: path, PIL image, numpy array, tensor, a list of them, or a batch.
            mask: one mask (used for every image), a list, or a batch; same kinds.
            cycles: APFI cycles at inference (default: the model's own), 1 to :data:`MAX_CYCLES`.
            seed: seeds any randomness of the model (APFI has none); a whole number >= 0.
            invert_mask: the mask's black (0) is the hole.
            aligned: the image is already an aligned face crop; skip face detection.
            dilate: grow the hole by this many pixels before inpainting.
            feather: blend over this many pixels outside the (grown) hole; 0 = hard edge.
            threshold: mask values above it are the hole.
            background: what fills the part of the hole off every face: ``"telea"``, ``"ns"``
                (OpenCV's classical methods) or ``"model"`` (a square crop through the model).
            blend: ``"poisson"`` or ``"none"`` for this call (default: the inpainter's ``blend``).
            return_info: also return a list of :class:`InpaintInfo`.
        """
        dilate = _whole_number("dilate", dilate, 0)
        feather = _whole_number("feather", feather, 0)
        if cycles is not None:
            cycles = _whole_number("cycles", cycles, 1, MAX_CYCLES)
            if not self._takes_cycles:
                raise InputError(f"cycles: {type(self.model).__name__} has no cycle count")
        if seed is not None:
            seed = _whole_number("seed", seed, 0, 2**63 - 1)
        blend = self.blend if blend is None else check_blend(blend)
        if background not in BACKGROUNDS:
            raise InputError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
        if not isinstance(threshold, (int, float, np.integer, np.floating)) or isinstance(threshold, bool) or not (
            0.0 <= threshold < 1.0
        ):
            raise InputError(f"threshold must be a number in [0, 1), got {threshold!r}")
        items, pack = split_images(image)
        masks = split_masks(mask, len(items))
        jobs = []
        for i, (item, m) in enumerate(zip(items, masks)):
            name = "image" if len(items) == 1 else f"image[{i}]"
            jobs.append(self._plan(item, m, name, bool(aligned), dilate, feather, invert_mask, threshold, background))
        self._run([c for j in jobs for c in j.crops], jobs, cycles, seed, blend)
        outs = [j.canvas.rebuild(self._compose(j, background)) for j in jobs]
        self.last_info = [j.info for j in jobs]
        result = pack(outs)
        return (result, self.last_info) if return_info else result

    # -- planning: mask, faces, crops -------------------------------------------------------

    def _plan(self, item, mask, name, aligned, dilate, feather, invert, threshold, background) -> _Job:
        canvas = to_canvas(item, name)
        W, H = canvas.width, canvas.height
        hole, resized = read_mask(mask, (W, H), invert=invert, threshold=threshold, name=f"the mask of {canvas.name}")
        info = InpaintInfo(mode="empty_mask", size=(W, H), mask_resized=resized)
        job = _Job(canvas, info)
        count = int(hole.sum())
        info.hole_fraction = count / hole.size
        if count == 0:
            _warn(f"the mask of {canvas.name} has no hole; the image is returned unchanged", info)
            return job
        if count == hole.size:
            raise InputError(f"the mask of {canvas.name} covers the whole image: there is nothing to condition on")
        if info.hole_fraction > HOLE_WARN:
            _warn(
                f"the mask of {canvas.name} covers {100 * info.hole_fraction:.0f} % of the image: is the mask "
                "inverted? use invert_mask (--invert-mask) if black marks the hole", info,
            )
        region, grown_sub, alpha = blend_region(hole, dilate, feather)
        x0, y0, x1, y1 = region
        job.grown = np.zeros((H, W), bool)
        job.grown[y0:y1, x0:x1] = grown_sub
        if aligned:
            self._plan_aligned(job, region, alpha)
            return job
        faces = find_faces(canvas, hole)
        info.faces_detected = len(faces)
        transforms = [align.face_transform(f.landmarks, self.size) for f in faces]
        info.faces = [face_info(f, M, self.size) for f, M in zip(faces, transforms)]
        owner = paste.owners(transforms, self.size, region, alpha > 0)
        touched = sorted(set(np.unique(owner[grown_sub]).tolist()) - {-1})
        owner[~np.isin(owner, touched)] = -1
        for k in touched:
            own = owner == k
            box = mask_bbox(own, (x0, y0))
            sl = np.s_[box[1] - y0 : box[3] - y0, box[0] - x0 : box[2] - x0]
            face = info.faces[k]
            face.mode = "inpainted"
            job.crops.append(_Crop(transforms[k], (self.size, self.size), box, alpha[sl] * own[sl], face))
            self._warn_scale(face.scale, f"the face at {box_text(face.box)} in {canvas.name}", info)
        off = grown_sub & (owner == -1)
        if touched:
            first = job.crops[0]
            info.mode, info.face = "face", first.face.box
            corners = np.array(first.face.crop)
            info.crop = _int_box(corners)
        if off.any():
            info.background = "no_face" if background == "model" else background
            info.mode = f"face+{info.background}" if touched else info.background
            where = f"part of the hole in {canvas.name} is off every face" if touched else (
                f"no face found at the hole in {canvas.name}"
            )
            how = "a square around it through the model" if background == "model" else f"OpenCV {background.capitalize()}"
            msg = f"{where}: filled with {how} (background={background!r})"
            if touched:
                info.notes.append(msg)
                logger.info(msg)
            else:
                _warn(msg, info)
            if background == "model":
                self._plan_square(job, region, np.where(owner == -1, alpha, 0.0), off)
            else:
                job.background = np.zeros((H, W), bool)
                job.background[y0:y1, x0:x1] = off
        return job

    def _plan_aligned(self, job: _Job, region, alpha) -> None:
        canvas, info = job.canvas, job.info
        W, H = canvas.width, canvas.height
        info.mode = "aligned"
        info.crop = (0, 0, W, H)
        if abs(W / H - 1) > 0.05:
            _warn(
                f"aligned=True but {canvas.name} is {W}x{H}, not square: aligned crops are square and framed "
                "like the training faces; use aligned=False to find and align the faces", info, 5,
            )
        scale = self.size / min(W, H)
        hw = (self._fit(H * scale), self._fit(W * scale))
        self._warn_scale(min(W, H) / self.size, canvas.name, info, 6)
        landmarks = align.crop_landmarks(canvas.rgb_u8(4 * self.size)[0])
        if landmarks is not None:
            err = align.framing_error(landmarks)
            if err > align.FRAMING_TOLERANCE:
                _warn(
                    f"aligned=True but the face in {canvas.name} is far from the training framing (landmarks "
                    f"{err:.2f} of the side from the template; training crops are within "
                    f"{align.FRAMING_TOLERANCE}): use aligned=False to find and align the faces", info, 5,
                )
        x0, y0, x1, y1 = region
        job.crops.append(_Crop(_box_transform((0, 0, W, H), hw[1], hw[0]), hw, region, alpha))

    def _plan_square(self, job: _Job, region, alpha, off) -> None:
        """``background="model"``: a square of about twice the hole around it, at the model's size."""
        canvas = job.canvas
        W, H = canvas.width, canvas.height
        x0, y0 = region[:2]
        hx0, hy0, hx1, hy1 = mask_bbox(off, (x0, y0))
        side = max(hx1 - hx0, hy1 - hy0)
        margin = max(8, round(0.125 * side))
        crop_side = max(2 * side, side + 2 * margin, min(self.size, max(W, H)))
        left, top, right, bottom = _square_around((hx0, hy0, hx1, hy1), crop_side)
        # Keep the square inside the photo where it fits: more real context, less padding.
        if crop_side <= W:
            left = min(max(left, 0), W - crop_side)
        if crop_side <= H:
            top = min(max(top, 0), H - crop_side)
        box = mask_bbox(alpha > 0, (x0, y0))
        sl = np.s_[box[1] - y0 : box[3] - y0, box[0] - x0 : box[2] - x0]
        square = (left, top, left + crop_side, top + crop_side)
        job.crops.append(_Crop(_box_transform(square, self.size, self.size), (self.size, self.size), box, alpha[sl]))
        if job.info.crop is None:
            job.info.crop = square

    def _warn_scale(self, s: float, what: str, info: InpaintInfo, level: int = 5) -> None:
        if s < 1 / SCALE_WARN:
            _warn(
                f"{what} is small: {s * self.size:.0f} px for the model's {self.size}, upsampled "
                f"{1 / s:.1f}x before the fill", info, level,
            )
        elif s > SCALE_WARN:
            _warn(
                f"{what} is large: {s * self.size:.0f} px for the model's {self.size}; the fill is made at "
                f"{self.size} px and upsampled {s:.1f}x, so it will look soft", info, level,
            )

    def _fit(self, v: float) -> int:
        return max(self.stride, round(v / self.stride) * self.stride)

    # -- running the model ------------------------------------------------------------------

    def _run(self, crops: list[_Crop], jobs: list[_Job], cycles: int | None, seed: int | None, blend: str) -> None:
        owner = {id(c): j for j in jobs for c in j.crops}
        groups: dict[tuple[int, int], list[_Crop]] = {}
        for c in crops:
            groups.setdefault(c.hw, []).append(c)
        kwargs = {} if cycles is None else {"cycles": int(cycles)}
        if blend != "none" and isinstance(self.model, InpaintingGenerator):
            kwargs["blend"] = blend
        rng = contextlib.nullcontext()
        if seed is not None:
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            rng = torch.random.fork_rng(devices=devices)
        with rng, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            for hw, group in groups.items():
                for start in range(0, len(group), self.batch_size):
                    chunk = group[start : start + self.batch_size]
                    ins = [align.warp_in(owner[id(c)].canvas, owner[id(c)].grown, c.M, hw[1], hw[0]) for c in chunk]
                    image = torch.from_numpy(np.stack([i for i, _ in ins])).permute(0, 3, 1, 2).to(self.device)
                    hole = torch.from_numpy(np.stack([h for _, h in ins]))[:, None].to(self.device)
                    out = run_generator(self.model, image, hole, self.dtype, **kwargs)
                    # The composite again, in float32: the known pixels are the input's whatever
                    # the model did in reduced precision.
                    out = torch.where(hole > 0.5, out, image).permute(0, 2, 3, 1).cpu().numpy()
                    for c, o in zip(chunk, out):
                        owner[id(c)].info.precision = self.precision
                        owner[id(c)].info.blend = kwargs.get("blend", "none")
                        c.fill = align.warp_back(o, c.M, c.box)

    def _compose(self, job: _Job, background: str) -> np.ndarray:
        canvas = job.canvas
        pixels = canvas.pixels.copy()
        for c in job.crops:
            canvas.blend_into(pixels, c.fill, c.weight, c.box[:2])
        if job.background is not None:
            done = paste.classical_fill(canvas, pixels, job.background, background)
            if done is not None:
                fill, (x0, y0, x1, y1) = done
                canvas.blend_into(pixels, fill, job.background[y0:y1, x0:x1].astype(np.float32), (x0, y0))
        return pixels


def _int_box(corners: np.ndarray) -> tuple[int, int, int, int]:
    return (int(math.floor(corners[:, 0].min())), int(math.floor(corners[:, 1].min())),
            int(math.ceil(corners[:, 0].max())), int(math.ceil(corners[:, 1].max())))


def _train_size(meta: dict[str, str]) -> int:
    try:
        cfg = json.loads(meta.get("train_config", "{}"))
        size = int(cfg.get("data", {}).get("size", DEFAULT_SIZE))
    except (ValueError, TypeError, AttributeError):
        return DEFAULT_SIZE
    return size if size > 0 else DEFAULT_SIZE
