"""Device noise in the weight domain, for hardware-aware training.

:class:`ConductanceNoiseTable` (defined in :mod:`memcim.devices.statistics`, re-exported here
and as ``memcim.nn.ConductanceNoiseTable``) tabulates the moments of programmed-then-read
conductance of a device; :class:`WeightNoiseTable` folds them into weight units for an analog
differential mapping, so that a training step draws one Gaussian per weight.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from memcim._compile import compiled
from memcim._errors import ConfigError, require
from memcim._scratch import scratch
from memcim.devices.base import all_finite
from memcim.devices.statistics import ConductanceNoiseTable, lerp_tables

__all__ = ["ConductanceNoiseTable", "WeightNoiseTable"]


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
        self.w_grid = torch.linspace(-1.0, 1.0, points, device=table.g_grid_us.device)
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

    def sample(self, w: Tensor, w_max: Tensor, *, generator: torch.Generator | None,
               compiled: bool = False, out: Tensor | None = None) -> Tensor:  # fmt: skip
        """Noisy copy of weights ``w`` (any shape) mapped with full scale ``w_max``.

        ``compiled``: interpolate and combine through ``torch.compile`` (see
        :class:`~memcim.nn.CIMConfig`'s ``compile``): the same random numbers, equal within
        float32 rounding. ``out``: write the copy there (a tensor of ``w``'s shape, which may be
        a block of a larger one) instead of a new tensor.
        """
        _require_finite(w)
        normals = None if out is None or compiled else scratch("noise.normals", w)
        noise = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device,
                            out=normals)  # fmt: skip
        if not compiled:
            return _noisy_weights_lean(w, w_max, noise, self.mean_shift, self.std,
                                       out=noise if out is None else out)  # fmt: skip
        # Flat, so that one kernel with a symbolic length serves every tile shape.
        flat = _compiled_noisy_weights()(w.reshape(-1), w_max, noise.reshape(-1),
                                         self.mean_shift, self.std)  # fmt: skip
        return flat.view(w.shape) if out is None else out.copy_(flat.view(w.shape))

    def sample_and_drift_means(self, w: Tensor, w_max: Tensor, *,
                               generator: torch.Generator | None,
                               ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """:meth:`sample` (the same values and random numbers) and the noise-free mean weights
        at t = 0 and at the table's ``t_s``, all from one interpolation of the four tables;
        each the shape of ``w``, in its units."""
        _require_finite(w)
        tables = (self.mean_shift, self.std, self.drift_shift0, self.drift_shift)
        mean, std, at0, at_t = lerp_tables(_grid_position(w, w_max, self._points), *tables)
        noise = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device)
        noisy = _combine(w, w_max, noise, mean, std)
        return noisy, at0.mul_(w_max).add_(w), at_t.mul_(w_max).add_(w)


def _require_finite(w: Tensor) -> None:
    if not all_finite(w):
        raise ConfigError("w contains NaN or infinite values: the noise tables need finite values")


def _grid_position(w: Tensor, w_max: Tensor, points: int) -> Tensor:
    """Fractional index of w / w_max ∈ [−1, 1] on a grid of ``points``."""
    return (w / w_max + 1.0) * ((points - 1) / 2)


def _combine(w: Tensor, w_max: Tensor, noise: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """w + w_max (mean + std ε), in place in ``std`` (fewer large allocations; the same
    operations, so the same values)."""
    return std.mul_(noise).add_(mean).mul_(w_max).add_(w)


def _noisy_weights(w: Tensor, w_max: Tensor, noise: Tensor, mean_shift: Tensor,
                   std: Tensor) -> Tensor:  # fmt: skip
    """The noisy weights from the standard normals ``noise`` and the weight-domain tables
    (the formula as written: what ``torch.compile`` fuses)."""
    pos = _grid_position(w, w_max, len(std))
    mean, spread = lerp_tables(pos, mean_shift, std)
    return _combine(w, w_max, noise, mean, spread)


def _noisy_weights_lean(w: Tensor, w_max: Tensor, noise: Tensor, mean_shift: Tensor,
                        std: Tensor, *, out: Tensor) -> Tensor:  # fmt: skip
    """:func:`_noisy_weights` (equal within float32 rounding) in fewer passes over memory, for
    the eager training step, where every weight-sized pass costs: the tables are scaled by
    ``w_max`` (257 values) instead of the weights, the grid index is truncated from the
    position (≥ 0) instead of floored, the intermediates live in this thread's scratch buffers
    and the result goes to ``out`` (which may be ``noise``)."""
    last = len(std) - 1
    half = torch.full_like(w_max, last / 2)
    pos = torch.addcmul(half, w, half / w_max, out=scratch("noise.position", w))
    pos.clamp_(0, _below(last))  # so that the truncated index is at most last − 1
    lo = scratch("noise.index", w, torch.int32).copy_(pos).view(-1)
    frac = pos.sub_(lo.view_as(pos))
    mean = _lerp_at(mean_shift * w_max, lo, frac, "noise.mean")
    spread = _lerp_at(std * w_max, lo, frac, "noise.std")
    return torch.addcmul(mean, spread, noise, out=out).add_(w)


def _lerp_at(table: Tensor, lo: Tensor, frac: Tensor, name: str) -> Tensor:
    """table[lo] + frac · (table[lo + 1] − table[lo]) in scratch buffers (``lo`` flat int32)."""
    below = torch.index_select(table[:-1], 0, lo, out=scratch(name, lo, table.dtype))
    above = torch.index_select(table[1:], 0, lo, out=scratch(name + ".above", lo, table.dtype))
    return torch.lerp(below, above, frac.view(-1), out=below).view_as(frac)


@functools.cache
def _below(last: int) -> float:
    """The largest float32 below ``last``."""
    return float(np.nextafter(np.float32(last), np.float32(0)))


@functools.cache
def _compiled_noisy_weights():
    """:func:`_noisy_weights` through torch.compile for 1-D weights of any length, built once."""
    return compiled(_noisy_weights, what="the training noise", option="CIMConfig.compile",
                    dynamic=True)  # fmt: skip
