"""PPO inside the world model, as the authors of [9] trained their policy (optional extra:
``pip install "memcim[rl]"`` for stable-baselines3).

:class:`WorldModelEnv` is the storm coast as the world model imagines it: a ``gymnasium.Env``
whose steps are drawn from the model (one latent, weight and output-noise draw per step),
with the true reward formula at the predicted position, a crash below the coast, and the
risk penalty of :class:`~memcim.rl.policy.RiskMaps` when one is given. Any gymnasium agent
can learn in it; :func:`ppo_policy` trains stable-baselines3's PPO (its default MLP, two
tanh layers of 64, as the authors' PPO1) and returns the policy for the true environment.
"""

from __future__ import annotations

import numpy as np
import torch

from memcim._errors import check_count
from memcim.rl.policy import RiskMaps
from memcim.rl.storm_coast import HORIZON, StormCoastEnv


class WorldModelEnv(StormCoastEnv):
    """The storm coast inside a world model (module docstring): the true environment
    (:class:`~memcim.rl.StormCoastEnv`) with each step's displacement drawn from the model
    and the risk penalty taken at the state the step leaves. The model draws from a
    generator seeded by ``reset(seed=...)``."""

    def __init__(self, world_model, *, risk: RiskMaps | None = None,
                 horizon: int = HORIZON) -> None:  # fmt: skip
        super().__init__(horizon=check_count(horizon, "horizon", 1))
        self.world_model, self.risk = world_model, risk
        self._generator = torch.Generator().manual_seed(0)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._generator.manual_seed(seed)
        return super().reset(seed=seed, options=options)

    def _move(self, position: np.ndarray, action: np.ndarray) -> np.ndarray:
        state = torch.as_tensor(position, dtype=torch.float32).reshape(1, 2)
        a = torch.as_tensor(action, dtype=torch.float32).reshape(1, 2)
        delta = self.world_model.sample_step(state, a, generator=self._generator)
        return delta.reshape(2).double().numpy()

    def _penalty(self, position: np.ndarray) -> float:
        if self.risk is None:
            return 0.0
        return float(self.risk.penalty(torch.as_tensor(position, dtype=torch.float32)))


def ppo_policy(world_model, *, risk: RiskMaps | None = None, timesteps: int = 50_000,
               seed: int = 0, gamma: float = 0.99):  # fmt: skip
    """Train stable-baselines3 PPO in :class:`WorldModelEnv` for ``timesteps`` steps (the
    authors: 50 001, discount 0.99) and return its deterministic policy, observation ->
    action in [−1, 1]², for :func:`memcim.rl.rollout` on the true environment.

    Raises:
        ImportError: stable-baselines3 is not installed (``pip install "memcim[rl]"``).
    """
    check_count(timesteps, "timesteps", 1)
    try:
        from stable_baselines3 import PPO
    except ImportError as error:
        raise ImportError(
            'ppo_policy needs stable-baselines3: pip install "memcim[rl]" (or use the '
            "dependency-light memcim.rl.policy.cem)"
        ) from error
    env = WorldModelEnv(world_model, risk=risk)
    # The authors' PPO1 (stable-baselines 2.10) as they set it: 512 steps per update, clip 0.2,
    # entropy bonus 0.03; and PPO1's defaults for the rest: 4 epochs over minibatches of 64,
    # Adam at 1e-3, learning rate and clip range annealed linearly to 0, the value loss
    # weighted 1. (stable-baselines3 keeps its gradient-norm clip, 0.5; PPO1 has none.)
    n_steps = min(512, timesteps)
    agent = PPO("MlpPolicy", env, gamma=gamma, seed=seed, verbose=0, device="cpu",
                n_steps=n_steps, batch_size=min(64, n_steps), n_epochs=4, ent_coef=0.03,
                learning_rate=lambda remaining: 1e-3 * remaining,
                clip_range=lambda remaining: 0.2 * remaining, vf_coef=1.0)  # fmt: skip
    agent.learn(total_timesteps=timesteps)

    def policy(observation: np.ndarray) -> np.ndarray:
        action, _ = agent.predict(np.asarray(observation, dtype=np.float32), deterministic=True)
        return np.clip(action, -1.0, 1.0)

    return policy
