from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from facefill.errors import InputError
from facefill.losses import (
    AdversarialLoss,
    GeneratorLoss,
    GradientLoss,
    L1Loss,
    PerceptualLoss,
    SSIMLoss,
    StyleLoss,
    gram_difference,
    gram_matrix,
)
from facefill.vgg import ENV_VAR, VGG16Features, VGGWeightsNotFound, save_vgg16_safetensors

STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3")


@pytest.fixture(scope="module")
def vgg():
    return VGG16Features.random(seed=0)


@pytest.fixture
def images():
    x = torch.rand(2, 3, 16, 16)
    return x, (x + 0.1 * torch.randn_like(x)).clamp(0, 1)


def test_gram_of_a_constant_map():
    # Every entry is sum_hw v*v / (C H W) = v^2 / C.
    g = gram_matrix(torch.full((2, 4, 5, 6), 3.0))
    assert g.shape == (2, 4, 4)
    assert_close(g, torch.full((2, 4, 4), 9.0 / 4))


def test_gram_small_example_by_hand():
    feat = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2, H=1, W=2
    # F F^T = [[1+4, 3+8], [3+8, 9+16]], divided by C*H*W = 4.
    assert_close(gram_matrix(feat), torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))


def test_gram_is_float32_under_bf16_autocast():
    feat = torch.rand(1, 8, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram_matrix(feat.bfloat16())
    assert g.dtype == torch.float32
    assert_close(g, gram_matrix(feat.bfloat16().float()))


def _plain_gram(feat):
    b, c, h, w = feat.shape
    flat = feat.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def test_gram_gradient_is_exact():
    feat = torch.rand(2, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (feat,))
    cl = feat.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert torch.autograd.gradcheck(gram_matrix, (cl,))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_matches_autograd_of_the_formula(layout):
    # The hand-written backward (one bmm, G symmetric) against autograd of F F^T / (C H W),
    # with a non-symmetric upstream gradient, in both memory layouts.
    torch.manual_seed(0)
    feat = torch.randn(2, 6, 5, 7).contiguous(memory_format=layout).requires_grad_(True)
    weight = torch.randn(2, 6, 6)
    ours = gram_matrix(feat)
    (grad,) = torch.autograd.grad((ours * weight).sum(), feat)
    plain = feat.detach().contiguous().requires_grad_(True)
    ref = _plain_gram(plain)
    (ref_grad,) = torch.autograd.grad((ref * weight).sum(), plain)
    assert_close(ours, ref.detach(), rtol=1e-5, atol=1e-6)
    assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)
    assert grad.is_contiguous(memory_format=layout)  # the gradient keeps the features' layout


def test_gram_gradient_of_bf16_features_is_bf16_in_their_layout():
    feat = torch.rand(2, 8, 4, 4).bfloat16().contiguous(memory_format=torch.channels_last)
    feat.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram_matrix(feat)
    (grad,) = torch.autograd.grad(g.sum(), feat)
    assert g.dtype == torch.float32
    assert grad.dtype == torch.bfloat16 and grad.is_contiguous(memory_format=torch.channels_last)
    # d(sum G)/dF = 2 * (sum over channels of F) / (C H W), the same for every channel.
    expect = 2 * feat.detach().float().sum(1, keepdim=True).expand_as(feat) / (8 * 16)
    assert_close(grad.float(), expect, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_difference_is_the_difference_of_grams(layout):
    torch.manual_seed(0)
    a = torch.randn(2, 5, 4, 3, dtype=torch.float64).contiguous(memory_format=layout)
    b = torch.randn(2, 5, 4, 3, dtype=torch.float64)  # the other layout: made to match
    diff = gram_difference(a, b)
    assert diff.dtype == torch.float64 and diff.shape == (2, 5, 5)
    assert_close(diff, _plain_gram(a) - _plain_gram(b), rtol=1e-12, atol=1e-14)
    assert_close(gram_difference(a, a), torch.zeros(2, 5, 5, dtype=torch.float64))


def test_gram_difference_by_hand():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).view(1, 2, 1, 2)
    # G(a) = [[5, 11], [11, 25]] / 4, G(b) = [[1, 0], [0, 4]] / 4.
    assert_close(gram_difference(a, b), torch.tensor([[[1.0, 2.75], [2.75, 5.25]]]))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_difference_gradient_is_exact(layout):
    a = torch.rand(2, 4, 3, 5, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_(True)
    b = torch.rand(2, 4, 3, 5, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_(True)
    assert torch.autograd.gradcheck(gram_difference, (a, b))
    # A target without gradient (the trainers' case) gets none and the prediction's is unchanged.
    fixed = b.detach()
    (ga,) = torch.autograd.grad(gram_difference(a, fixed).sum(), a)
    (ref,) = torch.autograd.grad(_plain_gram(a).sum(), a)
    assert_close(ga, ref)


def test_gram_difference_of_bf16_features_keeps_the_small_difference():
    # Two bf16 maps that differ by ~1 %: the Grams differ by ~1 % of their size, so bf16 Grams
    # would lose the difference; gram_difference rounds relative to the difference itself.
    torch.manual_seed(0)
    base = torch.rand(2, 16, 32, 32)
    a = base.bfloat16().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    b = (base * 1.01 + 0.005 * torch.randn_like(base)).bfloat16().contiguous(memory_format=torch.channels_last)
    exact = _plain_gram(a.detach().double()) - _plain_gram(b.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        diff = gram_difference(a, b)
    assert diff.dtype == torch.float32
    rel = (diff.double() - exact).abs().max() / exact.abs().max()
    assert rel < 4e-3, rel  # bf16's unit roundoff is 2**-9 = 2e-3
    naive = _plain_gram(a.detach()).bfloat16().double() - _plain_gram(b).bfloat16().double()
    assert (naive - exact).abs().max() / exact.abs().max() > 10 * rel  # what bf16 Grams would give
    (grad,) = torch.autograd.grad(diff.abs().mean(), a)
    assert grad.dtype == torch.bfloat16 and grad.is_contiguous(memory_format=torch.channels_last)
    a64 = a.detach().double().requires_grad_(True)
    (ref,) = torch.autograd.grad((_plain_gram(a64) - _plain_gram(b.double())).abs().mean(), a64)
    assert torch.nn.functional.cosine_similarity(grad.double().flatten(), ref.flatten(), dim=0) > 0.999


def test_gram_difference_refuses_mismatched_shapes():
    with pytest.raises(InputError, match="one shape"):
        gram_difference(torch.rand(1, 4, 5, 5), torch.rand(1, 4, 5, 6))


def test_l1_loss():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert L1Loss().distance(a, b).item() == pytest.approx(0.5)
    assert L1Loss(weight=3.0)(a, b).item() == pytest.approx(1.5)
    with pytest.raises(InputError, match="same shape"):
        L1Loss()(a, b[..., :1])


def _ssim_by_hand(a, b):
    """SSIM from its definition: 11x11 Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2,
    one window per pixel on the image reflect-padded by 5 (torchmetrics' convention, hence
    facefill.metrics.ssim's), averaged over channels, pixels and images."""
    g = torch.exp(-((torch.arange(11.0) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)
    blur = lambda t: F.conv2d(t, w, groups=3)  # noqa: E731
    a, b = F.pad(a, (5,) * 4, mode="reflect"), F.pad(b, (5,) * 4, mode="reflect")
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean()


def test_ssim_loss_is_one_minus_ssim_and_zero_on_identical_images():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 24, 24)
    b = (a + 0.2 * torch.randn_like(a)).clamp(0, 1)
    assert SSIMLoss().distance(a, a).item() == pytest.approx(0.0, abs=1e-6)
    expected = 1 - _ssim_by_hand(a, b)
    assert SSIMLoss().distance(a, b).item() == pytest.approx(expected.item(), abs=1e-5)
    assert SSIMLoss(weight=2.0)(a, b).item() == pytest.approx(2 * expected.item(), abs=2e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_bf16 = SSIMLoss().distance(a.bfloat16(), b)
    assert under_bf16.dtype == torch.float32
    assert under_bf16.item() == pytest.approx(expected.item(), abs=0.02)  # a's bf16 rounding only
    # Its gradient raises SSIM: one small step down the loss makes b more like a.
    x = b.clone().requires_grad_(True)
    SSIMLoss().distance(x, a).backward()
    with torch.no_grad():
        assert SSIMLoss().distance(x - 0.5 * x.grad, a) < SSIMLoss().distance(b, a)


def test_perceptual_and_style_are_zero_on_identical_images(vgg, images):
    x, _ = images
    for resize in (None, 24):
        assert PerceptualLoss(vgg, resize=resize)(x, x.clone()).item() == 0.0
        assert StyleLoss(vgg, resize=resize)(x, x.clone()).item() == 0.0


def test_perceptual_grows_with_the_perturbation(vgg):
    x = torch.rand(1, 3, 32, 32)
    noise = torch.randn_like(x)
    loss = PerceptualLoss(vgg, resize=None, weight=1.0)
    values = [loss(x, x + eps * noise).item() for eps in (0.01, 0.03, 0.1)]
    assert 0 < values[0] < values[1] < values[2]


def test_perceptual_is_mse_of_resized_taps(vgg, images):
    x, y = images
    loss = PerceptualLoss(vgg, layers=("relu2_2", "relu3_3"), resize=24, weight=0.05)
    xr = F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False)
    yr = F.interpolate(y, size=(24, 24), mode="bilinear", align_corners=False)
    fx, fy = vgg(xr, ("relu2_2", "relu3_3")), vgg(yr, ("relu2_2", "relu3_3"))
    expected = sum(((fx[n] - fy[n]) ** 2).sum() / fx[n].numel() for n in fx)
    assert_close(loss(x, y), 0.05 * expected)


@pytest.mark.parametrize("criterion", ["l1", "mse"])
def test_style_is_mean_gram_difference(vgg, images, criterion):
    x, y = images
    loss = StyleLoss(vgg, resize=None, weight=120.0, criterion=criterion)
    fx, fy = vgg(x, STYLE_LAYERS), vgg(y, STYLE_LAYERS)
    expected = 0.0
    for n in STYLE_LAYERS:
        b, c, h, w = fx[n].shape
        gx = torch.einsum("bchw,bdhw->bcd", fx[n], fx[n]) / (c * h * w)
        gy = torch.einsum("bchw,bdhw->bcd", fy[n], fy[n]) / (c * h * w)
        d = gx - gy
        expected = expected + (d.abs().mean() if criterion == "l1" else (d**2).mean())
    value = loss(x, y)
    assert value > 0
    assert_close(value, 120.0 * expected, rtol=1e-4, atol=1e-7)


def test_hinge_signs():
    adv = AdversarialLoss("hinge", weight=0.05)
    # Confident, correct critic: both margins satisfied.
    real, fake = torch.full((2, 1, 4, 4), 5.0), torch.full((2, 1, 4, 4), -5.0)
    assert adv.discriminator_loss(real, fake).item() == 0.0
    assert adv.discriminator_loss(torch.zeros(1), torch.zeros(1)).item() == pytest.approx(2.0)
    d = adv.discriminator_loss(torch.tensor([-1.0]), torch.tensor([2.0]))  # (1+1) + (1+2)
    assert d.item() == pytest.approx(5.0)
    g = [adv.generator_loss(torch.full((1, 1, 3, 3), s)).item() for s in (-2.0, 0.0, 3.0)]
    assert g == [2.0, 0.0, -3.0]
    assert adv(torch.full((1, 1, 3, 3), 2.0)).item() == pytest.approx(-0.1)


def test_wgan_values():
    adv = AdversarialLoss("wgan", weight=1.0)
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    assert adv.discriminator_loss(real, fake).item() == pytest.approx(-0.5 - 2.0)
    assert adv.generator_loss(fake).item() == pytest.approx(0.5)
    with pytest.raises(InputError, match="kind"):
        AdversarialLoss("lsgan")


def test_generator_loss_total_and_unweighted_logs(vgg, images):
    x, y = images
    pred = x.clone().requires_grad_(True)
    scores = torch.randn(2, 1, 4, 4)
    loss = GeneratorLoss(vgg, l1=1.0, perceptual=0.05, style=120.0, adv=0.05, resize=24)
    total, logs = loss(pred, y, scores)
    assert set(logs) == {"l1", "perceptual", "style", "adv"}
    assert_close(logs["l1"], (x - y).abs().mean())
    assert_close(logs["perceptual"], PerceptualLoss(vgg, resize=24, weight=1.0)(x, y))
    assert_close(logs["style"], StyleLoss(vgg, resize=24, weight=1.0)(x, y), rtol=1e-4, atol=1e-7)
    assert_close(logs["adv"], -scores.mean())
    expected = logs["l1"] + 0.05 * logs["perceptual"] + 120 * logs["style"] + 0.05 * logs["adv"]
    assert_close(total, expected)
    assert all(not v.requires_grad for v in logs.values())
    total.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_generator_loss_one_vgg_pass_per_image(vgg, images):
    x, y = images
    calls = []
    hook = vgg.register_forward_hook(lambda m, i, o: calls.append(sorted(o)))
    try:
        GeneratorLoss(vgg, adv=0.0, resize=None)(x, y)
    finally:
        hook.remove()
    assert calls == [sorted(STYLE_LAYERS)] * 2  # pred and target, each once, union of layers


def test_generator_loss_weight_zero_switches_terms_off(vgg, images):
    x, y = images
    total, logs = GeneratorLoss(vgg, perceptual=0.0, style=0.0, adv=0.0)(x, y)
    assert set(logs) == {"l1"}
    assert_close(total, logs["l1"])
    loss = GeneratorLoss(vgg, l1=0.0, style=0.0, adv=0.0, resize=None)
    assert loss.style is None
    assert set(loss(x, y)[1]) == {"perceptual"}
    with pytest.raises(InputError, match="fake_scores"):
        GeneratorLoss(vgg, perceptual=0.0, style=0.0)(x, y)


@pytest.mark.parametrize("term, loss_class", [("ssim", SSIMLoss), ("gradient", GradientLoss)])
def test_generator_loss_optional_terms_are_off_by_default_and_add_when_set(vgg, term, loss_class):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 24, 24)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    assert term not in GeneratorLoss(vgg, perceptual=0.0, style=0.0, adv=0.0)(x, y)[1]
    total, logs = GeneratorLoss(vgg, perceptual=0.0, style=0.0, adv=0.0, **{term: 0.5})(x, y)
    assert set(logs) == {"l1", term}
    assert_close(logs[term], loss_class().distance(x, y))
    assert_close(total, logs["l1"] + 0.5 * logs[term])
    built = GeneratorLoss.from_config({term: 0.25, "perceptual": 0.0, "style": 0.0}, vgg)
    assert getattr(built, term).weight == 0.25
    with pytest.raises(InputError, match=f"{term} must be >= 0"):
        GeneratorLoss(vgg, **{term: -1.0})


def test_gradient_loss_by_hand():
    # Two rows 0, 1, 3 against zeros: |dx| = 1, 2 in each row against 0, 0; |dy| = 0 against 0.
    pred = torch.tensor([0.0, 1.0, 3.0]).expand(1, 1, 2, 3)
    flat = torch.zeros(1, 1, 2, 3)
    loss = GradientLoss()
    assert loss.distance(pred, flat).item() == pytest.approx(1.5)  # mean(1, 2) + 0
    assert loss.distance(pred.transpose(2, 3), flat.transpose(2, 3)).item() == pytest.approx(1.5)
    assert loss.distance(flat, flat).item() == 0.0
    # Edge strength, not sign: the ramp turned upside down, or an image plus a constant, costs nothing.
    assert loss.distance(3 - pred, pred).item() == 0.0
    x = torch.rand(2, 3, 8, 8)
    assert loss.distance(x + 0.25, x).item() == pytest.approx(0.0, abs=1e-6)
    # A blurred image loses edge strength and pays for it.
    blurred = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    assert loss.distance(blurred, x) > 0.05
    assert GradientLoss(2.0)(blurred, x) == pytest.approx(2 * loss.distance(blurred, x).item())


def test_generator_loss_from_config(vgg, images):
    @dataclass
    class LossConfig:
        l1: float = 2.0
        perceptual: float = 0.0
        style: float = 0.0
        adv: float = 0.1
        adv_kind: str = "wgan"

    loss = GeneratorLoss.from_config(LossConfig(), vgg)
    assert loss.l1.weight == 2.0 and loss.adv.kind == "wgan" and loss.vgg is None
    x, y = images
    total, logs = loss(x, y, torch.ones(2, 1, 3, 3))
    assert_close(total, 2.0 * logs["l1"] - 0.1)
    assert GeneratorLoss.from_config({"style": 60.0, "resize": None}, vgg).style.weight == 60.0
    with pytest.raises(InputError, match="lambda_style"):
        GeneratorLoss.from_config({"lambda_style": 1.0}, vgg)


def test_generator_loss_from_config_loads_the_named_vgg_file(tmp_path):
    path = tmp_path / "vgg.safetensors"
    save_vgg16_safetensors(VGG16Features.random(seed=5).state_dict(), path, "torchvision")
    loss = GeneratorLoss.from_config({"vgg_weights": str(path), "adv": 0.0})
    assert loss.vgg.source == str(path)
    expected = VGG16Features.random(seed=5).state_dict()["features.0.bias"]
    assert torch.equal(loss.vgg.state_dict()["features.0.bias"], expected)
    with pytest.warns(UserWarning, match="random"):
        assert GeneratorLoss.from_config({"vgg_weights": "random"}).vgg.source == "random(seed=0)"
    with pytest.raises(VGGWeightsNotFound):
        GeneratorLoss.from_config({"vgg_weights": str(tmp_path / "missing.safetensors")})


def test_generator_loss_never_falls_back_to_random_vgg(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(VGGWeightsNotFound, match="VGG16"):
        GeneratorLoss()
    GeneratorLoss(perceptual=0.0, style=0.0)  # no VGG term, no VGG needed


def test_losses_under_bf16_autocast_are_float32_and_close(vgg, images):
    x, y = images
    loss = GeneratorLoss(vgg, resize=None)
    scores = torch.randn(2, 1, 4, 4)
    ref_total, ref_logs = loss(x, y, scores)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, logs = loss(x, y, scores.bfloat16())
    assert total.dtype == torch.float32 and torch.isfinite(total)
    for name, value in logs.items():
        assert value.dtype == torch.float32
        assert_close(value, ref_logs[name], rtol=0.1, atol=1e-3)
