"""The storm coast inside a world model as a gymnasium environment, and PPO (optional extra)
learning in it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from memcim.rl.policy import RiskMaps
from memcim.rl.ppo import WorldModelEnv, ppo_policy


def test_env_checker_passes(true_dynamics):
    check_env(WorldModelEnv(true_dynamics), skip_render_check=True)


def test_an_episode_against_a_hand_rollout(wind_only):
    """Zero action in a model of the wind alone: below the coast at step 67 (as
    model_rollouts); a flat risk map takes 0.5 off every rewarded step."""
    xs, ys = torch.tensor([-30.0, 30.0]), torch.tensor([0.0, 20.0])
    half = torch.full((2, 2), 0.5)
    for risk, penalty in ((None, 0.0), (RiskMaps(xs, ys, torch.zeros(2, 2), half, gamma=1.0),
                                        0.5)):  # fmt: skip
        env = WorldModelEnv(wind_only, risk=risk)
        env.reset(seed=0)
        total, steps, crashed = 0.0, 0, False
        while not crashed:
            _, r, crashed, truncated, info = env.step(np.zeros(2, dtype=np.float32))
            total, steps = total + r, steps + 1
            assert not truncated
        expected = sum(20 * (1 - math.exp(-1 / math.hypot(20 - 0.3 * k, 10 - 0.15 * k)))
                       - penalty for k in range(1, 67)) - 10  # fmt: skip
        assert steps == 67 and info["crashed"]
        assert total == pytest.approx(expected, rel=1e-4)


def test_bad_actions_are_named(wind_only):
    env = WorldModelEnv(wind_only)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([2.0, 0.0]))


def test_ppo_trains_in_the_model_and_returns_a_bounded_policy(true_dynamics):
    """A short PPO run (with the rl extra installed) gives a policy for the true environment.
    Whether PPO learns to avoid the coast is measured by the risk-rl experiment (learner="ppo"),
    not here."""
    pytest.importorskip("stable_baselines3")
    policy = ppo_policy(true_dynamics, timesteps=256, seed=0)
    action = policy(np.array([20.0, 10.0], dtype=np.float32))
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)
