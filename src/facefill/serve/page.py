"""The page itself: its layout (:func:`build_app`) and serving it (:func:`launch`).

Runs offline: Gradio's analytics and version check are off, the theme uses the fonts that
ship inside Gradio plus system fonts, and server-side rendering (Node) is off.
"""

from __future__ import annotations

from typing import Any

from ._gradio import ServeError, import_gradio
from .handler import inpaint_handler
from .inputs import readable_uploads

#: Brush colours offered; any colour marks the hole (white is the mask convention).
BRUSH_COLORS = ["#ffffff", "#ff00ff", "#00e5ff", "#000000"]
#: Largest upload the page accepts (Gradio refuses bigger files before storing them);
#: ``facefill serve --max-file-size`` changes it.
DEFAULT_MAX_FILE_SIZE = "20mb"


_INTRO = """\
# facefill: face inpainting
Upload a face photo, **paint over the part to fill** (brush size, eraser and undo are in the
editor's toolbar), or upload a mask (white = hole). Press **Inpaint**: drag the slider to compare
before and after; the faces found and how each was filled are listed below it.
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


def build_app(inpainter: Any) -> Any:
    """The page as a ``gradio.Blocks`` over ``inpainter`` (a :class:`~facefill.inpaint.Inpainter`).

    Launch it with :func:`launch` (which sets the theme and the offline options), or with
    ``app.launch()`` yourself.
    """
    gr = import_gradio()
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
                # Gradio's own before/after slider; PNG, so the "after" is the result bit for bit.
                result = gr.ImageSlider(
                    label="before | after (drag to compare)", type="pil", format="png", interactive=False,
                    height=420, buttons=["fullscreen"], elem_id="result",
                )
                download = gr.File(label="download (PNG)", interactive=False, elem_id="result-file")
                status = gr.Markdown(elem_id="status")
                with gr.Accordion("detected faces", open=True):
                    faces = gr.Markdown(elem_id="faces")
                    preview = gr.Image(
                        label="faces found (a copy of the photo; the hole tinted)", type="pil", format="png",
                        interactive=False, buttons=["fullscreen"], elem_id="faces-preview",
                    )
        button.click(
            on_inpaint,
            inputs=[editor, mask, invert_mask, aligned, cycles, dilate, feather],
            outputs=[result, download, status, faces, preview],
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
    gr = import_gradio()
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
