import json

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from facefill import masks
from facefill.errors import FacefillError, InputError
from facefill.masks import (
    PRESETS,
    ManifestError,
    MaskFolder,
    MaskGenerator,
    MaskPolarityError,
    generate_binned_masks,
    load_manifest,
    parse_bins,
    random_mask,
    read_mask,
)
from facefill.masks_cli import masks_app

BINS = ((0.1, 0.2), (0.3, 0.4), (0.5, 0.6))


def _tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _save(path, array):
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def binned(tmp_path_factory):
    out = tmp_path_factory.mktemp("binned") / "set"
    manifest = generate_binned_masks(out, 64, 4, seed=7, bins=BINS)
    return out, manifest


# ----------------------------------------------------------------- generator


def test_random_mask_is_binary_uint8_and_reproducible():
    a = random_mask(64, np.random.default_rng(3), "medium")
    b = random_mask(64, np.random.default_rng(3), "medium")
    assert a.shape == (64, 64) and a.dtype == np.uint8
    assert set(np.unique(a)) <= {0, 1} and 0 < a.mean() < 1
    assert np.array_equal(a, b)
    assert not np.array_equal(a, random_mask(64, np.random.default_rng(4), "medium"))
    with pytest.raises(InputError, match="rng"):
        random_mask(64, 3)
    with pytest.raises(InputError, match="unknown mask preset 'huge'"):
        random_mask(64, np.random.default_rng(0), "huge")


def test_presets_grow_in_stroke_width_and_coverage():
    widths = [PRESETS[n].mean_width for n in ("thin", "medium", "thick")]
    assert widths == sorted(widths) and widths[2] > 3 * widths[0]
    assert PRESETS["thin"].strokes[1] > PRESETS["thick"].strokes[1]  # many narrow vs few wide
    coverage = {
        name: np.mean([random_mask(64, np.random.default_rng(i), name).mean() for i in range(60)])
        for name in ("thin", "medium", "thick")
    }
    assert coverage["thin"] < coverage["medium"] < coverage["thick"], coverage
    assert coverage["thick"] - coverage["thin"] > 0.15, coverage


def test_mask_generator_depends_only_on_seed_epoch_index():
    gen = MaskGenerator(64, preset=["thin", "thick"], seed=5)
    forward = [gen.sample(i, epoch=2) for i in range(6)]
    fresh = MaskGenerator(64, ["thin", "thick"], seed=5)
    backward = [fresh.sample(i, epoch=2) for i in reversed(range(6))][::-1]
    for a, b in zip(forward, backward):
        assert torch.equal(a, b)
    m = forward[0]
    assert m.shape == (1, 64, 64) and m.dtype == torch.float32
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(forward[0], forward[1])
    assert not torch.equal(gen.sample(0, epoch=2), gen.sample(0, epoch=3))
    assert not torch.equal(gen.sample(0), MaskGenerator(64, ["thin", "thick"], seed=6).sample(0))
    with pytest.raises(InputError, match="index"):
        gen.sample(-1)


def test_mask_generator_mixture_uses_the_weights():
    thin_only = MaskGenerator(64, "thin:1,thick:0", seed=0)
    thick_only = MaskGenerator(64, {"thick": 1.0}, seed=0)
    thin = np.mean([thin_only.sample(i).mean().item() for i in range(40)])
    thick = np.mean([thick_only.sample(i).mean().item() for i in range(40)])
    assert thick > thin + 0.1
    with pytest.raises(InputError, match="weights"):
        MaskGenerator(64, "thin:0")


# ----------------------------------------------------------------- binned sets


def test_binned_files_sit_in_their_bins(binned):
    out, manifest = binned
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0.1-0.2", "0.3-0.4", "0.5-0.6"]
    assert len(manifest["files"]) == 12
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest and on_disk["seed"] == 7 and on_disk["size"] == 64
    assert set(on_disk["generator"]) == {"thin", "medium", "thick"}
    for entry in manifest["files"]:
        lo, hi = (float(v) for v in entry["bin"].split("-"))
        img = Image.open(out / entry["path"])
        assert img.mode == "L" and img.size == (64, 64)
        pixels = np.asarray(img)
        assert set(np.unique(pixels)) <= {0, 255}
        ratio = (pixels == 255).mean()
        assert lo < ratio <= hi, (entry["path"], ratio)
        assert ratio == entry["ratio"]
        assert read_mask(out / entry["path"]).mean().item() == pytest.approx(ratio)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(binned, tmp_path):
    out, _ = binned
    generate_binned_masks(tmp_path / "again", 64, 4, seed=7, bins=BINS)
    assert _tree_bytes(tmp_path / "again") == _tree_bytes(out)
    generate_binned_masks(tmp_path / "other", 64, 4, seed=8, bins=BINS)
    first, other = _tree_bytes(out), _tree_bytes(tmp_path / "other")
    assert first.keys() == other.keys()
    assert sum(first[k] != other[k] for k in first if k.endswith(".png")) >= 10


def test_a_bin_keeps_its_masks_whatever_other_bins_are_asked(binned, tmp_path):
    out, _ = binned
    generate_binned_masks(tmp_path / "one", 64, 4, seed=7, bins="0.3-0.4")
    one = _tree_bytes(tmp_path / "one")
    assert {k: v for k, v in one.items() if k.endswith(".png")} == {
        k: v for k, v in _tree_bytes(out).items() if k.startswith("0.3-0.4/")
    }


def test_load_manifest_refuses_tampered_or_missing_files(binned, tmp_path):
    out, _ = binned
    copy = tmp_path / "copy"
    generate_binned_masks(copy, 64, 4, seed=7, bins=BINS)
    entries = load_manifest(copy)
    assert len(entries) == 12 and all(e["file"].endswith(e["path"]) for e in entries)

    victim = copy / entries[5]["path"]
    pixels = np.asarray(Image.open(victim)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    _save(victim, pixels)
    with pytest.raises(ManifestError) as err:
        load_manifest(copy / "manifest.json")
    message = str(err.value)
    assert "\n" not in message and str(victim) in message and "sha256" in message
    assert len(load_manifest(copy, verify=False)) == 12

    victim.unlink()
    with pytest.raises(ManifestError, match="missing") as err:
        load_manifest(copy, verify=False)
    assert str(victim) in str(err.value)
    with pytest.raises(ManifestError, match="no such mask manifest"):
        load_manifest(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "bins, match",
    [
        ("0.1-0.2,0.4-0.3", "lo < hi"),
        ("0.1:0.2", "malformed"),
        ("0.5-1.5", "lo < hi <= 1"),
        ("0.2-0.2", "lo < hi"),
        ("0.1-0.2,0.1-0.2", "once"),
    ],
)
def test_parse_bins_rejects_bad_bins(bins, match):
    with pytest.raises(InputError, match=match):
        parse_bins(bins)


def test_generation_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="no 4x4 mask"):
        generate_binned_masks(tmp_path / "tiny", 4, 1, seed=0, bins="0.1-0.11")
    old = tmp_path / "old"
    old.mkdir()
    (old / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        generate_binned_masks(old, 64, 1, seed=0)

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise masks.MaskGenerationError("boom")
        return real(*args, **kwargs)

    real = masks.binned._binned_mask
    monkeypatch.setattr(masks.binned, "_binned_mask", failing)
    with pytest.raises(masks.MaskGenerationError):
        generate_binned_masks(tmp_path / "new", 64, 2, seed=0)
    with pytest.raises(masks.MaskGenerationError):
        generate_binned_masks(old, 64, 2, seed=0, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    assert [p.name for p in old.iterdir()] == ["keep.txt"]


# ----------------------------------------------------------------- mask folders


def test_mask_folder_resizes_before_binarising(tmp_path):
    wide, thin, gray = (np.zeros((512, 512), np.uint8) for _ in range(3))
    wide[:, 8:14] = 255  # 6 of the 8 source columns of target column 1: 0.75 -> hole
    thin[:, 8:10] = 255  # 2 of 8 -> 0.25: vanishes at 64
    gray[:, 8:13] = 140  # each pixel > 0.5, but the block average is 0.34
    for name, arr in (("a_wide", wide), ("b_thin", thin), ("c_gray", gray)):
        _save(tmp_path / f"{name}.png", arr)
    folder = MaskFolder(tmp_path, 64)
    assert len(folder) == 3
    w, t, g = (folder.sample(i) for i in range(3))
    assert w.shape == (1, 64, 64)
    assert w[0, :, 1].eq(1).all() and w.sum().item() == 64
    assert w.mean().item() == pytest.approx(1 / 64)
    assert (thin > 0).mean() > 0 and t.sum().item() == 0
    assert g.sum().item() == 0
    assert torch.equal(read_mask(tmp_path / "a_wide.png", 64), w)
    assert read_mask(tmp_path / "b_thin.png").shape == (1, 512, 512)


def test_mask_folder_invert_flag_and_polarity_check(tmp_path):
    white_holes = tmp_path / "white"
    black_holes = tmp_path / "black"
    white_holes.mkdir(), black_holes.mkdir()
    for i in range(5):
        hole = random_mask(128, np.random.default_rng(i), "thin")
        _save(white_holes / f"{i}.png", hole * 255)
        _save(black_holes / f"{i}.png", (1 - hole) * 255)

    plain = MaskFolder(white_holes, 64)
    inverted = MaskFolder(black_holes, 64, invert=True)
    for i in range(5):
        assert torch.equal(plain.sample(i), inverted.sample(i))
        assert plain.sample(i).mean().item() < 0.6

    with pytest.raises(MaskPolarityError) as err:
        MaskFolder(black_holes, 64)
    message = str(err.value)
    assert "invert=True" in message and str(black_holes) in message and "\n" not in message
    with pytest.raises(MaskPolarityError, match="invert=False"):
        MaskFolder(white_holes, 64, invert=True)
    # At the native size (no half-covered pixels from resizing) the flag is an exact complement.
    unchecked = MaskFolder(white_holes, 128, invert=True, check_polarity=False)
    assert torch.equal(unchecked.sample(0), 1 - MaskFolder(white_holes, 128).sample(0))


def test_mask_folder_refuses_empty_or_imageless_folders(tmp_path):
    with pytest.raises(InputError, match="no mask images") as err:
        MaskFolder(tmp_path, 64)
    assert str(tmp_path) in str(err.value)
    (tmp_path / "notes.txt").write_text("not a mask")
    with pytest.raises(InputError, match="no mask images"):
        MaskFolder(tmp_path, 64)
    with pytest.raises(InputError, match="does not exist"):
        MaskFolder(tmp_path / "missing", 64)


def test_mask_folder_augmentation_is_seeded_per_epoch_and_index(binned):
    out, _ = binned
    aug = MaskFolder(out, 64, augment=True, seed=1)
    plain = MaskFolder(out, 64)
    assert len(aug) == 12
    forward = [aug.sample(i, epoch=4) for i in range(4)]
    again = MaskFolder(out, 64, augment=True, seed=1)
    backward = [again.sample(i, epoch=4) for i in reversed(range(4))][::-1]
    for a, b in zip(forward, backward):
        assert torch.equal(a, b)
        assert a.shape == (1, 64, 64) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(aug.sample(0, epoch=4), aug.sample(0, epoch=5))
    assert not torch.equal(aug.sample(0), MaskFolder(out, 64, augment=True, seed=2).sample(0))
    assert sum(not torch.equal(aug.sample(i), plain.sample(i)) for i in range(4)) >= 3


# ----------------------------------------------------------------- CLI


def _cli():
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        pass

    app.add_typer(masks_app, name="masks")
    return app


runner = CliRunner()


def test_cli_generate_prints_a_summary_and_verifies(tmp_path):
    out = tmp_path / "set"
    args = ["masks", "generate", "--out", str(out), "--size", "64", "--per-bin", "2", "--seed", "3",
            "--bins", "0.1-0.2,0.3-0.4", "--preset", "medium"]
    result = runner.invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    assert "(0.1, 0.2]" in result.output and "(0.3, 0.4]" in result.output
    assert "4 masks, 64x64, seed 3" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["0.1-0.2", "0.3-0.4", "manifest.json"]
    assert json.loads((out / "manifest.json").read_text())["presets"] == {"medium": 1.0}

    refused = runner.invoke(_cli(), args)
    assert refused.exit_code != 0 and "--overwrite" in refused.output
    assert runner.invoke(_cli(), args + ["--force"]).exit_code == 0

    verified = runner.invoke(_cli(), ["masks", "verify", str(out)])
    assert verified.exit_code == 0 and "4 masks" in verified.output
    (out / "0.1-0.2" / "00000.png").write_bytes(b"changed")
    broken = runner.invoke(_cli(), ["masks", "verify", str(out)])
    assert broken.exit_code != 0 and "00000.png" in broken.output


@pytest.mark.parametrize(
    "extra",
    [
        ["--bins", "0.1-0.2,0.4-0.3"],
        ["--bins", "0.1-0.2;0.3-0.4"],
        ["--bins", "0.5-1.5"],
        ["--bins", "-0.1-0.2"],
        ["--size", "0"],
        ["--per-bin", "0"],
        ["--preset", "huge"],
    ],
)
def test_cli_bad_input_fails_in_one_line_and_writes_nothing(tmp_path, extra):
    args = ["masks", "generate", "--out", str(tmp_path / "set"), "--size", "64", "--per-bin", "1"] + extra
    result = runner.invoke(_cli(), args)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert list(tmp_path.iterdir()) == []


def test_errors_are_typed():
    assert issubclass(ManifestError, FacefillError)
    assert issubclass(MaskPolarityError, InputError)
    assert issubclass(masks.MaskGenerationError, FacefillError)
