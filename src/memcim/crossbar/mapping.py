"""Weight <-> conductance mapping.

A weight matrix is stored on *planes*: arrays of cells with the tile's rows × cols, each plane
carrying one device per weight. A plane belongs to one bit *slice*; the currents of all planes of
a slice are summed or subtracted in the analog domain (on the bit lines, before the ADC) and the
slices are recombined digitally by shift-and-add.

Schemes, for a weight normalised to w̃ = w / w_max ∈ [−1, 1] and one slice value v ∈ [0, 1]:

* ``differential``: G⁺ = g_min + span·v·[w̃>0], G⁻ = g_min + span·v·[w̃<0]; the column current
  is I⁺ − I⁻, so one unit of v is ``span`` µS.
* ``offset``: G = g_ref + u·sign(w̃)·v and a reference column at g_ref per slice whose
  current is subtracted from every column; g_ref is mid-window unless ``reference_us`` sets it,
  and one unit of v is u = min(g_ref − g_min, g_max − g_ref) µS (``span/2`` at mid-window).
  The reference column is made of programmed cells (``reference="cells"``: written, noisy,
  drifting like the weights) or of fixed, noise-free conductances (``reference="fixed"``:
  precision resistors or a current source on the bit line; never written, no noise or drift,
  still dissipating V²·g_ref·t).

``devices_per_weight`` = N repeats every plane N times on the same bit line (the currents add,
so device noise averages down by √N). With ``weight_bits`` = B and ``slices`` = n, |w̃| is
quantised to m = round(|w̃|(2^B − 1)) and split into n slices of b = B/n bits,
m = Σ_s m_s 2^{b s}, each slice stored as v_s = m_s/(2^b − 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from memcim._errors import ConfigError, is_real, require

Scheme = Literal["differential", "offset"]
Reference = Literal["cells", "fixed"]


@dataclass(frozen=True, kw_only=True)
class MappingConfig:
    """How weights become conductances.

    Attributes:
        scheme: ``"differential"`` (G⁺ − G⁻ pair) or ``"offset"`` (one device per weight around
            mid-window, minus a shared reference column).
        devices_per_weight: devices summed per weight and polarity (N >= 1).
        weight_bits: total bits of the stored weight magnitude; ``None`` keeps it analog.
        slices: number of bit slices the magnitude is split over (needs ``weight_bits``
            divisible by ``slices``).
        w_max: weight value mapped to the full window; ``None`` uses max |W| of the matrix
            programmed (per tile). Weights beyond ``w_max`` raise an error rather than clip.
        reference: the offset scheme's reference column: ``"cells"`` (programmed devices) or
            ``"fixed"`` (noise-free fixed conductances, not written).
        reference_us: the offset scheme's reference conductance per device (µS), strictly
            inside the device window; ``None``: mid-window.
    """

    scheme: Scheme = "differential"
    devices_per_weight: int = 1
    weight_bits: int | None = None
    slices: int = 1
    w_max: float | None = None
    reference: Reference = "cells"
    reference_us: float | None = None

    def __post_init__(self) -> None:
        require(
            self.scheme in ("differential", "offset"),
            "MappingConfig.scheme",
            self.scheme,
            "must be 'differential' or 'offset'",
        )
        require(
            isinstance(self.devices_per_weight, int) and self.devices_per_weight >= 1,
            "MappingConfig.devices_per_weight",
            self.devices_per_weight,
            "must be an int >= 1",
        )
        require(
            isinstance(self.slices, int) and self.slices >= 1,
            "MappingConfig.slices",
            self.slices,
            "must be an int >= 1",
        )
        if self.weight_bits is None:
            require(
                self.slices == 1,
                "MappingConfig.slices",
                self.slices,
                "bit slicing needs weight_bits (analog weights use one slice)",
            )
        else:
            require(
                isinstance(self.weight_bits, int) and self.weight_bits >= 1,
                "MappingConfig.weight_bits",
                self.weight_bits,
                "must be an int >= 1 or None",
            )
            require(
                self.weight_bits % self.slices == 0,
                "MappingConfig.weight_bits",
                self.weight_bits,
                f"must be divisible by slices={self.slices}",
            )
        if self.w_max is not None:
            require(self.w_max > 0, "MappingConfig.w_max", self.w_max, "must be > 0 or None")
        require(self.reference in ("cells", "fixed"), "MappingConfig.reference", self.reference,
                "must be 'cells' (programmed devices) or 'fixed' (noise-free)")  # fmt: skip
        if self.reference_us is not None:
            require(is_real(self.reference_us) and self.reference_us >= 0,
                    "MappingConfig.reference_us", self.reference_us,
                    "must be None (mid-window) or finite and >= 0 µS")  # fmt: skip
            require(self.scheme == "offset", "MappingConfig.reference_us", self.reference_us,
                    "applies to scheme='offset' only")  # fmt: skip

    # --- layout -------------------------------------------------------------------------------
    @property
    def polarities(self) -> int:
        """Devices per weight and slice that differ in sign: 2 (differential) or 1 (offset)."""
        return 2 if self.scheme == "differential" else 1

    @property
    def planes_per_slice(self) -> int:
        """Devices per slice: devices per weight × polarities."""
        return self.devices_per_weight * self.polarities

    @property
    def planes(self) -> int:
        """Planes of weight cells (reference columns not included)."""
        return self.slices * self.planes_per_slice

    @property
    def bits_per_slice(self) -> int | None:
        """Weight bits each slice holds (``None`` with unquantised weights)."""
        return None if self.weight_bits is None else self.weight_bits // self.slices

    def plane_signs(self, device: torch.device | str | None = None) -> Tensor:
        """Analog sign of each plane within its slice, shape [planes_per_slice], on ``device``."""
        signs = [1.0, -1.0] if self.scheme == "differential" else [1.0]
        return torch.tensor(signs * self.devices_per_weight, device=device)

    def slice_weights(self, device: torch.device | str | None = None) -> Tensor:
        """Digital shift-and-add coefficient k_s per slice, shape [slices]; Σ_s k_s v_s = |w̃|;
        on ``device``."""
        if self.weight_bits is None:
            return torch.ones(1, device=device)
        b, big = self.bits_per_slice, self.weight_bits
        s = torch.arange(self.slices, dtype=torch.float64, device=device)
        return ((2**b - 1) * 2.0 ** (b * s) / (2**big - 1)).float()

    @property
    def fixed_reference(self) -> bool:
        """True when the offset scheme's reference is fixed conductances, not cells."""
        return self.scheme == "offset" and self.reference == "fixed"

    def reference_level_us(self, g_min_us: float, g_max_us: float) -> float:
        """The offset scheme's reference conductance per device (µS)."""
        if self.reference_us is None:
            return g_min_us + (g_max_us - g_min_us) / 2
        if not g_min_us < self.reference_us < g_max_us:
            raise ConfigError(
                f"MappingConfig.reference_us={self.reference_us!r} is invalid: must lie strictly "
                f"inside the device window ({g_min_us}, {g_max_us}) µS"
            )
        return self.reference_us

    def unit_us(self, g_min_us: float, g_max_us: float) -> float:
        """Conductance difference (µS) that one unit of slice value v makes on a bit line."""
        if self.scheme == "differential":
            return g_max_us - g_min_us
        g_ref = self.reference_level_us(g_min_us, g_max_us)
        return min(g_ref - g_min_us, g_max_us - g_ref)

    # --- encode / decode ----------------------------------------------------------------------
    def slice_values(self, w_norm: Tensor) -> Tensor:
        """Signed slice values σ·v_s ∈ [−1, 1], shape [..., slices, rows, cols].

        Args:
            w_norm: normalised weights w̃ ∈ [−1, 1], shape [..., rows, cols].
        """
        if self.weight_bits is None:
            return w_norm.unsqueeze(-3)
        b = self.bits_per_slice
        levels = 2**b - 1
        m = torch.round(w_norm.abs() * (2**self.weight_bits - 1)).to(torch.int64)
        shifts = (b * torch.arange(self.slices, device=w_norm.device)).view(-1, 1, 1)
        m_s = (m.unsqueeze(-3) >> shifts) & levels
        return torch.sign(w_norm).unsqueeze(-3) * m_s.to(w_norm.dtype) / levels

    def targets(
        self, w_norm: Tensor, g_min_us: float, g_max_us: float
    ) -> tuple[Tensor, Tensor | None]:
        """Target conductances of the weight planes and of the reference columns.

        Args:
            w_norm: normalised weights w̃ = w / w_max ∈ [−1, 1], shape [..., rows, cols]
                (rows = inputs, cols = outputs).
            g_min_us, g_max_us: the device window (µS).

        Returns:
            ``(planes, ref)``: planes of shape [..., slices·N·polarities, rows, cols] ordered
            slice-major, then device, then polarity (+, −); ``ref`` of shape
            [..., slices·N, rows, 1] for the offset scheme, else ``None``.
        """
        if w_norm.abs().max() > 1 + 1e-6:
            raise ConfigError(
                f"normalised weights reach |w/w_max| = {w_norm.abs().max().item():.4g} > 1: "
                "weights exceed MappingConfig.w_max"
            )
        # |w̃| > 1 + 1e-6 raised above; the clamp only removes float rounding past ±1.
        v = self.slice_values(w_norm.clamp(-1.0, 1.0))  # [..., S, rows, cols]
        span = g_max_us - g_min_us
        n = self.devices_per_weight
        if self.scheme == "differential":
            pos = g_min_us + span * v.clamp_min(0.0)
            neg = g_min_us + span * (-v).clamp_min(0.0)
            pair = torch.stack([pos, neg], dim=-3)  # [..., S, 2, rows, cols]
            planes = pair.unsqueeze(-4).expand(*pair.shape[:-3], n, *pair.shape[-3:])
            ref = None
        else:
            g_ref = self.reference_level_us(g_min_us, g_max_us)
            one = g_ref + self.unit_us(g_min_us, g_max_us) * v  # [..., S, rows, cols]
            planes = one.unsqueeze(-3).expand(*one.shape[:-2], n, *one.shape[-2:])
            ref = self.reference_targets(v.shape[:-3], v.shape[-2], g_min_us, g_max_us,
                                         dtype=w_norm.dtype, device=w_norm.device)  # fmt: skip
        return planes.flatten(-5 if self.scheme == "differential" else -4, -3).contiguous(), ref

    def reference_targets(
        self, lead: tuple[int, ...], rows: int, g_min_us: float, g_max_us: float, *,
        dtype: torch.dtype = torch.float32, device: torch.device | None = None,
    ) -> Tensor:  # fmt: skip
        """The offset scheme's reference column, [*lead, slices·N, rows, 1] at g_ref (µS)."""
        g_ref = self.reference_level_us(g_min_us, g_max_us)
        shape = (*lead, self.slices * self.devices_per_weight, rows, 1)
        return torch.full(shape, g_ref, dtype=dtype, device=device)

    def slice_conductance(self, planes_us: Tensor, ref_us: Tensor | None) -> Tensor:
        """Analog effective conductance of each slice's bit lines (µS), [..., slices, rows, cols].

        This is Σ sign·G over the planes of a slice, minus the reference columns: what the
        column current divided by the row voltage sees.
        """
        *lead, _, rows, cols = planes_us.shape
        per = planes_us.view(*lead, self.slices, self.planes_per_slice, rows, cols)
        signs = self.plane_signs(planes_us.device).to(planes_us.dtype).view(-1, 1, 1)
        g = (per * signs).sum(-3)
        if ref_us is not None:
            g = g - ref_us.view(*lead, self.slices, self.devices_per_weight, rows, 1).sum(-3)
        return g

    def slice_variance(self, planes_var: Tensor, ref_var: Tensor | None) -> Tensor:
        """Sum of per-device noise variances on each slice's bit lines (µS²)."""
        *lead, _, rows, cols = planes_var.shape
        var = planes_var.view(*lead, self.slices, self.planes_per_slice, rows, cols).sum(-3)
        if ref_var is not None:
            var = var + ref_var.view(*lead, self.slices, self.devices_per_weight, rows, 1).sum(-3)
        return var

    def decode(
        self, slice_g_us: Tensor, w_max: Tensor | float, g_min_us: float, g_max_us: float
    ) -> Tensor:
        """Weights (rows × cols, inputs × outputs) from per-slice effective conductances.

        Args:
            slice_g_us: [..., slices, rows, cols] from :meth:`slice_conductance`.
            w_max: the weight mapped to the full window (scalar or broadcastable [..., 1, 1]).
        """
        k = self.slice_weights(slice_g_us.device).to(slice_g_us.dtype).view(-1, 1, 1)
        unit = self.unit_us(g_min_us, g_max_us) * self.devices_per_weight
        return (slice_g_us * k).sum(-3) * (w_max / unit)
