"""Frozen VGG16 feature extractor (conv1_1 .. conv4_3) for perceptual and style losses.

The network is torchvision's ``vgg16().features[:23]`` rebuilt here, so weight files use
torchvision's keys ``features.{i}.weight`` / ``features.{i}.bias`` for the convolutions at
i = 0, 2, 5, 7, 10, 12, 14, 17, 19, 21. Named taps (outputs of ``features[:end]``):

    relu1_2 [:4]   pool1 [:5]   relu2_2 [:9]   pool2 [:10]
    relu3_3 [:16]  pool3 [:17]  relu4_3 [:23]

Weights are found by :func:`resolve_vgg16_weights`, in this order: an explicit path, the
environment variable ``FACEFILL_VGG16``, then torchvision's own download
``vgg16-397923af.pth`` in ``torch.hub.get_dir()/checkpoints``. Nothing found raises
:class:`VGGWeightsNotFound`; random weights exist only through
:meth:`VGG16Features.random`, for tests, and are never a fallback.

Input conventions. Every file must say which input its weights expect:

- ``"torchvision"``: RGB in [0, 1], ``(x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]``.
  torchvision's ``.pth`` files are this by definition.
- ``"caffe"``: RGB in [0, 1] flipped to BGR, times 255, minus ``[103.939, 116.779, 123.68]``
  (B, G, R); no std. The original Oxford VGG16 and its Keras port.

A safetensors file declares its convention in the metadata key ``preprocessing``
(:func:`save_vgg16_safetensors` writes it). A file without that key is refused unless its
conv1_1 bias is, bit for bit, that of the original ImageNet VGG16 (Oxford / Keras port,
recognised by the sha256 of the float32 bytes; this covers ``shared/weights/
vgg16_imagenet_caffe.safetensors``, whose metadata has only a free-text ``preprocess``
note), which is treated as caffe.

Scale calibration. The caffe input is ``255 * x_bgr - mean``, while torchvision's is
``(x - mean) / std``; since 255 * mean_torchvision is within 0.6 of the caffe means, the
caffe input is about ``255 * std`` (57.1 to 58.4 per channel) times torchvision's, and so
are all activations. The paper's loss weights (perceptual 0.05, style 120) assume
torchvision's scale, so a caffe network is brought to it: a VGG made of convolutions, ReLUs
and max-pools is positively homogeneous, so dividing conv1_1's weight and *every* conv's
bias by ``s`` makes every tap exactly (caffe activation) / s. We take
``s = CAFFE_SCALE = 255 * mean([0.229, 0.224, 0.225]) = 57.63``, which maps the caffe input
onto torchvision's normalised input to within 1.3 % per channel. The division is baked into
the loaded weights (``calibrate=True``, the default; ``VGG16Features.scale`` records ``s``),
so it costs nothing at run time; torchvision weights have ``scale == 1``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.nn as nn

from .errors import FacefillError, InputError

__all__ = [
    "CAFFE_SCALE",
    "ENV_VAR",
    "PREPROCESSINGS",
    "TAPS",
    "TORCHVISION_FILE",
    "VGG16Features",
    "VGGWeightsError",
    "VGGWeightsNotFound",
    "load_vgg16_weights",
    "resolve_vgg16_weights",
    "save_vgg16_safetensors",
]

ENV_VAR = "FACEFILL_VGG16"
TORCHVISION_FILE = "vgg16-397923af.pth"
PREPROCESSINGS = ("caffe", "torchvision")

# Layer plan of torchvision's vgg16().features up to relu4_3: ints are 3x3 conv + ReLU, "M"
# a 2x2 max-pool; it yields modules 0..22 with the convolutions at _CONV_INDICES.
_PLAN: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)
TAPS: dict[str, int] = {
    "relu1_2": 4,
    "pool1": 5,
    "relu2_2": 9,
    "pool2": 10,
    "relu3_3": 16,
    "pool3": 17,
    "relu4_3": 23,
}

_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
CAFFE_SCALE = 255.0 * sum(_TORCHVISION_STD) / 3.0

# sha256 of conv1_1's bias (64 float32, little endian) in the original ImageNet VGG16.
_CAFFE_CONV1_1_BIAS_SHA256 = "1ef208fe2fce06d33da14ae4a9710cc88c83b2e6168abd8cc90104dc77e87495"


class VGGWeightsError(FacefillError):
    """A VGG16 weight file cannot be used (unreadable, wrong layout, unknown convention)."""


class VGGWeightsNotFound(VGGWeightsError):
    """No VGG16 weight file was found at any of the places facefill looks."""


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    cin, index = 3, 0
    for v in _PLAN:
        if v == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (int(v), cin, 3, 3)
        shapes[f"features.{index}.bias"] = (int(v),)
        cin, index = int(v), index + 2
    return shapes


_SHAPES = _expected_shapes()


# --------------------------------------------------------------------------- finding files


def resolve_vgg16_weights(path: str | os.PathLike | None = None) -> Path:
    """Return the VGG16 weight file to use: ``path``, else ``$FACEFILL_VGG16``, else
    torchvision's ``vgg16-397923af.pth`` in the torch hub cache.

    A path that is given (argument or environment) but missing raises at once rather than
    falling through to the next source. Raises :class:`VGGWeightsNotFound`.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise VGGWeightsNotFound(f"VGG16 weights not found: no file at {p} (the path given)")
        return p
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise VGGWeightsNotFound(
                f"VGG16 weights not found: {ENV_VAR}={env} names no file"
            )
        return p
    hub = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE
    if hub.is_file():
        return hub
    raise VGGWeightsNotFound(
        "VGG16 weights not found: pass a path (VGG16Features.from_pretrained(path)), "
        f"set {ENV_VAR}=/path/to/file.safetensors, or put torchvision's {TORCHVISION_FILE} "
        f"in {hub.parent}"
    )


# --------------------------------------------------------------------------- reading / writing


def _features_only(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Keep conv1_1..conv4_3 under ``features.{i}.*`` keys, float32, checked against VGG16.

    Accepts a full torchvision state dict (classifier and conv5 are dropped) or a
    ``features`` state dict whose keys lack the ``features.`` prefix.
    """
    if not any(k.startswith("features.") for k in state):
        state = {f"features.{k}": v for k, v in state.items()}
    missing = [k for k in _SHAPES if k not in state]
    if missing:
        raise VGGWeightsError(
            f"{source} is not a VGG16 state dict: missing {', '.join(missing[:4])}"
            + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        )
    out: dict[str, torch.Tensor] = {}
    for key, shape in _SHAPES.items():
        t = state[key]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise VGGWeightsError(f"{source}: {key} should have shape {shape}, got {got}")
        out[key] = t.detach().to(device="cpu", dtype=torch.float32).contiguous()
    return out


def _is_original_imagenet_vgg16(state: Mapping[str, torch.Tensor]) -> bool:
    bias = state["features.0.bias"].numpy().astype("<f4").tobytes()
    return hashlib.sha256(bias).hexdigest() == _CAFFE_CONV1_1_BIAS_SHA256


def load_vgg16_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Read a VGG16 weight file; return ``(state, preprocessing)``.

    ``state`` holds the float32 conv1_1..conv4_3 tensors under torchvision's keys;
    ``preprocessing`` is ``"caffe"`` or ``"torchvision"`` as the file declares (see the
    module docstring). ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which refuses pickled objects other than tensors and
    plain containers. Raises :class:`VGGWeightsError`.
    """
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                metadata = f.metadata() or {}
                raw = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors raises several types for a bad header
            raise VGGWeightsError(f"cannot read VGG16 weights {p}: {e}") from e
        state = _features_only(raw, str(p))
        declared = metadata.get("preprocessing")
        recognised = _is_original_imagenet_vgg16(state)
        if declared is None:
            if not recognised:
                raise VGGWeightsError(
                    f"{p} does not declare its input convention: re-save it with "
                    "facefill.vgg.save_vgg16_safetensors(state, path, preprocessing='caffe' or "
                    "'torchvision') (metadata key 'preprocessing')"
                )
            return state, "caffe"
        if declared not in PREPROCESSINGS:
            raise VGGWeightsError(
                f"{p}: metadata preprocessing={declared!r}, expected one of {PREPROCESSINGS}"
            )
        if recognised and declared != "caffe":
            raise VGGWeightsError(
                f"{p} declares preprocessing={declared!r} but holds the original caffe-convention "
                "ImageNet VGG16 weights"
            )
        return state, declared

    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for forbidden objects, others for non-torch files
        from .checkpoint import torch_load_reason

        raise VGGWeightsError(f"cannot load VGG16 weights {p}: {torch_load_reason(e)}") from None
    if not isinstance(raw, Mapping):
        raise VGGWeightsError(f"{p} holds a {type(raw).__name__}, not a VGG16 state dict")
    state = _features_only(raw, str(p))
    # A torch file is torchvision's format, unless it is the caffe network re-saved.
    return state, "caffe" if _is_original_imagenet_vgg16(state) else "torchvision"


def save_vgg16_safetensors(
    state: Mapping[str, torch.Tensor], path: str | os.PathLike, preprocessing: str
) -> Path:
    """Write conv1_1..conv4_3 of ``state`` to a safetensors file declaring ``preprocessing``.

    ``state`` is a torchvision VGG16 (or ``features``) state dict in the file's own input
    convention, e.g. ``torch.load("vgg16-397923af.pth", weights_only=True)`` with
    ``"torchvision"``. Not a calibrated :class:`VGG16Features` state: its caffe weights are
    already divided by ``CAFFE_SCALE``.
    """
    from safetensors.torch import save_file

    if preprocessing not in PREPROCESSINGS:
        raise InputError(f"preprocessing must be one of {PREPROCESSINGS}, got {preprocessing!r}")
    tensors = _features_only(state, "state")
    p = Path(path)
    save_file(
        tensors, str(p), metadata={"preprocessing": preprocessing, "layers": "conv1_1..conv4_3"}
    )
    return p


# --------------------------------------------------------------------------- the network


def _build_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in _PLAN:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            cin = int(v)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """Frozen VGG16 up to relu4_3 returning named feature taps.

    ``forward(x, layers=("relu3_3",)) -> {name: tap}``: ``x`` is (B, 3, H, W) RGB in
    [0, 1]; the preprocessing of the weights' convention is applied inside. Taps are
    (B, 64, H, W) relu1_2, (B, 64, H/2, W/2) pool1, (B, 128, H/2, W/2) relu2_2, (B, 128,
    H/4, W/4) pool2, (B, 256, H/4, W/4) relu3_3, (B, 256, H/8, W/8) pool3 and (B, 512,
    H/8, W/8) relu4_3 (floor division), on torchvision's activation scale for either
    convention (module docstring). Only the layers up to the deepest requested tap run.

    Parameters never require grad and the module stays in eval mode; gradients do flow
    back to ``x``. Build it with :meth:`from_pretrained` (weights from a file) or
    :meth:`random` (tests only); the constructor takes a state dict in the declared
    ``preprocessing`` convention and calibrates it unless ``calibrate=False``.
    """

    def __init__(
        self,
        state: Mapping[str, torch.Tensor],
        preprocessing: str,
        *,
        calibrate: bool = True,
        source: str = "state dict",
    ) -> None:
        super().__init__()
        if preprocessing not in PREPROCESSINGS:
            raise InputError(
                f"preprocessing must be one of {PREPROCESSINGS}, got {preprocessing!r}"
            )
        self.preprocessing = preprocessing
        self.source = source
        self.scale = CAFFE_SCALE if (calibrate and preprocessing == "caffe") else 1.0
        self.features = _build_features()

        weights = _features_only(state, source)
        if self.scale != 1.0:
            # Positive homogeneity: conv1_1's weight and every bias / s gives taps / s.
            weights = {
                k: v / self.scale if (k.endswith(".bias") or k == "features.0.weight") else v
                for k, v in weights.items()
            }
        self.load_state_dict(weights)
        self.requires_grad_(False)
        super().train(False)

        if preprocessing == "torchvision":
            mean = torch.tensor(_TORCHVISION_MEAN)
            gain = 1.0 / torch.tensor(_TORCHVISION_STD)
        else:  # caffe, applied after the RGB -> BGR flip
            mean = torch.tensor(_CAFFE_MEAN_BGR) / 255.0
            gain = torch.full((3,), 255.0)
        self.register_buffer("_mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_gain", gain.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_raw_mean", torch.tensor(_TORCHVISION_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_raw_std", torch.tensor(_TORCHVISION_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike | None = None, *, calibrate: bool = True
    ) -> VGG16Features:
        """Load the weights :func:`resolve_vgg16_weights` finds (raises if there are none)."""
        file = resolve_vgg16_weights(path)
        state, preprocessing = load_vgg16_weights(file)
        return cls(state, preprocessing, calibrate=calibrate, source=str(file))

    @classmethod
    def random(
        cls, seed: int = 0, *, preprocessing: str = "torchvision", calibrate: bool = True
    ) -> VGG16Features:
        """Random weights for tests: He-normal (fan-out) convs and N(0, 0.1) biases."""
        g = torch.Generator().manual_seed(seed)
        state = {}
        for key, shape in _SHAPES.items():
            if key.endswith(".weight"):
                std = (2.0 / (shape[0] * 9)) ** 0.5
                state[key] = torch.randn(shape, generator=g) * std
            else:
                state[key] = torch.randn(shape, generator=g) * 0.1
        return cls(state, preprocessing, calibrate=calibrate, source=f"random(seed={seed})")

    def train(self, mode: bool = True) -> VGG16Features:
        """Ignored: the extractor always stays in eval mode."""
        return super().train(False)

    #: What the network is fed: ``"imagenet"`` (its weights' own normalisation, the default) or
    #: ``"raw"``: the [0, 1] image as if it were already normalised, as RFR-Net's official code
    #: feeds torchvision's VGG16 (for torchvision weights the network sees ``x`` itself; for
    #: caffe weights ``x * std + mean`` goes through their preprocessing, the same thing on the
    #: calibrated scale). At the same loss weights raw input makes the perceptual and the style
    #: term each about 15x smaller (measured on a face crop: features scale with the input and
    #: both terms are quadratic in them).
    input_convention: str = "imagenet"
    INPUT_CONVENTIONS = ("imagenet", "raw")

    def set_input_convention(self, convention: str) -> VGG16Features:
        if convention not in self.INPUT_CONVENTIONS:
            raise InputError(f"vgg input must be one of {self.INPUT_CONVENTIONS}, got {convention!r}")
        self.input_convention = convention
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] (B, 3, H, W) -> the network's input in its weights' convention."""
        if self.input_convention == "raw":
            if self.preprocessing == "torchvision":
                return x
            x = x * self._raw_std + self._raw_mean  # undone by the caffe preprocessing below, up to calibration
        if self.preprocessing == "caffe":
            x = x.flip(1)
        return (x - self._mean) * self._gain

    def forward(
        self, x: torch.Tensor, layers: str | Iterable[str] = ("relu3_3",)
    ) -> dict[str, torch.Tensor]:
        names = [layers] if isinstance(layers, str) else list(layers)
        unknown = [n for n in names if n not in TAPS]
        if unknown or not names:
            raise InputError(
                f"layers must be a non-empty subset of {tuple(TAPS)}, got {tuple(names)}"
            )
        if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise InputError(
                f"x must be a float (B, 3, H, W) RGB tensor, got {x.dtype} {tuple(x.shape)}"
            )
        ends = {TAPS[n]: n for n in names}
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for i, layer in enumerate(self.features[: max(ends)]):
            h = layer(h)
            if i + 1 in ends:
                out[ends[i + 1]] = h
        return {n: out[n] for n in names}
