import torch


def square_mask(size: int, top: int, left: int, side: int, batch: int = 1) -> torch.Tensor:
    """(B, 1, size, size) hole mask with a side x side square hole."""
    m = torch.zeros(batch, 1, size, size)
    m[..., top : top + side, left : left + side] = 1.0
    return m
