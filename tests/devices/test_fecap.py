"""FeCap: binomial level statistics, destructive-read accounting, saturating increments."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from memcim import ConfigError
from memcim.devices.fecap import FeCap

N = 20_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def binom_pmf(n: int, p: float, k: int) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def test_program_level_distribution_is_binomial():
    dev = FeCap(n_levels=8, p_switch=0.4)
    target = torch.full((4, 50, 100), dev.g_max_us)  # [S, rows, cols], level 7 from level 0
    state = dev.program(target, generator=gen())
    levels = dev.level_of(state).flatten()
    n = levels.numel()
    for k in range(8):
        p = binom_pmf(7, 0.4, k)
        frac = (levels == k).double().mean().item()
        # Binomial(7, 0.4): a level's frequency has SE sqrt(p(1-p)/n); allow 5 SE.
        assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12, k
    # Open loop: one pulse per level of distance, each counted for energy.
    assert torch.equal(state.last_pulses, torch.full(target.shape, 7))
    assert dev.write_energy_pj(state) == pytest.approx(n * 7 * 0.1)
    # The stored value is always on the level grid.
    assert torch.allclose(state.g_us, dev.g_of_level(dev.level_of(state)))


def test_program_from_previous_state_moves_down_binomially():
    exact = FeCap(n_levels=8, p_switch=1.0)
    start = exact.program(torch.full((N,), exact.g_of_level(torch.tensor(5)).item()))
    assert torch.equal(exact.level_of(start), torch.full((N,), 5))
    dev = dataclasses.replace(exact, p_switch=0.6)
    state = dev.program(
        torch.full((N,), dev.g_of_level(torch.tensor(2)).item()), generator=gen(1), state=start
    )
    moved = (5 - dev.level_of(state)).double()
    # moved ~ Binomial(3, 0.6): mean 1.8, variance 0.72; SE of the mean sqrt(0.72/N), 5 SE.
    assert abs(moved.mean().item() - 1.8) < 5 * math.sqrt(0.72 / N)
    assert moved.min() >= 0 and moved.max() <= 3  # never overshoots, never moves away
    assert torch.equal(state.writes, torch.full((N,), 5 + 3))


def test_exact_switching_lands_on_nearest_level():
    dev = FeCap(n_levels=5, p_switch=1.0, g_min_us=1.0, g_max_us=9.0)  # step 2 µS
    target = torch.tensor([1.0, 1.9, 2.1, 4.9, 9.0])
    state = dev.program(target, generator=gen())
    assert torch.equal(state.g_us, torch.tensor([1.0, 1.0, 3.0, 5.0, 9.0]))
    assert torch.equal(dev.read(state), state.g_us)


def test_read_is_pure_and_destructive_read_counts_the_write_back():
    dev = FeCap(p_switch=1.0)
    state = dev.program(torch.linspace(0, 25, 8))
    state.stuck[0] = True
    before = state.writes.clone()
    assert torch.equal(dev.read(state, t_s=10.0), state.g_us)
    assert torch.equal(state.writes, before)
    g, after = dev.read_destructive(state, t_s=10.0)
    assert torch.equal(g, state.g_us)
    assert torch.equal(after.g_us, state.g_us)
    expected = before + torch.tensor([0] + [1] * 7)  # stuck cells are not written back
    assert torch.equal(after.writes, expected)
    assert dev.write_energy_pj(after) == pytest.approx(7 * dev.e_write_pj)
    assert torch.equal(state.writes, before)  # the input state is not modified


def test_add_levels_reports_saturation():
    dev = FeCap(n_levels=8, p_switch=1.0)
    state = dev.program(dev.g_of_level(torch.tensor([0, 3, 6, 7])))
    update = dev.add_levels(state, torch.tensor([2, -5, 4, -1]))
    assert torch.equal(dev.level_of(update.state), torch.tensor([2, 0, 7, 6]))
    assert torch.equal(update.overflow, torch.tensor([0, -2, 3, 0]))
    assert torch.equal(update.state.last_pulses, torch.tensor([2, 3, 1, 1]))


def test_add_levels_stochastic_mean():
    dev = FeCap(n_levels=8, p_switch=0.3)
    state = dev.program(torch.zeros(N), generator=gen())
    update = dev.add_levels(state, 5, generator=gen(2))
    step = dev.level_of(update.state).double()
    # Binomial(5, 0.3): mean 1.5, variance 1.05; 5 SE of the mean.
    assert abs(step.mean().item() - 1.5) < 5 * math.sqrt(1.05 / N)
    assert not update.overflow.any()


def test_same_seed_is_bit_identical():
    dev = FeCap(p_switch=0.5)
    target = torch.rand(64, 64, generator=gen(3)) * 25

    def run(seed):
        s = dev.program(target, generator=gen(seed))
        return dev.add_levels(s, -2, generator=gen(seed + 1)).state.g_us

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_levels": 1}, "FeCap.n_levels"),
        ({"n_levels": 2.5}, "FeCap.n_levels"),
        ({"p_switch": 0.0}, "FeCap.p_switch"),
        ({"p_switch": 1.5}, "FeCap.p_switch"),
        ({"p_switch": float("nan")}, "FeCap.p_switch"),
        ({"g_min_us": 5.0, "g_max_us": 5.0}, "FeCap.g_max_us"),
        ({"e_write_pj": -1.0}, "FeCap.e_write_pj"),
    ],
)
def test_bad_fields_raise(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        FeCap(**kwargs)


def test_bad_targets_and_increments_raise():
    dev = FeCap()
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ConfigError, match="g_target_us"):
        dev.program(torch.tensor([30.0]))
    state = dev.program(torch.zeros(3))
    with pytest.raises(ConfigError, match="delta"):
        dev.add_levels(state, torch.tensor([0.5, 1.0, 2.0]))
