"""Sinusoid regression tasks for meta-learning (Finn et al. 2017, MAML §5.1).

A task is y = A · sin(x − φ) with amplitude A ~ U[0.1, 5] and phase φ ~ U[0, π]; inputs are
x ~ U[−5, 5]. A K-shot task gives K support points to adapt on and query points (drawn
independently from the same task) to measure the mean squared error after adaptation.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from memcim._errors import check_count, check_generator, is_real, require


class SinusoidBatch(NamedTuple):
    """``B`` sinusoid tasks.

    Attributes:
        support_x, support_y: [B, k_shot, 1] inputs and targets to adapt on.
        query_x, query_y: [B, q_queries, 1] held-out points of the same tasks.
        amplitude, phase: [B] the tasks' A and φ (radians).
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    amplitude: Tensor
    phase: Tensor


class SinusoidTasks:
    """Sampler of sinusoid regression tasks.

    Args:
        amplitude: (low, high) of the uniform amplitude; Finn et al.: (0.1, 5).
        phase: (low, high) of the uniform phase (radians); Finn et al.: (0, π).
        x_range: (low, high) of the uniform inputs; Finn et al.: (−5, 5).
    """

    def __init__(
        self,
        *,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        for name, pair in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            require(
                len(pair) == 2 and all(is_real(v) for v in pair) and pair[0] < pair[1],
                name,
                pair,
                "a (low, high) pair of finite numbers with low < high",
            )
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range

    def sample(
        self, n_tasks: int, k_shot: int, q_queries: int, *, generator: torch.Generator
    ) -> SinusoidBatch:
        """Draw ``n_tasks`` tasks with ``k_shot`` support and ``q_queries`` query points each,
        on the generator's device."""
        b = check_count(n_tasks, "n_tasks", 1)
        k = check_count(k_shot, "k_shot", 1)
        q = check_count(q_queries, "q_queries", 1)
        gen = check_generator(generator)

        def uniform(shape: tuple[int, ...], bounds: tuple[float, float]) -> Tensor:
            u = torch.rand(shape, generator=gen, device=gen.device)
            return u * (bounds[1] - bounds[0]) + bounds[0]

        amplitude, phase = uniform((b,), self.amplitude), uniform((b,), self.phase)
        x = uniform((b, k + q, 1), self.x_range)
        y = amplitude.view(b, 1, 1) * torch.sin(x - phase.view(b, 1, 1))
        return SinusoidBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:], amplitude, phase)
