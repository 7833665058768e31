import math

import pytest
import torch

import facefill
from facefill import InputError, create_model, list_models
from facefill.models import InpaintingGenerator, PatchGAN, model_entry

from helpers import square_mask

GENERATORS = list_models("generator")
# (model, preset, size): the paper presets are cheap enough at 64 px.
CASES = [(n, p, 64) for n in GENERATORS for p in ("small", "paper")]


def _random_mask(b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(b, 1, h, w)
    for i in range(b):
        top, left = torch.randint(0, h // 2, (2,), generator=g).tolist()
        m[i, :, top : top + h // 3, left : left + w // 3] = 1.0
    return m


def test_registry_lists_the_models_with_both_presets():
    assert {"apfi", "rfr"} <= set(GENERATORS)
    assert "patchgan" in list_models("discriminator")
    for name in list_models():
        assert {"paper", "small"} <= set(facefill.list_presets(name))


def test_create_model_records_config_and_takes_overrides():
    g = create_model("apfi", "small", cycles=3)
    assert g.cycles == 3
    assert g.config == {"name": "apfi", "preset": "small", "kwargs": {**g.config["kwargs"], "cycles": 3}}
    with pytest.raises(ValueError, match="unknown model 'nope'.*apfi"):
        create_model("nope")
    with pytest.raises(ValueError, match="unknown preset 'huge'.*paper"):
        create_model("apfi", "huge")
    with pytest.raises(ValueError, match="unknown argument.*depth.*valid: width"):
        create_model("apfi", depth=3)


@pytest.mark.parametrize("name,preset,size", CASES)
def test_forward_backward_shapes_and_finite(name, preset, size):
    g = create_model(name, preset)
    assert isinstance(g, InpaintingGenerator)
    size = max(size, g.stride)  # e.g. pconv's paper preset needs multiples of 128
    image = torch.rand(2, 3, size, size + g.stride)
    mask = _random_mask(2, size, size + g.stride)
    out = g(image, mask)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert torch.isfinite(out).all()
    if not model_entry(name).trainable:  # classical methods: nothing to differentiate
        assert not list(g.parameters()) and not out.requires_grad
        return
    (out * mask).mean().backward()
    grads = [p.grad for p in g.parameters() if p.requires_grad]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(gr.abs().sum() for gr in grads) > 0


@pytest.mark.parametrize("name", GENERATORS)
def test_size_must_be_multiple_of_stride(name):
    g = create_model(name, "small")
    if g.stride == 1:
        pytest.skip(f"{name} takes any size")
    h = g.stride * 3 + g.stride // 2
    with pytest.raises(ValueError, match=f"multiples of {g.stride}"):
        g(torch.rand(1, 3, h, 64), torch.zeros(1, 1, h, 64))


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("train", [False, True])
def test_known_pixels_exact_and_hole_content_ignored(name, train):
    g = create_model(name, "small").train(train)
    image = torch.rand(2, 3, 64, 64)
    mask = _random_mask(2, 64, 64, seed=3)
    out = g(image, mask)
    known = mask.expand_as(image) == 0
    assert torch.equal(out[known], image[known])
    poisoned = torch.where(mask.bool(), torch.rand_like(image) * 100 - 50, image)
    assert torch.equal(g(poisoned, mask), out)


@pytest.mark.parametrize("name", GENERATORS)
def test_all_known_returns_input_and_all_hole_is_finite(name):
    g = create_model(name, "small").eval()
    image = torch.rand(1, 3, 64, 64)
    assert torch.equal(g(image, torch.zeros(1, 1, 64, 64)), image)
    out = g(image, torch.ones(1, 1, 64, 64))
    assert torch.isfinite(out).all()


def test_apfi_output_is_in_unit_range():
    g = create_model("apfi", "small")
    out = g(torch.rand(1, 3, 64, 64), torch.ones(1, 1, 64, 64))
    assert 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("name", GENERATORS)
def test_eval_is_deterministic_batch_independent_and_cycles_matter(name):
    g = create_model(name, "small").eval()
    image = torch.rand(2, 3, 64, 64)
    mask = _random_mask(2, 64, 64, seed=5)
    with torch.no_grad():
        a, b = g(image, mask), g(image, mask)
        assert torch.equal(a, b)  # no KCA state survives a call
        single = g(image[1:], mask[1:])
        torch.testing.assert_close(single, a[1:], rtol=1e-4, atol=1e-5)
        if hasattr(g, "cycles"):
            assert not torch.allclose(g(image, mask, cycles=2), a)


def test_kca_blending_is_live_across_cycles():
    g = create_model("apfi", "small").eval()
    image, mask = torch.rand(1, 3, 64, 64), square_mask(64, 16, 16, 32)
    with torch.no_grad():
        a = g(image, mask)
        g.apfi.att.ratio.fill_(5.0)
        assert not torch.equal(g(image, mask), a)  # lambda only acts through the blend
        single = g(image, mask, cycles=1)  # one cycle never blends
        g.apfi.att.ratio.fill_(0.1)
        assert torch.equal(g(image, mask, cycles=1), single)


def test_apfi_inference_runs_a_batch_in_cache_sized_chunks_with_the_same_output():
    g = create_model("apfi", "small").eval()
    image, mask = torch.rand(5, 3, 64, 64), _random_mask(5, 64, 64, seed=3)
    per_image = 32 * 32 * 32 * 4  # width x (H/2) x (W/2) float32 bytes
    g.inference_chunk_bytes = 2 * per_image
    calls = []
    g.input_layer.register_forward_hook(lambda m, a, out: calls.append(len(a[0])))
    with torch.no_grad():
        chunked = g(image, mask)
        assert calls == [2, 2, 1]
        calls.clear()
        g.inference_chunk_bytes = 0
        whole = g(image, mask)
        assert calls == [5]
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
    g.inference_chunk_bytes = 2 * per_image
    calls.clear()
    g(image, mask)  # with gradients (training, a backward to come) the batch stays whole
    g.train()
    with torch.no_grad():
        g(image, mask)
    assert calls == [5, 5]


ABLATIONS = [{"kca": False}, {"gated_unet": False}, {"separable": False}, {"reasoning_dilation": 1}]


@pytest.mark.parametrize("change", ABLATIONS, ids=lambda c: next(iter(c)))
def test_apfi_ablations_change_exactly_their_part_and_keep_the_conventions(change):
    from facefill.layers import GatedConv2d, KnowledgeConsistentAttention, PartialConv2d

    base, ablated = create_model("apfi", "small"), create_model("apfi", "small", **change)
    image, mask = torch.rand(2, 3, 64, 64), _random_mask(2, 64, 64, seed=9)
    key = next(iter(change))
    kinds = {
        "kca": lambda g: sum(isinstance(m, KnowledgeConsistentAttention) for m in g.modules()),
        "gated_unet": lambda g: sum(isinstance(m, GatedConv2d) for m in g.unet.modules()),
        "separable": lambda g: sum(isinstance(m, PartialConv2d) and m.groups == 1 for m in g.apfi.modules()),
        "reasoning_dilation": lambda g: sum(m.dilation != (1, 1) for m in g.apfi.modules() if isinstance(m, torch.nn.Conv2d)),
    }
    assert (kinds[key](base), kinds[key](ablated)) == {
        "kca": (1, 0), "gated_unet": (3, 0), "separable": (0, 2), "reasoning_dilation": (1, 0),
    }[key]
    # every other part is built as in the base model: same parameter names and shapes outside the part
    part = {"kca": "apfi.att.", "gated_unet": "unet.enc.", "separable": "apfi.identify.",
            "reasoning_dilation": "apfi.bottom."}[key]
    shapes = lambda g: {n: p.shape for n, p in g.named_parameters() if not n.startswith(part)}
    assert shapes(base) == shapes(ablated)
    for train in (True, False):
        ablated.train(train)
        with torch.set_grad_enabled(train):
            out = ablated(image, mask)
        assert torch.equal(out * (1 - mask), image * (1 - mask))  # known pixels exact
        assert out.isfinite().all()
    # the hole closes at the same speed: the valid maps do not depend on the ablation
    for a, b in zip(base.valid_maps(mask), ablated.valid_maps(mask)):
        assert torch.equal(a, b)


def test_valid_region_grows_monotonically():
    g = create_model("apfi", "small")
    mask = _random_mask(3, 128, 128, seed=7)
    maps = g.valid_maps(mask, cycles=8)
    for before, after in zip(maps, maps[1:]):
        assert torch.all(after >= before)
    assert maps[-1].sum() > maps[0].sum()


@pytest.mark.parametrize("side", [24, 64, 100])
def test_hole_is_identified_after_the_predicted_number_of_cycles(side):
    g = create_model("apfi", "small")
    size = 256
    top = (size - side) // 2
    maps = g.valid_maps(square_mask(size, top, top, side), cycles=12)
    v0 = maps[0][0, 0]
    unknown_rows = (v0 == 0).any(1).nonzero().flatten()
    # Chebyshev distance from the centre of the unknown block to the known region.
    radius = math.ceil(len(unknown_rows) / 2)
    grow = 2 * (7 // 2)  # two 7x7 partial convs per cycle
    needed = math.ceil(radius / grow)
    assert maps[needed - 1].min() == 0
    assert maps[needed].min() == 1


def test_valid_maps_are_what_the_forward_pass_uses():
    g = create_model("apfi", "small").eval()
    mask = square_mask(64, 8, 8, 40)
    seen = []
    g.apfi.register_forward_hook(lambda m, a, out: seen.append(out[1]))
    g(torch.rand(1, 3, 64, 64), mask, cycles=3)
    for got, want in zip(seen, g.valid_maps(mask, cycles=3)[1:]):
        assert torch.equal(got, want)


@pytest.mark.parametrize(
    "image,mask,match",
    [
        (torch.rand(1, 4, 64, 64), torch.zeros(1, 1, 64, 64), "image must have 3 channels"),
        (torch.rand(1, 3, 64, 64), torch.zeros(1, 3, 64, 64), "mask must have 1 channel"),
        (torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 32, 64), r"mask shape \(1, 1, 32, 64\) does not match"),
        (torch.rand(2, 3, 64, 64), torch.zeros(1, 1, 64, 64), "does not match image shape"),
        (torch.rand(1, 3, 64, 64), torch.full((1, 1, 64, 64), 0.5), "mask must be binary"),
        ((torch.rand(1, 3, 64, 64) * 255).to(torch.uint8), torch.zeros(1, 1, 64, 64), "image must be a floating-point"),
        (torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64, dtype=torch.int64), "mask must be a floating-point"),
        (torch.rand(0, 3, 64, 64), torch.zeros(0, 1, 64, 64), "image is an empty batch"),
        (torch.rand(3, 64, 64), torch.zeros(1, 64, 64), "image must have 4 dimensions"),
        ("photo.png", torch.zeros(1, 1, 64, 64), "image must be a torch.Tensor"),
    ],
)
@pytest.mark.parametrize("name", GENERATORS)
def test_bad_input_is_refused_with_a_clear_message(name, image, mask, match):
    g = create_model(name, "small")
    with pytest.raises(InputError, match=match):
        g(image, mask)


def test_patchgan_returns_patch_map_and_every_conv_is_spectral():
    d = create_model("patchgan", "paper")
    scores = d(torch.rand(2, 3, 256, 256))
    assert scores.shape == (2, 1, 30, 30)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    dm = PatchGAN(width=8, use_mask=True)
    assert dm(torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)).shape == (1, 1, 6, 6)
    with pytest.raises(ValueError, match="mask is required"):
        dm(torch.rand(1, 3, 64, 64))
    small = create_model("patchgan", "small")
    small(torch.rand(1, 3, 64, 64)).mean().backward()


def test_models_run_on_any_device_without_hardcoded_cuda():
    # No model may hard-code a device: build on meta, then move nowhere.
    with torch.device("meta"):
        g = create_model("rfr", "small")
        out = g.inpaint(torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64))
    assert out.device.type == "meta"


def test_apfi_mirror_feeds_the_unet_the_mirrored_map_and_where_the_input_was_known():
    torch.manual_seed(0)
    G = create_model("apfi", "small", width=8, reasoning=(8, 16, 16), unet=(8, 16, 16), cycles=2, mirror=True).eval()
    assert G.unet.enc[0].conv.in_channels == 8 + 8 + 2
    seen = {}
    G.unet.enc[0].register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    G.merge.register_forward_hook(lambda m, args, out: seen.update(merged=out))
    image, mask = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    mask[0, :, 4:20, 2:12] = 1  # left side of image 0
    mask[1, :, 9:10, 21:30] = 1  # a thin stroke on the right of image 1
    with torch.no_grad():
        out = G(image, mask)
    x, merged = seen["x"], seen["merged"]
    torch.testing.assert_close(x[:, :8], merged, rtol=0, atol=0)
    torch.testing.assert_close(x[:, 8:16], merged.flip(-1), rtol=0, atol=0)
    known = x[:, 16:17]
    assert known[0, 0, 4, 3].item() == 0 and known[0, 0, 4, 12].item() == 1  # (H/2) inside, right of the hole
    assert known[1, 0, 4, 12].item() == 0.5  # a 2x2 block half covered by the 1-px stroke
    torch.testing.assert_close(x[:, 17:18], known.flip(-1), rtol=0, atol=0)
    assert torch.equal(out * (1 - mask), image * (1 - mask))


def test_widen_keeps_the_function_and_lets_the_new_channels_learn():
    from facefill.errors import InputError
    from facefill.models.widen import group_index, widen_into

    assert group_index((2, 2), (3, 4)).tolist() == [0, 1, 3, 4]
    tiny = {"width": 8, "reasoning": (8, 16, 16), "cycles": 2}
    for gated, kca, mirror in ((True, True, True), (False, False, False)):
        torch.manual_seed(0)
        narrow = create_model("apfi", "small", unet=(8, 16, 16), gated_unet=gated, kca=kca, **tiny)
        wide = create_model("apfi", "small", unet=(12, 24, 32), gated_unet=gated, kca=kca,
                            mirror=mirror, **{**tiny, "reasoning": (12, 24, 20)})
        for p in narrow.parameters():  # weights far from their initialisation, BN statistics too
            p.data.normal_(0, 0.3)
        for name, b in narrow.named_buffers():
            if "running" in name:
                b.data.uniform_(0.5, 1.5)
        widen_into(narrow, wide)
        image, mask = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
        mask[..., 8:24, 4:20] = 1
        for train in (False, True):
            narrow.train(train), wide.train(train)
            with torch.no_grad():
                torch.testing.assert_close(wide(image, mask), narrow(image, mask), atol=1e-5, rtol=0)
        # The zero weights that read new channels into old ones get gradients: they can grow.
        wide.train()
        wide(image, mask).square().mean().backward()
        reads_new = wide.unet.dec[0][0].weight.grad[16:32, :16]  # (in, out): new upsampled channels -> old outputs
        assert reads_new.abs().sum() > 0 and torch.all(wide.unet.dec[0][0].weight[16:32, :16] == 0)
        if mirror:  # the old channels' weights on the mirror's inputs start at zero and learn too
            old = group_index((8, 8), (12, 12))
            first = wide.unet.enc[0].conv
            assert torch.all(first.weight[old, 8:] == 0) and first.weight.grad[old, 8:].abs().sum() > 0
    with pytest.raises(InputError, match="widening only adds channels"):
        widen_into(create_model("apfi", "small", unet=(12, 24, 32), **tiny), create_model("apfi", "small", unet=(8, 16, 16), **tiny))
    with pytest.raises(InputError, match="no channel groups say how to widen it"):
        widen_into(create_model("apfi", "small", **tiny), create_model("apfi", "small", **{**tiny, "kernel_size": 5}))
    with pytest.raises(InputError, match="different layers"):
        widen_into(create_model("apfi", "small", **tiny), create_model("apfi", "small", kca=False, **tiny))
    with pytest.raises(InputError, match="cannot widen a APFIGenerator into a "):
        widen_into(create_model("apfi", "small", **tiny), create_model("rfr", "small"))
