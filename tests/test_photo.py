"""facefill.photo on group photos: YuNet faces, the aligned warp in and back, every face the
hole touches, the classical fill off the faces, the warnings, the API's refusals.

Test photos are built from the bundled public-domain astronaut, pasted rotated and scaled
onto a smooth background (never CelebA or faces128 images).
"""

import warnings

import cv2
import numpy as np
import pytest
import torch

from facefill import InputError
from facefill.photo import Inpainter, InpaintWarning, align, find_faces
from facefill.photo.images import to_canvas
from helpers import ASTRO_LM, THREE, astronaut, eye_hole, grey_recorder, group_photo, save_tiny_apfi

ASTRO = astronaut()


def far_from(hole, reach):
    dist = cv2.distanceTransform((1 - hole).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist > reach


@pytest.fixture(scope="module")
def inp(tmp_path_factory):
    path = save_tiny_apfi(tmp_path_factory.mktemp("weights") / "apfi_small.safetensors")
    return Inpainter.from_pretrained(path, device="cpu")


def quiet(inp, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InpaintWarning)
        return inp(*args, **kw)


def aligned_crop(size, angle=0.0, scale=1.0):
    """The astronaut warped onto the template at ``size``: a proper aligned crop."""
    M = align.face_transform(ASTRO_LM, size)
    return cv2.warpAffine(ASTRO, M, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


# --------------------------------------------------------------------------------- detection


def test_every_pasted_face_is_found_with_its_landmarks():
    photo, truth = group_photo(THREE)
    faces = find_faces(to_canvas(photo, "group"))
    assert len(faces) == 3
    for lm in truth:
        face = min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - lm.mean(0)))
        size = np.linalg.norm(lm[0] - lm[1])  # the eye distance
        assert np.abs(face.landmarks - lm).max() < 0.5 * size


def test_a_small_face_in_a_large_photo_is_found_near_the_hole():
    # 1920 x 1280 with a face of about 30 px: too small for the whole-image look at 640 px,
    # found by the second look around the hole.
    photo, truth = group_photo([(1400, 900, 15, 0.3)], h=1280, w=1920)
    hole = eye_hole(photo.shape, truth[0], half=(4, 3)).astype(bool)
    faces = find_faces(to_canvas(photo, "big"), hole)
    assert len(faces) == 1
    assert np.linalg.norm(faces[0].landmarks.mean(0) - truth[0].mean(0)) < 5


def test_template_matches_the_measured_framing():
    # Eyes level and symmetric about the centre, the nose between them, the mouth below.
    t = align.TEMPLATE
    assert abs(t[0, 1] - t[1, 1]) < 0.01 and abs((t[0, 0] + t[1, 0]) / 2 - 0.5) < 0.01
    assert t[0, 1] < t[2, 1] < t[3, 1] and abs(t[3, 1] - t[4, 1]) < 0.01
    assert align.framing_error(align.crop_landmarks(aligned_crop(128))) < 0.05


# ----------------------------------------------------------------------------- warp in and back


@pytest.mark.parametrize("angle", [-30, 0, 30])
@pytest.mark.parametrize("scale", [0.7, 1.0, 2.0])
def test_warp_round_trip_reproduces_the_crop(angle, scale):
    # A face's landmarks rotated and scaled about the astronaut's face: the crop it gives,
    # warped back, is the photo again within interpolation error.
    centre = ASTRO_LM.mean(0)
    R = cv2.getRotationMatrix2D(tuple(centre), angle, scale)
    lm = ASTRO_LM @ R[:, :2].T + R[:, 2]
    size = 128
    M = align.face_transform(lm, size)
    canvas = to_canvas(ASTRO, "astronaut")
    no_hole = np.zeros(ASTRO.shape[:2], bool)
    crop, hole = align.warp_in(canvas, no_hole, M, size)
    assert crop.shape == (size, size, 3) and not hole.any()
    # The photo pixels well inside the crop.
    region = (120, 20, 330, 230)
    back = align.warp_back(crop, M, region)
    u, v = align.crop_coords(M, region)
    inner = (u > 4) & (u < size - 4) & (v > 4) & (v < size - 4)
    orig = ASTRO[20:230, 120:330].astype(np.float32) / 255
    err = np.abs(back - orig)[inner].mean()
    s = align.crop_scale(M)
    if s <= 1.05:  # the crop holds every detail: two bilinear interpolations
        assert err < 0.02, err
    else:  # the crop is smaller than the face: no better than a plain resize down and up
        h, w = orig.shape[:2]
        small = cv2.resize(orig, (round(w / s), round(h / s)), interpolation=cv2.INTER_AREA)
        plain = np.abs(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) - orig).mean()
        assert err < 1.3 * plain + 0.01, (err, plain)


@pytest.mark.parametrize("angle, scale", [(30, 0.6), (-30, 1.0), (10, 2.5)])
def test_no_known_crop_pixel_is_computed_from_hole_content(angle, scale):
    # A grey photo whose hole is white: a crop pixel brighter than grey saw the hole.
    _, truth = group_photo([(200, 200, angle, scale)], h=400, w=400)
    photo = np.full((400, 400, 3), 128, np.uint8)
    hole = eye_hole(photo.shape, truth[0], half=(12, 9)).astype(bool)
    photo[hole] = 255
    M = align.face_transform(truth[0], 64)
    crop, crop_hole = align.warp_in(to_canvas(photo, "p"), hole, M, 64)
    saw_hole = crop.max(axis=2) > 128 / 255 + 1e-4
    assert saw_hole.any() and not (saw_hole & (crop_hole == 0)).any()


# ------------------------------------------------------------------------------ face fills


@pytest.mark.parametrize("which", [0, 1, 2])
def test_eye_hole_on_a_rotated_or_scaled_face_changes_only_the_hole(inp, which):
    photo, truth = group_photo(THREE)
    hole = eye_hole(photo.shape, truth[which])
    dilate, feather = 2, 3
    out, info = quiet(inp, photo, hole, dilate=dilate, feather=feather, return_info=True)
    info = info[0]
    assert info.mode == "face" and info.faces_detected == 3
    assert [f.mode for f in info.faces].count("inpainted") == 1
    keep = far_from(hole, dilate + feather)
    assert np.array_equal(out[keep], photo[keep]), "pixels away from the hole changed"
    assert (out[hole > 0] != photo[hole > 0]).any(axis=1).mean() > 0.9


def test_two_faces_one_hole_each_are_both_filled_in_one_batch():
    photo, truth = group_photo(THREE)
    hole = eye_hole(photo.shape, truth[0]) | eye_hole(photo.shape, truth[2], eye=1)
    model = grey_recorder()
    out, info = quiet(Inpainter(model, size=64, device="cpu"), photo, hole, feather=0, return_info=True)
    info = info[0]
    assert info.mode == "face"
    filled = [f for f in info.faces if f.mode == "inpainted"]
    assert len(filled) == 2 and len(model.calls) == 1 and model.calls[0][0].shape[0] == 2
    inner = cv2.erode(hole, np.ones((9, 9), np.uint8)) > 0  # away from the interpolated edge
    assert inner.sum() > 50 and (np.abs(out[inner].astype(int) - 128) <= 1).all(), "both holes filled (grey)"
    assert (out[hole > 0] != photo[hole > 0]).any(axis=1).mean() > 0.9
    assert np.array_equal(out[hole == 0], photo[hole == 0]), "nothing else changed"
    for f in filled:
        assert len(f.landmarks) == 5 and 0 < f.score <= 1 and len(f.box) == 4 and len(f.crop) == 4


def test_hole_off_every_face_takes_the_classical_path(inp):
    photo, truth = group_photo(THREE)
    hole = np.zeros(photo.shape[:2], np.uint8)
    hole[330:370, 20:90] = 1  # bottom left: background only
    with pytest.warns(InpaintWarning, match="no face found at the hole"):
        out, info = inp(photo, hole, return_info=True)
    assert info[0].mode == "telea" and info[0].background == "telea"
    assert all(f.mode == "untouched" for f in info[0].faces) and len(info[0].faces) == 3
    ref = cv2.inpaint(photo, hole, 3, cv2.INPAINT_TELEA)
    assert np.abs(out.astype(int) - ref).max() <= 1
    ns = quiet(inp, photo, hole, background="ns")
    assert np.abs(ns.astype(int) - cv2.inpaint(photo, hole, 3, cv2.INPAINT_NS)).max() <= 1


def test_hole_half_on_a_face_is_split_between_the_face_and_telea():
    photo, truth = group_photo(THREE[:1], w=400)
    hole = np.zeros(photo.shape[:2], np.uint8)
    y = int(truth[0][0, 1])
    hole[y - 6 : y + 6, int(truth[0][0, 0]) - 5 : 390] = 1  # from the eye to the right edge
    model = grey_recorder()
    out, info = quiet(Inpainter(model, size=64, device="cpu"), photo, hole, feather=0, return_info=True)
    assert info[0].mode == "face+telea"
    grey = (out == 128).all(axis=2) & (hole > 0)
    assert grey[:, : int(truth[0][1, 0])].any() and not grey[:, 300:].any()  # the face part only
    assert np.array_equal(out[hole == 0], photo[hole == 0])


# --------------------------------------------------------------------------------- warnings


def caught(inp, *args, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        inp(*args, **kw)
    return [str(x.message) for x in w if issubclass(x.category, InpaintWarning)]


def test_no_warning_on_a_proper_aligned_crop(inp):
    crop = aligned_crop(64)
    hole = np.zeros((64, 64), np.uint8)
    hole[24:34, 16:30] = 1
    assert caught(inp, crop, hole, aligned=True) == []
    # Nor on a photo with a face of about the model's size.
    photo, truth = group_photo([(100, 100, 10, 64 / 110)], h=200, w=200)
    assert caught(inp, photo, eye_hole(photo.shape, truth[0], half=(4, 3))) == []


def test_likely_mistakes_warn(inp):
    crop = aligned_crop(64)
    hole = np.zeros((64, 64), np.uint8)
    hole[24:34, 16:30] = 1
    notes = caught(inp, crop, 1 - hole, aligned=True)
    assert any("inverted" in n and "invert_mask" in n for n in notes)
    wide = np.concatenate([crop, crop[:, :32]], axis=1)
    assert any("not square" in n for n in caught(inp, wide, np.pad(hole, ((0, 0), (0, 32))), aligned=True))
    photo, truth = group_photo([(110, 120, 0, 0.5)], h=300, w=300)  # a photo, not a crop
    m = eye_hole(photo.shape, truth[0], half=(5, 4))
    assert any("training framing" in n for n in caught(inp, photo, m, aligned=True))
    # Faces much smaller than the model's size (256 here) and much larger (64).
    tiny, t = group_photo([(150, 150, 0, 0.3)], h=300, w=300)
    notes = caught(Inpainter(grey_recorder(), size=256, device="cpu"), tiny, eye_hole(tiny.shape, t[0], half=(3, 2)))
    assert any("is small" in n and "upsampled" in n for n in notes)
    big, b = group_photo([(150, 150, 0, 1.0)], h=300, w=300)
    assert any("soft" in n for n in caught(inp, big, eye_hole(big.shape, b[0])))


# ------------------------------------------------------------------------------- API errors


def test_api_refuses_bad_arguments_with_typed_one_line_errors(inp):
    a = aligned_crop(64)
    m = np.zeros((64, 64), np.uint8)
    m[20:30, 20:30] = 1
    cases = [
        (dict(seed="abc"), "seed"),
        (dict(seed=-1), "seed"),
        (dict(cycles=65), "64"),
        (dict(cycles=10**9), "64"),
        (dict(background="lama"), "background"),
        (dict(threshold="x"), "threshold"),
    ]
    for kw, needle in cases:
        with pytest.raises(InputError, match=needle) as e:
            inp(a, m, aligned=True, **kw)
        assert "\n" not in str(e.value)
    meta = torch.empty(3, 64, 64, device="meta")
    with pytest.raises(InputError, match="meta"):
        inp(meta, m)
    with pytest.raises(InputError, match="meta"):
        inp(a, torch.empty(1, 64, 64, device="meta"))
    with pytest.raises(InputError, match="meta"):
        Inpainter(grey_recorder(), size=64, device="meta")
    with pytest.raises(InputError, match=r"\(64, 64, 2\)") as e:
        inp(a, np.zeros((64, 64, 2), np.uint8))
    assert "batch" not in str(e.value)
