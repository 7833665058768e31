"""Parameters and FLOPs of a model, per part, counted by ``torch.utils.flop_counter``.

FLOPs follow torch's counter: 2 per multiply-accumulate of convolutions, transposed
convolutions and matrix products; element-wise work (activations, normalisation, the
mask-weighted merge, softmax) is not counted. The model runs on the ``meta`` device, so
counting a 256x256 RFR-Net takes a fraction of a second and no memory. A model whose forward
depends on the values it computes (EdgeConnect's Canny grows its edges until they stop
changing) cannot run there; it is counted on the CPU instead, on a seeded random image with a
centred square hole, which gives the same convolution FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .models.registry import create_model, model_entry

__all__ = ["PartCost", "ModelCost", "count_cost"]


@dataclass
class PartCost:
    name: str
    params: int
    flops: int  # all calls together
    calls: int

    @property
    def flops_per_call(self) -> float:
        return self.flops / self.calls if self.calls else 0.0


@dataclass
class ModelCost:
    name: str
    preset: str
    size: int
    params: int
    flops: int  # per image
    parts: list[PartCost] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "model": self.name,
            "preset": self.preset,
            "size": self.size,
            "params": self.params,
            "gflops": self.flops / 1e9,
            "parts": [
                {
                    "name": p.name,
                    "params": p.params,
                    "gflops": p.flops / 1e9,
                    "calls": p.calls,
                    "gflops_per_call": p.flops_per_call / 1e9,
                }
                for p in self.parts
            ],
        }


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_cost(name: str, preset: str = "paper", size: int = 256, **overrides) -> ModelCost:
    """Count parameters and per-image FLOPs of registered model ``name`` at ``size``^2.

    The FLOPs of each direct child module are attributed to it by forward hooks that read
    the counter's running total before and after every call, so a part called several
    times (the APFI module, once per cycle) reports its number of calls as well.
    """
    try:
        return _count(name, preset, size, torch.device("meta"), overrides)
    except NotImplementedError:  # an operator without a meta kernel: data-dependent work
        return _count(name, preset, size, torch.device("cpu"), overrides)


def _count(name: str, preset: str, size: int, device: torch.device, overrides: dict) -> ModelCost:
    kind = model_entry(name).kind
    with torch.device(device):
        model = create_model(name, preset, **overrides)
        if device.type == "meta":
            image = torch.zeros(1, 3, size, size)
            mask = torch.zeros(1, 1, size, size)
        else:
            image = torch.rand(1, 3, size, size, generator=torch.Generator(device).manual_seed(0))
            mask = torch.zeros(1, 1, size, size)
            mask[..., size // 4 : size - size // 4, size // 4 : size - size // 4] = 1.0
    model.eval()
    counter = FlopCounterMode(display=False)
    totals = {n: [0, 0] for n, _ in model.named_children()}  # flops, calls
    starts: dict[str, int] = {}
    handles = []
    for child_name, child in model.named_children():
        def pre(_m, _a, n=child_name):
            starts[n] = counter.get_total_flops()

        def post(_m, _a, _o, n=child_name):
            totals[n][0] += counter.get_total_flops() - starts.pop(n)
            totals[n][1] += 1

        handles += [child.register_forward_pre_hook(pre), child.register_forward_hook(post)]
    try:
        with counter, torch.no_grad():
            if kind == "generator":
                model.inpaint(image, mask)
            else:  # a critic with another call than D(image) says how to call it
                example = getattr(model, "example_inputs", None)
                model(*(example(image, mask) if example else (image,)))
    finally:
        for h in handles:
            h.remove()
    parts = [
        PartCost(n, _params(c), totals[n][0], totals[n][1]) for n, c in model.named_children()
    ]
    return ModelCost(name, preset, size, _params(model), counter.get_total_flops(), parts)
