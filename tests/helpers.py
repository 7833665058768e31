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
