"""Argument checks shared by the task builders and the episode sampler."""

from __future__ import annotations

import torch

from memcim._errors import require


def check_generator(generator: object) -> torch.Generator:
    """Return ``generator`` or raise :class:`memcim.ConfigError` naming ``generator``."""
    require(
        isinstance(generator, torch.Generator),
        "generator",
        generator,
        "a torch.Generator (e.g. torch.Generator().manual_seed(0)); memcim never uses global RNG",
    )
    return generator  # type: ignore[return-value]
