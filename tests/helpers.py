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
            return torch.full_like(image, 0.5)

    return Recorder()


def save_tiny_apfi(path):
    """Seeded weights of a narrowed APFI small for 64 px photos, saved at ``path`` (returned)."""
    from facefill.checkpoint import save_weights
    from facefill.models import create_model

    torch.manual_seed(0)
    G = create_model("apfi", "small", width=8, reasoning=(8, 16, 16), unet=(16, 16, 16), cycles=2)
    save_weights(G, path, extra={"train_config": {"data": {"size": 64}}})
    return path
