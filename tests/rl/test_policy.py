"""Policies in the world model: CEM, the risk maps, model rollouts against a hand rollout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memcim.rl.policy import MLPPolicy, RiskMaps, cem, model_returns, summary
from memcim.rl.storm_coast import WIND


def test_cem_finds_the_top_of_a_concave_score():
    centre = torch.tensor([1.5, -2.0, 0.5])
    mean, history = cem(lambda p: -(p - centre).square().sum(1), 3, iterations=40,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    torch.testing.assert_close(mean, centre, atol=0.05, rtol=0)
    assert history[-1] > history[0]


def test_risk_maps_are_exact_on_the_grid_bilinear_between_and_clamped_outside():
    xs, ys = torch.tensor([0.0, 10.0, 20.0]), torch.tensor([0.0, 5.0])
    ep = torch.tensor([[0.0, 0.1, 0.2], [0.3, 0.4, 0.5]])
    al = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    maps = RiskMaps(xs, ys, ep, al, beta=10.0, gamma=0.5)
    grid = 10 * ep + 0.5 * al
    assert float(maps.penalty(torch.tensor([10.0, 5.0]))) == pytest.approx(float(grid[1, 1]))
    middle = float(grid[:, :2].mean())
    assert float(maps.penalty(torch.tensor([5.0, 2.5]))) == pytest.approx(middle)
    assert float(maps.penalty(torch.tensor([-50.0, 99.0]))) == pytest.approx(float(grid[1, 0]))


def test_policy_actions_are_bounded_and_the_env_function_agrees():
    policy = MLPPolicy(hidden=4)
    params = 3 * torch.randn(5, policy.dim, generator=torch.Generator().manual_seed(1))
    states = 20 * torch.randn(5, 7, 2, generator=torch.Generator().manual_seed(2))
    actions = policy.act(params, states)
    assert actions.shape == (5, 7, 2) and float(actions.abs().max()) <= 1
    one = policy.as_function(params[2])(states[2, 3].numpy())
    np.testing.assert_allclose(one, actions[2, 3].numpy(), rtol=1e-6)


class _WindOnly:
    """A world model that knows the wind and the action but no gusts."""

    def sample_step(self, states, actions, *, generator):
        return torch.as_tensor(WIND, dtype=torch.float32) + actions


def test_model_rollouts_against_a_hand_rollout():
    """Zero action (all parameters zero): the wind alone brings y = 10 − 0.15 k below the
    coast at step 67, after 66 rewarded steps."""
    policy = MLPPolicy(hidden=3)
    params = torch.zeros(2, policy.dim)
    got = model_returns(_WindOnly(), policy, params, episodes=3,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    expected = sum(20 * (1 - math.exp(-1 / math.hypot(20 - 0.3 * k, 10 - 0.15 * k)))
                   for k in range(1, 67)) - 10  # fmt: skip
    torch.testing.assert_close(got, torch.full((2,), expected), rtol=1e-4, atol=1e-3)


def test_summary_intervals():
    returns = np.array([1.0, 2.0, 3.0, 4.0])
    crashes = np.array([True, False, False, False])
    s = summary(returns, crashes)
    assert s["return"] == 2.5 and s["crash_rate"] == 0.25
    assert s["return_ci95"] == pytest.approx(1.96 * np.std(returns, ddof=1) / 2)
    assert s["crash_low"] < 0.25 < s["crash_high"]
