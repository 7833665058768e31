"""Each shipped config feeds VGG the input its method's official code does (SPEC §8).

At the published weights the two conventions differ by about 4x (perceptual) and 16x (style),
so a config that drifts to the other one trains a different objective than its authors did.
"""

from pathlib import Path

import pytest

from facefill.config import load_config
from facefill.train import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# config -> (VGG input, where the official code decides it)
OFFICIAL = {
    # VGG16FeatureExtractor runs torchvision's VGG16 on the [0, 1] image, no normalisation.
    "rfr_faces_cpu.yaml": ("raw", "jingyuanli001/RFR-Inpainting modules/RFRNet.py (VGG16FeatureExtractor), model.py"),
    # PerceptualLoss / StyleLoss wrap torchvision's VGG19 on the [0, 1] image as it is.
    "edgeconnect_faces_cpu.yaml": ("raw", "knazeri/edge-connect src/loss.py (VGG19), src/models.py"),
    # NVIDIA's loss normalises with ImageNet's mean/std before VGG16.
    "pconv_faces_cpu.yaml": ("imagenet", "NVIDIA/partialconv models/loss.py"),
    # LaMa's perceptual losses normalise their inputs with ImageNet's mean/std.
    "lama_faces_cpu.yaml": ("imagenet", "advimman/lama saicinpainting/training/losses/perceptual.py"),
    # The APFI paper's configuration: the ImageNet convention (the tuned configs choose raw).
    "apfi_celeba256.yaml": ("imagenet", "the APFI paper's recipe (SPEC §6)"),
}


@pytest.mark.parametrize("config", sorted(OFFICIAL))
def test_config_vgg_input_is_the_official_codes(config):
    convention, source = OFFICIAL[config]
    assert load_config(CONFIGS / config).loss.vgg_input == convention, f"{config}: {source} uses {convention}"


def test_every_config_with_a_vgg_term_is_in_the_table():
    from facefill.models import model_entry

    for path in sorted(CONFIGS.glob("*.yaml")):
        cfg = load_config(path)
        if path.name.startswith(("apfi_faces", "apfi_study")) or not model_entry(cfg.model.generator).trainable:
            continue  # facefill's own tuned APFI recipes choose their convention (their headers say why)
        if cfg.loss.recipe == "deepfill":
            continue  # no VGG term
        assert path.name in OFFICIAL, f"{path.name}: add its official VGG input to the table"


@pytest.mark.parametrize("config, generator_args, discriminator_args", [
    ("rfr_faces_cpu.yaml", "{width: 8, cycles: 1}", None),
    ("edgeconnect_faces_cpu.yaml", "{width: 4, blocks: 1}", "{width: 4}"),
])
def test_the_recipe_builds_its_vgg_in_the_configs_convention(faces, tmp_path, config, generator_args, discriminator_args):
    extra = [f"model.generator_args={generator_args}", f"data.root={faces}", "data.size=32", "data.workers=0",
             "data.val_count=2", "loss.vgg_weights=random", "train.device=cpu", "train.amp=fp32"]
    if discriminator_args:
        extra.append(f"model.discriminator_args={discriminator_args}")
    trainer = Trainer(load_config(CONFIGS / config, extra), tmp_path)
    vgg = getattr(trainer.recipe, "loss", trainer.recipe).vgg
    assert vgg is not None and vgg.input_convention == OFFICIAL[config][0]
