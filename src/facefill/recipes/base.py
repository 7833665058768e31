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

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.nn as nn

from ..errors import InputError

__all__ = ["Recipe", "register_recipe", "create_recipe", "list_recipes", "detach_parts", "given_settings"]

_RECIPES: dict[str, type[Recipe]] = {}


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
