"""Irregular hole masks: a seeded generator, ratio-binned evaluation sets and a folder loader.

Conventions: a mask array or tensor holds 1 where the hole is; a mask PNG is 8-bit grayscale with
white (255) = hole. The hole ratio of a mask is its fraction of hole pixels, and a mask belongs to
the bin ``(lo, hi]`` when ``lo < ratio <= hi``, as in the NVIDIA irregular-mask test set.

Three sources, one file each:

- :mod:`.generator`: :func:`random_mask` draws one free-form mask from a preset: random walks of
  thick lines with round joints (DeepFill v2, LaMa), blobs and boxes. ``thin`` is many narrow
  strokes, ``medium`` fewer wider strokes with some boxes and blobs, ``thick`` few wide strokes
  with more boxes and blobs. :class:`MaskGenerator` wraps it as a training source whose sample
  ``index`` of ``epoch`` depends on nothing but ``(seed, epoch, index)``.
- :mod:`.binned`: :func:`generate_binned_masks` writes a seeded evaluation set, one folder per
  hole-ratio bin, with a ``manifest.json`` (parameters, ratios, sha256) that
  :func:`load_manifest` checks.
- :mod:`.folder`: :class:`MaskFolder` reads existing mask images such as the NVIDIA/PConv set, of
  either polarity, with the training augmentation NVIDIA describe (dilation, rotation, cropping).

Every mask read from a file is resized first (area average when shrinking, bilinear when
enlarging), then binarised at 0.5, so its hole ratio is that of the mask at the target size.
"""

from .binned import (
    DEFAULT_BINS,
    MANIFEST_NAME,
    NVIDIA_BINS,
    ManifestError,
    MaskGenerationError,
    bin_name,
    generate_binned_masks,
    load_manifest,
    parse_bins,
)
from .folder import IMAGE_EXTENSIONS, MaskFolder, MaskPolarityError, read_mask
from .generator import (
    DEFAULT_MIX,
    PRESETS,
    MaskGenerator,
    MaskParams,
    get_preset,
    hole_ratio,
    parse_preset_mix,
    random_mask,
)

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_MIX",
    "IMAGE_EXTENSIONS",
    "MANIFEST_NAME",
    "NVIDIA_BINS",
    "PRESETS",
    "ManifestError",
    "MaskFolder",
    "MaskGenerationError",
    "MaskGenerator",
    "MaskParams",
    "MaskPolarityError",
    "bin_name",
    "generate_binned_masks",
    "get_preset",
    "hole_ratio",
    "load_manifest",
    "parse_bins",
    "parse_preset_mix",
    "random_mask",
    "read_mask",
]
