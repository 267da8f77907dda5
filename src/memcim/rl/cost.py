"""Energy and latency of one uncertainty decomposition: on read-noise CIM tiles against a
digital processor (Lin et al. [9] report 10× faster and 150× more energy-efficient than a
digital computer).

One decomposition of one state runs the world model's network M × N times: M latent draws,
each with N weight draws. On the tiles every read is a fresh weight draw, so the M latent
inputs are read N times each; a digital processor draws N weight samples (one Gaussian per
weight each) and runs the M latent inputs through every sample. Both prices come from
:func:`memcim.energy.profile` on the same pass: the tiles' counters on one side, the
processor model on the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from memcim._errors import check_count, require
from memcim.energy import EDGE_CPU, DigitalProcessor, profile


@dataclass(frozen=True)
class DecompositionCost:
    """Energy (pJ) and latency (s) of one decomposition of one state, on CIM and digitally."""

    cim_pj: float
    cim_s: float
    digital_pj: float
    digital_s: float
    processor: str

    @property
    def energy_ratio(self) -> float:
        """How many times less energy the tiles take."""
        return self.digital_pj / self.cim_pj

    @property
    def speedup(self) -> float:
        """How many times faster the tiles are."""
        return self.digital_s / self.cim_s

    def as_dict(self) -> dict[str, float | str]:
        return {"cim_pj": self.cim_pj, "cim_s": self.cim_s, "digital_pj": self.digital_pj,
                "digital_s": self.digital_s, "energy_ratio": self.energy_ratio,
                "speedup": self.speedup, "processor": self.processor}  # fmt: skip


def _as_sequential(net: nn.Module) -> nn.Sequential:
    """The world model's network (:class:`~memcim.rl.world_model.LatentBNN`, its layers with
    ReLU between them) as a sequential model, the same modules, as
    :func:`memcim.energy.profile` runs it."""
    layers: list[nn.Module] = []
    for i, layer in enumerate(net.layers):
        layers += [layer] if i == len(net.layers) - 1 else [layer, nn.ReLU()]
    return nn.Sequential(*layers).eval()


def decomposition_cost(model, hardware_net: nn.Module, state: torch.Tensor, *, latent: int,
                       weights: int, processor: DigitalProcessor = EDGE_CPU,
                       generator: torch.Generator) -> DecompositionCost:  # fmt: skip
    """Price the decomposition of ``state`` [2] at zero action with ``latent`` × ``weights``
    draws.

    Args:
        model: the :class:`~memcim.rl.world_model.WorldModel` (its standardisation and latent
            prior).
        hardware_net: its network on read-noise tiles (:func:`~memcim.rl.world_model.on_tiles`);
            its counters are read, so the tiles are run once more here.
        state: one state (x, y).
        latent, weights: M and N.
        processor: the digital processor of the comparison (weights fetched once for the M
            latent inputs of one decomposition).
        generator: the latent draws.
    """
    check_count(latent, "latent", 1)
    check_count(weights, "weights", 1)
    require(state.shape == (2,), "state", tuple(state.shape), "one state (x, y), shape [2]")
    s = state.float().reshape(1, 2).expand(latent, 2)
    z = math.sqrt(model.config.latent_prior_var) * torch.randn(latent, 1, generator=generator)
    xz = torch.cat([model.inputs(s, torch.zeros_like(s)), z], dim=1)
    cim = profile(_as_sequential(hardware_net), xz, samples=weights, batch=latent)
    digital = profile(_as_sequential(model.net), xz, samples=weights, processor=processor,
                      batch=latent)  # fmt: skip
    # Per inference (one latent input through N weight draws) × the M latent inputs.
    return DecompositionCost(cim_pj=cim.energy_pj * latent, cim_s=cim.latency_s * latent,
                             digital_pj=digital.energy_pj * latent,
                             digital_s=digital.latency_s * latent,
                             processor=processor.name)  # fmt: skip
