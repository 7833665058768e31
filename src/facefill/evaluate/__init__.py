"""Evaluation: PSNR, SSIM and L1 per hole-ratio bin on a fixed, checksummed mask set.

One function, :func:`evaluate`, produces every quality number facefill reports (paper Tables 1-5),
so that every method is measured by the same code on the same image/mask pairs:

- **Images**: the ``test`` split of an image folder (``<data>/test.txt``, see
  :class:`~facefill.data.ImageFolderDataset`), without flips, centre-cropped and resized to
  ``size`` (default: the shorter side of the first test image). Without a ``test.txt`` every image
  is used and the result says so. Unreadable images are dropped up front and counted. With
  ``split="train", holdout=k`` the images are the ``k`` a training run with ``data.holdout=k``
  validates on (:func:`~facefill.data.carve_holdout`), never the ones it trains on.
- **Masks**: the bins of a manifest written by :func:`~facefill.masks.generate_binned_masks`; every
  file's sha256 is checked before anything runs. Each mask is resized to the image size and
  binarised after resizing (:func:`~facefill.masks.read_mask`).
- **Pairing** (:func:`pair_masks`): image ``i`` (in data order: ``test.txt`` order, else sorted
  relative path) gets mask ``i mod n`` of each bin, the bin's ``n`` masks taken in manifest-path
  order. Fewer masks than images are reused cyclically, extra masks are unused. Nothing is random,
  so every method and every cycle count sees identical pairs.
- **Metrics** (:mod:`facefill.metrics`): computed per image on the composite
  ``where(mask, output, image)`` (re-applied here, so a foreign method cannot leak into the
  known pixels) against the ground truth, then averaged over the images of a bin: PSNR, SSIM,
  L1; ``grad`` / ``grad_gt``, the mean Sobel gradient of the luma in the hole of the composite
  and of the ground truth, and ``grad_ratio`` = grad / grad_gt (below 1: a blurrier fill;
  ``None`` when the ground truth is flat there); ``saturated``, the number of images whose
  composite has a flat white or black block of at least 8x8 hole pixels that the ground truth
  does not have.
- **Several test sets**: :func:`evaluate_sets` runs :func:`evaluate` on each folder on its own
  and writes each to ``<out>/<set name>/`` (:func:`set_names`).
- **Cycle ablation** (paper Table 5): ``cycles=[1, 2, ..., 8]`` runs every count on the same pairs;
  ``metrics.json`` then holds ``{"cycles": {"1": {"bins": ...}, ...}}`` instead of ``"bins"``.

LPIPS and FID are optional and computed only when their networks are available locally (LPIPS:
torchvision and its AlexNet weights; FID: torch-fidelity and its Inception weights, both in the
torch hub cache). Otherwise they are skipped and the result says what is missing; nothing is
downloaded.

Files: :mod:`.run` (the two functions), :mod:`.inputs` (generator, device, cycles, manifest, images,
pairing), :mod:`.optional` (LPIPS, FID, identity), :mod:`.report` (tables, CSV, sample grids).
"""

from .inputs import PAIRING_RULE, PAPER_BINS, EvaluationError, pair_masks, parse_cycles
from .optional import optional_metric_status
from .run import evaluate, evaluate_sets, set_names

__all__ = [
    "EvaluationError",
    "PAPER_BINS",
    "PAIRING_RULE",
    "evaluate",
    "evaluate_sets",
    "optional_metric_status",
    "pair_masks",
    "parse_cycles",
    "set_names",
]
