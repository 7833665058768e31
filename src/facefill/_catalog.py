"""What ``facefill models`` lists, readable without importing torch.

The registry (:mod:`facefill.models.registry`) is the source of truth: building it imports
every network and so torch, which costs seconds. This table repeats its names, kinds, preset
names and summaries so that listing them starts in milliseconds; ``tests/test_cli.py`` checks
that it matches the registry entry for entry, so a model added there fails the test until it is
added here.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CATALOG", "CatalogEntry"]


class CatalogEntry(NamedTuple):
    name: str
    kind: str  # "generator" or "discriminator"
    presets: tuple[str, ...]
    summary: str


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry("apfi", "generator", ("paper", "small"), "APFI cyclic progressive generator (the paper's network)"),
    CatalogEntry(
        "edgeconnect", "generator", ("paper", "small"),
        "EdgeConnect (2019): edge generator, then image generator guided by its edges",
    ),
    CatalogEntry(
        "edgeconnect_d", "discriminator", ("paper", "small"),
        "EdgeConnect's two SN-PatchGANs: edges (with grayscale) and images",
    ),
    CatalogEntry(
        "gatedconv", "generator", ("paper", "small"),
        "DeepFill v2 (ICCV 2019): gated convs, coarse-to-fine, contextual attention",
    ),
    CatalogEntry(
        "lama", "generator", ("paper", "big", "small"), "LaMa (WACV 2022): fast Fourier convolution ResNet, large masks"
    ),
    CatalogEntry(
        "lama_d", "discriminator", ("paper", "small"),
        "LaMa's critic: PatchGAN (NLayerDiscriminator) with BatchNorm, returns features",
    ),
    CatalogEntry("ns", "generator", ("paper", "small"), "OpenCV inpainting, Navier-Stokes based (no training)"),
    CatalogEntry(
        "patchgan", "discriminator", ("paper", "small"), "SN-PatchGAN: Markovian discriminator, spectral norm on every conv"
    ),
    CatalogEntry(
        "pconv", "generator", ("paper", "paper512", "small"), "PConv U-Net (ECCV 2018), partial convolutions, no GAN"
    ),
    CatalogEntry("rfr", "generator", ("paper", "small"), "RFR-Net (CVPR 2020), the ablation reference and cost anchor"),
    CatalogEntry(
        "sn_patchgan", "discriminator", ("paper", "small"),
        "SN-PatchGAN (DeepFill v2): six 5x5 stride-2 spectrally normalised convs",
    ),
    CatalogEntry("telea", "generator", ("paper", "small"), "OpenCV inpainting, Telea's fast marching method (no training)"),
)
