"""``facefill inpaint``: fill the holes of one photo or a folder of photos.

One image: ``facefill inpaint face.jpg --mask hole.png -o out.png``. A folder:
``facefill inpaint photos/ --mask masks/ -o results/``: images and masks are matched by file
stem (``a.jpg`` with ``a.png`` or ``a_mask.png``), one mask *file* may serve every image,
images without a mask and masks without an image are listed and skipped; outputs are
``results/<stem>.png``. ``--compare`` also writes ``<stem>_compare.png``: masked | result |
original, the strip ``facefill demo`` writes. Inputs are never overwritten, nor are outputs that
exist unless ``--overwrite`` is given (checked for every file before the model loads); every file is
written to a temporary name and renamed, and an image whose result or strip cannot be written
leaves neither, so an error leaves no partial output.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from PIL import Image
from rich.markup import escape

from ._console import blend_option, console, fail, overwrite_option, precision_option, refuse_existing
from .checkpoint import atomic_write
from .data import IMAGE_EXTENSIONS
from .errors import FacefillError, os_reason

__all__ = ["inpaint_cmd"]

_INPUT_EXTENSIONS = IMAGE_EXTENSIONS + (".tif", ".tiff")
_FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
}


def _images_in(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (not recursive; hidden files skipped), sorted."""
    try:
        return sorted(
            p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _INPUT_EXTENSIONS
        )
    except OSError as e:
        fail(f"cannot list {folder}: {os_reason(e)}")


def _by_stem(paths: list[Path]) -> tuple[dict[str, Path], list[Path]]:
    """Paths keyed by stem; second: files whose stem an earlier file already has."""
    out: dict[str, Path] = {}
    dupes = []
    for p in paths:
        if p.stem in out:
            dupes.append(p)
        else:
            out[p.stem] = p
    return out, dupes


def _find_mask(stem: str, masks: dict[str, Path]) -> Optional[Path]:
    return masks.get(stem) or masks.get(f"{stem}_mask")


def _writable(img: Image.Image, fmt: str) -> Image.Image:
    """Convert what a format cannot store: 16-bit to 8-bit, alpha onto white for JPEG."""
    if img.mode.startswith("I") and fmt not in ("PNG", "TIFF"):
        a = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.rint(np.clip(a, 0, 65535) * (255 / 65535)).astype(np.uint8))
    if fmt == "JPEG" and img.mode in ("RGBA", "LA"):
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
        img = flat.convert("L") if img.mode == "LA" else flat
    return img


def _save(img: Image.Image, path: Path) -> None:
    fmt = _FORMATS[path.suffix.lower()]
    img = _writable(img, fmt)
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    try:
        atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **options))
    except (ValueError, KeyError) as e:
        raise FacefillError(f"cannot write a {img.mode} image as {fmt} to {path} ({e}); use .png") from None
    except OSError as e:  # the folder cannot be made or written (read-only, full, a file in the way)
        raise FacefillError(f"cannot write {path}: {os_reason(e)}") from None


def _save_all(files: list[tuple[Image.Image, Path]]) -> None:
    """Write every file or none: on an error the ones already written are removed."""
    done: list[Path] = []
    try:
        for img, path in files:
            _save(img, path)
            done.append(path)
    except FacefillError:
        for path in done:
            path.unlink(missing_ok=True)
        raise


def _rgb_view(img: Image.Image) -> Image.Image:
    return _writable(img, "JPEG").convert("RGB")


def _compare(image: Image.Image, hole: np.ndarray, output: Image.Image) -> Image.Image:
    from .photo import compare_strip

    original, result = np.asarray(_rgb_view(image)), np.asarray(_rgb_view(output))
    return Image.fromarray(compare_strip(original, hole, result))


def _say(markup: str) -> None:
    console.print(markup, highlight=False, soft_wrap=True)


def _strip_path(target: Path) -> Path:
    """Where ``--compare`` writes the strip of the result ``target``."""
    return target.with_name(f"{target.stem}_compare.png")


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def inpaint_cmd(
    image: Path = typer.Argument(..., help="image file, or a folder of images (folder mode)"),
    mask: Path = typer.Option(
        ..., "--mask", "-m",
        help="mask file (white = hole; one file serves every image) or folder of masks matched by stem "
        "(a.png or a_mask.png for a.jpg)",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="output file for one image; output folder in folder mode (<stem>.png)"
    ),
    weights: Optional[Path] = typer.Option(
        None, "--weights", "-w", help="facefill weights (.safetensors); default: the bundled demo weights"
    ),
    aligned: bool = typer.Option(False, "--aligned", help="images are aligned face crops: skip face detection"),
    cycles: Optional[int] = typer.Option(
        None, "--cycles", help="APFI cycles at inference, 1 to 64 (facefill.photo.MAX_CYCLES; default: the model's)"
    ),
    device: Optional[str] = typer.Option(
        None, "--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if present)"
    ),
    compare: bool = typer.Option(
        False, "--compare", help="also write <stem>_compare.png: masked | result | original"
    ),
    background: str = typer.Option(
        "telea", "--background",
        help="what fills the part of a hole off every face: telea, ns (OpenCV) or model (a square crop through it)",
    ),
    invert_mask: bool = typer.Option(False, "--invert-mask", help="black (0) is the hole"),
    dilate: int = typer.Option(0, "--dilate", help="grow the hole by N pixels"),
    feather: int = typer.Option(3, "--feather", help="blend N pixels around the hole; 0 = hard edge"),
    precision: str = precision_option(),
    blend: str = blend_option(),
    overwrite: bool = overwrite_option("output files that exist (a result or strip of an earlier run)"),
) -> None:
    """Inpaint the holes of a face photo (or a folder of them); white in the mask = hole."""
    from .blend import BLENDS
    from .photo import BACKGROUNDS, MAX_CYCLES, Inpainter, box_text, open_image, read_mask

    if dilate < 0 or feather < 0:
        fail(f"--dilate and --feather must be >= 0, got {dilate} and {feather}")
    if cycles is not None and not 1 <= cycles <= MAX_CYCLES:
        fail(f"--cycles must be from 1 to {MAX_CYCLES}, got {cycles}")
    if blend not in BLENDS:
        fail(f"--blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    if background not in BACKGROUNDS:
        fail(f"--background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    if not image.exists():
        fail(f"image {image} does not exist")
    if not mask.exists():
        fail(f"mask {mask} does not exist")

    pairs: list[tuple[Path, Path, Path]] = []  # (image, mask, output)
    if image.is_dir():
        if out.exists() and not out.is_dir():
            fail(f"-o {out} is a file; in folder mode -o must be a folder")
        if _same_file(out, image) or (mask.is_dir() and _same_file(out, mask)):
            fail(f"-o {out} is an input folder; write the results to another folder")
        found = _images_in(image)
        images, dupes = _by_stem(found)
        for d in dupes:
            _say(f"[yellow]skipped:[/yellow] {escape(str(d))} (another image has the stem {escape(d.stem)})")
        if not images:
            fail(f"no images ({', '.join(_INPUT_EXTENSIONS)}) in {image}")
        if mask.is_dir():
            masks, _ = _by_stem(_images_in(mask))
            if _same_file(mask, image):  # one folder: a.jpg with a_mask.png
                images = {s: p for s, p in images.items() if not s.endswith("_mask")}
                masks = {s: p for s, p in masks.items() if s.endswith("_mask")}
            used = set()
            for stem, p in images.items():
                m = _find_mask(stem, masks)
                if m is None:
                    continue
                used.add(m)
                pairs.append((p, m, out / f"{stem}.png"))
            no_mask = [p.name for s, p in images.items() if _find_mask(s, masks) is None]
            no_image = [p.name for p in masks.values() if p not in used]
            if no_mask:
                _say(f"[yellow]no mask for {len(no_mask)} image(s):[/yellow] {escape(', '.join(no_mask))}")
            if no_image:
                _say(f"[yellow]no image for {len(no_image)} mask(s):[/yellow] {escape(', '.join(no_image))}")
        else:
            pairs = [(p, mask, out / f"{stem}.png") for stem, p in images.items()]
        if not pairs:
            fail(f"no image in {image} has a mask in {mask} (matched by file stem)")
    else:
        if mask.is_dir():
            masks, _ = _by_stem(_images_in(mask))
            m = _find_mask(image.stem, masks)
            if m is None:
                fail(f"no mask for {image.name} in {mask} (looked for {image.stem}.* and {image.stem}_mask.*)")
            mask = m
        target = out / f"{image.stem}.png" if out.is_dir() else out
        if target.suffix.lower() not in _FORMATS:
            fail(f"-o {out}: unknown image format {target.suffix!r}; use one of {', '.join(_FORMATS)}")
        pairs = [(image, mask, target)]

    inputs = {p.resolve() for img, m, _ in pairs for p in (img, m)}
    outputs = [target for _, _, target in pairs] + ([_strip_path(t) for _, _, t in pairs] if compare else [])
    for t in outputs:
        if t.resolve() in inputs:
            fail(f"output {t} is one of the inputs; inputs are never overwritten, choose another -o")
    if not overwrite:
        refuse_existing(outputs)

    inpainter = Inpainter.from_pretrained(weights, device=device, precision=precision, blend=blend)

    folder_mode = image.is_dir()
    failures = 0
    progress = pairs
    if folder_mode:
        from tqdm import tqdm

        progress = tqdm(pairs, desc="inpaint", unit="img", file=sys.stderr, disable=len(pairs) < 2)
    for img_path, mask_path, target in progress:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result, infos = inpainter(
                    img_path, mask_path, cycles=cycles, aligned=aligned, invert_mask=invert_mask,
                    dilate=dilate, feather=feather, background=background, return_info=True,
                )
                files = [(result, target)]
                if compare:
                    src = open_image(img_path)  # upright, as the inpainter saw it
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # a resized mask was reported above
                        hole, _ = read_mask(mask_path, src.size, invert=invert_mask)
                    files.append((_compare(src, hole, result), _strip_path(target)))
                _save_all(files)
        except (FacefillError, OSError) as e:
            msg = str(e) if isinstance(e, FacefillError) else f"cannot read {img_path}: {os_reason(e)}"
            if not folder_mode:
                fail(msg)
            failures += 1
            _say(f"[red]error:[/red] {escape(msg)}")
            continue
        for w in caught:
            _say(f"[yellow]warning:[/yellow] {escape(str(w.message))}")
        if not folder_mode:
            info = infos[0]
            faces = [f"face at {box_text(f.box)}" for f in info.faces if f.mode == "inpainted"]
            ran = [info.precision] + ([f"{info.blend} blend"] if info.blend not in (None, "none") else [])
            details = ", ".join([info.mode, *faces] + (ran if info.precision else []))
            _say(f"wrote {escape(str(target))} ({details})")
    if folder_mode:
        done = len(pairs) - failures
        _say(f"inpainted {done} of {len(found)} image(s) into {escape(str(out))}")
        if failures:
            fail(f"{failures} of {len(pairs)} image(s) failed; see the errors above")
