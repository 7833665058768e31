"""What the page shows about the faces of one call: the list of faces and the annotated preview.

Both are read from the call's :class:`~facefill.photo.InpaintInfo`; no Gradio needed. The
preview is drawn on a copy of the photo, never on the result the user downloads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Outline colour of a face whose aligned crop the model filled (mode "inpainted").
FILLED_COLOR = (255, 0, 170)
#: Outline colour of a face the hole does not touch (mode "untouched").
UNTOUCHED_COLOR = (0, 200, 255)
#: Share of white mixed into the hole's pixels on the preview, so the hole shows.
HOLE_TINT = 0.5


def face_rows(info: Any) -> list[tuple[int, str, str, str]]:
    """One row a detected face, numbered as on the preview: (number, box as ``x=.. y=.. w=..
    h=..``, detector score, mode: ``"inpainted"`` or ``"untouched"``)."""
    from ..photo import box_text

    return [(i, box_text(f.box), f"{f.score:.3f}", f.mode) for i, f in enumerate(info.faces, 1)]


def faces_markdown(info: Any) -> str:
    """The page's list of faces: the mode of the fill, how many faces were detected, and a
    table of them (the summary beside it says the mode in words)."""
    rows = face_rows(info)
    if info.mode == "aligned":
        return f"**Mode `{info.mode}`**: no face detection (aligned face crop)."
    count = "1 face" if len(rows) == 1 else f"{len(rows)} faces"
    lines = [f"**Mode `{info.mode}`**: {count} detected."]
    if rows:
        lines += ["", "| face | box | score | mode |", "|---|---|---|---|"]
        lines += [f"| {i} | {box} | {score} | {mode} |" for i, box, score, mode in rows]
    return "\n".join(lines)


def faces_preview(photo: Image.Image, info: Any, hole: np.ndarray | None = None) -> Image.Image:
    """An RGB copy of ``photo`` with the hole tinted white and, for every detected face, its
    box, its five landmarks and a label "number mode" (:data:`FILLED_COLOR` for a face the
    model filled, :data:`UNTOUCHED_COLOR` for the others). ``photo`` is left as it was."""
    rgb = np.array(photo.convert("RGB"))  # a copy, whatever the photo's mode
    if hole is not None:
        rgb[hole] = (rgb[hole] * (1 - HOLE_TINT) + 255 * HOLE_TINT).astype(np.uint8)
    out = Image.fromarray(rgb)
    draw = ImageDraw.Draw(out)
    line = max(2, round(max(out.size) / 300))
    font = ImageFont.load_default(size=max(12, 6 * line))
    for i, face in enumerate(info.faces, 1):
        color = FILLED_COLOR if face.mode == "inpainted" else UNTOUCHED_COLOR
        x, y, w, h = face.box
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=color, width=line)
        r = line + 1
        for px, py in face.landmarks:
            draw.ellipse((px - r, py - r, px + r, py + r), fill=color)
        label = f"{i} {face.mode}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tw, th = right - left + 2 * line, bottom - top + 2 * line
        ty = y - th if y >= th else y  # on the box's top edge, outside it where the photo allows
        draw.rectangle((x, ty, x + tw - 1, ty + th - 1), fill=color)
        draw.text((x + line - left, ty + line - top), label, fill=(0, 0, 0), font=font)
    return out
