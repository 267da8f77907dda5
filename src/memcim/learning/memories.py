"""Training memories of hybrid synapses: where weight updates accumulate between transfers.

A hybrid synapse ([12]–[15], docs/references.md) keeps its inference weight in multi-level RRAM and
accumulates learning updates in a second memory that writes cheaply and often. Each memory
here holds a signed value per synapse in *training units* (``1 / threshold`` of one RRAM level,
see :class:`~memcim.learning.hybrid.HybridConfig`), counts its writes and never loses an update
silently: what does not fit its range is returned as overflow.

* :class:`FeCapMemory`: a FeCAP holding a signed integer on its ``n_levels`` polarisation
  levels (level − centre). Every increment is a train of stochastic switching pulses
  (:meth:`memcim.devices.FeCap.add_levels`); reading it at a transfer is destructive and
  costs a write-back.
* :class:`SRAMMemory`: a ``bits``-bit signed integer word, exact; one word write per change.
  With many bits it is the digital accumulator of mixed-precision training. It is volatile and
  leaks: :meth:`TrainingMemory.leakage_energy_pj` charges ``SRAMCell.leakage_pw`` per word over
  the time the words hold data (the hybrid trainer reports it as ``"memory_leakage"``).
* :class:`GainCellMemory`: an analog charge on a differential pair of gain cells. Both
  discharge toward g_min with the retention time τ, so the stored value decays as
  exp(−t/τ) between updates; every update rewrites both cells.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

from memcim._errors import is_real, require
from memcim.devices import DeviceState, FeCap, GainCell, SRAMCell


@dataclass
class MemoryUpdate:
    """What one operation on a training memory did.

    Attributes:
        overflow: the part of each requested change that did not fit (training units).
        writes: write operations it took (pulses for a FeCAP, word or cell writes otherwise).
    """

    overflow: Tensor
    writes: int


class TrainingMemory(ABC):
    """One training memory cell (or word) per synapse; subclasses say how values are kept.

    Attributes:
        integer: values are integers (updates must be rounded before :meth:`add`).
        e_write_pj: energy of one write as counted in :class:`MemoryUpdate` (pJ).
    """

    integer: bool = True

    @property
    @abstractmethod
    def e_write_pj(self) -> float: ...

    @property
    @abstractmethod
    def limit(self) -> float:
        """Largest |value| the memory holds (training units)."""

    @abstractmethod
    def fresh(self, shape: tuple[int, ...], device: torch.device | None = None) -> object:
        """State of ``shape`` synapses holding 0."""

    @abstractmethod
    def value(self, state: object) -> Tensor:
        """Stored values (training units, float)."""

    @abstractmethod
    def add(
        self, state: object, delta: Tensor, *, generator: torch.Generator | None
    ) -> tuple[object, MemoryUpdate]:
        """Add ``delta`` (training units; integers for integer memories) to every synapse."""

    def elapse(self, state: object, t_s: float) -> object:
        """The state ``t_s`` seconds later (volatile memories decay)."""
        return state

    def read_for_transfer(self, state: object) -> tuple[object, int]:
        """Read every value before a transfer: (state after the read, writes it cost)."""
        return state, 0

    @property
    def leakage_pw(self) -> float:
        """Static power one synapse's memory draws while holding data (pW); 0 by default
        (FeCAP: non-volatile; gain cell: its charge leaks, but no supply power is modelled)."""
        return 0.0

    def leakage_energy_pj(self, synapses: int, t_s: float) -> float:
        """Static energy (pJ) of ``synapses`` memories holding data for ``t_s`` seconds:
        ``leakage_pw`` × synapses × t_s (1 pW for 1 s is 1 pJ)."""
        require(isinstance(synapses, int) and synapses >= 0, "synapses", synapses,
                "must be an integer >= 0")  # fmt: skip
        require(is_real(t_s) and t_s >= 0, "t_s", t_s, "must be a finite time >= 0 s")
        return self.leakage_pw * synapses * t_s


@dataclass
class FeCapMemory(TrainingMemory):
    """Signed integer on a FeCAP's polarisation levels, value = level − (n_levels − 1) // 2.

    Args:
        device: the FeCAP (default: 9 levels, values −4 … 4; 100 fJ per pulse [13, 14]).
    """

    device: FeCap = field(default_factory=lambda: FeCap(n_levels=9))

    @property
    def e_write_pj(self) -> float:
        return self.device.e_write_pj

    @property
    def centre(self) -> int:
        return (self.device.n_levels - 1) // 2

    @property
    def limit(self) -> float:
        return float(self.centre)

    def fresh(self, shape: tuple[int, ...], device: torch.device | None = None) -> DeviceState:
        level = torch.full(shape, self.centre, dtype=torch.int64, device=device)
        return DeviceState.fresh(self.device.g_of_level(level))

    def value(self, state: DeviceState) -> Tensor:
        return (self.device.level_of(state) - self.centre).float()

    def add(self, state, delta, *, generator):
        update = self.device.add_levels(state, delta.to(torch.int64), generator=generator)
        pulses = int(update.state.last_pulses.sum())
        return update.state, MemoryUpdate(update.overflow.float(), pulses)

    def read_for_transfer(self, state: DeviceState) -> tuple[DeviceState, int]:
        _, after = self.device.read_destructive(state)
        return after, int(after.last_pulses.sum())


@dataclass
class SRAMMemory(TrainingMemory):
    """A signed ``cell.bits``-bit integer word per synapse, range −2^(b−1) … 2^(b−1) − 1.

    Args:
        cell: the SRAM word (its bits and per-word write energy, Horowitz [1]).
    """

    cell: SRAMCell = field(default_factory=lambda: SRAMCell(bits=8))

    @property
    def e_write_pj(self) -> float:
        return self.cell.e_write_pj

    @property
    def limit(self) -> float:
        return float(2 ** (self.cell.bits - 1) - 1)

    @property
    def leakage_pw(self) -> float:
        """Leakage of one word, ``cell.leakage_pw`` (bits × per-bit leakage)."""
        return self.cell.leakage_pw

    def fresh(self, shape: tuple[int, ...], device: torch.device | None = None) -> Tensor:
        return torch.zeros(shape, dtype=torch.int64, device=device)

    def value(self, state: Tensor) -> Tensor:
        return state.float()

    def add(self, state, delta, *, generator):
        lo, hi = -(2 ** (self.cell.bits - 1)), 2 ** (self.cell.bits - 1) - 1
        wanted = state + delta.to(torch.int64)
        new = wanted.clamp(lo, hi)
        return new, MemoryUpdate((wanted - new).float(), int((new != state).sum()))


@dataclass
class GainCellMemory(TrainingMemory):
    """An analog value on a differential pair of gain cells, decaying as exp(−t / τ).

    Args:
        cell: the gain cell (its retention τ and write energy).
        limit_units: largest |value| the pair holds (training units); the charge window.
    """

    cell: GainCell = field(default_factory=GainCell)
    limit_units: float = 8.0
    integer = False

    def __post_init__(self) -> None:
        require(is_real(self.limit_units) and self.limit_units > 0,
                "GainCellMemory.limit_units", self.limit_units, "must be > 0")  # fmt: skip

    @property
    def e_write_pj(self) -> float:
        return self.cell.e_write_pj

    @property
    def limit(self) -> float:
        return self.limit_units

    def fresh(self, shape: tuple[int, ...], device: torch.device | None = None) -> Tensor:
        return torch.zeros(shape, device=device)

    def value(self, state: Tensor) -> Tensor:
        return state

    def elapse(self, state: Tensor, t_s: float) -> Tensor:
        return state * self.cell.decay_factor(t_s)

    def add(self, state, delta, *, generator):
        wanted = state + delta
        new = wanted.clamp(-self.limit_units, self.limit_units)
        changed = int((delta != 0).sum())
        return new, MemoryUpdate(wanted - new, 2 * changed)  # both cells of the pair
