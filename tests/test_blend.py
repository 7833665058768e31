"""Poisson blending of a generator's fill (facefill.blend) and where it is applied: the
generator's ``inpaint``, ``evaluate``, the ``Inpainter`` and the commands."""

import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facefill import InputError, create_model
from facefill.blend import BLENDS, harmonic_correction, poisson_blend
from facefill.cli import app
from facefill.evaluate import EvaluationError, evaluate
from facefill.inpaint import Inpainter, InpaintWarning
from facefill.masks import generate_binned_masks
from helpers import save_tiny_apfi, square_mask


def _smooth(batch=2, size=32, seed=0):
    """Smooth images well inside (0, 1): ramps per channel with a little noise."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    ramps = torch.stack([0.3 + 0.3 * x, 0.3 + 0.3 * y, 0.5 - 0.2 * x * y])
    return (ramps + 0.02 * torch.rand(batch, 3, size, size, generator=g)).clamp(0, 1)


def test_a_linear_boundary_is_continued_linearly_into_the_hole():
    # A linear function is discretely harmonic: with its values around the hole, the
    # correction inside is that same function (the hole kept off the zero-flux edges).
    y, x = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    linear = (0.01 * x - 0.02 * y + 0.3).expand(1, 2, 24, 24)
    hole = square_mask(24, 5, 6, 12)
    c = harmonic_correction(linear * (1 - hole), hole, tol=1e-7)
    assert torch.allclose(c, linear * hole, atol=1e-5)
    assert torch.equal(c * (1 - hole), torch.zeros_like(c))  # zero outside the hole
    # On the image's edge the flux is zero: a function of x alone continues linearly into a
    # hole that touches the top edge (and so does the solve on the box around the hole).
    along = (0.02 * x + 0.1).expand(1, 1, 24, 24)
    top = square_mask(24, 0, 4, 10)
    c = harmonic_correction(along * (1 - top), top, tol=1e-7)
    assert torch.allclose(c, along * top, atol=1e-5)


def test_a_colour_cast_in_the_fill_is_taken_out_and_its_detail_kept():
    image = _smooth()
    mask = square_mask(32, 8, 10, 14, batch=2)
    # The fill has the image's detail but is 0.15 brighter in red and 0.1 darker in blue.
    cast = torch.tensor([0.15, 0.0, -0.1]).view(1, 3, 1, 1)
    raw = image + cast
    plain = torch.where(mask > 0.5, raw, image)
    blended = poisson_blend(image, raw, mask)
    hole = mask.expand_as(image) > 0.5
    assert (plain - image)[hole].abs().mean() > 0.08
    assert (blended - image)[hole].abs().max() < 1e-4
    assert torch.equal(blended[~hole], image[~hole])  # known pixels bit-identical


def test_a_fill_that_agrees_with_its_surroundings_is_left_as_it_is():
    image = _smooth()
    mask = square_mask(32, 4, 4, 20, batch=2)
    raw = image.clone()
    raw[mask.expand_as(raw) > 0.5] = 0.5  # anything in the hole; the known pixels agree
    assert torch.equal(poisson_blend(image, raw, mask), torch.where(mask > 0.5, raw, image))


def test_blend_is_per_image_clipped_and_safe_on_edge_cases():
    image, raw = _smooth(3), _smooth(3, seed=1) * 0.5 + 0.6  # raw up to 1.1: clipped
    mask = torch.cat([square_mask(32, 0, 0, 16), square_mask(32, 10, 20, 12), torch.zeros(1, 1, 32, 32)])
    batch = poisson_blend(image, raw, mask)
    for i in range(3):
        alone = poisson_blend(image[i : i + 1], raw[i : i + 1], mask[i : i + 1])
        assert torch.allclose(batch[i : i + 1], alone, atol=1e-4)
    assert batch.min() >= 0 and batch.max() <= 1
    assert torch.equal(batch[2], image[2])  # no hole: the image
    whole = poisson_blend(image[:1], raw[:1], torch.ones(1, 1, 32, 32))  # no known pixel: c = 0
    assert torch.equal(whole, raw[:1].clamp(0, 1))
    assert poisson_blend(image.bfloat16(), raw.bfloat16(), mask).dtype == torch.float32


def test_the_blend_gradient_is_exact_so_a_loss_may_see_the_blended_fill():
    # torch.autograd.gradcheck against finite differences, in float64 on a small image
    # whose hole touches the image's edge; the correction's gradient is a second solve.
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 2, 9, 10, dtype=torch.float64, generator=g) * 0.5 + 0.25
    raw = (image + 0.1 * torch.randn(image.shape, dtype=torch.float64, generator=g)).requires_grad_()
    mask = torch.cat([square_mask(10, 3, 2, 4)[..., :9, :], square_mask(10, 0, 5, 4)[..., :9, :]]).double()
    boundary = lambda r: (image - r) * (1 - mask)  # noqa: E731
    assert torch.autograd.gradcheck(lambda r: harmonic_correction(boundary(r), mask, tol=1e-12), (raw,))
    # The blended composite: known pixels carry no gradient of their own, hole pixels do,
    # and a known pixel next to the hole moves the fill through the correction.
    out = poisson_blend(image.float(), raw.float(), mask)
    out[0, 0, 4, 4].backward()  # a hole pixel of the first image
    grad = raw.grad[0, 0]
    assert grad[4, 4] != 0 and grad[2, 4] != 0  # itself, and the known pixel above the hole
    assert torch.equal(raw.grad[1], torch.zeros_like(raw.grad[1]))  # another image: nothing


def test_generators_blend_on_request_and_never_in_training_parts():
    model = create_model("apfi", "small", width=8, reasoning=(8, 16, 16), unet=(8, 16, 16), cycles=2).eval()
    image, mask = _smooth(2), square_mask(32, 8, 8, 12, batch=2)
    with torch.no_grad():
        plain, raw = model(image, mask, return_raw=True)
        blended = model(image, mask, blend="poisson")
        parts = model(image, mask, return_parts=True, blend="poisson")
    assert torch.equal(blended, poisson_blend(image, raw, mask))
    assert not torch.equal(blended, plain)
    assert torch.equal(parts["output"], plain)  # what the trainer sees is never blended
    with pytest.raises(InputError, match="blend must be one of poisson, none"):
        model(image, mask, blend="seamless")
    assert BLENDS == ("poisson", "none")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("blend")
    data = root / "data"
    data.mkdir()
    for i, im in enumerate(_smooth(3, size=64)):
        Image.fromarray((im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(data / f"{i}.png")
    generate_binned_masks(root / "masks", 64, 1, 0, "0.3-0.4")
    return {"weights": save_tiny_apfi(root / "apfi.safetensors"), "data": data, "masks": root / "masks", "root": root}


def test_evaluate_blends_on_request_and_says_so(setup):
    args = (setup["weights"], setup["data"], setup["masks"])
    plain = evaluate(*args, device="cpu", precision="fp32", grid_count=0)
    blended = evaluate(*args, device="cpu", precision="fp32", grid_count=0, blend="poisson")
    assert plain["blend"] == "none" and blended["blend"] == "poisson"
    assert plain["bins"]["0.3-0.4"]["psnr"] != blended["bins"]["0.3-0.4"]["psnr"]
    with pytest.raises(EvaluationError, match="needs a facefill generator"):
        evaluate(lambda image, mask: image, setup["data"], setup["masks"], blend="poisson")
    with pytest.raises(EvaluationError, match="blend must be one of"):
        evaluate(*args, blend="yes")
    result = CliRunner().invoke(app, [
        "evaluate", "-w", str(setup["weights"]), "-d", str(setup["data"]), "-m", str(setup["masks"]),
        "-o", str(setup["root"] / "ev"), "--blend", "poisson", "--samples", "0", "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    assert "poisson blend" in result.output
    assert "Poisson-blended" in (setup["root"] / "ev" / "metrics.md").read_text()


def test_the_inpainter_blends_by_default_and_each_call_may_choose(setup):
    inp = Inpainter.from_pretrained(setup["weights"], device="cpu")
    assert inp.blend == "poisson"
    photo = (_smooth(1, size=64)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    hole = np.zeros((64, 64), np.uint8)
    hole[16:40, 20:44] = 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InpaintWarning)
        blended, info = inp(photo, hole, aligned=True, feather=0, return_info=True)
        plain = inp(photo, hole, aligned=True, feather=0, blend="none")
        unblended = Inpainter.from_pretrained(setup["weights"], device="cpu", blend="none")(
            photo, hole, aligned=True, feather=0
        )
    assert info[0].blend == "poisson" and inp.last_info is not None
    assert np.array_equal(plain, unblended) and not np.array_equal(blended, plain)
    known = hole == 0
    assert np.array_equal(blended[known], photo[known]) and np.array_equal(plain[known], photo[known])
    # The smooth photo's colours continue into the hole: closer than the plain composite.
    err = lambda out: np.abs(out.astype(float) - photo)[~known].mean()  # noqa: E731
    assert err(blended) < err(plain)
    with pytest.raises(InputError, match="blend must be one of"):
        inp(photo, hole, aligned=True, blend="soft")
    with pytest.raises(InputError, match="blend must be one of"):
        Inpainter.from_pretrained(setup["weights"], device="cpu", blend="soft")
