"""Inpainter (every input kind, colour modes, masks, faces) and ``facefill inpaint``."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

import facefill.photo.inpainter as inpainter_mod
from facefill import InputError
from facefill.checkpoint import CheckpointError
from facefill.cli import app
from facefill.inpaint import Inpainter, InpaintWarning, WeightsNotFoundError
from helpers import grey_recorder, save_tiny_apfi

runner = CliRunner()

# A rectangular hole; `feather` (default 3) may touch pixels up to 3 px outside it.
TOP, LEFT, BOTTOM, RIGHT = 20, 24, 44, 52
REACH = 4


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = save_tiny_apfi(tmp_path_factory.mktemp("weights") / "apfi_small.safetensors")
    return path


@pytest.fixture(scope="module")
def inp(weights):
    return Inpainter.from_pretrained(weights, device="cpu")


def photo(h=72, w=80, seed=0) -> np.ndarray:
    """A smooth RGB uint8 picture with some texture (no face in it)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=2) * 200 + 20
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def hole_mask(h=72, w=80) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[TOP:BOTTOM, LEFT:RIGHT] = 255
    return m


def away(h=72, w=80, reach=REACH) -> np.ndarray:
    """Pixels farther than `reach` from the hole, which must come back bit-identical."""
    keep = np.ones((h, w), bool)
    keep[max(TOP - reach, 0) : BOTTOM + reach, max(LEFT - reach, 0) : RIGHT + reach] = False
    return keep


def hwc(x) -> np.ndarray:
    """Any image kind as a numpy (H, W, C) array, for comparing pixels."""
    if isinstance(x, Image.Image):
        a = np.asarray(x)
    elif isinstance(x, torch.Tensor):
        a = x.permute(1, 2, 0).numpy()
    else:
        a = x
    return a[:, :, None] if a.ndim == 2 else a


def assert_filled(out, src, h=72, w=80):
    o, s = hwc(out), hwc(src)
    assert o.shape == s.shape and o.dtype == s.dtype
    keep = away(h, w)
    assert np.array_equal(o[keep], s[keep]), "pixels away from the hole changed"
    assert not np.array_equal(o[TOP:BOTTOM, LEFT:RIGHT], s[TOP:BOTTOM, LEFT:RIGHT]), "hole not filled"


def quiet(inp, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InpaintWarning)
        return inp(*args, **kw)


# ------------------------------------------------------------------------------ input kinds


def test_size_is_read_from_the_training_config(inp):
    assert inp.size == 64 and inp.stride == 16


def test_every_input_kind_round_trips(inp, tmp_path):
    a = photo()
    m = hole_mask()
    path = tmp_path / "a.png"
    Image.fromarray(a).save(path)
    f = a.astype(np.float32) / 255
    t = torch.from_numpy(f).permute(2, 0, 1).contiguous()

    out = quiet(inp, path, m)
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert_filled(out, a)
    out = quiet(inp, Image.fromarray(a), Image.fromarray(m))
    assert isinstance(out, Image.Image)
    assert_filled(out, a)
    assert_filled(quiet(inp, a, m), a)
    out = quiet(inp, f, m.astype(np.float32) / 255)
    assert out.dtype == np.float32
    assert_filled(out, f)
    out = quiet(inp, t, torch.from_numpy(m > 0))
    assert isinstance(out, torch.Tensor) and out.shape == t.shape
    assert_filled(out, t)
    out = quiet(inp, t.to(torch.float16), m)
    assert out.dtype == torch.float16
    assert_filled(out, t.to(torch.float16))

    # Batches: a list of mixed kinds, a batched array, a batched tensor; one mask for all.
    outs = quiet(inp, [path, a, t], m)
    assert isinstance(outs, list) and [type(o) for o in outs] == [Image.Image, np.ndarray, torch.Tensor]
    for o, s in zip(outs, [a, a, t]):
        assert_filled(o, s)
    b = np.stack([a, photo(seed=1)])
    out = quiet(inp, b, np.stack([m, m]))
    assert out.shape == b.shape and out.dtype == np.uint8
    for o, s in zip(out, b):
        assert_filled(o, s)
    tb = torch.stack([t, t.flip(2)])
    out = quiet(inp, tb, torch.from_numpy(m).float().div(255)[None, None])
    assert out.shape == tb.shape
    for o, s in zip(out, tb):
        assert_filled(o, s)
    # The same image alone and inside a batch gives the same pixels.
    assert (out[0] - quiet(inp, t, m)).abs().max() < 1e-5


def test_colour_modes_keep_their_kind(inp, tmp_path):
    a = photo()
    m = hole_mask()
    alpha = np.tile(np.linspace(0, 255, 80, dtype=np.uint8), (72, 1))
    rgba = Image.fromarray(np.dstack([a, alpha]))
    out = quiet(inp, rgba, m)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha), "alpha must be untouched"
    assert_filled(out, rgba)

    grey = Image.fromarray(a).convert("L")
    out = quiet(inp, grey, m)
    assert out.mode == "L"
    assert_filled(out, grey)
    assert_filled(quiet(inp, np.asarray(grey), m), np.asarray(grey))

    pal = Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    out = quiet(inp, pal, m)
    assert out.mode == "RGB"
    assert_filled(out, pal.convert("RGB"))

    a16 = (a.astype(np.uint16) * 257 + 3)
    out = quiet(inp, a16, m)
    assert out.dtype == np.uint16
    assert_filled(out, a16)
    g16 = a16[..., 1]
    path = tmp_path / "g16.png"
    Image.fromarray(g16).save(path)
    out = quiet(inp, path, m)
    assert out.mode.startswith("I;16")
    assert_filled(np.asarray(out), g16)


def test_exif_orientation_is_applied(inp, tmp_path):
    upright = photo()  # 80 wide, 72 high as seen
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # 72 wide, 80 high on disk
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.png"
    stored.save(path, exif=exif)
    out = quiet(inp, path, hole_mask())  # the mask is drawn on the upright picture
    assert out.size == (80, 72)
    assert_filled(out, upright)
    out = quiet(inp, Image.open(path), hole_mask())
    assert_filled(out, upright)


# ------------------------------------------------------------------------------------ masks


def test_masks_are_thresholded_and_invertible(inp):
    a = photo()
    binary = hole_mask().astype(np.float32) / 255
    soft = binary * 0.7
    soft[0:10, 0:10] = 0.3  # below the threshold: known
    ref = quiet(inp, a, binary)
    assert np.array_equal(quiet(inp, a, soft), ref)
    assert np.array_equal(quiet(inp, a, 1 - binary, invert_mask=True), ref)
    assert np.array_equal(quiet(inp, a, (binary * 255).astype(np.uint8)), ref)
    assert not np.array_equal(quiet(inp, a, soft, threshold=0.8), ref)  # 0.7 < 0.8: no hole


@pytest.mark.filterwarnings("ignore:aligned=True:UserWarning")
def test_empty_all_hole_resized_and_oversized_masks(inp):
    a = photo()
    with pytest.warns(InpaintWarning, match="no hole"):
        out, info = inp(a, np.zeros((72, 80)), return_info=True)
    assert np.array_equal(out, a) and out is not a and info[0].mode == "empty_mask"
    with pytest.raises(InputError, match="whole image"):
        inp(a, np.ones((72, 80)))
    with pytest.warns(InpaintWarning, match="the mask of image is 40x36, resized to the image's 80x72"):
        out, info = inp(a, hole_mask()[::2, ::2], return_info=True, aligned=True)
    assert info[0].mask_resized
    assert np.array_equal(out[away()], a[away()])
    with pytest.raises(InputError, match="aspect"):
        inp(a, np.zeros((72, 40)))
    with pytest.raises(InputError, match="8192"):
        inp(np.zeros((2, 8193, 3), np.uint8), np.zeros((2, 8193)))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        inp(a.astype(np.float32), hole_mask())
    # A float TIFF (PIL mode F) would be clipped to 0-255 on conversion, a black picture: refused.
    with pytest.raises(InputError, match="mode F"):
        inp(Image.fromarray(a[..., 0].astype(np.float32) / 255), hole_mask())


def test_dilate_and_feather_bound_the_changed_pixels(inp):
    import cv2

    a = photo(96, 96)
    m = np.zeros((96, 96), np.uint8)
    m[40:56, 30:60] = 1
    dist = cv2.distanceTransform((1 - m).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    for dilate, feather in [(0, 0), (3, 0), (2, 4)]:
        out = quiet(inp, a, m, aligned=True, dilate=dilate, feather=feather)
        changed = (out != a).any(axis=2)
        assert not changed[dist > dilate + feather].any()
        assert changed[dist <= dilate].mean() > 0.9
    hard = quiet(inp, a, m, aligned=True, feather=0)
    soft = quiet(inp, a, m, aligned=True, feather=4)
    ring = (dist > 0) & (dist <= 4)
    assert (hard[ring] == a[ring]).all() and (soft[ring] != a[ring]).any()


def test_cycles_and_seed(inp):
    a = photo()
    m = hole_mask()
    state = torch.get_rng_state()
    one = quiet(inp, a, m, cycles=1, seed=3, aligned=True)
    assert torch.equal(torch.get_rng_state(), state), "seed must not disturb the global RNG"
    assert np.array_equal(one, quiet(inp, a, m, cycles=1, seed=3, aligned=True))
    assert not np.array_equal(one, quiet(inp, a, m, cycles=2, aligned=True))
    with pytest.raises(InputError, match="cycles"):
        inp(a, m, cycles=0)


# ------------------------------------------------------------------------------------ faces


def test_hole_without_a_face_through_the_model_is_inpainted_around_the_hole(inp):
    a = photo(120, 160)
    m = np.zeros((120, 160), np.uint8)
    m[50:70, 100:130] = 1
    with pytest.warns(InpaintWarning, match="no face"):
        out, info = inp(a, m, return_info=True, background="model")
    assert info[0].mode == "no_face" and info[0].face is None
    x0, y0, x1, y1 = info[0].crop
    assert x0 <= 100 and y0 <= 50 and x1 >= 130 and y1 >= 70
    changed = (out != a).any(axis=2)
    assert changed[50:70, 100:130].all() or changed[50:70, 100:130].mean() > 0.9
    assert not changed[:40].any() and not changed[:, :90].any()


def test_hole_content_never_reaches_the_model_as_known_pixels():
    # A hole on the top border of a short photo: the crop reaches above the photo and is
    # edge-padded; the padded copies of the hole must be hole for the model too.
    a = np.full((40, 200, 3), 100, np.uint8)
    a[0:10, 90:110] = (255, 0, 0)
    m = np.zeros((40, 200), np.uint8)
    m[0:10, 90:110] = 1
    rec = grey_recorder()
    with pytest.warns(InpaintWarning, match="no face"):
        out, info = Inpainter(rec, size=64, device="cpu")(a, m, feather=0, return_info=True, background="model")
    x0, y0, x1, y1 = info[0].crop
    assert y0 < 0 or y1 > 40, "the crop should reach outside the photo"
    image, mask = rec.calls[0]
    red = (image[:, 0] > 0.6) & (image[:, 1] < 0.3)
    assert not (red & (mask[:, 0] == 0)).any()
    assert (out[0:10, 90:110] == 128).all() and np.array_equal(out[m == 0], a[m == 0])

    # Downscaled to the model's size: a model pixel touched by the hole is a hole.
    a = np.full((300, 300, 3), 100, np.uint8)
    a[101:163, 117:181] = (255, 0, 0)
    m = np.zeros((300, 300), np.uint8)
    m[101:163, 117:181] = 1
    with pytest.warns(InpaintWarning, match="no face"):
        Inpainter(rec, size=64, device="cpu")(a, m, feather=0, background="model")
    image, mask = rec.calls[1]
    assert image.shape[-1] == 64
    touched = (image[:, 0] - 100 / 255).abs() > 1e-3
    assert touched.any() and not (touched & (mask[:, 0] == 0)).any()


# ---------------------------------------------------------------------------------- weights


def test_weights_are_checked(weights, tmp_path, monkeypatch):
    monkeypatch.setattr(inpainter_mod, "DEMO_WEIGHTS", "weights/not_there.safetensors")
    with pytest.raises(WeightsNotFoundError, match="not bundled"):
        Inpainter.from_pretrained()
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        Inpainter.from_pretrained(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(weights.read_bytes())
    card = json.loads(weights.with_suffix(".json").read_text())
    card["sha256"] = "0" * 64
    bad.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="sha256"):
        Inpainter.from_pretrained(bad)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a facefill"):
        Inpainter.from_pretrained(foreign)
    pickle = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickle)
    with pytest.raises(CheckpointError, match="not a safetensors"):
        Inpainter.from_pretrained(pickle)


# -------------------------------------------------------------------------------------- CLI


def one_line_error(result, *needles):
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for n in needles:
        assert n in errors[0], result.output
    assert "Traceback" not in result.output


def test_cli_single_image_and_compare(weights, tmp_path):
    a = photo()
    Image.fromarray(a).save(tmp_path / "face.png")
    Image.fromarray(hole_mask()).save(tmp_path / "hole.png")
    out = tmp_path / "out" / "face_filled.png"
    args = ["inpaint", str(tmp_path / "face.png"), "--mask", str(tmp_path / "hole.png"), "-o", str(out)]
    result = runner.invoke(app, args + ["--weights", str(weights), "--device", "cpu", "--compare"])
    assert result.exit_code == 0, result.output
    assert "no face found" in result.output and f"wrote {out} (telea)" in result.output
    o = np.asarray(Image.open(out))
    assert np.array_equal(o[away()], a[away()])
    # masked | result | original, as in `facefill demo`, with 8 px white gaps.
    sheet = np.asarray(Image.open(out.with_name("face_filled_compare.png")))
    assert sheet.shape == (72, 3 * 80 + 16, 3)
    masked, result, original = sheet[:, :80], sheet[:, 88:168], sheet[:, 176:]
    assert (masked[hole_mask() > 0] == 255).all() and np.array_equal(masked[away()], a[away()])
    assert np.array_equal(result, o) and np.array_equal(original, a)
    assert sorted(p.name for p in out.parent.iterdir()) == ["face_filled.png", "face_filled_compare.png"]


def test_cli_refuses_bad_inputs_in_one_line(weights, tmp_path):
    Image.fromarray(photo()).save(tmp_path / "face.png")
    Image.fromarray(hole_mask()).save(tmp_path / "hole.png")
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(weights.read_bytes())
    card = json.loads(weights.with_suffix(".json").read_text())
    bad.with_suffix(".json").write_text(json.dumps({**card, "sha256": "1" * 64}))
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    outdir = tmp_path / "results"
    outdir.mkdir()
    out = outdir / "o.png"
    face, hole = str(tmp_path / "face.png"), str(tmp_path / "hole.png")
    w = ["--weights", str(weights), "--device", "cpu"]
    cases = [
        ([str(tmp_path / "broken.png"), "--mask", hole, "-o", str(out)] + w, "cannot read image"),
        ([face, "--mask", str(tmp_path / "broken.png"), "-o", str(out)] + w, "cannot read mask"),
        ([face, "--mask", hole, "-o", str(out), "--weights", str(bad)], "sha256"),
        ([face, "--mask", hole, "-o", str(out), "--weights", str(foreign)], "not a facefill"),
        ([face, "--mask", hole, "-o", str(out), "--weights", str(tmp_path / "none.safetensors")], "does not exist"),
        ([face, "--mask", hole, "-o", face] + w, "never overwritten"),
        ([face, "--mask", hole, "-o", str(outdir / "o.xyz")] + w, "unknown image format"),
        ([face, "--mask", hole, "-o", str(out), "--cycles", "0"] + w, "--cycles"),
        ([face, "--mask", hole, "-o", str(out), "--cycles", "1000000"] + w, "from 1 to 64"),
        ([face, "--mask", hole, "-o", str(out), "--background", "lama"] + w, "--background"),
        ([face, "--mask", hole, "-o", str(tmp_path / "face.png" / "o.png")] + w, "cannot write"),
        ([face, "--mask", str(tmp_path / "nope.png"), "-o", str(out)] + w, "does not exist"),
        ([face, "--mask", hole, "-o", str(out), "--device", "cuda:7", "--weights", str(weights)], "cuda"),
    ]
    for args, needle in cases:
        if needle == "cuda" and torch.cuda.is_available():
            continue
        one_line_error(runner.invoke(app, ["inpaint", *args]), needle)
        assert list(outdir.iterdir()) == [], f"{args}: left {list(outdir.iterdir())}"
    assert np.array_equal(np.asarray(Image.open(face)), photo())  # the input is intact


def test_cli_folder_mode_matches_by_stem(weights, tmp_path):
    imgs, masks, out = tmp_path / "imgs", tmp_path / "masks", tmp_path / "out"
    imgs.mkdir()
    masks.mkdir()
    for i, name in enumerate(["a.png", "b.jpg", "c.png"]):
        Image.fromarray(photo(seed=i)).save(imgs / name)
    for name in ["a.png", "b_mask.png", "z.png"]:
        Image.fromarray(hole_mask()).save(masks / name)
    w = ["--weights", str(weights), "--device", "cpu"]
    result = runner.invoke(app, ["inpaint", str(imgs), "--mask", str(masks), "-o", str(out), "--aligned", *w])
    assert result.exit_code == 0, result.output
    assert "no mask for 1 image(s): c.png" in result.output
    assert "no image for 1 mask(s): z.png" in result.output
    assert "inpainted 2 of 3 image(s)" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert np.array_equal(np.asarray(Image.open(out / "a.png"))[away()], photo(seed=0)[away()])

    # One mask file for every image.
    result = runner.invoke(
        app, ["inpaint", str(imgs), "--mask", str(masks / "a.png"), "-o", str(tmp_path / "all"), "--aligned", *w]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["a.png", "b.png", "c.png"]

    # Nothing matched: non-zero exit, one error line.
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    Image.fromarray(hole_mask()).save(lonely / "q.png")
    result = runner.invoke(app, ["inpaint", str(imgs), "--mask", str(lonely), "-o", str(tmp_path / "none"), *w])
    one_line_error(result, "no image")
    assert not (tmp_path / "none").exists()
    # Writing into the input folder is refused.
    result = runner.invoke(app, ["inpaint", str(imgs), "--mask", str(masks), "-o", str(imgs), *w])
    one_line_error(result, "input folder")


def test_cli_keeps_outputs_that_exist_unless_told_to_overwrite(weights, tmp_path):
    """A second run into the same -o changes nothing until --overwrite says so; in folder mode
    one existing result refuses the whole run before anything is inpainted."""
    Image.fromarray(photo()).save(tmp_path / "face.png")
    Image.fromarray(hole_mask()).save(tmp_path / "hole.png")
    out = tmp_path / "o.png"
    out.write_bytes(b"the user's file")
    args = ["inpaint", str(tmp_path / "face.png"), "--mask", str(tmp_path / "hole.png"), "-o", str(out),
            "--weights", str(weights), "--device", "cpu", "--aligned"]
    one_line_error(runner.invoke(app, args), f"{out} exists; pass --overwrite")
    assert out.read_bytes() == b"the user's file"
    # The strip counts too: only the strip exists, and --compare would write it.
    out.unlink()
    strip = tmp_path / "o_compare.png"
    strip.write_bytes(b"a strip")
    one_line_error(runner.invoke(app, args + ["--compare"]), f"{strip} exists")
    assert not out.exists() and strip.read_bytes() == b"a strip"
    assert runner.invoke(app, args).exit_code == 0  # without --compare the strip is not an output
    result = runner.invoke(app, args + ["--compare", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(strip))[:, -80:], photo())

    imgs, results = tmp_path / "imgs", tmp_path / "results"
    imgs.mkdir()
    results.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(photo()).save(imgs / name)
    (results / "b.png").write_bytes(b"kept")
    folder = ["inpaint", str(imgs), "--mask", str(tmp_path / "hole.png"), "-o", str(results), *args[6:]]
    one_line_error(runner.invoke(app, folder), "b.png exists")
    assert sorted(p.name for p in results.iterdir()) == ["b.png"] and (results / "b.png").read_bytes() == b"kept"
    assert runner.invoke(app, folder + ["--overwrite"]).exit_code == 0
    assert sorted(p.name for p in results.iterdir()) == ["a.png", "b.png"]
    assert np.array_equal(np.asarray(Image.open(results / "b.png"))[away()], photo()[away()])


def test_cli_write_errors_are_one_line_and_leave_no_file(weights, tmp_path, monkeypatch):
    import errno
    import tempfile

    Image.fromarray(photo()).save(tmp_path / "face.png")
    Image.fromarray(hole_mask()).save(tmp_path / "hole.png")
    outdir = tmp_path / "ro"
    outdir.mkdir()
    args = ["inpaint", str(tmp_path / "face.png"), "--mask", str(tmp_path / "hole.png"), "--weights", str(weights),
            "--device", "cpu"]
    real = tempfile.mkstemp

    def read_only(*a, **kw):  # as on a read-only mount (this test may run as root, which chmod cannot stop)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result = runner.invoke(app, args + ["-o", str(outdir / "a.png")])
    one_line_error(result, "cannot write", "read-only file system; choose a folder you can write to")
    assert result.exit_code == 2 and list(outdir.iterdir()) == []

    # The strip cannot be written after the result was: neither is left.
    calls = []

    def second_fails(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", second_fails)
    result = runner.invoke(app, args + ["-o", str(outdir / "a.png"), "--compare"])
    one_line_error(result, "no space left on the device; free some space")
    assert list(outdir.iterdir()) == []
