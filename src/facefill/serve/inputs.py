"""From what the page sends to a photo and a hole; no Gradio needed.

The editor sends the photo (``background``) and the stroke layer as an RGBA image of the
photo's size. A pixel is in the hole when a layer's **alpha** is above 50 % (128 of 255 and
up), whatever the brush colour (colour only helps the painter see the strokes). An uploaded
mask is read by :func:`facefill.inpaint.read_mask` (white = hole, or black with "black =
hole"; a transparent image's alpha is its strokes) and joined with any painted strokes. The
photo itself is the editor's ``background``, never the composite, so the strokes' colour never
reaches the model.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from PIL import Image

from ..errors import FacefillError, InputError

logger = logging.getLogger("facefill.serve")

#: Share of full opacity at which a painted pixel counts as hole.
STROKE_ALPHA = 0.5

#: Largest photo or mask, in pixels, read from an upload; checked from the file's header,
#: before the image is decoded (a 60 MP PNG would take hundreds of MB of server memory).
MAX_UPLOAD_PIXELS = 40_000_000

NO_PHOTO = "upload a photo first"
NO_HOLE = "no hole: paint over the part to fill with the brush, or upload a mask (white = hole)"


def _as_pil(x: Any, name: str) -> Image.Image | None:
    if x is None or isinstance(x, Image.Image):
        return x
    if isinstance(x, np.ndarray):
        return Image.fromarray(x)
    if isinstance(x, (str, os.PathLike)):
        from ..inpaint import open_image

        return open_image(x, name)
    raise InputError(f"{name}: expected an image, got {type(x).__name__}")


def _check_pixels(size: tuple[int, int], name: str) -> None:
    w, h = size
    if w * h > MAX_UPLOAD_PIXELS:
        raise InputError(
            f"{name}: {w}x{h} is {w * h / 1e6:.0f} MP, more than the page takes "
            f"({MAX_UPLOAD_PIXELS / 1e6:.0f} MP); resize it and upload it again"
        )


def _upload_files(payload: Any) -> list[Any]:
    """The files (paths or bytes) of a Gradio upload payload: an image's, or an editor's layers."""
    parts = [payload] + [getattr(payload, n, None) for n in ("background", "composite")]
    parts += list(getattr(payload, "layers", None) or [])
    return [x if isinstance(x, bytes) else x.path for x in parts if isinstance(x, bytes) or getattr(x, "path", None)]


def readable_uploads(component: Any, name: str, gr: Any) -> Any:
    """Make ``component``'s decoding of an upload end in facefill's one-line message.

    Gradio decodes an upload before the Inpaint handler runs; a file that is not an image, or is
    too large, would otherwise reach the user as Gradio's generic error and leave a traceback in
    the server log. The check of the size reads only the file's header.
    """
    import io

    decode = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            if payload is not None:
                for f in _upload_files(payload):
                    with Image.open(io.BytesIO(f) if isinstance(f, bytes) else f) as im:
                        _check_pixels(im.size, name)
            return decode(payload)
        except gr.Error:
            raise
        except FacefillError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:  # PIL's UnidentifiedImageError, DecompressionBombError, OSError, ...
            logger.info("refused an upload for the %s: %s: %s", name, type(e).__name__, e)
            raise gr.Error(
                f"{name}: the upload is not an image facefill can read ({type(e).__name__}); "
                "upload a PNG or JPEG", print_exception=False,
            ) from None

    component.preprocess = preprocess
    return component


def editor_parts(value: Any) -> tuple[Image.Image, list[Image.Image]]:
    """The photo and the painted layers of an ImageEditor value.

    ``value`` is the editor's dict (``background``, ``layers``, ``composite``) with PIL
    images, numpy arrays or file paths. Raises :class:`InputError` when there is no photo.
    """
    if not isinstance(value, dict) or value.get("background") is None:
        raise InputError(NO_PHOTO)
    photo = _as_pil(value["background"], "photo")
    _check_pixels(photo.size, "photo")
    layers = [_as_pil(x, "painted layer") for x in (value.get("layers") or []) if x is not None]
    if photo.mode in ("RGBA", "LA", "PA") and photo.getchannel("A").getextrema()[0] == 255:
        photo = photo.convert("L" if photo.mode == "LA" else "RGB")  # opaque: drop the alpha
    return photo, layers


def page_hole(
    photo: Image.Image,
    layers: list[Image.Image],
    mask: Any = None,
    *,
    invert_mask: bool = False,
) -> np.ndarray:
    """Hole map (H, W) bool of ``photo``: painted strokes joined with an uploaded ``mask``.

    A layer pixel is hole where its alpha is above :data:`STROKE_ALPHA` (alpha 128 of 255
    and up); a layer without alpha is hole where it is bright (luma above 50 %). ``mask``
    (path, PIL image or array) is read by :func:`~facefill.inpaint.read_mask`;
    ``invert_mask`` applies to it only.
    Layers or a mask of another size are resized to the photo (refused if the aspect
    ratio differs).
    """
    from ..inpaint import read_mask

    size = photo.size
    hole = np.zeros((size[1], size[0]), dtype=bool)
    for i, layer in enumerate(layers):
        if "A" in layer.getbands():
            values = np.asarray(layer.getchannel("A"), dtype=np.float32) / 255.0
        else:
            values = np.asarray(layer.convert("L"), dtype=np.float32) / 255.0
        painted, _ = read_mask(values, size, threshold=STROKE_ALPHA, name=f"painted layer {i + 1}")
        hole |= painted
    if mask is not None and not (isinstance(mask, str) and mask == ""):  # "": nothing uploaded
        uploaded, _ = read_mask(mask, size, invert=invert_mask, name="uploaded mask")
        hole |= uploaded
    return hole

