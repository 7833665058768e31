"""Peer methods: OpenCV's classical inpainting, the PConv U-Net and its loss."""

import cv2
import numpy as np
import pytest
import torch

from facefill import InputError, create_model
from facefill.losses_peers import PConvLoss, dilate, hole_total_variation
from facefill.models import model_entry
from facefill.vgg import VGG16Features

from helpers import square_mask


def _face_like(size=48, seed=0):
    """Smooth float image in [0, 1] that is not on the 1/255 grid."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 6, 6, generator=g)
    image = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (image + 0.002 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)


# -- classical ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,flag", [("telea", cv2.INPAINT_TELEA), ("ns", cv2.INPAINT_NS)])
def test_classical_equals_opencv_on_the_hole_and_keeps_known_pixels(name, flag):
    image = _face_like()
    mask = square_mask(48, 10, 14, 20)
    mask[..., 30:40, 2:8] = 1.0  # a second hole touching nothing else
    out = create_model(name, "paper")(image, mask)

    pixels = (image[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().copy()
    holes = (mask[0, 0].numpy() * 255).astype(np.uint8)
    want = torch.from_numpy(cv2.inpaint(pixels, holes, 3, flag)).permute(2, 0, 1)
    hole = mask[0].expand(3, -1, -1).bool()
    got = (out[0] * 255).round().to(torch.uint8)
    assert torch.equal(got[hole], want[hole])
    assert torch.equal(out[0][~hole], image[0][~hole])  # bit-identical, not re-quantised


def test_classical_radius_batch_and_no_parameters():
    g = create_model("telea", "small", radius=5)
    assert g.radius == 5.0 and g.stride == 1 and not list(g.parameters())
    assert not g.trainable and not model_entry("telea").trainable and not model_entry("ns").trainable
    assert model_entry("pconv").trainable and model_entry("apfi").trainable
    image = torch.cat([_face_like(32, 1), _face_like(32, 2)])
    mask = torch.cat([square_mask(32, 4, 4, 10), square_mask(32, 16, 12, 8)])
    both = g(image, mask)
    assert torch.equal(both[1:], g(image[1:], mask[1:]))  # per image
    assert not torch.equal(both, create_model("telea", "small", radius=1)(image, mask))
    with pytest.raises(InputError, match="radius must be a positive"):
        create_model("ns", radius=0)


# -- PConv U-Net -------------------------------------------------------------------------


def test_pconv_presets_parameters_and_stride():
    with torch.device("meta"):
        paper, paper512 = create_model("pconv", "paper"), create_model("pconv", "paper512")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert paper.stride == 128 and paper512.stride == 256
    assert round(count(paper) / 1e6, 2) == 25.78  # 7 layers, the 256x256 reimplementation
    assert round(count(paper512) / 1e6, 1) == 32.9  # the paper's 8 layers (quoted 32.8 M)
    first = paper.encoder.layers[0].conv
    assert first.kernel_size == (7, 7) and first.out_channels == 64
    assert [l.conv.kernel_size[0] for l in paper.encoder.layers] == [7, 5, 5, 3, 3, 3, 3]
    assert [l.conv.out_channels for l in paper.encoder.layers] == [64, 128, 256, 512, 512, 512, 512]
    assert len(paper.encoder_batchnorms()) == 6  # every encoder layer but the first
    assert paper.decoder.layers[0].conv.in_channels == 64 + 3  # the input image joins last
    with pytest.raises(InputError, match="out_activation must be one of"):
        create_model("pconv", "small", out_activation="tanh")


def test_pconv_raw_output_and_its_composite():
    g = create_model("pconv", "small").eval()
    image, mask = torch.rand(2, 3, 64, 64), square_mask(64, 8, 20, 30, batch=2)
    with torch.no_grad():
        comp, raw = g(image, mask, return_raw=True)
        assert torch.equal(comp, g(image, mask))
    assert torch.equal(comp, torch.where(mask.bool(), raw, image))
    assert 0 <= raw.min() and raw.max() <= 1  # sigmoid head
    linear = create_model("pconv", "small", out_activation="none")
    linear.load_state_dict(g.state_dict())
    with torch.no_grad():
        _, logits = linear.eval()(image, mask, return_raw=True)
    torch.testing.assert_close(torch.sigmoid(logits), raw)


def test_pconv_fills_a_hole_larger_than_the_receptive_field_of_the_first_layer():
    g = create_model("pconv", "small").eval()
    image, mask = torch.rand(1, 3, 64, 64), square_mask(64, 4, 4, 56)
    with torch.no_grad():
        _, raw = g(image, mask, return_raw=True)
    # Every hole pixel got a prediction from the decoder, none is the "no valid input" zero.
    hole = mask.bool().expand_as(raw)
    assert (raw[hole] != 0.5).all()


# -- PConv loss --------------------------------------------------------------------------


def _l1_only(**kw):
    return PConvLoss(perceptual=0, style=0, tv=0, **kw)


def test_valid_and_hole_l1_on_a_hand_built_example():
    target = torch.zeros(1, 3, 2, 2)
    raw = torch.full((1, 3, 2, 2), 0.25)
    raw[..., 0, 0] = 0.5
    mask = torch.zeros(1, 1, 2, 2)
    mask[..., 0, 0] = 1.0  # one hole pixel
    total, logs = _l1_only()(raw, target, mask)
    # valid: 3 known pixels x 3 channels x 0.25 / 12 elements; hole: 3 x 0.5 / 12.
    assert logs["valid"].item() == pytest.approx(0.1875)
    assert logs["hole"].item() == pytest.approx(0.125)
    assert total.item() == pytest.approx(0.1875 + 6 * 0.125)
    assert set(logs) == {"valid", "hole"}


def test_tv_of_a_constant_image_is_zero_and_of_a_checkerboard_is_hand_computed():
    region = dilate(square_mask(6, 2, 2, 1))  # one hole pixel -> the 3x3 block rows/cols 1..3
    assert region.sum() == 9
    assert hole_total_variation(torch.full((1, 3, 6, 6), 0.7), region) == 0
    i, j = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    board = ((i + j) % 2).float().expand(1, 3, 6, 6)
    # Inside the 3x3 block: 3 rows x 2 horizontal + 3 columns x 2 vertical pairs = 12 pairs,
    # each |1| in 3 channels = 36, over N = 3 * 6 * 6 = 108 elements.
    assert hole_total_variation(board, region).item() == pytest.approx(36 / 108)
    # In the loss the TV is taken on the composite: known pixels come from the target.
    loss = PConvLoss(valid=0, hole=0, perceptual=0, style=0)
    _, logs = loss(board, torch.zeros(1, 3, 6, 6), square_mask(6, 2, 2, 1))
    # Composite = zeros but the hole pixel (2,2), which is 0 on the board too: TV 0.
    assert logs["tv"] == 0
    _, logs = loss(1 - board, torch.zeros(1, 3, 6, 6), square_mask(6, 2, 2, 1))
    # Now the hole pixel is 1: its 4 neighbours lie in the region -> 4 pairs x 3 channels.
    assert logs["tv"].item() == pytest.approx(12 / 108)


@pytest.fixture(scope="module")
def vgg():
    return VGG16Features.random(seed=0)


def test_total_is_the_weighted_sum_of_the_logged_terms_and_comp_terms_use_the_composite(vgg):
    loss = PConvLoss(vgg)
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=g)
    mask = square_mask(32, 6, 6, 14, batch=2)
    raw = torch.rand(2, 3, 32, 32, generator=g).requires_grad_(True)
    total, logs = loss(raw, target, mask)
    assert set(logs) == {"valid", "hole", "perceptual_out", "perceptual_comp", "style_out", "style_comp", "tv"}
    assert loss.weights == {
        "valid": 1.0, "hole": 6.0, "perceptual_out": 0.05, "perceptual_comp": 0.05,
        "style_out": 120.0, "style_comp": 120.0, "tv": 0.1,
    }
    weighted = sum(loss.weights[k] * v for k, v in logs.items())
    torch.testing.assert_close(total.detach(), weighted)
    assert all(v > 0 for v in logs.values())
    total.backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()

    # A raw prediction right on the hole but wrong outside: the composite equals the target,
    # so only the terms on the raw output remain.
    right_in_hole = torch.where(mask.bool(), target, 1 - target)
    _, logs = loss(right_in_hole, target, mask)
    assert logs["hole"] == 0 and logs["valid"] > 0
    assert logs["perceptual_comp"] == 0 and logs["style_comp"] == 0 and logs["tv"] > 0
    assert logs["perceptual_out"] > 0 and logs["style_out"] > 0


def test_loss_config_and_bad_input(vgg):
    loss = PConvLoss.from_config({"tv": 0, "style": 0}, vgg=vgg)
    assert "tv" not in loss.weights and "style_out" not in loss.weights
    with pytest.raises(InputError, match="unknown PConv loss config keys"):
        PConvLoss.from_config({"adv": 0.1}, vgg=vgg)
    with pytest.raises(InputError, match="loss weight hole must be >= 0"):
        PConvLoss(vgg, hole=-1)
    with pytest.raises(InputError, match=r"mask must have shape \(1, 1, 8, 8\)"):
        _l1_only()(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
