"""``facefill serve``: a web page over :class:`~facefill.inpaint.Inpainter`, built with Gradio.

The page: upload a photo into the editor, paint over what should be filled (the brush draws
on one layer, named "hole", above the photo; its size, the eraser and undo are the editor's
own), or upload a mask image instead (white = hole), choose the options, press **Inpaint**. The
result appears beside the photo, with a PNG download.

How the hole is read from the editor: the editor sends the photo (``background``) and the
stroke layer as an RGBA image of the photo's size. A pixel is in the hole when a layer's
**alpha** is above 50 % (128 of 255 and up), whatever the brush colour (colour only helps
the painter see the strokes). An uploaded mask is read by :func:`facefill.inpaint.read_mask` (white = hole, or
black with "black = hole"; a transparent image's alpha is its strokes) and joined with any
painted strokes. The photo itself is the editor's ``background``, never the composite, so
the strokes' colour never reaches the model.

Runs offline: Gradio's analytics and version check are off, the theme uses the fonts that
ship inside Gradio plus system fonts, and server-side rendering (Node) is off. Gradio is an
optional dependency (``pip install 'facefill[serve]'``); it is imported only when a page is
built.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import FacefillError, InputError

__all__ = [
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

#: Share of full opacity at which a painted pixel counts as hole.
STROKE_ALPHA = 0.5
#: Brush colours offered; any colour marks the hole (white is the mask convention).
BRUSH_COLORS = ["#ffffff", "#ff00ff", "#00e5ff", "#000000"]
#: Result files older than this (seconds) are removed when a new result is written.
RESULT_TTL = 3600.0
#: Largest upload the page accepts (Gradio refuses bigger files before storing them);
#: ``facefill serve --max-file-size`` changes it.
DEFAULT_MAX_FILE_SIZE = "20mb"
#: Largest photo or mask, in pixels, read from an upload; checked from the file's header,
#: before the image is decoded (a 60 MP PNG would take hundreds of MB of server memory).
MAX_UPLOAD_PIXELS = 40_000_000

NO_PHOTO = "upload a photo first"
NO_HOLE = "no hole: paint over the part to fill with the brush, or upload a mask (white = hole)"


class ServeError(FacefillError):
    """The web page cannot be started (missing dependency, port in use, ...)."""


class GradioNotInstalledError(ServeError, ImportError):
    """Gradio, the optional dependency of the web page, is not installed."""


def _import_gradio():
    # The page passes analytics_enabled=False itself; the variable covers Gradio's other
    # entry points in this process. A user's explicit setting is kept.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise GradioNotInstalledError(
            "the web page needs gradio, which is not installed; install it with pip install 'facefill[serve]'"
        ) from None
    return gr


# ---------------------------------------------------------------------------------------------
# From what the page sends to an image and a hole: no Gradio needed
# ---------------------------------------------------------------------------------------------


def _as_pil(x: Any, name: str) -> Image.Image | None:
    if x is None or isinstance(x, Image.Image):
        return x
    if isinstance(x, np.ndarray):
        return Image.fromarray(x)
    if isinstance(x, (str, os.PathLike)):
        from .inpaint import open_image

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
    from .inpaint import read_mask

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


@dataclass
class PageResult:
    """What one press of Inpaint produced."""

    image: Image.Image  # the inpainted photo, the photo's size and mode
    hole: np.ndarray  # bool (H, W): the hole as read from the page (before dilate)
    info: Any  # facefill.inpaint.InpaintInfo
    notes: list[str] = field(default_factory=list)  # warnings raised while inpainting

    def summary(self) -> str:
        from .photo import box_text

        w, h = self.image.size
        filled = [f for f in getattr(self.info, "faces", []) if f.mode == "inpainted"]
        faces = "; ".join(f"face at {box_text(f.box)}" for f in filled)
        background = {"telea": "OpenCV Telea", "ns": "OpenCV Navier-Stokes", "no_face": "a square around it through the model"}
        off = background.get(self.info.background or "", self.info.background)
        where = {
            "face": f"filled in its aligned crop: {faces}",
            "aligned": "aligned face crop (no detection)",
        }.get(self.info.mode)
        if where is None and self.info.mode.startswith("face+"):
            where = f"filled in its aligned crop: {faces}; the part off every face with {off}"
        elif where is None and self.info.background:
            where = f"no face at the hole: filled with {off}"
        elif where is None:
            where = self.info.mode
        lines = [f"Filled {100 * self.info.hole_fraction:.1f} % of the {w}x{h} photo; {where}."]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n\n".join(lines)


def inpaint_page(
    inpainter: Any,
    editor: Any,
    mask: Any = None,
    *,
    invert_mask: bool = False,
    aligned: bool = False,
    cycles: int | None = None,
    dilate: int = 0,
    feather: int = 3,
) -> PageResult:
    """The work behind the Inpaint button: read the page's inputs, check them, inpaint.

    Raises :class:`InputError` (or another :class:`FacefillError`) with a one-line message
    for the page when there is no photo, no hole, a mask that does not fit the photo, or an
    option out of range.
    """
    from .inpaint import InpaintWarning

    photo, layers = editor_parts(editor)
    cycles = None if cycles is None else int(round(cycles))
    dilate = 0 if dilate is None else int(round(dilate))  # a cleared number box sends None
    feather = 0 if feather is None else int(round(feather))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InpaintWarning)
        hole = page_hole(photo, layers, mask, invert_mask=invert_mask)
        if not hole.any():
            raise InputError(NO_HOLE)
        if hole.all():
            raise InputError("the hole covers the whole photo: leave some of the face unpainted")
        result, infos = inpainter(
            photo, hole, cycles=cycles, aligned=bool(aligned), dilate=dilate, feather=feather, return_info=True,
        )
    notes = []
    for w in caught:
        if issubclass(w.category, InpaintWarning):
            notes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return PageResult(result, hole, infos[0], notes)


class _ResultFiles:
    """PNG files for the download link, in a folder of their own; old ones are pruned."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="facefill-serve-"))
        weakref.finalize(self, shutil.rmtree, self.root, ignore_errors=True)  # also at exit

    def write(self, image: Image.Image) -> Path:
        now = time.time()
        for old in self.root.iterdir():
            try:
                if now - old.stat().st_mtime > RESULT_TTL:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        path = folder / "inpainted.png"
        image.save(path, format="PNG")
        return path


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

_INTRO = """\
# facefill: face inpainting
Upload a face photo, **paint over the part to fill** (brush size, eraser and undo are in the
editor's toolbar), or upload a mask (white = hole). Press **Inpaint**.
"""

_CSS = "#result img { object-fit: contain; }"  # whole photo in view, whatever its shape


def _theme(gr):
    """Gradio's default look, with fonts that ship inside Gradio or the system: no web fonts."""
    sans = ["ui-sans-serif", "system-ui", "sans-serif"]
    mono = ["ui-monospace", "Consolas", "monospace"]
    local = getattr(gr.themes, "LocalFont", None)  # served by Gradio itself (newer 6.x)
    if local is not None:
        sans, mono = [local("Source Sans Pro"), *sans], [local("IBM Plex Mono"), *mono]
    return gr.themes.Default(font=sans, font_mono=mono)


def inpaint_handler(inpainter: Any):
    """The function behind the Inpaint button, over ``inpainter``.

    It takes the page's inputs (editor value, uploaded mask path, invert, aligned, cycles,
    dilate, feather) and returns (inpainted image, path of its PNG, summary text). Errors in
    the input become ``gradio.Error`` with a one-line message; warnings become
    ``gradio.Warning`` toasts and lines of the summary.
    """
    gr = _import_gradio()
    files = _ResultFiles()
    takes_cycles = getattr(getattr(inpainter, "model", None), "cycles", None) is not None

    def on_inpaint(editor, mask=None, invert_mask=False, aligned=False, cycles=None, dilate=0, feather=3):
        try:
            page = inpaint_page(
                inpainter, editor, mask, invert_mask=invert_mask, aligned=aligned,
                cycles=cycles if takes_cycles else None, dilate=dilate, feather=feather,
            )
            path = files.write(page.image)
        except FacefillError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:  # a bug, not the user's input: keep the page usable, log the trace
            logger.exception("inpainting failed")
            raise gr.Error(f"inpainting failed ({type(e).__name__}: {e}); see the server log") from None
        for note in page.notes:
            gr.Warning(note)
        return page.image, str(path), page.summary()

    on_inpaint.result_dir = files.root
    return on_inpaint


def build_app(inpainter: Any) -> Any:
    """The page as a ``gradio.Blocks`` over ``inpainter`` (a :class:`~facefill.inpaint.Inpainter`).

    Launch it with :func:`launch` (which sets the theme and the offline options), or with
    ``app.launch()`` yourself.
    """
    gr = _import_gradio()
    on_inpaint = inpaint_handler(inpainter)
    default_cycles = getattr(getattr(inpainter, "model", None), "cycles", None)

    # delete_cache: uploads in Gradio's cache are removed after an hour, and all at shutdown.
    with gr.Blocks(title="facefill", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        gr.Markdown(_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                editor = gr.ImageEditor(
                    label="photo: paint the hole",
                    type="pil",
                    image_mode="RGBA",  # keeps the stroke layer's alpha, which is the hole
                    format="png",
                    sources=["upload", "clipboard"],
                    transforms=(),  # no crop: the strokes stay in register with the photo
                    brush=gr.Brush(colors=BRUSH_COLORS, default_color=BRUSH_COLORS[0], color_mode="fixed"),
                    eraser=gr.Eraser(),
                    layers=gr.LayerOptions(allow_additional_layers=False, layers=["hole"]),
                    elem_id="photo",
                )
                readable_uploads(editor, "photo", gr)
                with gr.Accordion("or upload a mask", open=False):
                    mask = gr.Image(
                        label="mask (white = hole)", type="filepath", image_mode=None,
                        sources=["upload", "clipboard"], elem_id="mask-upload",
                    )
                    readable_uploads(mask, "uploaded mask", gr)
                    invert_mask = gr.Checkbox(False, label="black = hole in the uploaded mask")
                with gr.Accordion("options", open=True):
                    aligned = gr.Checkbox(
                        False, label="aligned face crop (skip face detection)", elem_id="aligned"
                    )
                    cycles = gr.Slider(
                        1, max(12, 2 * (default_cycles or 6)), value=default_cycles or 6, step=1,
                        label="cycles (fewer: faster, coarser)", visible=default_cycles is not None, elem_id="cycles",
                    )
                    dilate = gr.Slider(0, 32, value=0, step=1, label="grow the hole by (px)")
                    feather = gr.Slider(0, 32, value=3, step=1, label="blend edge (px)")
                button = gr.Button("Inpaint", variant="primary", elem_id="inpaint")
            with gr.Column(scale=1):
                result = gr.Image(
                    label="inpainted", type="pil", format="png", interactive=False, height=420,
                    buttons=["download", "fullscreen"], elem_id="result",
                )
                download = gr.File(label="download (PNG)", interactive=False, elem_id="result-file")
                status = gr.Markdown(elem_id="status")
        button.click(
            on_inpaint,
            inputs=[editor, mask, invert_mask, aligned, cycles, dilate, feather],
            outputs=[result, download, status],
            concurrency_limit=1,  # one model, one call at a time
            api_name="inpaint",
        )
    app.facefill_result_dir = on_inpaint.result_dir  # removed by serve() on exit
    return app


def launch(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    block: bool = True,
    max_file_size: str | int | None = DEFAULT_MAX_FILE_SIZE,
) -> str:
    """Start serving ``app`` (from :func:`build_app`); returns its local URL.

    ``block=False`` returns at once and serves from a thread (``app.close()`` stops it);
    ``block=True`` prints the URL and serves until interrupted. ``max_file_size`` (bytes, or a
    string such as ``"20mb"``; None: no limit) is the largest upload Gradio accepts.
    Raises :class:`ServeError` when the port cannot be used.
    """
    gr = _import_gradio()
    try:
        app.queue(max_size=16).launch(
            server_name=host, server_port=port, share=share, prevent_thread_lock=True,
            theme=_theme(gr), css=_CSS, ssr_mode=False, quiet=True, footer_links=["gradio", "settings"],
            max_file_size=max_file_size,
        )
    except OSError as e:
        reason = str(e).split(". ")[0].rstrip(".")  # Gradio's first sentence; the rest is advice
        raise ServeError(f"cannot serve on {host}:{port}: {reason}; choose another --port") from None
    url = app.local_url or f"http://{host}:{port}/"
    if block:
        print(f"facefill: serving the page on {url} (Ctrl+C stops it)", flush=True)
        app.block_thread()
    return url


def serve(
    weights: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str | None = None,
    share: bool = False,
    precision: str | None = "auto",
    max_file_size: str | int | None = DEFAULT_MAX_FILE_SIZE,
) -> None:
    """Load ``weights`` (None: the bundled demo weights) and serve the page until interrupted
    (Ctrl+C or SIGTERM); the folder of result files is removed on the way out.

    ``precision``: ``"auto"``, ``"bf16"`` or ``"fp32"``, as for :class:`~facefill.inpaint.Inpainter`.
    """
    import signal

    _import_gradio()  # fail on a missing gradio before loading a model
    from .inpaint import Inpainter

    inpainter = Inpainter.from_pretrained(weights, device=device, precision=precision)
    logger.info("serving %s on %s in %s", weights or "the bundled demo weights", inpainter.device, inpainter.precision)
    app = build_app(inpainter)

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
