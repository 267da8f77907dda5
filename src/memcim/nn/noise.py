"""Device noise in the weight domain, for hardware-aware training.

:class:`ConductanceNoiseTable` (defined in :mod:`memcim.devices.statistics`, re-exported here
and as ``memcim.nn.ConductanceNoiseTable``) tabulates the moments of programmed-then-read
conductance of a device; :class:`WeightNoiseTable` folds them into weight units for an analog
differential mapping, so that a training step draws one Gaussian per weight.
"""

from __future__ import annotations

import functools

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
               compiled: bool = False) -> Tensor:  # fmt: skip
        """Noisy copy of weights ``w`` (any shape) mapped with full scale ``w_max``.

        ``compiled``: interpolate and combine through ``torch.compile`` (see
        :class:`~memcim.nn.CIMConfig`'s ``compile``): the same random numbers, equal within
        float32 rounding.
        """
        _require_finite(w)
        noise = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device)
        if not compiled:
            return _noisy_weights(w, w_max, noise, self.mean_shift, self.std, reuse=True)
        # Flat, so that one kernel with a symbolic length serves every tile shape.
        flat = _compiled_noisy_weights()(w.reshape(-1), w_max, noise.reshape(-1),
                                         self.mean_shift, self.std)  # fmt: skip
        return flat.view(w.shape)

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
        noisy = _combine(w, w_max, noise, mean, std, into=std)
        return noisy, at0.mul_(w_max).add_(w), at_t.mul_(w_max).add_(w)


def _require_finite(w: Tensor) -> None:
    if not all_finite(w):
        raise ConfigError("w contains NaN or infinite values: the noise tables need finite values")


def _grid_position(w: Tensor, w_max: Tensor, points: int, out: Tensor | None = None) -> Tensor:
    """Fractional index of w / w_max ∈ [−1, 1] on a grid of ``points`` (into ``out`` if given)."""
    return torch.div(w, w_max, out=out).add_(1.0).mul_((points - 1) / 2)


def _combine(w: Tensor, w_max: Tensor, noise: Tensor, mean: Tensor, std: Tensor, *,
             into: Tensor) -> Tensor:  # fmt: skip
    """w + w_max (mean + std ε), in place in ``into``: ``std`` or ``noise`` (fewer large
    allocations; std·ε = ε·std exactly, so the same values either way)."""
    other = noise if into is std else std
    return into.mul_(other).add_(mean).mul_(w_max).add_(w)


def _noisy_weights(w: Tensor, w_max: Tensor, noise: Tensor, mean_shift: Tensor,
                   std: Tensor, *, reuse: bool = False) -> Tensor:  # fmt: skip
    """The noisy weights from the standard normals ``noise`` and the weight-domain tables.

    ``reuse``: the intermediates in this thread's scratch buffers and the result in ``noise``
    (the eager training path: no weight-sized allocation); otherwise in new tensors (the
    compiled path, which fuses them away).
    """
    pos = _grid_position(w, w_max, len(std), out=scratch("noise.position", w) if reuse else None)
    mean, spread = lerp_tables(pos, mean_shift, std, reuse=reuse)
    return _combine(w, w_max, noise, mean, spread, into=noise if reuse else spread)


@functools.cache
def _compiled_noisy_weights():
    """:func:`_noisy_weights` through torch.compile for 1-D weights of any length, built once."""
    return compiled(_noisy_weights, what="the training noise", option="CIMConfig.compile",
                    dynamic=True)  # fmt: skip
