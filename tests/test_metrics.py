import math

import pytest
import torch

from facefill.metrics import MAX_PSNR, l1_error, psnr, ssim


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
