"""The sensor-fusion pipeline's chiplets, priced from counters."""

from __future__ import annotations

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.devices import FilamentaryRRAM
from memcim.energy import EDGE_CPU
from memcim.energy.system import build, pipeline_cost
from memcim.nn import CIMConfig
from memcim.spiking import SPIKE_DRIVE, SpikingMLP, on_tiles, rate, spike_energy
from memcim.spiking.system import (
    EVENT_PJ,
    VALUE_BITS,
    event_sensor,
    learning_chiplet,
    spiking_chiplet,
)


def test_event_sensor_counts_the_events_it_sent():
    spikes = torch.zeros(20, 4, 784)
    spikes[0, :, :10] = 1  # 10 events per inference ...
    spikes[5, 0, :40] = 1  # ... and 40 more for one of the 4
    sensor = event_sensor(spikes)
    assert sensor.e_pj == pytest.approx((10 + 40 / 4) * EVENT_PJ)
    assert sensor.output_bits == pytest.approx(20 * (10 + 5))  # 784 pixels: 10 bits; 20 steps: 5


def test_spiking_chiplet_is_the_tiles_pass_per_inference_times_the_draws():
    torch.manual_seed(0)
    model = SpikingMLP((64, 32, 10))
    tile = TileConfig(device=FilamentaryRRAM(), dac=SPIKE_DRIVE, adc=ConverterConfig(bits=8))
    hw = on_tiles(model, CIMConfig(tile=tile)).eval()
    spikes = rate(torch.rand(8, 64, generator=torch.Generator().manual_seed(1)), 10,
                  generator=torch.Generator().manual_seed(2))  # fmt: skip
    energy = spike_energy(hw, spikes)
    chiplet = spiking_chiplet(energy, draws=3, classes=10)
    assert chiplet.e_pj == pytest.approx(3 * energy.energy_pj / 8)
    # Per inference: 10 steps through two layers of tiles, each step one read per layer.
    assert chiplet.latency_s == pytest.approx(3 * energy.cost.latency_s / 8)
    assert chiplet.output_bits == 11 * VALUE_BITS


def test_learning_chiplet_adds_counted_writes_to_the_gradient_arithmetic():
    chiplet, digital = learning_chiplet(5000.0, 100, 210, EDGE_CPU)
    mac = EDGE_CPU.e_mac_pj
    assert digital.energy_pj["compute"] == pytest.approx(3 * 210 * mac)
    assert chiplet.e_pj == pytest.approx(50.0 + digital.total_pj)
    with pytest.raises(ConfigError, match="write_pj"):
        learning_chiplet(-1.0, 100, 210, EDGE_CPU)


def test_tighter_integration_spends_less_on_links():
    spikes = torch.zeros(20, 2, 784)
    spikes[:, :, :50] = 1
    stages = (event_sensor(spikes), learning_chiplet(100.0, 10, 210, EDGE_CPU)[0])
    energy = [pipeline_cost(build(stages, i)).link_energy_pj for i in ("2d", "2.5d", "3d")]
    assert energy[0] > energy[1] > energy[2] > 0
