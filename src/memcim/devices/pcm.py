"""Phase-change memory: the statistical model of Nandakumar et al. (2019).

Reference: S. R. Nandakumar et al., "Phase-change memory models for deep learning training and
inference", ICECS 2019 — the model behind IBM aihwkit's ``PCMLikeNoiseModel`` and used by
Ortner et al. [18]. Equations and constants: docs/references.md, "PCM".

With ĝ = g_target / g_max clipped to [0, 1]:

* programming noise, Gaussian, added to the target:
  σ_prog(ĝ) = max(−1.1731 ĝ² + 1.9650 ĝ + 0.2635, 0) µS;
* drift g(t) = g_prog · ((t + t0)/t0)^(−ν), t0 = 20 s, one ν per device drawn at programming:
  ν ~ |N(μ_ν(ĝ), σ_ν(ĝ))|, μ_ν = clip(−0.0155 ln ĝ + 0.0244, 0.049, 0.1),
  σ_ν = clip(−0.0125 ln ĝ − 0.0059, 0.008, 0.045);
* 1/f read noise: σ_read = g(t) · Q_s · sqrt(ln((t + t0 + t_read)/(2 t_read))),
  Q_s = min(0.0088 / ĝ_prog^0.65, 0.2), t_read = 250 ns. As in aihwkit, the time in the noise
  formula counts from t0 before the first read (``t + t0``), which keeps the logarithm positive at
  t = 0, and Q_s is evaluated at the programmed conductance.

Programmed conductances are clipped at 0 µS (the noise of a target near 0 µS cannot make a
cell conduct negatively); they are not clipped at g_max, which bounds the targets only.

Wear-out: after ``endurance_cycles`` SET/RESET pulses a PCM cell fails in one of two ways
known from PCM reliability studies (no figure in docs/references.md; the choice is
``worn_out_state``): *stuck-SET*, the cell no longer amorphises (elemental segregation near
the heater leaves a crystalline path) and stays at high conductance, g_max; or *stuck-RESET*,
a void opens at the heater interface and the cell stays open, g_min. A stuck cell does not
drift (ν = 0: drift is a property of the amorphous phase, and an open cell carries no current).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from memcim._errors import require
from memcim.devices.base import Device, DeviceState, check_time

# Smallest relative conductance used inside logarithms and powers: a cell programmed to 0 µS
# still gets the clipped (finite) drift and noise statistics of the published fits.
_G_REL_FLOOR = 1e-3


@dataclass(frozen=True, kw_only=True)
class PCM(Device):
    """Phase-change memory cell (Nandakumar et al. 2019; see module docstring).

    Attributes:
        g_max_us: g_max of the published fit, 25 µS.
        t0_s: drift reference time, 20 s.
        t_read_s: read pulse duration in the 1/f noise formula, 250 ns.
        prog_coeffs: (a2, a1, a0) of σ_prog(ĝ) = a2 ĝ² + a1 ĝ + a0 in µS.
        prog_noise_scale, drift_scale, read_noise_scale: multipliers on each published noise
            source (1 = as published; 0 switches a source off).
        e_read_pj: ~0.1 pJ, a 0.2 V read of 25 µS for 100 ns (V² G t; order of magnitude).
        e_write_pj: ~10 pJ per SET/RESET pulse (order of magnitude for mushroom cells;
            unverified default, configurable).
        t_write_s: 100 ns pulse (order of magnitude; unverified default).
        endurance_cycles: 1e8 (typical PCM; unverified default).
        worn_out_state: ``"set"`` (default; stuck-SET at g_max) or ``"reset"`` (stuck-RESET
            at g_min): where a worn-out cell sticks (module docstring; unverified default).
    """

    read_noise_spectrum = "1/f"

    g_min_us: float = 0.0
    g_max_us: float = 25.0
    e_read_pj: float = 0.1
    e_write_pj: float = 10.0
    t_write_s: float = 100e-9
    endurance_cycles: float = 1e8
    t0_s: float = 20.0
    t_read_s: float = 250e-9
    prog_coeffs: tuple[float, float, float] = (-1.1731, 1.9650, 0.2635)
    prog_noise_scale: float = 1.0
    drift_scale: float = 1.0
    read_noise_scale: float = 1.0
    worn_out_state: Literal["set", "reset"] = "set"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.worn_out_state in ("set", "reset"),
            self._field("worn_out_state"),
            self.worn_out_state,
            "must be 'set' (stuck-SET, g_max) or 'reset' (stuck-RESET, g_min)",
        )
        require(0 < self.t0_s < math.inf, self._field("t0_s"), self.t0_s, "must be finite, > 0 s")
        # The 1/f noise term sqrt(log((t + t_read)/(2 t_read))) at t = t0 needs t_read <= t0, and
        # overflows for t_read ~1e-300 s; no read pulse is shorter than a picosecond.
        require(1e-12 <= self.t_read_s <= self.t0_s, self._field("t_read_s"), self.t_read_s,
                f"must be in [1e-12 s, t0_s={self.t0_s} s]")  # fmt: skip
        require(
            len(self.prog_coeffs) == 3,
            self._field("prog_coeffs"),
            self.prog_coeffs,
            "must be three polynomial coefficients (a2, a1, a0)",
        )
        for name in ("prog_noise_scale", "drift_scale", "read_noise_scale"):
            value = getattr(self, name)
            require(0 <= value < math.inf, self._field(name), value, "must be finite and >= 0")

    # --- the published fits, as functions of ĝ -----------------------------------------------
    def g_rel(self, g_us: Tensor) -> Tensor:
        """ĝ = g / g_max clipped to [0, 1]."""
        return (g_us / self.g_max_us).clamp(0.0, 1.0)

    def sigma_prog_us(self, g_target_us: Tensor) -> Tensor:
        """Programming-noise std σ_prog(ĝ) in µS."""
        a2, a1, a0 = self.prog_coeffs
        g = self.g_rel(g_target_us)
        return (a2 * g * g + a1 * g + a0).clamp_min(0.0)

    def drift_nu_stats(self, g_target_us: Tensor) -> tuple[Tensor, Tensor]:
        """(μ_ν, σ_ν) of the drift exponent at the target conductance."""
        log_g = self.g_rel(g_target_us).clamp_min(_G_REL_FLOOR).log()
        mu = (-0.0155 * log_g + 0.0244).clamp(0.049, 0.1)
        sigma = (-0.0125 * log_g - 0.0059).clamp(0.008, 0.045)
        return mu, sigma

    def q_s(self, g_prog_us: Tensor) -> Tensor:
        """1/f noise amplitude Q_s = min(0.0088 / ĝ^0.65, 0.2)."""
        g = self.g_rel(g_prog_us.abs()).clamp_min(_G_REL_FLOOR)
        return (0.0088 / g.pow(0.65)).clamp_max(0.2)

    # --- physics ------------------------------------------------------------------------------
    def init_params(self, g_us: Tensor, *, generator: torch.Generator | None) -> dict[str, Tensor]:
        mu, sigma = self.drift_nu_stats(g_us)
        z = torch.randn(g_us.shape, generator=generator, dtype=g_us.dtype, device=g_us.device)
        nu = (mu + sigma * z).abs()
        return {"nu": nu * self.drift_scale}

    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        target = self.check_target(g_target_us)
        noise = torch.randn(
            target.shape, generator=generator, dtype=target.dtype, device=target.device
        )
        g_prog = (target + self.prog_noise_scale * self.sigma_prog_us(target) * noise).clamp_min(
            0.0
        )
        # ν follows the *target* state, as in the published model (the cell's amorphous volume
        # is set by the programming conditions, not by where the noise landed).
        new = self.advance(state, g_prog, **self.init_params(target, generator=generator))
        if math.isfinite(self.endurance_cycles):  # worn-out cells do not drift (module docstring)
            nu = torch.where(new.stuck, 0.0, new.params["nu"])
            new = replace(new, params={**new.params, "nu": nu})
        return new

    def worn_out_us(self, g_us: Tensor) -> Tensor:
        """Stuck-SET cells sit at g_max, stuck-RESET cells at g_min (``worn_out_state``)."""
        value = self.g_max_us if self.worn_out_state == "set" else self.g_min_us
        return torch.full_like(g_us, value)

    @property
    def drifts(self) -> bool:
        """PCM drifts unless ``drift_scale`` is 0."""
        return self.drift_scale > 0

    def drift_factor(self, nu: Tensor, t_s: float) -> Tensor:
        """Multiplicative drift ((t + t0)/t0)^(−ν)."""
        return torch.pow((check_time(t_s) + self.t0_s) / self.t0_s, -nu)

    def drift(self, g_us, t_s, *, generator=None) -> Tensor:
        state = self.as_state(g_us, generator=generator)
        if check_time(t_s) == 0:  # ((0 + t0) / t0)^(−ν) = 1^(−ν) = 1 exactly: skip the power
            return state.g_us.clone()
        return state.g_us * self.drift_factor(state.params["nu"], t_s)

    def read_noise_std(self, state: DeviceState, *, t_s: float) -> Tensor:
        return self.read_noise_std_drifted(state, self.drift(state, t_s), t_s=t_s)

    def read_noise_std_drifted(self, state: DeviceState, g_t: Tensor, *, t_s: float) -> Tensor:
        # σ_read = |g(t)| Q_s(g_prog) sqrt(log((t + t_read) / (2 t_read))), from g(t) given
        t = check_time(t_s) + self.t0_s
        scale = self.read_noise_scale * math.sqrt(
            math.log((t + self.t_read_s) / (2 * self.t_read_s))
        )
        return g_t.abs() * self.q_s(state.g_us) * scale
