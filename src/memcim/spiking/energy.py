"""Energy of a spiking network on tiles, from the tiles' own counters.

A spike switches its word line to the read voltage for one read; a silent line stays at 0 V
and dissipates nothing. So the array energy Σ V² G t that every tile counts is spike-driven:
v_read² · t_read · Σ over spikes of the conductance on the spiking word line. The periphery
(ADC, accumulation, buffer) runs at every time step whatever the spikes: it is charged per
step by :func:`memcim.energy.cim.counters_cost`. The buffer holds each input spike as 1 bit
(``CIMEnergyModel.input_bits``, unless the given model sets it) and each output at
``activation_bits`` (default 8: the ADC's code of the bit-line current for the membrane).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from memcim._errors import require
from memcim.energy import CIMCost, CIMEnergyModel
from memcim.energy.cim import combine, cost_since, tile_counters
from memcim.nn import CIMLayer


@dataclass(frozen=True)
class SpikeEnergy:
    """What one pass cost: ``cost`` (every synapse layer, in sequence), the spikes that drove
    word lines, and the time steps × samples of the pass."""

    cost: CIMCost
    input_spikes: float
    steps: int
    samples: int

    @property
    def energy_pj(self) -> float:
        """Energy of the reads (pJ), programming excluded."""
        return self.cost.inference_pj

    @property
    def per_step_pj(self) -> float:
        """Energy per time step and sample (pJ)."""
        return self.energy_pj / (self.steps * self.samples)

    @property
    def array_per_spike_pj(self) -> float:
        """Array energy per input spike (pJ): the spike-driven part."""
        spikes = self.input_spikes
        return self.cost.energy_pj["array"] / spikes if spikes else float("nan")


@torch.no_grad()
def spike_energy(model, spikes: Tensor, *, cim: CIMEnergyModel | None = None) -> SpikeEnergy:
    """Run ``model`` (a :class:`~memcim.spiking.SpikingMLP` on tiles,
    :func:`~memcim.spiking.on_tiles`) on ``spikes`` [T, N, inputs] and price what its tiles
    counted in that pass."""
    cim = cim if cim is not None else CIMEnergyModel()
    if cim.input_bits is None:
        cim = replace(cim, input_bits=1)  # a spike is one bit in the buffer
    layers = list(model.synapses)
    on_tiles = all(isinstance(layer, CIMLayer) for layer in layers)
    require(on_tiles, "model", type(model).__name__, "a spiking network on tiles (on_tiles)")
    before = [tile_counters(layer.matrix) for layer in layers]
    seen = [0.0]

    def count(_module, args) -> None:
        seen[0] += float(args[0].sum())

    handles = [layer.register_forward_pre_hook(count) for layer in layers]
    try:
        model(spikes)
    finally:
        for handle in handles:
            handle.remove()
    costs = [cost_since(layer.matrix, snapshot, cim)
             for layer, snapshot in zip(layers, before, strict=True)]  # fmt: skip
    return SpikeEnergy(combine(costs, parallel=False), seen[0], spikes.shape[0], spikes.shape[1])
