"""RRAM read as a current with Laplace read-to-read noise (Lin et al. [9]).

Lin et al. [9] sample Bayesian weights from the read noise of memristors: each weight is
w = (I₁ + I₂ + I₃ − 7.2) / 10.5 over the read currents of three devices (µA, programmed within
0.4–4 µA), and every read adds independent Laplace noise of scale

    b(I) = −0.0058 I² + 0.0324 I + 0.0141  (µA)

to each current (docs/references.md, "Read-noise sampling"). This model states it in conductance
terms: at the characterisation read voltage ``v_char_v`` a conductance G (µS) carries the current
I = G · v_char (µA), so the window is 0.4/v_char – 4/v_char µS and a read adds Laplace noise of
scale b(G · v_char) / v_char µS to G. A tile that drives a word line below ``v_char_v`` scales
that noise with the voltage, as conductance noise does.

The paper's currents are the trained parameters, written with program-and-verify; programming
is modelled as reaching the target up to an optional Gaussian error ``prog_noise_std_us`` (0 by
default; no figure in [9] as read). The read voltage and the write energy, time and endurance
are unverified defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from memcim._errors import ConfigError, require
from memcim.devices.base import Device, DeviceState, check_time

#: Lin et al. [9]: w = (ΣI − 7.2) / 10.5 over three devices, currents in µA within 0.4–4 µA.
LIN_OFFSET_UA, LIN_GAIN_UA, LIN_DEVICES = 7.2, 10.5, 3
LIN_I_MIN_UA, LIN_I_MAX_UA = 0.4, 4.0


def lin_laplace_scale_ua(i_ua: Tensor) -> Tensor:
    """Laplace read-noise scale b(I) = −0.0058 I² + 0.0324 I + 0.0141 (µA) of Lin et al. [9]."""
    return -0.0058 * i_ua * i_ua + 0.0324 * i_ua + 0.0141


def laplace_noise(scale: Tensor, shape: tuple[int, ...], *, generator: torch.Generator | None
                  ) -> Tensor:  # fmt: skip
    """Laplace(0, scale) draws of ``shape`` by inverse CDF: −b·sign(u)·ln(1 − 2|u|).

    u must lie in the *open* interval (−½, ½): ``torch.rand`` returns multiples of 2⁻²⁴ in
    [0, 1) and can return exactly 0, which would give |u| = ½ and an infinite draw; 0 is moved
    to the next float32 grid point (the largest draw is then b·ln 2²³ ≈ 15.9 b).
    """
    u = torch.rand(shape, generator=generator, dtype=scale.dtype, device=scale.device)
    u = u.clamp_min(2.0**-24) - 0.5
    return -scale * torch.sign(u) * torch.log1p(-2 * u.abs())


@dataclass(frozen=True, kw_only=True)
class LaplaceRRAM(Device):
    """A memristor read as a current with Lin et al.'s Laplace read noise [9] (module docstring).

    Attributes:
        v_char_v: read voltage at which the currents of [9] are stated (V); 0.2 V, the tiles'
            default full-scale drive, so that a full-scale read gives the paper's currents
            (unverified: the voltage was not found in [9]).
        g_min_us, g_max_us: 0.4 µA / v_char and 4 µA / v_char: 2–20 µS at the default 0.2 V
            (set them with ``v_char_v``).
        prog_noise_std_us: Gaussian programming error (µS) after program-and-verify, 0.
        e_read_pj: 0.01 pJ, V² G t for 0.2 V, 10 µS, 100 ns (order of magnitude).
        e_write_pj: 1 pJ per programming, as for :class:`~memcim.devices.FilamentaryRRAM`
            (unverified).
        t_write_s: 1 µs (unverified).
        endurance_cycles: 1e8 (unverified).
    """

    v_char_v: float = 0.2
    g_min_us: float = LIN_I_MIN_UA / 0.2
    g_max_us: float = LIN_I_MAX_UA / 0.2
    prog_noise_std_us: float = 0.0
    e_read_pj: float = 0.01
    e_write_pj: float = 1.0
    t_write_s: float = 1e-6
    endurance_cycles: float = 1e8

    #: Laplace read noise is not Gaussian: tiles read it cell by cell (or moment-matched, see
    #: :attr:`memcim.crossbar.TileConfig.non_gaussian_read`).
    gaussian_read_noise: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(math.isfinite(self.v_char_v) and self.v_char_v > 0, self._field("v_char_v"),
                self.v_char_v, "must be finite and > 0 V")  # fmt: skip
        # b(I) > 0 only below I ≈ 5.99 µA, and b/v must stay finite in float32.
        # constants of the configuration, checked on the CPU whatever the default device
        ends = self.laplace_scale_us(torch.tensor([self.g_min_us, self.g_max_us], device="cpu"))
        if not bool(torch.isfinite(ends).all() and (ends > 0).all()):
            raise ConfigError(
                f"LaplaceRRAM window g_min_us={self.g_min_us!r}, g_max_us={self.g_max_us!r} "
                f"at v_char_v={self.v_char_v!r} is invalid: the read currents G·v must stay "
                "below 5.99 µA (where Lin et al.'s b(I) is positive) with b(G·v)/v finite"
            )
        require(math.isfinite(self.prog_noise_std_us) and self.prog_noise_std_us >= 0,
                self._field("prog_noise_std_us"), self.prog_noise_std_us,
                "must be finite and >= 0 µS")  # fmt: skip

    @property
    def reference_us(self) -> float:
        """Conductance per device of Lin et al.'s offset, 7.2 µA / 3 at ``v_char_v`` (µS)."""
        return LIN_OFFSET_UA / LIN_DEVICES / self.v_char_v

    def program(
        self,
        g_target_us: Tensor,
        *,
        generator: torch.Generator | None = None,
        state: DeviceState | None = None,
    ) -> DeviceState:
        """Program to ``g_target_us`` (µS) up to the Gaussian error ``prog_noise_std_us``."""
        target = self.check_target(g_target_us)
        if self.prog_noise_std_us == 0:
            return self.advance(state, target.clone())
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype,
                            device=target.device)  # fmt: skip
        return self.advance(state, self.clip(target + self.prog_noise_std_us * noise))

    def laplace_scale_us(self, g_us: Tensor) -> Tensor:
        """b(G · v_char) / v_char: the Laplace scale of a read in conductance (µS)."""
        return lin_laplace_scale_ua(g_us * self.v_char_v) / self.v_char_v

    def read_noise_std(self, state: DeviceState, *, t_s: float) -> Tensor:
        """Std √2 · b of the Laplace read noise (µS); reads are Laplace, not Gaussian."""
        check_time(t_s)
        return math.sqrt(2.0) * self.laplace_scale_us(state.g_us)

    def read(
        self,
        g_us: DeviceState | Tensor,
        *,
        t_s: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One read of every cell (µS): the programmed conductance plus a Laplace draw."""
        check_time(t_s)
        state = self.as_state(g_us, generator=generator)
        g = state.g_us
        return g + laplace_noise(self.laplace_scale_us(g), tuple(g.shape), generator=generator)
