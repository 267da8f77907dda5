"""Tile.set_cells: cells programmed outside Tile.program, read through the tile's periphery."""

from __future__ import annotations

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import Tile, TileConfig
from memcim.crossbar.converters import ConverterConfig
from memcim.crossbar.mapping import MappingConfig
from memcim.devices import IdealDevice


def _ideal_tile(rows: int, cols: int, w_max: float | None = 2.0) -> Tile:
    config = TileConfig(device=IdealDevice(), mapping=MappingConfig(w_max=w_max),
                        dac=ConverterConfig(bits=None), adc=ConverterConfig(bits=None),
                        drift_compensation=False)  # fmt: skip
    return Tile(rows, cols, config)


def test_set_cells_reads_the_new_cells_with_a_fixed_scale(gen):
    tile = _ideal_tile(4, 3)
    tile.program(torch.zeros(2, 3, 4), generator=gen)
    other = _ideal_tile(4, 3)
    w = (torch.rand(5, 7, 3, 4, generator=gen) * 2 - 1) * 2.0
    other.program(w, generator=gen)
    tile.set_cells(other.state)  # more instances than it was programmed with
    x = torch.randn(6, 4, generator=gen)
    torch.testing.assert_close(tile.mvm(x), x @ w.transpose(-1, -2), rtol=1e-5, atol=1e-5)


def test_set_cells_counts_writes_only_when_asked(gen):
    tile = _ideal_tile(4, 3)
    tile.program(torch.zeros(3, 4), generator=gen)
    written = tile.counters.cell_writes
    assert written == 2 * 4 * 3
    state = tile.device.program_where(
        torch.full(tile.state.shape, 1.0), tile.state.g_us > 1e9, state=tile.state
    )  # nothing selected: no pulse
    tile.set_cells(state, count_writes=True)
    assert tile.counters.cell_writes == written
    tile.set_cells(tile.device.program(tile.state.g_us, state=tile.state), count_writes=True)
    assert tile.counters.cell_writes == 2 * written
    tile.set_cells(tile.state)
    assert tile.counters.cell_writes == 2 * written


def test_set_cells_errors(gen):
    tile = _ideal_tile(4, 3)
    other = _ideal_tile(4, 3)
    other.program(torch.zeros(3, 4), generator=gen)
    with pytest.raises(ConfigError, match="no weights yet"):
        tile.set_cells(other.state)
    tile.program(torch.zeros(3, 4), generator=gen)
    wrong = _ideal_tile(5, 3)
    wrong.program(torch.zeros(3, 5), generator=gen)
    with pytest.raises(ConfigError, match="this tile needs"):
        tile.set_cells(wrong.state)
    scaled = _ideal_tile(4, 3, w_max=None)
    scaled.program(torch.ones(3, 4), generator=gen)
    with pytest.raises(ConfigError, match="MappingConfig.w_max"):
        scaled.set_cells(other.state.map(lambda t: t.expand(2, *t.shape)))


@pytest.mark.parametrize("only_moved", [False, True])
def test_reprogram_writes_exactly_the_cells_whose_target_moved(only_moved):
    from memcim.crossbar import TiledMatrix
    from memcim.devices import FilamentaryRRAM

    cfg = TileConfig(device=FilamentaryRRAM(), mapping=MappingConfig(w_max=1.0))
    matrix = TiledMatrix(3, 6, cfg, max_rows=4)  # two row tiles
    old = torch.tensor([[0.5, -0.5, 0.0, 0.2, 0.9, -0.1]] * 3)
    matrix.program(old, generator=torch.Generator().manual_seed(0))
    before = [t.state for row in matrix.tiles for t in row]
    new = old.clone()
    new[0, 1] = 0.5  # −0.5 → +0.5: both devices of the pair move
    new[2, 5] = -0.3  # only the negative device moves
    written = matrix.reprogram(old, new, generator=torch.Generator().manual_seed(1),
                               only_moved=only_moved)  # fmt: skip
    assert written == 3
    after = [t.state for row in matrix.tiles for t in row]
    assert sum(int((a.writes != b.writes).sum()) for a, b in zip(after, before, strict=True)) == 3
    assert matrix.counters.cell_writes == 2 * 18 + 3  # deployment, then the three
    per_device = matrix.writes_per_device()
    assert per_device.numel() == 2 * 18 and int(per_device.sum()) == 2 * 18 + 3
    assert matrix.reprogram(new, new) == 0
    with pytest.raises(ConfigError, match="MappingConfig.w_max"):
        free = TiledMatrix(3, 6, TileConfig(device=FilamentaryRRAM()))
        free.program(old, generator=torch.Generator().manual_seed(0))
        free.reprogram(old, new)
