"""``facefill serve``: a web page over :class:`~facefill.inpaint.Inpainter`, built with Gradio.

The page: upload a photo into the editor, paint over what should be filled (the brush draws
on one layer, named "hole", above the photo; its size, the eraser and undo are the editor's
own), or upload a mask image instead (white = hole), choose the options, press **Inpaint**. The
result appears beside the photo in a before/after slider (Gradio's ``ImageSlider``), with a PNG
download; below it, the mode of the fill and every detected face (box, score, mode) in a table
and on an annotated copy of the photo.

- :mod:`.inputs`: the photo and the hole from what the page sends (no Gradio needed).
- :mod:`.handler`: what one press of Inpaint does, and the PNG files of the download.
- :mod:`.faces`: the list of faces and the annotated preview, from the call's ``InpaintInfo``.
- :mod:`.page`: the page's layout and serving it offline.
- :func:`serve` (here): load weights, build the page, serve it until interrupted.

Gradio is an optional dependency (``pip install 'facefill[serve]'``); it is imported only when
a page is built.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from ._gradio import GradioNotInstalledError, ServeError, import_gradio
from .handler import RESULT_TTL, PageResult, inpaint_handler, inpaint_page
from .inputs import MAX_UPLOAD_PIXELS, NO_HOLE, NO_PHOTO, STROKE_ALPHA, editor_parts, page_hole, readable_uploads
from .page import BRUSH_COLORS, DEFAULT_MAX_FILE_SIZE, build_app, launch

__all__ = [
    "BRUSH_COLORS",
    "DEFAULT_MAX_FILE_SIZE",
    "MAX_UPLOAD_PIXELS",
    "NO_HOLE",
    "NO_PHOTO",
    "RESULT_TTL",
    "STROKE_ALPHA",
    "GradioNotInstalledError",
    "PageResult",
    "ServeError",
    "build_app",
    "editor_parts",
    "inpaint_handler",
    "inpaint_page",
    "launch",
    "page_hole",
    "readable_uploads",
    "serve",
]

logger = logging.getLogger("facefill.serve")


def serve(
    weights: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str | None = None,
    share: bool = False,
    precision: str | None = "auto",
    blend: str = "poisson",
    max_file_size: str | int | None = DEFAULT_MAX_FILE_SIZE,
    compile: bool = False,
) -> None:
    """Load ``weights`` (None: the bundled demo weights) and serve the page until interrupted
    (Ctrl+C or SIGTERM); the folder of result files is removed on the way out.

    ``precision``: ``"auto"``, ``"bf16"`` or ``"fp32"``; ``blend``: ``"poisson"`` or ``"none"``;
    ``compile``: torch.compile the network; all as for :class:`~facefill.inpaint.Inpainter`.
    """
    import signal

    import_gradio()  # fail on a missing gradio before loading a model
    from ..inpaint import Inpainter

    inpainter = Inpainter.from_pretrained(weights, device=device, precision=precision, blend=blend, compile=compile)
    if inpainter.compiled:  # compile before the page opens, not in the first request
        logger.info("compiling the network (torch.compile; once per process)")
        inpainter.warm_up()
    logger.info(
        "serving %s on %s in %s%s", weights or "the bundled demo weights", inpainter.device, inpainter.precision,
        ", compiled" if inpainter.compiled else "",
    )
    app = build_app(inpainter)  # build_app and launch are this package's names: tests replace them

    def stop(signum: int, frame: Any) -> None:  # SIGTERM ends the page like Ctrl+C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        launch(app, host=host, port=port, share=share, block=True, max_file_size=max_file_size)
    finally:
        signal.signal(signal.SIGTERM, previous)
        result_dir = getattr(app, "facefill_result_dir", None)  # None: an app not from build_app
        if result_dir is not None:
            shutil.rmtree(result_dir, ignore_errors=True)
