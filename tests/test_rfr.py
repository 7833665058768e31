"""RFR-Net against the official layer definitions (``jingyuanli001/RFR-Inpainting``,
``modules/RFRNet.py`` and ``modules/Attention.py``) and its fine-tuning phase."""

import pytest
import torch
import torch.nn as nn

from facefill.models import create_model
from facefill.train import Trainer

from test_train import tiny


def _conv(cin, cout, k):
    return cin * cout * k * k  # every RFR-Net conv is bias-free except KCA's combiner


def _bn(c):
    return 2 * c  # weight and bias (running stats are buffers)


def official_block_params(w: int) -> dict[str, int]:
    """Parameters per block, written from the official constructors at width ``w`` (64 there)."""
    enc_channels = [(w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w)] + [(8 * w, 8 * w)] * 3
    # RFRModule: enc_1..enc_3 strided 3x3, enc_4..enc_6 dilated 3x3, each Conv-BN-ReLU.
    enc = sum(_conv(a, b, 3) + _bn(b) for a, b in enc_channels)
    # dec_5, dec_4: dilated 3x3 over [h, skip]; dec_3..dec_1: 4x4 transposed convs.
    dec = 2 * (_conv(16 * w, 8 * w, 3) + _bn(8 * w))
    dec += _conv(16 * w, 8 * w, 4) + _bn(8 * w)
    dec += _conv(12 * w, 4 * w, 4) + _bn(4 * w)
    dec += _conv(6 * w, w, 4) + _bn(w)
    kca = 1 + (2 * 8 * w) * (8 * w) + 8 * w  # ratio + 1x1 combiner with bias
    return {
        "input_layer": _conv(3, w, 7) + _bn(w) + _conv(w, w, 7) + _bn(w),  # Pconv1, bn1, Pconv2, bn20
        "area": 2 * _conv(w, w, 7) + _bn(w),  # Pconv21, Pconv22, bn2
        "reasoning.enc": enc,
        "reasoning.dec": dec,
        "reasoning.att": kca,
        "up": _conv(w, w, 4) + _bn(w),  # Tconv, bn3
        "tail": _conv(w + 3, 32, 3)  # tail1
        + _conv(32, 8, 1) + _bn(8) + _conv(8, 8, 3) + _bn(8) + _conv(8, 32, 1) + _bn(32)  # Bottleneck(32, 8)
        + _conv(64, 3, 3),  # out
    }


def _ours(g) -> dict[str, nn.Module | list[nn.Module]]:
    r = g.recurrent
    return {
        "input_layer": g.input_layer,
        "area": [r.pconv1, r.pconv2, r.bn],
        "reasoning.enc": r.reasoning.enc,
        "reasoning.dec": r.reasoning.dec,
        "reasoning.att": r.reasoning.att,
        "up": g.up,
        "tail": [g.tail_pconv, g.tail_bottleneck, g.out],
    }


def _count(part) -> int:
    parts = part if isinstance(part, list) else [part]
    return sum(p.numel() for m in parts for p in m.parameters())


@pytest.mark.parametrize("width", [8, 64])
def test_parameters_per_block_match_the_official_definitions(width):
    g = create_model("rfr", "paper", width=width)
    expected = official_block_params(width)
    ours = {name: _count(part) for name, part in _ours(g).items()}
    assert ours == expected
    assert sum(p.numel() for p in g.parameters()) == sum(expected.values())
    if width == 64:
        assert sum(expected.values()) == 31_224_065  # the count quoted in the module doc


def test_every_reasoning_encoder_is_conv_bn_relu_and_batchnorms_are_where_the_official_has_them():
    g = create_model("rfr", "small", width=8)
    for block in g.recurrent.reasoning.enc:
        assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    bns = lambda m: sum(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    # bn1, bn20 | bn2 | 6 encoders + 5 decoders | bn3 | the bottleneck's 3.
    assert (bns(g.input_layer), bns(g.recurrent) - bns(g.recurrent.reasoning), bns(g.recurrent.reasoning),
            bns(g.up), bns(g.tail_bottleneck)) == (2, 1, 11, 1, 3)
    assert len(g.finetune_batchnorms()) == bns(g) == 18
    assert len(g.encoder_batchnorms()) == 6


def _bn_state(net):
    return {n: (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
            for n, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)}


def _changed(before, after):
    return {n for n in before if not all(torch.equal(a, b) for a, b in zip(before[n], after[n]))}


FINETUNE = ["model.discriminator=none", "loss.recipe=pconv", "loss.resize=null", "train.val_every=0",
            "train.save_every=100", "train.image_every=0", "train.iterations=1", "train.finetune_iterations=2"]


def _fit_recording_bn(trainer):
    """Run ``fit``; return the BN statistics before each step and after the last."""
    states, step = [], trainer.train_step

    def recording(image, mask):
        states.append(_bn_state(trainer.g_raw))
        return step(image, mask)

    trainer.train_step = recording
    trainer.fit()
    return states + [_bn_state(trainer.g_raw)]


def test_rfr_finetuning_freezes_every_batchnorm_as_the_official(faces, tmp_path):
    trainer = Trainer(tiny(faces, "model.generator=rfr", "model.generator_args={width: 8, cycles: 2}",
                           *FINETUNE), tmp_path)
    params = [p.detach().clone() for p in trainer.g_raw.parameters()]
    initial, pretrained, tuned_once, tuned = _fit_recording_bn(trainer)
    assert len(initial) == 18
    assert _changed(initial, pretrained) == set(initial)  # step 1 (pre-training): every BN learns statistics
    assert _changed(pretrained, tuned_once) == _changed(pretrained, tuned) == set()  # fine-tuning: none does
    assert any(not torch.equal(a, b) for a, b in zip(params, trainer.g_raw.parameters()))


def test_pconv_finetuning_freezes_only_its_encoder(faces, tmp_path):
    trainer = Trainer(tiny(faces, "model.generator=pconv", "model.generator_args={width: 8, layers: 3}",
                           "loss.args={hole: 6.0, tv: 0.1}", *FINETUNE), tmp_path)
    initial, pretrained, _, tuned = _fit_recording_bn(trainer)
    encoder = {n for n, m in trainer.g_raw.named_modules() if isinstance(m, nn.BatchNorm2d) and n.startswith("encoder.")}
    assert encoder and encoder < set(initial)
    assert _changed(initial, pretrained) == set(initial)
    assert _changed(pretrained, tuned) == set(initial) - encoder  # the decoder's BNs still in train mode
