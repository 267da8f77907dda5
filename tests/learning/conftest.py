"""A two-parameter logistic problem whose posterior mean is known by quadrature."""

from __future__ import annotations

import math

import pytest
import torch

from memcim.learning import network


@pytest.fixture(scope="session")
def tiny_logistic():
    """20 points of y ~ Bernoulli(sigmoid(2x)) and ``exact(limit)``: the posterior means of
    (w, b) under a N(0, 1) prior, by quadrature on a 801² grid over [−limit, limit]² (the prior
    truncated there; the grid step 2·limit/800 makes the quadrature error negligible)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 1, generator=g)
    y = (torch.rand(20, generator=g) < torch.sigmoid(2 * x[:, 0])).long()

    def exact(limit: float) -> torch.Tensor:
        grid = torch.linspace(-limit, limit, 801, dtype=torch.float64)
        w, b = torch.meshgrid(grid, grid, indexing="ij")
        theta = torch.stack([w, b], -1).reshape(-1, 1, 2)
        logits = network.forward([theta], x.double(), "tanh")
        logp = network.log_likelihood(logits, y) - 0.5 * (theta**2).sum((-2, -1))
        p = (logp - logp.max()).exp()
        p /= p.sum()
        return (p[:, None] * theta[:, 0, :]).sum(0).float()

    return x, y, exact


@pytest.fixture(scope="session")
def chain_mean_z():
    """``z(samples, expected)``: (estimate − expected) / SE per parameter, samples [chains,
    draws, params]. The SE comes from the spread of the independent chains' means
    (std / √chains), which accounts for the autocorrelation within each chain."""

    def z(samples: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        means = samples.mean(1)
        se = means.std(0) / math.sqrt(means.shape[0])
        return (means.mean(0) - expected) / se

    return z
