"""Training augmentation (facefill.augment) and its use in ImageFolderDataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facefill.augment import Augment
from facefill.config import load_config
from facefill.data import ImageFolderDataset
from facefill.errors import InputError

from helpers import assert_same_samples


def _noise_folder(root, n=6, size=24):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def test_zero_amplitudes_leave_every_sample_bit_identical(tmp_path):
    root = _noise_folder(tmp_path / "d")
    plain = ImageFolderDataset(root, 24, seed=4)
    off = ImageFolderDataset(root, 24, seed=4, augment=Augment())
    a = np.arange(24 * 24 * 3, dtype=np.uint8).reshape(24, 24, 3)
    assert Augment().apply(a, 0, 0, 0) is a
    assert_same_samples(plain, off, epochs=2)


def test_draws_depend_only_on_seed_epoch_index(tmp_path):
    root = _noise_folder(tmp_path / "d")
    aug = Augment(scale=0.2, shift=0.1, color=0.3)
    ds = ImageFolderDataset(root, 24, seed=1, augment=aug)
    twin = ImageFolderDataset(root, 24, seed=1, augment=Augment(scale=0.2, shift=0.1, color=0.3))
    plain = ImageFolderDataset(root, 24, seed=1)
    by_epoch = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        twin.set_epoch(epoch)
        plain.set_epoch(epoch)
        items = [ds[i] for i in range(len(ds))]
        for i, x in enumerate(items):
            assert torch.equal(x, twin[i])  # another instance (worker, rank, resumed run)
            assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
            assert not torch.equal(x, plain[i])
        by_epoch.append(items)
    ds.set_epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(by_epoch[0], (ds[i] for i in range(len(ds)))))
    assert not torch.equal(by_epoch[0][0], by_epoch[1][0])  # epochs differ
    assert aug.draw(1, 0, 0) != aug.draw(1, 0, 1) and aug.draw(1, 0, 0) != aug.draw(2, 0, 0)
    # One amplitude never changes another part's draws.
    assert Augment(scale=0.2).draw(1, 0, 0)[0] == aug.draw(1, 0, 0)[0]


def test_shift_is_a_whole_pixel_translation_with_mirrored_borders():
    a = np.random.default_rng(2).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    aug = Augment(shift=0.25)
    seen = set()
    for index in range(20):
        _, fx, fy, *_ = aug.draw(0, 0, index)
        tx, ty = round(fx * 20), round(fy * 20)
        seen.add((tx, ty))
        p = 5
        padded = np.pad(a, ((p, p), (p, p), (0, 0)), mode="reflect")  # = OpenCV's BORDER_REFLECT_101
        want = padded[p - ty : p - ty + 20, p - tx : p - tx + 20]
        assert np.array_equal(aug.apply(a, 0, 0, index), want), (tx, ty)
        assert max(abs(tx), abs(ty)) <= 5
    assert len(seen) > 5


def test_zoom_enlarges_the_centre():
    a = np.zeros((32, 32, 3), dtype=np.uint8)
    a[12:20, 12:20] = 255  # an 8x8 white square in the middle
    aug = Augment(scale=0.5)
    for index in range(5):
        zoom = aug.draw(0, 0, index)[0]
        out = aug.apply(a, 0, 0, index)
        assert 1.0 <= zoom <= 1.5
        area = (out[..., 0] > 127).sum()
        assert area == pytest.approx(64 * zoom**2, rel=0.2)
        assert out[15:17, 15:17].min() == 255  # the centre stays put


def test_color_jitter_on_grey_is_the_brightness_factor():
    # On a grey image contrast (about the mean) and saturation (towards the grey) change nothing,
    # so every pixel is round(value x brightness).
    a = np.full((8, 8, 3), 100, dtype=np.uint8)
    aug = Augment(color=0.4)
    factors = []
    for index in range(6):
        _, _, _, bright, contrast, sat = aug.draw(3, 1, index)
        factors.append(bright)
        assert all(0.6 <= f <= 1.4 for f in (bright, contrast, sat))
        out = aug.apply(a, 3, 1, index)
        assert np.array_equal(out, np.full_like(a, min(255, round(100 * bright))))
    assert len(set(factors)) == 6
    bright_image = np.full((4, 4, 3), 250, dtype=np.uint8)
    assert Augment(color=1.0).apply(bright_image, 0, 0, 0).dtype == np.uint8  # clipped, not wrapped


def test_bad_amplitudes_and_config_keys_are_refused():
    for kwargs, message in (
        ({"scale": -0.1}, "augment.scale must be in"),
        ({"shift": 0.6}, "augment.shift must be in"),
        ({"color": True}, "augment.color must be a number"),
        ({"scale": float("nan")}, "augment.scale must be in"),
    ):
        with pytest.raises(InputError, match=message):
            Augment(**kwargs)
    cfg = load_config(None, ["data.augment={scale: 0.1, color: 0.2}", "data.augment.shift=0.05"])
    assert cfg.data.augment == Augment(scale=0.1, shift=0.05, color=0.2)
    for override, message in (
        ("data.augment.shift=0.9", "config key data.augment.shift: augment.shift must be in"),
        ("data.augment.zoom=0.1", "unknown config key 'data.augment.zoom'.*data.augment.scale"),
        ("data.augment=0.1", "data.augment takes a mapping"),
    ):
        with pytest.raises(InputError, match=message):
            load_config(None, [override])
