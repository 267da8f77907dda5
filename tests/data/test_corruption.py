"""Pixel flips of a binary sensor."""

from __future__ import annotations

import math

import pytest
import torch

from memcim import ConfigError
from memcim.data import pixel_flip


def test_flip_probabilities_zero_and_one():
    x = torch.rand(8, 28, 28)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(pixel_flip(x, 0.0, generator=gen), x)
    torch.testing.assert_close(pixel_flip(x, 1.0, generator=gen), 1 - x)


def test_flipped_fraction_matches_p():
    """200 000 binary pixels at p = 0.3: the flipped fraction's SE is sqrt(0.21 / 2e5) = 0.001;
    the bound is 5 SE."""
    x = torch.zeros(200, 1000)
    fraction = float(pixel_flip(x, 0.3, generator=torch.Generator().manual_seed(1)).mean())
    assert abs(fraction - 0.3) < 5 * math.sqrt(0.21 / 2e5)


def test_one_probability_per_input():
    x = torch.zeros(2, 5000)
    out = pixel_flip(x, torch.tensor([0.0, 1.0]), generator=torch.Generator().manual_seed(2))
    assert float(out[0].sum()) == 0 and float(out[1].sum()) == 5000


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), torch.tensor([0.1, 0.2, 0.3])])
def test_bad_probability_names_p(p):
    with pytest.raises(ConfigError, match="p="):
        pixel_flip(torch.zeros(2, 4), p, generator=torch.Generator())
