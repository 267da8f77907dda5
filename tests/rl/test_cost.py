"""Energy and latency of one uncertainty decomposition: digital against a hand count, the
tiles' side from their counters."""

from __future__ import annotations

import pytest
import torch

from memcim.energy import EDGE_CPU
from memcim.energy.bayes import E_GAUSSIAN_PJ
from memcim.rl.cost import decomposition_cost
from memcim.rl.storm_coast import random_transitions
from memcim.rl.world_model import WorldModel, WorldModelConfig, on_tiles


@pytest.fixture(scope="module")
def small():
    s, a, s2 = (torch.tensor(v) for v in random_transitions(200, seed=0))
    wm = WorldModel(s, a, s2, WorldModelConfig(hidden=(6, 4), epochs=1),
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    net, _ = on_tiles(wm, samples=8, generator=torch.Generator().manual_seed(1))
    return wm, net


def _cost(small, latent, weights):
    wm, net = small
    return decomposition_cost(wm, net, torch.tensor([0.0, 5.0]), latent=latent, weights=weights,
                              generator=torch.Generator().manual_seed(2))  # fmt: skip


def test_digital_side_is_the_hand_count(small):
    """Layers 5→6→4→2: M·N forwards of the MACs, μ and σ fetched once, N Gaussians and N·w
    multiply-adds to form the samples, every layer's inputs and outputs through SRAM (the
    processor model prices the weight matrices; the 12 biases are left out)."""
    m, n = 3, 4
    p = EDGE_CPU
    sizes = [(5, 6), (6, 4), (4, 2)]
    macs = sum(i * o for i, o in sizes)
    activations = sum(i + o for i, o in sizes)
    bits = p.bits
    expected = (m * n * macs * p.e_mac_pj + 2 * macs * bits * p.e_weight_bit_pj
                + m * n * activations * bits * p.ops.sram_bit_pj
                + n * macs * (E_GAUSSIAN_PJ + p.e_mac_pj))  # fmt: skip
    assert _cost(small, m, n).digital_pj == pytest.approx(expected, rel=1e-6)


def test_the_tiles_side_counts_every_draw(small):
    """On the tiles every one of the M × N forwards is read: twice the latent draws or twice
    the weight draws cost twice the energy and time (read noise moves the measured Σ V² G t
    by a little, hence 2 %)."""
    base = _cost(small, 2, 4)
    for more in (_cost(small, 4, 4), _cost(small, 2, 8)):
        assert more.cim_pj == pytest.approx(2 * base.cim_pj, rel=0.02)
        assert more.cim_s == pytest.approx(2 * base.cim_s, rel=0.02)
    assert base.energy_ratio == base.digital_pj / base.cim_pj > 0
