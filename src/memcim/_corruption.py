"""Additive Gaussian input noise, shared by ``memcim.data`` and ``memcim.metrics``.

A private module below both: ``memcim.data`` publishes it as
:func:`memcim.data.gaussian_corruption` (a task builder for robustness sets) and
``memcim.metrics.accuracy_under_noise`` corrupts its inputs with it, while the architecture
forbids metrics and data from importing each other (see ``docs/architecture.md``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memcim._errors import check_generator, require


def gaussian_corruption(
    x: Tensor,
    sigma: float,
    *,
    generator: torch.Generator,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """Add i.i.d. N(0, σ²) noise to every input element, then clip to the valid range.

    Clipping keeps corrupted pixels physical (the DAC / sensor range), so the effective noise
    is *not* Gaussian near the bounds: its standard deviation there is below σ. Pass
    ``clip=None`` for unclipped Gaussian noise.

    Args:
        x: inputs of any shape, floating point (e.g. images in [0, 1]).
        sigma: noise standard deviation σ >= 0, in the units of ``x``; 0 returns a clipped copy.
        generator: source of randomness (on the device of ``x``).
        clip: ``(low, high)`` bounds applied after adding noise, ``low < high``; ``None``: none.

    Returns:
        Corrupted inputs, same shape and dtype as ``x``.

    Raises:
        ConfigError: ``x`` is not a floating tensor, ``sigma`` is negative or not finite,
            ``clip`` is not an increasing pair, or ``generator`` is not a ``torch.Generator``.
    """
    require(
        isinstance(x, Tensor) and x.is_floating_point(),
        "x",
        f"{x.dtype}" if isinstance(x, Tensor) else type(x).__name__,
        "a floating-point tensor",
    )
    require(
        isinstance(sigma, int | float) and math.isfinite(sigma) and sigma >= 0,
        "sigma",
        sigma,
        "a finite number >= 0",
    )
    if clip is not None:
        ok = (
            isinstance(clip, tuple | list)
            and len(clip) == 2
            and all(isinstance(b, int | float) and not math.isnan(b) for b in clip)
            and clip[0] < clip[1]
        )
        require(ok, "clip", clip, "None or a pair (low, high) with low < high")
    check_generator(generator)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device)
    noise = noise.to(x.device)
    out = x + sigma * noise
    return out if clip is None else out.clamp_(clip[0], clip[1])
