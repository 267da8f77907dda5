"""Nothing clipped silently: the IR-drop pre-distortion reports the cells it had to clip at the
window edge and the conductance scale it gave up (TileCounters, Tile.predistortion_headroom)."""

import torch

from memcim.crossbar import ConverterConfig, Tile, TileConfig
from memcim.crossbar.circuit import CrossbarCircuit
from memcim.devices import IdealDevice

IDEAL_IO = {"dac": ConverterConfig(bits=None), "adc": ConverterConfig(bits=None)}


def predistorted(w: torch.Tensor, r_wire_ohm: float) -> Tile:
    circuit = CrossbarCircuit(r_wire_row_ohm=r_wire_ohm, r_wire_col_ohm=r_wire_ohm,
                              r_driver_ohm=20.0, r_on_ohm=500.0)  # fmt: skip
    cfg = TileConfig(device=IdealDevice(), ir_drop="exact", circuit=circuit,
                     ir_drop_compensation="predistortion", **IDEAL_IO)  # fmt: skip
    return Tile(w.shape[1], w.shape[0], cfg).program(w)


def test_mild_wires_need_no_clipping_and_report_it(gen):
    w = torch.randn(24, 48, generator=gen)
    tile = predistorted(w, 5.0)
    assert tile.counters.predistortion_clipped == 0
    assert 0.5 <= tile.predistortion_headroom <= 1.0


def test_very_resistive_wires_clip_cells_at_g_max_and_count_them(gen):
    w = torch.randn(24, 48, generator=gen).sign()  # every weight at full scale: no slack
    tile = predistorted(w, 400.0)
    # The far cells need more than the 2x headroom allows: they are clipped and counted.
    assert tile.predistortion_headroom == 0.5
    clipped = tile.counters.predistortion_clipped
    assert 0 < clipped < tile.cells
    # Clipped cells sit at the window edge (g_max) after programming.
    at_edge = int((tile.state.g_us >= tile.device.g_max_us - 1e-4).sum())
    assert at_edge >= clipped
    tile.program(w)  # summed over programmings
    assert tile.counters.predistortion_clipped == 2 * clipped
