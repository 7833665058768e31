"""torch.compile for inference: ``facefill._inference.compile_generator`` and ``Inpainter(compile=)``."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch._dynamo.exc import TorchDynamoException

from facefill import _inference
from facefill._inference import compile_generator, compile_unavailable, uncompile_generator
from facefill.inpaint import Inpainter
from facefill.models import create_model

from helpers import square_mask


def _tiny_apfi():
    torch.manual_seed(0)
    return create_model("apfi", "small", width=8, reasoning=(8, 16, 16), unet=(16, 16, 16), cycles=2).eval()


def _inputs(size=32, batch=2):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(batch, 3, size, size, generator=g)
    return image, square_mask(size, size // 4, size // 4, size // 2, batch=batch)


def test_without_a_cpp_compiler_compile_is_unavailable_and_the_model_stays_eager(monkeypatch, caplog):
    monkeypatch.setattr(_inference.shutil, "which", lambda _name: None)
    assert "no C++ compiler" in compile_unavailable("cpu")
    model = _tiny_apfi()
    with caplog.at_level(logging.WARNING, logger="facefill"):
        reason = compile_generator(model, "cpu")
    assert "no C++ compiler" in reason
    assert "torch.compile unavailable, running eagerly: no C++ compiler" in caplog.text
    assert "_predict" not in model.__dict__  # nothing shadows the eager method
    inpainter = Inpainter(_tiny_apfi(), size=32, precision="fp32", compile=True)
    assert inpainter.compiled is False


def test_a_failing_compilation_falls_back_to_the_eager_forward(monkeypatch, caplog):
    def broken_compile(fn, **kwargs):
        def run(*a, **k):
            raise TorchDynamoException("inductor: C++ compile error")
        return run

    monkeypatch.setattr(_inference, "compile_unavailable", lambda device: None)
    monkeypatch.setattr(torch, "compile", broken_compile)
    model = _tiny_apfi()
    image, mask = _inputs()
    with torch.inference_mode():
        expected = model.inpaint(image, mask)
        assert compile_generator(model, "cpu") is None and "_predict" in model.__dict__
        with caplog.at_level(logging.WARNING, logger="facefill"):
            out = model.inpaint(image, mask)
    assert torch.equal(out, expected)
    assert "torch.compile failed, running eagerly: inductor: C++ compile error" in caplog.text
    assert "_predict" not in model.__dict__  # eager from now on
    # A benchmark asks for the error instead of a silent eager number.
    compile_generator(model, "cpu", fallback=False)
    with torch.inference_mode(), pytest.raises(TorchDynamoException):
        model.inpaint(image, mask)
    uncompile_generator(model)
    assert "_predict" not in model.__dict__


@pytest.mark.skipif(compile_unavailable("cpu") is not None, reason="torch.compile cannot run here")
def test_the_compiled_network_matches_eager_and_keeps_known_pixels():
    model = _tiny_apfi()
    image, mask = _inputs()
    with torch.inference_mode():
        expected = model.inpaint(image, mask)
        assert compile_generator(model, "cpu", fallback=False) is None
        out = model.inpaint(image, mask)
    # Only APFI's per-chunk forward is compiled: the eager method is shadowed on the instance.
    assert "_predict" in model.__dict__ and "predict" not in model.__dict__
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    known = mask.expand_as(image) < 0.5
    assert torch.equal(out[known], image[known])


def test_inpainter_compile_runs_photos_through_the_compiled_network(monkeypatch):
    calls = []

    def fake_compile_generator(model, device):  # stands in for torch.compile: records each call
        eager = model._predict

        def compiled(*args, **kwargs):
            calls.append(args[0].shape)
            return eager(*args, **kwargs)

        model._predict = compiled
        return None

    monkeypatch.setattr("facefill.photo.inpainter.compile_generator", fake_compile_generator)
    inpainter = Inpainter(_tiny_apfi(), size=32, precision="fp32", compile=True)
    assert inpainter.compiled is True
    photo = np.full((40, 40, 3), 128, np.uint8)
    hole = np.zeros((40, 40), np.uint8)
    hole[10:20, 10:20] = 255
    out = inpainter(photo, hole, aligned=True, feather=0)
    assert out.shape == (40, 40, 3) and calls == [torch.Size([1, 3, 32, 32])]
    assert np.array_equal(out[hole == 0], photo[hole == 0])
    inpainter.warm_up(batch=2)  # what `facefill serve --compile` runs before the page opens
    assert calls[-1] == torch.Size([2, 3, 32, 32])
    assert Inpainter(_tiny_apfi(), size=32, precision="fp32").compiled is False
