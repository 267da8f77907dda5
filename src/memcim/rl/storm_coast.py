"""The "storm coast" of Lin et al. [9]: a stochastic 2-D environment whose danger is noise.

A craft at (x, y) starts at (20, 10) and wants to reach the harbour at (0, 0). Every step a
wind pushes it by (−0.3, −0.15); the action a ∈ [−1, 1]² adds to that, and a random gust
ε ~ N(0, σ(y)²) moves it vertically, with σ(y) = exp(−0.18 y + 0.9): the closer to the coast
(y = 0) the stormier. Falling below y = 0 is a crash: reward −10 and the episode ends.
Otherwise the reward is 20 (1 − exp(−1/d)), d the distance of the new position to the
harbour, so hugging the coast pays and risks crashing. Episodes last 100 steps.

Reference points (references, "Risk-sensitive RL world model"; 1000 episodes of the
hand-written policy "fly to x = 0, hold y = k", :func:`hold_altitude`): k = 5 returns ~319
with ~25 % crashes, k = 7 ~259 with ~0.2 %.
"""

from __future__ import annotations

import math
from typing import ClassVar

import gymnasium as gym
import numpy as np

WIND = np.array([-0.3, -0.15])
START = np.array([20.0, 10.0])
CRASH_REWARD = -10.0
HORIZON = 100


def gust_std(y: float | np.ndarray) -> float | np.ndarray:
    """σ(y) = exp(−0.18 y + 0.9) of the vertical gust at height y."""
    return np.exp(-0.18 * np.asarray(y) + 0.9)


def reward(position: np.ndarray) -> float:
    """20 (1 − exp(−1/d)) at distance d from the harbour (20 at the harbour itself)."""
    d = float(np.hypot(position[0], position[1]))
    return 20.0 if d == 0 else 20.0 * (1.0 - math.exp(-1.0 / d))


class StormCoastEnv(gym.Env):
    """The storm coast as a ``gymnasium.Env``.

    Observation: the position (x, y), float32. Action: (a_x, a_y) in [−1, 1]² (an action
    outside is an error, not clipped: agents that sample unbounded actions clip them first,
    as stable-baselines3 does). ``terminated`` on a crash, ``truncated`` after ``horizon``
    steps; ``info["crashed"]`` says which.
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, horizon: int = HORIZON) -> None:
        if not (isinstance(horizon, int) and horizon >= 1):
            raise ValueError(f"horizon={horizon!r} is invalid: an int >= 1")
        self.horizon = horizon
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = START.copy()
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._position = START.copy()
        self._steps = 0
        return self._position.astype(np.float32), {}

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
            raise ValueError(f"action={action!r} is invalid: two finite numbers in [-1, 1]")
        before = self._position
        self._position = before + self._move(before, a)
        self._steps += 1
        crashed = bool(self._position[1] < 0)
        r = CRASH_REWARD if crashed else reward(self._position) - self._penalty(before)
        truncated = not crashed and self._steps >= self.horizon
        obs = self._position.astype(np.float32)
        return obs, r, crashed, truncated, {"crashed": crashed}

    def _move(self, position: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The displacement of one step from ``position``: wind, action and the gust."""
        gust = self.np_random.normal(0.0, gust_std(position[1]))
        return WIND + action + np.array([0.0, gust])

    def _penalty(self, position: np.ndarray) -> float:
        """Subtracted from the reward of a step from ``position`` that does not crash."""
        return 0.0


def hold_altitude(height: float):
    """The hand-written reference policy "fly to x = 0, hold y = ``height``": each action
    cancels the wind and steers toward (0, height) as far as [−1, 1] allows."""

    def policy(observation: np.ndarray) -> np.ndarray:
        x, y = float(observation[0]), float(observation[1])
        return np.clip([-x - WIND[0], height - y - WIND[1]], -1.0, 1.0).astype(np.float32)

    return policy


def rollout(env: StormCoastEnv, policy, episodes: int, *,
            seed: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Returns and crash flags of ``episodes`` episodes of ``policy`` (observation -> action)."""
    returns, crashes = np.zeros(episodes), np.zeros(episodes, dtype=bool)
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        done = False
        while not done:
            obs, r, terminated, truncated, info = env.step(policy(obs))
            returns[e] += r
            done = terminated or truncated
        crashes[e] = info["crashed"]
    return returns, crashes


def random_transitions(count: int, *, seed: int, horizon: int = HORIZON,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``count`` transitions (state, action, next state) of uniformly random actions, episode
    after episode (the world model's training data: 4000 in [9]). A crash ends its episode;
    its transition is kept, with the next state below the coast."""
    if not (isinstance(count, int) and count >= 1):
        raise ValueError(f"count={count!r} is invalid: an int >= 1")
    env = StormCoastEnv(horizon=horizon)
    env.action_space.seed(seed)
    states, actions, following = [], [], []
    obs, _ = env.reset(seed=seed)
    while len(states) < count:
        action = env.action_space.sample()
        nxt, _, terminated, truncated, _ = env.step(action)
        states.append(obs)
        actions.append(action)
        following.append(nxt)
        obs = env.reset()[0] if terminated or truncated else nxt
    return np.array(states), np.array(actions), np.array(following)


def cruise_height(env: StormCoastEnv, policy, episodes: int, *, seed: int,
                  after: int = 40) -> float:  # fmt: skip
    """Median height y over the steps from ``after`` on of ``episodes`` episodes of
    ``policy``: where it settles to fly (``nan`` if no episode lasts that long)."""
    heights = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        for step in range(env.horizon):
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            if terminated or truncated:
                break
            if step >= after:
                heights.append(float(obs[1]))
    return float(np.median(heights)) if heights else math.nan
