"""Grow a trained generator into a wider one that computes the same function.

A network that underfits its data needs capacity, and training a wider one from scratch throws
away the hours the narrow one has had. Widening keeps them (Net2Net, Chen et al., ICLR 2016,
here with its simpler zero variant): every channel of the narrow network keeps its weights in
the wide one, each new channel gets the wide network's fresh initialisation for its *inputs*,
and every weight that reads a new channel into an old one starts at zero. The old channels then
compute exactly what they did, the new ones compute something that nothing reads yet, and the
output is unchanged (up to float summation order); training moves the zero weights as soon as
the new channels help.

A module takes part by describing its channel groups: ``channel_groups()`` returns, for each of
its submodules with weights (by name relative to it), the groups along the output channels and
along the input channels, in order, e.g. a gated conv's output is ``(feature, gate)`` and a
decoder conv that reads a skip concatenation has input ``(upsampled, skip)``. Groups of the two
networks correspond one to one; a wider group holds the old channels first. Every tensor that no
module describes must have the same shape in both networks and is copied.

Some layers read all their input channels together, not through weights that can start at zero:
an attention's similarity of feature vectors changes as soon as a vector gains a non-zero
component. The layer feeding such a reader is described with a third element, ``"silent"``:
its new channels start with a zero scale and shift (a norm layer's weight and bias), so they
output zeros until training moves that scale, and the reader sees the old vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..errors import InputError

__all__ = ["widen_into", "group_index"]


def group_index(old: Sequence[int], new: Sequence[int]) -> torch.Tensor:
    """Where each old channel sits in the wide layout: group by group, the old channels first.

    >>> group_index((2, 2), (3, 4)).tolist()
    [0, 1, 3, 4]
    """
    if len(old) != len(new) or any(o > n for o, n in zip(old, new)):
        raise InputError(f"channel groups {tuple(new)} cannot hold {tuple(old)}: widening only adds channels")
    index, offset = [], 0
    for o, n in zip(old, new):
        index.extend(range(offset, offset + o))
        offset += n
    return torch.tensor(index, dtype=torch.long)


def _widen_tensor(old: torch.Tensor, new: torch.Tensor, out_index: torch.Tensor, in_index: torch.Tensor | None, transposed: bool) -> torch.Tensor:
    """``new`` with the old channels' values put in place (see the module's docstring)."""
    out = new.detach().clone()
    if in_index is None or old.dim() < 2:  # per-channel: bias, norm weights and statistics
        out[out_index] = old.to(out.dtype)
        return out
    if transposed:  # ConvTranspose2d weights are (in, out, k, k)
        out = out.transpose(0, 1)
        old = old.transpose(0, 1)
    out[out_index] = 0  # old outputs read no new input ...
    out[out_index.unsqueeze(1), in_index.unsqueeze(0)] = old.to(out.dtype)  # ... and their old inputs as before
    return out.transpose(0, 1).contiguous() if transposed else out


def widen_into(narrow: nn.Module, wide: nn.Module) -> nn.Module:
    """Load ``narrow``'s weights into ``wide`` (same class, some channel groups larger) so that
    ``wide`` computes what ``narrow`` does; ``wide`` keeps its fresh initialisation where a new
    channel's inputs are concerned. Returns ``wide``.

    Raises:
        InputError: the two are not the same model, a group shrinks, or a tensor that no
            ``channel_groups()`` describes differs in shape.
    """
    if type(narrow) is not type(wide):
        raise InputError(f"cannot widen a {type(narrow).__name__} into a {type(wide).__name__}")
    old_state, state = narrow.state_dict(), wide.state_dict()
    if old_state.keys() != state.keys():
        raise InputError("the two generators have different layers; widening only changes widths")
    plan: dict[str, tuple[torch.Tensor, torch.Tensor | None, bool]] = {}
    silent: set[str] = set()
    narrow_modules = dict(narrow.named_modules())
    for name, module in wide.named_modules():
        describe = getattr(module, "channel_groups", None)
        if describe is None:
            continue
        old_groups, new_groups = narrow_modules[name].channel_groups(), describe()
        for sub, (out_new, in_new, *how) in new_groups.items():
            out_old, in_old, *_ = old_groups[sub]
            path = f"{name}.{sub}" if name else sub
            layer = wide.get_submodule(path)
            transposed = isinstance(layer, nn.ConvTranspose2d)
            in_index = None if in_new is None else group_index(in_old, in_new)
            plan[path] = (group_index(out_old, out_new), in_index, transposed)
            if how == ["silent"]:
                silent.add(path)
    for key, value in state.items():
        path, _, leaf = key.rpartition(".")
        if path in plan and value.dim() > 0:
            out_index, in_index, transposed = plan[path]
            if path in silent and leaf in ("weight", "bias"):
                value = torch.zeros_like(value)
            state[key] = _widen_tensor(old_state[key], value, out_index, in_index, transposed)
        elif old_state[key].shape != value.shape:
            raise InputError(f"{key} is {tuple(old_state[key].shape)} in one generator and {tuple(value.shape)} in the other, and no channel groups say how to widen it")
        else:
            state[key] = old_state[key].clone()
    wide.load_state_dict(state)
    return wide
