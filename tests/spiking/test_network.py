"""A spiking MLP with snnTorch neurons, its synapses on crossbar tiles."""

from __future__ import annotations

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.devices import FilamentaryRRAM, IdealDevice
from memcim.nn import CIMConfig
from memcim.spiking import (
    SPIKE_DRIVE,
    SpikingMLP,
    current_error,
    on_tiles,
    rate,
    synapse_inputs,
)

IDEAL = CIMConfig(tile=TileConfig(device=IdealDevice(), dac=SPIKE_DRIVE,
                                  adc=ConverterConfig(bits=None)), clip_sigma=None)  # fmt: skip


@pytest.fixture
def busy():
    """A 64-32-10 network whose layers fire often enough to compare (weights scaled ×3) and
    25 steps of rate-coded input."""
    torch.manual_seed(0)
    model = SpikingMLP((64, 32, 10))
    with torch.no_grad():
        for synapse in model.synapses:
            synapse.weight.mul_(3)
    spikes = rate(torch.rand(16, 64, generator=torch.Generator().manual_seed(1)), 25,
                  generator=torch.Generator().manual_seed(2))  # fmt: skip
    return model, spikes


def test_ideal_tiles_fire_exactly_as_software(busy):
    model, x = busy
    with torch.no_grad():
        s, v = model(x)
        s_tiles, v_tiles = on_tiles(model, IDEAL).eval()(x)
    assert float(s.mean()) > 0.05  # the comparison is not between two silent networks
    assert torch.equal(s_tiles, s)
    torch.testing.assert_close(v_tiles, v, atol=1e-5, rtol=0)


def test_ideal_tiles_carry_the_software_currents_to_float32_rounding(busy):
    """Fed the same spikes, ideal tiles' currents are software's up to a few float32 roundings
    of the conductance mapping and the tile-wise sums (2.5 eps of the largest current here;
    bound 8 eps), while RRAM read noise and 8-bit ADCs move them by ~1e-1 of it."""
    model, x = busy
    eps = torch.finfo(torch.float32).eps
    error, largest = current_error(model, on_tiles(model, IDEAL).eval(), x)
    assert largest > 1.0 and error <= 8 * eps * largest
    rram = on_tiles(model, CIMConfig(tile=TileConfig(device=FilamentaryRRAM(), dac=SPIKE_DRIVE)))
    with torch.no_grad():
        rram.eval()(x)  # the ADCs calibrate on a first pass
    noisy, _ = current_error(model, rram, x)
    assert noisy > 1e-2 * largest


def test_synapse_inputs_are_the_spike_trains_each_layer_receives(busy):
    model, x = busy
    first, second = synapse_inputs(model, x)
    assert torch.equal(first, x)
    assert second.shape == (*x.shape[:2], 32) and set(second.unique().tolist()) <= {0.0, 1.0}
    # The last layer's own spikes follow from its inputs through its synapse and neuron.
    out, _ = model(x)
    membrane, replayed = model.neurons[-1].init_leaky(), []
    for step in second:
        spike, membrane = model.neurons[-1](model.synapses[-1](step), membrane)
        replayed.append(spike)
    assert torch.equal(torch.stack(replayed), out)


def test_rram_tiles_move_spikes_but_keep_the_rates(busy):
    """Filamentary RRAM with 8-bit ADC: read noise and quantisation move output spikes in
    time (11 % of the [T, N, out] entries differ here), while each output's spike count
    over the 25 steps stays close (mean |difference| 0.54 of 4.7 measured; bound 1.5); the
    copy leaves the model alone."""
    model, x = busy
    before = [w.detach().clone() for w in model.parameters()]
    with torch.no_grad():
        s, _ = model(x)
        rram = on_tiles(
            model, CIMConfig(tile=TileConfig(device=FilamentaryRRAM(), dac=SPIKE_DRIVE))
        )
        s_rram, _ = rram.eval()(x)
    assert float((s_rram != s).float().mean()) > 0  # the devices do something
    assert float((s_rram.sum(0) - s.sum(0)).abs().mean()) < 1.5
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_surrogate_gradients_reach_every_synapse(busy):
    model, x = busy
    _, membrane = model(x)
    membrane.sum().backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in model.parameters())


def test_bad_shapes_are_named():
    with pytest.raises(ConfigError, match="sizes"):
        SpikingMLP((5,))
    with pytest.raises(ConfigError, match="spikes"):
        SpikingMLP((4, 2))(torch.zeros(3, 4))
    with pytest.raises(ConfigError, match="dac.bits"):
        on_tiles(SpikingMLP((4, 2)), CIMConfig())  # an 8-bit DAC: spikes need none


def test_no_dac_conversion_is_counted_for_spikes(busy):
    model, x = busy
    tiles = on_tiles(model).eval()
    with torch.no_grad():
        tiles(x)
    counters = [t.counters for layer in tiles.synapses for row in layer.matrix.tiles for t in row]
    assert all(c.dac_conversions == 0 for c in counters)
    assert all(c.adc_conversions > 0 for c in counters)
