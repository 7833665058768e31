"""facefill's networks, registered by name (see :func:`create_model`)."""

from . import apfi, patchgan, rfr  # noqa: F401  (registers the models)
from .apfi import APFIGenerator
from .base import InpaintingGenerator, check_inputs
from .patchgan import PatchGAN
from .registry import create_model, list_models, list_presets, model_entry
from .rfr import RFRNet

__all__ = [
    "APFIGenerator",
    "InpaintingGenerator",
    "PatchGAN",
    "RFRNet",
    "check_inputs",
    "create_model",
    "list_models",
    "list_presets",
    "model_entry",
]
