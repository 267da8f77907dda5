"""Spin-transfer-torque MRAM: a binary magnetic tunnel junction (MTJ) with stochastic switching.

Reference: [11] D.-Q. You et al., "A 22nm 104.5TOPS/W μ-NMC-Δ-IMC heterogeneous STT-MRAM CIM
macro for noise-tolerant Bayesian neural networks", ISSCC 2025 (docs/references.md, "STT-MRAM"): MTJ
switching is binary and stochastic, its probability rising sigmoidally with pulse current and
width. The functional form below is the usual thermal-activation picture; its constants are
unverified defaults.

* Two states: parallel (P, high conductance G_P = ``g_max_us``) and antiparallel (AP,
  G_AP = ``g_min_us`` = G_P / (1 + TMR)); :meth:`STTMRAM.from_tmr` builds the pair from G_P and
  the TMR ratio.
* A pulse of current I (µA) and width t (s) driving a cell toward the other state switches it
  with probability P_sw = sigmoid((I − I_c(t)) / ΔI), where the thermally activated critical
  current is I_c(t) = I_c0 · (1 − ln(t / τ0) / Δ) (Δ the thermal stability factor, τ0 the
  attempt time), floored at 0 µA. A pulse toward the state a cell already holds leaves it there.
  The model is symmetric in the two directions.
* Read disturb: the read current (``i_read_ua`` for ``t_read_s``) is a weak pulse in one
  direction (``read_disturb_direction``); each read switches a susceptible cell with the
  same sigmoid evaluated at the read current.
  Tiles apply it on every MVM (:meth:`STTMRAM.apply_reads`, counted in
  ``TileCounters.read_disturbs``): the read current of a word line scales with its drive,
  I = ``i_read_ua`` · |V| / V_read, so each input vector reading a cell is one pulse of that
  current; there is no disturb where ``i_read_ua`` is 0.
* Gaussian read noise of std ``read_noise_rel`` × G per read.
* Wear-out: after ``endurance_cycles`` write pulses the MgO tunnel barrier breaks down
  (time-dependent dielectric breakdown under repeated write stress; no figure in
  docs/references.md): the junction becomes a low-resistance short that no longer switches,
  modelled as stuck at G_P = ``g_max_us``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from memcim._errors import require
from memcim.devices.base import Device, DeviceState, ReadEffects, check_time, per_row


@dataclass(frozen=True, kw_only=True)
class STTMRAM(Device):
    """Binary STT-MRAM cell with sigmoidal switching probability (see module docstring).

    Attributes:
        g_min_us: antiparallel conductance G_AP = G_P / (1 + TMR) = 80 µS, i.e. TMR = 150%
            (typical of pMTJs at 22 nm; unverified default). :meth:`from_tmr` builds a cell
            from G_P and TMR; :attr:`tmr` gives the ratio back.
        g_max_us: parallel-state conductance G_P, 200 µS (R_P = 5 kΩ; unverified default).
        i_c0_ua: critical current at the attempt time, 100 µA (unverified default).
        delta: thermal stability factor Δ, 60 (≈ 10-year retention; unverified default).
        tau0_s: attempt time τ0, 1 ns (usual value; unverified default).
        i_width_ua: width ΔI of the switching sigmoid, 5 µA (unverified default).
        i_write_ua: write current used by :meth:`program`, 150 µA, giving a write error rate
            near 2e-5 at the default pulse (unverified default).
        i_read_ua: read current, 30 µA (unverified default).
        t_read_s: read pulse width, 10 ns (unverified default).
        read_disturb_direction: which switch the read current can cause: ``"ap_to_p"`` (read
            current flows in the P-writing direction; default, unverified), ``"p_to_ap"`` or
            ``"both"``.
        read_noise_rel: std of the Gaussian read noise relative to G, 0.03 (unverified default).
        e_read_pj: 0.03 pJ (30 µA × 0.1 V × 10 ns; order of magnitude).
        e_write_pj: 1 pJ per write pulse (150 µA × ~0.6 V × 10 ns; order of magnitude).
        t_write_s: write pulse width, 10 ns (unverified default).
        endurance_cycles: 1e12 (typical STT-MRAM; unverified default).
    """

    g_min_us: float = 80.0
    g_max_us: float = 200.0
    e_read_pj: float = 0.03
    e_write_pj: float = 1.0
    t_write_s: float = 10e-9
    endurance_cycles: float = 1e12
    i_c0_ua: float = 100.0
    delta: float = 60.0
    tau0_s: float = 1e-9
    i_width_ua: float = 5.0
    i_write_ua: float = 150.0
    i_read_ua: float = 30.0
    t_read_s: float = 10e-9
    read_disturb_direction: Literal["ap_to_p", "p_to_ap", "both"] = "ap_to_p"
    read_noise_rel: float = 0.03

    @classmethod
    def from_tmr(cls, g_p_us: float, tmr: float, **fields: object) -> STTMRAM:
        """An MTJ with G_P = ``g_p_us`` (µS) and G_AP = G_P / (1 + ``tmr``).

        Args:
            g_p_us: parallel-state conductance (µS), > 0.
            tmr: tunnel magnetoresistance ratio (R_AP − R_P)/R_P, > 0 (1.5 for 150%).
            **fields: any other field of :class:`STTMRAM`.
        """
        require(
            isinstance(tmr, int | float) and math.isfinite(tmr) and tmr > 0,
            "STTMRAM.tmr",
            tmr,
            "must be a finite number > 0 (e.g. 1.5 for 150%)",
        )
        return cls(g_min_us=g_p_us / (1.0 + tmr), g_max_us=g_p_us, **fields)

    def __post_init__(self) -> None:
        super().__post_init__()
        # An AP junction still conducts: G_AP = 0 would mean an infinite TMR.
        require(self.g_min_us > 0, self._field("g_min_us"), self.g_min_us, "must be > 0 µS (G_AP)")
        for name in ("i_c0_ua", "delta", "tau0_s", "i_width_ua", "t_read_s"):
            value = getattr(self, name)
            require(0 < value < math.inf, self._field(name), value, "must be finite and > 0")
        for name in ("i_write_ua", "i_read_ua", "read_noise_rel"):
            value = getattr(self, name)
            require(0 <= value < math.inf, self._field(name), value, "must be finite and >= 0")
        require(self.t_write_s > 0, self._field("t_write_s"), self.t_write_s, "must be > 0 s")
        require(
            self.read_disturb_direction in ("ap_to_p", "p_to_ap", "both"),
            self._field("read_disturb_direction"),
            self.read_disturb_direction,
            "must be 'ap_to_p', 'p_to_ap' or 'both'",
        )

    @property
    def tmr(self) -> float:
        """Tunnel magnetoresistance ratio (R_AP − R_P)/R_P = G_P/G_AP − 1."""
        return self.g_max_us / self.g_min_us - 1.0

    # --- switching statistics -----------------------------------------------------------------
    @property
    def g_mid_us(self) -> float:
        """Threshold between the AP and P states (µS)."""
        return 0.5 * (self.g_min_us + self.g_max_us)

    def critical_current_ua(self, t_pulse_s: float) -> float:
        """Thermally activated critical current I_c(t) = I_c0 (1 − ln(t/τ0)/Δ), >= 0 (µA)."""
        require(
            math.isfinite(t_pulse_s) and t_pulse_s > 0,
            "t_pulse_s",
            t_pulse_s,
            "pulse width must be a finite number of seconds > 0",
        )
        return max(self.i_c0_ua * (1.0 - math.log(t_pulse_s / self.tau0_s) / self.delta), 0.0)

    def switching_probability(self, i_ua: Tensor | float, t_pulse_s: float) -> Tensor:
        """P_sw = sigmoid((|I| − I_c(t)) / ΔI) for a pulse of ``i_ua`` µA and ``t_pulse_s`` s
        (on the device of ``i_ua``; the CPU for a number)."""
        i = i_ua if isinstance(i_ua, Tensor) else torch.tensor(float(i_ua), device="cpu")
        i = i.to(torch.float64).abs()
        return torch.sigmoid((i - self.critical_current_ua(t_pulse_s)) / self.i_width_ua)

    def current_for_probability_ua(self, p: float, t_pulse_s: float) -> float:
        """Pulse current (µA) that switches with probability ``p`` (e.g. 0.5 for a random bit)."""
        require(0.0 < p < 1.0, "p", p, "must be a probability in (0, 1)")
        return self.critical_current_ua(t_pulse_s) + self.i_width_ua * math.log(p / (1.0 - p))

    def write_error_rate(self) -> float:
        """Probability that one :meth:`program` pulse fails to switch a cell that must switch."""
        return 1.0 - float(self.switching_probability(self.i_write_ua, self.t_write_s))

    def read_disturb_probability(self) -> float:
        """Probability that one read switches a susceptible cell."""
        return float(self.switching_probability(self.i_read_ua, self.t_read_s))

    # --- state helpers ------------------------------------------------------------------------
    def is_parallel(self, g_us: DeviceState | Tensor) -> Tensor:
        """True where a cell is in the P (high-conductance) state."""
        g = g_us.g_us if isinstance(g_us, DeviceState) else g_us
        return g > self.g_mid_us

    def _g_of(self, parallel: Tensor, dtype: torch.dtype) -> Tensor:
        return torch.where(parallel, self.g_max_us, self.g_min_us).to(dtype)

    def _apply_pulse(
        self,
        state: DeviceState | None,
        to_p: Tensor,
        p_sw: Tensor,
        dtype: torch.dtype,
        generator: torch.Generator | None,
    ) -> DeviceState:
        """One pulse per cell driving it toward P where ``to_p`` (else toward AP)."""
        # Fresh cells are taken to be in AP, the state a reset leaves them in.
        was_p = (
            torch.zeros(to_p.shape, dtype=torch.bool, device=to_p.device)
            if state is None
            else self.is_parallel(state)
        )
        hit = (
            torch.rand(to_p.shape, generator=generator, dtype=torch.float64, device=to_p.device)
            < p_sw
        )
        now_p = torch.where(hit, to_p, was_p)
        return self.advance(state, self._g_of(now_p, dtype), 1)

    # --- physics ------------------------------------------------------------------------------
    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        """Write the state nearest ``g_target_us`` (µS) with one ``i_write_ua`` pulse per cell.

        Targets above the midpoint (G_P + G_AP)/2 ask for P, the others (ties included) for AP.

        Every cell receives the pulse (no read-before-write); a cell that must switch does so
        with probability ``1 − write_error_rate()``. Fresh cells start in AP.
        """
        target = self.check_target(g_target_us)
        i_write = torch.tensor(self.i_write_ua, device=target.device)
        p_sw = self.switching_probability(i_write, self.t_write_s)
        return self._apply_pulse(state, target > self.g_mid_us, p_sw, target.dtype, generator)

    def switch(
        self,
        state: DeviceState | Tensor,
        i_ua: Tensor | float,
        t_pulse_s: float,
        *,
        generator: torch.Generator | None = None,
    ) -> DeviceState:
        """Apply one pulse of ``i_ua`` µA for ``t_pulse_s`` s, e.g. to draw random bits.

        Args:
            state: the cells (a state or a tensor of G_P / G_AP conductances).
            i_ua: signed pulse current (µA), scalar or broadcastable to the state shape:
                positive drives toward P, negative toward AP; |i_ua| enters the sigmoid; zero
                current never switches.
            t_pulse_s: pulse width (s).
            generator: source of the switching randomness.

        Returns:
            The new state (one more write per responding cell). Starting from AP and pulsing
            with ``current_for_probability_ua(0.5, t)`` gives fair random bits.
        """
        st = self.as_state(state, generator=generator)
        i = torch.as_tensor(i_ua, dtype=torch.float64, device=st.g_us.device).expand(st.shape)
        # Without current there is no spin torque: the sigmoid tail is not physical there.
        p_sw = torch.where(i == 0, 0.0, self.switching_probability(i, t_pulse_s))
        return self._apply_pulse(st, i > 0, p_sw, st.g_us.dtype, generator)

    def read_disturb(
        self,
        state: DeviceState | Tensor,
        *,
        n_reads: int = 1,
        generator: torch.Generator | None = None,
    ) -> DeviceState:
        """The state after ``n_reads`` reads, with unwanted switches drawn per cell.

        A susceptible cell (per ``read_disturb_direction``) switches during n reads with
        probability 1 − (1 − p)^n, p = :meth:`read_disturb_probability`. Stuck cells keep their
        value; write counts are unchanged (a read is not a write).
        """
        require(
            isinstance(n_reads, int) and n_reads >= 0, "n_reads", n_reads, "must be an integer >= 0"
        )
        st = self.as_state(state, generator=generator)
        p = self.read_disturb_probability()
        # 1 − (1 − p)^n through log1p/expm1 keeps tiny per-read probabilities accurate.
        p_flip = (
            0.0
            if n_reads == 0 or p == 0
            else (1.0 if p == 1 else -math.expm1(n_reads * math.log1p(-p)))
        )
        was_p = self.is_parallel(st)
        susceptible = {"ap_to_p": ~was_p, "p_to_ap": was_p, "both": torch.ones_like(was_p)}[
            self.read_disturb_direction
        ]
        hit = (
            torch.rand(st.shape, generator=generator, dtype=torch.float64, device=st.device)
            < p_flip
        )
        now_p = torch.where(hit & susceptible & ~st.stuck, ~was_p, was_p)
        return dataclasses.replace(
            st, g_us=torch.where(st.stuck, st.g_us, self._g_of(now_p, st.g_us.dtype))
        )

    @functools.cached_property
    def reads_change_state(self) -> bool:
        """Reads disturb the cells when the read current has a non-zero switching probability
        (computed once: tiles ask at every read)."""
        return self.i_read_ua > 0 and self.read_disturb_probability() > 0

    def apply_reads(
        self, state: DeviceState, drive: Tensor, *, generator: torch.Generator | None = None
    ) -> ReadEffects:
        """Read disturb of a batch of tile reads (see :meth:`Device.apply_reads`).

        Each input vector that drives a word line at |V| / V_read = ``drive`` is one read pulse
        of I = ``i_read_ua`` · drive on every cell of the line; a susceptible cell survives all
        of them with probability Π (1 − P_sw(I)), so it flips with 1 − Π (one draw per cell).
        Stuck cells keep their value; write counts are unchanged (a read is not a write).
        """
        p = self.switching_probability(self.i_read_ua * drive, self.t_read_s)
        p = torch.where(drive > 0, p, 0.0)
        p_flip = -torch.expm1(per_row(torch.log1p(-p), state))
        was_p = self.is_parallel(state)
        susceptible = {"ap_to_p": ~was_p, "p_to_ap": was_p, "both": torch.ones_like(was_p)}[
            self.read_disturb_direction
        ]
        hit = (
            torch.rand(state.shape, generator=generator, dtype=torch.float64, device=state.device)
            < p_flip
        )
        flip = hit & susceptible & ~state.stuck
        flips = int(flip.sum())
        if flips == 0:
            return ReadEffects(state, 0, 0)
        g = torch.where(flip, self._g_of(~was_p, state.g_us.dtype), state.g_us)
        return ReadEffects(dataclasses.replace(state, g_us=g), flips, 0)

    def worn_out_us(self, g_us: Tensor) -> Tensor:
        """A broken-down barrier is a short: stuck at G_P (module docstring)."""
        return torch.full_like(g_us, self.g_max_us)

    def read_noise_std(self, state: DeviceState, *, t_s: float) -> Tensor:
        check_time(t_s)
        return self.read_noise_rel * state.g_us.abs()
