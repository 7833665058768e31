import math

import pytest
import torch

from facefill.metrics import MAX_PSNR, hole_gradient, l1_error, psnr, saturated_blocks, ssim

from helpers import square_mask


def test_identical_images_give_the_finite_maximum():
    a = torch.rand(3, 3, 32, 32)
    values = psnr(a, a)
    assert torch.equal(values, torch.full((3,), MAX_PSNR))
    assert torch.isfinite(values).all()
    torch.testing.assert_close(ssim(a, a), torch.ones(3))
    assert torch.equal(l1_error(a, a), torch.zeros(3))


def test_constant_offset_gives_known_values():
    # MSE 0.01 -> PSNR 10 log10(1 / 0.01) = 20 dB; MSE 0.25 -> 10 log10(4) dB.
    b = torch.full((1, 3, 16, 16), 0.5)
    torch.testing.assert_close(psnr(b + 0.1, b), torch.tensor([20.0]), rtol=0, atol=1e-4)
    torch.testing.assert_close(l1_error(b + 0.1, b), torch.tensor([0.1]))
    zero = torch.zeros(1, 3, 16, 16)
    torch.testing.assert_close(psnr(zero + 0.5, zero), torch.tensor([10 * math.log10(4)]), rtol=0, atol=1e-4)


def test_values_are_per_image_in_a_mixed_batch():
    target = torch.full((2, 3, 16, 16), 0.5)
    pred = target.clone()
    pred[1] += 0.1
    torch.testing.assert_close(psnr(pred, target), torch.tensor([MAX_PSNR, 20.0]), rtol=0, atol=1e-4)
    torch.testing.assert_close(l1_error(pred, target), torch.tensor([0.0, 0.1]))
    s = ssim(pred, target)
    assert s[0] == pytest.approx(1.0) and s[1] < 1.0


def test_l1_counts_only_the_changed_pixels():
    target = torch.rand(1, 3, 16, 16)
    pred = target.clone()
    pred[..., :4, :] = target[..., :4, :] + 0.2  # a quarter of the rows off by 0.2, unclamped
    torch.testing.assert_close(l1_error(pred, target), torch.tensor([0.05]))


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="one shape"):
        l1_error(torch.rand(3, 8, 8), torch.rand(3, 8, 8))


# --- hole diagnostics -------------------------------------------------------------------------


def _blur(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)


def test_hole_gradient_of_a_step_edge_is_the_sobel_sum():
    # Luma 0 left of column 4, 1 from it on: gx = 1 + 2 + 1 = 4 on columns 3 and 4, 0 elsewhere
    # (reflect padding adds no edge at the border), so the mean over the whole image is 4 * 2/8.
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4:] = 1.0
    whole = torch.ones(1, 1, 8, 8)
    torch.testing.assert_close(hole_gradient(image, whole), torch.tensor([1.0]))
    # Only hole pixels count: a hole on the flat left part sees no gradient, one on the edge 4.
    assert hole_gradient(image, square_mask(8, 0, 0, 2)).item() == 0.0
    torch.testing.assert_close(hole_gradient(image, square_mask(8, 2, 3, 2)), torch.tensor([4.0]))
    assert hole_gradient(image, torch.zeros(1, 1, 8, 8)).item() == 0.0  # no hole: 0
    # The same as a 3x3 Sobel convolution of the luma with reflect padding, on any image.
    x = torch.rand(2, 3, 12, 16)
    luma = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    g = torch.nn.functional.conv2d(torch.nn.functional.pad(luma, (1, 1, 1, 1), mode="reflect"), torch.stack([k, k.t()])[:, None])
    torch.testing.assert_close(hole_gradient(x, torch.ones(2, 1, 12, 16)), g.pow(2).sum(1).sqrt().flatten(1).mean(1))
    # A flat image gives exactly 0, not float rounding.
    assert hole_gradient(torch.full((1, 3, 8, 8), 100 / 255), torch.ones(1, 1, 8, 8)).item() == 0.0


def test_a_blurred_fill_has_a_gradient_ratio_below_one():
    target = torch.rand(2, 3, 32, 32)
    mask = square_mask(32, 8, 8, 16, batch=2)
    blurred = torch.where(mask > 0.5, _blur(target), target)
    ratio = hole_gradient(blurred, mask).mean() / hole_gradient(target, mask).mean()
    assert ratio < 0.7
    same = hole_gradient(target, mask).mean() / hole_gradient(target.clone(), mask).mean()
    assert same.item() == 1.0


def test_saturated_blocks_need_eight_by_eight_stuck_pixels_in_the_hole():
    target = torch.full((1, 3, 32, 32), 0.4)
    mask = square_mask(32, 4, 4, 20)

    def planted(value, top, left, side, gt=target):
        out = gt.clone()
        out[..., top : top + side, left : left + side] = value
        return saturated_blocks(out, gt, mask).item()

    assert planted(1.0, 6, 6, 8) is True  # white 8x8
    assert planted(0.0, 10, 10, 9) is True  # black 9x9
    assert planted(1.0, 6, 6, 7) is False  # 7x7: a speck
    assert planted(0.999, 6, 6, 8) is True  # 254.7 quantises to 255
    assert planted(0.99, 6, 6, 8) is False  # 252: not saturated
    assert planted(1.0, 0, 0, 8) is False  # mostly outside the hole
    white_gt = target.clone()
    white_gt[..., 6:14, 6:14] = 1.0
    assert planted(1.0, 6, 6, 8, gt=white_gt) is False  # really white there
    backdrop = target.clone()
    backdrop[..., 6:14, 6:14] = 247 / 255
    assert planted(1.0, 6, 6, 8, gt=backdrop) is False  # 8 levels from white: a white backdrop
    backdrop[..., 6:14, 6:14] = 246 / 255
    assert planted(1.0, 6, 6, 8, gt=backdrop) is True  # 9 levels off in every channel
    backdrop[..., 6:14, 6:14] = 1.0
    backdrop[:, 2, 6:14, 6:14] = 0.9  # white in R and G, 230 in B: not white
    assert planted(1.0, 6, 6, 8, gt=backdrop) is True
    dark = target.clone()
    dark[..., 6:14, 6:14] = 8 / 255
    assert planted(0.0, 6, 6, 8, gt=dark) is False and saturated_blocks(
        torch.zeros_like(dark), dark, mask, tolerance=7
    ).item() is True
    # Half white, half black is not one flat block.
    out = target.clone()
    out[..., 6:14, 6:10] = 1.0
    out[..., 6:14, 10:14] = 0.0
    assert saturated_blocks(out, target, mask).item() is False
    # Per image in a batch.
    batch = torch.cat([target, target])
    stuck = batch.clone()
    stuck[1, :, 8:16, 8:16] = 1.0
    assert saturated_blocks(stuck, batch, mask.expand(2, -1, -1, -1)).tolist() == [False, True]


def test_hole_diagnostics_check_shapes():
    with pytest.raises(ValueError, match="mask must be"):
        hole_gradient(torch.rand(1, 3, 8, 8), torch.ones(1, 3, 8, 8))
    with pytest.raises(ValueError, match="one shape"):
        saturated_blocks(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="tolerance"):
        saturated_blocks(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8), tolerance=255)
