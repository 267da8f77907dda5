"""Device noise in the weight domain, for hardware-aware training.

Training needs the device's programming and read noise at every step, for every weight, at the
cost of a few element-wise operations. Running the full device model (a programming plus a
read of every cell) per step is exact but costs as much as several matrix products. Instead,
:class:`ConductanceNoiseTable` tabulates, once per device and read time, the mean shift and the
standard deviation of *programmed-then-read* conductance as a function of the target, by
Monte-Carlo on the device model itself (so it covers every device, PCM's polynomial and drift,
RRAM's cycle-to-cycle, device-to-device and relaxation spread alike), and samples a Gaussian
with those two moments. Non-Gaussian features (PCM's clipping at 0 µS, telegraph noise) keep
their mean and variance but not their shape; that is the approximation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from memcim._errors import require
from memcim.devices import Device


def _interpolate(pos: Tensor, *tables: Tensor) -> list[Tensor]:
    """Linear interpolation of 1-D ``tables`` at fractional grid positions ``pos``."""
    last = len(tables[0]) - 1
    pos = pos.clamp(0, last)
    lo = pos.floor().clamp_max(last - 1).long()
    frac = pos - lo
    return [torch.lerp(t[lo], t[lo + 1], frac) for t in tables]


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
        generator: randomness of the tabulation.
    """

    def __init__(
        self,
        device: Device,
        t_s: float = 0.0,
        *,
        points: int = 65,
        draws: int = 4096,
        generator: torch.Generator | None = None,
    ) -> None:
        require(points >= 2, "points", points, "must be >= 2")
        require(draws >= 2, "draws", draws, "must be >= 2")
        self.device, self.t_s = device, t_s
        self.g_grid_us = torch.linspace(device.g_min_us, device.g_max_us, points)
        targets = self.g_grid_us.expand(draws, points).contiguous()
        state = device.program(targets, generator=generator)
        reads = device.read(state, t_s=t_s, generator=generator) - targets
        self.mean_shift_us = reads.mean(0)
        self.std_us = reads.std(0)
        self.drift_shift0_us = (device.drift(state, 0.0) - targets).mean(0)
        self.drift_shift_us = (device.drift(state, t_s) - targets).mean(0)
        #: No mean change between t = 0 and t_s (e.g. t_s = 0): compensation is exactly 1.
        self.drift_free = bool(torch.equal(self.drift_shift0_us, self.drift_shift_us))
        self._step = (device.g_max_us - device.g_min_us) / (points - 1)

    def _pos(self, g_us: Tensor) -> Tensor:
        return (g_us - self.device.g_min_us) / self._step

    def moments(self, g_target_us: Tensor) -> tuple[Tensor, Tensor]:
        """Interpolated (mean shift, std) in µS of a read at each target conductance."""
        mean, std = _interpolate(self._pos(g_target_us), self.mean_shift_us, self.std_us)
        return mean, std

    def drift_shifts(self, g_target_us: Tensor) -> tuple[Tensor, Tensor]:
        """Interpolated noise-free mean shifts (µS) at t = 0 and at ``t_s``."""
        at0, at_t = _interpolate(self._pos(g_target_us), self.drift_shift0_us, self.drift_shift_us)
        return at0, at_t

    def sample(self, g_target_us: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One Gaussian draw of the programmed-then-read conductance for each target (µS)."""
        mean, std = self.moments(g_target_us)
        noise = torch.randn(g_target_us.shape, generator=generator, dtype=g_target_us.dtype)
        return g_target_us + mean + std * noise


class WeightNoiseTable:
    """The same noise, folded into weight units for an analog differential mapping.

    For w̃ = w / w_max, the pair G⁺ − G⁻ of independently programmed devices has mean shift
    Σ ± mean_shift(G) and variance Σ std(G)², so one Gaussian per weight with those moments
    (tabulated over w̃ ∈ [−1, 1], interpolated) replaces one per device: half the random numbers
    and a quarter of the memory traffic of :meth:`ConductanceNoiseTable.sample` on the planes.
    Exact in the first two moments; used only where the planes are independent (differential,
    unquantised weights).

    Args:
        table: the device's conductance noise.
        mapping: a ``MappingConfig`` with ``scheme="differential"`` and ``weight_bits=None``.
        points: grid points over w̃ ∈ [−1, 1] (odd, so that w̃ = 0, where the pair switches
            sides, is a grid point).
    """

    def __init__(self, table: ConductanceNoiseTable, mapping, *, points: int = 257) -> None:
        require(mapping.scheme == "differential" and mapping.weight_bits is None,
                "mapping", mapping, "needs scheme='differential' and weight_bits=None")  # fmt: skip
        require(points >= 3 and points % 2 == 1, "points", points, "must be odd and >= 3")
        dev = table.device
        self.w_grid = torch.linspace(-1.0, 1.0, points)
        planes, _ = mapping.targets(self.w_grid.view(1, -1), dev.g_min_us, dev.g_max_us)
        unit = mapping.unit_us(dev.g_min_us, dev.g_max_us) * mapping.devices_per_weight

        def fold(shift_us: Tensor) -> Tensor:  # signed sum over the pair, in units of w_max
            return (mapping.slice_conductance(shift_us, None) / unit).flatten()

        shift, std = table.moments(planes)
        self.mean_shift = fold(shift)
        self.std = (mapping.slice_variance(std.square(), None).sqrt() / unit).flatten()
        drift0, drift_t = table.drift_shifts(planes)
        self.drift_shift0, self.drift_shift = fold(drift0), fold(drift_t)
        self._points = points

    def _pos(self, w: Tensor, w_max: Tensor) -> Tensor:
        return (w / w_max + 1.0) * ((self._points - 1) / 2)

    def sample(self, w: Tensor, w_max: Tensor, *, generator: torch.Generator | None) -> Tensor:
        """Noisy copy of weights ``w`` (any shape) mapped with full scale ``w_max``."""
        mean, std = _interpolate(self._pos(w, w_max), self.mean_shift, self.std)
        noise = torch.randn(w.shape, generator=generator, dtype=w.dtype)
        return w + w_max * (mean + std * noise)

    def drift_means(self, w: Tensor, w_max: Tensor) -> tuple[Tensor, Tensor]:
        """Noise-free mean weights at t = 0 and at the table's ``t_s``."""
        at0, at_t = _interpolate(self._pos(w, w_max), self.drift_shift0, self.drift_shift)
        return w + w_max * at0, w + w_max * at_t
