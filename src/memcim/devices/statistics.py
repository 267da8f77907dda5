"""Statistics of a device model: the moments of programmed-then-read conductance.

Training needs the device's programming and read noise at every step, for every weight, at the
cost of a few element-wise operations, and the Bayesian sampling schemes need the spread σ(g)
of a programmed device at each target conductance. Running the full device model (a
programming plus a read of every cell) for each is exact but costs as much as several matrix
products. Instead, :class:`ConductanceNoiseTable` tabulates, once per device and read time, the
mean shift and the standard deviation of *programmed-then-read* conductance as a function of
the target, by Monte-Carlo on the device model itself (so it covers every device, PCM's
polynomial and drift, RRAM's cycle-to-cycle, device-to-device and relaxation spread alike), and
samples a Gaussian with those two moments. Non-Gaussian features (PCM's clipping at 0 µS,
telegraph noise) keep their mean and variance but not their shape; that is the approximation.

It lives with the devices because it describes one device model and nothing above it: both
``memcim.nn`` (hardware-aware training) and ``memcim.bayes`` (sampling schemes) read it, and
neither may import the other.
"""

from __future__ import annotations

import torch
from torch import Tensor

from memcim._errors import ConfigError, require
from memcim._modules import device_of
from memcim.devices.base import Device, any_nan


def interpolate(pos: Tensor, *tables: Tensor, name: str = "g_target_us") -> list[Tensor]:
    """Linear interpolation of 1-D ``tables`` at fractional grid positions ``pos`` (held at the
    end values outside the grid). Tables on another device than ``pos`` (a characterisation
    made once on the CPU, read by tiles on a GPU) are copied to it.

    Raises:
        ConfigError: ``pos`` holds NaN (from NaN values of the argument ``name``), which has no
            grid position.
    """
    if any_nan(pos):
        raise ConfigError(f"{name} contains NaN values: the noise tables need finite values")
    return lerp_tables(pos, *(t.to(pos.device) for t in tables))


def lerp_tables(pos: Tensor, *tables: Tensor) -> list[Tensor]:
    """:func:`interpolate` without its NaN check (a NaN position gathers an arbitrary entry),
    for callers that check their inputs themselves; ``pos`` is overwritten."""
    last = len(tables[0]) - 1
    # This runs for every weight at every hardware-aware training step, so it avoids passes:
    # the fraction is taken against the float floor (pos − an int tensor converts all of pos),
    # and t[lo + 1] is gathered as t[1:][lo]. index_select on flat int32 indices gathers the
    # same values as t[lo], several times faster on CPU. Same values as the plain formulas.
    pos = pos.clamp_(0, last)
    lo_float = pos.floor().clamp_max_(last - 1)
    lo = lo_float.to(torch.int32).reshape(-1)
    frac = pos.sub_(lo_float)
    return [torch.lerp(t[:-1].index_select(0, lo).view_as(frac),
                       t[1:].index_select(0, lo).view_as(frac), frac) for t in tables]  # fmt: skip


#: Programmings of each cell of a ``reprogrammed`` table (its cells: draws / this).
_REPROGRAMMINGS = 16


class ConductanceNoiseTable:
    """Moments (µS) of programmed-then-read conductance over the device window.

    Tabulated per target g: the mean shift and std of ``read(program(g), t)`` − g (what
    training samples), and the noise-free mean shifts ``drift(·, 0)`` − g and ``drift(·, t)`` − g
    (what global drift compensation compares, as the tiles do at inference).

    Args:
        device: the cell technology.
        t_s: read time after programming whose noise is tabulated (s).
        points: grid points across [g_min, g_max]; values in between are interpolated.
        draws: Monte-Carlo draws per grid point (4096 gives the std to ~1.1 %).
        generator: randomness of the tabulation; the tables live on its device.
        reprogrammed: tabulate the std of *re-programming the same cell* instead (16
            programmings of each of draws / 16 cells, the RMS over cells of each cell's std):
            the spread a sampler that re-programs one array draws, without the persistent
            device-to-device spread that fresh cells add. The mean shifts stay those of fresh
            cells.
    """

    def __init__(
        self,
        device: Device,
        t_s: float = 0.0,
        *,
        points: int = 65,
        draws: int = 4096,
        generator: torch.Generator | None = None,
        reprogrammed: bool = False,
    ) -> None:
        require(points >= 2, "points", points, "must be >= 2")
        require(draws >= 2, "draws", draws, "must be >= 2")
        self.device, self.t_s = device, t_s
        self.reprogrammed = reprogrammed
        # tabulated where the generator draws
        self.g_grid_us = torch.linspace(device.g_min_us, device.g_max_us, points,
                                        device=device_of(generator))  # fmt: skip
        targets = self.g_grid_us.expand(draws, points).contiguous()
        state = device.program(targets, generator=generator)
        reads = device.read(state, t_s=t_s, generator=generator) - targets
        self.mean_shift_us = reads.mean(0)
        self.std_us = reads.std(0)
        if reprogrammed:
            self.std_us = self._reprogrammed_std(targets, state, generator)
        self.drift_shift0_us = (device.drift(state, 0.0) - targets).mean(0)
        self.drift_shift_us = (device.drift(state, t_s) - targets).mean(0)
        #: No mean change between t = 0 and t_s (e.g. t_s = 0): compensation is exactly 1.
        self.drift_free = bool(torch.equal(self.drift_shift0_us, self.drift_shift_us))
        self._step = (device.g_max_us - device.g_min_us) / (points - 1)

    def _reprogrammed_std(self, targets: Tensor, state, generator) -> Tensor:
        """RMS over cells of each cell's std over ``_REPROGRAMMINGS`` programmings from its
        first state: the spread of re-programming one cell, whose persistent parameters
        (device-to-device factors, forming faults) stay as they are."""
        r = _REPROGRAMMINGS
        cells = max(2, targets.shape[0] // r)
        first = state.map(lambda t: t[:cells])
        again = self.device.program(targets[:cells].expand(r, *targets[:cells].shape),
                                    generator=generator,
                                    state=first.map(lambda t: t.expand(r, *t.shape)))  # fmt: skip
        reads = self.device.read(again, t_s=self.t_s, generator=generator)
        return reads.var(0).mean(0).sqrt()

    def _pos(self, g_us: Tensor) -> Tensor:
        return (g_us - self.device.g_min_us) / self._step

    def moments(self, g_target_us: Tensor) -> tuple[Tensor, Tensor]:
        """Interpolated (mean shift, std) in µS of a read at each target conductance."""
        mean, std = interpolate(self._pos(g_target_us), self.mean_shift_us, self.std_us)
        return mean, std

    def drift_shifts(self, g_target_us: Tensor) -> tuple[Tensor, Tensor]:
        """Interpolated noise-free mean shifts (µS) at t = 0 and at ``t_s``."""
        at0, at_t = interpolate(self._pos(g_target_us), self.drift_shift0_us, self.drift_shift_us)
        return at0, at_t

    def sample(self, g_target_us: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One Gaussian draw of the programmed-then-read conductance for each target (µS)."""
        mean, std = self.moments(g_target_us)
        noise = torch.randn(
            g_target_us.shape,
            generator=generator,
            dtype=g_target_us.dtype,
            device=g_target_us.device,
        )
        return g_target_us + mean + std * noise
