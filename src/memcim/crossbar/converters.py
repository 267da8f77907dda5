"""DAC and ADC: uniform signed quantisers with a fixed or calibrated range.

A converter of ``bits`` b has the signed integer codes −L … L with L = 2^(b−1) − 1 (symmetric,
so zero is exact). Values beyond the range saturate at ±L; every saturated conversion is counted,
never hidden.

Range modes:

* ``fixed``: full scale given by ``full_scale``.
* ``max_abs``: full scale = max |value| of the data it is calibrated on.
* ``percentile``: full scale = the given percentile of |value| (outliers saturate, counted).

For the DAC the range is calibrated per input vector at every MVM (the digital scale is
applied back after the ADC, as in "noise management"); for the ADC it is calibrated per bit
slice on the first batch a tile sees, or explicitly with ``Tile.calibrate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from memcim._errors import require

RangeMode = Literal["fixed", "max_abs", "percentile"]


#: Up to this many values a max-abs range is taken as ``|values|.amax()`` (two operations); above
#: it as ``max(amax, −amin)``, which does not materialise ``|values|``.
_SMALL = 1 << 16


@dataclass(frozen=True, kw_only=True)
class ConverterConfig:
    """One converter type (DAC or ADC).

    Attributes:
        bits: resolution; ``None`` is an ideal converter (no quantisation, no clipping).
        mode: ``"fixed"``, ``"max_abs"`` or ``"percentile"`` (see module docstring).
        full_scale: full-scale value for ``"fixed"``: input units for a DAC; for an ADC, µA of
            bit-line current per volt of full-scale row drive (i.e. µS), the same for every
            bit slice. A tile whose every input sits at full scale on the rows of one column
            with effective conductance ΣG (µS) draws ΣG µA per volt; hardware-aware training
            applies the same full scale, converted to weight units
            (:func:`memcim.nn.layers.adc_full_scale`), so a setting saturates the same
            conversions in training and inference.
        percentile: percentile of |value| used as full scale in ``"percentile"`` mode, in (0, 100].
        t_conversion_s: duration of one conversion (s), for latency.
    """

    bits: int | None = 8
    mode: RangeMode = "max_abs"
    full_scale: float | None = None
    percentile: float = 99.99
    t_conversion_s: float = 1e-9

    def __post_init__(self) -> None:
        if self.bits is not None:
            require(
                isinstance(self.bits, int) and self.bits >= 2,
                "ConverterConfig.bits",
                self.bits,
                "must be an int >= 2 (signed codes) or None for ideal",
            )
        require(
            self.mode in ("fixed", "max_abs", "percentile"),
            "ConverterConfig.mode",
            self.mode,
            "must be 'fixed', 'max_abs' or 'percentile'",
        )
        if self.mode == "fixed" or self.full_scale is not None:
            require(
                self.full_scale is not None and 0 < self.full_scale < math.inf,
                "ConverterConfig.full_scale",
                self.full_scale,
                "must be finite and > 0 (and set in 'fixed' mode)",
            )
        require(
            0 < self.percentile <= 100,
            "ConverterConfig.percentile",
            self.percentile,
            "must be in (0, 100]",
        )
        require(
            self.t_conversion_s >= 0,
            "ConverterConfig.t_conversion_s",
            self.t_conversion_s,
            "must be >= 0 s",
        )

    @property
    def ideal(self) -> bool:
        """True when ``bits`` is None: no quantisation, no conversion counted."""
        return self.bits is None

    @property
    def max_code(self) -> int:
        """L = 2^(bits−1) − 1, the largest code magnitude."""
        if self.bits is None:
            raise ValueError("an ideal converter has no codes")
        return 2 ** (self.bits - 1) - 1

    def calibrate(self, values: Tensor, dim: int | None = None) -> Tensor:
        """Full-scale range from data, reduced over ``dim`` (kept) or over everything.

        Zero ranges (all-zero or empty data) become 1 so that conversion stays defined.
        """
        if self.mode == "fixed":
            return values.new_tensor(float(self.full_scale))
        if values.numel() == 0:  # an empty batch: nothing to calibrate on, any range works
            shape = () if dim is None else values.sum(dim, keepdim=True).shape
            return torch.ones(shape, dtype=values.dtype, device=values.device)
        if self.mode == "max_abs":
            return max_abs_range(values, dim)
        mag = values.abs()
        if dim is None:
            mag, dim = mag.reshape(-1), 0
        # kthvalue (a selection) has no input-size cap, unlike torch.quantile.
        n = mag.shape[dim]
        k = max(1, min(n, math.ceil(self.percentile / 100 * n)))
        return _nonzero(mag.kthvalue(k, dim=dim, keepdim=True).values)


def max_abs_range(values: Tensor, dim: int | None = None) -> Tensor:
    """max |values| over ``dim`` (kept) or over everything, with zero ranges set to 1: the
    range of a max-abs converter, which no code of these values can exceed."""
    if values.numel() <= _SMALL:  # two operations instead of four: per-call costs rule
        r = values.abs().amax() if dim is None else values.abs().amax(dim, keepdim=True)
        return _nonzero(r)
    # max |value| without materialising |values| (aminmax along a dim is far slower).
    if dim is None:
        return range_of_extremes(values.amax(), values.amin())
    return range_of_extremes(values.amax(dim, keepdim=True), values.amin(dim, keepdim=True))


def range_of_extremes(top: Tensor, bottom: Tensor) -> Tensor:
    """The max-abs range of values whose largest is ``top`` and smallest ``bottom``:
    max(top, −bottom), with zero ranges set to 1 (as :func:`max_abs_range`)."""
    return _nonzero(torch.maximum(top, -bottom))


def _nonzero(r: Tensor) -> Tensor:
    return torch.where(r > 0, r, 1.0)


def rounded_codes(values: Tensor, full_scale: Tensor, max_code: int, *,
                  inplace: bool = False) -> Tensor:  # fmt: skip
    """``round(values · max_code / full_scale)``: the codes before saturation, which
    :func:`quantize` counts and clamps. Use it alone only where no code can exceed
    ``max_code`` (``full_scale`` the max-abs of these very values: x · L/|x|max rounds to at
    most L in float32) or where the caller counts saturation itself.

    ``inplace``: write the codes into ``values`` (a dense tensor the caller owns, of the
    broadcast shape) instead of a new buffer; the same numbers.
    """
    return codes_at_step(values, code_step(full_scale, max_code), inplace=inplace)


def code_step(full_scale: Tensor | float, max_code: int) -> Tensor | float:
    """Codes per unit of value, ``max_code / full_scale``, as :func:`rounded_codes` applies it
    (a caller converting many times with one range computes it once)."""
    if not isinstance(full_scale, Tensor):
        return max_code / full_scale
    # max_code / full_scale as Tensor.__rdiv__ computes it, without its Python wrapper.
    step = torch.mul(full_scale.reciprocal(), max_code)
    # A range of subnormal data (below float32's normal range) makes the step infinite and
    # 0 · inf NaN; such data lies below every code step, so it converts to code 0.
    return step.nan_to_num_(nan=math.nan, posinf=0.0)


def codes_at_step(values: Tensor, step: Tensor | float, *, inplace: bool = False) -> Tensor:
    """``round(values · step)`` with a step from :func:`code_step` (see :func:`rounded_codes`)."""
    # At most one new buffer (none in place), rounded in place: large temporaries are costly.
    return (values.mul_(step) if inplace else torch.mul(values, step)).round_()


def quantize(values: Tensor, full_scale: Tensor, max_code: int, *,
             inplace: bool = False) -> tuple[Tensor, int]:  # fmt: skip
    """Signed uniform quantisation to integer codes.

    Args:
        values: data to convert, any shape.
        full_scale: range mapped to code ±max_code; broadcastable to ``values``.
        max_code: L, the largest code magnitude.
        inplace: write the codes into ``values`` (a dense tensor the caller owns, of the
            broadcast shape) instead of a new buffer; the same numbers.

    Returns:
        ``(codes, n_clipped)``: codes as floats in −L…L (same shape as ``values``) and the number
        of conversions that saturated.
    """
    codes = rounded_codes(values, full_scale, max_code, inplace=inplace)
    if codes.numel() == 0 or (codes.amin() >= -max_code and codes.amax() <= max_code):
        return codes, 0
    clipped = int(torch.count_nonzero(codes.abs() > max_code))
    return codes.clamp_(-max_code, max_code), clipped
