"""Software references: Gaussian random-walk MH and NUTS against the quadrature posterior."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from memcim import ConfigError
from memcim.learning.reference import GaussianMHConfig, gaussian_mh, nuts

# No truncation in software: a grid to ±8 holds all but ~e^-30 of the N(0, 1)-prior posterior.
LIMIT = 8.0


def test_gaussian_mh_finds_the_posterior_mean(tiny_logistic, chain_mean_z):
    x, y, exact = tiny_logistic
    cfg = GaussianMHConfig(layers=(1, 1), chains=64, steps=3000, burn_in=1000, thin=10)
    post = gaussian_mh(cfg, x, y, generator=torch.Generator().manual_seed(2))
    assert post.weights[0].shape == (64, 200, 1, 2)
    z = chain_mean_z(post.weights[0][:, :, 0, :], exact(LIMIT))
    # 64 independent chains: |z| < 4 fails with probability 6e-5 per parameter if unbiased.
    assert z.abs().max() < 4, z
    # Step sizes adapted to 0.234 in the burn-in; the kept part accepts near that.
    assert 0.1 < post.acceptance_rate < 0.45
    p = post.predict_proba(x)
    torch.testing.assert_close(p.sum(1), torch.ones(20))


@pytest.mark.skipif(importlib.util.find_spec("pyro") is None, reason="Pyro not installed")
def test_nuts_finds_the_posterior_mean(tiny_logistic):
    x, y, exact = tiny_logistic
    state = torch.random.get_rng_state()
    post = nuts((1, 1), x, y, samples=600, warmup=300, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    draws = post.weights[0][0, :, 0, :]
    # NUTS draws are nearly independent here; the posterior std of w is ~0.6, so 600 draws
    # have SE ~0.025 for the mean; 0.15 is 6 SE and leaves room for mild autocorrelation.
    torch.testing.assert_close(draws.mean(0), exact(LIMIT), atol=0.15, rtol=0)


def test_config_errors():
    with pytest.raises(ConfigError, match="step_size"):
        GaussianMHConfig(step_size=0.0)
    with pytest.raises(ConfigError, match="target_acceptance"):
        GaussianMHConfig(target_acceptance=1.0)
