"""Reinforcement learning with memristor Bayesian world models (Lin et al. [9]).

- :class:`StormCoastEnv`: the storm-coast environment as a ``gymnasium.Env``;
  :func:`hold_altitude`, :func:`rollout` and :func:`cruise_height` for reference policies;
  registered with gymnasium as ``memcim/StormCoast-v0``.
- :func:`split_variance`: aleatoric = Var_z(E_W[y']) and epistemic = E_z[Var_W(y')] of a
  world model's predictions over latent and weight draws.
- :class:`WorldModel` (:mod:`memcim.rl.world_model`): a Bayesian network with a latent input
  trained on transitions, predicting latent × weight draws of the next state; ``device_aware``
  keeps its σ at what read-noise devices realise, ``on_tiles`` puts it on crossbar tiles and
  ``uncertainty_maps`` draws the aleatoric and epistemic maps of a state grid.
- :mod:`memcim.rl.policy`: small MLP policies searched by the cross-entropy method in model
  rollouts, risk-neutral or with the risk penalty β·epistemic + γ·aleatoric of the maps.
- :mod:`memcim.rl.ppo`: the storm coast inside a world model as a ``gymnasium.Env``, and
  stable-baselines3 PPO trained in it (optional extra ``memcim[rl]``).
- :mod:`memcim.rl.cost`: energy and latency of one decomposition on the tiles against a
  digital processor.
"""

import gymnasium

from memcim.rl.storm_coast import (
    StormCoastEnv,
    cruise_height,
    gust_std,
    hold_altitude,
    reward,
    rollout,
)
from memcim.rl.uncertainty import VarianceSplit, split_variance
from memcim.rl.world_model import LatentBNN, WorldModel, WorldModelConfig

#: ``gymnasium.make(STORM_COAST_ID)`` builds the environment.
STORM_COAST_ID = "memcim/StormCoast-v0"
if STORM_COAST_ID not in gymnasium.registry:
    gymnasium.register(id=STORM_COAST_ID, entry_point="memcim.rl.storm_coast:StormCoastEnv")

__all__ = [
    "STORM_COAST_ID",
    "LatentBNN",
    "StormCoastEnv",
    "VarianceSplit",
    "WorldModel",
    "WorldModelConfig",
    "cruise_height",
    "gust_std",
    "hold_altitude",
    "reward",
    "rollout",
    "split_variance",
]
