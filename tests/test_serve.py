"""The web page (facefill serve): the hole read from the editor, the handler behind Inpaint,
the command line, and the page itself driven in Chromium with Playwright."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from facefill import create_model
from facefill.checkpoint import save_weights
from facefill.cli import app as cli_app
from facefill.errors import InputError
from facefill.inpaint import Inpainter, InpaintWarning
from facefill.models.apfi import APFIModule
from facefill.photo import box_text, find_faces
from facefill.photo.images import to_canvas
from facefill.serve import (
    MAX_UPLOAD_PIXELS,
    NO_HOLE,
    NO_PHOTO,
    GradioNotInstalledError,
    build_app,
    editor_parts,
    inpaint_handler,
    inpaint_page,
    launch,
    page_hole,
)
from facefill.serve.faces import FILLED_COLOR, UNTOUCHED_COLOR, faces_preview
from helpers import THREE, eye_hole, group_photo

# Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing", "ignore::FutureWarning:gradio.queueing")

CHROMIUM = shutil.which("chromium")  # what .ci/run checks (command -v chromium)
# Flags for a closed network (see the machine notes): no background fetches, no QUIC, no GPU.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces128"
FEATHER = 3  # the page's default blend width


def _browser_missing() -> str | None:
    if CHROMIUM is None:
        return "chromium is not on PATH (apt-get install chromium; .ci/run does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


needs_browser = pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))


# ---------------------------------------------------------------------------------------------
# Fixtures: tiny random APFI weights at 64 px, a face photo
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    model = create_model("apfi", preset="small", width=8, reasoning=(8, 16, 16), unet=(8, 16, 16), cycles=2)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    # Inpainter.from_pretrained reads its working size from train_config.data.size.
    save_weights(model, path, extra={"train_config": {"data": {"size": 64}}})
    return path


class RecordingInpainter:
    """An Inpainter that remembers the masks it was given."""

    def __init__(self, inner: Inpainter) -> None:
        self.inner = inner
        self.model = inner.model
        self.masks: list[np.ndarray] = []

    def __call__(self, image, mask, **kwargs):
        self.masks.append(np.array(mask, dtype=bool))
        return self.inner(image, mask, **kwargs)


@pytest.fixture(scope="module")
def inpainter(weights) -> RecordingInpainter:
    inner = Inpainter.from_pretrained(weights, device="cpu")
    assert inner.size == 64
    return RecordingInpainter(inner)


@pytest.fixture(scope="module")
def face(tmp_path_factory) -> Path:
    """A 128x112 (W x H, not square on purpose) RGB face photo as a PNG file."""
    src = sorted(FACES.glob("*.png"))[:1] if FACES.is_dir() else []
    if src:
        img = Image.open(src[0]).convert("RGB").resize((128, 128)).crop((0, 8, 128, 120))
    else:  # a smooth synthetic "face": an ellipse on a gradient
        y, x = np.mgrid[0:112, 0:128]
        base = np.stack([x * 1.5, y * 2.0, 255 - x], axis=-1).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(base)
        ImageDraw.Draw(img).ellipse((34, 14, 94, 100), fill=(224, 172, 140))
    path = tmp_path_factory.mktemp("face") / "face.png"
    img.save(path)
    return path


def _far_from(hole: np.ndarray, reach: int) -> np.ndarray:
    """Pixels farther than ``reach`` (Chebyshev) from every hole pixel."""
    import cv2

    k = 2 * reach + 1
    return cv2.dilate(hole.astype(np.uint8), np.ones((k, k), np.uint8)) == 0


def _expected_rows(faces) -> list[list[str]]:
    """The page's rows for ``faces`` (FaceInfo): number, box in the CLI's form, score, mode."""
    return [[str(i), box_text(f.box), f"{f.score:.3f}", f.mode] for i, f in enumerate(faces, 1)]


def _table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the Markdown table in ``markdown``, as lists of cell texts."""
    rows = [line.strip().strip("|").split("|") for line in markdown.splitlines() if line.startswith("|")]
    return [[c.strip() for c in r] for r in rows[2:]]  # after the header and the |---| line


def _rgba_layer(size, paint) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    paint(ImageDraw.Draw(layer))
    return layer


# ---------------------------------------------------------------------------------------------
# The hole from the editor's value, without Gradio
# ---------------------------------------------------------------------------------------------


def test_strokes_are_the_hole_by_alpha_whatever_their_colour():
    photo = Image.new("RGBA", (96, 80), (90, 60, 40, 255))
    white = _rgba_layer((96, 80), lambda d: d.rectangle((10, 10, 29, 19), fill=(255, 255, 255, 255)))
    magenta = _rgba_layer((96, 80), lambda d: d.rectangle((50, 40, 59, 69), fill=(255, 0, 255, 255)))
    # Anti-aliased edge: alpha 127 is not painted, 128 is.
    ImageDraw.Draw(white).line((10, 30, 29, 30), fill=(255, 255, 255, 127))
    ImageDraw.Draw(white).line((10, 31, 29, 31), fill=(255, 255, 255, 128))
    value = {"background": photo, "layers": [white, magenta], "composite": photo}

    got_photo, layers = editor_parts(value)
    assert got_photo.mode == "RGB" and got_photo.size == (96, 80)  # opaque alpha dropped
    hole = page_hole(got_photo, layers)
    expected = np.zeros((80, 96), bool)
    expected[10:20, 10:30] = True
    expected[31, 10:30] = True
    expected[40:70, 50:60] = True
    np.testing.assert_array_equal(hole, expected)


def test_editor_value_as_numpy_and_transparent_photo_kept():
    photo = np.zeros((40, 50, 4), np.uint8)
    photo[..., 3] = 255
    photo[:5, :5, 3] = 0  # a transparent corner: the alpha stays for the inpainter
    layer = np.zeros((40, 50, 4), np.uint8)
    layer[20:25, 10:20] = 255
    got, layers = editor_parts({"background": photo, "layers": [layer, None], "composite": None})
    assert got.mode == "RGBA" and len(layers) == 1
    assert page_hole(got, layers).sum() == 50


def test_uploaded_mask_joins_the_strokes_and_can_be_inverted(tmp_path):
    photo = Image.new("RGB", (64, 48), (100, 100, 100))
    mask = Image.new("L", (64, 48), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 15, 15), fill=255)
    mask_path = tmp_path / "m.png"
    mask.save(mask_path)
    stroke = _rgba_layer((64, 48), lambda d: d.rectangle((40, 30, 49, 39), fill=(255, 255, 255, 255)))

    hole = page_hole(photo, [stroke], str(mask_path))
    assert hole[:16, :16].all() and hole[30:40, 40:50].all() and hole.sum() == 16 * 16 + 100
    inverted = page_hole(photo, [], str(mask_path), invert_mask=True)
    assert not inverted[:16, :16].any() and inverted.sum() == 64 * 48 - 256
    assert not page_hole(photo, [], "").any()  # Gradio sends "" or None for no upload

    # Another size with the same aspect ratio is resized (with a warning); another shape is refused.
    mask.resize((128, 96), Image.NEAREST).save(tmp_path / "big.png")
    with pytest.warns(InpaintWarning, match="resized"):
        assert page_hole(photo, [], str(tmp_path / "big.png"))[:16, :16].all()
    Image.new("L", (50, 50), 255).save(tmp_path / "square.png")
    with pytest.raises(InputError, match="aspect ratios differ"):
        page_hole(photo, [], str(tmp_path / "square.png"))


def test_page_refuses_no_photo_no_hole_and_all_hole(inpainter):
    photo = Image.new("RGB", (64, 64), (120, 90, 70))
    with pytest.raises(InputError, match="upload a photo first"):
        inpaint_page(inpainter, None)
    with pytest.raises(InputError, match="upload a photo first"):
        inpaint_page(inpainter, {"background": None, "layers": [], "composite": None})
    empty = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    with pytest.raises(InputError, match="no hole"):
        inpaint_page(inpainter, {"background": photo, "layers": [empty], "composite": photo})
    full = Image.new("RGBA", (64, 64), (255, 255, 255, 255))
    with pytest.raises(InputError, match="whole photo"):
        inpaint_page(inpainter, {"background": photo, "layers": [full], "composite": photo})


def test_preview_draws_on_a_copy_and_keeps_a_label_at_the_top_inside_the_photo():
    from facefill.photo import FaceInfo, InpaintInfo

    photo = Image.new("RGB", (120, 100), (90, 90, 90))
    lm = [(50.0, 20.0), (70.0, 20.0), (60.0, 30.0), (52.0, 40.0), (68.0, 40.0)]
    info = InpaintInfo("face", (120, 100), faces=[FaceInfo((40, 0, 40, 50), lm, 0.9, mode="inpainted")])
    hole = np.zeros((100, 120), bool)
    hole[80:90, 10:20] = True
    drawn = np.asarray(faces_preview(photo, info, hole))
    assert np.asarray(photo).max() == 90  # the photo itself is not drawn on
    assert tuple(drawn[25, 40]) == FILLED_COLOR and tuple(drawn[20, 50]) == FILLED_COLOR
    label = (drawn[3:12, 43:60] == FILLED_COLOR).all(axis=-1)  # under the box's top edge
    assert label.mean() > 0.3  # the label's background: drawn inside, the face is at the top
    assert (drawn[85, 15] > 90).all() and (drawn[60, 100] == 90).all()  # the hole tinted, the rest not


# ---------------------------------------------------------------------------------------------
# The handler behind the Inpaint button (Gradio, no browser)
# ---------------------------------------------------------------------------------------------


def test_handler_inpaints_only_the_painted_hole(inpainter, face):
    handler = inpaint_handler(inpainter)
    photo = Image.open(face).convert("RGBA")
    stroke = _rgba_layer(photo.size, lambda d: d.ellipse((40, 40, 70, 60), fill=(255, 255, 255, 255)))
    value = {"background": photo, "layers": [stroke], "composite": photo}

    (before, image), path, summary, faces, preview = handler(value, None, False, True, 2, 0, FEATHER)
    src = np.asarray(Image.open(face).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(before), src)  # the slider's "before": the photo
    out = np.asarray(image)
    assert image.mode == "RGB" and out.shape == src.shape
    hole = np.asarray(stroke.getchannel("A")) >= 128
    far = _far_from(hole, FEATHER + 1)
    np.testing.assert_array_equal(out[far], src[far])
    assert (out[hole] != src[hole]).any()
    np.testing.assert_array_equal(np.asarray(Image.open(path)), out)  # the download is the result
    assert Path(path).name == "inpainted.png"
    assert "aligned" in summary and "112" in summary
    assert faces.startswith("**Mode `aligned`**") and "|" not in faces  # no detection, no table
    assert preview.size == photo.size


def test_handler_turns_input_errors_into_page_errors(inpainter, face):
    import gradio as gr

    handler = inpaint_handler(inpainter)
    with pytest.raises(gr.Error, match="upload a photo first") as e:
        handler(None, None, False, True, 2, 0, 3)
    assert "\n" not in str(e.value)
    photo = Image.open(face).convert("RGBA")
    with pytest.raises(gr.Error, match="no hole"):
        handler({"background": photo, "layers": [], "composite": photo}, None, False, True, 2, 0, 3)
    stroke = _rgba_layer(photo.size, lambda d: d.rectangle((5, 5, 20, 20), fill=(255, 255, 255, 255)))
    with pytest.raises(gr.Error, match="dilate"):
        handler({"background": photo, "layers": [stroke], "composite": photo}, None, False, True, 2, -1, 3)


def test_handler_reports_inpainter_warnings(inpainter, face, tmp_path):
    handler = inpaint_handler(inpainter)
    photo = Image.open(face).convert("RGBA")
    mask = Image.new("L", (64, 56), 0)  # half the photo's size: resized, with a warning
    ImageDraw.Draw(mask).rectangle((20, 20, 30, 30), fill=255)
    mask.save(tmp_path / "half.png")
    # Outside a page request, gr.Warning (the toast) falls back to warnings.warn.
    with pytest.warns(UserWarning, match="resized"):
        (_, image), _, summary, _, _ = handler(
            {"background": photo, "layers": [], "composite": photo}, str(tmp_path / "half.png"), False, True, 2, 0, 0
        )
    assert image.size == photo.size and "resized" in summary


def test_handler_lists_and_draws_every_face_of_a_group_photo(inpainter):
    src, truth = group_photo(THREE)
    hole = eye_hole(src.shape, truth[0]).astype(bool)  # on the first face only
    photo = Image.fromarray(src).convert("RGBA")
    stroke = Image.fromarray(np.dstack([np.full(src.shape, 255, np.uint8), hole.astype(np.uint8) * 255]), "RGBA")
    handler = inpaint_handler(inpainter)
    with pytest.warns(UserWarning, match="look soft"):  # the face is large for the tiny model's 64 px
        (before, after), path, _, faces, preview = handler(
            {"background": photo, "layers": [stroke], "composite": photo}, None, False, False, 2, 0, FEATHER,
        )
    info = inpainter.inner.last_info[0]
    assert len(info.faces) == len(find_faces(to_canvas(src, "group"))) == 3
    assert [f.mode for f in info.faces].count("inpainted") == 1
    assert _table_rows(faces) == _expected_rows(info.faces)
    assert faces.startswith(f"**Mode `{info.mode}`**: 3 faces detected")

    drawn = np.asarray(preview)
    for f in info.faces:  # the box's left edge and each landmark in the face's colour
        color = FILLED_COLOR if f.mode == "inpainted" else UNTOUCHED_COLOR
        x, y, w, h = f.box
        assert tuple(drawn[y + h // 2, x]) == color
        for px, py in f.landmarks:
            assert tuple(drawn[round(py), round(px)]) == color
    # The drawing is on a copy: the slider's "before" is the photo, its "after" is the download,
    # untouched away from the hole (no box, no landmark, no label).
    np.testing.assert_array_equal(np.asarray(before), src)
    out = np.asarray(after)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), out)
    far = _far_from(hole, FEATHER + 1)
    np.testing.assert_array_equal(out[far], src[far])


@pytest.fixture
def cycle_count(monkeypatch) -> list[int]:
    """Calls of the APFI module (one per cycle) while a test runs: ``len(cycle_count)``."""
    calls: list[int] = []
    forward = APFIModule.forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(APFIModule, "forward", counting)
    return calls


@pytest.mark.parametrize("cycles", [1, 3])
def test_handler_runs_exactly_the_cycles_asked_for(inpainter, face, cycle_count, cycles):
    assert inpainter.model.cycles == 2  # the fixture's default, which neither count is
    handler = inpaint_handler(inpainter)
    photo = Image.open(face).convert("RGBA")
    stroke = _rgba_layer(photo.size, lambda d: d.ellipse((40, 40, 70, 60), fill=(255, 255, 255, 255)))
    handler({"background": photo, "layers": [stroke], "composite": photo}, None, False, True, cycles, 0, FEATHER)
    assert len(cycle_count) == cycles


def test_uploads_that_are_not_images_or_too_large_get_one_line(tmp_path):
    import gradio as gr
    from gradio.data_classes import FileData

    from facefill.serve import readable_uploads

    with gr.Blocks():
        mask = readable_uploads(gr.Image(type="filepath", image_mode=None), "uploaded mask", gr)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a picture")
    with pytest.raises(gr.Error) as e:
        mask.preprocess(FileData(path=str(junk), orig_name="junk.png"))
    assert e.value.message.startswith("uploaded mask: the upload is not an image") and "\n" not in e.value.message
    side = int(MAX_UPLOAD_PIXELS ** 0.5) + 1
    big = tmp_path / "big.png"
    Image.new("1", (side, side)).save(big)  # a few kB on disk, more pixels than the page takes
    with pytest.raises(gr.Error, match="MP, more than the page takes"):
        mask.preprocess(FileData(path=str(big), orig_name="big.png"))
    small = tmp_path / "small.png"
    Image.new("L", (8, 8)).save(small)
    assert mask.preprocess(FileData(path=str(small), orig_name="small.png")) == str(small)


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_without_gradio_says_how_to_install_it(weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    result = runner.invoke(cli_app, ["serve", "--weights", str(weights)])
    assert result.exit_code == 2
    assert "facefill[serve]" in result.output and result.output.strip().count("\n") == 0
    with pytest.raises(GradioNotInstalledError):
        build_app(object())


def test_cli_refuses_missing_weights_and_a_taken_port(weights, tmp_path):
    result = runner.invoke(cli_app, ["serve", "--weights", str(tmp_path / "none.safetensors")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert result.output.strip().count("\n") == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(cli_app, ["serve", "--weights", str(weights), "--port", str(port), "--device", "cpu"])
    assert result.exit_code == 2 and f"cannot serve on 127.0.0.1:{port}" in result.output, result.output
    assert "choose another --port" in result.output


@pytest.mark.parametrize("args, message", [
    (["--host", "999.1.1.1"], "is not an IP address or a host name"),
    (["--host", "192.0.2.1"], "is not an address of this machine"),  # TEST-NET-1: never ours
    (["--max-file-size", "lots"], "--max-file-size: cannot read"),
    (["--port", "0"], "--port must be in 1-65535"),
])
def test_cli_checks_host_port_and_upload_limit_before_gradio(weights, args, message):
    result = runner.invoke(cli_app, ["serve", "--weights", str(weights), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.strip().count("\n") == 0


def test_served_page_limits_uploads_hides_the_share_hint_and_cleans_up(weights, tmp_path):
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facefill", "serve", "--weights", str(weights), "--port", str(port),
         "--device", "cpu", "--max-file-size", "1kb"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        line = proc.stdout.readline()
        assert f"serving the page on http://127.0.0.1:{port}" in line, line
        results = list(tmp_path.glob("facefill-serve-*"))
        assert len(results) == 1 and results[0].is_dir()  # the folder of result files
        body = b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n\r\n"
        body += b"\0" * 4096 + b"\r\n--x--\r\n"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/gradio_api/upload", data=body,
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=10)
        assert e.value.code == 413  # too large: refused, not stored
    finally:
        proc.terminate()  # SIGTERM: like Ctrl+C
        rest, _ = proc.communicate(timeout=30)
    assert "share=True" not in line + rest and "Traceback" not in rest, rest
    assert not results[0].exists()  # removed on the way out


# ---------------------------------------------------------------------------------------------
# The page in Chromium
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(inpainter):
    app = build_app(inpainter)
    url = launch(app, host="127.0.0.1", port=_free_port(), block=False)
    yield url
    app.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh profile every run
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
        )
        yield context
        context.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page()
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.goto(server)
    page.wait_for_selector("#photo input[type=file]", state="attached")
    yield page
    page.close()


def _zoom(page) -> str:
    return page.inner_text("#photo .zoom-number").strip()


def _upload(page, path: Path) -> None:
    before = _zoom(page)
    page.locator("#photo input[type=file]").set_input_files(str(path))
    # The editor fits the photo into its canvas: the zoom read-out changes when it is shown.
    page.wait_for_function(
        "z => { const e = document.querySelector('#photo .zoom-number'); return e && e.innerText.trim() !== z; }",
        arg=before,
    )


def _paint(page, size: tuple[int, int], points: list[tuple[float, float]]) -> None:
    """Drag the brush through ``points`` (photo pixels); the photo is centred in the canvas."""
    zoom = float(_zoom(page).rstrip("%")) / 100
    box = page.locator("#photo canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    screen = [(cx + (x - size[0] / 2) * zoom, cy + (y - size[1] / 2) * zoom) for x, y in points]
    page.mouse.move(*screen[0])
    page.mouse.down()
    for s in screen[1:]:
        page.mouse.move(*s, steps=4)
    page.mouse.up()
    # The stroke is committed when the editor's history has it (Undo becomes enabled).
    page.wait_for_selector("#photo button[aria-label=Undo]:not([disabled])")


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def _slider(page) -> tuple[np.ndarray, np.ndarray]:
    """The before and the after image of the comparison slider (RGB arrays), once it has both."""
    images = page.locator("#result img")
    images.nth(1).wait_for(timeout=60_000)
    before, after = (_fetch(images.nth(i).get_attribute("src")) for i in (0, 1))
    return tuple(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in (before, after))


def _download(page, server: str) -> np.ndarray:
    link = page.locator("#result-file a[href]").first.get_attribute("href")
    assert link and link.endswith("inpainted.png")
    return np.asarray(Image.open(io.BytesIO(_fetch(link if "://" in link else server.rstrip("/") + link))))


@needs_browser
def test_page_paint_inpaint_download_offline(page, server, inpainter, face, cycle_count):
    src = np.asarray(Image.open(face).convert("RGB"))
    h, w = src.shape[:2]
    _upload(page, face)
    stroke = [(44.0, 56.0), (64.0, 56.0), (84.0, 56.0)]
    _paint(page, (w, h), stroke)
    page.locator("#aligned input").check()  # a face crop: no detection needed
    assert inpainter.model.cycles == 2
    cycles_box = page.locator("#cycles input[type=number]")
    cycles_box.fill("3")  # not the model's default: the page must pass it on
    cycles_box.press("Enter")
    calls = len(inpainter.masks)
    page.click("#inpaint")
    before, out = _slider(page)
    assert len(cycle_count) == 3  # exactly the cycles set on the page

    # The hole the server read: the stroke, around its path, nowhere else.
    assert len(inpainter.masks) == calls + 1
    hole = inpainter.masks[-1]
    assert hole.shape == (h, w)
    for x, y in stroke:
        assert hole[int(y), int(x)]
    # The brush radius is the editor's "auto" size (about 25 px here): the hole stays within
    # 40 px of the stroke's path; the top and bottom of the photo are not painted.
    ys, xs = np.nonzero(hole)
    assert ys.min() > 56 - 40 and ys.max() < 56 + 40 and xs.min() > 44 - 40 and xs.max() < 84 + 40
    assert hole.mean() < 0.6

    np.testing.assert_array_equal(before, src)
    assert out.shape == src.shape  # the photo's own size, not the model's 64 px
    far = _far_from(hole, FEATHER + 1)
    np.testing.assert_array_equal(out[far], src[far])  # untouched outside the hole, bit for bit
    assert (out[hole] != src[hole]).any()

    np.testing.assert_array_equal(_download(page, server), out)
    assert "aligned" in page.inner_text("#status")

    outside = [u for u in page.requests if not u.startswith((server.rstrip("/"), "data:", "blob:"))]
    assert outside == []  # the page needs nothing from the internet (fonts, scripts, analytics)


@needs_browser
def test_page_lists_every_face_of_a_group_photo(page, server, inpainter, tmp_path):
    src, truth = group_photo(THREE)
    path = tmp_path / "group.png"
    Image.fromarray(src).save(path)
    _upload(page, path)
    h, w = src.shape[:2]
    x, y = truth[0][0]  # a short stroke over the first face's right eye
    _paint(page, (w, h), [(x - 6, y), (x + 6, y)])
    page.click("#inpaint")
    page.wait_for_selector("#faces table", timeout=60_000)

    info = inpainter.inner.last_info[0]
    detected = find_faces(to_canvas(src, "group"))
    assert len(detected) == len(THREE)
    rows = page.locator("#faces tbody tr")
    assert rows.count() == len(detected) == len(info.faces)
    cells = [[c.strip() for c in rows.nth(i).inner_text().split("\t")] for i in range(rows.count())]
    assert cells == _expected_rows(info.faces)
    assert "inpainted" in [f.mode for f in info.faces]
    assert f"Mode {info.mode}: {len(detected)} faces detected" in page.inner_text("#faces")
    page.locator("#faces-preview img").wait_for()

    before, after = _slider(page)
    np.testing.assert_array_equal(before, src)
    np.testing.assert_array_equal(_download(page, server), after)
    hole = inpainter.masks[-1]
    assert hole[round(y), round(x)]
    far = _far_from(hole, FEATHER + 1)
    np.testing.assert_array_equal(after[far], src[far])  # no box or label drawn on the result
    assert "Traceback" not in page.content()


@needs_browser
def test_page_shows_errors_not_tracebacks(page, face):
    page.click("#inpaint")
    page.get_by_text(NO_PHOTO).wait_for(timeout=15_000)
    _upload(page, face)
    page.click("#inpaint")
    page.get_by_text(NO_HOLE).wait_for(timeout=15_000)
    assert "Traceback" not in page.content()
