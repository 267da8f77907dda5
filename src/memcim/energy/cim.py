"""Energy, latency and area of a compute-in-memory macro, from the counters its tiles keep.

One read of a tile (one input vector) costs

* array: Σ_i V_i² Σ_j G_ij · t_read, measured by the tile on every read
  (:attr:`memcim.crossbar.TileCounters.array_energy_pj`), for ohmic (resistive) cells; for
  cells whose read is not ohmic (``Device.ohmic_read`` False: FeCAP charge sensing, SRAM),
  ``cell_reads`` × the device's ``e_read_pj``;
* write-back: destructive reads (FeCAP) cost one write per cell read,
  ``writebacks`` × ``e_write_pj``, part of the read energy;
* DAC: one conversion per driven word line, FoM_DAC · 2^bits;
* ADC: one conversion per sensed column, FoM_Walden · 2^bits (:func:`~memcim.energy.tables.
  adc_energy_pj`);
* accumulation: one int32 add per sensed column (shift-and-add of slices and of the partial sums
  of tiles that share outputs);
* buffer: the input vector read from, and the outputs written to, an SRAM activation buffer;

and programming costs ``cell_writes`` × the device's energy per pulse. TOPS/W counts 2 operations
per multiply-accumulate and excludes programming (weights are stationary). Drift-calibration
reads (``TileCounters.calibration_reads``) cost energy and time like any read but perform no
useful multiply-accumulate, so they are left out of ``macs``.

Latency: the vectors a tile reads go one after another, each taking
:attr:`~memcim.crossbar.Tile.mvm_latency_s` (DAC, array, ADC passes); the tiles of one matrix
work in parallel. Programming writes one word line at a time, every cell of it in parallel.

Area: cells × cell area (F²) × F², plus one ADC per ADC channel (area ∝ 2^bits), one DAC per word
line and one accumulator per sensed column. The periphery figures are order-of-magnitude
assumptions (unverified) to override with a real floor plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from memcim._errors import require
from memcim.crossbar import Tile, TileCounters, TiledMatrix
from memcim.energy.tables import (
    CELL_AREA_F2,
    HOROWITZ_45NM,
    OperationEnergies,
    _check_non_negative,
    adc_energy_pj,
)

#: Energy components of an inference, in report order; "write" (programming) is kept apart.
COMPONENTS = ("array", "writeback", "dac", "adc", "accumulate", "buffer")


@dataclass(frozen=True, kw_only=True)
class CIMEnergyModel:
    """Periphery energies and areas of a CIM macro.

    Attributes:
        ops: digital operation and SRAM energies (default Horowitz 45 nm [1]).
        adc_fom_fj_per_step: ADC Walden figure of merit (fJ/step); 10 is mid-range of the "few to
            tens" of Murmann's survey for moderate-speed SAR ADCs (order of magnitude).
        dac_fom_fj_per_step: word-line DAC/driver energy per conversion step (fJ/step); 1 is an
            unverified assumption (a DAC drives a capacitance, far cheaper than an ADC decides).
        activation_bits: width of an activation in the SRAM buffer (bits).
        input_bits: width of a tile's input in the buffer (bits); ``None``: ``activation_bits``.
            1 for arrays driven by spikes (:func:`memcim.spiking.spike_energy` sets it).
        feature_nm: feature size F for the cell area (nm); 22 nm as in NeuroSim's RRAM macro.
        cell_area_f2: cell area in F²; ``None``: :data:`~memcim.energy.tables.CELL_AREA_F2` of
            the tile's device class (25 F² when the class is not listed).
        adc_area_per_step_um2: ADC area per conversion step (µm²): 8 → 2048 µm² for 8 bits
            (unverified order of magnitude for a SAR ADC).
        dac_area_um2: area of one word-line DAC/driver (µm², unverified).
        accumulator_area_um2: area of one column's shift-and-add accumulator (µm², unverified).
    """

    ops: OperationEnergies = field(default_factory=lambda: HOROWITZ_45NM)
    adc_fom_fj_per_step: float = 10.0
    dac_fom_fj_per_step: float = 1.0
    activation_bits: int = 8
    input_bits: int | None = None
    feature_nm: float = 22.0
    cell_area_f2: float | None = None
    adc_area_per_step_um2: float = 8.0
    dac_area_um2: float = 50.0
    accumulator_area_um2: float = 100.0

    def __post_init__(self) -> None:
        _check_non_negative(self)
        require(isinstance(self.ops, OperationEnergies), "CIMEnergyModel.ops", self.ops,
                "must be an OperationEnergies table")  # fmt: skip
        require(isinstance(self.activation_bits, int) and self.activation_bits >= 1,
                "CIMEnergyModel.activation_bits", self.activation_bits,
                "must be an int >= 1")  # fmt: skip
        bits = self.input_bits
        require(bits is None or (isinstance(bits, int) and bits >= 1), "CIMEnergyModel.input_bits",
                bits, "must be None or an int >= 1")  # fmt: skip
        require(self.feature_nm > 0, "CIMEnergyModel.feature_nm", self.feature_nm, "must be > 0")

    def adc_pj(self, bits: int | None) -> float:
        """Energy of one ADC conversion (pJ); 0 for an ideal converter (``bits=None``)."""
        return 0.0 if bits is None else adc_energy_pj(bits, self.adc_fom_fj_per_step)

    def dac_pj(self, bits: int | None) -> float:
        """Energy of one DAC conversion (pJ); 0 for an ideal converter (``bits=None``)."""
        return 0.0 if bits is None else adc_energy_pj(bits, self.dac_fom_fj_per_step)

    def cell_area_um2(self, device_name: str) -> float:
        """Area of one cell of the named device class (µm²)."""
        f2 = (
            self.cell_area_f2
            if self.cell_area_f2 is not None
            else CELL_AREA_F2.get(device_name, 25.0)
        )
        return f2 * (self.feature_nm * 1e-3) ** 2


@dataclass(frozen=True, kw_only=True)
class TileGeometry:
    """What the energy model needs to know about a tile besides its counters.

    Attributes:
        rows, cols: word lines and logical output columns.
        sensed_columns: bit-line currents converted per read.
        cells: physical cells.
        adcs: ADC channels (time-multiplexed over the sensed columns).
        dac_bits, adc_bits: converter resolutions (``None``: ideal, no energy).
        e_write_pj, t_write_s: energy and duration of one programming pulse.
        mvm_latency_s: latency of one read (DAC, array, ADC passes) (s).
        device_name: device class name, for the cell area.
        e_read_pj: energy of one cell read (pJ), charged when ``ohmic_read`` is False.
        ohmic_read: the cells are read as a current I = V·G, so the tile's measured
            Σ V² G t is the array energy (``Device.ohmic_read``).
    """

    rows: int
    cols: int
    sensed_columns: int
    cells: int
    adcs: int
    dac_bits: int | None
    adc_bits: int | None
    e_write_pj: float
    t_write_s: float
    mvm_latency_s: float
    device_name: str
    e_read_pj: float = 0.0
    ohmic_read: bool = True

    @classmethod
    def of(cls, tile: Tile) -> TileGeometry:
        cfg = tile.config
        return cls(
            rows=tile.rows,
            cols=tile.cols,
            sensed_columns=tile.sensed_columns,
            cells=tile.cells,
            adcs=cfg.adcs or tile.sensed_columns,
            dac_bits=cfg.dac.bits,
            adc_bits=cfg.adc.bits,
            e_write_pj=tile.device.e_write_pj,
            t_write_s=tile.device.t_write_s,
            mvm_latency_s=tile.mvm_latency_s,
            device_name=type(tile.device).__name__,
            e_read_pj=tile.device.e_read_pj,
            ohmic_read=type(tile.device).ohmic_read,
        )


@dataclass
class CIMCost:
    """Energy (pJ), latency (s), area (µm²) and work of a macro over some reads and writes.

    Attributes:
        energy_pj: per component of :data:`COMPONENTS`, plus ``"write"`` (programming).
        latency_s: time of the reads (s).
        program_latency_s: time of the programming (s).
        area_um2: silicon area (µm²).
        macs: multiply-accumulates performed (logical weights × vectors).
    """

    energy_pj: dict[str, float]
    latency_s: float = 0.0
    program_latency_s: float = 0.0
    area_um2: float = 0.0
    macs: float = 0.0

    @property
    def inference_pj(self) -> float:
        """Energy of the reads: every component except programming (pJ)."""
        return sum(v for k, v in self.energy_pj.items() if k != "write")

    @property
    def total_pj(self) -> float:
        """Energy of every component, programming included (pJ)."""
        return sum(self.energy_pj.values())

    @property
    def tops_per_w(self) -> float:
        """2 · MACs per pJ of read energy (1 op/pJ = 1 TOPS/W); ``nan`` without reads."""
        e = self.inference_pj
        return 2 * self.macs / e if e > 0 else math.nan

    def scaled(self, factor: float) -> CIMCost:
        """This cost × ``factor`` (e.g. per inference from a batch); area is unchanged."""
        return CIMCost(
            energy_pj={k: v * factor for k, v in self.energy_pj.items()},
            latency_s=self.latency_s * factor,
            program_latency_s=self.program_latency_s * factor,
            area_um2=self.area_um2,
            macs=self.macs * factor,
        )

    def as_dict(self) -> dict[str, float]:
        """Every figure as a flat dict (energies suffixed ``_pj``)."""
        out = {f"{k}_pj": v for k, v in self.energy_pj.items()}
        out.update(inference_pj=self.inference_pj, latency_s=self.latency_s,
                   program_latency_s=self.program_latency_s, area_um2=self.area_um2,
                   macs=self.macs, tops_per_w=self.tops_per_w)  # fmt: skip
        return out


def combine(costs: list[CIMCost], *, parallel: bool) -> CIMCost:
    """Sum of costs; latencies add (``parallel=False``) or take the slowest (``True``)."""

    def time(attr: str) -> float:
        values = [getattr(c, attr) for c in costs]
        return max(values, default=0.0) if parallel else sum(values)

    keys = dict.fromkeys(k for c in costs for k in c.energy_pj)
    return CIMCost(
        energy_pj={k: sum(c.energy_pj.get(k, 0.0) for c in costs) for k in keys},
        latency_s=time("latency_s"),
        program_latency_s=time("program_latency_s"),
        area_um2=sum(c.area_um2 for c in costs),
        macs=sum(c.macs for c in costs),
    )


def area_um2(geometry: TileGeometry, model: CIMEnergyModel) -> float:
    """Cells plus periphery of one tile (µm²)."""
    adc_each = (
        0.0 if geometry.adc_bits is None else model.adc_area_per_step_um2 * 2**geometry.adc_bits
    )
    return (
        geometry.cells * model.cell_area_um2(geometry.device_name)
        + geometry.adcs * adc_each
        + geometry.rows * model.dac_area_um2
        + geometry.sensed_columns * model.accumulator_area_um2
    )


def counters_cost(
    counters: TileCounters, geometry: TileGeometry, model: CIMEnergyModel | None = None
) -> CIMCost:
    """Cost of the operations in ``counters`` on a tile of ``geometry``.

    Conversions are charged per read from the geometry: vectors × word lines for the DAC and
    vectors × sensed columns for the ADC, where ``mvms`` counts every array activation (a
    tile holding S Monte-Carlo samples drives S arrays, each with its own word-line drivers,
    so the DAC is charged S times although the tile's ``dac_conversions`` counts the shared
    codes once). Drift-calibration reads are charged like any read and excluded from ``macs``.
    """
    model = model if model is not None else CIMEnergyModel()
    vectors = counters.mvms
    outputs = vectors * geometry.sensed_columns
    in_bits = model.activation_bits if model.input_bits is None else model.input_bits
    buffer_bits = vectors * (geometry.rows * in_bits + geometry.cols * model.activation_bits)
    physical_columns = geometry.cells / geometry.rows
    array = (
        counters.array_energy_pj
        if geometry.ohmic_read
        else counters.cell_reads * geometry.e_read_pj
    )
    energy = {
        "array": array,
        "writeback": counters.writebacks * geometry.e_write_pj,
        "dac": vectors * geometry.rows * model.dac_pj(geometry.dac_bits),
        "adc": outputs * model.adc_pj(geometry.adc_bits),
        "accumulate": outputs * model.ops.int32_add_pj,
        "buffer": buffer_bits * model.ops.sram_bit_pj,
        "write": counters.cell_writes * geometry.e_write_pj,
    }
    return CIMCost(
        energy_pj=energy,
        latency_s=vectors * geometry.mvm_latency_s,
        program_latency_s=counters.cell_writes * geometry.t_write_s / physical_columns,
        area_um2=area_um2(geometry, model),
        macs=float((vectors - counters.calibration_reads) * geometry.rows * geometry.cols),
    )


def tile_cost(
    tile: Tile, model: CIMEnergyModel | None = None, counters: TileCounters | None = None
) -> CIMCost:
    """Cost of what ``tile`` has done so far (or of ``counters``, e.g. a difference)."""
    return counters_cost(counters if counters is not None else tile.counters,
                         TileGeometry.of(tile), model)  # fmt: skip


def matrix_cost(
    matrix: TiledMatrix, model: CIMEnergyModel | None = None,
    counters: list[TileCounters] | None = None,
) -> CIMCost:  # fmt: skip
    """Cost of a tiled matrix: energies and areas add, tiles read in parallel.

    Args:
        matrix: the tiles.
        model: periphery energies.
        counters: per tile (row-major, as :func:`tile_counters` returns), instead of the
            tiles' own running counters.
    """
    tiles = [t for row in matrix.tiles for t in row]
    counts = counters if counters is not None else [t.counters for t in tiles]
    require(len(counts) == len(tiles), "counters", len(counts), f"must hold {len(tiles)} entries")
    return combine([tile_cost(t, model, c) for t, c in zip(tiles, counts, strict=True)],
                   parallel=True)  # fmt: skip


def tile_counters(matrix: TiledMatrix) -> list[TileCounters]:
    """A snapshot of every tile's counters (row-major), to difference around a forward pass."""
    return [TileCounters(**t.counters.as_dict()) for row in matrix.tiles for t in row]


def counters_difference(after: TileCounters, before: TileCounters) -> TileCounters:
    """Operations between two snapshots of one tile's counters."""
    a, b = after.as_dict(), before.as_dict()
    return TileCounters(**{k: a[k] - b[k] for k in a})


def cost_since(matrix: TiledMatrix, before: list[TileCounters], model: CIMEnergyModel | None = None,
               *, with_programming: bool = False) -> CIMCost:  # fmt: skip
    """Cost of what ``matrix`` did since the snapshot ``before`` (:func:`tile_counters`), e.g.
    around one forward pass; ``with_programming``: charge every write that programmed its
    tiles as well (``"write"``), not only the writes since the snapshot."""
    now = tile_counters(matrix)
    diffs = [counters_difference(a, b) for a, b in zip(now, before, strict=True)]
    if with_programming:
        diffs = [replace(d, cell_writes=a.cell_writes) for d, a in zip(diffs, now, strict=True)]
    return matrix_cost(matrix, model, diffs)


@dataclass(frozen=True, kw_only=True)
class ArrayAssumptions:
    """What an estimate without programmed tiles assumes about the array (see
    :func:`estimate_cost`).

    Attributes:
        g_mean_us: mean conductance of a cell (µS); ``None``: mid-window of the device.
        v_read_v: word-line voltage at full DAC scale (V).
        t_read_s: read time (s).
        t_conversion_s: DAC and ADC conversion time (s).
        adcs_per_tile: ADC channels per tile; ``None``: one per column.
        max_rows, max_cols: largest tile; bigger matrices are split.
    """

    g_mean_us: float | None = None
    v_read_v: float = 0.2
    t_read_s: float = 100e-9
    t_conversion_s: float = 1e-9
    adcs_per_tile: int | None = None
    max_rows: int = 512
    max_cols: int = 512

    def __post_init__(self) -> None:
        _check_non_negative(self)
        for name in ("max_rows", "max_cols"):
            require(getattr(self, name) >= 1, f"ArrayAssumptions.{name}", getattr(self, name),
                    "must be >= 1")  # fmt: skip


def estimate_cost(
    *,
    rows: int,
    cols: int,
    vectors: float,
    v_sq_sum: float,
    device,
    devices_per_weight: float = 2,
    dac_bits: int | None = 8,
    adc_bits: int | None = 8,
    conversions_per_output: float = 1,
    assumptions: ArrayAssumptions | None = None,
    model: CIMEnergyModel | None = None,
) -> CIMCost:
    """Cost of ``vectors`` reads of a rows × cols weight matrix that is not on tiles.

    The inputs are taken as a DAC would scale them, V = v_read · x / max|x| per vector (a tile
    with an ideal DAC drives V = v_read · x instead, and a tiled matrix scales each block of
    rows by its own maximum). The matrix is split into equal tiles of at most ``max_rows`` ×
    ``max_cols`` (rounded up), each charged as :func:`counters_cost` charges a real tile, with
    the array energy
    Σ_vectors Σ_i V_i² · cols · devices_per_weight · g_mean · t_read (ohmic cells) or
    ``e_read_pj`` per cell read (``Device.ohmic_read`` False).

    Args:
        rows, cols: matrix inputs × outputs.
        vectors: input vectors read.
        v_sq_sum: Σ over vectors and rows of (x_i / max|x|)², the DAC's per-vector scaling.
        device: the cell (:class:`memcim.devices.Device`), for g_mean, write energy and area.
        devices_per_weight: physical cells read per weight (2 for a differential pair).
        dac_bits, adc_bits: converter resolutions (``None``: ideal, no energy).
        conversions_per_output: ADC conversions per output and read (2 when two arrays are
            sensed separately).
        assumptions: conductance, voltages, times and tile size.
        model: periphery energies.
    """
    a = assumptions if assumptions is not None else ArrayAssumptions()
    model = model if model is not None else CIMEnergyModel()
    g_mean = a.g_mean_us if a.g_mean_us is not None else (device.g_min_us + device.g_max_us) / 2
    row_tiles, col_tiles = math.ceil(rows / a.max_rows), math.ceil(cols / a.max_cols)
    tile_rows, tile_cols = math.ceil(rows / row_tiles), math.ceil(cols / col_tiles)
    sensed = tile_cols * conversions_per_output
    adcs = a.adcs_per_tile or math.ceil(sensed)
    t_dac = 0.0 if dac_bits is None else a.t_conversion_s
    t_adc = 0.0 if adc_bits is None else a.t_conversion_s * math.ceil(sensed / adcs)
    geometry = TileGeometry(
        rows=tile_rows,
        cols=tile_cols,
        sensed_columns=math.ceil(sensed),
        cells=math.ceil(tile_rows * tile_cols * devices_per_weight),
        adcs=adcs,
        dac_bits=dac_bits,
        adc_bits=adc_bits,
        e_write_pj=device.e_write_pj,
        t_write_s=device.t_write_s,
        mvm_latency_s=t_dac + a.t_read_s + t_adc,
        device_name=type(device).__name__,
        e_read_pj=device.e_read_pj,
        ohmic_read=type(device).ohmic_read,
    )
    array_pj = v_sq_sum * a.v_read_v**2 * cols * devices_per_weight * g_mean * a.t_read_s * 1e6
    tiles = row_tiles * col_tiles
    # Every tile reads every vector; tiles work in parallel, so only energy and area add.
    # cell_reads prices the array of non-ohmic devices (e_read_pj per cell read).
    one = counters_cost(TileCounters(mvms=vectors, cell_reads=vectors * geometry.cells,
                                     array_energy_pj=array_pj / tiles), geometry,
                        model)  # fmt: skip
    total = one.scaled(tiles)
    total.latency_s, total.area_um2 = one.latency_s, one.area_um2 * tiles
    # MACs are logical weights × vectors: rounded-up tiles' unused word lines do no work.
    total.macs = float(vectors * rows * cols)
    return total
