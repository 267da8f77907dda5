"""World models that need no training, for the policy tests (as fixtures)."""

from __future__ import annotations

import pytest
import torch

from memcim.rl import gust_std
from memcim.rl.storm_coast import WIND


class WindOnly:
    """A world model that knows the wind and the action but no gusts."""

    def sample_step(self, states, actions, *, generator):
        return torch.as_tensor(WIND, dtype=torch.float32) + actions


class TrueDynamics:
    """A world model that is the environment itself: wind, action and the gust σ(y)."""

    def sample_step(self, states, actions, *, generator):
        gust = torch.as_tensor(gust_std(states[:, 1].numpy()), dtype=torch.float32)
        delta = torch.as_tensor(WIND, dtype=torch.float32) + actions
        delta[:, 1] += gust * torch.randn(len(states), generator=generator)
        return delta


@pytest.fixture
def wind_only() -> WindOnly:
    return WindOnly()


@pytest.fixture
def true_dynamics() -> TrueDynamics:
    return TrueDynamics()
