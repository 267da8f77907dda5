"""Spiking front ends: event encoders and spiking networks on crossbar tiles.

- :func:`rate`, :func:`latency`: rate and latency codes of MNIST-family images.
- :func:`saccades`: ON / OFF events of an image moved along small translations.
- :class:`SpikingMLP`: linear synapses and snnTorch leaky integrate-and-fire neurons;
  :func:`on_tiles` puts its synapses on crossbar tiles, driven by the spikes;
  :func:`synapse_inputs` records the spikes each synapse receives, and :func:`current_error`
  compares two networks' synaptic currents on the same spikes.
- :func:`spike_energy`: the energy of a pass on tiles from their counters, per step and per
  spike.
- :mod:`memcim.spiking.train`: training on rate-coded images (spike-count cross-entropy,
  surrogate gradients) and Monte-Carlo class probabilities over spike-train draws.
- :mod:`memcim.spiking.fusion`: fusing modalities: product of experts, mean, log-linear and
  uncertainty-weighted pooling.
- :mod:`memcim.spiking.system`: the sensor-fusion pipeline as chiplets priced from counters.
"""

from memcim.spiking.encoding import SACCADE_PATH, latency, rate, saccades
from memcim.spiking.energy import SpikeEnergy, spike_energy
from memcim.spiking.network import (
    SPIKE_DRIVE,
    SpikingMLP,
    current_error,
    on_tiles,
    synapse_inputs,
)

__all__ = [
    "SACCADE_PATH",
    "SPIKE_DRIVE",
    "SpikeEnergy",
    "SpikingMLP",
    "current_error",
    "latency",
    "on_tiles",
    "rate",
    "saccades",
    "spike_energy",
    "synapse_inputs",
]
