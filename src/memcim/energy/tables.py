"""Cited per-operation energies (pJ), converter and link figures that every energy model reads.

Every number is a field of a frozen dataclass, so a user can swap a table for their own process
(``dataclasses.replace(HOROWITZ_45NM, dram_read_32b_pj=...)``). Figures marked "order of
magnitude" come from docs/references.md's "typical figures" and are defaults to override, not
measurements.

References:
    [1] M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014
        (45 nm operation and memory-access energies).
    Murmann, "ADC performance survey 1997–2024" (Walden figure of merit, energy per conversion
        ≈ FoM_W · 2^ENOB; a few to tens of fJ per conversion step for the moderate-speed SAR ADCs
        that CIM macros use).
    Link energies per bit: docs/references.md, "Energy" (order of magnitude).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from memcim._errors import require


def _check_non_negative(obj: object) -> None:
    """Every numeric field of a table is finite and >= 0."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            require(
                math.isfinite(value) and value >= 0,
                f"{type(obj).__name__}.{f.name}",
                value,
                "must be finite and >= 0",
            )


@dataclass(frozen=True, kw_only=True)
class OperationEnergies:
    """Energy of one arithmetic operation or memory access (pJ).

    Defaults: Horowitz [1], 45 nm, 0.9 V.

    Attributes:
        int8_add_pj, int8_mult_pj: 8-bit integer add / multiply (0.03 / 0.2 pJ).
        int32_add_pj, int32_mult_pj: 32-bit integer add / multiply (0.1 / 3.1 pJ).
        fp32_add_pj, fp32_mult_pj: 32-bit float add / multiply (0.9 / 3.7 pJ).
        sram_read_32b_pj: 32-bit read of an 8 KB SRAM (5 pJ).
        dram_read_32b_pj: 32-bit DRAM read (640 pJ).
    """

    int8_add_pj: float = 0.03
    int8_mult_pj: float = 0.2
    int32_add_pj: float = 0.1
    int32_mult_pj: float = 3.1
    fp32_add_pj: float = 0.9
    fp32_mult_pj: float = 3.7
    sram_read_32b_pj: float = 5.0
    dram_read_32b_pj: float = 640.0

    def __post_init__(self) -> None:
        _check_non_negative(self)

    @property
    def sram_bit_pj(self) -> float:
        """SRAM access energy per bit (pJ)."""
        return self.sram_read_32b_pj / 32

    @property
    def dram_bit_pj(self) -> float:
        """DRAM access energy per bit (pJ)."""
        return self.dram_read_32b_pj / 32

    def scaled(self, factor: float) -> OperationEnergies:
        """Arithmetic and SRAM energies × ``factor`` (e.g. a newer node); DRAM kept, as its
        energy is mostly I/O and scales little."""
        require(math.isfinite(factor) and factor > 0, "factor", factor, "must be > 0")
        values = {f.name: getattr(self, f.name) * factor for f in fields(self)}
        values["dram_read_32b_pj"] = self.dram_read_32b_pj
        return OperationEnergies(**values)

    def mac_pj(self, dtype: str) -> float:
        """One multiply plus one add in ``dtype`` ("int8", "int32" or "fp32") (pJ)."""
        require(dtype in ("int8", "int32", "fp32"), "dtype", dtype, "must be int8, int32 or fp32")
        return getattr(self, f"{dtype}_mult_pj") + getattr(self, f"{dtype}_add_pj")


#: Horowitz, ISSCC 2014 [1]: 45 nm energies per operation.
HOROWITZ_45NM = OperationEnergies()


def adc_energy_pj(bits: int, fom_fj_per_step: float) -> float:
    """Energy of one ADC conversion, FoM_Walden · 2^bits (pJ), taking ENOB = ``bits``.

    Args:
        bits: resolution (>= 1).
        fom_fj_per_step: Walden figure of merit (fJ per conversion step).
    """
    require(isinstance(bits, int) and bits >= 1, "bits", bits, "must be an int >= 1")
    require(fom_fj_per_step >= 0, "fom_fj_per_step", fom_fj_per_step, "must be >= 0 fJ")
    return fom_fj_per_step * 2**bits * 1e-3


@dataclass(frozen=True, kw_only=True)
class Link:
    """A data link between chiplets or memories.

    Attributes:
        name: label for reports.
        e_pj_per_bit: energy per transferred bit (pJ), for ``length_mm`` if the link is per mm.
        latency_s: fixed latency of one transfer (s): serialisation, PHY and hops.
        bandwidth_bits_per_s: sustained bandwidth (bit/s).
        per_mm: True when ``e_pj_per_bit`` is per millimetre of wire (on-die links).
    """

    name: str
    e_pj_per_bit: float
    latency_s: float
    bandwidth_bits_per_s: float
    per_mm: bool = False

    def __post_init__(self) -> None:
        _check_non_negative(self)
        require(self.bandwidth_bits_per_s > 0, "Link.bandwidth_bits_per_s",
                self.bandwidth_bits_per_s, "must be > 0 bit/s")  # fmt: skip

    def energy_pj(self, bits: float, length_mm: float = 1.0) -> float:
        """Energy to move ``bits`` over the link (pJ); ``length_mm`` counts for per-mm links."""
        require(bits >= 0, "bits", bits, "must be >= 0")
        require(length_mm >= 0, "length_mm", length_mm, "must be >= 0 mm")
        return bits * self.e_pj_per_bit * (length_mm if self.per_mm else 1.0)

    def latency_for_s(self, bits: float) -> float:
        """Time to move ``bits``: the fixed latency plus serialisation at the bandwidth (s)."""
        require(bits >= 0, "bits", bits, "must be >= 0")
        return self.latency_s + bits / self.bandwidth_bits_per_s


# Link energies per bit: docs/references.md, "Energy" (order of magnitude). Latencies and bandwidths
# are our order-of-magnitude assumptions (unverified): a wire's few ns, a PHY's tens of ns.
#: On-die wire, ~0.1 pJ/bit per mm.
ON_DIE = Link(name="on-die", e_pj_per_bit=0.1, latency_s=1e-9, bandwidth_bits_per_s=1e12,
              per_mm=True)  # fmt: skip
#: 2.5D silicon interposer, ~0.5 pJ/bit.
INTERPOSER_2_5D = Link(name="2.5D interposer", e_pj_per_bit=0.5, latency_s=5e-9,
                       bandwidth_bits_per_s=5e11)  # fmt: skip
#: 3D hybrid bonding, ~0.05 pJ/bit.
HYBRID_BONDING_3D = Link(name="3D hybrid bonding", e_pj_per_bit=0.05, latency_s=1e-9,
                         bandwidth_bits_per_s=2e12)  # fmt: skip
#: Off-package SerDes, 5–10 pJ/bit (midpoint 7.5).
OFF_PACKAGE = Link(name="off-package SerDes", e_pj_per_bit=7.5, latency_s=50e-9,
                   bandwidth_bits_per_s=1e11)  # fmt: skip
#: HBM, ~4 pJ/bit.
HBM = Link(name="HBM", e_pj_per_bit=4.0, latency_s=100e-9, bandwidth_bits_per_s=8e12)
#: DDR DRAM, 15–20 pJ/bit (midpoint 17.5).
DDR = Link(name="DDR", e_pj_per_bit=17.5, latency_s=100e-9, bandwidth_bits_per_s=2e11)

LINKS: dict[str, Link] = {
    "on_die": ON_DIE,
    "interposer_2_5d": INTERPOSER_2_5D,
    "hybrid_bonding_3d": HYBRID_BONDING_3D,
    "off_package": OFF_PACKAGE,
    "hbm": HBM,
    "ddr": DDR,
}

# Cell area in F² (F = feature size) per device class name. Order-of-magnitude textbook figures,
# unverified: a 6T SRAM cell ~150 F²; 1T1R cells are set by their access transistor (~25 F²
# for RRAM/FeRAM, ~30 F² for PCM's larger RESET current, ~40 F² for STT-MRAM's); a 2T gain cell
# ~60 F²; an ideal 0T1R crosspoint 4 F².
CELL_AREA_F2: dict[str, float] = {
    "FilamentaryRRAM": 25.0,
    "PCM": 30.0,
    "STTMRAM": 40.0,
    "FeCap": 25.0,
    "TwoDFET": 25.0,
    "SRAMCell": 150.0,
    "GainCell": 60.0,
    "IdealDevice": 4.0,
}
