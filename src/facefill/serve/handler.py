"""What one press of Inpaint does: :func:`inpaint_page` (no Gradio) and the Gradio handler
around it, with the PNG files behind the download link."""

from __future__ import annotations

import logging
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

from ..errors import FacefillError, InputError
from ._gradio import import_gradio
from .faces import faces_markdown, faces_preview
from .inputs import NO_HOLE, editor_parts, page_hole

logger = logging.getLogger("facefill.serve")

#: Result files older than this (seconds) are removed when a new result is written.
RESULT_TTL = 3600.0


@dataclass
class PageResult:
    """What one press of Inpaint produced."""

    image: Image.Image  # the inpainted photo, the photo's size and mode
    hole: np.ndarray  # bool (H, W): the hole as read from the page (before dilate)
    info: Any  # facefill.inpaint.InpaintInfo
    photo: Image.Image  # the photo as the page sent it (the "before" of the comparison)
    notes: list[str] = field(default_factory=list)  # warnings raised while inpainting

    def summary(self) -> str:
        from ..photo import box_text

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
    from ..inpaint import InpaintWarning

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
    return PageResult(result, hole, infos[0], photo, notes)


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


def inpaint_handler(inpainter: Any):
    """The function behind the Inpaint button, over ``inpainter``.

    It takes the page's inputs (editor value, uploaded mask path, invert, aligned, cycles,
    dilate, feather) and returns, in this order: (photo, inpainted image) for the comparison
    slider, the path of the inpainted PNG, the summary text, the list of faces (Markdown:
    the mode, a table of every detected face) and the preview of the faces (boxes, landmarks
    and numbers drawn on a copy of the photo; see :mod:`.faces`). Errors in the input become
    ``gradio.Error`` with a one-line message; warnings become ``gradio.Warning`` toasts and
    lines of the summary.
    """
    gr = import_gradio()
    files = _ResultFiles()
    takes_cycles = getattr(getattr(inpainter, "model", None), "cycles", None) is not None

    def on_inpaint(editor, mask=None, invert_mask=False, aligned=False, cycles=None, dilate=0, feather=3):
        try:
            page = inpaint_page(
                inpainter, editor, mask, invert_mask=invert_mask, aligned=aligned,
                cycles=cycles if takes_cycles else None, dilate=dilate, feather=feather,
            )
            path = files.write(page.image)
            faces, preview = faces_markdown(page.info), faces_preview(page.photo, page.info, page.hole)
        except FacefillError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:  # a bug, not the user's input: keep the page usable, log the trace
            logger.exception("inpainting failed")
            raise gr.Error(f"inpainting failed ({type(e).__name__}: {e}); see the server log") from None
        for note in page.notes:
            gr.Warning(note)
        return (page.photo, page.image), str(path), page.summary(), faces, preview

    on_inpaint.result_dir = files.root
    return on_inpaint
