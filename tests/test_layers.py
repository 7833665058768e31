import pytest
import torch
import torch.nn.functional as F

from facefill.layers import FeatureMerge, GatedConv2d, KnowledgeConsistentAttention, PartialConv2d, snconv2d


def reference_partial_conv(conv: PartialConv2d, x: torch.Tensor, valid: torch.Tensor):
    """NVIDIA's formula written out with unfold, one window at a time."""
    kh, kw = conv.kernel_size
    args = dict(kernel_size=(kh, kw), dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
    b, cin, h, w = x.shape
    vx = valid.expand(-1, cin, -1, -1) if valid.shape[1] == 1 else valid
    cols = F.unfold(x * vx, **args)  # (B, cin*kh*kw, L)
    counts = F.unfold(valid, **args).sum(1)  # (B, L)
    window = valid.shape[1] * kh * kw
    g = conv.groups
    cols = cols.view(b, g, cin // g * kh * kw, -1)
    weight = conv.weight.view(g, conv.out_channels // g, -1)
    raw = torch.einsum("gok,bgkl->bgol", weight, cols).reshape(b, conv.out_channels, -1)
    hout = (h + 2 * conv.padding[0] - conv.dilation[0] * (kh - 1) - 1) // conv.stride[0] + 1
    wout = (w + 2 * conv.padding[1] - conv.dilation[1] * (kw - 1) - 1) // conv.stride[1] + 1
    out = torch.zeros_like(raw)
    known = counts > 0
    ratio = torch.where(known, window / counts.clamp(min=1), torch.zeros_like(counts))
    out = raw * ratio[:, None]
    if conv.bias is not None:
        out = (out + conv.bias[None, :, None]) * known[:, None]
    return out.view(b, -1, hout, wout), known.float().view(b, 1, hout, wout)


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation,groups,bias,mask_channels",
    [
        (3, 1, 1, 1, 1, True, 1),
        (7, 2, 3, 1, 1, False, 1),
        (3, 1, 2, 2, 1, True, 1),
        (5, 2, 2, 1, 4, True, 1),
        (3, 1, 1, 1, 1, True, 4),  # per-channel valid maps
        ((3, 5), (1, 2), (1, 2), (2, 1), 2, True, 1),
    ],
)
def test_partial_conv_matches_nvidia_formula(kernel, stride, padding, dilation, groups, bias, mask_channels):
    conv = PartialConv2d(4, 8, kernel, stride, padding, dilation, groups, bias)
    x = torch.randn(2, 4, 13, 11)
    valid = (torch.rand(2, mask_channels, 13, 11) > 0.6).float()
    valid[0, :, :, :] = 0.0  # a sample with nothing known
    valid[0, :, 6, 5] = 1.0  # ... but one pixel
    out, new_valid = conv(x, valid)
    ref, ref_valid = reference_partial_conv(conv, x, valid)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(new_valid, ref_valid)


def test_partial_conv_all_valid_is_plain_conv_and_no_valid_is_zero():
    conv = PartialConv2d(3, 5, 3, 1, 0, bias=True)  # no padding: every window full
    x = torch.randn(1, 3, 8, 8)
    out, v = conv(x, torch.ones(1, 1, 8, 8))
    torch.testing.assert_close(out, F.conv2d(x, conv.weight, conv.bias), rtol=1e-5, atol=1e-5)
    assert torch.all(v == 1)
    out, v = conv(x, torch.zeros(1, 1, 8, 8))
    assert torch.all(out == 0) and torch.all(v == 0)


def test_partial_conv_ignores_invalid_inputs_and_renormalises_border():
    conv = PartialConv2d(1, 1, 3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.ones(1, 1, 5, 5)
    x_garbage = x.clone()
    valid = torch.ones(1, 1, 5, 5)
    valid[..., 2, 2] = 0
    x_garbage[..., 2, 2] = 1e6
    out, _ = conv(x_garbage, valid)
    # A sum of ones over a window, renormalised by window/valid, is 9 everywhere,
    # including the corners (zero padding counts as invalid) and around the hole.
    torch.testing.assert_close(out, torch.full_like(out, 9.0))


def test_partial_conv_valid_map_grows_by_kernel_reach():
    conv = PartialConv2d(1, 1, 7, 1, 3)
    valid = torch.ones(1, 1, 32, 32)
    valid[..., 8:24, 8:24] = 0  # 16x16 hole
    _, v = conv(torch.zeros(1, 1, 32, 32), valid)
    assert v[..., 11:21, 11:21].sum() == 0  # hole shrank by 3 on each side
    assert v.sum() == 32 * 32 - 10 * 10


def test_gated_conv_is_feature_times_sigmoid_gate():
    layer = GatedConv2d(3, 4, 3, activation=torch.nn.Identity())
    x = torch.randn(2, 3, 8, 8)
    both = layer.conv(x)
    expected = both[:, :4] * torch.sigmoid(both[:, 4:])
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == (2, 4, 8, 8)
    strided = GatedConv2d(3, 6, 3, stride=2, dilation=2)
    assert strided(x).shape == (2, 6, 4, 4)


def test_kca_scores_are_a_distribution_and_blend_across_cycles():
    kca = KnowledgeConsistentAttention(8)
    with torch.no_grad():
        kca.ratio.fill_(-0.5)  # |lambda| is used
    x1, x2 = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6)
    valid1 = torch.zeros(2, 1, 6, 6)
    valid1[..., :3, :] = 1.0
    out1, state1 = kca(x1, valid1)
    scores1, prev_valid = state1
    assert scores1.shape == (2, 36, 6, 6)
    torch.testing.assert_close(scores1.sum(1), torch.ones(2, 6, 6))
    _, (fresh, _) = kca(x2, torch.ones(2, 1, 6, 6))  # cycle-2 scores without history
    _, (blended, _) = kca(x2, torch.ones(2, 1, 6, 6), state1)
    lam = 0.5 + 1e-7
    expected = (scores1 * prev_valid + fresh * lam) / (prev_valid + lam)
    torch.testing.assert_close(blended, expected)
    # Where the query was unknown in the previous cycle the fresh scores stand.
    torch.testing.assert_close(blended[..., 3:, :], fresh[..., 3:, :])
    assert not torch.allclose(blended[..., :3, :], fresh[..., :3, :])


def test_kca_output_is_attention_over_normalised_keys():
    kca = KnowledgeConsistentAttention(4, propagate=1)
    x = torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        kca.combine.weight.zero_()
        kca.combine.weight[:4, :4, 0, 0] = torch.eye(4)  # pass the attended half through
        kca.combine.bias.zero_()
    out, (scores, _) = kca(x, torch.ones(1, 1, 3, 3))
    flat = x.flatten(2)[0]  # (C, N)
    keys = flat / flat.norm(dim=0, keepdim=True)
    attn = torch.softmax(keys.T @ flat, dim=0)  # (keys, queries)
    torch.testing.assert_close(out.flatten(2)[0], keys @ attn, rtol=1e-4, atol=1e-5)


def test_kca_handles_all_zero_features():
    kca = KnowledgeConsistentAttention(4)
    out, _ = kca(torch.zeros(1, 4, 4, 4), torch.zeros(1, 1, 8, 8))
    assert torch.isfinite(out).all()


def test_spectral_norm_bounds_the_largest_singular_value():
    conv = snconv2d(3, 16, 4, 2, 1)
    with torch.no_grad():
        conv.parametrizations.weight.original.mul_(10.0)
    x = torch.randn(1, 3, 8, 8)
    for _ in range(50):  # one power iteration per training forward
        conv(x)
    conv.eval()
    sigma = torch.linalg.matrix_norm(conv.weight.detach().reshape(16, -1), ord=2)
    assert abs(sigma.item() - 1.0) < 1e-2


def test_kca_neighbourhood_sum_over_queries_equals_summing_the_scores():
    """KCA pools the query features; RFR-Net pools the N score maps. Both are the same sum."""
    kca = KnowledgeConsistentAttention(6, propagate=3)
    x = torch.randn(2, 6, 5, 7)
    flat = x.flatten(2)
    keys = flat / (flat.square().sum(1, keepdim=True) + 1e-7).sqrt()
    raw = torch.bmm(keys.transpose(1, 2), flat).view(2, 35, 5, 7)  # (B, key, H, W)
    pooled = torch.nn.functional.avg_pool2d(raw, 3, 1, 1, count_include_pad=True) * 9
    expected = torch.softmax(pooled, dim=1)
    _, (scores, _) = kca(x, torch.ones(2, 1, 5, 7))
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)


def test_kca_gives_the_same_in_both_memory_layouts():
    kca = KnowledgeConsistentAttention(8)
    x, v = torch.randn(2, 8, 6, 6), (torch.rand(2, 1, 6, 6) > 0.4).float()
    out, (scores, _) = kca(x, v)
    out2, state2 = kca(x, v, (scores, v))
    xc = x.contiguous(memory_format=torch.channels_last)
    out_cl, (scores_cl, _) = kca(xc, v)
    out2_cl, _ = kca(xc, v, (scores_cl, v))
    torch.testing.assert_close(out_cl, out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out2_cl, out2, rtol=1e-5, atol=1e-6)


def test_partial_conv_masked_flag_only_skips_a_masking_that_changes_nothing():
    layer = PartialConv2d(4, 4, 7, 1, 3, groups=4, bias=False)
    valid = (torch.rand(2, 1, 12, 12) > 0.5).float()
    x = torch.randn(2, 4, 12, 12)
    want, want_valid = layer(x, valid)
    got, got_valid = layer(x * valid, valid, masked=True)
    torch.testing.assert_close(got, want)
    assert torch.equal(got_valid, want_valid)
    wrong, _ = layer(x, valid, masked=True)  # the flag is a promise: unmasked input leaks
    assert not torch.allclose(wrong, want)


def test_feature_merge_masked_equals_weighting_premasked_features():
    valids = [(torch.rand(1, 1, 4, 4) > 0.5).float() for _ in range(3)]
    feats = [torch.randn(1, 5, 4, 4) * v for v in valids]
    torch.testing.assert_close(FeatureMerge(masked=True)(feats, valids), FeatureMerge()(feats, valids))
