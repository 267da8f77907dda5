"""Policies trained inside the world model, by the cross-entropy method (CEM).

A small tanh MLP maps the position to an action in [−1, 1]². Its parameters are searched by
CEM (Rubinstein; a dependency-light stand-in for the PPO of [9]): each iteration draws a
population from a diagonal Gaussian, scores every candidate by model rollouts from the start,
and refits the Gaussian to the best. A rollout step draws the next state from the world model
(one latent draw and one weight draw per rollout and step), collects the environment's reward
at the predicted position (−10 and the end of the episode below the coast) and, for a
risk-sensitive policy, subtracts β·epistemic + γ·aleatoric read off the uncertainty maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from memcim._errors import check_count, check_generator, is_real, require
from memcim.rl.storm_coast import CRASH_REWARD, HORIZON, START


class MLPPolicy:
    """a = tanh(W₂ tanh(W₁ s̃ + b₁) + b₂), s̃ = (x/20, y/10); parameters as one flat vector
    (batched: ``[P, dim]`` gives P policies at once)."""

    def __init__(self, hidden: int = 16) -> None:
        self.hidden = check_count(hidden, "hidden", 1)
        self.dim = 2 * hidden + hidden + 2 * hidden + 2

    def _unpack(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        h, p = self.hidden, params
        w1 = p[..., : 2 * h].reshape(*p.shape[:-1], h, 2)
        b1 = p[..., 2 * h : 3 * h]
        w2 = p[..., 3 * h : 5 * h].reshape(*p.shape[:-1], 2, h)
        return w1, b1, w2, p[..., 5 * h :]

    def act(self, params: Tensor, states: Tensor) -> Tensor:
        """Actions [P, E, 2] of P policies for their states [P, E, 2]."""
        w1, b1, w2, b2 = self._unpack(params)
        s = states / states.new_tensor([20.0, 10.0])
        h = torch.tanh(torch.einsum("phi,pei->peh", w1, s) + b1.unsqueeze(1))
        return torch.tanh(torch.einsum("poh,peh->peo", w2, h) + b2.unsqueeze(1))

    def as_function(self, params: Tensor):
        """The policy ``params`` [dim] as observation -> action (numpy), for the true
        environment, which runs on the CPU."""
        p = params.detach().cpu().reshape(1, -1)

        def policy(observation: np.ndarray) -> np.ndarray:
            s = torch.as_tensor(observation, dtype=torch.float32, device="cpu").reshape(1, 1, 2)
            return self.act(p, s).reshape(2).numpy()

        return policy


@dataclass(frozen=True)
class RiskMaps:
    """Uncertainty maps on a grid (``xs``, ``ys``) and their weights in the reward: r −
    ``beta`` · epistemic − ``gamma`` · aleatoric, bilinear between grid points and clamped to
    the edge value outside. ``smoothing``: σ of a Gaussian filter over the maps, in grid
    cells (the authors smooth theirs with σ = 2); 0 leaves them as they are."""

    xs: Tensor
    ys: Tensor
    epistemic: Tensor
    aleatoric: Tensor
    beta: float = 40.0
    gamma: float = 0.95
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        shape = (len(self.ys), len(self.xs))
        for name in ("epistemic", "aleatoric"):
            got = tuple(getattr(self, name).shape)
            require(got == shape, f"RiskMaps.{name}", got, f"a map [len(ys), len(xs)] = {shape}")
        for name in ("beta", "gamma", "smoothing"):
            value = getattr(self, name)
            require(is_real(value) and value >= 0, f"RiskMaps.{name}", value, ">= 0")

    @cached_property
    def grid(self) -> Tensor:
        """The penalty β·epistemic + γ·aleatoric at the grid points [len(ys), len(xs)]."""
        grid = self.beta * self.epistemic.float() + self.gamma * self.aleatoric.float()
        if self.smoothing > 0:
            from scipy.ndimage import gaussian_filter

            # SciPy's filter runs on the CPU; the smoothed maps go back where the maps were
            smooth = gaussian_filter(grid.cpu().numpy(), sigma=self.smoothing)
            grid = torch.as_tensor(smooth, device=grid.device)
        return grid

    def penalty(self, states: Tensor) -> Tensor:
        grid = self.grid
        fx = _fraction(states[..., 0], self.xs)
        fy = _fraction(states[..., 1], self.ys)
        x0, y0 = fx.floor().long(), fy.floor().long()
        x1 = (x0 + 1).clamp(max=len(self.xs) - 1)
        y1 = (y0 + 1).clamp(max=len(self.ys) - 1)
        tx, ty = fx - x0, fy - y0
        top = grid[y0, x0] * (1 - tx) + grid[y0, x1] * tx
        bottom = grid[y1, x0] * (1 - tx) + grid[y1, x1] * tx
        return top * (1 - ty) + bottom * ty


def _fraction(values: Tensor, axis: Tensor) -> Tensor:
    """Position of ``values`` in grid units of the evenly spaced ``axis``, clamped to it."""
    step = (axis[-1] - axis[0]) / (len(axis) - 1)
    return ((values - axis[0]) / step).clamp(0, len(axis) - 1)


@torch.no_grad()
def model_rollouts(world_model, policy: MLPPolicy, params: Tensor, *, episodes: int,
                   generator: torch.Generator, risk: RiskMaps | None = None,
                   horizon: int = HORIZON) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``episodes`` model rollouts of each of the P policies ``params`` [P, dim]: the return
    of every rollout (with the risk penalty when ``risk`` is given) and whether it crashed,
    both [P, episodes]."""
    check_count(episodes, "episodes", 1)
    p = params.shape[0]
    on = params.device
    states = torch.tensor(START, dtype=torch.float32, device=on).expand(p, episodes, 2).clone()
    alive = torch.ones(p, episodes, dtype=torch.bool, device=on)
    total = torch.zeros(p, episodes, device=on)
    for _ in range(horizon):
        actions = policy.act(params, states)
        flat_s, flat_a = states.reshape(-1, 2), actions.reshape(-1, 2)
        delta = world_model.sample_step(flat_s, flat_a, generator=generator).reshape(p, episodes, 2)
        nxt = states + delta
        crashed = alive & (nxt[..., 1] < 0)
        d = nxt.norm(dim=-1).clamp_min(1e-12)
        r = torch.where(crashed, CRASH_REWARD, 20 * (1 - torch.exp(-1 / d)))
        if risk is not None:
            r = torch.where(crashed, r, r - risk.penalty(states))
        total += torch.where(alive, r, 0.0)
        alive &= ~crashed
        states = torch.where(alive.unsqueeze(-1), nxt, states)
        if not bool(alive.any()):
            break
    return total, ~alive


def model_returns(world_model, policy: MLPPolicy, params: Tensor, *, episodes: int,
                  generator: torch.Generator, risk: RiskMaps | None = None,
                  horizon: int = HORIZON) -> Tensor:  # fmt: skip
    """Mean return over ``episodes`` model rollouts of each of the P policies ``params``
    [P, dim] (with the risk penalty when ``risk`` is given); [P]. The score CEM maximises."""
    returns, _ = model_rollouts(world_model, policy, params, episodes=episodes,
                                generator=generator, risk=risk, horizon=horizon)  # fmt: skip
    return returns.mean(1)


def cem(score, dim: int, *, iterations: int = 30, population: int = 64, elites: int = 8,
        init_std: float = 1.0, smoothing: float = 0.7, min_std: float = 0.05,
        generator: torch.Generator) -> tuple[Tensor, list[float]]:  # fmt: skip
    """Cross-entropy method: maximise ``score(params [P, dim]) -> [P]``; returns the final
    mean and the best score of every iteration. The Gaussian moves a fraction ``smoothing``
    of the way to the elites' mean and std each iteration, and the std never falls below
    ``min_std`` (extra exploration noise, Szita and Lőrincz 2006): plain CEM's std can
    collapse before the mean has arrived."""
    check_generator(generator)
    check_count(iterations, "iterations", 1)
    require(isinstance(elites, int) and 1 <= elites <= population, "elites", elites,
            f"an int in [1, population={population}]")  # fmt: skip
    require(is_real(init_std) and init_std > 0, "init_std", init_std, "> 0")
    require(is_real(smoothing) and 0 < smoothing <= 1, "smoothing", smoothing, "in (0, 1]")
    require(is_real(min_std) and min_std >= 0, "min_std", min_std, ">= 0")
    on = generator.device
    mean, std = torch.zeros(dim, device=on), torch.full((dim,), float(init_std), device=on)
    history = []
    for _ in range(iterations):
        candidates = mean + std * torch.randn(population, dim, generator=generator, device=on)
        scores = score(candidates)
        best = scores.topk(elites).indices
        a = smoothing
        mean = a * candidates[best].mean(0) + (1 - a) * mean
        std = (a * candidates[best].std(0) + (1 - a) * std).clamp_min(min_std)
        history.append(float(scores[best[0]]))
    return mean, history


def least_cautious(crash_rates: dict[float, float], budget: float) -> float | None:
    """The smallest risk weight γ whose policy crashed in at most ``budget`` of its model
    rollouts (``crash_rates``: γ -> fraction), or ``None`` if none did. The choice uses the
    world model only, never the true environment: a risk budget set by the designer."""
    require(is_real(budget) and 0 <= budget <= 1, "budget", budget, "a fraction in [0, 1]")
    safe = [g for g, rate in crash_rates.items() if rate <= budget]
    return min(safe) if safe else None


def refine_least_cautious(crash_rates: dict[float, float], budget: float, crash_rate_at,
                          steps: int) -> float | None:  # fmt: skip
    """:func:`least_cautious`, sharpened by bisection: ``steps`` times, try the γ halfway
    between the largest tried γ below the choice (which crashed too often) and the choice, and
    keep it if ``crash_rate_at(γ)`` (a new policy's model crash rate) is within ``budget``.
    ``crash_rates`` gains every tried γ. A grid only brackets the smallest γ within the budget;
    this narrows the bracket, assuming (as a bisection must) that the crash rate falls as γ
    rises. Still the world model only."""
    check_count(steps, "steps", 0)
    chosen = least_cautious(crash_rates, budget)
    for _ in range(steps):
        below = [g for g in crash_rates if chosen is not None and g < chosen]
        if not below:
            break
        middle = round((max(below) + chosen) / 2, 9)  # 0.9, not 0.8999999999999999
        crash_rates[middle] = crash_rate_at(middle)
        if crash_rates[middle] <= budget:
            chosen = middle
    return chosen


def summary(returns: np.ndarray, crashes: np.ndarray) -> dict[str, float]:
    """Mean return and crash rate with 95 % intervals (normal; Wilson for the rate)."""
    n = len(returns)
    se = float(returns.std(ddof=1)) / math.sqrt(n)
    k, z = float(crashes.sum()), 1.96
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return {
        "return": float(returns.mean()),
        "return_ci95": 1.96 * se,
        "crash_rate": k / n,
        "crash_low": centre - half,
        "crash_high": centre + half,
    }
