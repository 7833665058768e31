import functools

import numpy as np
import torch


def square_mask(size: int, top: int, left: int, side: int, batch: int = 1) -> torch.Tensor:
    """(B, 1, size, size) hole mask with a side x side square hole."""
    m = torch.zeros(batch, 1, size, size)
    m[..., top : top + side, left : left + side] = 1.0
    return m


def assert_same_samples(a, b, epochs: int) -> None:
    """Datasets ``a`` and ``b`` serve identical tensors, item by item, in each of ``epochs`` epochs."""
    assert len(a) == len(b)
    for epoch in range(epochs):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        for i in range(len(a)):
            assert torch.equal(a[i], b[i]), (epoch, i)


# A training config small enough for a test on a CPU (APFI small, narrowed; 32 px; random VGG).
TINY = [
    "model.generator=apfi",
    "model.preset=small",
    "model.generator_args={width: 8, reasoning: [8, 16, 16], unet: [8, 16, 16], cycles: 2}",
    "model.discriminator_preset=small",
    "model.discriminator_args={width: 8}",
    "data.size=32",
    "data.workers=0",
    "data.val_count=4",
    "loss.vgg_weights=random",
    "loss.resize=null",
    "train.batch_size=4",
    "train.lr=1e-3",
    "train.d_lr=1e-3",
    "train.log_every=1",
    "train.image_every=2",
    "train.val_every=3",
    "train.save_every=3",
    "train.keep_last=2",
    "train.device=cpu",
    "train.amp=fp32",
]


def grey_recorder():
    """A generator that fills holes with mid-grey and keeps every (image, mask) it was given
    in ``.calls``: for checking what reaches the model."""
    from facefill.models import InpaintingGenerator

    class Recorder(InpaintingGenerator):
        stride = 16

        def __init__(self):
            super().__init__()
            self.calls = []

        def predict(self, image, mask):
            self.calls.append((image.clone(), mask.clone()))
            # Grey in the hole, the known pixels as they are: a fill a Poisson blend leaves alone.
            return torch.where(mask > 0.5, 0.5, image)

    return Recorder()


def save_tiny_apfi(path):
    """Seeded weights of a narrowed APFI small for 64 px photos, saved at ``path`` (returned)."""
    from facefill.checkpoint import save_weights
    from facefill.models import create_model

    torch.manual_seed(0)
    G = create_model("apfi", "small", width=8, reasoning=(8, 16, 16), unet=(16, 16, 16), cycles=2)
    save_weights(G, path, extra={"train_config": {"data": {"size": 64}}})
    return path


# Group photos built from the bundled public-domain astronaut (never CelebA or faces128 images).


@functools.cache
def astronaut() -> np.ndarray:
    """The bundled public-domain astronaut portrait, uint8 RGB (H, W, 3)."""
    from facefill.demo import sample_image

    return np.asarray(sample_image())


# YuNet's landmarks on the astronaut (right eye, left eye, nose, mouth corners), rounded.
ASTRO_LM = np.array([(200.2, 101.7), (246.9, 102.4), (220.0, 124.4), (199.1, 142.9), (239.7, 143.7)])
PATCH = (slice(0, 260), slice(90, 350))  # head and shoulders, 260x260


def background(h, w, seed=0):
    """A smooth colour ramp with a little noise: the kind of surface Telea is made for."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w, y / h, 1 - x / w], axis=2) * 60 + np.array([110, 120, 130])
    return np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)


def group_photo(places, h=400, w=720):
    """The astronaut's head pasted at each (centre x, centre y, degrees, scale); the photo and
    each face's true landmarks."""
    import cv2

    out = background(h, w)
    patch = astronaut()[PATCH]
    landmarks = []
    for cx, cy, angle, scale in places:
        M = cv2.getRotationMatrix2D((130, 130), angle, scale)
        M[:, 2] += np.array([cx, cy]) - 130
        warped = cv2.warpAffine(patch, M, (w, h))
        inside = cv2.warpAffine(np.full(patch.shape[:2], 255, np.uint8), M, (w, h)) == 255
        out[inside] = warped[inside]
        landmarks.append((ASTRO_LM - [90, 0]) @ M[:, :2].T + M[:, 2])
    return out, landmarks


#: Three faces across a 720x400 photo: upright, rotated +30 and -30 degrees, three sizes.
THREE = [(130, 200, 0, 0.8), (360, 190, 30, 0.6), (590, 200, -30, 1.0)]


def eye_hole(shape, landmarks, eye=0, half=(10, 7)):
    """(H, W) uint8 mask, 1 on a 2*half box around one eye (0: right eye, 1: left) of ``landmarks``."""
    m = np.zeros(shape[:2], np.uint8)
    x, y = np.rint(landmarks[eye]).astype(int)
    m[y - half[1] : y + half[1], x - half[0] : x + half[0]] = 1
    return m
