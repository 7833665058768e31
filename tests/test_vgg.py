from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from torch.testing import assert_close

from facefill.errors import FacefillError, InputError
from facefill.vgg import (
    CAFFE_SCALE,
    ENV_VAR,
    TAPS,
    TORCHVISION_FILE,
    VGG16Features,
    VGGWeightsError,
    VGGWeightsNotFound,
    load_vgg16_weights,
    resolve_vgg16_weights,
    save_vgg16_safetensors,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"  # ../shared beside the repo root
SHARED_VGG = SHARED / "weights" / "vgg16_imagenet_caffe.safetensors"
SHARED_FACE = SHARED / "data" / "faces128" / "nba_0001.png"
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)
FEATURE_KEYS = {f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")}


class NotATensor:
    """A picklable object that torch.load(weights_only=True) must refuse."""


@pytest.fixture(scope="module")
def tv_vgg():
    return VGG16Features.random(seed=0)


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    """No environment variable and an empty torch hub directory."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def torchvision_state(seed: int = 1) -> dict[str, torch.Tensor]:
    """A random state dict in the layout of torchvision's vgg16-397923af.pth."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    cin = 3
    widths = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
    for i, cout in zip((*CONV_INDICES, 24, 26, 28), widths):
        shape = (cout, cin, 3, 3) if i < 24 else (4, 4, 3, 3)  # conv5 kept tiny: it is dropped
        state[f"features.{i}.weight"] = torch.randn(shape, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.randn(shape[0], generator=g) * 0.1
        cin = cout
    for i in (0, 3, 6):  # classifier (tiny stand-ins; real ones are 25088x4096 ...)
        state[f"classifier.{i}.weight"] = torch.randn(8, 8, generator=g)
        state[f"classifier.{i}.bias"] = torch.randn(8, generator=g)
    return state


def test_layout_matches_torchvision_features(tv_vgg):
    assert set(tv_vgg.state_dict()) == FEATURE_KEYS
    layers = list(tv_vgg.features)
    assert len(layers) == 23
    assert [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)] == list(CONV_INDICES)
    assert [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)] == [4, 9, 16]
    assert TAPS == {
        "relu1_2": 4, "pool1": 5, "relu2_2": 9, "pool2": 10, "relu3_3": 16, "pool3": 17, "relu4_3": 23
    }


def test_taps_are_torchvision_slices_with_expected_shapes(tv_vgg):
    x = torch.rand(2, 3, 16, 24)
    taps = tv_vgg(x, TAPS)
    shapes = {
        "relu1_2": (2, 64, 16, 24), "pool1": (2, 64, 8, 12), "relu2_2": (2, 128, 8, 12),
        "pool2": (2, 128, 4, 6), "relu3_3": (2, 256, 4, 6), "pool3": (2, 256, 2, 3),
        "relu4_3": (2, 512, 2, 3),
    }
    assert list(taps) == list(TAPS)
    pre = tv_vgg.preprocess(x)
    for name, end in TAPS.items():
        assert tuple(taps[name].shape) == shapes[name]
        assert_close(taps[name], tv_vgg.features[:end](pre.clone()))
    assert list(tv_vgg(x, "pool2")) == ["pool2"]


def test_runs_only_as_deep_as_needed(tv_vgg):
    called = []
    hooks = [
        m.register_forward_hook(lambda m, i, o, k=k: called.append(k))
        for k, m in enumerate(tv_vgg.features)
    ]
    try:
        tv_vgg(torch.rand(1, 3, 16, 16), ("relu1_2", "pool1"))
    finally:
        for h in hooks:
            h.remove()
    assert called == [0, 1, 2, 3, 4]


def test_frozen_eval_but_differentiable_in_input(tv_vgg):
    assert not any(p.requires_grad for p in tv_vgg.parameters())
    tv_vgg.train()
    assert not tv_vgg.training
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    tv_vgg(x, "relu2_2")["relu2_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in tv_vgg.parameters())


def test_bad_arguments_raise_input_error(tv_vgg):
    with pytest.raises(InputError, match="layers"):
        tv_vgg(torch.rand(1, 3, 8, 8), ("relu5_3",))
    with pytest.raises(InputError, match="B, 3, H, W"):
        tv_vgg(torch.rand(1, 4, 8, 8))
    with pytest.raises(InputError, match="preprocessing"):
        VGG16Features.random(preprocessing="bgr")


def test_torchvision_preprocessing_by_hand(tv_vgg):
    x = torch.rand(2, 3, 5, 4)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert_close(tv_vgg.preprocess(x), (x - mean) / std)


def test_caffe_preprocessing_by_hand():
    vgg = VGG16Features.random(preprocessing="caffe")
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0  # pure red RGB -> BGR puts it in channel 2
    out = vgg.preprocess(red)
    assert_close(out[0, :, 0, 0], torch.tensor([-103.939, -116.779, 255.0 - 123.68]))
    x = torch.rand(2, 3, 5, 4)
    manual = torch.stack([x[:, 2], x[:, 1], x[:, 0]], 1) * 255.0
    manual = manual - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    assert_close(vgg.preprocess(x), manual, rtol=1e-5, atol=1e-4)


def test_raw_input_convention_feeds_the_image_as_if_normalised(tv_vgg):
    x = torch.rand(2, 3, 8, 8)
    raw = VGG16Features.random(preprocessing="torchvision").set_input_convention("raw")
    assert torch.equal(raw.preprocess(x), x)
    caffe = VGG16Features.random(preprocessing="caffe").set_input_convention("raw")
    # caffe's network sees 255 * (x * std + mean) - caffe mean, in BGR: about 57.6 * x.
    expect = (x * torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)).flip(1) * 255
    assert (caffe.preprocess(x) - expect).abs().max() < 0.7
    with pytest.raises(InputError, match="vgg input must be one of"):
        raw.set_input_convention("bgr")


def test_raw_input_makes_the_vgg_terms_smaller_on_a_face():
    from facefill.losses import PerceptualLoss, StyleLoss

    x = shared_face_image()
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    vgg = VGG16Features.from_pretrained(SHARED_VGG)
    terms = {}
    for convention in ("imagenet", "raw"):
        vgg.set_input_convention(convention)
        terms[convention] = (PerceptualLoss(vgg, resize=None, weight=1)(y, x), StyleLoss(vgg, resize=None, weight=1)(y, x))
    perceptual = terms["imagenet"][0] / terms["raw"][0]
    style = terms["imagenet"][1] / terms["raw"][1]
    # Measured: about 15x for both (features scale with the input, both terms are quadratic in them).
    assert 6 < perceptual < 40 and 6 < style < 40, (perceptual, style)


def test_calibration_divides_every_tap_by_the_constant():
    assert CAFFE_SCALE == pytest.approx(255 * (0.229 + 0.224 + 0.225) / 3)
    assert CAFFE_SCALE == pytest.approx(57.63)
    raw = VGG16Features.random(seed=3, preprocessing="caffe", calibrate=False)
    cal = VGG16Features.random(seed=3, preprocessing="caffe")
    assert raw.scale == 1.0 and cal.scale == CAFFE_SCALE
    x = torch.rand(2, 3, 24, 24)
    raw_taps, cal_taps = raw(x, TAPS), cal(x, TAPS)
    for name in TAPS:
        expected = raw_taps[name] / CAFFE_SCALE
        assert expected.abs().max() > 0
        assert_close(cal_taps[name], expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())
    # torchvision weights are already on the reference scale.
    assert VGG16Features.random(seed=3).scale == 1.0


def test_torchvision_pth_round_trip_through_the_hub_cache(no_weights):
    state = torchvision_state()
    (no_weights / "checkpoints").mkdir(parents=True)
    torch.save(state, no_weights / "checkpoints" / TORCHVISION_FILE)
    assert resolve_vgg16_weights() == no_weights / "checkpoints" / TORCHVISION_FILE
    vgg = VGG16Features.from_pretrained()
    assert vgg.preprocessing == "torchvision" and vgg.scale == 1.0
    loaded = vgg.state_dict()
    assert set(loaded) == FEATURE_KEYS  # classifier and conv5 dropped
    for key in FEATURE_KEYS:
        assert torch.equal(loaded[key], state[key])


def test_features_only_state_dict_without_prefix_loads(tmp_path):
    state = {
        k.removeprefix("features."): v
        for k, v in torchvision_state().items()
        if k.startswith("features.")
    }
    torch.save(state, tmp_path / "features.pth")
    loaded, preprocessing = load_vgg16_weights(tmp_path / "features.pth")
    assert preprocessing == "torchvision" and set(loaded) == FEATURE_KEYS


def test_pth_with_arbitrary_objects_is_refused(tmp_path):
    state = torchvision_state()
    state["extra"] = NotATensor()
    torch.save(state, tmp_path / "evil.pth")
    with pytest.raises(VGGWeightsError, match="pickled objects other than tensors") as refused:
        load_vgg16_weights(tmp_path / "evil.pth")
    assert "weights_only" not in str(refused.value) and "\n" not in str(refused.value)  # no advice to load unsafely


def test_safetensors_round_trip_with_metadata_via_env(monkeypatch, no_weights, tmp_path):
    state = torchvision_state()
    path = save_vgg16_safetensors(state, tmp_path / "v.safetensors", "caffe")
    monkeypatch.setenv(ENV_VAR, str(path))
    assert resolve_vgg16_weights() == path
    vgg = VGG16Features.from_pretrained(calibrate=False)
    assert vgg.preprocessing == "caffe"
    for key, t in vgg.state_dict().items():
        assert torch.equal(t, state[key])
    cal = VGG16Features.from_pretrained()
    calibrated = cal.state_dict()
    assert torch.equal(calibrated["features.0.weight"], state["features.0.weight"] / CAFFE_SCALE)
    assert torch.equal(calibrated["features.2.weight"], state["features.2.weight"])
    assert torch.equal(calibrated["features.21.bias"], state["features.21.bias"] / CAFFE_SCALE)
    # An explicit path wins over the environment.
    other = save_vgg16_safetensors(state, tmp_path / "w.safetensors", "torchvision")
    assert VGG16Features.from_pretrained(other).preprocessing == "torchvision"


def test_safetensors_without_declared_convention_is_refused(tmp_path):
    state = {k: v for k, v in torchvision_state().items() if k in FEATURE_KEYS}
    save_file(state, tmp_path / "plain.safetensors")
    with pytest.raises(VGGWeightsError, match="preprocessing"):
        load_vgg16_weights(tmp_path / "plain.safetensors")
    save_file(state, tmp_path / "odd.safetensors", metadata={"preprocessing": "bgr255"})
    with pytest.raises(VGGWeightsError, match="bgr255"):
        load_vgg16_weights(tmp_path / "odd.safetensors")


def test_wrong_layout_is_refused(tmp_path):
    state = torchvision_state()
    del state["features.19.weight"]
    torch.save(state, tmp_path / "a.pth")
    with pytest.raises(VGGWeightsError, match="features.19.weight"):
        load_vgg16_weights(tmp_path / "a.pth")
    state = torchvision_state()
    state["features.5.weight"] = torch.zeros(128, 32, 3, 3)
    torch.save(state, tmp_path / "b.pth")
    with pytest.raises(VGGWeightsError, match="features.5.weight"):
        load_vgg16_weights(tmp_path / "b.pth")
    (tmp_path / "c.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(VGGWeightsError):
        load_vgg16_weights(tmp_path / "c.safetensors")


def test_missing_weights_raise_a_one_line_message_naming_vgg16(no_weights):
    with pytest.raises(VGGWeightsNotFound) as info:
        VGG16Features.from_pretrained()
    msg = str(info.value)
    assert isinstance(info.value, FacefillError)
    assert "\n" not in msg
    for part in ("VGG16", ENV_VAR, TORCHVISION_FILE, str(no_weights / "checkpoints")):
        assert part in msg


def test_named_but_missing_files_raise_without_falling_through(monkeypatch, no_weights, tmp_path):
    (no_weights / "checkpoints").mkdir(parents=True)
    torch.save(torchvision_state(), no_weights / "checkpoints" / TORCHVISION_FILE)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone.safetensors"))
    with pytest.raises(VGGWeightsNotFound, match=ENV_VAR):
        resolve_vgg16_weights()
    with pytest.raises(VGGWeightsNotFound, match="nowhere.pth"):
        resolve_vgg16_weights(tmp_path / "nowhere.pth")


def shared_face_image() -> torch.Tensor:
    """A real face crop from shared/data if present, else a smooth synthetic image; 224x224."""
    try:
        import numpy as np
        from PIL import Image

        img = torch.from_numpy(np.asarray(Image.open(SHARED_FACE).convert("RGB")).copy())
        x = img.permute(2, 0, 1)[None].float() / 255.0
    except (ImportError, OSError):
        yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
        x = torch.stack([0.6 + 0.3 * xx * yy, 0.4 + 0.2 * torch.sin(6 * xx), 0.3 + 0.2 * yy])[None]
        x = (x + 0.05 * torch.rand(x.shape)).clamp(0, 1)
    return torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)


@pytest.mark.skipif(not SHARED_VGG.is_file(), reason="shared VGG16 weights not present")
def test_shared_caffe_file_is_recognised_and_calibrated(tmp_path):
    vgg = VGG16Features.from_pretrained(SHARED_VGG)
    assert vgg.preprocessing == "caffe" and vgg.scale == CAFFE_SCALE
    raw = VGG16Features.from_pretrained(SHARED_VGG, calibrate=False)
    x = shared_face_image()
    tap = vgg(x, "relu3_3")["relu3_3"]
    raw_tap = raw(x, "relu3_3")["relu3_3"]
    assert torch.isfinite(tap).all()
    # On torchvision's scale VGG16 relu3_3 on a natural image averages O(1) (about 2.5 on a
    # face crop here); uncalibrated caffe activations are ~57x that.
    assert 0.5 < tap.mean().item() < 10.0
    assert raw_tap.mean().item() > 25.0
    assert raw_tap.mean().item() / tap.mean().item() == pytest.approx(CAFFE_SCALE, rel=1e-3)
    # The same weights fed torchvision's normalised input exactly (conv1_1's input channels
    # flipped to take RGB, biases / s) agree with the calibration up to the 1.3 % spread of
    # 255 * std over the channels.
    state, _ = load_vgg16_weights(SHARED_VGG)
    state = {k: v / CAFFE_SCALE if k.endswith(".bias") else v for k, v in state.items()}
    state["features.0.weight"] = state["features.0.weight"].flip(1)
    as_torchvision = VGG16Features(state, "torchvision", calibrate=False)
    reference = as_torchvision(x, "relu3_3")["relu3_3"]
    assert tap.mean().item() == pytest.approx(reference.mean().item(), rel=0.02)
    # The content fingerprint also holds after a re-save, and conflicts are caught.
    raw_state = load_file(SHARED_VGG)
    save_file(raw_state, tmp_path / "plain.safetensors")
    assert load_vgg16_weights(tmp_path / "plain.safetensors")[1] == "caffe"
    save_vgg16_safetensors(raw_state, tmp_path / "wrong.safetensors", "torchvision")
    with pytest.raises(VGGWeightsError, match="caffe"):
        load_vgg16_weights(tmp_path / "wrong.safetensors")
