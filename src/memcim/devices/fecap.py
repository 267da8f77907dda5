"""Ferroelectric capacitor (FeCAP) used as a multi-level training memory.

References: [13] M. Martemucci et al., "Hybrid FeRAM/RRAM Synaptic Circuit Enabling On-Chip
Inference and Learning at the Edge", IEDM 2023; [14] T. Januel et al., "Dual-Mode 16kb Memory:
Transforming a Ferroelectric Capacitor Bitcell into Resistive Filamentary Memory", IMW 2025.
See docs/references.md, "FeRAM / FeCAP".

A FeCAP stores a *polarisation*, not a conductance. The model keeps ``n_levels`` partial
polarisation states k = 0 … n_levels − 1 and reports level k as the equivalent conductance

    g(k) = g_min_us + k · (g_max_us − g_min_us) / (n_levels − 1),

so that tiles and hybrid synapses can treat it like any other :class:`Device`. Level 0 (fully
polarised "down") is the state of fresh cells.

Switching is stochastic: each programming pulse moves the polarisation one level toward the
target with probability ``p_switch``. Programming is open loop (one pulse per level of distance,
no verify), so a target d levels away lands d' ~ Binomial(d, p_switch) levels closer, short of
the target when some pulses fail.

Reading is destructive: sensing the switched charge erases the state, which must be written
back. :meth:`FeCap.read` is pure (it returns the stored value and leaves counters alone);
:meth:`FeCap.read_destructive` returns the value *and* the state after the write-back, with one
more write per cell, so that endurance and energy accounting see the cost of every read. Tiles
do the same on every MVM (:meth:`FeCap.apply_reads`): an activation senses every cell of the
array and writes it back, one write per cell and input vector (counted in
``TileCounters.writebacks``, priced as the ``"writeback"`` energy of the read, and added to
the cells' write counts, so reads wear them out too). A FeCAP read is charge sensing, not an
ohmic current, so the energy model charges ``e_read_pj`` per cell read
(``ohmic_read = False``).

Wear-out: after ``endurance_cycles`` pulses the ferroelectric is fatigued (domain pinning by
charged defects; the "high write endurance" of [13, 14] bounds it but no number is given): no
switchable polarisation is left, so sensing finds no switched charge and the cell reads as
level 0 (``g_min_us``) for good.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from memcim._errors import ConfigError, require
from memcim.devices.base import Device, DeviceState, ReadEffects, check_time, per_row


class LevelUpdate(NamedTuple):
    """Result of :meth:`FeCap.add_levels`.

    Attributes:
        state: the cells after the increment.
        overflow: signed levels (int64, shape of the state) that could not be applied because
            the cell hit level 0 or level n_levels − 1; zero where the request fitted. Pulses
            that failed stochastically are *not* overflow (they are a shortfall of the physics,
            visible as a smaller level change).
    """

    state: DeviceState
    overflow: Tensor


@dataclass(frozen=True, kw_only=True)
class FeCap(Device):
    """Multi-level ferroelectric capacitor with stochastic, level-by-level switching.

    Attributes:
        g_min_us: conductance reported for level 0 (µS); 0 µS, chosen to match the 0–25 µS
            window of :class:`~memcim.devices.PCM` so weight mappings coincide (the FeCAP has
            no conductance; the window is a convention, see module docstring).
        g_max_us: conductance reported for level n_levels − 1 (µS); 25 µS, as above.
        n_levels: partial-polarisation states per cell, >= 2; 8 (unverified default).
        p_switch: probability that one programming pulse moves the state by one level, in
            (0, 1]; 0.5 (unverified default).
        e_read_pj: energy of one sensing pulse, 0.1 pJ: the read fully switches the capacitor,
            so it costs about a write (unverified default); the write-back is counted
            separately as a write by :meth:`read_destructive`.
        e_write_pj: 0.1 pJ (100 fJ) per FeCAP write, the figure assumed in [13, 14].
        t_write_s: 10 ns per pulse (order of magnitude for HfO2 FeRAM; unverified default).
        endurance_cycles: 1e10 cycles ("high write endurance" of the FeCAP mode [13, 14];
            the number is an unverified default).
    """

    g_min_us: float = 0.0
    g_max_us: float = 25.0
    e_read_pj: float = 0.1
    e_write_pj: float = 0.1
    t_write_s: float = 10e-9
    endurance_cycles: float = 1e10
    n_levels: int = 8
    p_switch: float = 0.5

    #: Reads sense switched charge, not an ohmic current (see the module docstring).
    ohmic_read: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            isinstance(self.n_levels, int)
            and not isinstance(self.n_levels, bool)
            and self.n_levels >= 2,
            self._field("n_levels"),
            self.n_levels,
            "must be an integer >= 2",
        )
        require(
            0.0 < self.p_switch <= 1.0,
            self._field("p_switch"),
            self.p_switch,
            "must be a probability in (0, 1]",
        )

    # --- level <-> conductance ----------------------------------------------------------------
    @property
    def level_step_us(self) -> float:
        """Conductance between adjacent polarisation levels (µS)."""
        return self.g_span_us / (self.n_levels - 1)

    def level_of(self, g_us: DeviceState | Tensor) -> Tensor:
        """Polarisation level (int64) of each cell, the nearest to its conductance."""
        g = g_us.g_us if isinstance(g_us, DeviceState) else g_us
        k = ((g - self.g_min_us) / self.level_step_us).round()
        return k.clamp(0, self.n_levels - 1).to(torch.int64)

    def g_of_level(self, level: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Conductance (µS) that represents each polarisation ``level``."""
        return self.g_min_us + level.to(dtype) * self.level_step_us

    # --- physics ------------------------------------------------------------------------------
    def _levels_moved(self, n_pulses: Tensor, generator: torch.Generator | None) -> Tensor:
        """Levels moved by ``n_pulses`` pulses each succeeding with ``p_switch``: Binomial(n, p).

        One Bernoulli draw per pulse round keeps the pulse-by-pulse physics explicit; rounds are
        bounded by n_levels − 1, since no cell is ever more levels than that from its target.
        """
        moved = torch.zeros_like(n_pulses)
        rounds = int(n_pulses.max()) if n_pulses.numel() else 0
        for r in range(rounds):
            hit = (
                torch.rand(n_pulses.shape, generator=generator, device=n_pulses.device)
                < self.p_switch
            )
            moved += (hit & (n_pulses > r)).to(torch.int64)
        return moved

    def _pulse(
        self,
        state: DeviceState | None,
        level: Tensor,
        delta: Tensor,
        generator: torch.Generator | None,
        dtype: torch.dtype,
    ) -> DeviceState:
        """Apply |delta| pulses in the direction of sign(delta) from ``level``."""
        n_pulses = delta.abs()
        moved = self._levels_moved(n_pulses, generator)
        new_level = level + delta.sign() * moved
        return self.advance(state, self.g_of_level(new_level, dtype), n_pulses)

    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        """Pulse each cell toward the level nearest ``g_target_us`` (µS, any shape).

        Cells start from their level in ``state`` (level 0 for fresh cells) and receive one
        pulse per level of distance; each pulse succeeds with ``p_switch``, so the result may
        fall short of the target. ``last_pulses`` holds the pulses sent, which is what the
        write energy counts.
        """
        target = self.check_target(g_target_us)
        start = (
            torch.zeros(target.shape, dtype=torch.int64, device=target.device)
            if state is None
            else self.level_of(state)
        )
        delta = self.level_of(target) - start
        return self._pulse(state, start, delta, generator, target.dtype)

    def add_levels(
        self, state: DeviceState, delta: Tensor | int, *, generator: torch.Generator | None = None
    ) -> LevelUpdate:
        """Add signed integer increments to the stored levels (hybrid-synapse hidden values).

        The controller clips each request to the levels left before the end of the range and
        sends one pulse per remaining level (each succeeding with ``p_switch``); what did not
        fit is returned as ``overflow`` so saturation is never silent.

        Args:
            state: cells to update.
            delta: signed level increments, an integer tensor broadcastable to ``state.shape``
                (or a Python int).
            generator: source of the switching randomness.

        Returns:
            The updated state and the signed overflow per cell.
        """
        delta_t = delta if isinstance(delta, Tensor) else torch.as_tensor(delta)
        if delta_t.is_floating_point() or delta_t.dtype == torch.bool:
            raise ConfigError(
                f"delta must be an integer tensor of levels, got dtype {delta_t.dtype}"
            )
        delta_t = delta_t.to(torch.int64).expand(state.shape)
        level = self.level_of(state)
        fit = (level + delta_t).clamp(0, self.n_levels - 1) - level
        new_state = self._pulse(state, level, fit, generator, state.g_us.dtype)
        return LevelUpdate(new_state, delta_t - fit)

    def read(
        self,
        g_us: DeviceState | Tensor,
        *,
        t_s: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The stored level's conductance (µS), noise-free and without side effects.

        A physical FeCAP read is destructive; this method is the pure view of the value. Use
        :meth:`read_destructive` where the write-back must be counted.
        """
        return self.drift(g_us, t_s, generator=generator).clone()

    def read_destructive(
        self, state: DeviceState, *, t_s: float = 0.0
    ) -> tuple[Tensor, DeviceState]:
        """Read the cells and write the value back, counting the write-back.

        The write-back is modelled as exact (one write pulse that restores the sensed level;
        unverified simplification), so only ``writes`` and ``last_pulses`` change.

        Returns:
            ``(g_us, new_state)``: the values read (µS) and the state after the write-back,
            with one more write per responding cell.
        """
        check_time(t_s)
        g = self.read(state, t_s=t_s)
        return g, self.advance(state, state.g_us, 1)

    @property
    def reads_change_state(self) -> bool:
        """Every read is destructive and costs a write-back."""
        return True

    def apply_reads(
        self, state: DeviceState, drive: Tensor, *, generator: torch.Generator | None = None
    ) -> ReadEffects:
        """Write-backs of a batch of tile reads (see :meth:`Device.apply_reads`).

        Every input vector senses every cell of the array (the word lines of zero inputs
        included: the array is read as a whole) and writes the sensed level back, exactly
        (as in :meth:`read_destructive`), so each cell gets one more write per vector; cells
        that reach their endurance this way are fatigued (level 0). ``last_pulses`` keeps the
        latest *programming*'s pulses.
        """
        reads = per_row(torch.ones_like(drive, dtype=torch.int64), state).expand(state.shape)
        after = self.advance(state, state.g_us, reads)
        writebacks = int(after.last_pulses.sum())
        return ReadEffects(replace(after, last_pulses=state.last_pulses), 0, writebacks)

    def worn_out_us(self, g_us: Tensor) -> Tensor:
        """A fatigued capacitor reads as level 0 (module docstring)."""
        return torch.full_like(g_us, self.g_min_us)
