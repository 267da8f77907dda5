"""The world model and the policy search on every device present: training, prediction, the
network on tiles, the uncertainty maps and CEM over model rollouts with the risk penalty keep
every tensor on the transitions' device (on CPU the ``device`` fixture turns a tensor made
without a device into a meta tensor, which fails the step that mixes it in)."""

from __future__ import annotations

import torch

from memcim.rl.policy import MLPPolicy, RiskMaps, cem, model_returns
from memcim.rl.storm_coast import random_transitions
from memcim.rl.world_model import WorldModel, WorldModelConfig, on_tiles, uncertainty_maps


def test_the_world_model_and_the_policy_search_stay_on_the_device(device):
    s, a, s2 = (torch.tensor(v, device=device) for v in random_transitions(60, seed=0))
    gen = torch.Generator(device).manual_seed(0)
    wm = WorldModel(s, a, s2, WorldModelConfig(epochs=2, batch_size=30, hidden=(8,)),
                    generator=gen)  # fmt: skip
    wm.train()
    draws = wm.predict(s[:3], a[:3], latent=2, weights=2)
    assert draws.device.type == device.type
    chip, _ = on_tiles(wm, samples=4, generator=gen)
    xs = torch.linspace(-10, 10, 3, device=device)
    ys = torch.linspace(0, 15, 4, device=device)
    aleatoric, epistemic = uncertainty_maps(wm, xs, ys, latent=2, weights=2, net=chip)
    risk = RiskMaps(xs, ys, epistemic, aleatoric, smoothing=1.0)
    policy = MLPPolicy(hidden=4)
    best, history = cem(lambda p: model_returns(wm, policy, p, episodes=2, generator=gen,
                                                risk=risk, horizon=5),
                        policy.dim, iterations=2, population=6, elites=2,
                        generator=gen)  # fmt: skip
    assert best.device.type == device.type and len(history) == 2
    action = policy.as_function(best)(s[0].cpu().numpy())
    assert action.shape == (2,)
