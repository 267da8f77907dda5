"""Reads that change the cells, applied on every tile MVM: STT-MRAM read disturb and FeCAP
destructive reads with their write-backs (counted, priced, wearing the cells out)."""

import math

import torch

from memcim.crossbar import ConverterConfig, Tile, TileConfig
from memcim.devices import STTMRAM, FeCap
from memcim.energy.cim import tile_cost

IDEAL_IO = {"dac": ConverterConfig(bits=None), "adc": ConverterConfig(bits=None)}


def mram_tile(i_read_ua: float) -> Tile:
    """A 32 x 16 differential STT-MRAM tile with every cell in AP (zero weights)."""
    cfg = TileConfig(device=STTMRAM(i_read_ua=i_read_ua, read_noise_rel=0.0), **IDEAL_IO)
    return Tile(32, 16, cfg).program(
        torch.zeros(16, 32), generator=torch.Generator().manual_seed(1)
    )


def test_stt_mram_read_disturb_flips_cells_at_the_read_current_rate(gen):
    tile = mram_tile(80.0)
    dev = tile.device
    assert dev.reads_change_state
    before = tile.state.g_us.clone()
    x = torch.ones(4, 32)
    x[:, 16:] = 0.0  # word lines 16.. are not driven: their cells see no read current
    tile.mvm(x, generator=gen)
    flipped = tile.state.g_us != before
    assert int(flipped.sum()) == tile.counters.read_disturbs
    assert not bool(flipped[:, 16:, :].any())
    # Every driven AP cell (susceptible, ap_to_p) flips with 1 − (1 − p)^4 over the 4 reads;
    # 2 planes × 16 rows × 16 cols = 512 cells: binomial count, tolerance 5 standard errors.
    p = dev.read_disturb_probability()
    p4, n = 1 - (1 - p) ** 4, 512
    assert abs(tile.counters.read_disturbs - n * p4) <= 5 * math.sqrt(n * p4 * (1 - p4))
    assert tile.counters.read_disturbs > 0
    # Flipped cells now read as P: the next read sees them.
    y = tile.mvm(torch.ones(32), generator=gen)
    assert float(y.abs().sum()) > 0


def test_no_read_disturb_without_read_current(gen):
    tile = mram_tile(0.0)
    assert not tile.device.reads_change_state
    tile.mvm(torch.ones(8, 32), generator=gen)
    assert tile.counters.read_disturbs == 0 and bool(tile.state.g_us.eq(80.0).all())


def fecap_tile(endurance: float, samples: int | None = None) -> Tile:
    cfg = TileConfig(device=FeCap(p_switch=1.0, endurance_cycles=endurance), **IDEAL_IO)
    w = torch.linspace(-1, 1, 4 * 8).reshape(4, 8)
    return Tile(8, 4, cfg).program(w, generator=torch.Generator().manual_seed(2), samples=samples)


def test_fecap_reads_cost_a_write_back_per_cell_and_vector(gen):
    tile = fecap_tile(1e6, samples=3)
    programmed = tile.state.writes.clone()
    before = tile.counters.cell_writes
    tile.mvm(torch.rand(5, 8, generator=gen), generator=gen)
    cells = 3 * 2 * 8 * 4
    assert tile.counters.writebacks == 5 * cells
    assert torch.equal(tile.state.writes - programmed, torch.full_like(programmed, 5))
    assert tile.counters.cell_writes == before  # programming pulses only
    cost = tile_cost(tile)
    dev = tile.device
    # Write-backs are read energy; FeCAP sensing is charged per cell read (not ohmic).
    assert cost.energy_pj["writeback"] == tile.counters.writebacks * dev.e_write_pj
    assert cost.energy_pj["array"] == tile.counters.cell_reads * dev.e_read_pj
    assert cost.energy_pj["write"] == tile.counters.cell_writes * dev.e_write_pj


def test_fecap_reads_wear_the_cells_out(gen):
    tile = fecap_tile(12.0)
    assert not bool(tile.state.stuck.any())
    for _ in range(3):
        tile.mvm(torch.rand(6, 8, generator=gen) + 0.1, generator=gen)
    # <= 7 programming pulses + 18 write-backs >= 12: every cell is fatigued (level 0), so
    # both planes read g_min and the tile outputs zero.
    assert bool(tile.state.stuck.all())
    torch.testing.assert_close(tile.mvm(torch.ones(8)), torch.zeros(4))
