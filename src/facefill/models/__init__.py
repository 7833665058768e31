"""facefill's networks, registered by name (see :func:`create_model`)."""

from . import apfi, classical, edgeconnect, gatedconv, lama, patchgan, pconv, rfr  # noqa: F401  (registers the models)
from .apfi import APFIGenerator
from .base import InpaintingGenerator, check_inputs
from .classical import NavierStokesInpainting, OpenCVInpainting, TeleaInpainting
from .edgeconnect import EdgeConnectCritics, EdgeConnectGenerator
from .gatedconv import DeepFillV2, SNPatchGAN
from .lama import LaMaDiscriminator, LaMaGenerator
from .patchgan import PatchGAN
from .pconv import PConvUNet
from .registry import create_model, list_models, list_presets, model_entry
from .rfr import RFRNet

__all__ = [
    "APFIGenerator",
    "DeepFillV2",
    "EdgeConnectCritics",
    "EdgeConnectGenerator",
    "InpaintingGenerator",
    "LaMaDiscriminator",
    "LaMaGenerator",
    "NavierStokesInpainting",
    "OpenCVInpainting",
    "PConvUNet",
    "PatchGAN",
    "RFRNet",
    "SNPatchGAN",
    "TeleaInpainting",
    "check_inputs",
    "create_model",
    "list_models",
    "list_presets",
    "model_entry",
]
