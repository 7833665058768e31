"""facefill: face inpainting with the APFI generator and its peers.

Images are float tensors in [0, 1], (B, 3, H, W); masks are (B, 1, H, W) with
1 = hole. Every generator is called ``G(image, mask) -> output`` and returns a
composite in which the known pixels are unchanged.
"""

from .errors import FacefillError, InputError
from .photo import Inpainter
from .models import create_model, list_models, list_presets

__version__ = "0.1.0"

__all__ = ["FacefillError", "InputError", "Inpainter", "create_model", "list_models", "list_presets"]
