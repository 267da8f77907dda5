"""A crossbar tile: device state plus the periphery that turns it into a matrix-vector product.

Data path of :meth:`Tile.mvm` for inputs x (one vector per row of ``x``):

1. DAC: each input vector is scaled by its own range and quantised to signed codes; the row
   voltages are code / L · ``v_read_v``.
2. Array: the bit-line current of every slice is I = V · G_eff (Ohm and Kirchhoff), with G_eff the
   signed sum of the planes' conductances at time ``t_s`` after programming (drift applied).
   With wire resistance (``TileConfig.ir_drop``), each plane's conductances are replaced by the
   plane's transfer matrix A (I = V · A) from the circuit solver of
   :mod:`memcim.crossbar.circuit` — exact, or its first-order approximation — so IR drop and
   the coupling of all cells through the wires are in every read.
3. Read noise: for devices with independent Gaussian read noise, Σ_i V_i n_ij with
   n_ij ~ N(0, σ_ij²) is exactly N(0, Σ_i V_i² σ_ij²), so the noise of a whole column is drawn in
   the output domain at the cost of one more matrix product. Other devices are read cell by cell.
4. ADC: each slice's currents are quantised over a calibrated range; saturations are counted.
5. Digital: slices are shifted and added, scaled back to weight units, and optionally multiplied
   by the global drift-compensation factor.
6. Read side effects, for devices whose reads change the cells
   (:attr:`~memcim.devices.Device.reads_change_state`): STT-MRAM read disturb and FeCAP
   destructive reads with their write-backs are applied after every MVM and counted
   (:class:`TileCounters`). A batch of vectors reads the cells as they were before the batch.

Global drift compensation (``TileConfig.drift_compensation``), by default as a chip does it
(docs/references.md, PCM: "scale outputs by the ratio of a reference read at t to one at t0"; the
scheme of aihwkit's ``GlobalDriftCompensation``): the array is read with a fixed calibration
input (all ones) through the same DAC, read noise and ADC as any input, once right after
programming (the reference) and once at each read time t; the outputs are scaled by
mean|y_ref| / mean|y(t)|. The factor is thus itself noisy. ``drift_compensation_mode="oracle"``
uses instead the noise-free Σ|W(0)| / Σ|W(t)| of the drifted mean conductances, which no chip
can measure.

Shapes: the tile stores rows (inputs) × cols (outputs). Weights come in PyTorch's
[out, in] = [cols, rows] layout and ``mvm`` returns ``x @ W.T``. Any leading dimensions of the
programmed weights (or ``samples=S``) are Monte-Carlo dimensions: conductances become
[S, planes, rows, cols] and ``mvm`` returns [S, batch, cols] with no Python loop over samples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

import torch
from torch import Tensor

from memcim._errors import ConfigError, is_real, require
from memcim._modules import moved
from memcim.crossbar.circuit import CrossbarCircuit, CrossbarSolver, first_order_transfer
from memcim.crossbar.converters import ConverterConfig, quantize, rounded_codes
from memcim.crossbar.mapping import MappingConfig
from memcim.devices import PCM, Device, DeviceState
from memcim.devices.base import all_finite, check_time

ReadNoise = Literal["auto", "per_read", "per_time", "off"]
NonGaussianRead = Literal["per_cell", "moment_matched"]
DriftCompensationMode = Literal["read", "oracle"]
IrDrop = Literal["none", "exact", "first_order"]
IrDropCompensation = Literal["none", "predistortion", "column_scaling"]
_IR_DROPS = ("none", "exact", "first_order")
_IR_COMPENSATIONS = ("none", "predistortion", "column_scaling")
# Pre-distortion may shrink the conductance scale by at most this factor to make room for
# boosted cells (see Tile._predistort): half the signal, a 6 dB SNR cost at most.
_MIN_HEADROOM = 0.5

# Upper bound on the elements of one cell-by-cell read chunk (non-Gaussian read noise), to keep
# memory near 256 MB of float32.
_PER_CELL_CHUNK_ELEMENTS = 64 * 2**20


@dataclass(frozen=True, kw_only=True)
class TileConfig:
    """Everything that defines a tile except its size.

    Attributes:
        device: the cell technology (default :class:`~memcim.devices.PCM`).
        mapping: weight -> conductance mapping.
        dac: row input converter (range calibrated per input vector).
        adc: column output converter (range calibrated per slice on first use).
        adcs: ADCs per tile, time-multiplexed over the sensed columns; ``None`` = one per column.
        v_read_v: row voltage at full DAC scale (V).
        t_read_s: time the array is driven for one read (s).
        read_noise: how read noise is sampled.
            ``"per_read"``: an independent draw for every cell at every read, i.e. for every
            input vector — exact, in the output domain for Gaussian devices; right for white
            read noise (e.g. filamentary RRAM).
            ``"per_time"``: one realisation of every cell's noise per read time ``t_s``, shared
            by all vectors read at that time. Right for 1/f noise such as PCM's, whose published
            σ is the fluctuation accumulated since programming: its power sits at low frequency,
            so reads microseconds apart see nearly the same value (aihwkit samples it this way).
            Each output has the same marginal distribution as with ``"per_read"``; only the
            correlation between vectors read at the same ``t_s`` differs.
            ``"auto"`` (default): ``"per_time"`` for devices whose ``read_noise_spectrum`` is
            ``"1/f"``, ``"per_read"`` otherwise.
            ``"off"``: reads return the drifted mean.
        non_gaussian_read: how ``"per_read"`` noise of a device whose read noise is not
            Gaussian (``Device.gaussian_read_noise`` False, e.g. Lin et al.'s Laplace noise or
            telegraph noise) is drawn. ``"per_cell"`` (default, exact): every input vector reads
            every cell anew with :meth:`Device.read`, at the cost of one cell-sized draw per
            vector. ``"moment_matched"``: a column's noise Σ_i V_i n_ij is drawn in the output
            domain as a Gaussian of its exact variance Σ_i V_i² Var(n_ij), like Gaussian devices
            (a central-limit approximation: mean and variance exact, the shape Gaussian; for
            n equally driven cells with Laplace noise the excess kurtosis of the true sum is
            3/n, e.g. 0.004 for 784 rows). Needs zero-mean noise
            (``Device.zero_mean_read_noise``).
        drift_compensation: global drift compensation on (``True``, default) or off.
        drift_compensation_mode: how the factor is measured.
            ``"read"`` (default): from calibration reads, as a chip would: the all-ones input
            is read through the DAC, the array with its read noise and the ADC right after
            programming (reference, taken at the first compensated read, at t = 0) and at
            every new read time t; the factor is mean|y_ref| / mean|y(t)| over the columns
            (per Monte-Carlo sample). The calibration reads are real reads: they are counted
            in :class:`TileCounters` like any MVM (``mvms``, ``cell_reads``, conversions,
            array energy), and separately in ``calibration_reads``. They use an ADC range of
            their own, fitted on the reference read (saturations counted in ``adc_clipped``).
            No calibration read is made, and the factor is 1, at t = 0 (the reference time)
            and for devices that do not drift (:attr:`~memcim.devices.Device.drifts` False:
            nothing to compensate).
            ``"oracle"``: the noise-free Σ|W(0)| / Σ|W(t)| of the drifted mean conductances
            (no calibration reads, nothing counted; not measurable on a chip).
        ir_drop: wire resistance in the array read. ``"none"`` (default): ideal wires.
            ``"exact"``: every plane (and reference column) is solved as the circuit
            ``circuit`` describes (nodal analysis, :class:`~memcim.crossbar.circuit.
            CrossbarSolver`), one factorisation per plane and read time. ``"first_order"``:
            the one-pass approximation :func:`~memcim.crossbar.circuit.first_order_transfer`
            (cumulative sums, no solve), whose error against the exact solve grows with
            array size and r_wire/R_cell (docs/experiments/ir-drop.md). Each plane is its
            own physical array; the read-noise variance of ``"per_read"`` is not attenuated
            by the wires (a second-order effect).
        circuit: wire, driver, access-transistor and sensing resistances for ``ir_drop``
            (linear cells only).
        ir_drop_compensation: ``"predistortion"`` programs each plane with conductances G'
            such that the wired array's transfer matrix matches the intended G: G' ← G'·G/A(G')
            (elementwise), ``predistortion_steps`` times from G' = G, under the same
            ``ir_drop`` model. Where the largest G' would exceed g_max, all targets are first
            scaled toward g_min by at most 2× (headroom; undone digitally); cells needing more
            are clipped at g_max (counted in ``TileCounters.predistortion_clipped``; the
            scale used is :attr:`Tile.predistortion_headroom`). ``"column_scaling"``: a
            per-bit-line gain trim in the periphery, c_j = Σ_i G_ij / Σ_i A_ij of each plane
            (the array's own column sums, known after programming): no extra solve and no
            loss of signal, but it corrects only the column-average attenuation, not its
            variation along the word lines.
        predistortion_steps: fixed-point iterations of the pre-distortion (>= 1).
    """

    device: Device = field(default_factory=PCM)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    dac: ConverterConfig = field(default_factory=ConverterConfig)
    adc: ConverterConfig = field(default_factory=ConverterConfig)
    adcs: int | None = None
    v_read_v: float = 0.2
    t_read_s: float = 100e-9
    read_noise: ReadNoise = "auto"
    non_gaussian_read: NonGaussianRead = "per_cell"
    drift_compensation: bool = True
    drift_compensation_mode: DriftCompensationMode = "read"
    ir_drop: IrDrop = "none"
    circuit: CrossbarCircuit = field(default_factory=CrossbarCircuit)
    ir_drop_compensation: IrDropCompensation = "none"
    predistortion_steps: int = 3

    def __post_init__(self) -> None:
        require(
            isinstance(self.device, Device),
            "TileConfig.device",
            self.device,
            "must be a memcim.devices.Device instance",
        )
        if self.adcs is not None:
            require(
                isinstance(self.adcs, int) and self.adcs >= 1,
                "TileConfig.adcs",
                self.adcs,
                "must be an int >= 1 or None (one ADC per column)",
            )
        require(
            self.read_noise in ("auto", "per_read", "per_time", "off"),
            "TileConfig.read_noise",
            self.read_noise,
            "must be 'auto', 'per_read', 'per_time' or 'off'",
        )
        require(self.non_gaussian_read in ("per_cell", "moment_matched"),
                "TileConfig.non_gaussian_read", self.non_gaussian_read,
                "must be 'per_cell' (exact) or 'moment_matched'")  # fmt: skip
        if self.non_gaussian_read == "moment_matched":
            require(self.device.zero_mean_read_noise, "TileConfig.non_gaussian_read",
                    self.non_gaussian_read,
                    f"needs zero-mean read noise; {type(self.device).__name__}'s is not "
                    "(use 'per_cell')")  # fmt: skip
        require(isinstance(self.drift_compensation, bool), "TileConfig.drift_compensation",
                self.drift_compensation, "must be True or False")  # fmt: skip
        require(self.drift_compensation_mode in ("read", "oracle"),
                "TileConfig.drift_compensation_mode", self.drift_compensation_mode,
                "must be 'read' (calibration reads) or 'oracle' (noise-free)")  # fmt: skip
        require(self.ir_drop in _IR_DROPS, "TileConfig.ir_drop", self.ir_drop,
                f"must be one of {_IR_DROPS}")  # fmt: skip
        require(self.ir_drop_compensation in _IR_COMPENSATIONS, "TileConfig.ir_drop_compensation",
                self.ir_drop_compensation, f"must be one of {_IR_COMPENSATIONS}")  # fmt: skip
        require(isinstance(self.circuit, CrossbarCircuit), "TileConfig.circuit", self.circuit,
                "must be a memcim.crossbar.circuit.CrossbarCircuit")  # fmt: skip
        if self.ir_drop != "none":
            require(self.circuit.iv == "linear", "TileConfig.circuit", self.circuit.iv,
                    "must be iv='linear' (a tile reads a transfer matrix)")  # fmt: skip
        require(self.ir_drop_compensation == "none" or self.ir_drop != "none",
                "TileConfig.ir_drop_compensation", self.ir_drop_compensation,
                "needs ir_drop='exact' or 'first_order' (the model it compensates)")  # fmt: skip
        require(isinstance(self.predistortion_steps, int) and self.predistortion_steps >= 1,
                "TileConfig.predistortion_steps", self.predistortion_steps,
                "must be an int >= 1")  # fmt: skip
        require(self.v_read_v > 0, "TileConfig.v_read_v", self.v_read_v, "must be > 0 V")
        require(self.t_read_s >= 0, "TileConfig.t_read_s", self.t_read_s, "must be >= 0 s")


class Counters:
    """What the counter dataclasses share: reset to zero and a dict view."""

    def reset(self) -> None:
        for name in asdict(self):
            setattr(self, name, type(getattr(self, name))(0))

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


@dataclass
class TileCounters(Counters):
    """Operation counts, read by the energy model.

    Attributes:
        mvms: input vectors processed (one array activation each; × Monte-Carlo samples),
            drift-calibration reads included.
        cell_reads: cells read (cells per activation × activations).
        dac_conversions, adc_conversions: conversions performed.
        dac_clipped, adc_clipped: conversions that saturated.
        cell_writes: programming pulses applied to cells (write-backs of destructive reads
            are in ``writebacks``, not here).
        program_ops: calls to ``Tile.program``.
        array_energy_pj: energy the array dissipated in reads, Σ over reads of
            Σ_i V_i² Σ_j G_ij · t_read (pJ): every cell of a driven word line conducts, on all
            planes and reference columns; G is the drifted mean conductance (read noise averages
            out) and the wires' own dissipation is not included.
        calibration_reads: activations spent on drift-compensation calibration reads
            (``drift_compensation_mode="read"``); they are part of ``mvms`` too.
        read_disturbs: cells a read switched (STT-MRAM read disturb,
            :meth:`~memcim.devices.STTMRAM.apply_reads`).
        writebacks: write-back pulses of destructive reads (FeCAP,
            :meth:`~memcim.devices.FeCap.apply_reads`): one per cell and activation; they
            also add to the cells' write counts (endurance) and cost ``e_write_pj`` each as
            read energy.
        predistortion_clipped: cells whose IR-drop pre-distorted target fell outside the
            window and was clipped to it (``ir_drop_compensation="predistortion"``), summed
            over programmings; those cells stay under-compensated.
    """

    mvms: int = 0
    cell_reads: int = 0
    dac_conversions: int = 0
    adc_conversions: int = 0
    dac_clipped: int = 0
    adc_clipped: int = 0
    cell_writes: int = 0
    program_ops: int = 0
    array_energy_pj: float = 0.0
    calibration_reads: int = 0
    read_disturbs: int = 0
    writebacks: int = 0
    predistortion_clipped: int = 0


@dataclass
class _ReadCache:
    t_s: float
    g_slices: Tensor  # [..., slices, rows, cols] effective conductance (µS)
    var_slices: Tensor | None  # [..., slices, rows, cols] read-noise variance (µS²) or None
    compensation: Tensor  # [..., 1, 1] drift-compensation factor
    row_g_us: Tensor  # [..., rows, 1] physical conductance on each word line (µS), for energy


#: The tensor fields of a cached read (all but its time), as a checkpoint saves them.
_CACHED_TENSORS = tuple(f.name for f in fields(_ReadCache) if f.name != "t_s")


def row_drive(config: TileConfig, x: Tensor, *,
              owned: bool = False) -> tuple[Tensor, Tensor, float, int]:  # fmt: skip
    """Inputs ``x`` [..., B, rows] through ``config``'s DAC, uncounted: (codes, per-vector
    input scale [..., B, 1], volts per code, saturated conversions). An ideal DAC passes ``x``
    through at full read voltage. ``owned``: ``x`` is a buffer the caller gives up, which a
    max-abs DAC rounds in place (the same codes, one large allocation fewer)."""
    dac = config.dac
    if dac.ideal:
        return x, x.new_ones(()), config.v_read_v, 0
    scale = dac.calibrate(x, dim=-1)
    if dac.mode == "max_abs":  # each vector's own max-abs range: no code can saturate
        codes, clipped = rounded_codes(x, scale, dac.max_code, inplace=owned), 0
    else:
        codes, clipped = quantize(x, scale, dac.max_code)
    return codes, scale, config.v_read_v / dac.max_code, clipped


def times_input_scale(scale: Tensor, in_scale: Tensor) -> Tensor:
    """The factor that takes ADC outputs to weight units: the array's ``scale`` [..., 1, 1]
    times the DAC's per-vector input scale [..., B, 1] (0-d for an ideal DAC). Multiplied
    into this small factor first, so that the outputs take one pass, not two."""
    return scale * in_scale if in_scale.dim() else scale


def _distinct(x: Tensor) -> Tensor:
    """``x`` [..., B, rows] with every leading dim that repeats one tensor (stride 0, as after
    ``expand``) narrowed to size 1: the distinct vectors, ``x`` itself when there is none."""
    lead = range(x.dim() - 2)
    if not any(x.stride(d) == 0 and x.shape[d] > 1 for d in lead):
        return x
    return x[tuple(slice(0, 1) if x.stride(d) == 0 else slice(None) for d in lead)]


def _stack_states(first: DeviceState, rest: DeviceState) -> DeviceState:
    """``first`` (one copy) followed by ``rest`` ([K − 1, ...]) along a new leading dim."""

    def cat(a: Tensor | None, b: Tensor | None) -> Tensor | None:
        return None if a is None or b is None else torch.cat([a.unsqueeze(0), b])

    return DeviceState(
        g_us=cat(first.g_us, rest.g_us),
        writes=cat(first.writes, rest.writes),
        stuck=cat(first.stuck, rest.stuck),
        params={k: cat(v, rest.params[k]) for k, v in first.params.items() if k in rest.params},
        last_pulses=cat(first.last_pulses, rest.last_pulses),
    )


class Tile:
    """A rows × cols crossbar holding one weight matrix.

    Args:
        rows: word lines = inputs.
        cols: logical output columns (physical bit lines = cols × planes, plus references).
        config: the tile's technology and periphery.
    """

    def __init__(self, rows: int, cols: int, config: TileConfig | None = None) -> None:
        require(isinstance(rows, int) and rows >= 1, "rows", rows, "must be an int >= 1")
        require(isinstance(cols, int) and cols >= 1, "cols", cols, "must be an int >= 1")
        self.rows, self.cols = rows, cols
        self.config = config if config is not None else TileConfig()
        self.counters = TileCounters()
        self.state: DeviceState | None = None
        self.ref_state: DeviceState | None = None
        self.w_max: Tensor | None = None
        self.adc_range: Tensor | None = None
        self._ref_abs_sum: Tensor | None = None
        self._cal_reference: Tensor | None = None  # mean|y| of the reference read, [..., 1, 1]
        self._cal_adc_range: Tensor | None = None  # ADC range of the calibration reads
        #: Conductance scale s of the latest pre-distorted programming (1: no shrink needed).
        self.predistortion_headroom: float | None = None
        self._cache: _ReadCache | None = None

    # --- geometry -----------------------------------------------------------------------------
    @property
    def device(self) -> Device:
        """The cell technology of this tile (``config.device``)."""
        return self.config.device

    @property
    def mapping(self) -> MappingConfig:
        """The weight-to-conductance mapping (``config.mapping``)."""
        return self.config.mapping

    @property
    def sensed_columns(self) -> int:
        """Bit-line currents converted per read: one per logical column and slice."""
        return self.cols * self.mapping.slices

    @property
    def cells(self) -> int:
        """Physical cells, reference columns of cells included (per Monte-Carlo sample); a
        fixed reference (``MappingConfig.reference="fixed"``) is not made of cells."""
        mp = self.mapping
        ref = mp.slices * mp.devices_per_weight * self.rows
        cell_ref = mp.scheme == "offset" and not mp.fixed_reference
        return mp.planes * self.rows * self.cols + (ref if cell_ref else 0)

    @property
    def read_noise_mode(self) -> str:
        """The read-noise mode in force: ``"auto"`` resolved against the device's spectrum."""
        mode = self.config.read_noise
        if mode == "auto":
            return "per_time" if self.device.read_noise_spectrum == "1/f" else "per_read"
        return mode

    @property
    def _moment_matched(self) -> bool:
        return self.config.non_gaussian_read == "moment_matched"

    @property
    def mvm_latency_s(self) -> float:
        """Latency of one MVM: array read plus the ADC passes the column multiplexing needs."""
        adcs = self.config.adcs or self.sensed_columns
        passes = math.ceil(self.sensed_columns / adcs)
        t_conv = 0.0 if self.config.adc.ideal else self.config.adc.t_conversion_s
        t_dac = 0.0 if self.config.dac.ideal else self.config.dac.t_conversion_s
        return t_dac + self.config.t_read_s + passes * t_conv

    # --- programming --------------------------------------------------------------------------
    def program(
        self,
        weights: Tensor,
        *,
        generator: torch.Generator | None = None,
        samples: int | None = None,
    ) -> Tile:
        """Program ``weights`` ([..., cols, rows], PyTorch [out, in] layout) onto the devices.

        Args:
            weights: finite weights; leading dimensions are Monte-Carlo/instance dimensions.
            generator: randomness of the programming.
            samples: program S independent copies (a leading Monte-Carlo dimension of size S).

        Re-programming a tile with the same shape keeps the cells' history (write counts,
        stuck cells, device-to-device parameters).
        """
        w = self._check_weights(weights)
        if samples is not None:
            require(
                isinstance(samples, int) and samples >= 1,
                "samples",
                samples,
                "must be an int >= 1 or None",
            )
            w = w.expand(samples, *w.shape)
        dev = self.device
        w_max = self._w_max(w)
        planes, ref = self.mapping.targets(w.transpose(-1, -2) / w_max, dev.g_min_us, dev.g_max_us)
        return self._program_targets(planes, ref, w_max, generator, None)

    def program_conductances(
        self,
        planes_us: Tensor,
        *,
        w_max: float,
        generator: torch.Generator | None = None,
        repeats: int | None = None,
    ) -> Tile:
        """Program explicit conductance targets, for mappings :meth:`program` does not make.

        The weight the tile then holds is decoded as always: per slice Σ sign·G over its planes
        minus the reference, times ``w_max / (unit · N)`` (:meth:`MappingConfig.decode`). The
        Bayesian sampling schemes use it to place each weight's pair or triple of devices where
        the scheme needs them (e.g. a differential pair whose lower median is not g_min).

        Args:
            planes_us: targets [..., planes, rows, cols] (µS) in the mapping's plane order;
                leading dims are Monte-Carlo copies (distinct cells each, e.g. a device
                population). A reference column of cells is programmed at the mapping's g_ref.
            w_max: the weight one mapping unit (µS) on every device of a weight stands for.
            generator: randomness of the programming.
            repeats: K: program the *same* cells K times in a row and keep each result as one
                Monte-Carlo copy (a leading dim of K): cycle-to-cycle sampling, K × cells
                pulses. The K programmings are drawn at once from the cells' state before the
                first (vectorised); write counts accumulate along the K copies (copy k has had
                k + 1 more pulses), but a cell that wears out within the K programmings is
                only found stuck from the next programming on.
        """
        dev = self.device
        planes = self._check_targets(planes_us)
        require(is_real(w_max) and w_max > 0, "w_max", w_max, "must be finite and > 0")
        if repeats is not None:
            require(isinstance(repeats, int) and repeats >= 1, "repeats", repeats,
                    "must be an int >= 1 or None")  # fmt: skip
        ref = None
        if self.mapping.scheme == "offset":
            ref = self.mapping.reference_targets(tuple(planes.shape[:-3]), self.rows,
                                                 dev.g_min_us, dev.g_max_us,
                                                 device=planes.device)  # fmt: skip
        lead = (repeats,) if repeats is not None else ()
        w_max_t = torch.full((*lead, *planes.shape[:-3], 1, 1), float(w_max), device=planes.device)
        return self._program_targets(planes, ref, w_max_t, generator, repeats)

    def _check_targets(self, planes_us: Tensor) -> Tensor:
        expected = (self.mapping.planes, self.rows, self.cols)
        if not isinstance(planes_us, Tensor) or not planes_us.is_floating_point():
            raise ConfigError(f"planes_us must be a floating-point torch.Tensor, got "
                              f"{type(planes_us).__name__}")  # fmt: skip
        if planes_us.dim() < 3 or tuple(planes_us.shape[-3:]) != expected:
            raise ConfigError(f"planes_us has shape {tuple(planes_us.shape)}; this tile needs "
                              f"[..., {expected[0]}, {expected[1]}, {expected[2]}] "
                              "(planes, rows, cols)")  # fmt: skip
        if not all_finite(planes_us):
            raise ConfigError("planes_us contains NaN or infinite values")
        return planes_us.detach().float()

    def _program_targets(
        self, planes: Tensor, ref: Tensor | None, w_max: Tensor,
        generator: torch.Generator | None, repeats: int | None,
    ) -> Tile:  # fmt: skip
        """Program plane (and reference) targets; ``repeats``: see :meth:`program_conductances`."""
        if self.config.ir_drop_compensation == "predistortion":
            planes, ref, headroom, clipped = self._predistort(planes, ref)
            w_max = w_max / headroom
            self.predistortion_headroom = headroom
            self.counters.predistortion_clipped += clipped
        self.state = self._program_cells(planes, self.state, generator, repeats)
        self._count_writes(self.state)
        if ref is not None and not self.mapping.fixed_reference:
            self.ref_state = self._program_cells(ref, self.ref_state, generator, repeats)
            self._count_writes(self.ref_state)
        else:
            self.ref_state = None
        self.w_max = w_max
        self.counters.program_ops += 1
        self._cache = None
        self.adc_range = None
        self._forget_drift_references()
        return self

    def _program_cells(
        self, targets: Tensor, previous: DeviceState | None,
        generator: torch.Generator | None, repeats: int | None,
    ) -> DeviceState:  # fmt: skip
        """Program ``targets`` from the cells' ``previous`` state (kept when the shape matches:
        write counts, stuck cells, device-to-device parameters); ``repeats`` K re-programs the
        same cells K times and stacks the results along a new leading dim."""
        dev = self.device
        if repeats is not None and previous is not None and previous.shape[1:] == targets.shape:
            previous = previous.map(lambda t: t[-1])  # the array as its latest programming left it
        same = previous is not None and previous.shape == targets.shape
        first = dev.program(targets, generator=generator, state=previous if same else None)
        if repeats is None:
            return first
        if repeats == 1:
            return first.map(lambda t: t.unsqueeze(0))
        start = first.map(lambda t: t.expand(repeats - 1, *t.shape))
        rest = dev.program(targets.expand(repeats - 1, *targets.shape), generator=generator,
                           state=start)  # fmt: skip
        stacked = _stack_states(first, rest)
        # Programming k of the sequence follows the k before it on the same cells.
        pulses = stacked.last_pulses
        stacked.writes = first.writes.unsqueeze(0) + pulses.cumsum(0) - pulses[:1]
        return stacked

    def reprogram(
        self,
        old_weights: Tensor,
        new_weights: Tensor,
        *,
        generator: torch.Generator | None = None,
        only_moved: bool = False,
    ) -> int:
        """Re-program the cells whose target conductance differs between the weights the tile
        holds and ``new_weights`` (both [..., cols, rows]), as on-chip learning rules do.

        Needs a fixed weight scale (``MappingConfig.w_max``), so that unchanged weights keep
        their targets. The moved cells get the device's programming noise and are counted in
        ``counters.cell_writes``; the others keep their state.

        Args:
            old_weights: the weights the cells were programmed for.
            new_weights: the weights wanted now.
            generator: programming randomness.
            only_moved: program just the moved cells (:meth:`DeviceState.put`), which is much
                faster when few move in a large array; ``False`` draws for every cell and
                keeps the moved ones (:meth:`Device.program_where`). Same distribution, a
                different random stream.

        Returns:
            The number of cells written.
        """
        w_max = self.mapping.w_max
        if w_max is None:
            raise ConfigError("Tile.reprogram needs a fixed weight scale: set MappingConfig.w_max")
        dev, state = self.device, self._require_programmed()

        def targets(w: Tensor) -> Tensor:
            w = self._check_weights(w)
            return self.mapping.targets(w.transpose(-1, -2) / w_max, dev.g_min_us,
                                        dev.g_max_us)[0]  # fmt: skip

        wanted = targets(new_weights)
        moved = wanted != targets(old_weights)
        if not bool(moved.any()):
            return 0
        if only_moved:
            part = dev.program(wanted[moved], generator=generator,
                               state=state.map(lambda t: t[moved]))  # fmt: skip
            new_state = state.put(moved, part)
        else:
            new_state = dev.program_where(wanted, moved, state=state, generator=generator)
        self.set_cells(new_state, count_writes=True)
        return int(moved.sum())

    def select_copies(self, index: Tensor) -> Tile:
        """Keep the Monte-Carlo copies ``index`` (1-D, of the leading dim) for reading.

        E.g. the rows of a device population that a sampler reads. What programmed the other
        copies stays counted; ADC ranges and drift references are taken anew.
        """
        state = self._require_programmed()
        if state.g_us.dim() < 4:
            raise ConfigError("select_copies needs a tile programmed with Monte-Carlo copies")
        index = torch.as_tensor(index, dtype=torch.long, device=state.g_us.device)
        self.state = state.map(lambda t: t[index])
        if self.ref_state is not None:
            self.ref_state = self.ref_state.map(lambda t: t[index])
        if self.w_max.dim() > 2 and self.w_max.shape[0] > 1:
            self.w_max = self.w_max[index]
        self._cache = None
        self.adc_range = None
        self._forget_drift_references()
        return self

    def set_cells(self, state: DeviceState, *, count_writes: bool = False) -> Tile:
        """Hand the tile cells programmed outside :meth:`program`, keeping its scale and ADC.

        For learning rules that re-program some cells of a programmed tile themselves (e.g.
        with :meth:`Device.program_where`). The weight scale ``w_max``, the ADC ranges and the
        reference columns stay as they are; the drift-compensation reference is taken anew.

        Args:
            state: the cells, shape [..., planes, rows, cols] (leading dims: instances).
            count_writes: add ``state.last_pulses`` (the pulses of its latest programming) to
                ``counters.cell_writes``; leave False when handing back cells already counted.
        """
        self._require_programmed()
        planes = (self.mapping.planes, self.rows, self.cols)
        if not isinstance(state, DeviceState) or tuple(state.shape[-3:]) != planes:
            shape = tuple(state.shape) if isinstance(state, DeviceState) else None
            raise ConfigError(f"cells have shape {shape}; this tile needs [..., {planes}]")
        lead = tuple(state.shape[:-3])
        if self.mapping.w_max is not None:  # a fixed scale fits any number of instances
            self.w_max = torch.full(
                (*lead, 1, 1), float(self.mapping.w_max), device=state.g_us.device
            )
        elif tuple(self.w_max.shape[:-2]) != lead:
            raise ConfigError(
                f"cells have instance dims {lead}, the tile's weight scales "
                f"{tuple(self.w_max.shape[:-2])}: set MappingConfig.w_max to change them"
            )
        self.state = state
        if count_writes:
            self._count_writes(state)
        self._cache = None
        self._forget_drift_references()
        return self

    def _forget_drift_references(self) -> None:
        """New cells: drift-compensation references are taken anew when first needed."""
        self._ref_abs_sum = None  # see _drift_reference
        self._cal_reference = self._cal_adc_range = None  # see _calibration_reference

    def _check_weights(self, weights: Tensor) -> Tensor:
        if not isinstance(weights, Tensor) or not weights.is_floating_point():
            raise ConfigError(f"weights must be a floating-point torch.Tensor, got {weights!r:.60}")
        if weights.dim() < 2 or tuple(weights.shape[-2:]) != (self.cols, self.rows):
            raise ConfigError(
                f"weights have shape {tuple(weights.shape)}; this tile needs [..., {self.cols}, "
                f"{self.rows}] (out = cols, in = rows)"
            )
        if weights.numel() == 0:
            raise ConfigError(f"weights have shape {tuple(weights.shape)}: nothing to program")
        if not all_finite(weights):
            raise ConfigError("weights contain NaN or infinite values")
        return weights.detach().float()

    def _w_max(self, w: Tensor) -> Tensor:
        limit = self.mapping.w_max
        peak = w.abs().amax(dim=(-2, -1), keepdim=True)
        if limit is None:
            return torch.where(peak > 0, peak, torch.ones_like(peak))
        if (peak > limit * (1 + 1e-6)).any():
            raise ConfigError(
                f"weights reach |w| = {peak.max().item():.4g}, beyond MappingConfig.w_max={limit}: "
                "clip them to the mappable range or raise w_max"
            )
        return torch.full_like(peak, limit)

    def _count_writes(self, state: DeviceState) -> None:
        pulses = state.last_pulses if state.last_pulses is not None else state.writes
        self.counters.cell_writes += int(pulses.sum())

    def _require_programmed(self) -> DeviceState:
        if self.state is None:
            raise ConfigError("the tile holds no weights yet: call Tile.program(weights) first")
        return self.state

    def reset_read_cache(self) -> None:
        """Forget the cached read at the latest ``t_s`` (drifted conductances and, with
        ``per_time`` read noise, that time's noise realisation): the next read redraws it."""
        self._cache = None

    def to(self, device: torch.device | str) -> Tile:
        """Move the programmed cells and the cached read to ``device``, in place (the same
        conductances and noise realisation; the counters stay); returns ``self``."""
        device = torch.device(device)
        state, cache = self.state_tensors(), self.read_cache_tensors()
        self.load_state_tensors(moved(state, device))
        self.load_read_cache(moved(cache, device))
        return self

    # --- saving and restoring the programmed state ----------------------------------------------
    def read_cache_tensors(self) -> dict[str, Tensor]:
        """The cached read at the latest ``t_s`` (drifted conductances, that time's read-noise
        realisation, drift compensation) as tensors, ``"t_s"`` among them; empty when none.
        Restore with :meth:`load_read_cache`."""
        cache = self._cache
        if cache is None:
            return {}
        out = {"t_s": torch.tensor(cache.t_s, dtype=torch.float64, device=cache.g_slices.device)}
        for name in _CACHED_TENSORS:
            if getattr(cache, name) is not None:
                out[name] = getattr(cache, name).detach().clone()
        return out

    def load_read_cache(self, tensors: dict[str, Tensor]) -> None:
        """Restore a read saved by :meth:`read_cache_tensors` (empty: none cached)."""
        if not tensors:
            self._cache = None
            return
        cached = {name: tensors.get(name) for name in _CACHED_TENSORS}
        self._cache = _ReadCache(t_s=float(tensors["t_s"]), **cached)

    def state_tensors(self) -> dict[str, Tensor]:
        """Everything the programmed array holds, as a flat dict of tensors (for state_dict).

        Loadable with ``torch.load(weights_only=True)``; restore with :meth:`load_state_tensors`.
        """
        if self.state is None:
            return {}
        out = {"w_max": self.w_max, "ref_abs_sum": self._drift_reference()}
        optional = {"adc_range": self.adc_range, "cal_reference": self._cal_reference,
                    "cal_adc_range": self._cal_adc_range}  # fmt: skip
        out.update({k: v for k, v in optional.items() if v is not None})
        for prefix, state in (("cells", self.state), ("ref", self.ref_state)):
            if state is None:
                continue
            out[f"{prefix}.g_us"] = state.g_us
            out[f"{prefix}.writes"] = state.writes
            out[f"{prefix}.stuck"] = state.stuck
            if state.last_pulses is not None:
                out[f"{prefix}.last_pulses"] = state.last_pulses
            for name, value in state.params.items():
                out[f"{prefix}.param.{name}"] = value
        return {k: v.detach().clone() for k, v in out.items()}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore a state saved by :meth:`state_tensors` (an empty dict: unprogrammed)."""
        self._cache = None
        if not tensors:
            self.state = self.ref_state = self.w_max = self.adc_range = None
            self._forget_drift_references()
            return

        def state_for(prefix: str) -> DeviceState | None:
            if f"{prefix}.g_us" not in tensors:
                return None
            params = {
                key.split(".param.", 1)[1]: value
                for key, value in tensors.items()
                if key.startswith(f"{prefix}.param.")
            }
            return DeviceState(
                g_us=tensors[f"{prefix}.g_us"],
                writes=tensors[f"{prefix}.writes"],
                stuck=tensors[f"{prefix}.stuck"],
                params=params,
                last_pulses=tensors.get(f"{prefix}.last_pulses"),
            )

        state = state_for("cells")
        expected = (self.mapping.planes, self.rows, self.cols)
        if state is None or tuple(state.shape[-3:]) != expected:
            shape = None if state is None else tuple(state.shape)
            raise ConfigError(
                f"saved tile state has cell shape {shape}; this tile needs [..., {expected[0]}, "
                f"{expected[1]}, {expected[2]}] (planes, rows, cols)"
            )
        self.state, self.ref_state = state, state_for("ref")
        self.w_max = tensors["w_max"]
        self._ref_abs_sum = tensors["ref_abs_sum"]
        self.adc_range = tensors.get("adc_range")
        self._cal_reference = tensors.get("cal_reference")
        self._cal_adc_range = tensors.get("cal_adc_range")

    # --- reading the array --------------------------------------------------------------------
    def _slices_at(
        self, t_s: float, generator: torch.Generator | None = None, noisy: bool = False,
        draws: int | None = None,
    ) -> Tensor:  # fmt: skip
        """Effective conductance per slice at ``t_s``: drifted mean, or one noisy read
        (``draws`` independent noisy reads along a new leading dim)."""
        state = self._require_programmed()
        dev = self.device
        read = (
            (lambda s: dev.read(s, t_s=t_s, generator=generator))
            if noisy
            else (lambda s: dev.drift(s, t_s))
        )
        ref_state = self.ref_state
        if draws is not None:
            state = state.map(lambda t: t.expand(draws, *t.shape))
            if ref_state is not None:
                ref_state = ref_state.map(lambda t: t.expand(draws, *t.shape))
        ref = None if ref_state is None else self._wired(read(ref_state))
        if self.mapping.fixed_reference:
            ref = self._wired(self._fixed_reference(state))
        return self.mapping.slice_conductance(self._wired(read(state)), ref)

    def _fixed_reference(self, state: DeviceState) -> Tensor:
        """The noise-free reference column of ``MappingConfig.reference="fixed"``, [..., n, rows,
        1] (µS) for cells ``state``."""
        dev = self.device
        return self.mapping.reference_targets(tuple(state.shape[:-3]), self.rows, dev.g_min_us,
                                              dev.g_max_us, device=state.g_us.device)  # fmt: skip

    # --- wires --------------------------------------------------------------------------------
    def _transfer(self, g_us: Tensor) -> Tensor:
        """Transfer matrix A [rows, cols] (µS) of one physical array under ``config.ir_drop``."""
        circuit = self.config.circuit
        if self.config.ir_drop == "first_order":
            return first_order_transfer(g_us, circuit).to(g_us.dtype)
        transfer = CrossbarSolver(g_us, circuit).transfer_matrix()  # a sparse solve on the CPU
        return torch.as_tensor(transfer).to(g_us)

    def _wired(self, g_us: Tensor) -> Tensor:
        """Every [rows, cols] array in ``g_us`` [..., rows, cols] through its wires."""
        if self.config.ir_drop == "none":
            return g_us
        lowest = float(g_us.min())
        if lowest < 0:
            raise ConfigError(
                f"TileConfig.ir_drop={self.config.ir_drop!r} needs conductances >= 0 µS, but a "
                f"read of {type(self.device).__name__} gave {lowest:.3g} µS: its Gaussian read "
                "noise exceeds the conductance of cells near g_min (PCM's reaches about its "
                "conductance after an hour). Use read_noise='off' with the wire models, or "
                "ir_drop='none'"
            )
        flat = g_us.reshape(-1, *g_us.shape[-2:])
        wired = torch.stack([self._transfer(g) for g in flat]).reshape(g_us.shape)
        if self.config.ir_drop_compensation == "column_scaling":
            # clamp_min guards the division of an all-zero column only (no data is clipped).
            wired = wired * (
                g_us.sum(-2, keepdim=True) / wired.sum(-2, keepdim=True).clamp_min(1e-12)
            )
        return wired

    def _fixed_point(self, targets_us: Tensor, start_us: Tensor, upper_us: float,
                     steps: int) -> tuple[Tensor, int]:  # fmt: skip
        """G' with A(G') ≈ targets, by G' ← G'·G/A(G') from ``start_us``, within
        [g_min, upper]; and the cells the last step had to clip into that range."""
        g, clipped = start_us, 0
        lo = self.device.g_min_us
        for _ in range(steps):
            a = self._wired(g)
            # clamp_min on A only guards the division (a conducting cell has A > 0).
            wanted = g * targets_us / a.clamp_min(1e-12)
            clipped = int(((wanted < lo) | (wanted > upper_us)).sum())
            g = wanted.clamp(lo, upper_us)
        return g, clipped

    def _predistort(
        self, planes: Tensor, ref: Tensor | None
    ) -> tuple[Tensor, Tensor | None, float, int]:
        """Pre-distorted programming targets, the headroom factor s they needed and the number
        of cells clipped into the window (``TileCounters.predistortion_clipped``).

        Boosting the largest conductances past g_max is impossible. So the fixed point is first
        solved with room up to g_min + span / s_min; if it needs more than the window, every
        target is shrunk toward g_min by s = max(s_min, window / need) (the same weights on a
        smaller conductance scale, undone digitally through w_max / s) and solved again within
        the window, starting from the first solution scaled alike. Cells that would need more
        than s_min allows (the far corner of a large array with very resistive wires) are
        clipped at g_max and stay under-compensated; s_min = ``_MIN_HEADROOM`` bounds the loss
        of signal (and so of SNR against read noise and ADC steps).
        """
        dev = self.device
        steps = self.config.predistortion_steps
        targets = [planes] if ref is None else [planes, ref]
        room = dev.g_min_us + dev.g_span_us / _MIN_HEADROOM
        solved = [self._fixed_point(t, t.clone(), room, steps) for t in targets]
        fitted = [g for g, _ in solved]
        peak = max(float(((g - dev.g_min_us) / dev.g_span_us).max()) for g in fitted)
        s = max(_MIN_HEADROOM, 1.0 / peak) if peak > 1.0 else 1.0
        if s < 1.0:
            shrink = [dev.g_min_us + s * (g - dev.g_min_us) for g in (*targets, *fitted)]
            targets, starts = shrink[: len(targets)], shrink[len(targets) :]
            pairs = zip(targets, starts, strict=True)
            solved = [self._fixed_point(t, g, dev.g_max_us, steps) for t, g in pairs]
            fitted = [g for g, _ in solved]
        clipped = sum(c for _, c in solved)
        return fitted[0], (fitted[1] if ref is not None else None), s, clipped

    def _drift_reference(self) -> Tensor:
        """Σ|W| at t = 0 of the cells as programmed, the drift-compensation reference.

        Computed on first use, not at programming: tiles without drift compensation (e.g. the
        learners that re-program cells every step) never pay for it, and with wires it
        saves a circuit solve. Reads at t = 0 are deterministic, so the value is the same.
        """
        if self._ref_abs_sum is None:
            self._ref_abs_sum = self._abs_weight_sum(0.0)
        return self._ref_abs_sum

    def _abs_weight_sum(self, t_s: float) -> Tensor:
        g = self._slices_at(t_s)
        w = self.mapping.decode(g, self.w_max, self.device.g_min_us, self.device.g_max_us)
        return w.abs().sum(dim=(-2, -1), keepdim=True)

    def _read_cache(self, t_s: float, generator: torch.Generator | None = None) -> _ReadCache:
        t_s = check_time(t_s)
        if self._cache is not None and self._cache.t_s == t_s:
            return self._cache
        cache = self._array_read(t_s, generator)
        cfg = self.config
        if cfg.drift_compensation:
            if cfg.drift_compensation_mode == "oracle":
                cache.compensation = self._oracle_compensation(self._slices_at(t_s))
            elif t_s > 0 and self.device.drifts:
                cache.compensation = self._read_compensation(cache, t_s, generator)
        self._cache = cache
        return cache

    def _array_read(self, t_s: float, generator: torch.Generator | None) -> _ReadCache:
        """What every read at ``t_s`` shares (compensation 1)."""
        state = self._require_programmed()
        dev, mode = self.device, self.read_noise_mode
        var = None
        if mode == "per_time":  # one noisy read; the drifted means are not needed
            g_slices = self._slices_at(t_s, generator, noisy=True)
        else:
            g_slices = self._slices_at(t_s)
        if mode == "per_read" and (dev.gaussian_read_noise or self._moment_matched):
            plane_var = dev.read_noise_std(state, t_s=t_s).square()
            ref_var = (
                None
                if self.ref_state is None
                else dev.read_noise_std(self.ref_state, t_s=t_s).square()
            )
            var = self.mapping.slice_variance(plane_var, ref_var)
            if not bool((var > 0).any()):
                var = None  # a noiseless device: skip the variance product entirely
        row_g = self._row_conductance(t_s)
        return _ReadCache(t_s, g_slices.contiguous(), var, g_slices.new_ones(()), row_g)

    def _oracle_compensation(self, mean_slices: Tensor) -> Tensor:
        """Σ|W(0)| / Σ|W(t)| of the drifted mean conductances (``"oracle"``), [..., 1, 1]."""
        dev = self.device
        w = self.mapping.decode(mean_slices, self.w_max, dev.g_min_us, dev.g_max_us)
        now = w.abs().sum(dim=(-2, -1), keepdim=True)
        ref = self._drift_reference()
        return torch.where(now > 0, ref / now, torch.ones_like(now))

    def _read_compensation(
        self, cache: _ReadCache, t_s: float, generator: torch.Generator | None
    ) -> Tensor:
        """mean|y_ref| / mean|y(t)| of two calibration reads (``"read"``), [..., 1, 1]."""
        ref = self._calibration_reference(generator)
        now = self._calibration_read(cache, t_s, generator)
        return torch.where(now > 0, ref / now, torch.ones_like(now))

    def _calibration_reference(self, generator: torch.Generator | None) -> Tensor:
        """The calibration read at t = 0, taken once per programming (on first use)."""
        if self._cal_reference is None:
            cache0 = self._array_read(0.0, generator)
            self._cal_reference = self._calibration_read(cache0, 0.0, generator)
        return self._cal_reference

    def _calibration_read(
        self, cache: _ReadCache, t_s: float, generator: torch.Generator | None
    ) -> Tensor:
        """mean over columns of |y| for the all-ones input, read like any input: [..., 1, 1].

        The calibration reads keep an ADC range of their own (fitted on the first of them,
        the reference), so the tile's ADC range for ordinary inputs is left as it is. They are
        counted like any read, saturations included: a fixed DAC full scale below 1 clips the
        all-ones input, and a percentile-mode ADC clips the reference's largest outputs.
        """
        saved = self.adc_range
        self.adc_range = self._cal_adc_range
        try:
            y = self._read(cache.g_slices.new_ones(1, self.rows), cache, t_s, generator)
            self._cal_adc_range = self.adc_range
        finally:
            self.adc_range = saved
        self.counters.calibration_reads += y.numel() // self.cols
        return y.abs().mean(dim=-1, keepdim=True)

    def drift_factor(self, t_s: float = 0.0, *, generator: torch.Generator | None = None) -> Tensor:
        """The global drift-compensation factor applied to reads at ``t_s``, [..., 1, 1].

        1 without drift compensation. With ``drift_compensation_mode="read"`` the first call
        at a new ``t_s`` takes (and counts) the calibration reads, drawing their noise from
        ``generator``; the value is then shared by every read at that ``t_s``.
        """
        return self._read_cache(t_s, generator).compensation

    def _row_conductance(self, t_s: float) -> Tensor:
        """Σ_j G_ij over every plane and reference column of word line i (µS): [..., rows, 1]."""
        states = [s for s in (self.state, self.ref_state) if s is not None]
        row_g = sum(self.device.drift(s, t_s).sum(dim=(-3, -1)) for s in states)
        if self.mapping.fixed_reference:  # the fixed reference conducts too
            row_g = row_g + self._fixed_reference(self.state).sum(dim=(-3, -1))
        return row_g.unsqueeze(-1)

    def read_weights(
        self, t_s: float = 0.0, *, noisy: bool = False, generator: torch.Generator | None = None,
        draws: int | None = None,
    ) -> Tensor:  # fmt: skip
        """The weights the array holds at ``t_s`` ([..., cols, rows]), without converters.

        With drift compensation on, the tile's factor at ``t_s`` is applied (with
        ``drift_compensation_mode="read"`` the first use at a ``t_s`` takes and counts the
        calibration reads, drawn from ``generator``). Read disturb and destructive reads are
        not applied: this is a view of the cells, not an array read.

        Args:
            t_s: time since programming (s).
            noisy: include one draw of read noise (otherwise the drifted mean).
            generator: randomness of the noisy read and of calibration reads.
            draws: that many independent noisy reads, along a new leading dim
                ([draws, ..., cols, rows]); ``None``: one, without the dim.
        """
        t_s = check_time(t_s)
        if draws is not None:
            require(isinstance(draws, int) and draws >= 1, "draws", draws, "an int >= 1 or None")
        dev = self.device
        g = self._slices_at(t_s, generator, noisy and self.read_noise_mode != "off", draws)
        w = self.mapping.decode(g, self.w_max, dev.g_min_us, dev.g_max_us)
        if self.config.drift_compensation:
            # With drift_compensation_mode="read" this may take (and count) calibration reads.
            w = w * self._read_cache(t_s, generator).compensation
        return w.transpose(-1, -2)

    # --- matrix-vector products ---------------------------------------------------------------
    def _check_input(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise ConfigError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != self.rows:
            raise ConfigError(
                f"x has shape {tuple(x.shape)}; its last dimension must be the tile's "
                f"{self.rows} rows"
            )
        if not all_finite(_distinct(x)):  # a repeated batch is checked once
            raise ConfigError("x contains NaN or infinite values")
        return x.float()

    def _dac(self, x: Tensor, copies: int = 1) -> tuple[Tensor, Tensor, float]:
        """Row drive: (codes, per-vector input scale [..., B, 1], volts per code).

        ``copies``: how many times each vector of ``x`` is read (conversions and saturations
        are counted that many times).
        """
        codes, scale, volts_per_code, clipped = row_drive(self.config, x)
        if not self.config.dac.ideal:
            self.counters.dac_clipped += clipped * copies
            self.counters.dac_conversions += x.numel() * copies
        return codes, scale, volts_per_code

    def _currents(
        self,
        codes: Tensor,
        codes_sq: Tensor,
        volts_per_code: float,
        cache: _ReadCache,
        t_s: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Bit-line currents per slice (µA): [..., slices, B, cols]."""
        if self.read_noise_mode == "per_read" and not (
            self.device.gaussian_read_noise or self._moment_matched
        ):
            if self.config.ir_drop != "none":
                raise ConfigError(
                    f"TileConfig.ir_drop={self.config.ir_drop!r} needs Gaussian or per-time read "
                    f"noise; {type(self.device).__name__} is read cell by cell: set "
                    "read_noise='per_time' or 'off'"
                )
            return self._currents_per_cell(codes, volts_per_code, t_s, generator)
        g, var = cache.g_slices, cache.var_slices
        if g.dim() == 3 and g.shape[0] == 1:
            # One slice, no Monte-Carlo dimension: plain 2-D products, the fast common case.
            x, x_sq, g, var = codes, codes_sq, g[0], None if var is None else var[0]
        else:
            x, x_sq = codes.unsqueeze(-3), codes_sq.unsqueeze(-3)  # broadcast over slices
        i = torch.matmul(x, g)
        if var is not None:
            std = torch.matmul(x_sq, var).sqrt_()
            i.addcmul_(std, torch.randn(std.shape, generator=generator, device=std.device))
        if x is codes:
            i = i.unsqueeze(-3)
        return i.mul_(volts_per_code)

    def _currents_per_cell(
        self, codes: Tensor, volts_per_code: float, t_s: float, generator: torch.Generator | None
    ) -> Tensor:
        """Exact path for non-Gaussian read noise: every input vector reads every cell anew.

        Leading dims of the input that the tile's state does not have (e.g. Monte-Carlo samples
        of a scheme read per vector) are activations of their own: each reads anew too.
        """
        state = self._require_programmed()
        batch = codes.shape[-2]
        lead = torch.broadcast_shapes(codes.shape[:-2], state.shape[:-3])
        per_read = max(1, self.cells * max(1, math.prod(lead)))
        chunk = max(1, _PER_CELL_CHUNK_ELEMENTS // per_read)
        out = []
        for start in range(0, batch, chunk):
            x = codes[..., start : start + chunk, :]
            n = x.shape[-2]

            def grown(t: Tensor, n=n) -> Tensor:
                return t.expand(n, *lead, *t.shape[-3:])

            def read(s: DeviceState) -> Tensor:
                return self.device.read(s.map(grown), t_s=t_s, generator=generator)

            ref = None if self.ref_state is None else read(self.ref_state)
            if self.mapping.fixed_reference:
                ref = grown(self._fixed_reference(state))
            g = self.mapping.slice_conductance(read(state), ref)  # [n, *lead, S, rows, cols]
            xv = x.movedim(-2, 0)  # [n, *x's lead dims, rows]: insert the tile's missing ones
            xv = xv.reshape(n, *[1] * (len(lead) + 2 - xv.dim()), *xv.shape[1:])
            xv = xv.expand(n, *lead, self.rows)[..., None, None, :]
            i = torch.matmul(xv, g).squeeze(-2)  # [n, *lead, S, cols]
            out.append(i.movedim(0, -2))
        return torch.cat(out, dim=-2).mul_(volts_per_code)

    def _adc(self, currents: Tensor) -> Tensor:
        adc = self.config.adc
        if adc.ideal:
            return currents
        if self.adc_range is None and adc.mode == "fixed":
            # full_scale is µA per volt of full-scale row drive (µS), for every slice.
            self.adc_range = currents.new_tensor(float(adc.full_scale) * self.config.v_read_v)
        elif self.adc_range is None:
            per_slice = currents.movedim(-3, 0).reshape(currents.shape[-3], -1)
            self.adc_range = adc.calibrate(per_slice, dim=1).view(-1, 1, 1)
        # The currents are this read's own buffer: converted in place.
        codes, clipped = quantize(currents, self.adc_range, adc.max_code, inplace=True)
        self.counters.adc_clipped += clipped
        self.counters.adc_conversions += currents.numel()
        return codes.mul_(self.adc_range / adc.max_code)

    def calibrate(
        self, x: Tensor, *, t_s: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Set the ADC range of each slice from the currents that inputs ``x`` produce.

        Calibration reads are not counted in :attr:`counters`. Returns the ranges (µA).
        """
        saved = self.counters.as_dict()
        self.adc_range = None
        self.mvm(x, t_s=t_s, generator=generator)
        for name, value in saved.items():
            setattr(self.counters, name, value)
        return self.adc_range if self.adc_range is not None else x.new_ones(())

    def mvm(
        self, x: Tensor, *, t_s: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Analog matrix-vector product ``x @ W.T`` through DAC, array, noise and ADC.

        Args:
            x: inputs [..., B, rows] (or [rows]); leading dims broadcast against the tile's
                Monte-Carlo dimensions.
            t_s: time since programming (s), for drift and read noise.
            generator: randomness of the read noise (and of the calibration reads of drift
                compensation and of read disturb, where they apply).

        Returns:
            Outputs in weight units, [..., B, cols] ([cols] for a single vector).

        The first read at a new ``t_s`` may take drift-calibration reads (see
        ``TileConfig.drift_compensation_mode``); devices whose reads change the cells (STT-MRAM
        read disturb, FeCAP destructive read) are updated after the batch.
        """
        x = self._check_input(x)
        if x.numel() == 0:  # no vector to read: nothing converted, calibrated or counted
            check_time(t_s)
            mc = self._require_programmed().shape[:-3]
            return x.new_zeros(*torch.broadcast_shapes(x.shape[:-1], (*mc, 1)), self.cols)
        single = x.dim() == 1
        if single:
            x = x.unsqueeze(0)
        y = self._read(x, self._read_cache(t_s, generator), t_s, generator)
        return y.squeeze(-2) if single else y

    def _read(
        self, x: Tensor, cache: _ReadCache, t_s: float, generator: torch.Generator | None
    ) -> Tensor:
        """One read of inputs ``x`` [..., B, rows] through DAC, array, noise and ADC, scaled by
        ``cache.compensation``, counted, with the devices' read side effects: [..., B, cols]."""
        # A batch repeated over Monte-Carlo copies (stride 0, e.g. a network's input shared by
        # every sample) is converted once and read by every copy as that one conversion's
        # view: same codes, counted per copy. Only where every product is batched per copy
        # (conductances with Monte-Carlo dims), so that the matmul kernels stay the same.
        one = _distinct(x) if cache.g_slices.dim() > 3 else x
        codes, in_scale, volts_per_code = self._dac(one, x.numel() // max(1, one.numel()))
        codes_sq = codes.square()  # for the array energy Σ V² G t and the read-noise variance
        # Array energy: each word line's Σ over vectors of V², times its Σ_j G_ij. The same
        # sum as vector by vector, in another order (last float digits), at a fraction of the
        # cost; a shared batch is summed once and broadcast over the copies' conductances.
        per_copy = torch.matmul(codes_sq.sum(-2, keepdim=True), cache.row_g_us)
        if one is not x:
            codes, codes_sq = codes.expand(x.shape), codes_sq.expand(x.shape)
        currents = self._currents(codes, codes_sq, volts_per_code, cache, t_s, generator)
        # Each batch of x read against the copies' conductances: [..., slices, B, cols].
        batches = currents[..., 0, :, :].numel() // max(1, x.shape[-2] * self.cols)
        power_uw = per_copy.sum() * (batches // per_copy.numel()) * volts_per_code**2
        self.counters.array_energy_pj += float(power_uw) * self.config.t_read_s * 1e6
        currents = self._adc(currents)
        dev, mp = self.device, self.mapping
        k = mp.slice_weights(currents.device).view(-1, 1, 1)
        summed = currents[..., 0, :, :] if k.numel() == 1 else (currents * k).sum(-3)
        y = summed.mul_(times_input_scale(self._output_scale(cache), in_scale))
        vectors = y.numel() // self.cols
        self.counters.mvms += vectors
        self.counters.cell_reads += vectors * self.cells
        if dev.reads_change_state:
            drive = codes.abs().contiguous()  # a dense buffer even for a shared batch
            self._apply_reads(drive.mul_(volts_per_code / self.config.v_read_v), generator)
        return y

    def _output_scale(self, cache: _ReadCache) -> Tensor:
        """Weight units per µA of the slice-weighted, ADC-rescaled bit-line sum."""
        dev, mp = self.device, self.mapping
        unit = mp.unit_us(dev.g_min_us, dev.g_max_us) * mp.devices_per_weight
        return self.w_max * (cache.compensation / (unit * self.config.v_read_v))

    def _apply_reads(self, drive: Tensor, generator: torch.Generator | None) -> None:
        """Read disturb / destructive-read write-backs of one batch ([..., B, rows] drive)."""
        changed = False
        for name in ("state", "ref_state"):
            before = getattr(self, name)
            if before is None:
                continue
            effects = self.device.apply_reads(before, drive, generator=generator)
            setattr(self, name, effects.state)
            self.counters.read_disturbs += effects.disturbs
            self.counters.writebacks += effects.writebacks
            # Flipped or newly worn-out cells invalidate the cached read of this time.
            changed |= effects.disturbs > 0 or bool((effects.state.stuck != before.stuck).any())
        if changed:
            self._cache = None
