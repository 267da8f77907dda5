"""profile(): per-layer costs of a tiny network, checked against hand counts and against the
cost functions it prices layers with."""

import copy

import pytest
import torch
from torch import nn

import memcim.nn
from memcim import ConfigError
from memcim.bayes import to_bayesian
from memcim.crossbar import ConverterConfig, TileConfig
from memcim.devices import IdealDevice
from memcim.energy import EDGE_CPU, MCU, profile
from memcim.energy.bayes import bayes_cim_cost, bayes_digital_cost
from memcim.energy.cim import CIMCost, estimate_cost

# 2 pJ and 1 µs per pulse; mid-window 5 µS.
DEVICE = IdealDevice(g_min_us=0.0, g_max_us=10.0, e_write_pj=2.0, t_write_s=1e-6)

# h = relu(W1 x) with W1 = [[1,0,0,0], [0,1,0,0], [0,0,1,-1]]: for X1 h = [1, -1, 0] → [1, 0, 0].
X1 = torch.tensor([[1.0, -1.0, 0.5, 0.5]])
X2 = torch.tensor([[1.0, -1.0, 0.5, 0.5], [0.0, 2.0, 1.0, -1.0]])


def tiny() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, -1.0]]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[0.5, 1.0, 0.0], [-1.0, 0.0, 2.0]]))
        model[2].bias.copy_(torch.tensor([0.1, -0.1]))
    return model


def converted() -> nn.Module:
    tile = TileConfig(device=DEVICE, dac=ConverterConfig(bits=None), adc=ConverterConfig(bits=8))
    return memcim.nn.convert(tiny(), memcim.nn.CIMConfig(tile=tile, clip_sigma=None))


def test_digital_profile_is_the_processor_cost_per_layer():
    r = profile(tiny(), X2, processor=EDGE_CPU)
    assert [la.kind for la in r.layers] == ["digital", "digital"]
    assert [(la.rows, la.cols) for la in r.layers] == [(4, 3), (3, 2)]
    assert r.batch == 2
    # Layer 0: 4 × 3 = 12 MACs and 12 weights per inference; activations (2·4 in + 2·3 out) / 2
    # = 7. Layer 2: 6 MACs, 6 weights, (2·3 + 2·2) / 2 = 5 activations. Weights shared by 2.
    expected = [
        EDGE_CPU.cost(macs=12, weights=12, activations=7, batch=2),
        EDGE_CPU.cost(macs=6, weights=6, activations=5, batch=2),
    ]
    for layer, cost in zip(r.layers, expected, strict=True):
        assert layer.cost.energy_pj == pytest.approx(cost.energy_pj)
        assert layer.cost.batch_latency_s == pytest.approx(cost.batch_latency_s)
    assert r.macs == 18
    # Layer 0: 12 × 4.6 + 12 × 32 × 20 / 2 + 7 × 32 × 5/32 = 55.2 + 3840 + 35 = 3930.2 pJ
    # Layer 2: 6 × 4.6 + 6 × 32 × 20 / 2 + 5 × 5 = 27.6 + 1920 + 25 = 1972.6 pJ
    assert r.energy_pj == pytest.approx(3930.2 + 1972.6)
    assert r.tops_per_w == pytest.approx(36 / 5902.8)
    # Per inference: (384 bit / 1e11 + 2 × 12 / 1e10) / 2 = (3.84 + 2.4) / 2 ns = 3.12 ns;
    # (192 / 1e11 + 2 × 6 / 1e10) / 2 = (1.92 + 1.2) / 2 = 1.56 ns
    assert r.latency_s == pytest.approx(4.68e-9)
    assert r.program_pj == 0.0


def test_digital_profile_batch_override():
    r = profile(tiny(), X2, processor=MCU, batch=1)
    assert r.layers[0].cost.energy_pj == pytest.approx(
        MCU.cost(macs=12, weights=12, activations=7, batch=1).energy_pj
    )


def test_estimated_profile_of_a_plain_model():
    r = profile(tiny(), X1, device=DEVICE)
    assert [la.kind for la in r.layers] == ["cim-estimate", "cim-estimate"]
    assert [la.cost.macs for la in r.layers] == [12, 6]
    # Layer 0: Σ (x / max|x|)² = 1 + 1 + 0.25 + 0.25 = 2.5;
    # array = 2.5 × 0.04 V² × 3 cols × 2 cells × 5 µS × 100 ns × 1e6 = 0.3 pJ
    assert r.layers[0].cost.energy_pj["array"] == pytest.approx(0.3)
    # Layer 2 sees relu(h) = [1, 0, 0]: 1 × 0.04 × 2 × 2 × 5 × 0.1 = 0.08 pJ
    assert r.layers[1].cost.energy_pj["array"] == pytest.approx(0.08)
    ref = estimate_cost(rows=4, cols=3, vectors=1, v_sq_sum=2.5, device=DEVICE)
    assert r.layers[0].cost.energy_pj == pytest.approx(ref.energy_pj)
    # One vector per layer: 2 × (1 + 100 + 1) ns
    assert r.latency_s == pytest.approx(204e-9)


def test_estimated_energy_is_per_inference():
    one = profile(tiny(), X1, device=DEVICE)
    two = profile(tiny(), torch.cat([X1, X1]), device=DEVICE)
    assert two.batch == 2
    assert two.energy_pj == pytest.approx(one.energy_pj)
    assert two.macs == one.macs == 18
    assert two.latency_s == pytest.approx(one.latency_s)


def test_conv_counts_output_positions_as_vectors():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3))
    x = torch.randn(1, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    r = profile(conv, x, processor=EDGE_CPU)
    (layer,) = r.layers
    assert (layer.rows, layer.cols) == (9, 2)  # 1 × 3 × 3 inputs, 2 outputs
    # 3 × 3 output positions × 9 × 2 = 162 MACs; activations 25 in + 2 × 9 out = 43
    assert layer.cost.macs == 162
    expected = EDGE_CPU.cost(macs=162, weights=18, activations=43, batch=1)
    assert layer.cost.energy_pj == pytest.approx(expected.energy_pj)
    est = profile(conv, x, device=DEVICE).layers[0].cost
    assert est.macs == 162
    # 9 vectors, one after another: 9 × 102 ns
    assert est.latency_s == pytest.approx(9 * 102e-9)


def test_converted_conv_reads_one_vector_per_output_position():
    model = memcim.nn.convert(nn.Sequential(nn.Conv2d(1, 2, 3)))
    x = torch.randn(2, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    r = profile(model, x)
    (layer,) = r.layers
    assert layer.kind == "cim"
    assert (layer.rows, layer.cols) == (9, 2)
    assert layer.cost.macs == pytest.approx(162)  # per inference: 2 × 162 / 2
    tile = model[0].matrix.tiles[0][0]
    assert tile.counters.mvms == 18  # 2 images × 9 positions


def test_converted_model_is_measured_on_its_tiles():
    model = converted()
    tiles = [t for i in (0, 2) for row in model[i].matrix.tiles for t in row]
    before = [t.counters.array_energy_pj for t in tiles]
    r = profile(model, X1)
    after = [t.counters.array_energy_pj for t in tiles]
    assert [la.kind for la in r.layers] == ["cim", "cim"]
    measured = [a - b for a, b in zip(after, before, strict=True)]
    assert [la.cost.energy_pj["array"] for la in r.layers] == pytest.approx(measured)
    # By hand (ideal DAC: V = 0.2 V · x; g_min = 0, so a word line carries 10 µS · Σ_j |w̃|):
    # layer 0, w_max = 1, each input sees one |w̃| = 1: Σ x² · 10 µS = 2.5 × 10 = 25 µS
    # × 0.04 V² × 100 ns = 0.1 pJ.
    assert r.layers[0].cost.energy_pj["array"] == pytest.approx(0.1, rel=1e-5)
    # Layer 2, w_max = 2: input 0 carries 10 × (0.25 + 0.5) = 7.5 µS; h = [1, 0, 0] (the ADC
    # hits full scale exactly): 7.5 × 0.04 × 100 ns = 0.03 pJ.
    assert r.layers[1].cost.energy_pj["array"] == pytest.approx(0.03, rel=1e-5)
    # 8-bit ADC: 3 and 2 conversions × 2.56 pJ; ideal DAC: none
    assert r.layers[0].cost.energy_pj["adc"] == pytest.approx(7.68)
    assert r.layers[1].cost.energy_pj["adc"] == pytest.approx(5.12)
    assert r.breakdown_pj["dac"] == 0.0
    # Programming: (4·3 + 3·2) weights × 2 cells × 1 pulse × 2 pJ = 72 pJ, reported apart.
    assert r.program_pj == pytest.approx(72.0)
    assert "write" not in r.breakdown_pj
    assert r.energy_pj == pytest.approx(sum(la.cost.inference_pj for la in r.layers))
    assert r.energy_pj == pytest.approx(sum(la.cost.total_pj for la in r.layers) - r.program_pj)
    # One read per layer: 100 ns + 1 ns ADC (ideal DAC)
    assert r.latency_s == pytest.approx(2 * 101e-9)
    assert r.macs == pytest.approx(18)
    # Program latency: 24 writes / 6 cells per word line = 4 word lines × 1 µs
    assert r.layers[0].cost.program_latency_s == pytest.approx(4e-6)


def test_converted_energy_per_inference_is_independent_of_the_batch():
    model = converted()
    one = profile(model, X1)
    two = profile(model, torch.cat([X1, X1]))
    for a, b in zip(one.layers, two.layers, strict=True):
        assert isinstance(a.cost, CIMCost)
        for k in ("array", "dac", "adc", "accumulate", "buffer"):
            assert b.cost.energy_pj[k] == pytest.approx(a.cost.energy_pj[k], rel=1e-5), k
    assert two.energy_pj == pytest.approx(one.energy_pj, rel=1e-5)
    assert two.program_pj == one.program_pj == pytest.approx(72.0)  # programmed once
    assert two.latency_s == pytest.approx(one.latency_s)


def test_bayesian_model_is_priced_by_its_scheme():
    model = to_bayesian(tiny())
    model.train()
    r = profile(model, X1, samples=4, scheme="cycle_to_cycle", device=DEVICE)
    assert [la.kind for la in r.layers] == ["bayes-cycle_to_cycle"] * 2
    # At the mean weights, the layers see the plain model's activity (Σ (x/max)² = 2.5 and 1).
    expected = [
        bayes_cim_cost(rows=4, cols=3, vectors=1, v_sq_sum=2.5, samples=4,
                       scheme="cycle_to_cycle", device=DEVICE, batch=1),
        bayes_cim_cost(rows=3, cols=2, vectors=1, v_sq_sum=1.0, samples=4,
                       scheme="cycle_to_cycle", device=DEVICE, batch=1),
    ]  # fmt: skip
    for layer, cost in zip(r.layers, expected, strict=True):
        assert layer.cost.energy_pj == pytest.approx(cost.energy_pj)
    # Re-programming: 1 pulse × 12 weights × 4 samples × 2 pJ = 96 pJ (layer 0)
    assert r.layers[0].cost.energy_pj["sample_writes"] == pytest.approx(96.0)
    assert r.macs == 4 * 18
    # The model's own modes are restored.
    assert model.training
    assert all(m.eval_mode == "sample" for m in model if hasattr(m, "eval_mode"))


def test_bayesian_model_on_a_digital_processor():
    model = to_bayesian(tiny())
    r = profile(model, X2, processor=MCU, samples=3)
    assert [la.kind for la in r.layers] == ["digital", "digital"]
    expected = bayes_digital_cost(MCU, macs=12, weights=12, activations=7, samples=3, batch=2)
    assert r.layers[0].cost.energy_pj == pytest.approx(expected.energy_pj)


def test_bayesian_one_off_programming_is_reported_apart():
    model = to_bayesian(tiny())
    r = profile(model, X1, samples=2, scheme="read_noise", device=DEVICE)
    # 3 pulses × (12 + 6) weights × 2 pJ = 108 pJ
    assert r.program_pj == pytest.approx(108.0)
    assert r.energy_pj == pytest.approx(sum(la.cost.inference_pj for la in r.layers))


def test_profile_does_not_change_the_model():
    model = tiny()
    ref = copy.deepcopy(model)
    model.train()
    profile(model, X2)
    assert model.training
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)


def test_profile_validation():
    with pytest.raises(ConfigError, match="x"):
        profile(tiny(), torch.ones(4))
    with pytest.raises(ConfigError, match="samples"):
        profile(tiny(), X1, samples=0)
    with pytest.raises(ConfigError, match="batch"):
        profile(tiny(), X1, batch=0)
    with pytest.raises(ConfigError, match="no Linear"):
        profile(nn.Sequential(nn.ReLU()), X1)


def test_report_table_and_dict():
    r = profile(tiny(), X1, device=DEVICE)
    d = r.as_dict()
    assert d["macs"] == 18
    assert [la["kind"] for la in d["layers"]] == ["cim-estimate"] * 2
    assert d["energy_pj"] == pytest.approx(r.energy_pj)
    text = r.table()
    assert "total" in text and "cim-estimate" in text
