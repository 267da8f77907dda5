"""The interface every device model implements, and the state it returns.

A device model is a frozen, validated dataclass: it holds the *statistics* of one kind of cell,
never the state of particular cells. The state of a population of cells (one per element of a
conductance tensor, any shape, e.g. ``[S, rows, cols]`` with a leading Monte-Carlo dimension)
lives in a :class:`DeviceState` returned by :meth:`Device.program`.

Time ``t_s`` is always the time elapsed since the cells were programmed, in seconds.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields, replace
from typing import ClassVar, Literal, NamedTuple

import torch
from torch import Tensor

from memcim._errors import ConfigError, require


@dataclass
class DeviceState:
    """The state of a population of cells, all tensors of one shape.

    Attributes:
        g_us: conductance right after programming (µS). Drift and relaxation are applied on
            top of it at read time, from the persistent per-device parameters in ``params``.
        writes: programming pulses each cell has received so far (int64), for endurance and
            energy accounting.
        stuck: cells that no longer respond to programming (forming failures, worn-out cells).
            Their ``g_us`` is the value they are stuck at.
        params: persistent per-device random parameters drawn once and kept across reads, e.g.
            the PCM drift exponent ``"nu"`` or a relaxation draw ``"relax_z"``.
        last_pulses: pulses used by the latest :meth:`Device.program` call, per cell (int64);
            more than one with program-and-verify.
    """

    g_us: Tensor
    writes: Tensor
    stuck: Tensor
    params: dict[str, Tensor] = field(default_factory=dict)
    last_pulses: Tensor | None = None

    @classmethod
    def fresh(cls, g_us: Tensor, **params: Tensor) -> DeviceState:
        """A state for cells that hold ``g_us`` and have never been written."""
        return cls(
            g_us=g_us,
            writes=torch.zeros(g_us.shape, dtype=torch.int64, device=g_us.device),
            stuck=torch.zeros(g_us.shape, dtype=torch.bool, device=g_us.device),
            params=dict(params),
            last_pulses=torch.zeros(g_us.shape, dtype=torch.int64, device=g_us.device),
        )

    @property
    def shape(self) -> torch.Size:
        """Shape of the population (that of ``g_us``)."""
        return self.g_us.shape

    @property
    def device(self) -> torch.device:
        """Where the cells' tensors live (that of ``g_us``)."""
        return self.g_us.device

    def where(self, mask: Tensor, other: DeviceState) -> DeviceState:
        """Cells of ``other`` where ``mask`` is True, of ``self`` elsewhere (every field).

        Parameters present in only one state are taken from that state.
        """
        if other.shape != self.shape or mask.shape != self.shape:
            raise ConfigError(
                f"DeviceState.where needs one shape; got self {tuple(self.shape)}, other "
                f"{tuple(other.shape)}, mask {tuple(mask.shape)}"
            )

        def pick(a: Tensor | None, b: Tensor | None) -> Tensor | None:
            return b if a is None else a if b is None else torch.where(mask, b, a)

        names = self.params.keys() | other.params.keys()
        return DeviceState(
            g_us=torch.where(mask, other.g_us, self.g_us),
            writes=torch.where(mask, other.writes, self.writes),
            stuck=torch.where(mask, other.stuck, self.stuck),
            params={k: pick(self.params.get(k), other.params.get(k)) for k in names},
            last_pulses=pick(self.last_pulses, other.last_pulses),
        )

    def map(self, fn) -> DeviceState:
        """A new state with ``fn`` applied to every tensor (e.g. indexing, ``clone``)."""
        return DeviceState(
            g_us=fn(self.g_us),
            writes=fn(self.writes),
            stuck=fn(self.stuck),
            params={k: fn(v) for k, v in self.params.items()},
            last_pulses=None if self.last_pulses is None else fn(self.last_pulses),
        )

    def put(self, mask: Tensor, part: DeviceState) -> DeviceState:
        """A new state holding ``part`` (a state of the ``mask.sum()`` selected cells, in
        ``self[mask]`` order) where ``mask`` is True and ``self`` elsewhere; ``last_pulses``
        is 0 outside the mask. For programming a few cells of a large array without
        computing the others (``part = device.program(..., state=self.map(lambda t: t[mask]))``).
        """
        if mask.shape != self.shape or part.shape != (int(mask.sum()),):
            raise ConfigError(
                f"DeviceState.put needs a mask of the state's shape {tuple(self.shape)} and a "
                f"part of its selected cells; got mask {tuple(mask.shape)}, part "
                f"{tuple(part.shape)}"
            )

        def merged(full: Tensor, piece: Tensor) -> Tensor:
            out = full.clone()
            out[mask] = piece
            return out

        missing = part.params.keys() ^ self.params.keys()
        if missing:
            raise ConfigError(f"DeviceState.put: parameters {sorted(missing)} are not in both")
        pulses = part.last_pulses if part.last_pulses is not None else part.writes * 0
        return DeviceState(
            g_us=merged(self.g_us, part.g_us),
            writes=merged(self.writes, part.writes),
            stuck=merged(self.stuck, part.stuck),
            params={k: merged(v, part.params[k]) for k, v in self.params.items()},
            last_pulses=merged(torch.zeros_like(self.writes), pulses),
        )


class ReadEffects(NamedTuple):
    """Result of :meth:`Device.apply_reads`.

    Attributes:
        state: the cells after the reads.
        disturbs: cells whose stored state a read switched (read disturb).
        writebacks: write-back pulses the reads cost (destructive reads); they are also added
            to ``state.writes``, so they wear the cells out.
    """

    state: DeviceState
    disturbs: int
    writebacks: int


@dataclass(frozen=True, kw_only=True)
class Device(ABC):
    """Statistics of one memory cell technology.

    Subclasses add their own physical fields, validate them in ``__post_init__`` (calling
    ``super().__post_init__()``) and implement :meth:`program`. Devices whose conductance moves
    after programming override :meth:`drift`; devices with read noise override
    :meth:`read_noise_std` (independent Gaussian noise per read) or, for non-Gaussian noise,
    :meth:`read` and set ``gaussian_read_noise = False``.

    Attributes:
        g_min_us: lowest programmable conductance (µS).
        g_max_us: highest programmable conductance (µS).
        e_read_pj: energy of one cell read (pJ). The tile energy model
            (:func:`memcim.energy.cim.counters_cost`) charges it per cell read for devices whose
            read is not ohmic (``ohmic_read = False``: a FeCAP senses switched charge, an SRAM
            word a bit line). For ohmic (resistive) cells it measures Σ V² G t on every read
            instead (:attr:`memcim.crossbar.TileCounters.array_energy_pj`), and this field is
            only the order of magnitude of that figure, not charged twice.
        e_write_pj: energy of one programming pulse (pJ).
        t_write_s: duration of one programming pulse (s).
        endurance_cycles: programming pulses a cell survives (``math.inf`` for unlimited). The
            programming whose pulses bring a cell's write count to ``endurance_cycles`` is its
            last: the cell is then stuck (``DeviceState.stuck``) at :meth:`worn_out_us` of the
            value it reached, and later programming leaves it there (:meth:`advance`, shared
            by every device's ``program`` and so by :meth:`program_where`, tiles and learners).
            Cells handed over with a write count already past the endurance (e.g. from a
            looser setting) do not respond either.
    """

    g_min_us: float
    g_max_us: float
    e_read_pj: float
    e_write_pj: float
    t_write_s: float
    endurance_cycles: float

    #: True when :meth:`read` adds independent zero-mean Gaussian noise of std
    #: :meth:`read_noise_std`; tiles then add the noise exactly in the output domain.
    gaussian_read_noise: ClassVar[bool] = True

    #: True when the read noise has zero mean around :meth:`drift` and :meth:`read_noise_std` is
    #: its whole std, also for non-Gaussian noise: tiles may then draw a column's noise as a
    #: Gaussian of the same variance (``TileConfig.non_gaussian_read="moment_matched"``).
    zero_mean_read_noise: ClassVar[bool] = True

    #: Spectrum of the read noise. ``"white"``: reads are independent draws. ``"1/f"``: the
    #: published σ is the fluctuation accumulated since programming, whose power sits at low
    #: frequency, so reads close in time share it (tiles then draw one realisation per read
    #: time by default).
    read_noise_spectrum: ClassVar[Literal["white", "1/f"]] = "white"

    #: True when a read is an ohmic current I = V·G, so that the array's read energy is
    #: Σ V² G t (resistive cells). False for cells whose read senses something else (charge,
    #: a digital bit line): the energy model then charges ``e_read_pj`` per cell read.
    ohmic_read: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not isinstance(value, bool):
                require(not math.isnan(value), self._field(f.name), value, "must not be NaN")
        require(self.g_min_us >= 0, self._field("g_min_us"), self.g_min_us, "must be >= 0 µS")
        if not self.g_max_us > self.g_min_us:
            raise ConfigError(
                f"{self._field('g_max_us')}={self.g_max_us!r} is invalid: must be greater than "
                f"g_min_us={self.g_min_us!r}"
            )
        # Conductances are float32 tensors: a window of 1e-300 µS is 0 there (0/0 reads).
        require(self.g_max_us - self.g_min_us >= 1e-12, self._field("g_max_us"), self.g_max_us,
                f"must exceed g_min_us={self.g_min_us!r} by >= 1e-12 µS")  # fmt: skip
        for name in ("g_min_us", "g_max_us", "e_read_pj", "e_write_pj", "t_write_s"):
            value = getattr(self, name)
            require(
                math.isfinite(value) and value >= 0,
                self._field(name),
                value,
                "must be finite and >= 0",
            )
        require(
            self.endurance_cycles > 0,
            self._field("endurance_cycles"),
            self.endurance_cycles,
            "must be > 0 (math.inf for unlimited)",
        )

    def _field(self, name: str) -> str:
        return f"{type(self).__name__}.{name}"

    @property
    def g_span_us(self) -> float:
        """Programmable window g_max − g_min (µS)."""
        return self.g_max_us - self.g_min_us

    # ----------------------------------------------------------------------------------------
    # The physics: programming, drift, read.
    # ----------------------------------------------------------------------------------------
    @abstractmethod
    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        """Program cells toward ``g_target_us`` (µS, any shape).

        Args:
            g_target_us: target conductances; must lie in ``[g_min_us, g_max_us]`` and be finite.
            generator: source of all randomness (seeded ``torch.Generator``).
            state: the cells' previous state, for write counts, stuck cells and persistent
                device-to-device parameters; ``None`` for fresh cells.

        Returns:
            The new state. ``state`` is not modified.
        """

    def drift(
        self, g_us: DeviceState | Tensor, t_s: float, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Noise-free conductance ``t_s`` seconds after programming (µS).

        Deterministic for a :class:`DeviceState`; for a bare tensor of programmed conductances
        the persistent per-device parameters are first drawn from ``generator``.
        """
        state = self.as_state(g_us, generator=generator)
        check_time(t_s)
        return state.g_us

    @property
    def drifts(self) -> bool:
        """True when the conductance can move after programming (the model overrides
        :meth:`drift`), i.e. when drift compensation has something to compensate."""
        return type(self).drift is not Device.drift

    def read_noise_std(self, state: DeviceState, *, t_s: float) -> Tensor:
        """Std of the zero-mean Gaussian read noise (µS) of each cell at ``t_s``.

        Tiles use it to add the noise of a whole column exactly in the output domain (variance
        Σ x² σ²) when ``gaussian_read_noise`` is True, and as the variance of a moment-matched
        Gaussian for other devices whose ``zero_mean_read_noise`` is True.
        """
        return torch.zeros_like(state.g_us)

    def read_noise_std_drifted(self, state: DeviceState, g_t: Tensor, *, t_s: float) -> Tensor:
        """:meth:`read_noise_std` of cells ``state`` whose drifted conductance at ``t_s`` is
        ``g_t`` (µS), which :meth:`read` has already computed; a device whose noise scales with
        the drifted conductance overrides it to skip computing that twice."""
        return self.read_noise_std(state, t_s=t_s)

    def read(
        self,
        g_us: DeviceState | Tensor,
        *,
        t_s: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One read of every cell at ``t_s`` (µS): drifted conductance plus one noise draw."""
        state = self.as_state(g_us, generator=generator)
        g_t = self.drift(state, t_s)
        std = self.read_noise_std_drifted(state, g_t, t_s=t_s)
        return g_t + std * torch.randn(
            g_t.shape, generator=generator, dtype=g_t.dtype, device=g_t.device
        )

    def program_where(
        self,
        g_target_us: Tensor,
        where: Tensor,
        *,
        state: DeviceState,
        generator: torch.Generator | None = None,
    ) -> DeviceState:
        """Program only the cells where ``where`` (bool, the state's shape) is True.

        The other cells keep their state and get ``last_pulses`` 0 (they were not written), so
        learning rules can re-program a few cells of an array. Targets of unselected cells
        are ignored but must still be valid.
        """
        if not isinstance(state, DeviceState):
            raise ConfigError("program_where needs the cells' present state")
        new = self.program(g_target_us, generator=generator, state=state)
        untouched = replace(state, last_pulses=torch.zeros_like(state.writes))
        return untouched.where(where, new)

    # ----------------------------------------------------------------------------------------
    # Helpers for subclasses.
    # ----------------------------------------------------------------------------------------
    def init_params(self, g_us: Tensor, *, generator: torch.Generator | None) -> dict[str, Tensor]:
        """Persistent per-device parameters for cells just programmed to ``g_us``."""
        return {}

    def as_state(
        self, g_us: DeviceState | Tensor, *, generator: torch.Generator | None = None
    ) -> DeviceState:
        """Accept either a :class:`DeviceState` or a tensor of programmed conductances (µS)."""
        if isinstance(g_us, DeviceState):
            return g_us
        g = check_conductance(g_us, "g_us")
        return DeviceState.fresh(g, **self.init_params(g, generator=generator))

    def check_target(self, g_target_us: Tensor) -> Tensor:
        """Validate programming targets: finite, float, inside the device window.

        Targets outside the window raise. Targets within 1e-5 · g_max of an edge (float32
        rounding of an exact edge, e.g. w / w_max · span + g_min) are accepted and set to the
        edge: a rounding, not a clip of real data.
        """
        g = check_conductance(g_target_us, "g_target_us")
        # A tolerance of a few ulps lets exact window edges computed in float32 through.
        tol = 1e-5 * self.g_max_us
        lo, hi = g.min().item() if g.numel() else 0.0, g.max().item() if g.numel() else 0.0
        if g.numel() and (lo < self.g_min_us - tol or hi > self.g_max_us + tol):
            raise ConfigError(
                f"g_target_us spans [{lo:.4g}, {hi:.4g}] µS, outside the "
                f"{type(self).__name__} window [{self.g_min_us}, {self.g_max_us}] µS"
            )
        return g.clamp(self.g_min_us, self.g_max_us)

    def clip(self, g_us: Tensor) -> Tensor:
        """Physical bound of a noisy *programmed* conductance: never below 0 or above g_max.

        Used by the models that say so in their docstrings (:class:`~memcim.devices.TwoDFET`
        and :class:`~memcim.devices.GainCell` programming noise): a channel or a stored charge
        cannot go negative nor past the fully-on state. Reads are never clipped (a clipped
        read would bias the mean of the read noise).
        """
        return g_us.clamp(0.0, self.g_max_us)

    def worn_out_us(self, g_us: Tensor) -> Tensor:
        """Value (µS) a cell sticks at once it reaches its endurance, from the value ``g_us``
        it held after its last working programming.

        Default: the last value (the cell stops responding where it is, as a filamentary RRAM
        cell whose filament no longer ruptures). Devices whose wear-out ends in a particular
        state override this (PCM stuck-SET or stuck-RESET, MTJ barrier breakdown, fatigued
        FeCAP).
        """
        return g_us

    def advance(
        self, state: DeviceState | None, g_us: Tensor, pulses: Tensor | int = 1, **params: Tensor
    ) -> DeviceState:
        """Bookkeeping shared by every ``program``: write counts, stuck cells keep their value.

        Endurance is applied here, once for every device: cells already past
        ``endurance_cycles`` (but not yet marked stuck) receive no pulse, and every cell whose
        write count reaches ``endurance_cycles`` in this operation becomes stuck at
        :meth:`worn_out_us` of the value this operation gave it (for a device with its own
        worn-out state, e.g. PCM stuck-SET, that state at once: the operation that wears the
        cell out does not leave it at its target).

        Args:
            state: previous state or ``None`` for fresh cells.
            g_us: conductance the programming produced (µS) where the cells respond.
            pulses: pulses applied per cell in this programming operation (broadcastable).
            params: persistent per-device parameters after this programming.
        """
        pulses_t = torch.as_tensor(pulses, dtype=torch.int64, device=g_us.device).expand(g_us.shape)
        if state is None:
            state = DeviceState.fresh(torch.zeros_like(g_us))
        blocked = state.stuck
        finite = math.isfinite(self.endurance_cycles)
        if finite:
            blocked = blocked | (state.writes >= self.endurance_cycles)
        pulses_t = torch.where(blocked, 0, pulses_t)
        writes = state.writes + pulses_t
        g_new = torch.where(blocked, state.g_us, g_us)
        stuck = state.stuck
        if finite:
            # No host sync on the hot path (every MCMC step programs whole arrays): the identity
            # wear-out needs no where at all, the others one unconditional where.
            worn = ~stuck & (writes >= self.endurance_cycles)
            if type(self).worn_out_us is not Device.worn_out_us:
                g_new = torch.where(worn, self.worn_out_us(g_new).to(g_new.dtype), g_new)
            stuck = stuck | worn
        merged = dict(state.params)
        merged.update(params)
        return DeviceState(
            g_us=g_new,
            writes=writes,
            stuck=stuck,
            params=merged,
            last_pulses=pulses_t,
        )

    def apply_reads(
        self, state: DeviceState, drive: Tensor, *, generator: torch.Generator | None = None
    ) -> ReadEffects:
        """What reading changes in the cells: the state after a batch of array reads.

        Tiles call it after every MVM when :attr:`reads_change_state` is True (never
        otherwise, so devices whose reads leave the cells alone pay nothing).

        Args:
            state: the cells, [..., planes, rows, cols] (or [..., n, rows, 1] for reference
                columns).
            drive: |V| / V_read of each word line for each input vector read, [..., B, rows]
                (0 where a row was not driven). Leading dims broadcast against the state's.
            generator: randomness of the read effects (e.g. disturb flips).

        Returns:
            The new state and the counts of what happened.
        """
        return ReadEffects(state, 0, 0)

    @property
    def reads_change_state(self) -> bool:
        """True when a read changes the cells (read disturb, destructive read)."""
        return False

    # ----------------------------------------------------------------------------------------
    # Energy and latency per operation.
    # ----------------------------------------------------------------------------------------
    def write_energy_pj(self, state: DeviceState) -> float:
        """Energy of the latest programming operation over all cells (pJ)."""
        pulses = state.last_pulses if state.last_pulses is not None else state.writes
        return float(pulses.sum()) * self.e_write_pj


def per_row(values: Tensor, state: DeviceState) -> Tensor:
    """Sum of per-read, per-word-line ``values`` [..., B, rows] over the reads, as a tensor
    that broadcasts against ``state`` [..., planes, rows, cols]: [..., 1, rows, 1].

    Leading dims of ``values`` beyond the state's own (inputs broadcast against one array)
    are reads of the same cells, so they are summed too.
    """
    lead = state.g_us.dim() - 3
    summed = values.sum(-2)
    extra = summed.dim() - 1 - lead
    if extra > 0:
        summed = summed.sum(dim=tuple(range(extra)))
    return summed.unsqueeze(-2).unsqueeze(-1)


def check_conductance(g_us: Tensor, name: str) -> Tensor:
    """Validate a conductance tensor: a floating tensor with no NaN or infinity."""
    if not isinstance(g_us, Tensor):
        raise ConfigError(
            f"{name} must be a torch.Tensor of conductances in µS, got {type(g_us).__name__}"
        )
    if not g_us.is_floating_point():
        raise ConfigError(f"{name} must be a floating-point tensor, got dtype {g_us.dtype}")
    if not all_finite(g_us):
        raise ConfigError(f"{name} contains NaN or infinite values")
    return g_us


def all_finite(t: Tensor) -> bool:
    """True when ``t`` holds no NaN or infinity (one reduction in the common, finite case)."""
    # A finite sum proves every element finite; an infinite sum may be overflow, so recheck.
    # math.isfinite(float(·)) of the 0-d sum: ~3x cheaper than torch.isfinite on it.
    total = (t.detach() if t.requires_grad else t).sum()
    return math.isfinite(float(total)) or bool(torch.isfinite(t).all())


def any_nan(t: Tensor) -> bool:
    """True when ``t`` holds a NaN (one reduction in the common case, ~20x faster on CPU than
    ``isnan().any()``)."""
    # A sum without NaN proves there is none; a NaN sum may come from +inf + -inf: recheck.
    return math.isnan(float(t.detach().sum())) and bool(torch.isnan(t).any())


def check_time(t_s: float, name: str = "t_s") -> float:
    """Validate a time since programming (s): finite and >= 0."""
    require(
        isinstance(t_s, int | float) and math.isfinite(t_s) and t_s >= 0,
        name,
        t_s,
        "time since programming must be a finite number of seconds >= 0",
    )
    return float(t_s)
