"""The GFP-GAN adapter: clear messages without the package or weights; correct plumbing with
a stand-in network (the real one needs TencentARC's weights, which are not available offline)."""

import sys
import types

import pytest
import torch
import torch.nn as nn

from facefill.models.gfpgan import GFPGAN_ARGS, GFPGANInpainting, GFPGANUnavailable

from helpers import square_mask


class _StandIn(nn.Module):
    """Records its input; returns a constant 0.2 image (in GFP-GAN's [-1, 1] range)."""

    seen: list = []

    def __init__(self, **kwargs):
        super().__init__()
        assert kwargs == GFPGAN_ARGS
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x, return_rgb=True, randomize_noise=True):
        assert return_rgb is False and randomize_noise is False  # deterministic: fixed noise buffers
        _StandIn.seen.append(x.clone())
        return torch.full_like(x, 0.2) * self.scale, []


@pytest.fixture
def fake_gfpgan(monkeypatch):
    arch = types.ModuleType("gfpgan.archs.gfpganv1_clean_arch")
    arch.GFPGANv1Clean = _StandIn
    monkeypatch.setitem(sys.modules, "gfpgan", types.ModuleType("gfpgan"))
    monkeypatch.setitem(sys.modules, "gfpgan.archs", types.ModuleType("gfpgan.archs"))
    monkeypatch.setitem(sys.modules, "gfpgan.archs.gfpganv1_clean_arch", arch)
    _StandIn.seen.clear()


def test_missing_weights_and_missing_package_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delenv("FACEFILL_GFPGAN", raising=False)
    with pytest.raises(GFPGANUnavailable, match="needs its pretrained weights.*FACEFILL_GFPGAN"):
        GFPGANInpainting.from_weights()
    with pytest.raises(GFPGANUnavailable, match="does not exist"):
        GFPGANInpainting.from_weights(tmp_path / "GFPGANv1.4.pth")
    weights = tmp_path / "w.pth"
    torch.save({"params_ema": {}}, weights)
    monkeypatch.setitem(sys.modules, "gfpgan", None)  # import fails as when not installed
    with pytest.raises(GFPGANUnavailable, match="pip install gfpgan"):
        GFPGANInpainting.from_weights(weights)


def test_weights_load_and_the_hole_is_filled_from_the_restored_face(fake_gfpgan, tmp_path, monkeypatch):
    weights = tmp_path / "GFPGANv1.4.pth"
    torch.save({"params_ema": {"scale": torch.tensor(2.0)}, "params": {"scale": torch.tensor(9.0)}}, weights)
    monkeypatch.setenv("FACEFILL_GFPGAN", str(weights))
    g = GFPGANInpainting.from_weights()
    assert g.network.scale.item() == 2.0 and not g.trainable  # params_ema preferred
    image, mask = torch.rand(2, 3, 64, 64), square_mask(64, 16, 16, 24, batch=2)
    out = g(image, mask)
    x = _StandIn.seen[-1]
    assert x.shape == (2, 3, 512, 512) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(out[~mask.bool().expand_as(out)], image[~mask.bool().expand_as(image)])
    # network output 0.2 * 2 = 0.4 in [-1, 1] -> 0.7 in [0, 1], resized back: constant.
    torch.testing.assert_close(out[mask.bool().expand_as(out)], torch.full((2 * 3 * 24 * 24,), 0.7))
    # Hole content is ignored (the Telea pre-fill sees only known pixels).
    noisy = torch.where(mask.bool(), torch.rand_like(image), image)
    g(noisy, mask)
    assert torch.equal(_StandIn.seen[-1], x)


def test_a_file_of_another_network_is_refused(fake_gfpgan, tmp_path):
    weights = tmp_path / "other.pth"
    torch.save({"params_ema": {"conv.weight": torch.zeros(1)}}, weights)
    with pytest.raises(GFPGANUnavailable, match="does not fit GFP-GAN's clean architecture"):
        GFPGANInpainting.from_weights(weights)
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(GFPGANUnavailable, match="is not a PyTorch weights file"):
        GFPGANInpainting.from_weights(tmp_path / "text.pth")
