"""Policies in the world model: CEM, the risk maps, model rollouts against a hand rollout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memcim import ConfigError
from memcim.rl import StormCoastEnv, gust_std, rollout
from memcim.rl.policy import (
    MLPPolicy,
    RiskMaps,
    cem,
    least_cautious,
    model_returns,
    model_rollouts,
    refine_least_cautious,
    summary,
)


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
    with pytest.raises(ConfigError, match="aleatoric"):
        RiskMaps(xs, ys, ep, al.T)


def test_smoothing_spreads_a_peak_and_keeps_a_flat_map():
    xs, ys = torch.linspace(0, 10, 11), torch.linspace(0, 10, 11)
    flat = torch.full((11, 11), 0.5)
    smooth = RiskMaps(xs, ys, flat, flat, beta=1.0, gamma=1.0, smoothing=2.0)
    torch.testing.assert_close(smooth.grid, torch.full((11, 11), 1.0))
    peak = torch.zeros(11, 11)
    peak[5, 5] = 1.0
    raw = RiskMaps(xs, ys, torch.zeros(11, 11), peak, beta=0.0, gamma=1.0)
    spread = RiskMaps(xs, ys, torch.zeros(11, 11), peak, beta=0.0, gamma=1.0, smoothing=2.0)
    assert float(spread.grid[5, 5]) < 0.1 < float(raw.grid[5, 5])
    assert 0 < float(spread.grid[5, 7]) < float(spread.grid[5, 6]) < float(spread.grid[5, 5])
    assert float(spread.grid.sum()) == pytest.approx(1.0, rel=1e-3)  # no mass lost


def test_policy_actions_are_bounded_and_the_env_function_agrees():
    policy = MLPPolicy(hidden=4)
    params = 3 * torch.randn(5, policy.dim, generator=torch.Generator().manual_seed(1))
    states = 20 * torch.randn(5, 7, 2, generator=torch.Generator().manual_seed(2))
    actions = policy.act(params, states)
    assert actions.shape == (5, 7, 2) and float(actions.abs().max()) <= 1
    one = policy.as_function(params[2])(states[2, 3].numpy())
    np.testing.assert_allclose(one, actions[2, 3].numpy(), rtol=1e-6)


def test_model_rollouts_against_a_hand_rollout(wind_only):
    """Zero action (all parameters zero): the wind alone brings y = 10 − 0.15 k below the
    coast at step 67, after 66 rewarded steps."""
    policy = MLPPolicy(hidden=3)
    params = torch.zeros(2, policy.dim)
    got = model_returns(wind_only, policy, params, episodes=3,
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


def _searched(model, risk, seed):
    policy, g = MLPPolicy(hidden=8), torch.Generator().manual_seed(seed)
    mean, _ = cem(lambda p: model_returns(model, policy, p, episodes=16, generator=g,
                                          risk=risk),
                  policy.dim, iterations=25, population=32, elites=4, generator=g)  # fmt: skip
    _, crashes = rollout(StormCoastEnv(), policy.as_function(mean), 300, seed=7)
    return float(crashes.mean())


def test_the_aleatoric_penalty_is_what_keeps_the_policy_off_the_coast(true_dynamics):
    """With a perfect model and the true gust variance as the aleatoric map, γ = 2 keeps the
    searched policy high (<= 5 % crashes over 300 true episodes) while the same search
    without the penalty flies low and crashes in >= 20 % (hold y = 5: 26 %, y = 7: 0.2 %).
    Both margins are far beyond the binomial spread of 300 episodes (±2.5 points at 10 %);
    search seeds 0-2 give 35 / 31 / 34 % against 0 / 0 / 2 %."""
    xs, ys = torch.linspace(-30, 30, 21), torch.linspace(0, 20, 16)
    variance = torch.as_tensor(gust_std(ys.numpy()) ** 2, dtype=torch.float32)
    aleatoric = variance.unsqueeze(1).expand(16, 21)
    risk = RiskMaps(xs, ys, torch.zeros(16, 21), aleatoric, beta=0.0, gamma=2.0)
    assert _searched(true_dynamics, None, seed=0) >= 0.20
    assert _searched(true_dynamics, risk, seed=0) <= 0.05


def test_model_rollouts_report_crashes(wind_only):
    policy = MLPPolicy(hidden=3)
    returns, crashed = model_rollouts(wind_only, policy, torch.zeros(2, policy.dim),
                                      episodes=4, generator=torch.Generator())  # fmt: skip
    assert returns.shape == crashed.shape == (2, 4) and bool(crashed.all())  # the wind sinks it


def test_least_cautious_takes_the_smallest_weight_within_the_budget():
    rates = {3.0: 0.0, 0.95: 0.4, 2.0: 0.005, 1.5: 0.02}
    assert least_cautious(rates, 0.01) == 2.0
    assert least_cautious(rates, 0.05) == 1.5
    assert least_cautious({1.0: 0.3}, 0.01) is None
    with pytest.raises(ConfigError, match="budget"):
        least_cautious(rates, 1.5)


def test_bisection_narrows_the_grid_to_the_smallest_weight_within_the_budget():
    """Crash rates that fall below the 1 % budget at γ = 0.83: the grid (0.75 over, 0.95
    within) brackets it; two bisections try 0.85 (within: taken) and 0.8 (over: not), so the
    choice moves from 0.95 to 0.85, and every tried γ is recorded. Without bisection the grid's
    0.95 stands."""

    def rate(g: float) -> float:
        return 0.0 if g >= 0.83 else 0.3

    grid = {0.5: 0.4, 0.75: 0.3, 0.95: 0.0, 1.25: 0.0}
    tried = dict(grid)
    assert refine_least_cautious(tried, 0.01, rate, 2) == pytest.approx(0.85)
    assert sorted(tried) == pytest.approx([0.5, 0.75, 0.8, 0.85, 0.95, 1.25])
    assert refine_least_cautious(dict(grid), 0.01, rate, 0) == 0.95
    # Nothing to narrow: the smallest grid weight is within the budget, or none is.
    never = []
    assert refine_least_cautious({0.5: 0.0, 1.0: 0.0}, 0.01, never.append, 3) == 0.5
    assert refine_least_cautious({0.5: 0.5}, 0.01, never.append, 3) is None
    assert never == []
    with pytest.raises(ConfigError, match="steps"):
        refine_least_cautious(dict(grid), 0.01, rate, -1)
