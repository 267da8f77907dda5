"""Two-dimensional-material channel transistor (e.g. MoS2 FET) used as a noisy synapse.

Reference: [10] A. Sebastian et al., "Two-dimensional materials-based probabilistic synapses and
reconfigurable neurons for measuring inference uncertainty using Bayesian neural networks",
Nat. Commun. 13, 6139 (2022). The fully exposed 2D channel is very sensitive to surface traps,
which gives it a strong, distinctive read noise (seed review, §II). The functional form below
is a generic trap model; every constant is an unverified default.

* Programming (charge trapping in the gate stack) sets g_prog = target + N(0, σ_prog²), clipped
  to [0, g_max_us].
* Each read of a cell at conductance g returns

      r = g · (1 − a · B) + σ_r · Z,  B ~ Bernoulli(p_trap),  Z ~ N(0, 1),

  with σ_r = read_noise_rel · g, where a is the cell's random-telegraph-noise (RTN) amplitude
  relative to g: a trap near the channel captures a carrier (B = 1) on a fraction ``p_trap`` of
  independent reads and lowers the conductance by a · g. The amplitude is drawn once per device,
  a = min(X, 1) with X ~ Exponential(mean ``rtn_amp_rel_mean``) (exponentially distributed RTN
  amplitudes, as usually observed in small FETs; unverified), stored in ``params["rtn_amp_rel"]``
  and kept across reprogramming.
* Hence per read: E[r] = g (1 − p a) and Var[r] = σ_r² + p (1 − p) (a g)²
  (:meth:`TwoDFET.read_moments`).

Reads are not clipped at 0 µS: clipping would bias the mean of the sampling noise.

Wear-out: after ``endurance_cycles`` programming pulses the gate stack has accumulated so many
generated traps that the programming window closes (no figure in docs/references.md): the threshold
voltage no longer moves and the cell stays at its last conductance (the default
:meth:`Device.worn_out_us`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from memcim._errors import require
from memcim.devices.base import Device, DeviceState, check_time

_RTN_KEY = "rtn_amp_rel"


@dataclass(frozen=True, kw_only=True)
class TwoDFET(Device):
    """2D-channel FET synapse with Gaussian plus random-telegraph read noise.

    Attributes:
        g_min_us: 0 µS (off state; unverified default).
        g_max_us: 10 µS (on-state channel conductance of order µS; unverified default).
        prog_noise_std_us: std of the Gaussian programming noise, 0.1 µS (unverified default).
        read_noise_rel: std of the Gaussian read noise relative to g, 0.05 (strong read noise
            [10]; unverified default).
        rtn_amp_rel_mean: mean relative RTN amplitude, 0.1 (unverified default); 0 disables RTN.
        p_trap: probability that the trap is occupied on one read, in [0, 1]; 0.3 (unverified).
        e_read_pj: 0.01 pJ (0.1 V² × 10 µS × 100 ns; order of magnitude).
        e_write_pj: 1 pJ per gate programming pulse (unverified default).
        t_write_s: 1 µs per programming pulse (unverified default).
        endurance_cycles: 1e5 (unverified default).
    """

    g_min_us: float = 0.0
    g_max_us: float = 10.0
    e_read_pj: float = 0.01
    e_write_pj: float = 1.0
    t_write_s: float = 1e-6
    endurance_cycles: float = 1e5
    prog_noise_std_us: float = 0.1
    read_noise_rel: float = 0.05
    rtn_amp_rel_mean: float = 0.1
    p_trap: float = 0.3

    #: Reads carry telegraph noise, which is not Gaussian: tiles must call :meth:`read`.
    gaussian_read_noise: ClassVar[bool] = False
    #: A trapped charge lowers the mean read, and :meth:`read_noise_std` is only the Gaussian part.
    zero_mean_read_noise: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("prog_noise_std_us", "read_noise_rel", "rtn_amp_rel_mean"):
            value = getattr(self, name)
            require(0 <= value < float("inf"), self._field(name), value, "must be finite and >= 0")
        require(
            0.0 <= self.p_trap <= 1.0,
            self._field("p_trap"),
            self.p_trap,
            "must be a probability in [0, 1]",
        )

    def init_params(self, g_us: Tensor, *, generator: torch.Generator | None) -> dict[str, Tensor]:
        a = torch.empty_like(g_us).exponential_(generator=generator)
        # A trap cannot remove more than the whole channel conductance: truncate at 1.
        return {_RTN_KEY: (a * self.rtn_amp_rel_mean).clamp_max(1.0)}

    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        """Program toward ``g_target_us`` (µS) with Gaussian programming noise.

        The RTN amplitude belongs to the device (a trap in its channel), so it is drawn for
        fresh cells only and kept from ``state`` afterwards.
        """
        target = self.check_target(g_target_us)
        noise = torch.randn(
            target.shape, generator=generator, dtype=target.dtype, device=target.device
        )
        g_prog = self.clip(target + self.prog_noise_std_us * noise)
        if state is not None and _RTN_KEY in state.params:
            return self.advance(state, g_prog)
        return self.advance(state, g_prog, **self.init_params(target, generator=generator))

    def read_noise_std(self, state: DeviceState, *, t_s: float) -> Tensor:
        """Std of the Gaussian part of the read noise (µS); :meth:`read` adds RTN on top."""
        return self.read_noise_rel * self.drift(state, t_s).abs()

    def read_moments(
        self,
        g_us: DeviceState | Tensor,
        *,
        t_s: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Mean (µS) and variance (µS²) of one read of each cell, in closed form.

        E[r] = g (1 − p a) and Var[r] = (read_noise_rel g)² + p (1 − p) (a g)².
        """
        state = self.as_state(g_us, generator=generator)
        g = self.drift(state, t_s)
        a, p = state.params[_RTN_KEY], self.p_trap
        mean = g * (1.0 - p * a)
        var = (self.read_noise_rel * g) ** 2 + p * (1.0 - p) * (a * g) ** 2
        return mean, var

    def read(
        self,
        g_us: DeviceState | Tensor,
        *,
        t_s: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One read of every cell (µS): Gaussian noise plus the telegraph trap."""
        check_time(t_s)
        state = self.as_state(g_us, generator=generator)
        g = self.drift(state, t_s)
        occupied = (
            torch.rand(g.shape, generator=generator, dtype=torch.float64, device=g.device)
            < self.p_trap
        )
        z = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
        rtn = torch.where(occupied, state.params[_RTN_KEY] * g, 0.0)
        return g - rtn + self.read_noise_rel * g.abs() * z
