"""What every facefill generator shares: input checks, the call, the composite."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..blend import check_blend, poisson_blend
from ..errors import InputError

__all__ = ["InpaintingGenerator", "check_inputs", "check_int"]


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; else :class:`InputError`
    naming the constructor argument ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise InputError(f"{name} must be {wanted}, got {value!r}")
    return value


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_inputs(image: Any, mask: Any, stride: int = 1) -> None:
    """Raise :class:`InputError` unless ``image``/``mask`` follow facefill's convention.

    ``image``: float tensor (B, 3, H, W) with B >= 1. ``mask``: float tensor
    (B, 1, H, W), binary, 1 = hole. H and W must be multiples of ``stride``.
    Masks are refused, not thresholded, when they hold values other than 0 and 1:
    the generator cannot know which threshold the caller meant (``facefill.Inpainter``
    thresholds user masks at 0.5 before they get here).
    """
    for name, t in (("image", image), ("mask", mask)):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise InputError(
                f"{name} must be a floating-point tensor with values in [0, 1], got dtype "
                f"{t.dtype}; convert with {name}.float() / 255 for 8-bit data"
            )
        if t.dim() != 4:
            raise InputError(
                f"{name} must have 4 dimensions (B, C, H, W), got shape {_shape(t)}"
            )
        if t.shape[0] == 0:
            raise InputError(f"{name} is an empty batch (shape {_shape(t)}); pass B >= 1")
    if image.shape[1] != 3:
        raise InputError(
            f"image must have 3 channels (RGB), got {image.shape[1]} (shape {_shape(image)})"
        )
    if mask.shape[1] != 1:
        raise InputError(
            f"mask must have 1 channel (1 = hole), got {mask.shape[1]} (shape {_shape(mask)})"
        )
    if mask.shape[0] != image.shape[0] or mask.shape[2:] != image.shape[2:]:
        raise InputError(
            f"mask shape {_shape(mask)} does not match image shape {_shape(image)}; "
            "expected (B, 1, H, W) with the image's B, H and W"
        )
    h, w = image.shape[2:]
    if h % stride or w % stride:
        raise InputError(
            f"image height and width must be multiples of {stride} for this model, got "
            f"{h}x{w}; pad or resize to e.g. {-(-h // stride) * stride}x{-(-w // stride) * stride}"
        )
    if mask.device.type != "meta" and bool(((mask != 0) & (mask != 1)).any()):
        raise InputError(
            "mask must be binary (0 = known, 1 = hole); it holds other values. "
            "Threshold it first, e.g. mask = (mask > 0.5).float()"
        )


class InpaintingGenerator(nn.Module):
    """Base of every generator: ``G(image, mask) -> output``.

    ``image`` (B, 3, H, W) float in [0, 1]; ``mask`` (B, 1, H, W) binary, 1 = hole.
    The output has the image's shape and is composited: known pixels are returned
    bit-identical and pixels inside the hole never influence the result.

    Subclasses set ``stride`` and implement :meth:`predict`, which returns the raw
    prediction for every pixel (or override :meth:`parts` when training needs more than
    that). :meth:`forward` checks the inputs; :meth:`inpaint` skips the checks (for
    tracing and export). ``G(image, mask, return_raw=True)`` gives ``(output, raw)``;
    ``G(image, mask, return_parts=True)`` the dict of :meth:`parts`.
    """

    stride: int = 1

    def encoder_batchnorms(self) -> list[nn.Module]:
        """BatchNorm layers of the encoder (PConv's fine-tuning freezes these)."""
        return []

    def finetune_batchnorms(self) -> list[nn.Module]:
        """BatchNorm layers the trainer's fine-tuning phase keeps in eval mode (running
        statistics fixed, affine parameters still learned); by default the encoder's."""
        return self.encoder_batchnorms()

    def predict(self, image: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError

    def parts(self, image: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Everything a training recipe may need from one forward pass, by name.

        Always ``"raw"`` (the prediction for every pixel) and ``"output"`` (the composite).
        Multi-stage generators add their intermediate outputs (e.g. DeepFill's ``"coarse"``,
        EdgeConnect's ``"edges"``). ``image`` holds anything in the hole; it is zeroed here.
        """
        hole = mask > 0.5
        # clone then fill in place: keeps the image's memory format (an out-of-place
        # masked_fill returns a contiguous tensor, which costs a channels_last network copies)
        raw = self.predict(image.clone().masked_fill_(hole, 0.0), mask, **kwargs).to(image.dtype)
        return {"raw": raw, "output": torch.where(hole, raw, image)}

    def inpaint(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        *,
        return_raw: bool = False,
        return_parts: bool = False,
        blend: str = "none",
        **kwargs: Any,
    ) -> Any:
        """The composite; ``(composite, raw)`` with ``return_raw``; the :meth:`parts` dict
        with ``return_parts`` (what the trainer calls, through ``forward`` so DDP sees it).

        ``blend="poisson"`` makes the composite a gradient-domain blend of the raw prediction
        (:func:`facefill.blend.poisson_blend`, float32); ``parts`` are never blended."""
        check_blend(blend)
        parts = self.parts(image, mask, **kwargs)
        if return_parts:
            return parts
        output = parts["output"] if blend == "none" else poisson_blend(image, parts["raw"], mask)
        if return_raw:
            return output, parts["raw"]
        return output

    def forward(self, image: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        check_inputs(image, mask, self.stride)
        return self.inpaint(image, mask, **kwargs)
