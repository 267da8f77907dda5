"""Companion memories for hybrid synapses: an SRAM word and a charge-based gain cell.

Neither stores a conductance; both report their content as an equivalent conductance inside
``[g_min_us, g_max_us]`` so that they fit the :class:`Device` interface:

* :class:`SRAMCell` stores ``bits`` bits exactly: the target is quantised onto 2**bits evenly
  spaced levels across the window, code k <-> g_min + k (g_max − g_min) / (2**bits − 1).
  No noise, no drift, unlimited endurance; it leaks.
* :class:`GainCell` stores a charge on a storage node, read through a transistor whose
  conductance follows it; the charge leaks away, so the stored value decays toward g_min with
  retention time constant τ: g(t) = g_min + (g_prog − g_min) · exp(−t / τ).

References: [1] M. Horowitz, ISSCC 2014 (SRAM access energy); [12] W.-S. Khwa et al., Nature
639 (2025) (SRAM beside memristors); [15] S. Liu et al., IEEE TED 72(5) (2025) (gain cells
monolithically integrated with RRAM). See docs/references.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from memcim._errors import require
from memcim.devices.base import Device, DeviceState, check_time

# Horowitz [1]: a 32-bit read of an 8 KB SRAM costs 5 pJ, i.e. 5/32 pJ per bit.
_SRAM_BIT_PJ = 5.0 / 32.0


@dataclass(frozen=True, kw_only=True)
class SRAMCell(Device):
    """A word of ``bits`` SRAM bit-cells storing one quantised value exactly.

    The per-word energies and leakage are derived from the per-bit fields times ``bits``.
    Reads are digital (``ohmic_read = False``): the energy model charges ``e_read_pj`` per word
    read. Leakage is charged over the time the words hold data by
    :meth:`leakage_energy_pj` (e.g. :class:`memcim.learning.memories.SRAMMemory` over a
    training run).

    Attributes:
        g_min_us: value of code 0 (µS); 0 µS, matching the 0–25 µS window of
            :class:`~memcim.devices.PCM` (a convention; SRAM has no conductance).
        g_max_us: value of code 2**bits − 1 (µS); 25 µS, as above.
        bits: bits per stored value, 1–32; 8 (unverified default).
        e_read_bit_pj: read energy per bit, 5/32 ≈ 0.156 pJ (Horowitz [1]: 32-bit read of an
            8 KB SRAM, 5 pJ, at 45 nm).
        e_write_bit_pj: write energy per bit, taken equal to the read energy (unverified).
        leakage_bit_pw: static leakage per bit-cell, 50 pW (order of magnitude for low-power
            6T SRAM; unverified default).
        e_read_pj, e_write_pj: per-word energies, ``bits`` × the per-bit values (derived).
        leakage_pw: per-word leakage, ``bits`` × ``leakage_bit_pw`` (derived).
        t_write_s: 1 ns (a 1 GHz access; unverified default).
        endurance_cycles: unlimited (``math.inf``).
    """

    g_min_us: float = 0.0
    g_max_us: float = 25.0
    bits: int = 8
    e_read_bit_pj: float = _SRAM_BIT_PJ
    e_write_bit_pj: float = _SRAM_BIT_PJ
    leakage_bit_pw: float = 50.0
    e_read_pj: float = field(init=False)
    e_write_pj: float = field(init=False)
    leakage_pw: float = field(init=False)
    t_write_s: float = 1e-9
    endurance_cycles: float = math.inf

    #: A digital read of a bit line, not an ohmic current.
    ohmic_read: ClassVar[bool] = False

    def __post_init__(self) -> None:
        require(
            isinstance(self.bits, int) and not isinstance(self.bits, bool) and 1 <= self.bits <= 32,
            self._field("bits"),
            self.bits,
            "must be an integer in [1, 32]",
        )
        for name in ("e_read_bit_pj", "e_write_bit_pj", "leakage_bit_pw"):
            value = getattr(self, name)
            require(0 <= value < math.inf, self._field(name), value, "must be finite and >= 0")
        object.__setattr__(self, "e_read_pj", self.bits * self.e_read_bit_pj)
        object.__setattr__(self, "e_write_pj", self.bits * self.e_write_bit_pj)
        object.__setattr__(self, "leakage_pw", self.bits * self.leakage_bit_pw)
        super().__post_init__()

    @property
    def n_levels(self) -> int:
        """Number of representable values, 2**bits."""
        return 2**self.bits

    @property
    def lsb_us(self) -> float:
        """Conductance step of one least-significant bit (µS)."""
        return self.g_span_us / (self.n_levels - 1)

    def code_of(self, g_us: DeviceState | Tensor) -> Tensor:
        """Stored integer code (int64) of each cell, nearest to its value."""
        g = g_us.g_us if isinstance(g_us, DeviceState) else g_us
        # float64 keeps codes exact up to 32 bits.
        k = ((g.to(torch.float64) - self.g_min_us) / self.lsb_us).round()
        return k.clamp(0, self.n_levels - 1).to(torch.int64)

    def g_of_code(self, code: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Value (µS) represented by each integer ``code``."""
        return (self.g_min_us + code.to(torch.float64) * self.lsb_us).to(dtype)

    def quantise(self, g_us: Tensor) -> Tensor:
        """Nearest representable value (µS) of each element of ``g_us``."""
        return self.g_of_code(self.code_of(g_us), g_us.dtype)

    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        """Store the code nearest ``g_target_us`` (µS), exactly, with one write per word."""
        return self.advance(state, self.quantise(self.check_target(g_target_us)))

    def read(
        self,
        g_us: DeviceState | Tensor,
        *,
        t_s: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The stored value (µS), exact at any time; consumes no randomness."""
        return self.drift(g_us, t_s, generator=generator).clone()

    def leakage_energy_pj(self, t_s: float, n_cells: int = 1) -> float:
        """Static energy (pJ) that ``n_cells`` words leak while holding data for ``t_s`` s.

        1 pW for 1 s is 1 pJ, so this is leakage_pw · t_s · n_cells.
        """
        check_time(t_s)
        require(
            isinstance(n_cells, int) and n_cells >= 0, "n_cells", n_cells, "must be an integer >= 0"
        )
        return self.leakage_pw * t_s * n_cells


@dataclass(frozen=True, kw_only=True)
class GainCell(Device):
    """2T/3T gain cell: a leaky stored charge read through a transistor ([15]).

    Attributes:
        g_min_us: read conductance once the charge has leaked away, 0 µS (unverified default).
        g_max_us: highest programmable read conductance, 25 µS (matches
            :class:`~memcim.devices.PCM`; unverified default).
        retention_s: decay time constant τ of the stored value, 1 s (gain-cell retention is of
            order ms to s, longer for oxide-semiconductor write transistors [15]; unverified).
        write_noise_std_us: std of the Gaussian write noise (e.g. kTC noise on the storage
            node), 0 µS = off (optional; unverified default).
        e_read_pj: 0.01 pJ per read (order of magnitude; unverified default).
        e_write_pj: 0.005 pJ per write (charging a few-fF node to ~1 V; unverified default).
        t_write_s: 1 ns per write (unverified default).
        endurance_cycles: unlimited (``math.inf``; charge storage does not wear out).
    """

    g_min_us: float = 0.0
    g_max_us: float = 25.0
    e_read_pj: float = 0.01
    e_write_pj: float = 0.005
    t_write_s: float = 1e-9
    endurance_cycles: float = math.inf
    retention_s: float = 1.0
    write_noise_std_us: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.retention_s > 0,
            self._field("retention_s"),
            self.retention_s,
            "must be > 0 s (math.inf for no decay)",
        )
        require(
            self.write_noise_std_us >= 0,
            self._field("write_noise_std_us"),
            self.write_noise_std_us,
            "must be >= 0 µS",
        )

    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        """Write ``g_target_us`` (µS) plus Gaussian write noise, clipped to [0, g_max_us]."""
        target = self.check_target(g_target_us)
        if self.write_noise_std_us == 0:
            return self.advance(state, target.clone())
        noise = torch.randn(
            target.shape, generator=generator, dtype=target.dtype, device=target.device
        )
        return self.advance(state, self.clip(target + self.write_noise_std_us * noise))

    @property
    def drifts(self) -> bool:
        """The stored value decays unless the retention is infinite."""
        return math.isfinite(self.retention_s)

    def decay_factor(self, t_s: float) -> float:
        """exp(−t/τ): the fraction of the stored charge left after ``t_s`` s."""
        return math.exp(-check_time(t_s) / self.retention_s)

    def drift(self, g_us, t_s, *, generator=None) -> Tensor:
        state = self.as_state(g_us, generator=generator)
        return self.g_min_us + (state.g_us - self.g_min_us) * self.decay_factor(t_s)

    def read(
        self,
        g_us: DeviceState | Tensor,
        *,
        t_s: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The decayed value (µS) at ``t_s``, noise-free; consumes no randomness."""
        return self.drift(g_us, t_s, generator=generator)
