"""Spike-driven energy of a spiking network on tiles, against a hand count."""

from __future__ import annotations

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.devices import IdealDevice
from memcim.energy import CIMEnergyModel
from memcim.nn import CIMConfig
from memcim.spiking import SPIKE_DRIVE, SpikingMLP, on_tiles, rate
from memcim.spiking.energy import spike_energy

TILE = TileConfig(device=IdealDevice(), dac=SPIKE_DRIVE, adc=ConverterConfig(bits=None))


@pytest.fixture
def network():
    torch.manual_seed(0)
    model = SpikingMLP((16, 8, 4))
    with torch.no_grad():
        for synapse in model.synapses:
            synapse.weight.mul_(3)
    return on_tiles(model, CIMConfig(tile=TILE, clip_sigma=None)).eval()


def _layer_inputs(model, x):
    seen = []
    handles = [layer.register_forward_pre_hook(lambda m, a: seen.append((m, a[0].clone())))
               for layer in model.synapses]  # fmt: skip
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return seen


def test_array_energy_is_v2_t_times_the_conductance_of_every_spiking_word_line(network):
    """E_array = v_read² · t_read · Σ over input spikes of Σ_j G_ij of that word line (the
    cells' conductances read from the tile state); ADC off (ideal), so the periphery is the
    accumulation of every output and the buffer of every input and output at every step."""
    x = rate(torch.rand(5, 16, generator=torch.Generator().manual_seed(1)), 12,
             generator=torch.Generator().manual_seed(2))  # fmt: skip
    inputs = _layer_inputs(network, x)  # the pass the energy below repeats (no noise)
    energy = spike_energy(network, x)
    hand, spikes = 0.0, 0.0
    for layer, xin in inputs:
        (tile,) = [t for row in layer.matrix.tiles for t in row]
        row_g = tile.state_tensors()["cells.g_us"].sum(dim=(-3, -1))  # planes and columns
        hand += float((xin @ row_g).sum())
        spikes += float(xin.sum())
    hand *= TILE.v_read_v**2 * TILE.t_read_s * 1e6  # µW · s -> pJ
    assert energy.cost.energy_pj["array"] == pytest.approx(hand, rel=1e-6)
    assert energy.input_spikes == spikes
    model = CIMEnergyModel()
    steps = 12 * 5
    outputs = steps * (8 + 4)
    assert energy.cost.energy_pj["accumulate"] == pytest.approx(outputs * model.ops.int32_add_pj)
    # Inputs are spikes, 1 bit each; outputs the ADC's codes, activation_bits each.
    buffer_bits = steps * ((16 + 8) + (8 + 4) * model.activation_bits)
    assert energy.cost.energy_pj["buffer"] == pytest.approx(buffer_bits * model.ops.sram_bit_pj)
    assert energy.cost.energy_pj["dac"] == 0 and energy.cost.energy_pj["write"] == 0
    assert energy.per_step_pj == pytest.approx(energy.energy_pj / steps)


def test_silence_costs_no_array_energy(network):
    energy = spike_energy(network, torch.zeros(6, 3, 16))
    assert energy.input_spikes == 0 and energy.cost.energy_pj["array"] == 0
    assert energy.cost.energy_pj["buffer"] > 0  # the periphery still runs every step


def test_a_software_network_is_refused():
    with pytest.raises(ConfigError, match="on tiles"):
        spike_energy(SpikingMLP((4, 2)), torch.zeros(2, 1, 4))
