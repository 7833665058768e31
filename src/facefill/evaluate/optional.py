"""The optional metrics: LPIPS and FID (torchmetrics, only where their networks are in torch's
hub cache; nothing is downloaded) and SFace identity (:mod:`facefill.identity`)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import InputError

logger = logging.getLogger("facefill.evaluate")

# Files the optional metrics need in torch's hub cache (torchvision's AlexNet for LPIPS,
# torch-fidelity's Inception for FID); their presence is checked, they are never downloaded.
_LPIPS_WEIGHTS = "alexnet-owt-7be5be79.pth"
_FID_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def optional_metric_status(name: str) -> Optional[str]:
    """``None`` when the optional metric ``"lpips"`` or ``"fid"`` can run offline, else why not."""
    if name == "identity":
        from ..identity import identity_status

        return identity_status()
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if name == "lpips":
        package, weights = "torchvision", _LPIPS_WEIGHTS
    elif name == "fid":
        package, weights = "torch_fidelity", _FID_WEIGHTS
    else:
        raise InputError(f"unknown optional metric {name!r}; available: lpips, fid, identity")
    if importlib.util.find_spec(package) is None:
        return f"{name.upper()} skipped: {package} is not installed (and {weights} must be in {hub})"
    if not (hub / weights).is_file():
        return f"{name.upper()} skipped: {hub / weights} is missing (no downloads here)"
    return None


class _Optional:
    """LPIPS / FID accumulators per (cycles, bin), built only when their networks are local."""

    def __init__(self, lpips: bool, fid: bool, device: torch.device, identity: bool = False) -> None:
        self.device = device
        self.enabled: list[str] = []
        self.skipped: dict[str, str] = {}
        for name, wanted in (("lpips", lpips), ("fid", fid), ("identity", identity)):
            if wanted:
                reason = optional_metric_status(name)
                if reason is None:
                    self.enabled.append(name)
                else:
                    self.skipped[name] = reason
                    logger.info(reason)
        self.metrics: dict[tuple[str, Any], Any] = {}

    def _metric(self, name: str, key: Any) -> Any:
        if (name, key) not in self.metrics:
            if name == "identity":  # SFace on CPU through OpenCV (facefill.identity)
                from ..identity import SFaceIdentity

                self.metrics[(name, key)] = SFaceIdentity()
                return self.metrics[(name, key)]
            if name == "lpips":
                from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

                m = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True, reduction="mean")
            else:
                from torchmetrics.image.fid import FrechetInceptionDistance

                m = FrechetInceptionDistance(feature=2048, normalize=True)
            self.metrics[(name, key)] = m.to(self.device)
        return self.metrics[(name, key)]

    def update(self, key: Any, output: torch.Tensor, target: torch.Tensor) -> None:
        if "lpips" in self.enabled:
            self._metric("lpips", key).update(output.clamp(0, 1), target)
        if "fid" in self.enabled:
            m = self._metric("fid", key)
            m.update(target, real=True)
            m.update(output.clamp(0, 1), real=False)
        if "identity" in self.enabled:
            self._metric("identity", key).update(output, target)

    def compute(self, key: Any, n: int) -> dict[str, float]:
        out = {}
        for name in self.enabled:
            if name == "fid" and n < 2:
                continue  # a covariance needs two images
            out[name] = float(self._metric(name, key).compute())
        return out


