"""Endurance of every device model: past ``endurance_cycles`` a cell sticks where its wear-out
mechanism leaves it (Device.advance), in program, program_where and tiles alike."""

import math

import pytest
import torch

from memcim.crossbar import ConverterConfig, Tile, TileConfig
from memcim.devices import (
    PCM,
    STTMRAM,
    FeCap,
    FilamentaryRRAM,
    GainCell,
    IdealDevice,
    SRAMCell,
    TwoDFET,
)

IDEAL_IO = {"dac": ConverterConfig(bits=None), "adc": ConverterConfig(bits=None)}

# Device with 3 cycles of endurance, and where a worn-out cell sticks: "last" = the value it
# reached in its last working programming, else a fixed conductance.
WORN = [
    (PCM(endurance_cycles=3), "g_max"),
    (PCM(endurance_cycles=3, worn_out_state="reset"), "g_min"),
    (STTMRAM(endurance_cycles=3), "g_max"),
    (FeCap(endurance_cycles=3, p_switch=1.0), "g_min"),
    (FilamentaryRRAM(endurance_cycles=3), "last"),
    (TwoDFET(endurance_cycles=3), "last"),
    (SRAMCell(endurance_cycles=3), "last"),
    (GainCell(endurance_cycles=3), "last"),
    (IdealDevice(endurance_cycles=3), "last"),
]


def alternating_targets(dev, k: int) -> torch.Tensor:
    """Targets that swing across the window, so every programming moves every cell (a FeCAP
    with p_switch = 1 then takes one pulse per level: 7 per call, so it wears out at once)."""
    lo = dev.g_min_us + 0.1 * dev.g_span_us
    hi = dev.g_min_us + 0.9 * dev.g_span_us
    return torch.full((6, 5), hi if k % 2 == 0 else lo)


@pytest.mark.parametrize(("dev", "stuck_at"), WORN, ids=lambda v: type(v).__name__)
def test_cells_stick_at_their_worn_out_value_after_endurance(dev, stuck_at, gen):
    state, history = None, []
    for k in range(6):
        state = dev.program(alternating_targets(dev, k), generator=gen, state=state)
        history.append(state)
    worn_at = next(k for k, s in enumerate(history) if bool(s.stuck.all()))
    # FeCAP needs several pulses per programming; every other device one per programming.
    assert worn_at == (0 if isinstance(dev, FeCap) else 2)
    last = history[worn_at]
    expected = {"g_max": dev.g_max_us, "g_min": dev.g_min_us}.get(stuck_at)
    if expected is not None:
        torch.testing.assert_close(last.g_us, torch.full_like(last.g_us, expected))
    for later in history[worn_at + 1 :]:
        # No more pulses, no more change: the cell no longer responds.
        assert torch.equal(later.g_us, last.g_us) and torch.equal(later.writes, last.writes)
        assert int(later.last_pulses.sum()) == 0
    assert bool((last.writes >= dev.endurance_cycles).all())


def test_worn_out_pcm_does_not_drift(gen):
    state = None
    for k in range(3):
        state = PCM(endurance_cycles=3).program(torch.full((4, 4), 5.0 + 10 * (k % 2)),
                                                 generator=gen, state=state)  # fmt: skip
    assert bool(state.stuck.all())
    torch.testing.assert_close(PCM().drift(state, 1e6), torch.full((4, 4), 25.0))


def test_program_where_leaves_worn_out_cells_stuck(gen):
    dev = TwoDFET(endurance_cycles=2)
    state = dev.program(torch.full((3, 3), 2.0), generator=gen)
    state = dev.program(torch.full((3, 3), 8.0), generator=gen, state=state)  # wears out
    held = state.g_us.clone()
    where = torch.zeros(3, 3, dtype=torch.bool)
    where[0] = True
    after = dev.program_where(torch.full((3, 3), 1.0), where, state=state, generator=gen)
    assert torch.equal(after.g_us, held) and torch.equal(after.writes, state.writes)


def test_tile_reprogramming_stops_writing_worn_out_cells(gen):
    cfg = TileConfig(device=PCM(endurance_cycles=2, read_noise_scale=0.0), **IDEAL_IO)
    tile = Tile(8, 4, cfg)
    writes = []
    for k in range(4):
        tile.program(torch.randn(4, 8, generator=gen) * (k + 1), generator=gen)
        writes.append(tile.counters.cell_writes)
    cells = 2 * 8 * 4
    assert writes == [cells, 2 * cells, 2 * cells, 2 * cells]
    assert bool(tile.state.stuck.all())
    # Every cell stuck-SET: G+ = G- = g_max, so the tile reads zero whatever was programmed.
    torch.testing.assert_close(tile.mvm(torch.ones(8)), torch.zeros(4))


def test_state_already_past_endurance_does_not_respond(gen):
    loose = TwoDFET()
    state = loose.program(torch.full((2, 2), 3.0), generator=gen)
    state.writes.fill_(10)  # e.g. handed over from a device with a looser endurance
    tight = TwoDFET(endurance_cycles=5)
    after = tight.program(torch.full((2, 2), 9.0), generator=gen, state=state)
    assert bool(after.stuck.all()) and torch.equal(after.g_us, state.g_us)
    assert int(after.last_pulses.sum()) == 0 and math.isfinite(tight.endurance_cycles)
