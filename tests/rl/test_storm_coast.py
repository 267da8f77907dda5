"""The storm-coast environment: steps by hand, crash and horizon, gymnasium's checker, and
the reference policies' returns and crash rates from REFERENCES."""

from __future__ import annotations

import copy
import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from memcim.rl import (
    STORM_COAST_ID,
    StormCoastEnv,
    cruise_height,
    gust_std,
    hold_altitude,
    reward,
    rollout,
)


def test_a_step_by_hand():
    env = StormCoastEnv()
    obs, _ = env.reset(seed=3)
    assert obs.tolist() == [20.0, 10.0]
    rng = copy.deepcopy(env.np_random)  # the gust the step will draw
    gust = rng.normal(0.0, math.exp(-0.18 * 10 + 0.9))
    obs, r, terminated, truncated, info = env.step(np.array([0.5, -0.25], dtype=np.float32))
    x, y = 20 - 0.3 + 0.5, 10 - 0.15 - 0.25 + gust
    assert obs == pytest.approx([x, y], rel=1e-6)
    assert r == pytest.approx(20 * (1 - math.exp(-1 / math.hypot(x, y))))
    assert not terminated and not truncated and not info["crashed"]


def test_gust_and_reward_formulas():
    assert gust_std(0.0) == pytest.approx(math.exp(0.9))
    assert gust_std(5.0) == pytest.approx(math.exp(-0.9 + 0.9))
    assert reward(np.array([3.0, 4.0])) == pytest.approx(20 * (1 - math.exp(-0.2)))
    assert reward(np.array([0.0, 0.0])) == 20.0


def test_falling_below_the_coast_crashes_with_minus_ten():
    env = StormCoastEnv()
    env.reset(seed=0)
    down = np.array([0.0, -1.0], dtype=np.float32)
    for _ in range(100):
        obs, r, terminated, truncated, info = env.step(down)
        if terminated:
            break
    assert terminated and info["crashed"] and r == -10.0 and obs[1] < 0 and not truncated


def test_episodes_end_at_the_horizon():
    env = StormCoastEnv(horizon=7)
    env.reset(seed=1)
    up = np.array([0.0, 1.0], dtype=np.float32)  # climbing away from the storm never crashes
    flags = [env.step(up)[3] for _ in range(7)]
    assert flags == [False] * 6 + [True]


def test_bad_actions_and_settings_are_named():
    env = StormCoastEnv()
    env.reset(seed=0)
    for bad in ([1.5, 0.0], [0.0], [np.nan, 0.0]):
        with pytest.raises(ValueError, match="action"):
            env.step(np.array(bad, dtype=np.float32))
    with pytest.raises(ValueError, match="horizon"):
        StormCoastEnv(horizon=0)


def test_gymnasium_checker_and_registration():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded observations are intended
        check_env(StormCoastEnv(), skip_render_check=True)
        env = gymnasium.make(STORM_COAST_ID)
    assert isinstance(env.unwrapped, StormCoastEnv)


@pytest.mark.parametrize(("height", "mean_return", "crash_rate"), [(5, 319, 0.25), (7, 259, 0.002)])
def test_reference_policies_match_the_published_points(height, mean_return, crash_rate):
    """REFERENCES: "fly to x = 0, hold y = k" over 1000 episodes, from a re-implementation
    whose controller details are not given. Ours, 1000 episodes: 315.4 / 26.3 % (k = 5) and
    256.0 / 0.2 % (k = 7); how exactly the controller cancels the wind moves the return by
    ~1-2 %, so the returns must agree within 2 % and the crash rates within 3 standard errors
    (binomial, 1000 episodes) plus a point."""
    returns, crashes = rollout(StormCoastEnv(), hold_altitude(height), 1000, seed=0)
    assert returns.mean() == pytest.approx(mean_return, rel=0.02)
    se = math.sqrt(crash_rate * (1 - crash_rate) / 1000)
    assert abs(crashes.mean() - crash_rate) <= 3 * se + 0.01


def test_random_transitions_follow_the_dynamics():
    from memcim.rl.storm_coast import WIND, random_transitions

    s, a, s2 = random_transitions(500, seed=4)
    assert s.shape == a.shape == s2.shape == (500, 2)
    assert np.all(np.abs(a) <= 1)
    # x moves deterministically; y by the gust, whose spread follows σ(y).
    np.testing.assert_allclose(s2[:, 0], s[:, 0] + WIND[0] + a[:, 0], rtol=1e-5, atol=1e-4)
    gusts = (s2[:, 1] - s[:, 1] - WIND[1] - a[:, 1]) / gust_std(s[:, 1])
    assert abs(gusts.mean()) < 0.2 and abs(gusts.std() - 1) < 0.1  # 500 draws: se 0.045, 0.03


def test_cruise_height_is_where_a_policy_holds():
    """ "Hold y = 7" settles at 7 (gusts of σ ≈ 0.7 around it, median over 20 episodes)."""
    assert cruise_height(StormCoastEnv(), hold_altitude(7), 20, seed=0) == pytest.approx(7, abs=0.3)
    assert math.isnan(cruise_height(StormCoastEnv(horizon=10), hold_altitude(7), 2, seed=0))
