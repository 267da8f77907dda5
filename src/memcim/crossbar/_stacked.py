"""One read of a column of tiles as stacked tensors: the small-batch fast path of TiledMatrix.

A layer wider than one tile reads its row blocks on separate tiles, each with its own DAC,
array, ADC and counters, and adds the partial sums digitally. Read tile by tile, every step is
a separate tensor operation per tile, and at batch 1 those per-operation costs dominate the
products. Here the tiles of one column block are read together: their inputs, codes and
currents are stacked along a leading tile dimension, so each step is one operation for all of
them. Every tile keeps its own converter ranges, scaling and counters, and the arithmetic of
each tile is the same as :meth:`Tile._read`'s (the batched product may sum in another order:
equal to float tolerance).

Only the common case takes this path (anything else is read tile by tile): inputs [B, in]
without Monte-Carlo dimensions, one conductance slice per tile, read noise sampled per read
time or off (nothing drawn per vector), ideal or per-vector max-abs DACs, ADCs whose ranges
are already set, and devices whose reads leave the cells unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from memcim.crossbar.converters import code_step, codes_at_step
from memcim.crossbar.tile import Tile, _ReadCache, row_drive, times_input_scale

#: Largest batch read stacked: beyond it the per-operation costs no longer matter and the
#: stacked copy of the inputs would cost more than it saves.
MAX_BATCH = 128


def _stackable(tiles: list[Tile], caches: list[_ReadCache]) -> bool:
    first = tiles[0].config
    return all(
        t.config is first
        and c.g_slices.dim() == 3
        and c.g_slices.shape[0] == 1
        and c.var_slices is None
        and not t.device.reads_change_state
        and (t.adc_range is not None or t.config.adc.ideal)
        and t.w_max.numel() == 1
        and c.compensation.numel() == 1
        for t, c in zip(tiles, caches, strict=True)
    ) and (first.dac.ideal or first.dac.mode == "max_abs")


def _stack_rows(parts: list[Tensor], rows: int, dim: int) -> Tensor:
    """Stack blocks along a new leading dim, zero-padding ``dim`` to ``rows`` (zero inputs on
    zero conductances add nothing to a product, a max-abs range or an energy)."""
    padded = []
    for p in parts:
        missing = rows - p.shape[dim]
        if missing:
            shape = list(p.shape)
            shape[dim] = missing
            p = torch.cat([p, p.new_zeros(shape)], dim=dim)
        padded.append(p)
    return torch.stack(padded)


@dataclass
class StackedColumn:
    """What every stacked read of a column of tiles shares until a tile's read cache or ADC
    range changes: stacked conductances, word-line conductances, the ADCs' code steps and
    code sizes (from their ranges), output scales."""

    caches: list[_ReadCache]
    ranges: list[Tensor | None]
    g: Tensor  # [R, rows, cols] effective conductance (µS), rows zero-padded
    row_g: Tensor  # [R, rows, 1] word-line conductance (µS), for the array energy
    adc_step: Tensor | None  # [R, 1, 1] codes per µA (code_step of the ranges), None if ideal
    adc_lsb: Tensor | None  # [R, 1, 1] µA per code (range / largest code), None if ideal
    scale: Tensor  # [R, 1, 1] weight units per rescaled µA

    def holds(self, caches: list[_ReadCache], tiles: list[Tile]) -> bool:
        return all(a is b for a, b in zip(self.caches, caches, strict=True)) and all(
            a is t.adc_range for a, t in zip(self.ranges, tiles, strict=True)
        )


def _stack_column(tiles: list[Tile], caches: list[_ReadCache]) -> StackedColumn:
    rows = max(t.rows for t in tiles)
    step = lsb = None
    adc = tiles[0].config.adc
    if not adc.ideal:
        ranges = torch.stack([t.adc_range.reshape(()) for t in tiles]).view(-1, 1, 1)
        step, lsb = code_step(ranges, adc.max_code), ranges / adc.max_code
    scales = [t._output_scale(c).reshape(()) for t, c in zip(tiles, caches, strict=True)]
    return StackedColumn(
        caches=caches,
        ranges=[t.adc_range for t in tiles],
        g=_stack_rows([c.g_slices[0] for c in caches], rows, dim=0),
        row_g=_stack_rows([c.row_g_us for c in caches], rows, dim=0),
        adc_step=step,
        adc_lsb=lsb,
        scale=torch.stack(scales).view(-1, 1, 1),
    )


def read_column(
    tiles: list[Tile], chunks: list[Tensor], t_s: float, generator: torch.Generator | None,
    stacked: StackedColumn | None,
) -> tuple[Tensor, StackedColumn] | None:  # fmt: skip
    """``Σ_r tiles[r].mvm(chunks[r])`` ([B, cols]; finite float chunks [B, rows_r] with
    1 <= B <= MAX_BATCH, which the caller checks) read as one stacked read, with the stacked
    column for the next read (``stacked``, reused while it holds), or ``None`` when these
    tiles need the tile-by-tile path."""
    if len(tiles) < 2:
        return None
    # The caches first, in tile order as the tile-by-tile path takes them (drift calibration
    # reads and per-time noise draw from the generator; the reads below draw nothing).
    caches = [t._read_cache(t_s, generator) for t in tiles]
    if stacked is None or not stacked.holds(caches, tiles):
        if not _stackable(tiles, caches):
            return None
        stacked = _stack_column(tiles, caches)
    config = tiles[0].config
    batch = chunks[0].shape[0]
    x = _stack_rows([c.float() for c in chunks], stacked.g.shape[1], dim=1)  # [R, B, rows]
    # max-abs or ideal: no saturation; x is the stacked copy, so it may be rounded in place
    codes, in_scale, volts_per_code, _ = row_drive(config, x, owned=True)
    # Array energy per tile, as Tile._read counts it: Σ over vectors of V² per word line
    # (one vector: its own squares), times that line's conductance.
    per_line = codes.square() if batch == 1 else codes.square().sum(-2, keepdim=True)
    power = torch.matmul(per_line, stacked.row_g).flatten()
    currents = torch.matmul(codes, stacked.g).mul_(volts_per_code)  # [R, B, cols]
    top = None if config.adc.ideal else config.adc.max_code
    currents, adc_clipped = _adc(stacked, top, currents, len(tiles))
    y = currents.mul_(times_input_scale(stacked.scale, in_scale))
    joules = volts_per_code**2 * config.t_read_s * 1e6  # pJ per unit of Σ code² · µS
    energies = [p * joules for p in power.tolist()]
    for r, tile in enumerate(tiles):
        counters = tile.counters
        counters.array_energy_pj += energies[r]
        counters.mvms += batch
        counters.cell_reads += batch * tile.cells
        counters.adc_clipped += adc_clipped[r]
        if not config.adc.ideal:
            counters.adc_conversions += batch * tile.cols
        if not config.dac.ideal:
            counters.dac_conversions += batch * tile.rows
    total = y[0]
    for r in range(1, len(tiles)):  # the digital accumulation, in the tiles' order
        total = total + y[r]
    return total, stacked


def _adc(stacked: StackedColumn, top: int | None, currents: Tensor,
         n: int) -> tuple[Tensor, list[int]]:  # fmt: skip
    """Currents converted in place with each tile's code step and size (``stacked``; none:
    ideal ADCs) and largest code ``top``, and each tile's saturations."""
    if stacked.adc_step is None:
        return currents, [0] * n
    codes = codes_at_step(currents, stacked.adc_step, inplace=True)
    clipped = [0] * n
    if _saturates(codes, top):  # counted per tile, then clamped
        clipped = (codes.abs() > top).sum((1, 2)).tolist()
        codes.clamp_(-top, top)
    return codes.mul_(stacked.adc_lsb), clipped


def _saturates(codes: Tensor, top: int) -> bool:
    """Whether any code lies beyond ±top: one aminmax for few codes (where per-call costs
    rule), amin and amax for many (where aminmax is slower)."""
    if codes.numel() <= 4096:
        low, high = torch.aminmax(codes)
        return float(low) < -top or float(high) > top
    return bool(codes.amin() < -top) or bool(codes.amax() > top)
