"""Filamentary HfO2 RRAM in a 1T1R cell (CEA-Leti; docs/references.md [5], [7], [8]).

Programming is a RESET followed by a SET whose compliance current ``I_SET`` (µA, set by the
access transistor's gate) fixes the *median* conductance the filament reforms to; the filament's
stochastic growth makes every SET an independent Gaussian draw around that median. Dalgaty et
al. [7] use this draw as the proposal of an in-situ Markov-chain Monte-Carlo sampler and Bonnet et
al. [8] as the weight sampler of a Bayesian network. Per cell:

* median:  m = k · I_SET (:meth:`FilamentaryRRAM.median_g_us`), inverted by ``i_set_for``;
* device-to-device spread: each cell's median is m · d with a persistent lognormal factor
  d = exp(σ_d2d z − σ_d2d²/2) (E[d] = 1), drawn once for fresh cells (``params["d2d_factor"]``);
* cycle-to-cycle spread: g_prog ~ N(m·d, σ_c2c(m·d)²), σ_c2c(μ) = a · μ^b, a fresh draw on every
  programming pulse; clipped at 0 µS (a conductance cannot be negative) but not at ``g_max_us``,
  which bounds the programmable *median*, not the spread around it;
* relaxation after programming (seed paper §II, [5]): g(t) = g_prog · (1 + r · f(t) · z_relax),
  f(t) = min(ln(1 + t/τ) / ln(1 + t_sat/τ), 1) grows with log-time and saturates at t_sat;
  z_relax ~ N(0, 1) is drawn at each programming (``params["relax_z"]``) so reads at one ``t_s``
  share one mean;
* read-to-read noise: independent Gaussian per read, σ_read = ρ · |g(t)|;
* forming failures: fresh cells are stuck-at-low / stuck-at-high with given probabilities;
* endurance: a cell whose write count reaches ``endurance_cycles`` stops responding and stays
  stuck at its last programmed conductance (the default :meth:`Device.worn_out_us`: the
  filament no longer ruptures or re-forms);
* optional program-and-verify: cells whose verify read misses the target by more than
  ``verify_tolerance_us`` are re-programmed (a fresh C2C draw), up to ``max_verify_pulses``.

The σ(median), median(I_SET), relaxation and read-noise constants were not found stated as
formulas in [5], [7], [8] (docs/references.md); the defaults below are marked "unverified" and are
configurable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from memcim._errors import ConfigError, require
from memcim.devices.base import Device, DeviceState, check_time


@dataclass(frozen=True, kw_only=True)
class FilamentaryRRAM(Device):
    """HfO2 1T1R filamentary RRAM (CEA-Leti [5], [7], [8]; model in the module docstring).

    Attributes:
        g_min_us, g_max_us: window of programmable medians, 5–120 µS (the low-resistance-state
            range used in [7], [8]; unverified default).
        e_read_pj: 0.1 pJ, order of magnitude of V² G t for a 0.1 V, 100 µS, 100 ns read
            (unverified default).
        e_write_pj: 1 pJ per RESET+SET cycle, the memristor write energy assumed in [13], [14].
        t_write_s: 1 µs per RESET+SET cycle (unverified default).
        endurance_cycles: 1e8 cycles; [7] still trains after 1e7 (unverified beyond that).
        set_slope_us_per_ua: k in m = k · I_SET, 1 µS/µA, so I_SET spans 5–120 µA over the
            default window (unverified default).
        c2c_coeff: a in σ_c2c = a · median^b (µS^(1−b)), 0.6 (unverified default).
        c2c_exponent: b, 0.5: σ_c2c grows from 1.3 µS at 5 µS to 6.6 µS at 120 µS, a few µS
            as in [7], [8] (unverified default). b = 1 gives a linear relation.
        d2d_sigma: log-std of the persistent multiplicative factor on each cell's median, 0.03
            (smaller than C2C, as stated in the seed paper; unverified default).
        read_noise_rel: relative read-to-read noise σ_read / g, 0.01 (unverified default).
        relax_sigma_rel: r, saturated relative std of the post-programming relaxation, 0.05
            (unverified default).
        relax_tau_s: τ, onset time of the log-time relaxation, 1 s (unverified default).
        relax_sat_s: t_sat, time at which relaxation saturates, 1e4 s (unverified default).
        p_stuck_low: probability that a fresh cell failed forming and is stuck low, 0
            (faults are opt-in; no rate found in [7], [8]).
        p_stuck_high: probability that a fresh cell is stuck high (shorted filament), 0.
        g_stuck_low_us: conductance of stuck-low cells, 0 µS (unformed cell; unverified).
        g_stuck_high_us: conductance of stuck-high cells; ``None`` means ``g_max_us``.
        verify_tolerance_us: program-and-verify tolerance |read − target| (µS); ``None``
            programs with a single pulse.
        max_verify_pulses: most pulses per cell with program-and-verify, 20 (unverified).
    """

    g_min_us: float = 5.0
    g_max_us: float = 120.0
    e_read_pj: float = 0.1
    e_write_pj: float = 1.0
    t_write_s: float = 1e-6
    endurance_cycles: float = 1e8
    set_slope_us_per_ua: float = 1.0
    c2c_coeff: float = 0.6
    c2c_exponent: float = 0.5
    d2d_sigma: float = 0.03
    read_noise_rel: float = 0.01
    relax_sigma_rel: float = 0.05
    relax_tau_s: float = 1.0
    relax_sat_s: float = 1e4
    p_stuck_low: float = 0.0
    p_stuck_high: float = 0.0
    g_stuck_low_us: float = 0.0
    g_stuck_high_us: float | None = None
    verify_tolerance_us: float | None = None
    max_verify_pulses: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_finite("set_slope_us_per_ua", lambda v: v > 0, "must be finite and > 0 µS/µA")
        for name in (
            "c2c_coeff",
            "c2c_exponent",
            "d2d_sigma",
            "read_noise_rel",
            "relax_sigma_rel",
            "g_stuck_low_us",
        ):
            self._require_finite(name, lambda v: v >= 0, "must be finite and >= 0")
        for name in ("relax_tau_s", "relax_sat_s"):
            self._require_finite(name, lambda v: v > 0, "must be finite and > 0 s")
        for name in ("p_stuck_low", "p_stuck_high"):
            self._require_finite(name, lambda v: 0 <= v <= 1, "must be a probability in [0, 1]")
        p_sum = self.p_stuck_low + self.p_stuck_high
        require(
            p_sum <= 1,
            self._field("p_stuck_high"),
            self.p_stuck_high,
            f"p_stuck_low + p_stuck_high must be <= 1 (got {p_sum})",
        )
        if self.g_stuck_high_us is not None:
            self._require_finite(
                "g_stuck_high_us",
                lambda v: v >= 0,
                "must be None (= g_max_us) or finite and >= 0 µS",
            )
        if self.verify_tolerance_us is not None:
            self._require_finite(
                "verify_tolerance_us",
                lambda v: v > 0,
                "must be None (no verify) or finite and > 0 µS",
            )
        require(
            isinstance(self.max_verify_pulses, int)
            and not isinstance(self.max_verify_pulses, bool)
            and self.max_verify_pulses >= 1,
            self._field("max_verify_pulses"),
            self.max_verify_pulses,
            "must be an integer >= 1",
        )

    def _require_finite(self, name: str, ok, allowed: str) -> None:
        value = getattr(self, name)
        valid = isinstance(value, int | float) and not isinstance(value, bool)
        require(valid and math.isfinite(value) and ok(value), self._field(name), value, allowed)

    @property
    def stuck_high_us(self) -> float:
        """Conductance of stuck-at-high cells (µS)."""
        return self.g_max_us if self.g_stuck_high_us is None else self.g_stuck_high_us

    # --- the fitted relations -----------------------------------------------------------------
    def median_g_us(self, i_set_ua: Tensor | float) -> Tensor | float:
        """Median conductance (µS) after a SET with compliance current ``i_set_ua`` (µA)."""
        return self.set_slope_us_per_ua * i_set_ua

    def i_set_for(self, g_us: Tensor | float) -> Tensor | float:
        """SET compliance current (µA) whose median conductance is ``g_us`` (µS)."""
        return g_us / self.set_slope_us_per_ua

    def sigma_c2c_us(self, median_g_us: Tensor | float) -> Tensor:
        """Cycle-to-cycle std a · median^b (µS) of a cell whose median is ``median_g_us``."""
        median = median_g_us if isinstance(median_g_us, Tensor) else torch.tensor(median_g_us)
        median = median.clamp_min(0.0)
        return self.c2c_coeff * median.pow(self.c2c_exponent)

    def relax_fraction(self, t_s: float) -> float:
        """f(t) = min(ln(1 + t/τ) / ln(1 + t_sat/τ), 1): relaxation reached at ``t_s``."""
        t = check_time(t_s)
        return min(
            math.log1p(t / self.relax_tau_s) / math.log1p(self.relax_sat_s / self.relax_tau_s), 1.0
        )

    # --- programming --------------------------------------------------------------------------
    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        """RESET+SET every cell with the I_SET whose median is ``g_target_us`` (µS, any shape).

        Each call draws a fresh cycle-to-cycle sample (one per pulse with program-and-verify).
        With ``verify_tolerance_us`` set, ``params["verify_ok"]`` (bool) marks the cells whose
        last verify read was within the tolerance. Stuck cells keep their value.
        """
        return self._program_median(self.check_target(g_target_us), generator, state)

    def program_current(
        self,
        i_set_ua: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        """Like :meth:`program`, from the SET compliance current ``i_set_ua`` (µA, any shape).

        The current's median must lie in the window; program-and-verify aims at that median.
        """
        if not isinstance(i_set_ua, Tensor) or not i_set_ua.is_floating_point():
            raise ConfigError("i_set_ua must be a floating-point torch.Tensor of currents in µA")
        if not torch.isfinite(i_set_ua).all() or (i_set_ua <= 0).any():
            raise ConfigError("i_set_ua must be finite and > 0 µA")
        median = self.median_g_us(i_set_ua)
        tol = 1e-5 * self.g_max_us
        if median.numel() and (
            median.min() < self.g_min_us - tol or median.max() > self.g_max_us + tol
        ):
            raise ConfigError(
                f"i_set_ua spans [{i_set_ua.min().item():.4g}, {i_set_ua.max().item():.4g}] µA, "
                f"whose medians leave the window [{self.g_min_us}, {self.g_max_us}] µS"
            )
        return self._program_median(median.clamp(self.g_min_us, self.g_max_us), generator, state)

    def _program_median(
        self, median: Tensor, generator: torch.Generator | None, state: DeviceState | None
    ) -> DeviceState:
        state = self._prepare_state(median, generator, state)
        # Worn-out cells (e.g. a state handed over from a looser endurance setting) never respond.
        stuck = state.stuck | (state.writes >= self.endurance_cycles)
        state = replace(state, stuck=stuck)
        cell_median = median * state.params["d2d_factor"].to(median.dtype)
        g = torch.where(stuck, state.g_us.to(median.dtype), self._set(cell_median, generator))
        pulses = (~stuck).to(torch.int64)
        params = {}
        if self.verify_tolerance_us is not None:
            g, pulses, params["verify_ok"] = self._verify(
                median, cell_median, g, pulses, stuck, state.writes, generator
            )
        z = torch.randn(median.shape, generator=generator, dtype=median.dtype, device=median.device)
        params["relax_z"] = torch.where(stuck, 0.0, z)  # stuck cells were not reprogrammed
        # Device.advance marks the cells this programming wore out (stuck where they landed).
        return self.advance(state, g, pulses, **params)

    def _set(self, cell_median: Tensor, generator: torch.Generator | None) -> Tensor:
        """One SET: a Gaussian cycle-to-cycle draw around each cell's median (µS)."""
        z = torch.randn(
            cell_median.shape,
            generator=generator,
            dtype=cell_median.dtype,
            device=cell_median.device,
        )
        return (cell_median + self.sigma_c2c_us(cell_median) * z).clamp_min(0.0)

    def _verify(self, target, cell_median, g, pulses, stuck, writes, generator):
        """Read every cell, re-program those outside the tolerance; loop over pulses only."""
        tol = self.verify_tolerance_us

        def within(g_us: Tensor) -> Tensor:
            noise = torch.randn(
                g_us.shape, generator=generator, dtype=g_us.dtype, device=g_us.device
            )
            return (g_us + self.read_noise_rel * g_us.abs() * noise - target).abs() <= tol

        ok = within(g)
        for _ in range(self.max_verify_pulses - 1):
            active = ~ok & ~stuck & (writes + pulses < self.endurance_cycles)
            active &= pulses < self.max_verify_pulses
            if not active.any():
                break
            g = torch.where(active, self._set(cell_median, generator), g)
            pulses = pulses + active.to(torch.int64)
            ok = torch.where(active, within(g), ok)
        return g, pulses, ok

    def _prepare_state(
        self, median: Tensor, generator: torch.Generator | None, state: DeviceState | None
    ) -> DeviceState:
        """The previous state, or fresh cells with forming faults; D2D factors drawn once."""
        shape, dtype = median.shape, median.dtype
        if state is None:
            # Forming failures happen once, before the first programming.
            u = torch.rand(shape, generator=generator, dtype=dtype, device=median.device)
            low = u < self.p_stuck_low
            high = ~low & (u < self.p_stuck_low + self.p_stuck_high)
            g0 = torch.where(low, self.g_stuck_low_us, torch.where(high, self.stuck_high_us, 0.0))
            state = replace(DeviceState.fresh(g0.to(dtype)), stuck=low | high)
        elif state.shape != shape:
            raise ConfigError(f"state has shape {tuple(state.shape)}, targets {tuple(shape)}")
        if "d2d_factor" not in state.params:
            z = torch.randn(shape, generator=generator, dtype=dtype, device=median.device)
            s = self.d2d_sigma
            state = replace(state, params={**state.params, "d2d_factor": (s * z - s * s / 2).exp()})
        return state

    # --- reading ------------------------------------------------------------------------------
    def init_params(self, g_us: Tensor, *, generator: torch.Generator | None) -> dict[str, Tensor]:
        """A relaxation draw for bare tensors of just-programmed conductances."""
        return {
            "relax_z": torch.randn(
                g_us.shape, generator=generator, dtype=g_us.dtype, device=g_us.device
            )
        }

    @property
    def drifts(self) -> bool:
        """Relaxation moves the conductance unless ``relax_sigma_rel`` is 0."""
        return self.relax_sigma_rel > 0

    def drift(self, g_us, t_s, *, generator=None) -> Tensor:
        """Relaxed conductance g_prog · (1 + r f(t) z_relax) at ``t_s`` (µS), clipped at 0.

        Cells without a ``relax_z`` parameter (never programmed) do not move.
        """
        state = self.as_state(g_us, generator=generator)
        f = self.relax_fraction(t_s)
        z = state.params.get("relax_z")
        if z is None or f == 0.0:
            return state.g_us
        return (state.g_us * (1.0 + self.relax_sigma_rel * f * z)).clamp_min(0.0)

    def read_noise_std(self, state: DeviceState, *, t_s: float) -> Tensor:
        """Read-to-read noise std ρ · |g(t)| (µS)."""
        return self.read_noise_rel * self.drift(state, t_s).abs()
