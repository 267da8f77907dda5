"""SRAM training memories leak: power × words × time appears in the hybrid trainer's energy."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from memcim.data import load_digits
from memcim.devices import SRAMCell
from memcim.learning import network
from memcim.learning.hybrid import HybridConfig, HybridTrainer
from memcim.learning.memories import FeCapMemory, GainCellMemory, SRAMMemory


def test_sram_memory_leaks_power_times_words_times_time():
    mem = SRAMMemory(SRAMCell(bits=8, leakage_bit_pw=50.0))
    assert mem.leakage_pw == 8 * 50.0
    # 400 pW per word × 1000 words × 2 s = 0.8 µJ = 8e5 pJ (1 pW for 1 s is 1 pJ).
    assert mem.leakage_energy_pj(1000, 2.0) == pytest.approx(8e5)
    assert FeCapMemory().leakage_energy_pj(1000, 2.0) == 0.0  # non-volatile
    assert GainCellMemory().leakage_energy_pj(1000, 2.0) == 0.0  # no supply power modelled
    with pytest.raises(ValueError, match="t_s"):
        mem.leakage_energy_pj(10, -1.0)


def test_hybrid_sram_run_reports_its_leakage():
    data = load_digits(seed=0)
    x, y = data.x_train[:128], data.y_train[:128]  # a short run: leakage is linear in time
    cfg = HybridConfig(layers=(64, 16, 10), epochs=1, batch_size=16, transfer_every=64,
                       memory="sram", sample_period_s=1e-3)  # fmt: skip
    trainer = HybridTrainer(cfg)
    stats = trainer.fit(x, y, generator=torch.Generator().manual_seed(0))
    synapses = network.parameter_count(cfg.layers)
    t_s = cfg.epochs * len(y) * cfg.sample_period_s
    expected = cfg.sram.leakage_pw * synapses * t_s
    assert stats.energy_pj["memory_leakage"] == pytest.approx(expected)
    assert stats.energy_total_pj == pytest.approx(sum(stats.energy_pj.values()))
    # A leak-free SRAM (or a non-volatile memory) reports no leakage entry.
    quiet = replace(cfg, sram=SRAMCell(bits=8, leakage_bit_pw=0.0))
    stats = HybridTrainer(quiet).fit(x, y, generator=torch.Generator().manual_seed(0))
    assert "memory_leakage" not in stats.energy_pj
