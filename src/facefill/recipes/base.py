"""What a training recipe is: one method's objective, its critic and how they meet.

The trainer is the same for every method (data, optimisers, AMP, DDP, checkpoints, logs);
what differs between APFI, PConv, DeepFill v2, EdgeConnect and LaMa is *what the generator
is asked to minimise* and *which critic, if any, judges it*. A :class:`Recipe` holds exactly
that. Per step the trainer calls, in this order:

1. ``parts = G(image, mask, return_parts=True)`` (under autocast): the generator's
   outputs by name, at least ``"output"`` (composite) and ``"raw"``;
2. when the recipe has a critic: ``d_loss, d_logs = recipe.critic_loss(D, image, mask,
   detached parts)``, then one critic update;
3. ``total, logs = recipe.generator_loss(D, image, mask, parts)`` with the critic frozen
   (eval mode, no parameter gradients; ``D`` is ``None`` for critic-free recipes), then
   one generator update.

``D`` is the critic as the trainer holds it (wrapped in DDP across processes), so call it
only through its ``forward``. Losses are float32 scalars; logs map names to *unweighted*
detached values, and the recipe's ``weights`` say how they add up to the total.

Recipes are registered by name (``loss.recipe`` in a config) with :func:`register_recipe`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError, InputError

__all__ = [
    "Recipe", "register_recipe", "create_recipe", "list_recipes", "detach_parts", "given_settings",
    "Arg", "weight_arg", "choice_arg", "layers_arg", "check_loss_args",
]

_RECIPES: dict[str, type[Recipe]] = {}


@dataclass(frozen=True)
class Arg:
    """One ``loss.args`` setting of a recipe: which values it takes (``accepts``) and how to
    say so (``allowed``, the end of the error message). ``None`` is always accepted: the
    recipe's published value."""

    accepts: Callable[[Any], bool]
    allowed: str

    def check(self, key: str, value: Any) -> None:
        if value is None or self.accepts(value):
            return
        hint = ""
        if isinstance(value, str) and "e" in value.lower():
            try:
                float(value)
                hint = f" (YAML reads {value} as text: write it with a decimal point, e.g. 1.0e-3)"
            except ValueError:
                pass
        raise ConfigError(f"config key {key}={value!r} is not allowed: {self.allowed}{hint}")


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def weight_arg(what: str = "weight") -> Arg:
    """A term's weight: a finite number >= 0 (0 switches the term off)."""
    return Arg(lambda v: _real(v) and v >= 0, f"a finite {what} >= 0 (0 switches the term off)")


def choice_arg(*choices: Any, note: str = "") -> Arg:
    """One of ``choices`` (compared with ``==``, booleans never match an integer)."""
    named = ", ".join(repr(c) for c in choices)
    return Arg(
        lambda v: not isinstance(v, bool) and any(type(v) is type(c) and v == c for c in choices),
        f"one of {named}{f' ({note})' if note else ''}",
    )


def layers_arg(taps: Iterable[str]) -> Arg:
    """A VGG16 tap or a non-empty list of them."""
    taps = tuple(taps)

    def accepts(value: Any) -> bool:
        names = [value] if isinstance(value, str) else value
        return isinstance(names, (list, tuple)) and bool(names) and all(n in taps for n in names)

    return Arg(accepts, f"a VGG16 tap or a non-empty list of them, from {', '.join(taps)}")


def check_loss_args(recipe: str, args: Mapping[str, Any], common: Iterable[str] = ()) -> None:
    """Refuse, before anything is built, a ``loss.args`` key the recipe does not have or a
    value outside what it accepts (:attr:`Recipe.ARGS`), naming the key, the value and the
    allowed values. ``common``: the keys that are ``loss.<name>`` settings of their own.

    Raises:
        ConfigError: an unknown recipe, an unknown key, a value it does not accept.
    """
    if recipe not in _RECIPES:
        raise ConfigError(f"config key loss.recipe={recipe!r} is not a recipe; available: {', '.join(list_recipes())}")
    spec = _RECIPES[recipe].ARGS
    takes = f"its loss.args are {', '.join(spec)}" if spec else "it takes no loss.args"
    for key, value in args.items():
        if key in common:
            raise ConfigError(f"config key loss.args.{key} is a setting of its own: set loss.{key} instead")
        if key not in spec:
            raise ConfigError(f"config key loss.args.{key} is not a setting of loss.recipe={recipe}; {takes}")
        spec[key].check(f"loss.args.{key}", value)


def given_settings(
    recipe: str, loss: Mapping[str, Any], keys: Iterable[str], note: str = ""
) -> dict[str, Any]:
    """The ``loss`` settings a config actually gives, checked against the recipe's ``keys``.

    ``None`` stands for "the recipe's published value" and is dropped, except for ``resize``,
    where ``None`` is itself a setting (VGG sees the image as is) and is kept. A key the
    recipe does not have raises :class:`InputError` naming it, the keys there are, and
    ``note`` (where to put them, what the method lacks).
    """
    given = {k: v for k, v in loss.items() if v is not None or k == "resize"}
    keys = tuple(keys)
    unknown = sorted(set(given) - set(keys))
    if unknown:
        raise InputError(
            f"loss.recipe={recipe} has no term or setting {unknown}; it takes {', '.join(keys)}"
            + (f" ({note})" if note else "")
        )
    return given


def detach_parts(parts: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in parts.items()}


class Recipe(nn.Module):
    """Base of every training recipe (see the module doc).

    Subclasses set ``name``, ``uses_critic`` and implement :meth:`generator_loss` (and
    :meth:`critic_loss` when ``uses_critic``). They are built by :meth:`from_config` from the
    config's ``loss`` section (a mapping) and a VGG16 loader, and may check the generator
    and critic they are paired with in :meth:`check_models`.
    """

    name: str = ""
    #: The recipe's ``loss.args`` settings and the values each takes (:func:`check_loss_args`).
    ARGS: dict[str, Arg] = {}
    uses_critic: bool = True
    #: Whether :meth:`generator_loss` takes ``critic=None`` while the recipe has a critic (the
    #: reconstruction-only phase before ``train.critic_start``).
    critic_free_phase: bool = False

    @classmethod
    def from_config(cls, loss: Mapping[str, Any], load_vgg: Callable[[], nn.Module]) -> Recipe:
        raise NotImplementedError

    def check_models(self, generator: nn.Module, critic: nn.Module | None) -> None:
        """Raise :class:`InputError` when ``generator``/``critic`` cannot train under this recipe."""
        if self.uses_critic and critic is None:
            raise InputError(
                f"loss.recipe={self.name} trains against a critic; set model.discriminator "
                "to a registered discriminator"
            )
        if not self.uses_critic and critic is not None:
            raise InputError(
                f"loss.recipe={self.name} trains without a critic; set model.discriminator=none"
            )

    def critic_loss(
        self, critic: nn.Module, image: torch.Tensor, mask: torch.Tensor, parts: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError(f"recipe {self.name} has no critic")

    def generator_loss(
        self,
        critic: nn.Module | None,
        image: torch.Tensor,
        mask: torch.Tensor,
        parts: dict[str, torch.Tensor],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


def register_recipe(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator: make ``cls`` available as ``loss.recipe: <cls.name>``."""
    if not cls.name or cls.name in _RECIPES:
        raise ValueError(f"recipe name {cls.name!r} is empty or registered twice")
    _RECIPES[cls.name] = cls
    return cls


def list_recipes() -> list[str]:
    return sorted(_RECIPES)


def create_recipe(name: str, loss: Mapping[str, Any], load_vgg: Callable[[], nn.Module]) -> Recipe:
    """Build the recipe ``name`` from the ``loss`` config mapping (without ``recipe``)."""
    if name not in _RECIPES:
        raise InputError(f"unknown loss.recipe {name!r}; available: {', '.join(list_recipes())}")
    return _RECIPES[name].from_config(dict(loss), load_vgg)
