"""On-chip adaptation: hardware forward, rounded updates, sparse re-programming, counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.data.sinusoid import SinusoidTasks
from memcim.devices import PCM, IdealDevice
from memcim.learning.meta import MetaConfig, MetaLearner, SinusoidMLP
from memcim.learning.meta.onchip import OnChipAdapter, OnChipConfig, stochastic_round

IDEAL = TileConfig(device=IdealDevice(), dac=ConverterConfig(bits=None),
                   adc=ConverterConfig(bits=None), read_noise="off")  # fmt: skip
META = MetaConfig(adapt="all", inner_steps=3, inner_lr=0.02, loss="mse")


def _tasks(n_tasks=6, shots=10, seed=1):
    b = SinusoidTasks().sample(n_tasks, shots, 20, generator=torch.Generator().manual_seed(seed))
    return b.support_x, b.support_y, b.query_x, b.query_y


def _model():
    return SinusoidMLP(hidden=8, generator=torch.Generator().manual_seed(0))


def test_stochastic_rounding_is_unbiased():
    u = torch.full((200_000,), 0.3) + torch.arange(200_000) % 3  # 0.3, 1.3, 2.3
    r = stochastic_round(u, torch.Generator().manual_seed(0))
    assert set(torch.unique(r - torch.floor(u)).tolist()) == {0.0, 1.0}
    # Bernoulli(0.3) means: SE sqrt(0.21 / 200 000) = 1e-3; 5e-3 is 5 SE.
    assert abs(float((r - u).mean())) < 5e-3


def test_ideal_tiles_with_a_fine_step_adapt_like_software():
    """Ideal devices and converters, a step of 1e-7 of the weight range: the hardware path
    (tile forward, straight-through gradient, rounding, sparse programming) reproduces the
    software inner loop step by step; rounding moves a weight by < 1e-7 · w_max per step."""
    model = _model()
    tasks = _tasks()
    software = MetaLearner(model, META).evaluate(*tasks)
    adapter = OnChipAdapter(model, META, OnChipConfig(tile=IDEAL, step_fraction=1e-7))
    hardware = adapter.adapt(*tasks, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(hardware.evaluation.loss, software.loss, rtol=1e-4, atol=1e-5)
    assert software.loss[:, -1].mean() < software.loss[:, 0].mean()  # adaptation did something


def _states(adapter):
    return [[t.state for row in layer.matrix.tiles for t in row] for layer in adapter.adapted]


def _targets(layer, w):
    tile = layer.matrix.tiles[0][0]
    dev = tile.device
    return tile.mapping.targets(w.transpose(-1, -2) / layer.w_max, dev.g_min_us, dev.g_max_us)[0]


def test_only_devices_whose_rounded_update_is_nonzero_are_reprogrammed():
    model = _model()
    tasks = _tasks()
    config = OnChipConfig(tile=TileConfig(device=PCM()), w_max=None, step_fraction=1 / 16)
    adapter = OnChipAdapter(model, META, config)
    gen = torch.Generator().manual_seed(0)
    adapter.adapt(*tasks, steps=0, generator=gen)  # deploy only
    states = _states(adapter)
    weights = [layer.weight.clone() for layer in adapter.adapted]
    counters = [layer.matrix.counters.cell_writes for layer in adapter.adapted]
    support = adapter.model.features(tasks[0])
    adapter._step(support, tasks[1], gen)
    total_changed = 0
    for layer, before, w0, c0 in zip(adapter.adapted, states, weights, counters, strict=True):
        after = layer.matrix.tiles[0][0].state
        moved = _targets(layer, layer.weight) != _targets(layer, w0)
        written = after.writes != before[0].writes
        assert torch.equal(written, moved)  # written exactly where the target moved
        assert torch.equal(after.g_us[~moved], before[0].g_us[~moved])  # others untouched
        pulses = int((after.writes - before[0].writes).sum())
        assert layer.matrix.counters.cell_writes - c0 == pulses  # counted, pulse for pulse
        steps = (layer.weight - w0) / layer.step
        torch.testing.assert_close(steps, steps.round(), atol=1e-3, rtol=0)  # whole steps
        total_changed += int(moved.sum())
    # Some weights moved, most did not: the update is sparse, not a full re-programming.
    cells = sum(layer.matrix.tiles[0][0].state.g_us.numel() for layer in adapter.adapted)
    assert 0 < total_changed < cells


def test_adaptation_counts_writes_energy_and_latency():
    model = _model()
    tasks = _tasks()
    dev = PCM()
    adapter = OnChipAdapter(model, META, OnChipConfig(tile=TileConfig(device=dev), w_max=None))
    result = adapter.adapt(*tasks, generator=torch.Generator().manual_seed(0))
    assert result.writes.shape == (6,) and int(result.writes.sum()) > 0
    assert int(result.writes_per_device.sum()) == int(result.writes.sum())
    # Write energy = pulses × e_write per adaptation.
    expected = float(result.writes.float().mean()) * dev.e_write_pj
    assert result.cim["write_pj"] == pytest.approx(expected, rel=1e-9)
    assert result.cim["energy_pj"] == pytest.approx(
        result.cim["read_pj"] + result.cim["write_pj"] + result.cim["gradient_pj"], rel=1e-9
    )
    assert result.cim["latency_s"] > 0 and result.digital["energy_pj"] > 0
    # Adaptation learns on chip: the query error falls from the meta-initialisation's.
    assert result.evaluation.loss[:, -1].mean() < result.evaluation.loss[:, 0].mean()


def test_without_reprogramming_nothing_is_learned(monkeypatch):
    """The guard above notices a learner that computes updates but never programs them."""
    from memcim.learning.meta import onchip

    model = _model()
    tasks = _tasks()
    adapter = OnChipAdapter(model, META, OnChipConfig(tile=IDEAL, w_max=None))
    monkeypatch.setattr(onchip._TaskLinear, "update", lambda self, *a, **k: 0)
    result = adapter.adapt(*tasks, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(result.evaluation.loss[:, -1], result.evaluation.loss[:, 0])
    assert int(result.writes.sum()) == 0


def test_updates_beyond_the_weight_range_are_clipped_and_counted():
    model = _model()
    tasks = _tasks()
    big = MetaConfig(adapt="all", inner_steps=2, inner_lr=5.0, loss="mse")
    adapter = OnChipAdapter(model, big, OnChipConfig(tile=IDEAL, w_max=None, headroom=1.0))
    result = adapter.adapt(*tasks, generator=torch.Generator().manual_seed(0))
    assert result.clipped > 0
    for layer in adapter.adapted:
        assert float(layer.weight.abs().max()) <= layer.w_max * (1 + 1e-6)


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="OnChipConfig.step_fraction"):
        OnChipConfig(step_fraction=0)
    with pytest.raises(ConfigError, match="OnChipConfig.w_max"):
        OnChipConfig(w_max=-1.0)

    class Conv(nn.Module):  # MAML on chip needs parameter-free features
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(2, 2)
            self.head = nn.Linear(2, 2)

        def features(self, x):
            return self.body(x)

    with pytest.raises(ConfigError, match="features without parameters"):
        OnChipAdapter(Conv(), META)
    with pytest.raises(ConfigError, match="OnChipConfig.w_max"):
        adapter = OnChipAdapter(_model(), META, OnChipConfig(w_max=0.01))
        adapter.adapt(*_tasks(), generator=torch.Generator().manual_seed(0))
