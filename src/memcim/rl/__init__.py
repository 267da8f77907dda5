"""Reinforcement learning with memristor Bayesian world models (Lin et al. [9]).

- :class:`StormCoastEnv`: the storm-coast environment as a ``gymnasium.Env``;
  :func:`hold_altitude` and :func:`rollout` for reference policies; registered with
  gymnasium as ``memcim/StormCoast-v0``.
- :func:`split_variance`: aleatoric = Var_z(E_W[y']) and epistemic = E_z[Var_W(y')] of a
  world model's predictions over latent and weight draws.
"""

import gymnasium

from memcim.rl.storm_coast import StormCoastEnv, gust_std, hold_altitude, reward, rollout
from memcim.rl.uncertainty import VarianceSplit, split_variance

#: ``gymnasium.make(STORM_COAST_ID)`` builds the environment.
STORM_COAST_ID = "memcim/StormCoast-v0"
if STORM_COAST_ID not in gymnasium.registry:
    gymnasium.register(id=STORM_COAST_ID, entry_point="memcim.rl.storm_coast:StormCoastEnv")

__all__ = [
    "STORM_COAST_ID",
    "StormCoastEnv",
    "VarianceSplit",
    "gust_std",
    "hold_altitude",
    "reward",
    "rollout",
    "split_variance",
]
