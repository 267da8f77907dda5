"""SRAMCell (exact quantisation, energy, leakage) and GainCell (exponential decay, write noise)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from memcim import ConfigError
from memcim.devices.digital import GainCell, SRAMCell

N = 20_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- SRAM --------------------------------------------------------------------------------------
def test_sram_quantises_exactly_onto_the_code_grid():
    dev = SRAMCell(bits=3, g_min_us=0.0, g_max_us=7.0)  # codes 0..7 are 0..7 µS
    target = torch.rand(4, 50, 100, generator=gen(), dtype=torch.float64) * 7.0
    state = dev.program(target)
    assert torch.equal(state.g_us, target.round())  # round-half-even matches torch.round
    assert torch.equal(dev.code_of(state), target.round().long())
    assert (state.g_us - target).abs().max() <= 0.5 * dev.lsb_us


def test_sram_grid_values_round_trip_bit_for_bit_and_never_change():
    dev = SRAMCell(bits=8, g_min_us=1.0, g_max_us=26.0)
    codes = torch.arange(256)
    grid = dev.g_of_code(codes)
    state = dev.program(grid)
    assert torch.equal(state.g_us, grid)
    assert torch.equal(dev.code_of(state), codes)
    rng_before = torch.get_rng_state()
    for t_s in (0.0, 1.0, 1e9):
        assert torch.equal(dev.read(state, t_s=t_s, generator=gen()), grid)
        assert torch.equal(dev.drift(state, t_s), grid)
    assert torch.equal(torch.get_rng_state(), rng_before)  # no hidden randomness


def test_sram_energy_leakage_and_endurance():
    dev = SRAMCell(bits=8)
    assert dev.e_read_pj == pytest.approx(8 * 5.0 / 32.0)  # Horowitz: 5 pJ per 32-bit read
    assert dataclasses.replace(dev, bits=4).e_write_pj == pytest.approx(4 * 5.0 / 32.0)
    assert dev.leakage_pw == pytest.approx(8 * dev.leakage_bit_pw)
    # pW × s = pJ
    assert dev.leakage_energy_pj(2.0, n_cells=1000) == pytest.approx(dev.leakage_pw * 2.0 * 1000)
    assert dev.endurance_cycles == math.inf
    state = dev.program(torch.zeros(10))
    assert dev.write_energy_pj(state) == pytest.approx(10 * dev.e_write_pj)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"bits": 0}, "SRAMCell.bits"),
        ({"bits": 33}, "SRAMCell.bits"),
        ({"bits": 2.5}, "SRAMCell.bits"),
        ({"bits": True}, "SRAMCell.bits"),
        ({"leakage_bit_pw": -1.0}, "SRAMCell.leakage_bit_pw"),
        ({"e_read_bit_pj": float("nan")}, "SRAMCell.e_read_bit_pj"),
        ({"g_min_us": 3.0, "g_max_us": 2.0}, "SRAMCell.g_max_us"),
    ],
)
def test_sram_bad_fields_raise(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        SRAMCell(**kwargs)


def test_sram_bad_arguments_raise():
    dev = SRAMCell()
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([float("nan")]))
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([-1.0]))
    with pytest.raises(ConfigError, match="n_cells"):
        dev.leakage_energy_pj(1.0, n_cells=-2)
    with pytest.raises(ConfigError, match="t_s"):
        dev.leakage_energy_pj(float("nan"))


# --- gain cell ---------------------------------------------------------------------------------
def test_gain_cell_decays_exponentially_toward_g_min():
    dev = GainCell(g_min_us=2.0, g_max_us=20.0, retention_s=0.01)
    g0 = torch.linspace(2.0, 20.0, 7, dtype=torch.float64)
    state = dev.program(g0)
    assert torch.equal(state.g_us, g0)  # no write noise by default
    for t_s in (0.0, 0.005, 0.01, 0.05):
        expected = 2.0 + (g0 - 2.0) * math.exp(-t_s / 0.01)
        assert torch.allclose(dev.drift(state, t_s), expected, rtol=1e-12, atol=0)
        assert torch.equal(dev.read(state, t_s=t_s), dev.drift(state, t_s))
    # after one τ, 1/e of the stored excess is left
    assert dev.drift(state, 0.01)[-1].item() == pytest.approx(2.0 + 18.0 / math.e)
    assert torch.equal(dev.drift(g0, 0.01), dev.drift(state, 0.01))  # plain tensors work too


def test_gain_cell_write_noise_statistics():
    dev = GainCell(write_noise_std_us=0.3)
    state = dev.program(torch.full((4, N // 4), 12.5, dtype=torch.float64), generator=gen(1))
    g = state.g_us.flatten()
    # 5 SE: mean 0.3/sqrt(N), std of a Gaussian sample 0.3/sqrt(2N).
    assert abs(g.mean().item() - 12.5) < 5 * 0.3 / math.sqrt(N)
    assert abs(g.std().item() - 0.3) < 5 * 0.3 / math.sqrt(2 * N)
    # the decay acts on the noisy programmed value, cell by cell
    assert torch.allclose(dev.drift(state, 1.0), state.g_us * math.exp(-1.0), rtol=1e-12)


def test_gain_cell_same_seed_is_bit_identical():
    dev = GainCell(write_noise_std_us=0.1)
    target = torch.full((32, 32), 10.0)
    assert torch.equal(
        dev.program(target, generator=gen(5)).g_us, dev.program(target, generator=gen(5)).g_us
    )
    assert not torch.equal(
        dev.program(target, generator=gen(5)).g_us, dev.program(target, generator=gen(6)).g_us
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"retention_s": 0.0}, "GainCell.retention_s"),
        ({"retention_s": float("nan")}, "GainCell.retention_s"),
        ({"write_noise_std_us": -0.1}, "GainCell.write_noise_std_us"),
        ({"g_min_us": -1.0}, "GainCell.g_min_us"),
    ],
)
def test_gain_cell_bad_fields_raise(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        GainCell(**kwargs)


def test_gain_cell_bad_arguments_raise():
    dev = GainCell()
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([30.0]))
    with pytest.raises(ConfigError, match="t_s"):
        dev.drift(torch.tensor([1.0]), -1.0)
