"""Training memories of hybrid synapses: values, overflow, writes, decay."""

from __future__ import annotations

import math

import torch

from memcim.devices import FeCap, GainCell, SRAMCell
from memcim.learning.hybrid import rounded
from memcim.learning.memories import FeCapMemory, GainCellMemory, SRAMMemory


def test_fecap_holds_signed_levels_and_reports_overflow(gen):
    mem = FeCapMemory(FeCap(n_levels=17, p_switch=1.0))  # deterministic switching
    state = mem.fresh((4,))
    assert mem.limit == 8 and torch.equal(mem.value(state), torch.zeros(4))
    state, upd = mem.add(state, torch.tensor([3, -2, 10, 0]), generator=gen)
    assert mem.value(state).tolist() == [3, -2, 8, 0]
    assert upd.overflow.tolist() == [0, 0, 2, 0]
    assert upd.writes == 3 + 2 + 8  # one pulse per level moved
    state, reads = mem.read_for_transfer(state)
    assert reads == 4  # a destructive read writes every cell back
    assert mem.value(state).tolist() == [3, -2, 8, 0]


def test_fecap_pulses_fail_with_the_device_probability(gen):
    mem = FeCapMemory(FeCap(n_levels=17, p_switch=0.5))
    state, upd = mem.add(mem.fresh((20000,)), torch.full((20000,), 4), generator=gen)
    # Levels moved ~ Binomial(4, 0.5): mean 2, std 1, so the mean of 20 000 has SE 0.007.
    assert abs(mem.value(state).mean().item() - 2.0) < 5 * 0.007
    assert upd.writes == 4 * 20000  # every pulse is sent and costs energy


def test_sram_word_is_exact_and_saturates():
    mem = SRAMMemory(SRAMCell(bits=8))
    state, upd = mem.add(mem.fresh((3,)), torch.tensor([100, -200, 0]), generator=None)
    assert mem.value(state).tolist() == [100, -128, 0]
    assert upd.overflow.tolist() == [0, -72, 0] and upd.writes == 2
    assert mem.e_write_pj == 8 * 5.0 / 32  # 8 bits of Horowitz's 5 pJ per 32-bit word


def test_gain_cell_value_decays_with_retention():
    mem = GainCellMemory(GainCell(retention_s=0.5), limit_units=16.0)
    assert not mem.integer
    state, upd = mem.add(mem.fresh((2,)), torch.tensor([4.0, -20.0]), generator=None)
    assert state.tolist() == [4.0, -16.0] and upd.overflow.tolist() == [0.0, -4.0]
    assert upd.writes == 4  # both cells of each pair
    later = mem.elapse(state, 0.25)
    torch.testing.assert_close(later, state * math.exp(-0.5))


def test_rounding_rules(gen):
    u = torch.full((100_000,), 0.3)
    # Stochastic rounding is unbiased: mean 0.3, std √(0.21), SE 0.00145 for 1e5 draws.
    assert abs(rounded(u, "stochastic", gen).mean().item() - 0.3) < 5 * 0.00145
    v = torch.tensor([-2.6, -0.4, 0.2, 0.7, 3.2])
    assert rounded(v, "round", gen).tolist() == [-3, 0, 0, 1, 3]
    assert rounded(v, "sign", gen).tolist() == [-1, 0, 0, 1, 1]
