"""Digital processor baselines: energy per inference, batch amortisation, latency, presets."""

import math

import pytest

from memcim import ConfigError
from memcim.energy.digital import (
    EDGE_CPU,
    EDGE_NPU,
    GPU,
    MCU,
    PROCESSORS,
    DigitalCost,
    DigitalProcessor,
)
from memcim.energy.tables import HOROWITZ_45NM


def test_edge_cpu_cost_components():
    c = EDGE_CPU.cost(macs=1000, weights=500, activations=200)
    # Compute: 1000 MACs × (3.7 + 0.9) pJ = 4600 pJ
    assert c.energy_pj["compute"] == pytest.approx(4600.0)
    # Weights: 500 × 32 bit × 20 pJ/bit (640 pJ per 32-bit DRAM read) = 320000 pJ
    assert c.energy_pj["weights"] == pytest.approx(320000.0)
    # Activations: 200 × 32 bit × 5/32 pJ/bit (SRAM) = 1000 pJ
    assert c.energy_pj["activations"] == pytest.approx(1000.0)
    assert c.total_pj == pytest.approx(325600.0)
    # TOPS/W = 2 × 1000 / 325600
    assert c.tops_per_w == pytest.approx(2000 / 325600)
    # Latency: 16000 bit / 1e11 bit/s = 160 ns + 1000 MAC / 1e10 MAC/s = 100 ns → 260 ns
    assert c.batch_latency_s == pytest.approx(260e-9)
    assert (c.macs, c.batch) == (1000, 1)


def test_mcu_cost_components():
    c = MCU.cost(macs=100, weights=64, activations=10)
    # 100 × (0.2 + 0.03) = 23 pJ; 64 × 8 bit × 5/32 = 80 pJ; 10 × 8 × 5/32 = 12.5 pJ
    assert c.energy_pj == pytest.approx({"compute": 23.0, "weights": 80.0, "activations": 12.5})
    # 512 bit / 3.2e9 = 160 ns + 100 / 1e8 = 1 µs → 1.16 µs
    assert c.batch_latency_s == pytest.approx(1.16e-6)


@pytest.mark.parametrize("batch", [1, 2, 8, 100])
def test_batch_amortises_only_the_weight_fetch(batch):
    one = EDGE_CPU.cost(macs=1000, weights=500, activations=200, batch=1)
    c = EDGE_CPU.cost(macs=1000, weights=500, activations=200, batch=batch)
    assert c.energy_pj["weights"] == pytest.approx(320000.0 / batch)  # ∝ 1/B
    assert c.energy_pj["compute"] == one.energy_pj["compute"]
    assert c.energy_pj["activations"] == one.energy_pj["activations"]
    # Batch latency: one weight fetch (160 ns) + B × 100 ns of compute
    assert c.batch_latency_s == pytest.approx(160e-9 + batch * 100e-9)
    assert c.batch == batch


def test_as_dict():
    d = MCU.cost(macs=100, weights=64, activations=10, batch=2).as_dict()
    # weights: 80 / 2 = 40 pJ; total = 23 + 40 + 12.5 = 75.5 pJ
    assert d["weights_pj"] == pytest.approx(40.0)
    assert d["total_pj"] == pytest.approx(75.5)
    assert d["batch"] == 2.0
    assert d["tops_per_w"] == pytest.approx(200 / 75.5)


def test_zero_work_has_no_tops_per_w():
    c = DigitalCost(energy_pj={"compute": 0.0}, batch_latency_s=0.0, macs=0.0, batch=1)
    assert math.isnan(c.tops_per_w)


def test_presets_cite_their_values():
    assert EDGE_CPU.e_weight_bit_pj == pytest.approx(20.0)  # 640 pJ / 32 bit (Horowitz DRAM)
    assert EDGE_CPU.e_mac_pj == pytest.approx(4.6)  # fp32: 3.7 + 0.9
    assert EDGE_CPU.bits == 32
    assert MCU.e_mac_pj == pytest.approx(0.23)  # int8: 0.2 + 0.03
    assert MCU.e_weight_bit_pj == pytest.approx(0.15625)  # 5 pJ / 32 bit (SRAM)
    assert MCU.bits == 8
    assert GPU.e_weight_bit_pj == 4.0  # HBM ~4 pJ/bit
    assert GPU.e_mac_pj == pytest.approx(4.6)
    assert EDGE_NPU.e_weight_bit_pj == 17.5  # DDR 15–20 pJ/bit, midpoint
    assert EDGE_NPU.e_mac_pj == pytest.approx(0.23 / 8)  # int8 at 45 nm × 1/8 = 0.02875
    assert EDGE_NPU.ops.dram_read_32b_pj == HOROWITZ_45NM.dram_read_32b_pj
    assert set(PROCESSORS.values()) == {EDGE_CPU, GPU, MCU, EDGE_NPU}


BASE = {"name": "p", "dtype": "int8", "e_weight_bit_pj": 1.0, "macs_per_s": 1e9,
        "weight_bandwidth_bits_per_s": 1e9}  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dtype": "fp16"}, r"DigitalProcessor\.dtype"),
        ({"e_weight_bit_pj": -1.0}, r"DigitalProcessor\.e_weight_bit_pj"),
        ({"macs_per_s": 0.0}, r"DigitalProcessor\.macs_per_s"),
        ({"weight_bandwidth_bits_per_s": 0.0}, r"DigitalProcessor\.weight_bandwidth_bits_per_s"),
    ],
)
def test_processor_validation(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        DigitalProcessor(**{**BASE, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"macs": -1.0}, "macs"),
        ({"weights": math.nan}, "weights"),
        ({"activations": math.inf}, "activations"),
        ({"batch": 0}, "batch"),
        ({"batch": 2.0}, "batch"),
    ],
)
def test_cost_validation(kwargs, field):
    args = {"macs": 1.0, "weights": 1.0, "activations": 1.0, **kwargs}
    with pytest.raises(ConfigError, match=field):
        MCU.cost(**args)
