"""Corruptions of a sensor's view that are not additive Gaussian noise."""

from __future__ import annotations

import torch
from torch import Tensor

from memcim._errors import check_generator, require


def pixel_flip(x: Tensor, p: float | Tensor, *, generator: torch.Generator) -> Tensor:
    """Each pixel of ``x`` (values in [0, 1]) replaced by 1 − pixel with probability ``p``,
    independently: a faulty or noisy binary sensor. ``p`` = 0.5 leaves no trace of the image
    in a binary one. ``p``: a number in [0, 1], or a tensor [N] of one probability per input."""
    require(isinstance(x, Tensor) and x.is_floating_point() and x.dim() >= 1, "x",
            getattr(x, "shape", type(x).__name__), "a floating tensor [N, ...]")  # fmt: skip
    check_generator(generator)
    p = torch.as_tensor(p, dtype=x.dtype)
    ok = p.dim() == 0 or (p.dim() == 1 and len(p) == len(x))
    require(ok and bool(((p >= 0) & (p <= 1)).all()), "p", p if p.dim() == 0 else tuple(p.shape),
            f"a probability in [0, 1], or [{len(x)}] of them")  # fmt: skip
    p = p.reshape(-1, *([1] * (x.dim() - 1))) if p.dim() else p
    flip = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) < p
    return torch.where(flip, 1 - x, x)
