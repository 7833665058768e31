"""Training recipes: each method's published objective, by name (``loss.recipe``)."""

from . import apfi, deepfill, edgeconnect, lama, pconv  # noqa: F401  (registers the recipes)
from .base import Recipe, check_loss_args, create_recipe, detach_parts, list_recipes, register_recipe

__all__ = ["Recipe", "check_loss_args", "create_recipe", "detach_parts", "list_recipes", "register_recipe"]
