"""Tests of facefill.data and the prepare-celeba command, on tiny synthetic images."""

from __future__ import annotations

import json
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from facefill.data import (
    DatasetError,
    ImageFolderDataset,
    ImageReadError,
    carve_holdout,
    center_crop_resize,
    face_box_crop,
    flip_decision,
    image_to_tensor,
    load_image,
    prepare_celeba,
    read_celeba_bboxes,
)
from facefill.data_cli import prepare_celeba as prepare_celeba_cmd
from facefill.errors import FacefillError, InputError

FACES128 = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces128"


def _noise(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _png16_rgb(path: Path, rgb16: tuple[int, int, int]) -> None:
    """A 1x1 16-bit RGB PNG written by hand (Pillow cannot write one)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"\x00" + np.array(rgb16, dtype=">u2").tobytes()
    ihdr = struct.pack(">IIBBBBB", 1, 1, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


# --- load_image -------------------------------------------------------------------------------


def test_rgba_and_la_are_composited_on_white(tmp_path):
    a = np.zeros((1, 3, 4), dtype=np.uint8)
    a[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    a[0, 1] = (0, 0, 255, 255)  # opaque blue stays blue
    a[0, 2] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    got = np.asarray(load_image(_save(Image.fromarray(a, "RGBA"), tmp_path / "a.png")))
    assert got.shape == (1, 3, 3)
    assert got[0, 0].tolist() == [255, 255, 255]
    assert got[0, 1].tolist() == [0, 0, 255]
    assert abs(int(got[0, 2, 0]) - 127) <= 1
    la = Image.fromarray(np.array([[[10, 0], [10, 255]]], dtype=np.uint8), "LA")
    got = np.asarray(load_image(_save(la, tmp_path / "la.png")))
    assert got[0, 0].tolist() == [255, 255, 255] and got[0, 1].tolist() == [10, 10, 10]


def test_grayscale_and_palette(tmp_path):
    grey = load_image(_save(Image.new("L", (4, 3), 77), tmp_path / "g.png"))
    assert grey.mode == "RGB" and grey.size == (4, 3)
    assert np.all(np.asarray(grey) == 77)
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 255, 0, 200, 10, 10] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    got = np.asarray(load_image(_save(pal, tmp_path / "p.png", transparency=0)))
    assert got[0, 0].tolist() == [255, 255, 255]  # transparent palette entry -> white
    assert got[0, 1].tolist() == [200, 10, 10]
    opaque = np.asarray(load_image(_save(pal, tmp_path / "p2.png")))
    assert opaque[0, 0].tolist() == [0, 255, 0]


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 32768, 65535]], dtype=np.uint16)
    t = image_to_tensor(load_image(_save(Image.fromarray(a), tmp_path / "g16.png")))
    assert t.shape == (3, 1, 3) and t.dtype == torch.float32
    assert t[:, 0, 0].tolist() == [0.0] * 3
    assert torch.allclose(t[:, 0, 1], torch.full((3,), 0.5), atol=0.003)
    assert t[:, 0, 2].tolist() == [1.0] * 3
    _png16_rgb(tmp_path / "rgb16.png", (65535, 32768, 0))
    t = image_to_tensor(load_image(tmp_path / "rgb16.png"))
    assert torch.allclose(t[:, 0, 0], torch.tensor([1.0, 0.5, 0.0]), atol=0.003)


def test_cmyk_jpeg_to_rgb(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    got = np.asarray(load_image(_save(cmyk, tmp_path / "c.jpg", quality=95))).astype(int)
    assert got.shape == (8, 8, 3)
    assert got[..., 0].min() > 200 and got[..., 1:].max() < 60


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((20, 40, 3), dtype=np.uint8)
    a[:, :20] = (255, 0, 0)  # stored: red left half, blue right half
    a[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    path = _save(Image.fromarray(a), tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    img = load_image(path)
    assert img.size == (20, 40)  # (width, height): portrait after rotation
    got = np.asarray(img).astype(int)
    assert got[2, 10, 0] > 200 and got[2, 10, 2] < 60  # top is red
    assert got[37, 10, 2] > 200 and got[37, 10, 0] < 60  # bottom is blue


def test_unreadable_file_raises_typed_error_naming_it(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="broken.png"):
        load_image(bad)
    with pytest.raises(ImageReadError, match="nothere.jpg"):
        load_image(tmp_path / "nothere.jpg")
    assert issubclass(ImageReadError, FacefillError)


# --- geometry ---------------------------------------------------------------------------------


def test_center_crop_resize_crops_the_middle():
    a = np.zeros((40, 60, 3), dtype=np.uint8)
    a[:, 10:50] = (0, 255, 0)  # the centre 40x40 square is green, the sides red
    a[:, :10] = a[:, 50:] = (255, 0, 0)
    out = np.asarray(center_crop_resize(Image.fromarray(a), 16)).astype(int)
    assert out.shape == (16, 16, 3)
    assert out[..., 1].min() > 240 and out[..., 0].max() < 15
    tall = center_crop_resize(Image.fromarray(a.transpose(1, 0, 2).copy()), 16)
    assert tall.size == (16, 16)


def test_face_box_crop_rule_and_edge_padding():
    a = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    img = Image.fromarray(a)
    # box (2, 3, 4, 2): side = max(4, 2) = 4, centre (4, 4) -> square x 2..5, y 2..5
    out = np.asarray(face_box_crop(img, (2, 3, 4, 2), 4))
    assert np.array_equal(out, a[2:6, 2:6])
    # box (0, 0, 4, 4) scaled 2x: side 8 centred on (2, 2) -> 2 px of edge replication top and left
    out = np.asarray(face_box_crop(img, (0, 0, 4, 4), 8, box_scale=2.0))
    assert np.array_equal(out[2:, 2:], a[:6, :6])
    assert np.array_equal(out[0, 0], a[0, 0]) and np.array_equal(out[0, 5], a[0, 3])
    assert np.array_equal(out[5, 1], a[3, 0])
    with pytest.raises(DatasetError, match="outside"):
        face_box_crop(img, (50, 50, 4, 4), 8)
    with pytest.raises(InputError):
        face_box_crop(img, (0, 0, 0, 4), 8)


# --- ImageFolderDataset -----------------------------------------------------------------------


def test_recursive_scan_with_mixed_case_extensions(tmp_path):
    for i, rel in enumerate(["b.PNG", "a/x.jpg", "a/deeper/y.JPEG", "c.webp", "d.Bmp", "e.jpeg"]):
        _save(_noise(12, 9, i), tmp_path / rel)
    (tmp_path / "notes.txt").write_text("hi")
    _save(_noise(4, 4, 9), tmp_path / ".hidden.png")
    ds = ImageFolderDataset(tmp_path, size=8, flip=False)
    assert ds.ids == ["a/deeper/y", "a/x", "b", "c", "d", "e"]
    assert [p.name for p in ds.paths] == ["y.JPEG", "x.jpg", "b.PNG", "c.webp", "d.Bmp", "e.jpeg"]
    x = ds[1]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch.shape == (4, 3, 8, 8)
    with pytest.raises(IndexError):
        ds[6]


def test_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"nope.*does not exist"):
        ImageFolderDataset(tmp_path / "nope", size=8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty.*is empty; expected image files"):
        ImageFolderDataset(tmp_path / "empty", size=8)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("x")
    with pytest.raises(DatasetError, match=r"docs has 1 files but no images"):
        ImageFolderDataset(tmp_path / "docs", size=8)
    with pytest.raises(InputError):
        ImageFolderDataset(tmp_path / "docs", size=0)


def test_split_lists_select_files(tmp_path):
    for i, rel in enumerate(["a.png", "sub/b.jpg", "c.png", "d.png"]):
        _save(_noise(10, 10, i), tmp_path / rel)
    (tmp_path / "train.txt").write_text("a\nsub/b\n\n# comment\nd\n")
    (tmp_path / "test.txt").write_text("c.png\n")
    train = ImageFolderDataset(tmp_path, 8, split="train")
    test = ImageFolderDataset(tmp_path, 8, split="test")
    assert train.ids == ["a", "sub/b", "d"] and len(train) == 3
    assert test.ids == ["c"] and test.paths == [tmp_path / "c.png"]
    with pytest.raises(DatasetError, match=r"val.txt does not exist"):
        ImageFolderDataset(tmp_path, 8, split="val")
    (tmp_path / "val.txt").write_text("a\nzzz\n")
    with pytest.raises(DatasetError, match=r"1 ids match no image.*zzz"):
        ImageFolderDataset(tmp_path, 8, split="val")


def test_corrupt_files_are_substituted_and_counted(tmp_path, caplog):
    for name in ["a.png", "c.png", "e.png"]:
        _save(_noise(8, 8, ord(name[0])), tmp_path / name)
    (tmp_path / "b.png").write_bytes(b"garbage")
    full = tmp_path / "full.jpg"
    _save(_noise(32, 32, 5), full, quality=90)
    (tmp_path / "d.jpg").write_bytes(full.read_bytes()[:200])  # truncated JPEG
    full.unlink()
    ds = ImageFolderDataset(tmp_path, 8, flip=False)
    assert ds.ids == ["a", "b", "c", "d", "e"] and ds.num_skipped == 0
    with caplog.at_level(logging.WARNING, logger="facefill.data"):
        assert torch.equal(ds[1], ds[2])  # b -> next readable, c
        assert torch.equal(ds[3], ds[4])  # d -> e
        assert torch.equal(ds[1], ds[2])  # again: same substitute, counted once
    assert ds.num_skipped == 2 and {p.name for p in ds.bad_paths} == {"b.png", "d.jpg"}
    assert "b.png" in caplog.text and "d.jpg" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="facefill.data"):
        eager = ImageFolderDataset(tmp_path, 8, flip=False, verify=True)
    assert eager.ids == ["a", "c", "e"] and eager.num_skipped == 2
    assert "skipped 2 unreadable" in caplog.text


def test_flips_depend_only_on_seed_epoch_index(tmp_path):
    a = np.zeros((8, 8, 3), dtype=np.uint8)
    a[:, :4] = 255  # white left half makes a flip visible
    for i in range(12):
        _save(Image.fromarray(a), tmp_path / f"{i:02d}.png")
    ds = ImageFolderDataset(tmp_path, 8, seed=3)
    twin = ImageFolderDataset(tmp_path, 8, seed=3)
    plain = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    seen = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        twin.set_epoch(epoch)
        for i in range(len(ds)):
            x = ds[i]
            assert ds.is_flipped(i) == flip_decision(3, epoch, i)
            assert torch.equal(x, plain.flip(-1) if ds.is_flipped(i) else plain)
            assert torch.equal(x, twin[i])
            seen.append(ds.is_flipped(i))
    assert 0 < sum(seen) < len(seen)
    assert not any(ImageFolderDataset(tmp_path, 8, flip=False).is_flipped(i) for i in range(12))
    coins = [flip_decision(0, e, i) for e in range(4) for i in range(1000)]
    assert 0.46 < np.mean(coins) < 0.54
    assert coins[:1000] != coins[1000:2000]  # epochs differ
    assert [flip_decision(1, 0, i) for i in range(1000)] != coins[:1000]  # seeds differ
    with pytest.raises(InputError):
        ds.set_epoch(-1)


# --- holdout ----------------------------------------------------------------------------------


def test_carve_holdout_is_a_fixed_disjoint_seeded_part():
    ids = [f"img{i:03d}" for i in range(200)]
    rest, held = carve_holdout(ids, 20, seed=0)
    assert len(held) == 20 and len(rest) == 180
    assert not set(rest) & set(held) and set(rest) | set(held) == set(ids)
    assert rest == [i for i in ids if i in set(rest)] and held == [i for i in ids if i in set(held)]  # list order
    assert carve_holdout(ids, 20, seed=0) == (rest, held)  # the same on every call
    assert carve_holdout(ids, 20, seed=1)[1] != held  # the seed matters
    # Not a prefix or a stride of the list, and independent of the list's order.
    assert held != ids[:20] and held != ids[::10]
    shuffled = list(np.random.default_rng(5).permutation(ids))
    assert set(carve_holdout(shuffled, 20, seed=0)[1]) == set(held)
    # Growing the list displaces at most as many held ids as were added.
    grown = carve_holdout(ids + ["new0", "new1"], 20, seed=0)[1]
    assert len(set(grown) - set(held)) <= 2
    assert carve_holdout(ids, 0, seed=0) == (ids, [])
    with pytest.raises(InputError, match="holdout 201 exceeds the 200 ids"):
        carve_holdout(ids, 201)
    for bad in (-1, True, 1.5):
        with pytest.raises(InputError, match="holdout must be a non-negative integer"):
            carve_holdout(ids, bad)


def test_dataset_holdout_parts_never_overlap_and_match_carve_holdout(tmp_path):
    for i in range(12):
        _save(_noise(8, 8, i), tmp_path / f"{i:02d}.png")
    listed = [f"{i:02d}" for i in range(10)]
    (tmp_path / "train.txt").write_text("\n".join(reversed(listed)) + "\n")
    rest = ImageFolderDataset(tmp_path, 8, split="train", holdout=3, holdout_seed=7)
    held = ImageFolderDataset(tmp_path, 8, split="train", holdout=3, holdout_seed=7, part="holdout")
    assert (rest.ids, held.ids) == carve_holdout(list(reversed(listed)), 3, seed=7)
    assert len(held) == 3 and len(rest) == 7
    assert not set(rest.ids) & set(held.ids) and set(rest.ids) | set(held.ids) == set(listed)
    again = ImageFolderDataset(tmp_path, 8, split="train", holdout=3, holdout_seed=7, part="holdout")
    assert again.ids == held.ids and torch.equal(again[0], held[0])
    # Carving happens before verify: an unreadable held-out image is dropped, not replaced by
    # another one, so the held-out set never includes an image training uses.
    (tmp_path / f"{held.ids[0]}.png").write_bytes(b"garbage")
    verified = ImageFolderDataset(tmp_path, 8, split="train", holdout=3, holdout_seed=7, part="holdout", verify=True)
    assert verified.ids == held.ids[1:] and verified.num_skipped == 1
    with pytest.raises(DatasetError, match=r"train.txt\): holdout 10 must be less than its 10 images"):
        ImageFolderDataset(tmp_path, 8, split="train", holdout=10)
    with pytest.raises(InputError, match="part='holdout' needs holdout > 0"):
        ImageFolderDataset(tmp_path, 8, split="train", part="holdout")
    with pytest.raises(InputError, match="part must be"):
        ImageFolderDataset(tmp_path, 8, split="train", holdout=2, part="train")


@pytest.mark.skipif(not FACES128.is_dir(), reason="faces128 not present")
def test_faces128_splits():
    train = ImageFolderDataset(FACES128, 64, split="train")
    test = ImageFolderDataset(FACES128, 64, split="test")
    assert len(train) == 316 and len(test) == 63
    assert not set(train.ids) & set(test.ids)
    assert train[0].shape == (3, 64, 64)


# --- CelebA preparation -----------------------------------------------------------------------

_WILD_SIZES = [(60, 50), (48, 64), (70, 70), (40, 52), (64, 40), (50, 60)]


def _fake_wild(root: Path, boxes: list[tuple[int, int, int, int]] | None = None) -> Path:
    img_dir = root / "img_celeba"
    rows = []
    for i, (w, h) in enumerate(_WILD_SIZES):
        name = f"{i + 1:06d}.jpg"
        _save(_noise(h, w, i), img_dir / name, quality=90)
        box = boxes[i] if boxes else (w // 4, h // 5, w // 2, (h * 3) // 5)
        rows.append(f"{name} {box[0]:>4} {box[1]:>4} {box[2]:>4} {box[3]:>4}")
    (root / "list_bbox_celeba.txt").write_text(
        f"{len(rows)}\nimage_id x_1 y_1 width height\n" + "\n".join(rows) + "\n"
    )
    return root


def _fake_align(root: Path, n: int = 5) -> Path:
    for i in range(n):
        _save(_noise(218, 178, 100 + i), root / "img_align_celeba" / f"{i + 1:06d}.jpg", quality=90)
    return root


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return np.asarray(im)


def _lines(path: Path) -> list[str]:
    return path.read_text().split()


def test_prepare_celeba_wild_layout(tmp_path):
    src = _fake_wild(tmp_path / "celeba")
    res = prepare_celeba(src, tmp_path / "out", size=32, test_count=2, seed=7, workers=1)
    out = tmp_path / "out"
    assert (res.layout, res.written, res.failed, res.train, res.test) == ("wild", 6, 0, 4, 2)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"{i:06d}.png" for i in range(1, 7)]
    assert all(_pixels(out / n).shape == (32, 32, 3) for n in pngs)
    train, test = _lines(out / "train.txt"), _lines(out / "test.txt")
    assert len(test) == 2 and sorted(train + test) == [f"{i:06d}" for i in range(1, 7)]
    meta = json.loads((out / "prepare.json").read_text())
    assert meta["layout"] == "wild" and meta["size"] == 32 and meta["seed"] == 7
    assert meta["train"] == 4 and meta["test"] == 2 and "max(width, height)" in meta["crop_rule"]
    # the output is the documented crop of the box
    box = (60 // 4, 50 // 5, 60 // 2, (50 * 3) // 5)
    expect = np.asarray(face_box_crop(load_image(src / "img_celeba" / "000001.jpg"), box, 32))
    assert np.array_equal(_pixels(out / "000001.png"), expect)
    # same seed, another run: same test list; the prepared folder reads as a dataset
    prepare_celeba(src, tmp_path / "again", size=32, test_count=2, seed=7, workers=1)
    assert _lines(tmp_path / "again" / "test.txt") == test
    lists = {tuple(_lines(tmp_path / "again" / "test.txt"))}
    for s in range(8):
        prepare_celeba(src, tmp_path / f"s{s}", size=8, test_count=2, seed=s, workers=1)
        lists.add(tuple(_lines(tmp_path / f"s{s}" / "test.txt")))
    assert len(lists) > 2  # the seed matters
    assert len(ImageFolderDataset(out, 32, split="train")) == 4


def test_prepare_celeba_align_layout_resume_and_workers(tmp_path):
    src = _fake_align(tmp_path / "celeba")
    (src / "img_align_celeba" / "000006.jpg").write_bytes(b"\xff\xd8 broken")
    res = prepare_celeba(src, tmp_path / "out", size=24, test_count=2, seed=0, workers=1)
    assert (res.layout, res.listed, res.written, res.failed) == ("align", 6, 5, 1)
    assert (res.train, res.test) == (3, 2)
    assert "000006" not in _lines(tmp_path / "out" / "train.txt") + _lines(tmp_path / "out" / "test.txt")
    expect = center_crop_resize(load_image(src / "img_align_celeba" / "000003.jpg"), 24)
    assert np.array_equal(_pixels(tmp_path / "out" / "000003.png"), np.asarray(expect))
    again = prepare_celeba(src, tmp_path / "out", size=24, test_count=2, seed=0, workers=1)
    assert (again.reused, again.written) == (5, 0)
    with pytest.raises(DatasetError, match="other settings"):
        prepare_celeba(src, tmp_path / "out", size=16, test_count=2, workers=1)
    # the test list is the first test_count readable ids of the seeded permutation
    seed = next(s for s in range(100) if 5 in np.random.default_rng(s).permutation(6)[:2])
    order = [f"{i + 1:06d}" for i in np.random.default_rng(seed).permutation(6) if i != 5]
    prepare_celeba(src, tmp_path / "perm", size=8, test_count=2, seed=seed, workers=1)
    assert _lines(tmp_path / "perm" / "test.txt") == sorted(order[:2])
    pooled = prepare_celeba(src, tmp_path / "pool", size=24, test_count=2, seed=0, workers=2)
    assert pooled.written == 5
    for i in range(1, 6):
        a = _pixels(tmp_path / "out" / f"{i:06d}.png")
        assert np.array_equal(a, _pixels(tmp_path / "pool" / f"{i:06d}.png"))
    assert _lines(tmp_path / "pool" / "test.txt") == _lines(tmp_path / "out" / "test.txt")
    assert not [p for p in (tmp_path / "pool").iterdir() if ".tmp-" in p.name]


def test_prepare_celeba_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        prepare_celeba(tmp_path / "missing", tmp_path / "o1", workers=1)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DatasetError, match="no CelebA layout"):
        prepare_celeba(tmp_path / "nothing", tmp_path / "o2", workers=1)
    src = _fake_wild(tmp_path / "w")
    bbox = src / "list_bbox_celeba.txt"
    good = bbox.read_text()
    bbox.write_text(good.replace("000002.jpg", "000002.jpg x").replace("000004.jpg", "000004.jpg -3"))
    with pytest.raises(DatasetError, match=r"2 malformed rows \(first: line 4"):
        prepare_celeba(src, tmp_path / "o3", size=16, test_count=1, workers=1)
    bbox.write_text(good.replace("image_id", "name"))
    with pytest.raises(DatasetError, match="header"):
        read_celeba_bboxes(bbox)
    bbox.write_text(good.replace("6\n", "7\n", 1))
    with pytest.raises(DatasetError, match="says 7 images but 6"):
        read_celeba_bboxes(bbox)
    bbox.write_text(good)
    (src / "img_celeba" / "000003.jpg").unlink()
    (src / "img_celeba" / "000005.jpg").unlink()
    with pytest.raises(DatasetError, match=r"lists 2 images missing .*000003.jpg"):
        prepare_celeba(src, tmp_path / "o4", size=16, test_count=1, workers=1)
    with pytest.raises(InputError, match="test_count"):
        prepare_celeba(_fake_align(tmp_path / "a", 2), tmp_path / "o5", size=16, test_count=3, workers=1)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        prepare_celeba(tmp_path / "a", tmp_path / "busy", size=16, test_count=1, workers=1)


def test_prepare_celeba_cli(tmp_path):
    app = typer.Typer(add_completion=False)
    app.command("prepare-celeba")(prepare_celeba_cmd)
    app.command("noop")(lambda: None)  # keep "prepare-celeba" a subcommand
    src = _fake_wild(tmp_path / "celeba")
    runner = CliRunner()
    args = ["prepare-celeba", "--src", str(src), "--out", str(tmp_path / "out"), "--size", "16"]
    res = runner.invoke(app, args + ["--test-count", "3", "--seed", "1", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "6 images" in res.output and "3 train, 3 test" in res.output
    assert len(_lines(tmp_path / "out" / "test.txt")) == 3
    bad = runner.invoke(app, ["prepare-celeba", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2
    assert "error:" in bad.output and "does not exist" in bad.output
    assert "Traceback" not in bad.output
    assert bad.exception is None or isinstance(bad.exception, SystemExit)
    assert len(bad.output.strip().splitlines()) == 1
    too_many = runner.invoke(app, args[:-2] + ["--size", "16", "--test-count", "99", "--out", str(tmp_path / "o2")])
    assert too_many.exit_code == 2 and "test_count 99" in too_many.output
