"""Several training folders as one dataset (facefill.multiroot) and the validation images."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from facefill.data import DatasetError, ImageFolderDataset, carve_holdout, flip_decision
from facefill.multiroot import MultiRootDataset, validation_set

from helpers import assert_same_samples


def _root(path, n, value0, *, train=None, test=None):
    """n images whose left half is a distinct grey (value0 + i) and right half black, so
    every image and its flip can be told apart."""
    path.mkdir(parents=True)
    for i in range(n):
        a = np.zeros((8, 8, 3), dtype=np.uint8)
        a[:, :4] = value0 + i
        Image.fromarray(a).save(path / f"{i:02d}.png")
    ids = [f"{i:02d}" for i in range(n)]
    (path / "train.txt").write_text("\n".join(ids[:train] if train else ids) + "\n")
    if test:
        (path / "test.txt").write_text("\n".join(ids[-test:]) + "\n")
    return path


@pytest.fixture
def roots(tmp_path):
    return _root(tmp_path / "a", 7, 10, train=5, test=2), _root(tmp_path / "b", 3, 100)


def test_one_folder_gives_exactly_its_image_folder_dataset(roots):
    single = ImageFolderDataset(roots[0], 8, split="train", seed=5)
    multi = MultiRootDataset.from_roots([roots[0]], 8, split="train", seed=5)
    assert multi.counts == {str(roots[0]): 5}
    assert_same_samples(single, multi, epochs=3)


def test_flip_uses_the_global_index_and_counts_are_per_folder(roots):
    multi = MultiRootDataset.from_roots(roots, 8, split="train", seed=2)
    assert len(multi) == 8 and multi.counts == {str(roots[0]): 5, str(roots[1]): 3}
    assert multi.locate(5) == (1, 0) and multi.locate(-1) == (1, 2)
    with pytest.raises(IndexError):
        multi.locate(8)
    flips = []
    for epoch in range(4):
        multi.set_epoch(epoch)
        for i in range(len(multi)):
            x = multi[i]
            k, j = multi.locate(i)
            left = (10 + j if k == 0 else 100 + j) / 255
            flipped = flip_decision(2, epoch, i)
            flips.append(flipped)
            # the image of folder k, number j, mirrored iff the coin of the *global* index says so
            assert torch.allclose(x[0, 0, 7 if flipped else 0], torch.tensor(left)), (epoch, i)
            assert x[0, 0, 0 if flipped else 7] == 0
    assert 0 < sum(flips) < len(flips)
    assert "8 images" in multi.describe() and f"{roots[1]}: 3 of train" in multi.describe()


def test_round_robin_interleaves_the_folders(roots):
    multi = MultiRootDataset.from_roots(roots, 8, split="train")
    assert multi.round_robin() == [0, 5, 1, 6, 2, 7, 3, 4]


def test_bad_folders_are_named(roots, tmp_path):
    with pytest.raises(DatasetError, match=r"nope does not exist"):
        MultiRootDataset.from_roots([roots[0], tmp_path / "nope"], 8, split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty is empty"):
        MultiRootDataset.from_roots([roots[0], tmp_path / "empty"], 8, split="train")
    with pytest.raises(DatasetError, match=r"b[/\\]test.txt does not exist"):
        MultiRootDataset.from_roots(roots, 8, split="test")
    with pytest.raises(DatasetError, match=r"is listed twice"):
        MultiRootDataset.from_roots([roots[0], roots[0] / ".." / "a"], 8, split="train")
    with pytest.raises(DatasetError, match="no data folder"):
        MultiRootDataset.from_roots([], 8)
    with pytest.raises(ValueError, match="one size"):
        MultiRootDataset([ImageFolderDataset(roots[0], 8), ImageFolderDataset(roots[1], 4)])


def test_holdout_per_folder_and_the_validation_images(roots):
    kw = {"split": "train", "holdout": 2, "holdout_seed": 3}
    rest = MultiRootDataset.from_roots(roots, 8, part="rest", **kw)
    val = validation_set(roots, 8, val_split="test", **kw)
    assert rest.counts == {str(roots[0]): 3, str(roots[1]): 1}
    assert val.counts == {str(roots[0]): 2, str(roots[1]): 2}
    assert f"{roots[0]}: 3 of train (2 held out, holdout_seed 3)" in rest.describe()
    assert f"{roots[1]}: 2 held out of train (holdout_seed 3)" in val.describe()
    for k, root in enumerate(roots):
        train_ids = ImageFolderDataset(root, 8, split="train").ids
        want_rest, want_held = carve_holdout(train_ids, 2, seed=3)
        assert rest.datasets[k].ids == want_rest and val.datasets[k].ids == want_held
        assert not set(rest.datasets[k].ids) & set(val.datasets[k].ids)
    # interleaved, unflipped: a batch of 2 has one image from each folder
    first_two = [val.locate(i) for i in val.round_robin()[:2]]
    assert first_two == [(0, 0), (1, 0)]
    val.set_epoch(3)
    for i in range(len(val)):
        k, j = val.locate(i)
        assert torch.equal(val[i], val.datasets[k].get(j)) and val[i][0, 0, 7] == 0


def test_without_holdout_validation_uses_each_folders_val_split(roots, caplog):
    with caplog.at_level(logging.WARNING, logger="facefill.data"):
        val = validation_set(roots, 8, split="train", val_split="test")
    assert val.datasets[0].ids == ["05", "06"]  # a's test.txt
    assert val.datasets[1].ids == ["00", "01", "02"]  # b has none: its training images
    assert "no validation split in" in caplog.text and str(roots[1]) in caplog.text
