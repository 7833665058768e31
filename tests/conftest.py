import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fp32_where_not_forced(monkeypatch):
    """``precision="auto"`` means fp32 in every test, on every machine: without this a CPU with
    native bf16 would run the whole suite in bf16 (tests/test_precision.py forces each case).
    An explicit FACEFILL_NATIVE_BF16 in the environment is kept."""
    if "FACEFILL_NATIVE_BF16" not in os.environ:
        monkeypatch.setenv("FACEFILL_NATIVE_BF16", "0")


@pytest.fixture(scope="session")
def faces(tmp_path_factory) -> Path:
    """12 smooth synthetic 'faces' (an ellipse on a gradient) with a train/test split."""
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    ids = []
    for i in range(12):
        base = rng.uniform(0.2, 0.8, 3)
        img = base[None, None] * (0.6 + 0.4 * yy[..., None]) + 0.2 * xx[..., None]
        inside = ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.4) ** 2 < 1
        img[inside] = rng.uniform(0.5, 0.9, 3)
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(root / f"f{i:02d}.png")
        ids.append(f"f{i:02d}")
    (root / "train.txt").write_text("\n".join(ids[:10]) + "\n")
    (root / "test.txt").write_text("\n".join(ids[10:]) + "\n")
    return root
